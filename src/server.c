/* The server: the listener, the acceptor thread and one thread per client.
 * A client thread reads one whole request, has it exchanged over a pooled
 * upstream connection, and writes the answer back, until the client leaves. */
#include "config.h"
#include "server.h"
#include "acl.h"
#include "buf.h"
#include "exchange.h"
#include "log.h"
#include "net.h"
#include "stats.h"
#include "timeutil.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENT_STACK_SIZE (128 * 1024)
#define ACCEPT_ERROR_PAUSE_MS 100
#define LAST_THREADS_GRACE_MS 2000

struct client {
	struct server *srv;
	int fd;
	unsigned id;
	char name[80]; /* "#17 192.0.2.5:50812", for log lines */
	struct client *prev, *next;
};

static struct log_ratelimit reject_rl;
static struct log_ratelimit accept_err_rl;
static struct log_ratelimit nobufs_rl;

static void client_unlink(struct client *c)
{
	struct server *srv = c->srv;
	pthread_mutex_lock(&srv->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (--srv->nclients == 0)
		pthread_cond_broadcast(&srv->drained);
	pthread_mutex_unlock(&srv->lock);
}

/* Answers a failure the way the protocol's clients understand, if it has
 * a way; returns 0 when the client should be closed instead. */
static int send_error(struct client *c, struct frame_ctx *ctx, const uint8_t *req, size_t reqlen,
		      enum codec_err err)
{
	const struct codec *codec = c->srv->cfg->codec;
	uint8_t out[512];
	if (codec->error_reply == NULL)
		return 0;
	size_t n = codec->error_reply(ctx, req, reqlen, err, out, sizeof out);
	if (n == 0)
		return 0;
	if (net_write_all(c->fd, out, n, time_now_ms() + c->srv->cfg->timeout_ms) < 0)
		return 0;
	STAT_ADD(bytes_to_clients, n);
	return 1;
}

static int exchange_error(enum exchange_result r)
{
	switch (r) {
	case EXCH_OK:
		return CODEC_ERR_NONE;
	case EXCH_NO_UPSTREAM:
	case EXCH_SHUTDOWN:
		return CODEC_ERR_NO_UPSTREAM;
	case EXCH_TIMEOUT:
		return CODEC_ERR_TIMEOUT;
	default:
		return CODEC_ERR_BAD_GATEWAY;
	}
}

/* A request that needs more buffer than --max-buffered leaves: refused
 * (HTTP 503 with Connection: close), one line per 10 s for all clients. */
static void refuse_no_buffer(struct client *c, struct frame_ctx *ctx)
{
	unsigned suppressed;
	STAT_INC(req_no_buffer);
	if (log_ratelimit_ok(&nobufs_rl, 10000, &suppressed))
		log_warn("%s: refused: --max-buffered (%zu bytes) reached (%u more refused since the last "
			 "such line)",
			 c->name, c->srv->cfg->max_buffered, suppressed);
	ctx->close_client = 1;
	send_error(c, ctx, NULL, 0, CODEC_ERR_NO_UPSTREAM);
}

/* Logs why reading a request failed (n < 0) and answers the client where
 * the protocol has a way. */
static void request_failed(struct client *c, struct buf *in, struct frame_ctx *ctx, ssize_t n)
{
	const struct config *cfg = c->srv->cfg;
	if (n == -ETIMEDOUT && buf_len(in) == 0)
		log_info("%s: idle for %lld ms, closing", c->name, (long long)cfg->idle_timeout_ms);
	else if (n == -ETIMEDOUT)
		log_info("%s: request not complete within %lld ms, closing", c->name,
			 (long long)cfg->timeout_ms);
	else if (n == -EPROTO || n == -EMSGSIZE || n == -EOPNOTSUPP) {
		STAT_INC(req_bad_frame);
		/* the client's own fault: info, so a garbage sender cannot flood the log */
		log_info("%s: %s request, closing", c->name,
			 n == -EPROTO	  ? "malformed"
			 : n == -EMSGSIZE ? "oversize"
					  : "unsupported");
		send_error(c, ctx, NULL, 0,
			   n == -EPROTO	    ? CODEC_ERR_BAD_REQUEST
			   : n == -EMSGSIZE ? CODEC_ERR_TOO_LARGE
					    : CODEC_ERR_UNSUPPORTED);
	} else if (n == -ENOBUFS)
		refuse_no_buffer(c, ctx);
	else if (n == -ECONNRESET && buf_len(in) == 0)
		log_info("%s: client reset the connection", c->name);
	else if (n == -ECONNRESET)
		log_info("%s: client left in the middle of a request", c->name);
	else
		log_info("%s: read failed: %s", c->name, strerror((int)-n));
}

/* Reads one request; its deadline starts with its first byte. When the
 * framer asks (http: a whole head with Expect: 100-continue, its content
 * still to come), the expectation is answered here, once: the target sees
 * the request only once it is whole, and the client would otherwise wait
 * before it sends the content (RFC 9110 §10.1.1; curl waits 1 s). */
static ssize_t read_request(struct client *c, struct buf *in, struct frame_ctx *ctx, int64_t *deadline)
{
	const struct codec *codec = c->srv->cfg->codec;
	ctx->close_client = 0; /* the out-flags of this request and its answer */
	ctx->expect = CODEC_EXPECT_NONE;
	ctx->interim_len = 0;
	ssize_t n = buf_read_request(in, c->fd, codec->request, ctx, c->srv->cfg->timeout_ms, deadline);
	if (n != -EINPROGRESS)
		return n;
	if (codec->expect_reply != NULL) {
		size_t len = strlen(codec->expect_reply);
		int rc = net_write_all(c->fd, codec->expect_reply, len, *deadline);
		if (rc < 0)
			return rc;
		STAT_ADD(bytes_to_clients, len);
	}
	ctx->expect = CODEC_EXPECT_ANSWERED; /* the framer asks once per request */
	return buf_read_frame(in, c->fd, codec->request, ctx, *deadline, *deadline);
}

/* Writes the answer in out to the client. The target's own 100 (Continue)
 * would answer the expectation a second time when the client has had ours
 * (read_request): it is left out. Returns 0 or -errno. */
static int deliver(struct client *c, const struct frame_ctx *ctx, const struct buf *out)
{
	size_t skip = ctx->expect == CODEC_EXPECT_ANSWERED && ctx->interim_len < buf_len(out)
			      ? ctx->interim_len
			      : 0;
	int rc = net_write_all(c->fd, buf_head(out) + skip, buf_len(out) - skip,
			       time_now_ms() + c->srv->cfg->timeout_ms);
	if (rc == 0)
		STAT_ADD(bytes_to_clients, buf_len(out) - skip);
	return rc;
}

/* The client's end of a streamed answer. */
struct client_sink {
	struct exchange_sink k; /* first: the exchange hands back &k */
	struct client *c;
	const struct frame_ctx *ctx;
};

/* Writes the next part of a streamed answer, bounded by --timeout: a
 * client that stops reading holds its upstream connection that long at
 * most, then both are closed. The first part leaves out the target's own
 * 100 (Continue) as deliver() does. */
static int forward_to_client(struct exchange_sink *k, const uint8_t *p, size_t n)
{
	struct client_sink *cs = (struct client_sink *)k;
	const struct frame_ctx *ctx = cs->ctx;
	size_t skip = k->forwarded == 0 && ctx->expect == CODEC_EXPECT_ANSWERED && ctx->interim_len < n
			      ? ctx->interim_len
			      : 0;
	int rc = net_write_all(cs->c->fd, p + skip, n - skip, time_now_ms() + cs->c->srv->cfg->timeout_ms);
	if (rc == 0)
		STAT_ADD(bytes_to_clients, n - skip);
	return rc;
}

/* Has one whole request answered: by the dialect's check, or the target.
 * Returns 1 to go on with the next request, 0 to close the client. */
static int serve_request(struct client *c, const struct exchange_req *r, struct frame_ctx *ctx,
			 struct buf *out)
{
	struct server *srv = c->srv;
	const struct dialect *d = &srv->dialect;
	int64_t t0 = time_now_ms();
	enum exchange_result res = EXCH_OK;
	char why[160];
	int err = d->check(d, r->req, r->len, why, sizeof why);
	if (err >= 0) {
		if (err == CODEC_ERR_POLICY)
			STAT_INC(req_policy);
		else
			STAT_INC(req_bad_frame);
		log_info("%s: %s", c->name, why);
	} else {
		res = exchange_run(&srv->env, r, ctx, out);
		if (res == EXCH_TIMEOUT)
			STAT_INC(req_timeout);
		else if (res == EXCH_BAD_GATEWAY)
			STAT_INC(req_bad_gateway);
		else if (res == EXCH_CLIENT_GONE || res == EXCH_CUT)
			return 0; /* the exchange said why */
		err = exchange_error(res);
	}
	if (res != EXCH_OK || err != CODEC_ERR_NONE) {
		int answered = send_error(c, ctx, r->req, r->len, (enum codec_err)err);
		return answered && res != EXCH_SHUTDOWN && !ctx->close_client;
	}
	STAT_INC(requests_ok);
	stats_latency((uint64_t)(time_now_ms() - t0) * 1000);
	int rc = deliver(c, ctx, out);
	buf_consume(out, buf_len(out)); /* gives a large answer's memory back */
	if (rc < 0) {
		log_info("%s: could not deliver the answer: %s", c->name, strerror(-rc));
		return 0;
	}
	if (ctx->close_client) /* asked for, or the answer ends its connection */
		log_info("%s: closing after the answer, as the exchange asked", c->name);
	return !ctx->close_client;
}

/* Serves one client until it leaves, errs, or the daemon stops. */
static void client_serve(struct client *c, struct buf *in, struct buf *out)
{
	const struct config *cfg = c->srv->cfg;
	struct frame_ctx ctx = { .max_frame = cfg->max_frame };
	/* the wait for the next request is bounded by the socket itself: no poll per request */
	net_set_recv_timeout(c->fd, cfg->idle_timeout_ms);
	for (int more = 1; more;) {
		struct client_sink sink = { .k = { .forward = forward_to_client }, .c = c, .ctx = &ctx };
		struct exchange_req r = {
			.client_fd = c->fd, .stopping = &c->srv->stopping, .who = c->name, .sink = &sink.k
		};
		ssize_t n = read_request(c, in, &ctx, &r.deadline);
		if (n == 0)
			log_info("%s: client closed the connection", c->name);
		if (n < 0)
			request_failed(c, in, &ctx, n);
		if (n <= 0)
			return;
		r.req = buf_head(in);
		r.len = (size_t)n;
		STAT_INC(requests_total);
		STAT_ADD(bytes_from_clients, r.len);
		log_hex(c->name, r.req, r.len);
		more = serve_request(c, &r, &ctx, out);
		buf_consume(in, r.len);
	}
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	const struct config *cfg = c->srv->cfg;
	struct buf in, out;
	size_t initial = cfg->codec->initial_buf;
	if (buf_init(&in, initial, cfg->max_frame) == 0 && buf_init(&out, initial, cfg->max_frame) == 0)
		client_serve(c, &in, &out);
	else
		log_error("%s: out of memory", c->name);
	buf_free(&in);
	buf_free(&out);
	close(c->fd);
	STAT_DEC(clients_now);
	client_unlink(c);
	free(c);
	return NULL;
}

static void reject(int fd, const char *peer, const char *why)
{
	unsigned suppressed;
	STAT_INC(clients_rejected);
	if (log_ratelimit_ok(&reject_rl, 10000, &suppressed))
		log_warn("rejected client %s: %s (%u more rejected since the last such line)", peer, why,
			 suppressed);
	close(fd);
}

static void accept_one(struct server *srv, int fd, const struct net_addr *peer)
{
	char addr[64];
	net_addr_str(peer, addr, sizeof addr);

	if (!acl_allows(srv->cfg->allow, srv->cfg->nallow, &peer->ss)) {
		reject(fd, addr, "not in --allow");
		return;
	}
	pthread_mutex_lock(&srv->lock);
	int full = srv->nclients >= srv->cfg->max_clients;
	pthread_mutex_unlock(&srv->lock);
	if (full) {
		reject(fd, addr, "--max-clients reached");
		return;
	}
	struct client *c = calloc(1, sizeof *c);
	if (c == NULL) {
		reject(fd, addr, "out of memory");
		return;
	}
	c->srv = srv;
	c->fd = fd;
	c->id = atomic_fetch_add(&srv->next_id, 1) + 1;
	snprintf(c->name, sizeof c->name, "#%u %s", c->id, addr);
	net_tune(fd);

	pthread_mutex_lock(&srv->lock);
	c->next = srv->clients;
	if (c->next)
		c->next->prev = c;
	srv->clients = c;
	srv->nclients++;
	pthread_mutex_unlock(&srv->lock);
	STAT_INC(clients_now);
	STAT_INC(clients_total);

	/* before the thread starts: from then on c belongs to it */
	log_info("%s: connected", c->name);
	pthread_t t;
	int rc = pthread_create(&t, &srv->client_attr, client_main, c);
	if (rc != 0) {
		STAT_DEC(clients_now);
		client_unlink(c);
		free(c);
		reject(fd, addr, strerror(rc));
	}
}

static void *acceptor_main(void *arg)
{
	struct server *srv = arg;
	while (!atomic_load(&srv->stopping)) {
		struct net_addr peer;
		int fd = net_accept(srv->lfd, &peer);
		if (fd >= 0) {
			if (atomic_load(&srv->stopping)) {
				close(fd);
				break;
			}
			accept_one(srv, fd, &peer);
			continue;
		}
		if (atomic_load(&srv->stopping))
			break;
		if (fd == -ECONNABORTED)
			continue;
		unsigned suppressed;
		if (log_ratelimit_ok(&accept_err_rl, 10000, &suppressed))
			log_error("accept failed: %s", strerror(-fd));
		/* EMFILE and friends: give closing clients a moment instead of spinning */
		poll(NULL, 0, ACCEPT_ERROR_PAUSE_MS);
	}
	return NULL;
}

/* Binds the clients' listener and the metrics port; logs a failure. */
static int start_listeners(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	srv->lfd = net_listen(cfg->listen_host, cfg->listen_port, 1024);
	if (srv->lfd < 0) {
		log_error("cannot listen on %s: %s", cfg->listen, strerror(-srv->lfd));
		return srv->lfd;
	}
	srv->metrics_on = cfg->metrics_port[0] != '\0';
	if (!srv->metrics_on)
		return 0;
	int rc = metrics_start(&srv->metrics, cfg->metrics_host, cfg->metrics_port, &srv->pool, cfg->allow,
			       cfg->nallow);
	if (rc < 0) {
		int v6 = strchr(cfg->metrics_host, ':') != NULL;
		log_error("cannot listen on --metrics-listen %s%s%s:%s: %s", v6 ? "[" : "",
			  cfg->metrics_host[0] ? cfg->metrics_host : "*", v6 ? "]" : "", cfg->metrics_port,
			  strerror(-rc));
		close(srv->lfd);
	}
	return rc;
}

int server_start(struct server *srv, const struct config *cfg)
{
	memset(srv, 0, sizeof *srv);
	srv->cfg = cfg;
	srv->lfd = -1;
	pthread_mutex_init(&srv->lock, NULL);
	time_cond_init(&srv->drained);
	pthread_attr_init(&srv->client_attr);
	pthread_attr_setdetachstate(&srv->client_attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&srv->client_attr, CLIENT_STACK_SIZE);

	int rc = pool_init(&srv->pool, cfg->max_connections, cfg->queue_size, cfg->codec->initial_buf,
			   cfg->max_frame);
	if (rc < 0) {
		log_error("cannot start: %s", strerror(-rc));
		return rc;
	}
	dialect_init(&srv->dialect, cfg);
	upstream_init(&srv->upstream, cfg, &srv->dialect);
	srv->pool.backoff_ms = cfg->backoff_ms;
	srv->pool.delay_ms = cfg->delay_ms;
	srv->pool.idle_due = upstream_idle_due;
	srv->pool.due_arg = &srv->upstream;
	srv->env.pool = &srv->pool;
	srv->env.cfg = cfg;
	srv->env.dialect = &srv->dialect;
	srv->env.upstream = &srv->upstream;
	srv->env.share = NULL;
	if (srv->dialect.share_key != NULL && (cfg->coalesce || cfg->cache_ttl_ms > 0)) {
		readshare_init(&srv->share, cfg->coalesce, cfg->cache_ttl_ms);
		srv->env.share = &srv->share;
	}
	buf_budget_set(cfg->max_buffered);
	rc = start_listeners(srv);
	if (rc < 0) {
		pool_destroy(&srv->pool);
		return rc;
	}
	rc = supervisor_start(&srv->sup, &srv->pool, &srv->upstream, cfg);
	if (rc == 0) {
		rc = -pthread_create(&srv->acceptor, NULL, acceptor_main, srv);
		if (rc < 0) {
			pool_stop(&srv->pool);
			supervisor_join(&srv->sup);
		}
	}
	if (rc < 0) {
		log_error("cannot start the server's threads: %s", strerror(-rc));
		if (srv->metrics_on)
			metrics_stop(&srv->metrics);
		close(srv->lfd);
		pool_destroy(&srv->pool);
		return rc;
	}
	char host[300];
	snprintf(host, sizeof host, "%s", cfg->listen_host[0] ? cfg->listen_host : "*");
	if (strchr(host, ':'))
		log_info("listening on [%s]:%d, protocol %s, target %s", host, net_local_port(srv->lfd),
			 cfg->codec->name, cfg->target);
	else
		log_info("listening on %s:%d, protocol %s, target %s", host, net_local_port(srv->lfd),
			 cfg->codec->name, cfg->target);
	return 0;
}

/* Waits until every client thread has ended or the deadline passes.
 * Returns the number still running. Called with srv->lock held. */
static int wait_drained_locked(struct server *srv, int64_t deadline)
{
	struct timespec ts = time_abs(deadline);
	int rc = 0;
	while (srv->nclients > 0 && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&srv->drained, &srv->lock, &ts);
	return srv->nclients;
}

void server_stop(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	atomic_store(&srv->stopping, 1);
	shutdown(srv->lfd, SHUT_RDWR); /* wakes accept() */
	pthread_join(srv->acceptor, NULL);
	close(srv->lfd);

	/* Clients waiting for their next request see end of stream; those in
	 * an exchange finish it and write the answer first. */
	pthread_mutex_lock(&srv->lock);
	int n = srv->nclients;
	for (struct client *c = srv->clients; c != NULL; c = c->next)
		shutdown(c->fd, SHUT_RD);
	log_notice("stopping: %d client%s connected, waiting up to %lld ms for exchanges in flight", n,
		   n == 1 ? "" : "s", (long long)cfg->timeout_ms);
	int left = wait_drained_locked(srv, time_now_ms() + cfg->timeout_ms);
	if (left > 0) {
		log_warn("stopping: %d client%s still busy after %lld ms, closing them", left,
			 left == 1 ? "" : "s", (long long)cfg->timeout_ms);
		for (struct client *c = srv->clients; c != NULL; c = c->next)
			shutdown(c->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&srv->lock);

	pool_stop(&srv->pool);
	supervisor_join(&srv->sup);
	if (srv->metrics_on)
		metrics_stop(&srv->metrics);
	pthread_mutex_lock(&srv->lock);
	left = wait_drained_locked(srv, time_now_ms() + LAST_THREADS_GRACE_MS);
	pthread_mutex_unlock(&srv->lock);
	if (left > 0) {
		/* A thread still inside the pool must not see it freed; exit frees all. */
		log_error("stopping: %d client thread%s did not end; exiting anyway", left,
			  left == 1 ? "" : "s");
		return;
	}
	pool_destroy(&srv->pool);
	if (srv->env.share != NULL)
		readshare_destroy(srv->env.share);
	pthread_attr_destroy(&srv->client_attr);
	pthread_cond_destroy(&srv->drained);
	pthread_mutex_destroy(&srv->lock);
}

void server_log_stats(struct server *srv)
{
	struct stats_pool ps;
	metrics_pool_state(&srv->pool, &ps);
	stats_log(&ps);
}
