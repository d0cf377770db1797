/* The pool of upstream connections: slots borrowed by client threads in
 * arrival order, kept connected by the supervisor. */
#ifndef TCPMUX_POOL_H
#define TCPMUX_POOL_H

#include <pthread.h>
#include <stdint.h>

#include "buf.h"
#include "modbus.h"

enum slot_state {
	SLOT_DOWN,        /* no connection; the supervisor connects it at next_attempt */
	SLOT_CONNECTING,  /* the supervisor is connecting it */
	SLOT_WARMING,     /* connected, waiting out --delay until ready_at */
	SLOT_IDLE,        /* connected and free */
	SLOT_BUSY,        /* lent to a client thread, or being checked */
};

struct pool_slot {
	int id;
	int fd;
	enum slot_state state;
	int64_t ready_at;       /* WARMING: when it may be used */
	int64_t next_attempt;   /* DOWN: when to connect again */
	int64_t last_used;      /* when it last went idle */
	int64_t opened_at;      /* when it connected (--upstream-max-age) */
	int64_t last_answer_at; /* when its last exchange ended (--request-gap) */
	unsigned failures;      /* consecutive failed connects */
	unsigned timeouts;      /* consecutive unanswered requests (tagged framings) */
	int carried;            /* an exchange got its answer since the connect */
	struct buf rbuf;        /* bytes read from the target, kept between frames */
	struct modbus_ids ids;
};

struct pool_waiter;

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t work;            /* the supervisor has something to do */
	struct pool_slot *slots;
	int nslots;
	int live;                       /* WARMING, IDLE or BUSY slots */
	int target_down;                /* the last connect failed and no slot is live */
	int stopping;
	int queue_max;                  /* waiters beyond it are refused; 0 = no cap */
	int64_t backoff_ms;             /* --reconnect-backoff */
	unsigned seed;                  /* jitter, under the lock */
	int nwaiting;
	struct pool_waiter *head, *tail; /* clients waiting, in arrival order */
};

int pool_init(struct pool *p, int nslots, int queue_max, size_t buf_initial, size_t buf_max);
void pool_destroy(struct pool *p);

/* Lends a connected slot, waiting in arrival order until deadline.
 * Returns 0, -ETIMEDOUT, -EAGAIN (queue full), -ENOTCONN (the target is
 * down: fail fast instead of waiting) or -ESHUTDOWN. */
int pool_borrow(struct pool *p, int64_t deadline, struct pool_slot **out);
/* How a slot comes back. */
enum pool_health {
	POOL_BROKEN = 0,   /* the target closed it, failed or misbehaved */
	POOL_HEALTHY = 1,  /* to the next waiter, or idle */
	POOL_RETIRE = 2,   /* closed by our own choice (--upstream-max-idle/-age) */
};
/* Gives a slot back. Broken and retired ones are closed and the supervisor
 * reconnects them: at once, unless a broken one died young, never having
 * carried an exchange (a target that accepts and drops every connection
 * gets the connect backoff, not a storm of reconnects). */
void pool_return(struct pool *p, struct pool_slot *s, int health);
/* Wakes every waiter with -ESHUTDOWN and refuses new borrows. */
void pool_stop(struct pool *p);
/* Live and busy slots and waiting clients right now (statistics). */
void pool_counts(struct pool *p, int *live, int *busy, int *waiting);

/* The wait before connect attempt number failures+1: doubling from base,
 * capped at max(base, 30 s), plus up to 10 % jitter (r is a random number). */
int64_t pool_backoff(int64_t base_ms, unsigned failures, unsigned r);

/* For the supervisor, with p->lock held. */
void pool_slot_ready_locked(struct pool *p, struct pool_slot *s);  /* WARMING/BUSY -> IDLE or next waiter */
void pool_slot_connected_locked(struct pool *p, struct pool_slot *s, int fd, int64_t ready_at);
/* The connect failed: schedules the next attempt with backoff and returns its wait in ms. */
int64_t pool_slot_failed_locked(struct pool *p, struct pool_slot *s);

#endif
