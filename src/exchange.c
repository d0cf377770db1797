/* One request/response exchange over a borrowed upstream connection:
 * borrow, gap, write, read, give back. What a protocol adds (ids, unit
 * map, RTU, policy, read sharing keys) is the dialect's; this file only
 * calls its hooks. */
#include "config.h"
#include "exchange.h"
#include "log.h"
#include "net.h"
#include "stats.h"
#include "timeutil.h"

#include <errno.h>
#include <string.h>

/* A connection matched by id survives a few unanswered requests (late
 * answers are recognised by id); after this many in a row it is recycled. */
#define MAX_TAGGED_TIMEOUTS 3
/* Bounds the answers to other requests dropped while one is awaited. */
#define MAX_DROPPED_ANSWERS 64

/* Borrows a slot whose connection still works: a slot found dead by the
 * check goes back and the next one is tried. */
static int borrow_checked(const struct exchange_env *env, int64_t deadline, struct pool_slot **out)
{
	/* pool_borrow ends the loop at the deadline; the count is a backstop */
	for (int tries = 0; tries < 10000; tries++) {
		int rc = pool_borrow(env->pool, deadline, out);
		if (rc < 0)
			return rc;
		enum pool_health health = upstream_check_idle(env->upstream, *out);
		if (health == POOL_HEALTHY)
			return 0;
		pool_return(env->pool, *out, health);
	}
	return -ETIMEDOUT;
}

static enum exchange_result borrow_failed(const struct exchange_env *env, const struct exchange_req *r, int rc)
{
	if (rc == -ESHUTDOWN)
		return EXCH_SHUTDOWN;
	if (rc == -EAGAIN) {
		STAT_INC(req_queue_full);
		log_info("%s: refused: %d clients already wait for an upstream connection (--queue-size)", r->who,
			 env->cfg->queue_size);
	} else {
		STAT_INC(req_no_upstream);
		log_info("%s: no upstream connection: %s", r->who,
			 rc == -ENOTCONN ? "the target is down" : "none free in time");
	}
	return EXCH_NO_UPSTREAM;
}

/* Whether the client has left: it reset, or (where the dialect says a
 * half-close means so) shut its side. */
static int client_left(const struct exchange_env *env, const struct exchange_req *r)
{
	if (r->client_fd < 0 || atomic_load(r->stopping))
		return 0;
	int ev = net_peer_state(r->client_fd);
	return (ev & NET_PEER_GONE) || ((ev & NET_PEER_SHUT) && env->dialect->half_close_leaves);
}

/* Reads frames until the awaited answer; answers to other requests (late
 * ones, recognised by id) are dropped. While it waits, a client that
 * leaves ends the wait when the dialect matches by id: its late answer
 * will be recognised and dropped. Returns the answer's length at
 * buf_head(&s->rbuf), -ECONNABORTED (the client left), or an error. */
static ssize_t read_answer(const struct exchange_env *env, const struct exchange_req *r, struct pool_slot *s,
			   const struct dialect_msg *m, struct frame_ctx *ctx, int64_t deadline)
{
	const struct dialect *d = env->dialect;
	int watch = d->ids && r->client_fd >= 0 ? r->client_fd : -1;
	for (int dropped = 0; dropped < MAX_DROPPED_ANSWERS;) {
		ssize_t n;
		if (watch >= 0 && buf_len(&s->rbuf) == 0) {
			int w = net_wait_either(s->fd, watch, d->half_close_leaves, deadline);
			if (w < 0)
				return w;
			if (w == 1 && !client_left(env, r))
				watch = -1; /* the daemon is stopping: finish the exchange */
			else if (w == 1)
				return -ECONNABORTED;
		}
		n = buf_read_frame(&s->rbuf, s->fd, d->response, ctx, watch >= 0 ? time_now_ms() : deadline,
				   watch >= 0 ? time_now_ms() : deadline);
		if (n == -ETIMEDOUT && watch >= 0 && time_left_ms(deadline) > 0)
			continue; /* part of a frame so far: wait for more */
		if (n <= 0 || d->awaited(d, m, buf_head(&s->rbuf), (size_t)n))
			return n;
		log_info("%s: upstream #%d: discarding an answer to another request (a late answer)", r->who, s->id);
		s->timeouts = 0; /* a late answer is an answer: the target is alive */
		log_hex("discarded", buf_head(&s->rbuf), (size_t)n);
		buf_consume(&s->rbuf, (size_t)n);
		dropped++;
	}
	return -EPROTO;
}

/* The longest a request may wait for its answer. */
static int64_t fair_wait_ms(const struct config *cfg)
{
	return cfg->answer_timeout_ms < cfg->timeout_ms ? cfg->answer_timeout_ms : cfg->timeout_ms;
}

/* What becomes of the slot after an answer error n, having waited
 * waited_ms for it; sets *res. */
static enum pool_health answer_failed(const struct exchange_env *env, const struct exchange_req *r,
				      struct pool_slot *s, ssize_t n, int64_t waited_ms, enum exchange_result *res)
{
	if (n == -ECONNABORTED) {
		log_info("%s: left while its answer was awaited; upstream #%d goes back (a late answer is dropped by id)",
			 r->who, s->id);
		*res = EXCH_CLIENT_GONE;
		return POOL_HEALTHY;
	}
	if (n == -ETIMEDOUT) {
		*res = EXCH_TIMEOUT;
		/* Without ids this answer may still come, to the next client:
		 * only a new connection is safe. With ids, a request that came
		 * with little of its deadline left says nothing of the target. */
		int fair = waited_ms * 2 >= fair_wait_ms(env->cfg);
		int keep = env->dialect->ids && (!fair || ++s->timeouts < MAX_TAGGED_TIMEOUTS);
		log_warn("%s: upstream #%d: the target did not answer in time%s", r->who, s->id,
			 keep ? "" : "; reconnecting");
		return keep ? POOL_HEALTHY : POOL_BROKEN;
	}
	*res = EXCH_BAD_GATEWAY;
	if (n == 0 || n == -ECONNRESET)
		log_warn("%s: upstream #%d: the target closed the connection mid-exchange", r->who, s->id);
	else
		log_warn("%s: upstream #%d: bad answer from the target: %s", r->who, s->id, strerror((int)-n));
	return POOL_BROKEN;
}

/* Turns the answer (n bytes at the head of s->rbuf) into the client's. */
static enum pool_health take_answer(const struct exchange_env *env, const struct exchange_req *r,
				    struct pool_slot *s, const struct dialect_msg *m, size_t n,
				    const struct frame_ctx *ctx, struct buf *out, enum exchange_result *res)
{
	const struct dialect *d = env->dialect;
	log_hex("from target", buf_head(&s->rbuf), n);
	int rc = d->restore(d, m, buf_head(&s->rbuf), n, out);
	buf_consume(&s->rbuf, n);
	if (rc < 0) {
		log_warn("%s: upstream #%d: the answer does not fit the request; reconnecting", r->who, s->id);
		*res = EXCH_BAD_GATEWAY;
		return POOL_BROKEN;
	}
	s->timeouts = 0;
	if (!d->ids && !d->self_evident && buf_len(&s->rbuf) > 0) {
		/* More bytes came with the answer than were asked for: without
		 * ids nobody can tell which frame answers this request. */
		log_warn("%s: upstream #%d: %zu bytes beyond the answer; not delivered, reconnecting", r->who, s->id,
			 buf_len(&s->rbuf));
		*res = EXCH_BAD_GATEWAY;
		return POOL_BROKEN;
	}
	*res = EXCH_OK;
	return ctx->close_upstream || s->rbuf.eof ? POOL_BROKEN : POOL_HEALTHY;
}

/* Sends m over s and reads its answer into out. Returns how s goes back. */
static enum pool_health converse(const struct exchange_env *env, const struct exchange_req *r,
				 struct pool_slot *s, struct dialect_msg *m, struct frame_ctx *ctx,
				 struct buf *out, enum exchange_result *res)
{
	log_hex("to target", m->wire, m->wirelen);
	int rc = upstream_send(env->upstream, s, m, r->deadline);
	if (rc < 0) {
		log_warn("%s: upstream #%d: write failed: %s", r->who, s->id, strerror(-rc));
		*res = rc == -ETIMEDOUT ? EXCH_TIMEOUT : EXCH_BAD_GATEWAY;
		return POOL_BROKEN;
	}
	if (m->answerless) {
		*res = env->dialect->restore(env->dialect, m, NULL, 0, out) < 0 ? EXCH_BAD_GATEWAY : EXCH_OK;
		return POOL_HEALTHY;
	}
	/* --answer-timeout caps how long one unanswered request holds the
	 * connection; a serial line adds the time the bytes take on it */
	int64_t sent = time_now_ms(), deadline = sent + env->cfg->answer_timeout_ms + m->line_ms;
	if (deadline > r->deadline)
		deadline = r->deadline;
	ctx->close_upstream = 0;
	ssize_t n = read_answer(env, r, s, m, ctx, deadline);
	if (n > 0 || n == -EPROTO || n == -EMSGSIZE)
		s->carried = 1; /* it answered, if badly: the target is alive */
	if (n > 0)
		return take_answer(env, r, s, m, (size_t)n, ctx, out, res);
	return answer_failed(env, r, s, n, time_now_ms() - sent, res);
}

/* The exchange proper: borrow, gap, write, read, give back. */
static enum exchange_result upstream_exchange(const struct exchange_env *env, const struct exchange_req *r,
					      struct frame_ctx *ctx, struct buf *out)
{
	struct pool_slot *s;
	int rc = borrow_checked(env, r->deadline, &s);
	if (rc < 0)
		return borrow_failed(env, r, rc);
	upstream_gap(env->upstream, s);

	enum exchange_result res = EXCH_CLIENT_GONE;
	enum pool_health health = POOL_HEALTHY;
	if (client_left(env, r)) {
		log_info("%s: left before its request was sent; not sending it", r->who);
	} else {
		struct dialect_msg m = { .req = r->req, .reqlen = r->len };
		env->dialect->prepare(env->dialect, s->next_tag++, &m);
		health = converse(env, r, s, &m, ctx, out, &res);
		s->last_answer_at = time_now_ms();
	}
	pool_return(env->pool, s, health);
	return res;
}

/* Copies a shared answer into out with this client's ids. */
static enum exchange_result deliver_shared(const struct exchange_env *env, const struct exchange_req *r,
					   uint8_t *copy, size_t len, struct buf *out)
{
	env->dialect->readdress(copy, r->req);
	buf_reset(out);
	return buf_append(out, copy, len) < 0 ? EXCH_BAD_GATEWAY : EXCH_OK;
}

/* The leader of identical reads (or a read that goes alone): asks the
 * target and publishes or caches the answer. */
static enum exchange_result lead_read(const struct exchange_env *env, const struct exchange_req *r,
				      struct frame_ctx *ctx, struct buf *out, const struct readshare_key *k,
				      struct readshare_flight *f)
{
	struct readshare *rs = env->share;
	unsigned gen = readshare_gen(rs, k->unit);
	enum exchange_result res = upstream_exchange(env, r, ctx, out);
	int good = res == EXCH_OK && env->dialect->shareable(buf_head(out), buf_len(out));
	if (f != NULL) {
		readshare_finish(rs, f, res, res == EXCH_OK ? buf_head(out) : NULL, res == EXCH_OK ? buf_len(out) : 0,
				 good, time_now_ms());
		readshare_leave(rs, f);
	} else if (good) {
		readshare_store(rs, k, gen, buf_head(out), buf_len(out), time_now_ms());
	}
	return res;
}

/* A read that another client's identical read, or the cache, may answer. */
static enum exchange_result shared_read(const struct exchange_env *env, const struct exchange_req *r,
					struct frame_ctx *ctx, struct buf *out, const struct readshare_key *k)
{
	struct readshare *rs = env->share;
	uint8_t copy[READSHARE_ANSWER_MAX];
	size_t len = readshare_cache_get(rs, k, time_now_ms(), copy);
	if (len > 0) {
		STAT_INC(cached);
		return deliver_shared(env, r, copy, len, out);
	}
	int leader = 0;
	struct readshare_flight *f = readshare_join(rs, k, r->deadline, &leader);
	if (f == NULL || leader)
		return lead_read(env, r, ctx, out, k, f);
	int res = readshare_wait(rs, f, r->deadline, copy, &len);
	readshare_leave(rs, f);
	if (res == -ETIMEDOUT) {
		log_info("%s: the identical read it waited for outlasted its leader's deadline", r->who);
		return EXCH_TIMEOUT;
	}
	if (res != EXCH_OK)
		return (enum exchange_result)res;
	STAT_INC(coalesced);
	return deliver_shared(env, r, copy, len, out);
}

enum exchange_result exchange_run(const struct exchange_env *env, const struct exchange_req *r,
				  struct frame_ctx *ctx, struct buf *out)
{
	if (env->share == NULL)
		return upstream_exchange(env, r, ctx, out);
	struct readshare_key k;
	switch (env->dialect->share_key(env->dialect, r->req, r->len, &k)) {
	case DIALECT_SHARE_READ:
		return shared_read(env, r, ctx, out, &k);
	case DIALECT_SHARE_WRITE: {
		/* before: no cached answer hides it; after: no read that
		 * overtook it on another connection gets cached */
		readshare_write(env->share, k.unit);
		enum exchange_result res = upstream_exchange(env, r, ctx, out);
		readshare_write(env->share, k.unit);
		return res;
	}
	default:
		return upstream_exchange(env, r, ctx, out);
	}
}
