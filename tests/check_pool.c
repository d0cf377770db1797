/* Tests for src/pool.c: lending under contention, arrival order, the queue
 * cap, deadlines, the target-down fast path, and stop. No sockets: the
 * slots hold socketpair ends. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pool.h"
#include "supervisor.h"
#include "testing.h"
#include "timeutil.h"

static struct pool pool;
static int peers[64];

/* Does the pool's next job as the supervisor would: a connect job gets a
 * socketpair (its far end goes to *peer) or the error fail. */
static struct pool_connect_report connect_job(int fail, int *peer)
{
	struct pool_job job;
	pool_next_job(&pool, &job);
	ck_assert_int_eq(job.kind, POOL_JOB_CONNECT);
	if (fail)
		return pool_connected(&pool, job.slot, fail);
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	*peer = sv[1];
	return pool_connected(&pool, job.slot, sv[0]);
}

/* Puts every slot up, as the supervisor would after connecting. */
static void connect_all(int nslots, int queue)
{
	ck_assert_int_eq(pool_init(&pool, nslots, queue, 64, 1024), 0);
	for (int i = 0; i < nslots; i++)
		connect_job(0, &peers[i]);
}

/* A slot borrowed within a second: the pool has one free. */
static struct pool_slot *borrow_free(void)
{
	struct pool_slot *s;
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 1000, &s), 0);
	return s;
}

/* One slot, up and lent out: requests now wait in a queue of queue. */
static struct pool_slot *hold_only_slot(int queue)
{
	connect_all(1, queue);
	return borrow_free();
}

/* Does pool jobs until the pool stops (a supervisor without sockets). */
static void *job_loop(void *arg)
{
	(void)arg;
	struct pool_job job;
	for (pool_next_job(&pool, &job); job.kind != POOL_JOB_STOP; pool_next_job(&pool, &job))
		ck_assert_int_ne(job.kind, POOL_JOB_CONNECT);
	return NULL;
}

static void teardown_all(void)
{
	for (int i = 0; i < pool.nslots; i++)
		close(peers[i]);
	pool_destroy(&pool);
}

/* Polls until n clients wait (never sleep-and-hope). */
static void wait_for_waiters(int n)
{
	int64_t deadline = time_now_ms() + 5000;
	int live, busy, waiting = -1;
	while (time_now_ms() < deadline) {
		pool_counts(&pool, &live, &busy, &waiting);
		if (waiting == n)
			return;
		usleep(1000);
	}
	ck_abort_msg("expected %d waiters, saw %d", n, waiting);
}

START_TEST(test_borrow_return)
{
	connect_all(2, 8);
	struct pool_slot *a, *b, *c;
	a = borrow_free();
	b = borrow_free();
	ck_assert_ptr_ne(a, b);
	int live, busy, waiting;
	pool_counts(&pool, &live, &busy, &waiting);
	ck_assert_int_eq(live, 2);
	ck_assert_int_eq(busy, 2);
	pool_return(&pool, a, POOL_HEALTHY);
	c = borrow_free();
	ck_assert_ptr_eq(a, c);
	pool_return(&pool, b, POOL_HEALTHY);
	pool_return(&pool, c, POOL_HEALTHY);
	teardown_all();
}
END_TEST

START_TEST(test_deadline)
{
	struct pool_slot *a = hold_only_slot(8), *b;
	int64_t t0 = time_now_ms();
	ck_assert_int_eq(pool_borrow(&pool, t0 + 100, &b), -ETIMEDOUT);
	int64_t took = time_now_ms() - t0;
	ck_assert_int_ge(took, 99);
	ck_assert_int_lt(took, 2000);
	int live, busy, waiting;
	pool_counts(&pool, &live, &busy, &waiting);
	ck_assert_int_eq(waiting, 0); /* the timed-out waiter left the queue */
	pool_return(&pool, a, POOL_HEALTHY);
	teardown_all();
}
END_TEST

struct waiter_arg {
	int index;
	int64_t deadline;
	int rc;
	int hold_ms;
};
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
static int order[64];
static int norder;

static void *waiter(void *arg)
{
	struct waiter_arg *w = arg;
	struct pool_slot *s;
	w->rc = pool_borrow(&pool, w->deadline, &s);
	if (w->rc == 0) {
		pthread_mutex_lock(&order_lock);
		order[norder++] = w->index;
		pthread_mutex_unlock(&order_lock);
		pool_return(&pool, s, POOL_HEALTHY);
	}
	return NULL;
}

/* Starts n waiter threads with a 10 s deadline; in_order: each is in the
 * queue before the next starts, so the arrival order is known. */
static void start_waiters(pthread_t t[], struct waiter_arg args[], int n, bool in_order)
{
	for (int i = 0; i < n; i++) {
		args[i] = (struct waiter_arg){ .index = i, .deadline = time_now_ms() + 10000 };
		ck_assert_int_eq(pthread_create(&t[i], NULL, waiter, &args[i]), 0);
		if (in_order)
			wait_for_waiters(i + 1);
	}
}

/* Joins the n waiters: each got the slot. */
static void join_waiters(pthread_t t[], struct waiter_arg args[], int n)
{
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(args[i].rc, 0);
	}
}

START_TEST(test_fifo)
{
	enum { N = 12 };
	struct pool_slot *held = hold_only_slot(N);
	pthread_t t[N];
	struct waiter_arg args[N];
	norder = 0;
	start_waiters(t, args, N, true);
	pool_return(&pool, held, POOL_HEALTHY);
	join_waiters(t, args, N);
	ck_assert_int_eq(norder, N);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(order[i], i);
	teardown_all();
}
END_TEST

START_TEST(test_queue_full)
{
	struct pool_slot *held = hold_only_slot(2), *s;
	pthread_t t[2];
	struct waiter_arg args[2];
	start_waiters(t, args, 2, false);
	wait_for_waiters(2);
	int64_t t0 = time_now_ms();
	ck_assert_int_eq(pool_borrow(&pool, t0 + 5000, &s), -EAGAIN);
	ck_assert_int_lt(time_now_ms() - t0, 1000); /* refused at once, not at the deadline */
	pool_return(&pool, held, POOL_HEALTHY);
	join_waiters(t, args, 2);
	teardown_all();
}
END_TEST

/* Issue 13.5: with queue 0 (--queue-size's default) nobody is refused:
 * 50 clients behind one busy slot all get it before their deadline. */
START_TEST(test_queue_unlimited)
{
	enum { N = 50 };
	struct pool_slot *held = hold_only_slot(0);
	pthread_t t[N];
	struct waiter_arg args[N];
	norder = 0;
	start_waiters(t, args, N, false);
	wait_for_waiters(N);
	pool_return(&pool, held, POOL_HEALTHY);
	join_waiters(t, args, N);
	ck_assert_int_eq(norder, N);
	teardown_all();
}
END_TEST

static atomic_int owners[8];
static atomic_int violations;
static atomic_int borrowed;

static void *hammer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 2000; i++) {
		struct pool_slot *s;
		if (pool_borrow(&pool, time_now_ms() + 10000, &s) != 0) {
			atomic_fetch_add(&violations, 1);
			continue;
		}
		if (atomic_fetch_add(&owners[s->id], 1) != 0)
			atomic_fetch_add(&violations, 1); /* two threads hold one slot */
		atomic_fetch_add(&borrowed, 1);
		atomic_fetch_sub(&owners[s->id], 1);
		pool_return(&pool, s, POOL_HEALTHY);
	}
	return NULL;
}

START_TEST(test_contention)
{
	enum { THREADS = 16 };
	connect_all(4, THREADS);
	pthread_t t[THREADS];
	atomic_store(&violations, 0);
	atomic_store(&borrowed, 0);
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&violations), 0);
	ck_assert_int_eq(atomic_load(&borrowed), THREADS * 2000);
	int live, busy, waiting;
	pool_counts(&pool, &live, &busy, &waiting);
	ck_assert_int_eq(live, 4);
	ck_assert_int_eq(busy, 0);
	ck_assert_int_eq(waiting, 0);
	teardown_all();
}
END_TEST

START_TEST(test_target_down)
{
	ck_assert_int_eq(pool_init(&pool, 1, 8, 64, 1024), 0);
	pthread_t t;
	struct waiter_arg arg = { .index = 0, .deadline = time_now_ms() + 10000 };
	ck_assert_int_eq(pthread_create(&t, NULL, waiter, &arg), 0);
	wait_for_waiters(1);
	/* The supervisor's connect fails: the waiter hears it now, not at its deadline. */
	struct pool_connect_report r = connect_job(-ECONNREFUSED, NULL);
	ck_assert_int_ge(r.retry_ms, 1000); /* the default backoff, with jitter */
	ck_assert_int_le(r.retry_ms, 1100);
	ck_assert(r.now_down && !r.was_down);
	pthread_join(t, NULL);
	ck_assert_int_eq(arg.rc, -ENOTCONN);

	/* A borrower while it is down asks for one connect now, and waits for it. */
	arg.deadline = time_now_ms() + 10000;
	ck_assert_int_eq(pthread_create(&t, NULL, waiter, &arg), 0);
	wait_for_waiters(1);
	ck_assert_int_lt(pool.slots[0].next_attempt, time_now_ms() + 1000);
	r = connect_job(-ECONNREFUSED, NULL);
	ck_assert(r.now_down && r.was_down);
	pthread_join(t, NULL);
	ck_assert_int_eq(arg.rc, -ENOTCONN);
	/* ...at most one per POOL_DEMAND_MS: the next one fails at once */
	struct pool_slot *s;
	int64_t t0 = time_now_ms();
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 5000, &s), -ENOTCONN);
	ck_assert_int_lt(time_now_ms() - t0, 100);

	/* Back up after the interval: the borrower that asked is served. */
	while (time_now_ms() - t0 <= POOL_DEMAND_MS)
		usleep(1000);
	arg.deadline = time_now_ms() + 10000;
	ck_assert_int_eq(pthread_create(&t, NULL, waiter, &arg), 0);
	wait_for_waiters(1);
	int peer;
	r = connect_job(0, &peer);
	ck_assert(r.was_down && !r.now_down);
	pthread_join(t, NULL);
	ck_assert_int_eq(arg.rc, 0);
	s = borrow_free();
	pool_return(&pool, s, POOL_BROKEN); /* closed, to be connected again */
	ck_assert_int_eq(pool.slots[0].state, SLOT_DOWN);
	ck_assert_int_eq(pool.slots[0].fd, -1);
	close(peer);
	pool_destroy(&pool);
}
END_TEST

START_TEST(test_warming)
{
	ck_assert_int_eq(pool_init(&pool, 1, 8, 64, 1024), 0);
	pool.delay_ms = 150;
	int peer;
	connect_job(0, &peer);
	ck_assert_int_eq(pool.slots[0].state, SLOT_WARMING);
	struct pool_slot *s;
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 20, &s), -ETIMEDOUT);
	/* the supervisor makes it ready once --delay has passed */
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, job_loop, NULL), 0);
	int64_t t0 = time_now_ms();
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 5000, &s), 0);
	ck_assert_int_lt(time_now_ms() - t0, 1000);
	pool_return(&pool, s, POOL_HEALTHY);
	pool_stop(&pool);
	pthread_join(t, NULL);
	close(peer);
	pool_destroy(&pool);
}
END_TEST

START_TEST(test_stop)
{
	struct pool_slot *held = hold_only_slot(8), *s;
	pthread_t t;
	struct waiter_arg arg = { .index = 0, .deadline = time_now_ms() + 10000 };
	ck_assert_int_eq(pthread_create(&t, NULL, waiter, &arg), 0);
	wait_for_waiters(1);
	pool_stop(&pool);
	pthread_join(t, NULL);
	ck_assert_int_eq(arg.rc, -ESHUTDOWN);
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 1000, &s), -ESHUTDOWN);
	pool_return(&pool, held, POOL_HEALTHY);
	teardown_all();
}
END_TEST

START_TEST(test_backoff)
{
	ck_assert_int_eq(pool_backoff(1000, 1, 0), 1000);
	ck_assert_int_eq(pool_backoff(1000, 2, 0), 2000);
	ck_assert_int_eq(pool_backoff(1000, 3, 0), 4000);
	ck_assert_int_eq(pool_backoff(1000, 6, 0), 30000);
	ck_assert_int_eq(pool_backoff(1000, 1000, 0), 30000);
	ck_assert_int_eq(pool_backoff(60000, 5, 0), 60000); /* cap never below the base */
	int64_t j = pool_backoff(1000, 1, 12345);
	ck_assert_int_ge(j, 1000);
	ck_assert_int_le(j, 1100);
	ck_assert_int_eq(pool_backoff(0, 3, 7), 0);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("pool");
	TM_CASE(s, "lending", 0, test_borrow_return, test_deadline, test_warming);
	TM_CASE(s, "waiting", 30, test_fifo, test_queue_full, test_queue_unlimited, test_contention);
	TM_CASE(s, "failures", 0, test_target_down, test_stop, test_backoff);
	return s;
}
