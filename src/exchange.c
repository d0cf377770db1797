/* One request/response exchange over a borrowed upstream connection, and
 * the check of an idle upstream connection. */
#include "config.h"
#include "exchange.h"
#include "log.h"
#include "modbus.h"
#include "modbus_rtu.h"
#include "net.h"
#include "stats.h"
#include "timeutil.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

/* A connection matched by id survives a few unanswered requests (late
 * answers are recognised by id); after this many in a row it is recycled. */
#define MAX_TAGGED_TIMEOUTS 3
/* Bounds the frames drained from one idle connection in one check. */
#define MAX_STRAY_FRAMES 64
/* RTU needs 3.5 character times of silence between frames: 4 ms at 9600 baud. */
#define RTU_MIN_GAP_MS 5

static frame_fn upstream_framer(const struct config *cfg)
{
	return cfg->modbus_rtu ? rtu_response_frame : cfg->codec->response;
}

/* Answers are matched to requests by transaction id (else: in order). */
static int match_by_id(const struct config *cfg)
{
	return cfg->codec->tagged && cfg->modbus_tid_check && !cfg->modbus_rtu;
}

/* When the connection last carried an exchange (or opened). Health
 * checks do not count: they send nothing. */
static int64_t idle_since(const struct pool_slot *s)
{
	return s->last_answer_at > s->opened_at ? s->last_answer_at : s->opened_at;
}

int64_t exchange_idle_due(const struct config *cfg, const struct pool_slot *s)
{
	int64_t due = INT64_MAX;
	if (cfg->health_ms > 0)
		due = s->last_used + cfg->health_ms;
	if (cfg->upstream_max_idle_ms > 0 && idle_since(s) + cfg->upstream_max_idle_ms < due)
		due = idle_since(s) + cfg->upstream_max_idle_ms;
	if (cfg->upstream_max_age_ms > 0 && s->opened_at + cfg->upstream_max_age_ms < due)
		due = s->opened_at + cfg->upstream_max_age_ms;
	return due;
}

int exchange_check_idle(const struct config *cfg, struct pool_slot *s)
{
	int64_t now = time_now_ms();
	if (cfg->upstream_max_idle_ms > 0 && now - idle_since(s) >= cfg->upstream_max_idle_ms) {
		log_info("upstream #%d: idle for %lld ms (--upstream-max-idle), reopening", s->id,
			 (long long)(now - idle_since(s)));
		return POOL_RETIRE;
	}
	if (cfg->upstream_max_age_ms > 0 && now - s->opened_at >= cfg->upstream_max_age_ms) {
		log_info("upstream #%d: open for %lld ms (--upstream-max-age), reopening", s->id,
			 (long long)(now - s->opened_at));
		return POOL_RETIRE;
	}
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN | POLLRDHUP };
	if (poll(&pfd, 1, 0) == 0 && buf_len(&s->rbuf) == 0)
		return POOL_HEALTHY;
	if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) {
		log_info("upstream #%d: connection closed by the target while idle", s->id);
		return POOL_BROKEN;
	}
	struct frame_ctx ctx = { .max_frame = cfg->max_frame };
	for (int i = 0; i < MAX_STRAY_FRAMES; i++) {
		ssize_t n = buf_read_frame(&s->rbuf, s->fd, upstream_framer(cfg), &ctx, 0, 0);
		if (n > 0) {
			log_info("upstream #%d: discarding a %zd-byte frame nobody asked for (late or unsolicited)",
				 s->id, n);
			log_hex("discarded", buf_head(&s->rbuf), (size_t)n);
			buf_consume(&s->rbuf, (size_t)n);
			continue;
		}
		if (n == -ETIMEDOUT && buf_len(&s->rbuf) == 0 && !(pfd.revents & POLLRDHUP))
			return POOL_HEALTHY;
		if (n == -ETIMEDOUT && !(pfd.revents & POLLRDHUP))
			log_info("upstream #%d: idle connection holds part of a frame; reopening", s->id);
		else if (n == 0 || n == -ETIMEDOUT || n == -ECONNRESET)
			log_info("upstream #%d: closed by the target while idle", s->id);
		else
			log_info("upstream #%d: idle connection holds bytes that form no frame (%s)", s->id,
				 strerror((int)-n));
		return POOL_BROKEN;
	}
	return POOL_BROKEN;
}

/* Borrows a slot whose connection still works: a slot found dead by the
 * check goes back as broken and the next one is tried. */
static int borrow_checked(struct pool *pool, const struct config *cfg, int64_t deadline,
			  struct pool_slot **out)
{
	/* pool_borrow ends the loop at the deadline; the count is a backstop */
	for (int tries = 0; tries < 10000; tries++) {
		int rc = pool_borrow(pool, deadline, out);
		if (rc < 0)
			return rc;
		int health = exchange_check_idle(cfg, *out);
		if (health == POOL_HEALTHY)
			return 0;
		pool_return(pool, *out, health);
	}
	return -ETIMEDOUT;
}

/* Reads the answer to the request sent with id tid (when matching by id)
 * or the next answer. Returns its length at buf_head(&s->rbuf). */
static ssize_t read_answer(const struct config *cfg, struct pool_slot *s, struct frame_ctx *ctx, uint16_t tid,
			   int64_t deadline, const char *who)
{
	for (;;) {
		ssize_t n = buf_read_frame(&s->rbuf, s->fd, upstream_framer(cfg), ctx, deadline, deadline);
		if (n <= 0 || !match_by_id(cfg) || modbus_tid(buf_head(&s->rbuf)) == tid)
			return n;
		log_info("%s: upstream #%d: discarding an answer with id %u (waiting for %u): a late answer",
			 who, s->id, modbus_tid(buf_head(&s->rbuf)), tid);
		buf_consume(&s->rbuf, (size_t)n);
	}
}

/* Waits out --request-gap (and RTU's silence) since the slot's last answer. */
static void request_gap(const struct config *cfg, const struct pool_slot *s)
{
	int64_t gap = cfg->request_gap_ms;
	if (cfg->modbus_rtu && gap < RTU_MIN_GAP_MS)
		gap = RTU_MIN_GAP_MS;
	if (gap <= 0 || s->last_answer_at == 0)
		return;
	int left;
	while ((left = time_left_ms(s->last_answer_at + gap)) > 0)
		poll(NULL, 0, left);
}

/* The wire form of a Modbus request for the target: unit mapped, our own
 * transaction id, or RTU. Returns the length in wire (which may be req), or
 * < 0 when RTU refuses it (a backstop: modbus_admit refuses it first; the
 * caller then treats it as a failed write). */
static ssize_t modbus_outgoing(const struct config *cfg, struct pool_slot *s, uint8_t *req, size_t reqlen,
			      uint8_t saved[7], uint8_t *rtu, const uint8_t **wire, uint16_t *tid)
{
	int id = -1;
	if (match_by_id(cfg)) {
		*tid = modbus_ids_take(&s->ids);
		id = *tid;
	}
	modbus_map_request(req, cfg->unit_map, id, saved);
	if (cfg->modbus_rtu) {
		*wire = rtu;
		return rtu_from_mbap(req, reqlen, rtu);
	}
	*wire = req;
	return (ssize_t)reqlen;
}

/* Checks a Modbus answer against its request (function and, for RTU, the
 * unit) and puts it into out in MBAP form with the client's id and unit.
 * Returns 0 or -EPROTO. */
static int modbus_incoming(const struct config *cfg, const uint8_t *ans, size_t n, const uint8_t *req,
			   uint8_t dev_unit, struct buf *out)
{
	uint8_t mbap[MODBUS_MAX_ADU];
	if (cfg->modbus_rtu) {
		if (ans[0] != dev_unit)
			return -EPROTO;
		n = rtu_to_mbap(ans, n, 0, mbap);
		ans = mbap;
	}
	if (!modbus_answer_fits(req, ans, n))
		return -EPROTO;
	buf_reset(out);
	if (buf_append(out, ans, n) < 0)
		return -EPROTO;
	modbus_answer_for(out->data + out->start, req);
	return 0;
}

/* The exchange proper: borrow, write, read, give back. */
static enum exchange_result upstream_exchange(const struct exchange_env *env, const char *who, uint8_t *req,
					      size_t reqlen, struct frame_ctx *ctx, struct buf *out)
{
	const struct config *cfg = env->cfg;
	const int modbus = cfg->codec->tagged;
	struct pool_slot *s;

	/* --timeout bounds the wait for a connection, then the target's answer */
	int rc = borrow_checked(env->pool, cfg, time_now_ms() + cfg->timeout_ms, &s);
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

	request_gap(cfg, s);
	const int64_t deadline = time_now_ms() + cfg->timeout_ms;
	uint8_t saved[7], rtu[RTU_MAX_ADU];
	const uint8_t *wire = req;
	ssize_t wlen = (ssize_t)reqlen;
	uint16_t tid = 0;
	if (modbus)
		wlen = modbus_outgoing(cfg, s, req, reqlen, saved, rtu, &wire, &tid);
	if (wlen > 0)
		log_hex("to target", wire, (size_t)wlen);
	rc = wlen < 0 ? (int)wlen : net_write_all(s->fd, wire, (size_t)wlen, deadline);
	uint8_t dev_unit = modbus ? req[6] : 0;
	if (modbus)
		modbus_restore_request(req, saved);

	enum exchange_result res = EXCH_OK;
	int healthy = 1;
	if (rc < 0) {
		log_warn("%s: upstream #%d: write failed: %s", who, s->id, strerror(-rc));
		res = rc == -ETIMEDOUT ? EXCH_TIMEOUT : EXCH_BAD_GATEWAY;
		healthy = 0;
	} else {
		ctx->close_upstream = 0;
		ssize_t n = read_answer(cfg, s, ctx, tid, deadline, who);
		if (n > 0 || n == -EPROTO || n == -EMSGSIZE)
			s->carried = 1; /* it answered, if badly: the target is alive */
		if (n > 0) {
			const uint8_t *ans = buf_head(&s->rbuf);
			log_hex("from target", ans, (size_t)n);
			if (modbus)
				rc = modbus_incoming(cfg, ans, (size_t)n, req, dev_unit, out);
			else {
				buf_reset(out);
				rc = buf_append(out, ans, (size_t)n) < 0 ? -EPROTO : 0;
			}
			buf_consume(&s->rbuf, (size_t)n);
			if (rc < 0) {
				log_warn("%s: upstream #%d: the answer does not fit the request; reconnecting", who, s->id);
				res = EXCH_BAD_GATEWAY;
				healthy = 0;
			} else {
				s->timeouts = 0;
				healthy = !ctx->close_upstream && !s->rbuf.eof;
			}
		} else if (n == -ETIMEDOUT) {
			res = EXCH_TIMEOUT;
			/* Without ids this answer may still come, to the next client:
			 * only a new connection is safe. */
			healthy = match_by_id(cfg) && ++s->timeouts < MAX_TAGGED_TIMEOUTS;
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
	s->last_answer_at = time_now_ms();
	pool_return(env->pool, s, healthy ? POOL_HEALTHY : POOL_BROKEN);
	return res;
}

/* A read that another client's identical read, or the cache, may answer. */
static enum exchange_result shared_read(const struct exchange_env *env, const char *who, uint8_t *req,
					size_t reqlen, struct frame_ctx *ctx, struct buf *out,
					const struct readshare_key *k)
{
	struct readshare *rs = env->share;
	uint8_t copy[MODBUS_MAX_ADU];
	size_t len = readshare_cache_get(rs, k, time_now_ms(), copy);
	if (len > 0) {
		STAT_INC(cached);
	} else {
		int leader = 0;
		struct readshare_flight *f = readshare_join(rs, k, &leader);
		if (f == NULL || leader) {
			unsigned gen = readshare_gen(rs, k->unit);
			enum exchange_result r = upstream_exchange(env, who, req, reqlen, ctx, out);
			int good = r == EXCH_OK && !(modbus_function(buf_head(out)) & 0x80);
			if (f != NULL) {
				readshare_finish(rs, f, r, r == EXCH_OK ? buf_head(out) : NULL,
						 r == EXCH_OK ? buf_len(out) : 0, good, time_now_ms());
				readshare_leave(rs, f);
			} else if (good) {
				readshare_store(rs, k, gen, buf_head(out), buf_len(out), time_now_ms());
			}
			return r;
		}
		int r = readshare_wait(rs, f, time_now_ms() + env->cfg->timeout_ms, copy, &len);
		readshare_leave(rs, f);
		if (r == -ETIMEDOUT) {
			log_info("%s: the identical read it waited for took longer than --timeout", who);
			return EXCH_TIMEOUT;
		}
		if (r != EXCH_OK)
			return (enum exchange_result)r;
		STAT_INC(coalesced);
	}
	/* the copy carries another client's transaction id and unit id */
	buf_reset(out);
	if (buf_append(out, copy, len) < 0)
		return EXCH_BAD_GATEWAY;
	modbus_answer_for(out->data + out->start, req);
	return EXCH_OK;
}

enum exchange_result exchange_run(const struct exchange_env *env, const char *who, uint8_t *req, size_t reqlen,
				  struct frame_ctx *ctx, struct buf *out)
{
	if (env->share != NULL) {
		uint8_t dev_unit = env->cfg->unit_map[modbus_unit(req)];
		struct readshare_key k;
		if (readshare_key_of(req, reqlen, dev_unit, &k))
			return shared_read(env, who, req, reqlen, ctx, out, &k);
		if (readshare_is_write(req, reqlen)) {
			/* before: no cached answer hides it; after: no read that
			 * overtook it on another connection gets cached */
			readshare_write(env->share, dev_unit);
			enum exchange_result r = upstream_exchange(env, who, req, reqlen, ctx, out);
			readshare_write(env->share, dev_unit);
			return r;
		}
	}
	return upstream_exchange(env, who, req, reqlen, ctx, out);
}
