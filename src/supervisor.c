/* The supervisor thread: keeps the pool's slots connected, with backoff,
 * the --delay warm-up and health checks of idle connections. */
#include "config.h"
#include "supervisor.h"
#include "exchange.h"
#include "log.h"
#include "net.h"
#include "stats.h"
#include "timeutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_CAP_MS 10000
#define IDLE_WAKE_MS 60000

/* Connects slot s with the lock released; called and returns with it held. */
static void connect_slot(struct supervisor *sv, struct pool_slot *s)
{
	struct pool *p = sv->pool;
	const struct config *cfg = sv->cfg;
	s->state = SLOT_CONNECTING;
	pthread_mutex_unlock(&p->lock);

	int64_t limit = cfg->timeout_ms < CONNECT_TIMEOUT_CAP_MS ? cfg->timeout_ms : CONNECT_TIMEOUT_CAP_MS;
	int fd = net_connect(cfg->target_host, cfg->target_port, time_now_ms() + limit);
	int64_t now = time_now_ms();

	if (fd >= 0) {
		STAT_INC(upstream_connects);
		if (sv->down)
			log_warn("connected to the target %s again", cfg->target);
		else
			log_info("upstream #%d: connected to %s", s->id, cfg->target);
		sv->down = 0;
	} else {
		STAT_INC(upstream_failures);
	}

	pthread_mutex_lock(&p->lock);
	if (fd >= 0 && p->stopping) {
		close(fd);
		s->state = SLOT_DOWN;
	} else if (fd >= 0) {
		pool_slot_connected_locked(p, s, fd, now + cfg->delay_ms);
	} else {
		int64_t wait = pool_slot_failed_locked(p, s);
		if (!sv->down && p->live == 0)
			log_warn("cannot connect to the target %s: %s; retrying with backoff", cfg->target,
				 strerror(-fd));
		else
			log_info("upstream #%d: cannot connect to %s: %s; next try in %lld ms", s->id, cfg->target,
				 strerror(-fd), (long long)wait);
		if (p->live == 0)
			sv->down = 1;
	}
}

/* Checks an idle slot with the lock released; called and returns with it held. */
static void check_slot(struct supervisor *sv, struct pool_slot *s)
{
	struct pool *p = sv->pool;
	s->state = SLOT_BUSY;
	pthread_mutex_unlock(&p->lock);
	pool_return(p, s, exchange_check_idle(sv->cfg, s));
	pthread_mutex_lock(&p->lock);
}

static void *supervisor_main(void *arg)
{
	struct supervisor *sv = arg;
	struct pool *p = sv->pool;
	const struct config *cfg = sv->cfg;

	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		int64_t now = time_now_ms();
		int64_t next = now + IDLE_WAKE_MS;
		int acted = 0;

		for (int i = 0; i < p->nslots && !p->stopping && !acted; i++) {
			struct pool_slot *s = &p->slots[i];
			if (s->state == SLOT_DOWN && s->next_attempt <= now) {
				connect_slot(sv, s);
				acted = 1;
			} else if (s->state == SLOT_DOWN) {
				next = s->next_attempt < next ? s->next_attempt : next;
			} else if (s->state == SLOT_WARMING && s->ready_at <= now) {
				pool_slot_ready_locked(p, s);
			} else if (s->state == SLOT_WARMING) {
				next = s->ready_at < next ? s->ready_at : next;
			} else if (s->state == SLOT_IDLE) {
				int64_t due = exchange_idle_due(cfg, s);
				if (due <= now) {
					check_slot(sv, s);
					acted = 1;
				} else if (due < next) {
					next = due;
				}
			}
		}
		if (acted || p->stopping)
			continue; /* the lock was dropped: look at every slot again */
		struct timespec ts = time_abs(next);
		pthread_cond_timedwait(&p->work, &p->lock, &ts);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int supervisor_start(struct supervisor *sv, struct pool *pool, const struct config *cfg)
{
	sv->pool = pool;
	sv->cfg = cfg;
	sv->down = 0;
	return -pthread_create(&sv->thread, NULL, supervisor_main, sv);
}

void supervisor_join(struct supervisor *sv)
{
	pthread_join(sv->thread, NULL);
}
