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
	EXCH_NO_UPSTREAM, /* no connection in time, target down, or queue full */
	EXCH_TIMEOUT,	  /* the target did not answer in time */
	EXCH_BAD_GATEWAY, /* the target closed, failed, or answered garbage */
	EXCH_SHUTDOWN,	  /* the daemon is stopping */
	EXCH_CLIENT_GONE, /* the client left before its answer mattered */
	EXCH_CUT,	  /* part of a streamed answer reached the client, then
			   * the target or the client failed: no error answer
			   * can follow, the client is closed */
};

/* Where an answer goes as it comes (dialects whose answers may stream:
 * dialect.settled): the server writes the bytes to its client, each write
 * bounded by --timeout. An answer that arrives whole still goes through
 * out; one that does not is forwarded here piece by piece, out stays
 * empty, and the upstream connection is held until its end. */
struct exchange_sink {
	/* Returns 0 or -errno (the client is gone or too slow). */
	int (*forward)(struct exchange_sink *k, const uint8_t *p, size_t n);
	size_t forwarded; /* bytes of the current answer given to forward */
};

/* What an exchange needs besides the request. */
struct exchange_env {
	struct pool *pool;
	const struct config *cfg;
	const struct dialect *dialect;
	const struct upstream *upstream;
	struct readshare *share; /* NULL unless the dialect shares reads and they are on */
};

/* One request: its bytes, its one deadline (--timeout from its first
 * byte), and the client, watched while it waits. */
struct exchange_req {
	const uint8_t *req;
	size_t len;
	int64_t deadline;
	int client_fd;		    /* -1: not watched */
	const atomic_int *stopping; /* the daemon's stop shuts clients' sides: that is not leaving */
	const char *who;	    /* names the client in log lines */
	struct exchange_sink *sink; /* NULL: answers are only ever taken whole */
};

/* Has r answered by the target over a pooled connection, or by another
 * client's identical read; puts the answer for the client into out. */
enum exchange_result exchange_run(const struct exchange_env *env, const struct exchange_req *r,
				  struct frame_ctx *ctx, struct buf *out);

#endif
