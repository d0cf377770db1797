/* One request/response exchange over a borrowed upstream connection:
 * borrow, gap, write, read, give back. Protocol matters live in the
 * dialect (dialect.h); the connection's upkeep in upstream.h. */
#ifndef TCPMUX_EXCHANGE_H
#define TCPMUX_EXCHANGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cli.h"
#include "codec.h"
#include "dialect.h"
#include "pool.h"
#include "readshare.h"
#include "upstream.h"

enum exchange_result {
	EXCH_OK,
	EXCH_NO_UPSTREAM,   /* no connection in time, target down, or queue full */
	EXCH_TIMEOUT,       /* the target did not answer in time */
	EXCH_BAD_GATEWAY,   /* the target closed, failed, or answered garbage */
	EXCH_SHUTDOWN,      /* the daemon is stopping */
	EXCH_CLIENT_GONE,   /* the client left before its answer mattered */
};

/* What an exchange needs besides the request. */
struct exchange_env {
	struct pool *pool;
	const struct config *cfg;
	const struct dialect *dialect;
	const struct upstream *upstream;
	struct readshare *share;   /* NULL unless the dialect shares reads and they are on */
};

/* One request: its bytes, its one deadline (--timeout from its first
 * byte), and the client, watched while it waits. */
struct exchange_req {
	const uint8_t *req;
	size_t len;
	int64_t deadline;
	int client_fd;      /* -1: not watched */
	const atomic_int *stopping; /* the daemon's stop shuts clients' sides: that is not leaving */
	const char *who;    /* names the client in log lines */
};

/* Has r answered by the target over a pooled connection, or by another
 * client's identical read; puts the answer for the client into out. */
enum exchange_result exchange_run(const struct exchange_env *env, const struct exchange_req *r,
				  struct frame_ctx *ctx, struct buf *out);

#endif
