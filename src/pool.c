/* The pool of upstream connections: slots borrowed by client threads in
 * arrival order, kept connected by the supervisor. */
#include "config.h"
#include "pool.h"
#include "timeutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKOFF_CAP_MS 30000
/* A connection that breaks this soon without carrying an exchange counts as a failed connect. */
#define DIED_YOUNG_MS 2000

/* A client thread waiting for a slot; lives on that thread's stack. A
 * returned slot is handed straight to the first waiter, so only that one
 * thread wakes (no thundering herd) and nobody overtakes it. The hand-over
 * is decided under the pool's lock and posted to the waiter's own
 * mutex/condvar after that lock is released, so the woken thread never
 * contends for the pool's lock: it owns the slot already. A waiter that
 * someone dequeued always gets that post. */
struct pool_waiter {
	pthread_mutex_t m;
	pthread_cond_t c;
	int posted;
	struct pool_slot *slot;   /* set by the thread that hands it a slot */
	int err;                  /* or an error: -ENOTCONN, -ESHUTDOWN */
	struct pool_waiter *next;
};

static void post(struct pool_waiter *w)
{
	pthread_mutex_lock(&w->m);
	w->posted = 1;
	pthread_cond_signal(&w->c);
	pthread_mutex_unlock(&w->m); /* w may be gone after this */
}

/* Waits for the post until deadline (-1: for ever). Returns 0 or ETIMEDOUT. */
static int wait_post(struct pool_waiter *w, int64_t deadline)
{
	struct timespec ts = time_abs(deadline);
	int rc = 0;
	pthread_mutex_lock(&w->m);
	while (!w->posted && rc != ETIMEDOUT)
		rc = deadline < 0 ? pthread_cond_wait(&w->c, &w->m) : pthread_cond_timedwait(&w->c, &w->m, &ts);
	rc = w->posted ? 0 : ETIMEDOUT;
	pthread_mutex_unlock(&w->m);
	return rc;
}

int64_t pool_backoff(int64_t base_ms, unsigned failures, unsigned r)
{
	int64_t cap = base_ms > BACKOFF_CAP_MS ? base_ms : BACKOFF_CAP_MS;
	int64_t d = base_ms;
	for (unsigned i = 1; i < failures && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	return d + (d / 10 > 0 ? (int64_t)(r % (unsigned)(d / 10 + 1)) : 0);
}

int pool_init(struct pool *p, int nslots, int queue_max, size_t buf_initial, size_t buf_max)
{
	memset(p, 0, sizeof *p);
	p->slots = calloc((size_t)nslots, sizeof *p->slots);
	if (p->slots == NULL)
		return -ENOMEM;
	p->nslots = nslots;
	p->queue_max = queue_max;
	p->backoff_ms = 1000;
	p->seed = (unsigned)time_now_ms() ^ (unsigned)getpid();
	for (int i = 0; i < nslots; i++) {
		p->slots[i].id = i;
		p->slots[i].fd = -1;
		p->slots[i].state = SLOT_DOWN;
		if (buf_init(&p->slots[i].rbuf, buf_initial, buf_max) < 0) {
			pool_destroy(p);
			return -ENOMEM;
		}
	}
	pthread_mutex_init(&p->lock, NULL);
	return time_cond_init(&p->work);
}

void pool_destroy(struct pool *p)
{
	if (p->slots == NULL)
		return;
	for (int i = 0; i < p->nslots; i++) {
		if (p->slots[i].fd >= 0)
			close(p->slots[i].fd);
		buf_free(&p->slots[i].rbuf);
	}
	free(p->slots);
	p->slots = NULL;
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
}

static void dequeue(struct pool *p, struct pool_waiter *w)
{
	struct pool_waiter **pp = &p->head, *prev = NULL;
	while (*pp != NULL && *pp != w) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp == NULL)
		return;
	*pp = w->next;
	if (p->tail == w)
		p->tail = prev;
	p->nwaiting--;
}

/* Wakes every waiter with err (target down, or stopping). */
static void fail_waiters_locked(struct pool *p, int err)
{
	while (p->head != NULL) {
		struct pool_waiter *w = p->head;
		p->head = w->next;
		w->err = err;
		post(w); /* w may be gone after this */
	}
	p->tail = NULL;
	p->nwaiting = 0;
}

/* Gives s to the first waiter, or makes it idle. Returns the waiter to
 * post once the lock is released, or NULL. */
static struct pool_waiter *hand_locked(struct pool *p, struct pool_slot *s)
{
	struct pool_waiter *w = p->head;
	if (w != NULL) {
		p->head = w->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->nwaiting--;
		s->state = SLOT_BUSY;
		w->slot = s;
		return w;
	}
	s->state = SLOT_IDLE;
	s->last_used = time_now_ms();
	return NULL;
}

void pool_slot_ready_locked(struct pool *p, struct pool_slot *s)
{
	struct pool_waiter *w = hand_locked(p, s);
	if (w != NULL)
		post(w); /* rare path (supervisor): posting under the lock is fine */
}

void pool_slot_connected_locked(struct pool *p, struct pool_slot *s, int fd, int64_t ready_at)
{
	s->fd = fd;
	s->opened_at = time_now_ms();
	s->last_answer_at = 0;
	s->carried = 0; /* failures are forgiven once it carries an exchange */
	s->timeouts = 0;
	buf_reset(&s->rbuf);
	p->live++;
	p->target_down = 0;
	if (ready_at > time_now_ms()) {
		s->state = SLOT_WARMING;
		s->ready_at = ready_at;
	} else {
		pool_slot_ready_locked(p, s);
	}
}

/* Counts a failure of s and sets when to connect it again; returns the wait. */
static int64_t retry_later_locked(struct pool *p, struct pool_slot *s, int64_t now)
{
	s->failures++;
	int64_t wait = pool_backoff(p->backoff_ms, s->failures, (unsigned)rand_r(&p->seed));
	s->next_attempt = now + wait;
	return wait;
}

int64_t pool_slot_failed_locked(struct pool *p, struct pool_slot *s)
{
	s->state = SLOT_DOWN;
	int64_t wait = retry_later_locked(p, s, time_now_ms());
	if (p->live == 0) {
		/* Nobody can be served until the target is back: tell the
		 * waiters now rather than at their deadline. */
		p->target_down = 1;
		fail_waiters_locked(p, -ENOTCONN);
	}
	return wait;
}

int pool_borrow(struct pool *p, int64_t deadline, struct pool_slot **out)
{
	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		pthread_mutex_unlock(&p->lock);
		return -ESHUTDOWN;
	}
	/* Idle slots exist only while nobody waits, so taking one overtakes no one. */
	for (int i = 0; i < p->nslots; i++) {
		if (p->slots[i].state == SLOT_IDLE) {
			p->slots[i].state = SLOT_BUSY;
			*out = &p->slots[i];
			pthread_mutex_unlock(&p->lock);
			return 0;
		}
	}
	if (p->target_down) {
		pthread_mutex_unlock(&p->lock);
		return -ENOTCONN;
	}
	/* queue_max 0 (--queue-size's default): no cap, the deadline alone bounds the wait */
	if (p->queue_max > 0 && p->nwaiting >= p->queue_max) {
		pthread_mutex_unlock(&p->lock);
		return -EAGAIN;
	}

	struct pool_waiter w = { .posted = 0, .slot = NULL, .err = 0, .next = NULL };
	pthread_mutex_init(&w.m, NULL);
	time_cond_init(&w.c);
	if (p->tail != NULL)
		p->tail->next = &w;
	else
		p->head = &w;
	p->tail = &w;
	p->nwaiting++;
	pthread_mutex_unlock(&p->lock);

	if (wait_post(&w, deadline) != 0) {
		pthread_mutex_lock(&p->lock);
		int handed = w.slot != NULL || w.err != 0;
		if (!handed)
			dequeue(p, &w);
		pthread_mutex_unlock(&p->lock);
		if (handed) /* handed over as the deadline passed: its post is coming */
			wait_post(&w, -1);
	}
	pthread_cond_destroy(&w.c);
	pthread_mutex_destroy(&w.m);
	if (w.slot != NULL) {
		*out = w.slot;
		return 0;
	}
	return w.err != 0 ? w.err : -ETIMEDOUT;
}

void pool_return(struct pool *p, struct pool_slot *s, int health)
{
	int fd = -1;
	struct pool_waiter *w = NULL;
	int64_t now = time_now_ms();
	pthread_mutex_lock(&p->lock);
	if (s->carried)
		s->failures = 0;
	if (health == POOL_HEALTHY && !p->stopping) {
		w = hand_locked(p, s);
	} else {
		fd = s->fd;
		s->fd = -1;
		s->state = SLOT_DOWN;
		p->live--;
		if (health != POOL_BROKEN || s->carried || now - s->opened_at >= DIED_YOUNG_MS) {
			s->next_attempt = now; /* reconnect at once */
		} else {
			/* A target that accepts and then drops every connection
			 * (another master holds its one session, or it still holds
			 * ours) gets the connect backoff instead of a storm of
			 * reconnects. Waiters keep waiting, up to --timeout: such a
			 * target is often back within a moment. */
			retry_later_locked(p, s, now);
		}
		pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->lock);
	if (w != NULL)
		post(w);
	if (fd >= 0)
		close(fd);
}

void pool_stop(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	fail_waiters_locked(p, -ESHUTDOWN);
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
}

void pool_counts(struct pool *p, int *live, int *busy, int *waiting)
{
	pthread_mutex_lock(&p->lock);
	*live = p->live;
	*busy = 0;
	for (int i = 0; i < p->nslots; i++)
		*busy += p->slots[i].state == SLOT_BUSY;
	*waiting = p->nwaiting;
	pthread_mutex_unlock(&p->lock);
}
