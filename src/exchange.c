/* One request/response exchange over a borrowed upstream connection, and
 * the check of an idle upstream connection. */
#include "config.h"
#include "exchange.h"
#include "log.h"
#include "modbus.h"
#include "net.h"
#include "stats.h"
#include "timeutil.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

/* A tagged connection survives a few unanswered requests (late answers are
 * recognised by id); after this many in a row it is recycled. */
#define MAX_TAGGED_TIMEOUTS 3
/* Bounds the frames drained from one idle connection in one check. */
#define MAX_STRAY_FRAMES 64

int exchange_check_idle(const struct config *cfg, struct pool_slot *s)
{
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN | POLLRDHUP };
	if (poll(&pfd, 1, 0) == 0 && buf_len(&s->rbuf) == 0)
		return 1;
	if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) {
		log_info("upstream #%d: connection closed by the target while idle", s->id);
		return 0;
	}
	struct frame_ctx ctx = { .max_frame = cfg->max_frame };
	for (int i = 0; i < MAX_STRAY_FRAMES; i++) {
		ssize_t n = buf_read_frame(&s->rbuf, s->fd, cfg->codec->response, &ctx, 0, 0);
		if (n > 0) {
			log_info("upstream #%d: discarding a %zd-byte frame nobody asked for (late or unsolicited)",
				 s->id, n);
			log_hex("discarded", buf_head(&s->rbuf), (size_t)n);
			buf_consume(&s->rbuf, (size_t)n);
			continue;
		}
		if (n == -ETIMEDOUT && buf_len(&s->rbuf) == 0 && !(pfd.revents & POLLRDHUP))
			return 1;
		if (n == 0 || n == -ETIMEDOUT || n == -ECONNRESET)
			log_info("upstream #%d: closed by the target while idle", s->id);
		else
			log_info("upstream #%d: idle connection holds bytes that form no frame (%s)", s->id,
				 strerror((int)-n));
		return 0;
	}
	return 0;
}

/* Borrows a slot whose connection still works: a slot found dead by the
 * check goes back as broken and the next one is tried. */
static int borrow_checked(struct pool *pool, const struct config *cfg, int64_t deadline,
			  struct pool_slot **out)
{
	for (int tries = 0; tries <= pool->nslots; tries++) {
		int rc = pool_borrow(pool, deadline, out);
		if (rc < 0)
			return rc;
		if (exchange_check_idle(cfg, *out))
			return 0;
		pool_return(pool, *out, 0);
	}
	return -ETIMEDOUT;
}

/* Reads the answer to the request sent with id tid (tagged framings) or
 * the next answer (untagged). Returns its length at buf_head(&s->rbuf). */
static ssize_t read_answer(const struct config *cfg, struct pool_slot *s, struct frame_ctx *ctx,
			   int tagged, uint16_t tid, int64_t deadline, const char *who)
{
	for (;;) {
		ssize_t n = buf_read_frame(&s->rbuf, s->fd, cfg->codec->response, ctx, deadline, deadline);
		if (n <= 0 || !tagged || modbus_tid(buf_head(&s->rbuf)) == tid)
			return n;
		log_info("%s: upstream #%d: discarding an answer with id %u (waiting for %u): a late answer",
			 who, s->id, modbus_tid(buf_head(&s->rbuf)), tid);
		buf_consume(&s->rbuf, (size_t)n);
	}
}

enum exchange_result exchange_run(struct pool *pool, const struct config *cfg, const char *who,
				  uint8_t *req, size_t reqlen, struct frame_ctx *ctx, struct buf *out)
{
	const int64_t deadline = time_now_ms() + cfg->timeout_ms;
	const int tagged = cfg->codec->tagged;
	struct pool_slot *s;

	int rc = borrow_checked(pool, cfg, deadline, &s);
	if (rc < 0) {
		if (rc == -ESHUTDOWN)
			return EXCH_SHUTDOWN;
		if (rc == -EAGAIN) {
			STAT_INC(req_queue_full);
			log_info("%s: refused: %d clients already wait for an upstream connection", who,
				 cfg->queue_size);
		} else {
			STAT_INC(req_no_upstream);
			log_info("%s: no upstream connection: %s", who,
				 rc == -ENOTCONN ? "the target is down" : "none free in time");
		}
		return EXCH_NO_UPSTREAM;
	}

	uint16_t client_tid = 0, tid = 0;
	if (tagged) {
		client_tid = modbus_tid(req);
		tid = modbus_ids_take(&s->ids);
		modbus_set_tid(req, tid);
	}
	log_hex("request", req, reqlen);
	rc = net_write_all(s->fd, req, reqlen, deadline);
	if (tagged)
		modbus_set_tid(req, client_tid);

	enum exchange_result res = EXCH_OK;
	int healthy = 1;
	if (rc < 0) {
		log_warn("%s: upstream #%d: write failed: %s", who, s->id, strerror(-rc));
		res = rc == -ETIMEDOUT ? EXCH_TIMEOUT : EXCH_BAD_GATEWAY;
		healthy = 0;
	} else {
		ctx->close_upstream = 0;
		ssize_t n = read_answer(cfg, s, ctx, tagged, tid, deadline, who);
		if (n > 0) {
			log_hex("response", buf_head(&s->rbuf), (size_t)n);
			buf_reset(out);
			if (buf_append(out, buf_head(&s->rbuf), (size_t)n) < 0) {
				res = EXCH_BAD_GATEWAY;
				healthy = 0;
			} else {
				if (tagged)
					modbus_set_tid(out->data + out->start, client_tid);
				buf_consume(&s->rbuf, (size_t)n);
				s->timeouts = 0;
				healthy = !ctx->close_upstream && !s->rbuf.eof;
			}
		} else if (n == -ETIMEDOUT) {
			res = EXCH_TIMEOUT;
			/* An untagged connection may still deliver this answer later, to
			 * the next client: only a new connection is safe. */
			healthy = tagged && ++s->timeouts < MAX_TAGGED_TIMEOUTS;
			log_warn("%s: upstream #%d: the target did not answer within %lld ms%s", who, s->id,
				 (long long)cfg->timeout_ms, healthy ? "" : "; reconnecting");
		} else {
			res = EXCH_BAD_GATEWAY;
			healthy = 0;
			if (n == 0 || n == -ECONNRESET)
				log_warn("%s: upstream #%d: the target closed the connection mid-exchange", who, s->id);
			else
				log_warn("%s: upstream #%d: bad answer from the target: %s", who, s->id,
					 strerror((int)-n));
		}
	}
	pool_return(pool, s, healthy);
	return res;
}
