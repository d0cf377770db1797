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
	unsigned seed;   /* jitter; touched by the supervisor thread only */
	int down;        /* the target is unreachable (for log transitions) */
};

/* The wait before connect attempt number failures+1: doubling from base,
 * capped at max(base, 30 s), plus up to 10 % jitter (r is a random number). */
int64_t supervisor_backoff(int64_t base_ms, unsigned failures, unsigned r);

int supervisor_start(struct supervisor *sv, struct pool *pool, const struct config *cfg);
/* Call after pool_stop(): joins the thread. */
void supervisor_join(struct supervisor *sv);

#endif
