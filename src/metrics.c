/* The statistics over HTTP for Prometheus (--metrics-listen): one small
 * blocking responder thread answering GET /metrics. */
#include "config.h"
#include "metrics.h"
#include "log.h"
#include "net.h"
#include "stats.h"
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <poll.h>
#include <unistd.h>

#define METRICS_IO_MS 5000
#define METRICS_BUF 16384

void metrics_pool_state(struct pool *pool, struct stats_pool *out)
{
	pool_counts(pool, &out->live, &out->busy, &out->waiting);
	out->slots = pool->nslots;
}

static void reply(int fd, const char *status, const char *type, const char *body, size_t len)
{
	char head[256];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, type, len);
	int64_t dl = time_now_ms() + METRICS_IO_MS;
	if (net_write_all(fd, head, (size_t)n, dl) == 0 && len > 0)
		net_write_all(fd, body, len, dl);
}

/* Reads the request head and answers it; the connection is closed after. */
static void serve(struct metrics *m, int fd, char *buf)
{
	char req[2048];
	size_t len = 0;
	int64_t dl = time_now_ms() + METRICS_IO_MS;
	while (len < sizeof req - 1) {
		ssize_t n = net_read(fd, req + len, sizeof req - 1 - len, dl);
		if (n <= 0)
			return;
		len += (size_t)n;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	req[len] = '\0';
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
	metrics_pool_state(m->pool, &ps);
	size_t n = stats_format_prometheus(buf, METRICS_BUF, &ps);
	reply(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", get ? buf : "", get ? n : 0);
}

static void *metrics_main(void *arg)
{
	struct metrics *m = arg;
	char *buf = malloc(METRICS_BUF);
	while (buf != NULL && !atomic_load(&m->stopping)) {
		struct net_addr peer;
		int fd = net_accept(m->lfd, &peer);
		if (fd < 0) {
			if (atomic_load(&m->stopping))
				break;
			log_warn("metrics: accept failed: %s", strerror(-fd));
			poll(NULL, 0, 100); /* EMFILE and friends: do not spin */
			continue;
		}
		serve(m, fd, buf);
		close(fd);
	}
	free(buf);
	return NULL;
}

int metrics_start(struct metrics *m, const char *host, const char *port, struct pool *pool)
{
	m->pool = pool;
	atomic_store(&m->stopping, 0);
	m->lfd = net_listen(host, port, 16);
	if (m->lfd < 0)
		return m->lfd;
	int rc = pthread_create(&m->thread, NULL, metrics_main, m);
	if (rc != 0) {
		close(m->lfd);
		return -rc;
	}
	log_info("metrics: serving /metrics on %s%s%s:%d", strchr(host, ':') ? "[" : "",
		 host[0] ? host : "*", strchr(host, ':') ? "]" : "", net_local_port(m->lfd));
	return 0;
}

void metrics_stop(struct metrics *m)
{
	atomic_store(&m->stopping, 1);
	shutdown(m->lfd, SHUT_RDWR);
	pthread_join(m->thread, NULL);
	close(m->lfd);
}
