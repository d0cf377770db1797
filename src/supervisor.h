/* The supervisor thread: does the jobs the pool hands it (connect a slot,
 * check an idle one) and logs the target's comings and goings. */
#ifndef TCPMUX_SUPERVISOR_H
#define TCPMUX_SUPERVISOR_H

#include <pthread.h>
#include <stdint.h>

#include "cli.h"
#include "pool.h"
#include "upstream.h"

struct supervisor {
	pthread_t thread;
	struct pool *pool;
	const struct upstream *upstream;
	const struct config *cfg;
};

int supervisor_start(struct supervisor *sv, struct pool *pool, const struct upstream *u,
		     const struct config *cfg);
/* Call after pool_stop(): joins the thread. */
void supervisor_join(struct supervisor *sv);

#endif
