/* The pool of upstream connections: slots borrowed by client threads in
 * arrival order. Only this file takes the pool's lock or changes a slot's
 * state; the supervisor does the jobs the pool hands it. */
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
/* The supervisor looks at the slots at least this often. */
#define IDLE_WAKE_MS 60000

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
	struct pool_slot *slot; /* set by the thread that hands it a slot */
	int err;		/* or an error: -ENOTCONN, -ESHUTDOWN */
	struct pool_handoff *h; /* NULL, or what to do for it before it wakes */
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
		rc = deadline < 0 ? pthread_cond_wait(&w->c, &w->m)
				  : pthread_cond_timedwait(&w->c, &w->m, &ts);
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

/* Makes a slot that became usable available: to the first waiter, or idle. */
static void slot_ready_locked(struct pool *p, struct pool_slot *s)
{
	struct pool_waiter *w = hand_locked(p, s);
	if (w != NULL)
		post(w); /* rare path (supervisor): posting under the lock is fine */
}

/* Counts a failure of s and sets when to connect it again; returns the wait. */
static int64_t retry_later_locked(struct pool *p, struct pool_slot *s, int64_t now)
{
	s->failures++;
	int64_t wait = pool_backoff(p->backoff_ms, s->failures, (unsigned)rand_r(&p->seed));
	s->next_attempt = now + wait;
	return wait;
}

struct pool_connect_report pool_connected(struct pool *p, struct pool_slot *s, int fd)
{
	struct pool_connect_report r = { 0, 0, 0 };
	int64_t now = time_now_ms();
	pthread_mutex_lock(&p->lock);
	r.was_down = p->target_down;
	if (fd >= 0 && p->stopping) {
		close(fd);
		s->state = SLOT_DOWN;
	} else if (fd >= 0) {
		s->fd = fd;
		s->opened_at = now;
		s->last_answer_at = 0;
		s->carried = 0; /* failures are forgiven once it carries an exchange */
		s->timeouts = 0;
		buf_reset(&s->rbuf);
		p->live++;
		p->target_down = 0;
		if (p->delay_ms > 0) {
			s->state = SLOT_WARMING;
			s->ready_at = now + p->delay_ms;
		} else {
			slot_ready_locked(p, s);
		}
	} else {
		s->state = SLOT_DOWN;
		r.retry_ms = retry_later_locked(p, s, now);
		if (p->live == 0) {
			/* Nobody can be served until the target is back: tell the
			 * waiters now rather than at their deadline. */
			p->target_down = 1;
			fail_waiters_locked(p, -ENOTCONN);
		}
	}
	r.now_down = p->target_down;
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* Whether any slot is being connected now. */
static int connecting_locked(const struct pool *p)
{
	for (int i = 0; i < p->nslots; i++)
		if (p->slots[i].state == SLOT_CONNECTING)
			return 1;
	return 0;
}

/* The target is down: asks the supervisor for one connect attempt now
 * (rate-limited, one in flight). Returns 0 when the borrower should wait
 * for its outcome, -ENOTCONN when it should fail at once. */
static int demand_connect_locked(struct pool *p, int64_t now)
{
	if (connecting_locked(p))
		return 0;
	if (p->last_demand != 0 && now - p->last_demand < POOL_DEMAND_MS)
		return -ENOTCONN;
	for (int i = 0; i < p->nslots; i++) {
		if (p->slots[i].state == SLOT_DOWN) {
			p->last_demand = now;
			p->slots[i].next_attempt = now;
			pthread_cond_signal(&p->work);
			return 0;
		}
	}
	return -ENOTCONN;
}

/* Takes an idle slot, or returns NULL. Idle slots exist only while nobody
 * waits, so taking one overtakes no one. */
static struct pool_slot *take_idle_locked(struct pool *p)
{
	for (int i = 0; i < p->nslots; i++) {
		if (p->slots[i].state == SLOT_IDLE) {
			p->slots[i].state = SLOT_BUSY;
			return &p->slots[i];
		}
	}
	return NULL;
}

/* Checks whether a borrower may queue. Returns 0 or -errno. */
static int may_wait_locked(struct pool *p)
{
	if (p->target_down) {
		int rc = demand_connect_locked(p, time_now_ms());
		if (rc < 0)
			return rc;
	}
	if (p->queue_max > 0 && p->nwaiting >= p->queue_max)
		return -EAGAIN;
	return 0;
}

/* Waits on w (queued) for a slot until deadline; returns 0 or -errno. */
static int wait_turn(struct pool *p, struct pool_waiter *w, int64_t deadline)
{
	if (wait_post(w, deadline) != 0) {
		pthread_mutex_lock(&p->lock);
		int handed = w->slot != NULL || w->err != 0;
		if (!handed)
			dequeue(p, w);
		pthread_mutex_unlock(&p->lock);
		if (handed) /* handed over as the deadline passed: its post is coming */
			wait_post(w, -1);
	}
	if (w->slot != NULL)
		return 0;
	return w->err != 0 ? w->err : -ETIMEDOUT;
}

int pool_borrow(struct pool *p, int64_t deadline, struct pool_slot **out)
{
	return pool_borrow_ex(p, deadline, NULL, out);
}

int pool_borrow_ex(struct pool *p, int64_t deadline, struct pool_handoff *h, struct pool_slot **out)
{
	if (h != NULL)
		h->waited = 0;
	pthread_mutex_lock(&p->lock);
	int rc = p->stopping ? -ESHUTDOWN : 0;
	if (rc == 0 && (*out = take_idle_locked(p)) != NULL) {
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	if (rc == 0)
		rc = may_wait_locked(p);
	if (rc < 0) {
		pthread_mutex_unlock(&p->lock);
		return rc;
	}

	struct pool_waiter w = { .posted = 0, .slot = NULL, .err = 0, .h = h, .next = NULL };
	if (h != NULL)
		h->waited = 1;
	pthread_mutex_init(&w.m, NULL);
	time_cond_init(&w.c);
	if (p->tail != NULL)
		p->tail->next = &w;
	else
		p->head = &w;
	p->tail = &w;
	p->nwaiting++;
	pthread_mutex_unlock(&p->lock);

	rc = wait_turn(p, &w, deadline);
	pthread_cond_destroy(&w.c);
	pthread_mutex_destroy(&w.m);
	if (rc == 0)
		*out = w.slot;
	return rc;
}

void pool_return(struct pool *p, struct pool_slot *s, enum pool_health health)
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
			 * reconnects. Waiters keep waiting, up to their deadline:
			 * such a target is often back within a moment. */
			retry_later_locked(p, s, now);
		}
		pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->lock);
	if (w != NULL && w->h != NULL && w->h->fn != NULL)
		w->h->fn(w->h->arg, s); /* the slot is w's already; w sleeps until the post */
	if (w != NULL)
		post(w);
	if (fd >= 0)
		close(fd);
}

/* The job for slot s at now, if any; else lowers *next to when s wants one.
 * Returns 1 with job filled in. */
static int slot_job_locked(struct pool *p, struct pool_slot *s, int64_t now, int64_t *next,
			   struct pool_job *job)
{
	int64_t due = INT64_MAX;
	switch (s->state) {
	case SLOT_DOWN:
		if (s->next_attempt <= now) {
			s->state = SLOT_CONNECTING;
			*job = (struct pool_job){ POOL_JOB_CONNECT, s };
			return 1;
		}
		due = s->next_attempt;
		break;
	case SLOT_WARMING:
		if (s->ready_at <= now)
			slot_ready_locked(p, s);
		else
			due = s->ready_at;
		break;
	case SLOT_IDLE:
		due = p->idle_due != NULL ? p->idle_due(p->due_arg, s) : INT64_MAX;
		if (due <= now) {
			s->state = SLOT_BUSY;
			*job = (struct pool_job){ POOL_JOB_CHECK, s };
			return 1;
		}
		break;
	default:
		break;
	}
	if (due < *next)
		*next = due;
	return 0;
}

void pool_next_job(struct pool *p, struct pool_job *job)
{
	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (p->stopping) {
			*job = (struct pool_job){ POOL_JOB_STOP, NULL };
			break;
		}
		int64_t now = time_now_ms();
		int64_t next = now + IDLE_WAKE_MS;
		int found = 0;
		for (int i = 0; i < p->nslots && !found; i++)
			found = slot_job_locked(p, &p->slots[i], now, &next, job);
		if (found)
			break;
		struct timespec ts = time_abs(next);
		pthread_cond_timedwait(&p->work, &p->lock, &ts);
	}
	pthread_mutex_unlock(&p->lock);
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
