/* One request/response exchange over a borrowed upstream connection, and
 * the check of an idle upstream connection. */
#ifndef TCPMUX_EXCHANGE_H
#define TCPMUX_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cli.h"
#include "codec.h"
#include "pool.h"
#include "readshare.h"

enum exchange_result {
	EXCH_OK,
	EXCH_NO_UPSTREAM,   /* no connection in time, target down, or queue full */
	EXCH_TIMEOUT,       /* the target did not answer in time */
	EXCH_BAD_GATEWAY,   /* the target closed, failed, or answered garbage */
	EXCH_SHUTDOWN,      /* the daemon is stopping */
};

/* What an exchange needs besides the request. */
struct exchange_env {
	struct pool *pool;
	const struct config *cfg;
	struct readshare *share;   /* NULL unless --coalesce or --cache-ttl */
};

/* Sends req (which the call may modify in place and restores, e.g. the
 * Modbus id) to the target over a pooled connection and puts the answer
 * into out. who names the client in log lines. */
enum exchange_result exchange_run(const struct exchange_env *env, const char *who, uint8_t *req,
				  size_t reqlen, struct frame_ctx *ctx, struct buf *out);

/* Checks an idle upstream connection without blocking: whole frames that
 * arrived unasked are logged and dropped. Returns POOL_HEALTHY when it may
 * be used, POOL_RETIRE when it is past --upstream-max-idle or -age, and
 * POOL_BROKEN when it is closed, errored or holds bytes that form no frame. */
int exchange_check_idle(const struct config *cfg, struct pool_slot *s);

/* When the supervisor should look at an idle slot next. */
int64_t exchange_idle_due(const struct config *cfg, const struct pool_slot *s);

#endif
