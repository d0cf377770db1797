/* One request/response exchange over a borrowed upstream connection:
 * borrow, gap, write, read, give back. What a protocol adds (ids, unit
 * map, RTU, policy, read sharing keys) is the dialect's; this file only
 * calls its hooks.
 *
 * The uncontended path costs four system calls a request (the client
 * thread's read of the request and write of the answer, plus one write and
 * one read upstream): the waits are bounded by socket receive timeouts, not
 * by a poll() before each read, and a connection that carried an answer a
 * moment ago is not checked again before a read is sent over it. Under
 * contention the thread that gives a connection back puts the first
 * waiter's request on the wire before it wakes that waiter.
 *
 * An answer that is not whole after a read may stream (when the dialect
 * has settled/shift and the caller a sink): what the framer has settled
 * goes to the client at once and leaves the slot's buffer, so an answer
 * of any size passes through one read's worth of memory. The connection
 * is held until the answer's end; every wait for more of it is bounded as
 * the wait for the answer was (--answer-timeout within --timeout), every
 * write to the client by --timeout. Once bytes have reached the client no
 * error answer can follow: a failure then closes both connections
 * (EXCH_CUT). */
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
/* The most of an answer read away after its client left before the
 * upstream connection is closed instead. */
#define DRAIN_MAX (256 * 1024)
/* Bounds the answers to other requests dropped while one is awaited. */
#define MAX_DROPPED_ANSWERS 64
/* A connection that answered this recently is not checked before a request
 * that may safely be sent again (a read): should the target have closed it
 * meanwhile, the read goes again, once, over a checked connection. */
#define FRESH_MS 1000

/* One request on its way to the target. */
struct pending {
	const struct exchange_env *env;
	const struct exchange_req *r;
	struct dialect_msg m;
	int idempotent;	  /* it may be sent twice, and its answer is known by id */
	int sent;	  /* on the wire (rc = the write's result) */
	int gone;	  /* its client left before it was sent */
	int unsendable;	  /* the dialect could not put it on the wire */
	int unchecked;	  /* sent over a connection not checked since its last answer */
	int streaming;	  /* the client may have part of the answer (the sink was called) */
	int sink_rc;	  /* why the sink failed (-errno), else 0 */
	size_t discarded; /* bytes read away since the sink failed */
	int rc;
	int64_t sent_at;
};

/* Whether the client has left: it reset, or (where the dialect says a
 * half-close means so) shut its side. */
static int client_left(const struct exchange_env *env, const struct exchange_req *r)
{
	if (r->client_fd < 0 || atomic_load(r->stopping))
		return 0;
	int ev = net_peer_state(r->client_fd);
	return (ev & NET_PEER_GONE) || ((ev & NET_PEER_SHUT) && env->dialect->half_close_leaves);
}

/* Puts p's request on the wire over s; a client that left while it waited
 * for s (waited) is not sent for. */
static void send_pending(struct pending *p, struct pool_slot *s, int waited)
{
	const struct dialect *d = p->env->dialect;
	if (waited && client_left(p->env, p->r)) {
		p->gone = 1;
		return;
	}
	p->m = (struct dialect_msg){ .req = p->r->req, .reqlen = p->r->len };
	if (d->prepare(d, s->next_tag++, &p->m) < 0) {
		p->unsendable = 1;
		return;
	}
	log_hex("to target", p->m.wire, p->m.wirelen);
	p->rc = upstream_send(p->env->upstream, s, &p->m, p->r->deadline);
	p->sent = 1;
	p->sent_at = time_now_ms();
}

/* The hand-off: the previous holder of s sends our request at once, when
 * nothing must come between (no gap, no leftover bytes to look at) and the
 * request may go again should the connection turn out dead. */
static void presend(void *arg, struct pool_slot *s)
{
	struct pending *p = arg;
	if (!p->idempotent || !upstream_gapless(p->env->upstream) || buf_len(&s->rbuf) > 0 ||
	    upstream_past_age(p->env->upstream, s))
		return; /* the waiter looks at the connection itself */
	p->unchecked = 1;
	send_pending(p, s, 1);
}

/* Borrows a slot whose connection still works: a slot found dead by the
 * check goes back and the next one is tried. *waited says whether it queued. */
static int borrow_checked(struct pending *p, int recheck, struct pool_slot **out, int *waited)
{
	const struct exchange_env *env = p->env;
	struct pool_handoff h = { .fn = presend, .arg = p };
	/* pool_borrow ends the loop at the deadline; the count is a backstop */
	for (int tries = 0; tries < 10000; tries++) {
		int rc = pool_borrow_ex(env->pool, p->r->deadline, recheck ? NULL : &h, out);
		if (rc < 0)
			return rc;
		*waited = h.waited;
		struct pool_slot *s = *out;
		if (p->sent || p->gone || p->unsendable)
			return 0;
		int fresh = !recheck && p->idempotent && buf_len(&s->rbuf) == 0 && s->last_answer_at != 0 &&
			    time_now_ms() - s->last_answer_at < FRESH_MS;
		enum pool_health health =
			fresh ? upstream_check_age(env->upstream, s) : upstream_check_idle(env->upstream, s);
		p->unchecked = fresh;
		if (health == POOL_HEALTHY)
			return 0;
		pool_return(env->pool, s, health);
	}
	return -ETIMEDOUT;
}

static enum exchange_result borrow_failed(const struct exchange_env *env, const struct exchange_req *r,
					  int rc)
{
	if (rc == -ESHUTDOWN)
		return EXCH_SHUTDOWN;
	if (rc == -EAGAIN) {
		STAT_INC(req_queue_full);
		log_info("%s: refused: %d clients already wait for an upstream connection (--queue-size)",
			 r->who, env->cfg->queue_size);
	} else {
		STAT_INC(req_no_upstream);
		log_info("%s: no upstream connection: %s", r->who,
			 rc == -ENOTCONN ? "the target is down" : "none free in time");
	}
	return EXCH_NO_UPSTREAM;
}

/* Reads more of the answer into s->rbuf: first one blocking read bounded
 * by the connection's own receive timeout (the common, fast answer costs
 * one system call), then, for a slow answer, polls until the deadline,
 * watching the client when the dialect lets a departed client's answer be
 * dropped by id. Returns bytes read, 0 at end of stream, -ECONNABORTED
 * (the client left) or -errno. */
static ssize_t more_answer(const struct pending *p, struct pool_slot *s, int *watch, int *blocked,
			   int64_t deadline)
{
	const struct exchange_env *env = p->env;
	if (!*blocked && env->upstream->timed_recv && time_left_ms(deadline) > UPSTREAM_WATCH_MS) {
		*blocked = 1;
		ssize_t k = buf_fill(&s->rbuf, s->fd, BUF_SOCKET_TIMEOUT);
		if (k != -ETIMEDOUT)
			return k;
	}
	if (*watch >= 0) {
		int w = net_wait_either(s->fd, *watch, env->dialect->half_close_leaves, deadline);
		if (w < 0)
			return w;
		if (w == 1 && client_left(env, p->r))
			return -ECONNABORTED;
		if (w == 1)
			*watch = -1; /* the daemon is stopping: finish the exchange */
		else
			return buf_fill(&s->rbuf, s->fd, time_now_ms());
	}
	return buf_fill(&s->rbuf, s->fd, deadline);
}

/* The longest a request may wait for its answer. */
static int64_t fair_wait_ms(const struct config *cfg)
{
	return cfg->answer_timeout_ms < cfg->timeout_ms ? cfg->answer_timeout_ms : cfg->timeout_ms;
}

/* Gives n bytes of the answer to the client. Returns 0, or -ECANCELED
 * when the client could not take them (p->sink_rc says why). */
static int sink_forward(struct pending *p, const uint8_t *bytes, size_t n)
{
	struct exchange_sink *k = p->r->sink;
	p->streaming = 1;
	int rc = p->sink_rc == 0 ? k->forward(k, bytes, n) : 0;
	if (rc < 0)
		p->sink_rc = rc;
	if (p->sink_rc == 0) {
		k->forwarded += n;
		return 0;
	}
	/* The client has gone: the rest of the answer is read away, so the
	 * upstream connection stays in step, unless that is a lot to read. */
	p->discarded += n;
	return p->discarded > DRAIN_MAX ? -ECANCELED : 0;
}

/* Streams what the framer has settled of an answer still coming: it goes
 * to the client and leaves the buffer. Returns the bytes forwarded (0:
 * none yet, e.g. the head is not whole) or -ECANCELED. */
static ssize_t forward_settled(struct pending *p, struct pool_slot *s, struct frame_ctx *ctx)
{
	const struct dialect *d = p->env->dialect;
	size_t k = d->settled(ctx, buf_len(&s->rbuf));
	if (k == 0)
		return 0;
	log_hex("from target (streamed)", buf_head(&s->rbuf), k);
	if (sink_forward(p, buf_head(&s->rbuf), k) < 0)
		return -ECANCELED;
	buf_consume(&s->rbuf, k);
	d->shift(ctx, k);
	return (ssize_t)k;
}

/* Reads frames until the awaited answer; answers to other requests (late
 * ones, recognised by id) are dropped. Returns the answer's length (or,
 * streaming, what is left of it) at buf_head(&s->rbuf), 0 (closed between
 * frames), -ECONNABORTED (the client left), -ECANCELED (the client could
 * not take the streamed answer), or an error. */
static ssize_t read_answer(struct pending *p, struct pool_slot *s, struct frame_ctx *ctx, int64_t deadline)
{
	const struct dialect *d = p->env->dialect;
	int watch = d->ids && p->r->client_fd >= 0 ? p->r->client_fd : -1, blocked = 0;
	for (int dropped = 0; dropped < MAX_DROPPED_ANSWERS;) {
		struct buf *b = &s->rbuf;
		ssize_t n = buf_len(b) > 0 ? d->response(ctx, buf_head(b), buf_len(b), b->eof) : 0;
		if (n == 0 && b->eof) {
			codec_restart(ctx);
			return buf_len(b) == 0 ? 0 : -ECONNRESET;
		}
		if (n == 0) {
			ssize_t k = ctx->stream ? forward_settled(p, s, ctx) : 0;
			if (k > 0) {
				/* the target is answering: each wait for more is
				 * bounded on its own (as the wait for the answer
				 * was), not by the request's deadline */
				deadline = time_now_ms() + fair_wait_ms(p->env->cfg);
				blocked = 0;
			}
			if (k >= 0)
				k = more_answer(p, s, &watch, &blocked, deadline);
			if (k < 0) {
				codec_restart(ctx); /* the frame is given up: the ctx frames the next one */
				return k;
			}
			continue;
		}
		if (n < 0 || d->awaited(d, &p->m, buf_head(b), (size_t)n))
			return n;
		log_info("%s: upstream #%d: discarding an answer to another request (a late answer)",
			 p->r->who, s->id);
		log_hex("discarded", buf_head(b), (size_t)n);
		buf_consume(b, (size_t)n);
		s->timeouts = 0; /* a late answer is an answer: the target is alive */
		dropped++;
	}
	return -EPROTO;
}

/* What becomes of the slot after an answer error n, having waited
 * waited_ms for it; sets *res. */
static enum pool_health answer_failed(const struct pending *p, struct pool_slot *s, ssize_t n,
				      int64_t waited_ms, enum exchange_result *res)
{
	const struct exchange_req *r = p->r;
	if (n == -ECONNABORTED) {
		log_info("%s: left while its answer was awaited; upstream #%d goes back (a late answer is "
			 "dropped by id)",
			 r->who, s->id);
		*res = EXCH_CLIENT_GONE;
		return POOL_HEALTHY;
	}
	if (n == -ETIMEDOUT) {
		*res = EXCH_TIMEOUT;
		/* Without ids this answer may still come, to the next client:
		 * only a new connection is safe. With ids, a request that came
		 * with little of its deadline left says nothing of the target. */
		int fair = waited_ms * 2 >= fair_wait_ms(p->env->cfg);
		int keep = p->env->dialect->ids && (!fair || ++s->timeouts < MAX_TAGGED_TIMEOUTS);
		log_warn("%s: upstream #%d: the target did not answer in time%s", r->who, s->id,
			 keep ? "" : "; reconnecting");
		return keep ? POOL_HEALTHY : POOL_BROKEN;
	}
	*res = EXCH_BAD_GATEWAY;
	if (n == 0 || n == -ECONNRESET)
		log_warn("%s: upstream #%d: the target closed the connection mid-exchange", r->who, s->id);
	else
		log_warn("%s: upstream #%d: bad answer from the target: %s", r->who, s->id,
			 strerror((int)-n));
	return POOL_BROKEN;
}

/* A streamed answer that stopped before its end (n: read_answer's
 * result): the client has part of it and can only be closed; the upstream
 * connection is out of step. */
static enum pool_health stream_failed(const struct pending *p, const struct pool_slot *s, ssize_t n,
				      enum exchange_result *res)
{
	const struct exchange_req *r = p->r;
	size_t sent = r->sink->forwarded;
	*res = EXCH_CUT;
	if (n == -ECANCELED) {
		log_info("%s: did not take the answer (%s) after %zu bytes; closing it and upstream #%d",
			 r->who, strerror(-p->sink_rc), sent, s->id);
		return POOL_BROKEN;
	}
	if (n == -ETIMEDOUT)
		STAT_INC(req_timeout);
	else
		STAT_INC(req_bad_gateway);
	log_warn("%s: upstream #%d: the answer stopped after %zu bytes had reached the client (%s); closing "
		 "both",
		 r->who, s->id, sent,
		 n == 0 || n == -ECONNRESET ? "the target closed the connection" : strerror((int)-n));
	return POOL_BROKEN;
}

/* Turns the answer (n bytes at the head of s->rbuf) into the client's; the
 * end of a streamed one goes to the client at once. */
static enum pool_health take_answer(struct pending *p, struct pool_slot *s, size_t n,
				    const struct frame_ctx *ctx, struct buf *out, enum exchange_result *res)
{
	const struct dialect *d = p->env->dialect;
	log_hex("from target", buf_head(&s->rbuf), n);
	int rc = 0;
	if (p->streaming) {
		buf_reset(out);
		rc = sink_forward(p, buf_head(&s->rbuf), n);
	} else {
		rc = d->restore(d, &p->m, buf_head(&s->rbuf), n, out);
	}
	buf_consume(&s->rbuf, n);
	if (p->sink_rc != 0) {
		/* the client left during the answer, which was read whole: the
		 * upstream connection is in step and stays */
		log_info("%s: did not take the answer (%s) after %zu bytes; closing it", p->r->who,
			 strerror(-p->sink_rc), p->r->sink->forwarded);
		*res = EXCH_CUT;
		return ctx->close_upstream || s->rbuf.eof || buf_len(&s->rbuf) > 0 ? POOL_BROKEN
										   : POOL_HEALTHY;
	}
	if (rc < 0) {
		log_warn("%s: upstream #%d: the answer does not fit the request; reconnecting", p->r->who,
			 s->id);
		*res = EXCH_BAD_GATEWAY;
		return POOL_BROKEN;
	}
	s->timeouts = 0;
	if (!d->ids && !d->self_evident && buf_len(&s->rbuf) > 0) {
		/* More bytes came with the answer than were asked for: without
		 * ids nobody can tell which frame answers this request. */
		log_warn("%s: upstream #%d: %zu bytes beyond the answer; not delivered, reconnecting",
			 p->r->who, s->id, buf_len(&s->rbuf));
		*res = EXCH_BAD_GATEWAY;
		return POOL_BROKEN;
	}
	*res = EXCH_OK;
	if (ctx->close_upstream || s->rbuf.eof)
		return POOL_BROKEN;
	/* the request itself asked for the end (http: Connection: close): the
	 * target closes after this answer, whether the answer says so or not */
	return ctx->close_client ? POOL_RETIRE : POOL_HEALTHY;
}

/* Whether the connection was closed before the request reached it: the
 * write failed at once, or the first thing read was its end (the target's
 * close was queued before the request; a reset in answer to the request
 * is a failure of the request, not of the connection). */
static int died_before(const struct pending *p, const struct pool_slot *s, ssize_t n)
{
	int dead = p->rc == -EPIPE || p->rc == -ECONNRESET || n == 0;
	return !p->streaming && p->unchecked && p->idempotent && dead && buf_len(&s->rbuf) == 0;
}

/* Reads the answer to p's request, sent over s, into out. Returns how s
 * goes back; *retry when it turned out dead before the request arrived. */
static enum pool_health converse(struct pending *p, struct pool_slot *s, struct frame_ctx *ctx,
				 struct buf *out, enum exchange_result *res, int *retry)
{
	const struct exchange_req *r = p->r;
	if (p->rc < 0) {
		*retry = died_before(p, s, 1);
		if (!*retry)
			log_warn("%s: upstream #%d: write failed: %s", r->who, s->id, strerror(-p->rc));
		*res = p->rc == -ETIMEDOUT ? EXCH_TIMEOUT : EXCH_BAD_GATEWAY;
		return POOL_BROKEN;
	}
	if (p->m.answerless) {
		*res = p->env->dialect->restore(p->env->dialect, &p->m, NULL, 0, out) < 0 ? EXCH_BAD_GATEWAY
											  : EXCH_OK;
		return POOL_HEALTHY;
	}
	/* --answer-timeout caps how long one unanswered request holds the
	 * connection; a serial line adds the time the bytes take on it */
	int64_t deadline = p->sent_at + p->env->cfg->answer_timeout_ms + p->m.line_ms;
	if (deadline > r->deadline)
		deadline = r->deadline;
	ctx->close_upstream = 0;
	ctx->stream = r->sink != NULL && p->env->dialect->settled != NULL;
	ssize_t n = read_answer(p, s, ctx, deadline);
	if (n > 0 || n == -EPROTO || n == -EMSGSIZE || p->streaming)
		s->carried = 1; /* it answered, if badly: the target is alive */
	if (n > 0)
		return take_answer(p, s, (size_t)n, ctx, out, res);
	if (p->streaming)
		return stream_failed(p, s, n, res);
	*retry = died_before(p, s, n);
	if (*retry) {
		log_info("%s: upstream #%d was closed by the target since its last answer; sending again",
			 r->who, s->id);
		*res = EXCH_BAD_GATEWAY;
		return POOL_BROKEN;
	}
	return answer_failed(p, s, n, time_now_ms() - p->sent_at, res);
}

/* One try: borrow (or be handed) a slot, send, read the answer, give the
 * slot back. *retry when the request may go again over another connection. */
static enum exchange_result try_exchange(struct pending *p, int recheck, struct frame_ctx *ctx,
					 struct buf *out, int *retry)
{
	const struct exchange_env *env = p->env;
	struct pool_slot *s;
	int waited = 0;
	int rc = borrow_checked(p, recheck, &s, &waited);
	if (rc < 0)
		return borrow_failed(env, p->r, rc);
	if (!p->sent && !p->gone && !p->unsendable) {
		upstream_gap(env->upstream, s);
		send_pending(p, s, waited);
	}
	enum exchange_result res = EXCH_CLIENT_GONE;
	enum pool_health health = POOL_HEALTHY;
	if (p->gone) {
		log_info("%s: left before its request was sent; not sending it", p->r->who);
	} else if (p->unsendable) {
		log_warn("%s: the request cannot be put on the wire; not sent", p->r->who);
		res = EXCH_BAD_GATEWAY;
	} else {
		health = converse(p, s, ctx, out, &res, retry);
		s->last_answer_at = time_now_ms();
	}
	pool_return(env->pool, s, health);
	return res;
}

/* The exchange proper, with one more try over a checked connection when
 * an unchecked one turns out to have died before a read reached it. */
static enum exchange_result upstream_exchange(const struct exchange_env *env, const struct exchange_req *r,
					      struct frame_ctx *ctx, struct buf *out)
{
	const struct dialect *d = env->dialect;
	struct pending p = { .env = env, .r = r };
	/* only answers matched by id make an unchecked connection safe: without
	 * ids, bytes that came while it sat idle would pass for the answer */
	p.idempotent = d->ids && d->idempotent != NULL && d->idempotent(d, r->req, r->len);
	int retry = 0;
	enum exchange_result res = try_exchange(&p, 0, ctx, out, &retry);
	if (retry) {
		struct pending again = { .env = env, .r = r, .idempotent = p.idempotent };
		res = try_exchange(&again, 1, ctx, out, &retry);
	}
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
		readshare_finish(rs, f, res, res == EXCH_OK ? buf_head(out) : NULL,
				 res == EXCH_OK ? buf_len(out) : 0, good, time_now_ms());
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
