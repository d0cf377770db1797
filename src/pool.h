/* The pool of upstream connections: slots borrowed by client threads in
 * arrival order. The pool owns every slot state change; the supervisor asks
 * it for its next job (connect this slot, check that one) and reports back. */
#ifndef TCPMUX_POOL_H
#define TCPMUX_POOL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum slot_state {
	SLOT_DOWN,	 /* no connection; connected again at next_attempt */
	SLOT_CONNECTING, /* the supervisor is connecting it */
	SLOT_WARMING,	 /* connected, waiting out --delay until ready_at */
	SLOT_IDLE,	 /* connected and free */
	SLOT_BUSY,	 /* lent to a client thread, or being checked */
};

/* Fields other than state are the borrower's while it holds the slot, and
 * the pool's otherwise. */
struct pool_slot {
	int id;
	int fd;
	enum slot_state state;
	int64_t ready_at;	/* WARMING: when it may be used */
	int64_t next_attempt;	/* DOWN: when to connect again */
	int64_t last_used;	/* when it last went idle */
	int64_t opened_at;	/* when it connected (--upstream-max-age) */
	int64_t last_answer_at; /* when its last exchange ended (--request-gap) */
	unsigned failures;	/* consecutive failed connects */
	unsigned timeouts;	/* consecutive unanswered requests (framings with ids) */
	unsigned next_tag;	/* the dialect numbers this connection's requests */
	int carried;		/* an exchange got its answer since the connect */
	struct buf rbuf;	/* bytes read from the target, kept between frames */
};

struct pool_waiter;

/* When the supervisor should next look at an idle slot (its health
 * check, --upstream-max-idle/-age); called with the pool's lock held. */
typedef int64_t (*pool_due_fn)(const void *arg, const struct pool_slot *s);

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t work; /* the supervisor has something to do */
	struct pool_slot *slots;
	int nslots;
	int live;	 /* WARMING, IDLE or BUSY slots */
	int target_down; /* the last connect failed and no slot is live */
	int stopping;
	int queue_max;	      /* waiters beyond it are refused; 0 = no cap (waiting is the default) */
	int64_t backoff_ms;   /* --reconnect-backoff */
	int64_t delay_ms;     /* --delay after a connect */
	int64_t last_demand;  /* when a borrower last asked for a connect */
	pool_due_fn idle_due; /* NULL: idle slots are never checked */
	const void *due_arg;
	unsigned seed; /* jitter, under the lock */
	int nwaiting;
	struct pool_waiter *head, *tail; /* clients waiting, in arrival order */
};

int pool_init(struct pool *p, int nslots, int queue_max, size_t buf_initial, size_t buf_max);
void pool_destroy(struct pool *p);

/* A borrower may leave this with the pool: the thread that hands it a
 * returned slot calls fn after releasing the pool's lock and before the
 * borrower wakes, so its request can be on the wire at once (the
 * connection is never idle while someone waits for it). */
struct pool_handoff {
	void (*fn)(void *arg, struct pool_slot *s);
	void *arg;
	int waited; /* out: the borrower queued for its slot */
};

/* Lends a connected slot, waiting in arrival order until deadline.
 * Returns 0, -ETIMEDOUT, -EAGAIN (queue full), -ENOTCONN (the target is
 * down and was just tried: fail fast instead of waiting) or -ESHUTDOWN.
 * While the target is down a borrower asks for one connect attempt (at
 * most one in flight, at most one per POOL_DEMAND_MS) and waits for it,
 * so the daemon is back within a moment of the target. */
int pool_borrow(struct pool *p, int64_t deadline, struct pool_slot **out);
/* The same with a hand-off (may be NULL). */
int pool_borrow_ex(struct pool *p, int64_t deadline, struct pool_handoff *h, struct pool_slot **out);
#define POOL_DEMAND_MS 250

/* How a slot comes back. */
enum pool_health {
	POOL_BROKEN,  /* the target closed it, failed or misbehaved */
	POOL_HEALTHY, /* to the next waiter, or idle */
	POOL_RETIRE,  /* closed by our own choice (--upstream-max-idle/-age) */
};
/* Gives a slot back. Broken and retired ones are closed and connected
 * again: at once, unless a broken one died young, never having carried an
 * exchange (a target that accepts and drops every connection gets the
 * connect backoff, not a storm of reconnects). */
void pool_return(struct pool *p, struct pool_slot *s, enum pool_health health);
/* Wakes every waiter with -ESHUTDOWN and refuses new borrows. */
void pool_stop(struct pool *p);
/* Live and busy slots and waiting clients right now (statistics). */
void pool_counts(struct pool *p, int *live, int *busy, int *waiting);

/* The wait before connect attempt number failures+1: doubling from base,
 * capped at max(base, 30 s), plus up to 10 % jitter (r is a random number). */
int64_t pool_backoff(int64_t base_ms, unsigned failures, unsigned r);

/* ---- for the supervisor ------------------------------------------------ */
enum pool_job_kind {
	POOL_JOB_CONNECT, /* connect job.slot and report with pool_connected */
	POOL_JOB_CHECK,	  /* check the idle job.slot and give it back with pool_return */
	POOL_JOB_STOP,	  /* the pool is stopping */
};
struct pool_job {
	enum pool_job_kind kind;
	struct pool_slot *slot;
};
/* Waits until there is a job. Slots whose --delay has passed are made
 * ready on the way. */
void pool_next_job(struct pool *p, struct pool_job *job);

/* What a connect's report changed, for the log. */
struct pool_connect_report {
	int was_down;	  /* the target had been down */
	int now_down;	  /* the connect failed and no slot is live */
	int64_t retry_ms; /* after a failure: the wait before the next attempt */
};
/* Reports a connect job: fd >= 0 (the pool owns it now) or -errno. */
struct pool_connect_report pool_connected(struct pool *p, struct pool_slot *s, int fd);

#endif
