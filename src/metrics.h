/* The statistics over HTTP for Prometheus (--metrics-listen): one small
 * blocking responder thread answering GET /metrics. */
#ifndef TCPMUX_METRICS_H
#define TCPMUX_METRICS_H

#include <pthread.h>
#include <stdatomic.h>

#include "pool.h"
#include "stats.h"

struct metrics {
	int lfd;
	pthread_t thread;
	struct pool *pool;
	atomic_int stopping;
};

/* Binds host:port and starts the thread. Returns 0 or -errno. */
int metrics_start(struct metrics *m, const char *host, const char *port, struct pool *pool);
void metrics_stop(struct metrics *m);
/* The pool's state for the statistics. */
void metrics_pool_state(struct pool *pool, struct stats_pool *out);

#endif
