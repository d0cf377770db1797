/* Tests for src/pool.c: lending under contention, arrival order, the queue
 * cap, deadlines, the target-down fast path, and stop. No sockets: the
 * slots hold socketpair ends. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pool.h"
#include "supervisor.h"
#include "testing.h"
#include "timeutil.h"

static struct pool pool;
static int peers[64];

/* Puts every slot up, as the supervisor would after connecting. */
static void connect_all(int nslots, int queue)
{
	ck_assert_int_eq(pool_init(&pool, nslots, queue, 64, 1024), 0);
	pthread_mutex_lock(&pool.lock);
	for (int i = 0; i < nslots; i++) {
		int sv[2];
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		peers[i] = sv[1];
		pool_slot_connected_locked(&pool, &pool.slots[i], sv[0], 0);
	}
	pthread_mutex_unlock(&pool.lock);
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
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 1000, &a), 0);
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 1000, &b), 0);
	ck_assert_ptr_ne(a, b);
	int live, busy, waiting;
	pool_counts(&pool, &live, &busy, &waiting);
	ck_assert_int_eq(live, 2);
	ck_assert_int_eq(busy, 2);
	pool_return(&pool, a, 1);
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 1000, &c), 0);
	ck_assert_ptr_eq(a, c);
	pool_return(&pool, b, 1);
	pool_return(&pool, c, 1);
	teardown_all();
}
END_TEST

START_TEST(test_deadline)
{
	connect_all(1, 8);
	struct pool_slot *a, *b;
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 1000, &a), 0);
	int64_t t0 = time_now_ms();
	ck_assert_int_eq(pool_borrow(&pool, t0 + 100, &b), -ETIMEDOUT);
	int64_t took = time_now_ms() - t0;
	ck_assert_int_ge(took, 99);
	ck_assert_int_lt(took, 2000);
	int live, busy, waiting;
	pool_counts(&pool, &live, &busy, &waiting);
	ck_assert_int_eq(waiting, 0); /* the timed-out waiter left the queue */
	pool_return(&pool, a, 1);
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
		pool_return(&pool, s, 1);
	}
	return NULL;
}

START_TEST(test_fifo)
{
	enum { N = 12 };
	connect_all(1, N);
	struct pool_slot *held;
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 1000, &held), 0);
	pthread_t t[N];
	struct waiter_arg args[N];
	norder = 0;
	for (int i = 0; i < N; i++) {
		args[i] = (struct waiter_arg){ .index = i, .deadline = time_now_ms() + 10000 };
		ck_assert_int_eq(pthread_create(&t[i], NULL, waiter, &args[i]), 0);
		wait_for_waiters(i + 1); /* arrival order is now known */
	}
	pool_return(&pool, held, 1);
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(args[i].rc, 0);
	}
	ck_assert_int_eq(norder, N);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(order[i], i);
	teardown_all();
}
END_TEST

START_TEST(test_queue_full)
{
	connect_all(1, 2);
	struct pool_slot *held, *s;
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 1000, &held), 0);
	pthread_t t[2];
	struct waiter_arg args[2];
	for (int i = 0; i < 2; i++) {
		args[i] = (struct waiter_arg){ .index = i, .deadline = time_now_ms() + 10000 };
		ck_assert_int_eq(pthread_create(&t[i], NULL, waiter, &args[i]), 0);
	}
	wait_for_waiters(2);
	int64_t t0 = time_now_ms();
	ck_assert_int_eq(pool_borrow(&pool, t0 + 5000, &s), -EAGAIN);
	ck_assert_int_lt(time_now_ms() - t0, 1000); /* refused at once, not at the deadline */
	pool_return(&pool, held, 1);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(args[i].rc, 0);
	}
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
		pool_return(&pool, s, 1);
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
	pthread_mutex_lock(&pool.lock);
	pool.slots[0].state = SLOT_CONNECTING;
	int64_t wait = pool_slot_failed_locked(&pool, &pool.slots[0]);
	ck_assert_int_ge(wait, 1000); /* the default backoff, with jitter */
	ck_assert_int_le(wait, 1100);
	pthread_mutex_unlock(&pool.lock);
	pthread_join(t, NULL);
	ck_assert_int_eq(arg.rc, -ENOTCONN);
	struct pool_slot *s;
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 5000, &s), -ENOTCONN);
	/* Back up: served again. */
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pthread_mutex_lock(&pool.lock);
	pool_slot_connected_locked(&pool, &pool.slots[0], sv[0], 0);
	pthread_mutex_unlock(&pool.lock);
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 1000, &s), 0);
	pool_return(&pool, s, 0); /* broken: closed, supervisor asked to reconnect */
	ck_assert_int_eq(pool.slots[0].state, SLOT_DOWN);
	ck_assert_int_eq(pool.slots[0].fd, -1);
	close(sv[1]);
	pool_destroy(&pool);
}
END_TEST

START_TEST(test_warming)
{
	ck_assert_int_eq(pool_init(&pool, 1, 8, 64, 1024), 0);
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pthread_mutex_lock(&pool.lock);
	pool_slot_connected_locked(&pool, &pool.slots[0], sv[0], time_now_ms() + 60000);
	pthread_mutex_unlock(&pool.lock);
	struct pool_slot *s;
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 50, &s), -ETIMEDOUT);
	pthread_mutex_lock(&pool.lock);
	pool_slot_ready_locked(&pool, &pool.slots[0]);
	pthread_mutex_unlock(&pool.lock);
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 50, &s), 0);
	pool_return(&pool, s, 1);
	close(sv[1]);
	pool_destroy(&pool);
}
END_TEST

START_TEST(test_stop)
{
	connect_all(1, 8);
	struct pool_slot *held, *s;
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 1000, &held), 0);
	pthread_t t;
	struct waiter_arg arg = { .index = 0, .deadline = time_now_ms() + 10000 };
	ck_assert_int_eq(pthread_create(&t, NULL, waiter, &arg), 0);
	wait_for_waiters(1);
	pool_stop(&pool);
	pthread_join(t, NULL);
	ck_assert_int_eq(arg.rc, -ESHUTDOWN);
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + 1000, &s), -ESHUTDOWN);
	pool_return(&pool, held, 1);
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
	TM_CASE(s, "waiting", 30, test_fifo, test_queue_full, test_contention);
	TM_CASE(s, "failures", 0, test_target_down, test_stop, test_backoff);
	return s;
}
