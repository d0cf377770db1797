/* The statistics over HTTP for Prometheus (--metrics-listen): one small
 * responder thread answering GET /metrics, polling a bounded set of
 * connections so that no idle or slow one delays another's scrape. */
#ifndef TCPMUX_METRICS_H
#define TCPMUX_METRICS_H

#include <pthread.h>
#include <stdatomic.h>

#include "acl.h"
#include "pool.h"
#include "stats.h"

struct metrics {
	int lfd;
	pthread_t thread;
	struct pool *pool;
	const struct acl_entry *allow; /* --allow applies here too */
	int nallow;
	atomic_int stopping;
};

/* Binds host:port and starts the thread; only peers in allow[0..nallow)
 * are served (nallow 0: everyone). Returns 0 or -errno. */
int metrics_start(struct metrics *m, const char *host, const char *port, struct pool *pool,
		  const struct acl_entry *allow, int nallow);
void metrics_stop(struct metrics *m);
/* The pool's state (and the bytes buffered) for the statistics. */
void metrics_pool_state(struct pool *pool, struct stats_pool *out);

#endif
