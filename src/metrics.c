/* The statistics over HTTP for Prometheus (--metrics-listen): one small
 * responder thread answering GET /metrics, polling a bounded set of
 * connections so that no idle or slow one delays another's scrape. */
#include "config.h"
#include "metrics.h"
#include "buf.h"
#include "log.h"
#include "net.h"
#include "stats.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define METRICS_CONNS 8	     /* open at once; a new one evicts the oldest */
#define METRICS_READ_MS 5000 /* for the whole request head, per connection */
#define METRICS_WRITE_MS                                                                                     \
	250		    /* the answer fits a socket buffer; a peer that                                  \
			       does not take it is not waited for long */
#define METRICS_TICK_MS 500 /* notice metrics_stop without a wake-up */
#define METRICS_BUF 16384
#define METRICS_REQ 2048

struct mconn {
	int fd; /* -1: free */
	int64_t deadline;
	size_t len;
	char req[METRICS_REQ];
};

struct mstate {
	struct metrics *m;
	struct mconn conns[METRICS_CONNS];
	char out[METRICS_BUF];
	struct log_ratelimit reject_rl;
};

void metrics_pool_state(struct pool *pool, struct stats_pool *out)
{
	pool_counts(pool, &out->live, &out->busy, &out->waiting);
	out->slots = pool->nslots;
	out->buffered = buf_budget_used();
}

static void reply(int fd, const char *status, const char *type, const char *body, size_t len)
{
	char head[256];
	int n = snprintf(
		head, sizeof head,
		"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
		type, len);
	int64_t dl = time_now_ms() + METRICS_WRITE_MS;
	if (net_write_all(fd, head, (size_t)n, dl) == 0 && len > 0)
		net_write_all(fd, body, len, dl);
}

/* Answers a whole request head; the connection is closed after. */
static void answer(struct mstate *st, int fd, const char *req)
{
	int get = strncmp(req, "GET ", 4) == 0, head = strncmp(req, "HEAD ", 5) == 0;
	const char *path = req + (get ? 4 : 5);
	if (!get && !head) {
		reply(fd, "405 Method Not Allowed", "text/plain", "GET /metrics\n", 13);
		return;
	}
	if (strncmp(path, "/metrics ", 9) != 0 && strncmp(path, "/metrics?", 9) != 0) {
		reply(fd, "404 Not Found", "text/plain", "try /metrics\n", 13);
		return;
	}
	struct stats_pool ps;
	metrics_pool_state(st->m->pool, &ps);
	size_t n = stats_format_prometheus(st->out, sizeof st->out, &ps);
	reply(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", get ? st->out : "", get ? n : 0);
}

static void conn_close(struct mconn *c)
{
	close(c->fd);
	c->fd = -1;
}

/* Reads what has arrived; answers once the head is whole (or fills the
 * buffer) and closes on an answer, an error or end of stream. */
static void conn_readable(struct mstate *st, struct mconn *c)
{
	ssize_t n = net_read(c->fd, c->req + c->len, sizeof c->req - 1 - c->len, time_now_ms());
	if (n == -ETIMEDOUT)
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)n;
	c->req[c->len] = '\0';
	if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n") || c->len == sizeof c->req - 1) {
		answer(st, c->fd, c->req);
		conn_close(c);
	}
}

/* A free slot, or the oldest connection's, closed to make room. */
static struct mconn *conn_slot(struct mstate *st)
{
	struct mconn *oldest = &st->conns[0];
	for (int i = 0; i < METRICS_CONNS; i++) {
		if (st->conns[i].fd < 0)
			return &st->conns[i];
		if (st->conns[i].deadline < oldest->deadline)
			oldest = &st->conns[i];
	}
	conn_close(oldest);
	return oldest;
}

static void accept_ready(struct mstate *st)
{
	struct net_addr peer;
	int fd = net_accept(st->m->lfd, &peer);
	if (fd < 0) {
		if (fd != -EAGAIN && fd != -EWOULDBLOCK && fd != -ECONNABORTED &&
		    !atomic_load(&st->m->stopping)) {
			log_warn("metrics: accept failed: %s", strerror(-fd));
			poll(NULL, 0, 100); /* EMFILE and friends: do not spin */
		}
		return;
	}
	if (!acl_allows(st->m->allow, st->m->nallow, &peer.ss)) {
		char addr[64];
		unsigned suppressed;
		net_addr_str(&peer, addr, sizeof addr);
		if (log_ratelimit_ok(&st->reject_rl, 10000, &suppressed))
			log_warn("metrics: rejected %s: not in --allow (%u more rejected since the last such "
				 "line)",
				 addr, suppressed);
		close(fd);
		return;
	}
	struct mconn *c = conn_slot(st);
	c->fd = fd;
	c->len = 0;
	c->req[0] = '\0';
	c->deadline = time_now_ms() + METRICS_READ_MS;
}

/* One round: wait for the listener or any connection, up to the nearest
 * deadline, then serve what is ready and drop what is overdue. */
static void poll_once(struct mstate *st)
{
	struct pollfd pfd[1 + METRICS_CONNS];
	struct mconn *of[1 + METRICS_CONNS];
	int n = 1;
	int64_t now = time_now_ms(), wake = now + METRICS_TICK_MS;
	pfd[0] = (struct pollfd){ .fd = st->m->lfd, .events = POLLIN };
	for (int i = 0; i < METRICS_CONNS; i++) {
		struct mconn *c = &st->conns[i];
		if (c->fd < 0)
			continue;
		if (c->deadline < wake)
			wake = c->deadline;
		pfd[n] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
		of[n++] = c;
	}
	int rc = poll(pfd, (nfds_t)n, wake > now ? (int)(wake - now) : 0);
	if (rc < 0)
		return; /* EINTR: go round again */
	for (int i = 1; i < n; i++)
		if (pfd[i].revents != 0)
			conn_readable(st, of[i]);
	now = time_now_ms();
	for (int i = 0; i < METRICS_CONNS; i++)
		if (st->conns[i].fd >= 0 && st->conns[i].deadline <= now)
			conn_close(&st->conns[i]);
	if (pfd[0].revents != 0)
		accept_ready(st);
}

static void *metrics_main(void *arg)
{
	struct mstate *st = calloc(1, sizeof *st);
	if (st == NULL) {
		log_error("metrics: out of memory, not serving /metrics");
		return NULL;
	}
	st->m = arg;
	for (int i = 0; i < METRICS_CONNS; i++)
		st->conns[i].fd = -1;
	while (!atomic_load(&st->m->stopping))
		poll_once(st);
	for (int i = 0; i < METRICS_CONNS; i++)
		if (st->conns[i].fd >= 0)
			conn_close(&st->conns[i]);
	free(st);
	return NULL;
}

int metrics_start(struct metrics *m, const char *host, const char *port, struct pool *pool,
		  const struct acl_entry *allow, int nallow)
{
	m->pool = pool;
	m->allow = allow;
	m->nallow = nallow;
	atomic_store(&m->stopping, 0);
	m->lfd = net_listen(host, port, 16);
	if (m->lfd < 0)
		return m->lfd;
	/* poll says when to accept; a peer that resets in between must not block it */
	int fl = fcntl(m->lfd, F_GETFL);
	int rc = fl < 0 || fcntl(m->lfd, F_SETFL, fl | O_NONBLOCK) < 0 ? errno : 0;
	if (rc == 0)
		rc = pthread_create(&m->thread, NULL, metrics_main, m);
	if (rc != 0) {
		close(m->lfd);
		return -rc;
	}
	log_info("metrics: serving /metrics on %s%s%s:%d", strchr(host, ':') ? "[" : "", host[0] ? host : "*",
		 strchr(host, ':') ? "]" : "", net_local_port(m->lfd));
	return 0;
}

void metrics_stop(struct metrics *m)
{
	atomic_store(&m->stopping, 1);
	shutdown(m->lfd, SHUT_RDWR);
	pthread_join(m->thread, NULL);
	close(m->lfd);
}
