/* The supervisor thread: keeps the pool's slots connected, with backoff,
 * the --delay warm-up and health checks of idle connections. */
#ifndef TCPMUX_SUPERVISOR_H
#define TCPMUX_SUPERVISOR_H

#include <pthread.h>
#include <stdint.h>

#include "cli.h"
#include "pool.h"

struct supervisor {
	pthread_t thread;
	struct pool *pool;
	const struct config *cfg;
	int down;        /* the target is unreachable (for log transitions) */
};

int supervisor_start(struct supervisor *sv, struct pool *pool, const struct config *cfg);
/* Call after pool_stop(): joins the thread. */
void supervisor_join(struct supervisor *sv);

#endif
