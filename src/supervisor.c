/* The supervisor thread: does the jobs the pool hands it (connect a slot,
 * check an idle one) and logs the target's comings and goings. It never
 * takes the pool's lock: the pool decides, the supervisor does. */
#include "config.h"
#include "supervisor.h"
#include "log.h"
#include "stats.h"
#include "timeutil.h"

#include <string.h>

#define CONNECT_TIMEOUT_CAP_MS 10000

static void connect_job(struct supervisor *sv, struct pool_slot *s)
{
	const struct config *cfg = sv->cfg;
	int64_t limit = cfg->timeout_ms < CONNECT_TIMEOUT_CAP_MS ? cfg->timeout_ms : CONNECT_TIMEOUT_CAP_MS;
	int fd = upstream_connect(sv->upstream, time_now_ms() + limit);
	if (fd >= 0)
		STAT_INC(upstream_connects);
	else
		STAT_INC(upstream_failures);
	struct pool_connect_report r = pool_connected(sv->pool, s, fd);
	if (fd >= 0 && r.was_down)
		log_warn("connected to the target %s again", cfg->target);
	else if (fd >= 0)
		log_info("upstream #%d: connected to %s", s->id, cfg->target);
	else if (r.now_down && !r.was_down)
		log_warn("cannot connect to the target %s: %s; retrying with backoff", cfg->target,
			 strerror(-fd));
	else
		log_info("upstream #%d: cannot connect to %s: %s; next try in %lld ms", s->id, cfg->target,
			 strerror(-fd), (long long)r.retry_ms);
}

static void *supervisor_main(void *arg)
{
	struct supervisor *sv = arg;
	for (;;) {
		struct pool_job job;
		pool_next_job(sv->pool, &job);
		switch (job.kind) {
		case POOL_JOB_CONNECT:
			connect_job(sv, job.slot);
			break;
		case POOL_JOB_CHECK:
			pool_return(sv->pool, job.slot, upstream_check_idle(sv->upstream, job.slot));
			break;
		case POOL_JOB_STOP:
			return NULL;
		}
	}
}

int supervisor_start(struct supervisor *sv, struct pool *pool, const struct upstream *u,
		     const struct config *cfg)
{
	sv->pool = pool;
	sv->upstream = u;
	sv->cfg = cfg;
	return -pthread_create(&sv->thread, NULL, supervisor_main, sv);
}

void supervisor_join(struct supervisor *sv)
{
	pthread_join(sv->thread, NULL);
}
