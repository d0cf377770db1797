/* Tests for src/exchange.c over socketpairs: the test thread plays the
 * target (and the client), an exchange runs in a thread of its own against
 * a one-slot pool. Late answers, wrong ids, half answers, the gap, policy
 * refusals, a follower's deadline, clients that leave. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "dialect.h"
#include "exchange.h"
#include "net.h"
#include "pool.h"
#include "readshare.h"
#include "testing.h"
#include "timeutil.h"
#include "upstream.h"

#define IO_MS 3000

static struct config cfg;
static struct dialect dialect;
static struct upstream up;
static struct pool pool;
static struct readshare share;
static struct exchange_env env;
static const atomic_int not_stopping;
static int target = -1; /* our end of the one upstream connection */

/* A daemon's worth of exchange machinery for codec name, one slot, up. */
static void setup_for(const char *codec)
{
	cli_defaults(&cfg);
	cfg.codec = codec_find(codec);
	cfg.answer_timeout_ms = 300;
	cfg.timeout_ms = 2000;
}

static void start(void)
{
	dialect_init(&dialect, &cfg);
	upstream_init(&up, &cfg, &dialect);
	ck_assert_int_eq(pool_init(&pool, 1, 0, 256, cfg.max_frame), 0);
	struct pool_job job;
	pool_next_job(&pool, &job);
	ck_assert_int_eq(job.kind, POOL_JOB_CONNECT);
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	target = sv[1];
	upstream_tune(&up, sv[0]);
	pool_connected(&pool, job.slot, sv[0]);
	env = (struct exchange_env){ .pool = &pool, .cfg = &cfg, .dialect = &dialect, .upstream = &up };
	if (cfg.coalesce) {
		readshare_init(&share, 1, 0);
		env.share = &share;
	}
}

static void finish(void)
{
	close(target);
	pool_destroy(&pool);
	if (env.share != NULL)
		readshare_destroy(&share);
}

/* One exchange in a thread. */
struct run {
	uint8_t req[260];
	size_t len;
	int64_t deadline;
	int client_fd;
	pthread_t th;
	enum exchange_result res;
	struct buf out;
	int64_t took;
};

static void *run_main(void *arg)
{
	struct run *r = arg;
	struct frame_ctx ctx = { .max_frame = cfg.max_frame };
	struct exchange_req er = { .req = r->req, .len = r->len, .deadline = r->deadline,
				   .client_fd = r->client_fd, .stopping = &not_stopping, .who = "test" };
	int64_t t0 = time_now_ms();
	r->res = exchange_run(&env, &er, &ctx, &r->out);
	r->took = time_now_ms() - t0;
	return NULL;
}

static void run_start(struct run *r, const void *req, size_t len)
{
	memcpy(r->req, req, len);
	r->len = len;
	if (r->deadline == 0)
		r->deadline = time_now_ms() + cfg.timeout_ms;
	if (r->client_fd == 0)
		r->client_fd = -1;
	ck_assert_int_eq(buf_init(&r->out, 64, 4096), 0);
	ck_assert_int_eq(pthread_create(&r->th, NULL, run_main, r), 0);
}

static enum exchange_result run_join(struct run *r)
{
	pthread_join(r->th, NULL);
	return r->res;
}

/* Reads one Modbus request at the target; returns its transaction id. */
static uint16_t target_modbus_req(uint8_t *req)
{
	ck_assert_int_eq(tm_modbus_recv(target, req, 260, IO_MS), 12);
	return modbus_tid(req);
}

/* The answer to a read of one register with tid and value v. */
static void target_answer(uint16_t tid, uint8_t unit, uint16_t v)
{
	uint8_t a[11] = { (uint8_t)(tid >> 8), (uint8_t)tid, 0, 0, 0, 5, unit, 3, 2, (uint8_t)(v >> 8), (uint8_t)v };
	ck_assert_int_eq(tm_write_all(target, a, sizeof a), 0);
}

static void assert_answer(struct run *r, uint16_t client_tid, uint16_t v)
{
	ck_assert_int_eq(r->res, EXCH_OK);
	ck_assert_int_eq(buf_len(&r->out), 11);
	const uint8_t *a = buf_head(&r->out);
	ck_assert_int_eq(modbus_tid(a), client_tid);
	ck_assert_int_eq(a[9] << 8 | a[10], v);
	buf_free(&r->out);
}

/* The target answers tag with v; r ends with it, under its client's tid. */
static void answer_run(struct run *r, uint16_t tag, uint16_t client_tid, uint16_t v)
{
	target_answer(tag, 1, v);
	run_join(r);
	assert_answer(r, client_tid, v);
}

static enum slot_state slot_state(void)
{
	pthread_mutex_lock(&pool.lock);
	enum slot_state st = pool.slots[0].state;
	pthread_mutex_unlock(&pool.lock);
	return st;
}

/* A late answer to a request that timed out is recognised by our id and
 * dropped; the next client gets its own answer on the same connection. */
START_TEST(test_late_answer_dropped)
{
	setup_for("modbus");
	start();
	uint8_t req[12], seen[260];
	struct run a = { 0 }, b = { 0 };
	run_start(&a, req, tm_modbus_req_read(req, 0x1111, 1, 3, 0, 1));
	uint16_t late_tid = target_modbus_req(seen);
	ck_assert_int_eq(run_join(&a), EXCH_TIMEOUT);
	ck_assert_int_eq(slot_state(), SLOT_IDLE); /* with ids the connection is kept */
	buf_free(&a.out);
	run_start(&b, req, tm_modbus_req_read(req, 0x2222, 1, 3, 0, 1));
	uint16_t tid = target_modbus_req(seen);
	ck_assert_int_ne(tid, late_tid);
	target_answer(late_tid, 1, 999); /* the late one first */
	answer_run(&b, tid, 0x2222, 42);
	finish();
}
END_TEST

/* An answer with an id nobody is waiting for is never delivered. */
START_TEST(test_wrong_id_dropped)
{
	setup_for("modbus");
	start();
	uint8_t req[12], seen[260];
	struct run a = { 0 };
	run_start(&a, req, tm_modbus_req_read(req, 7, 1, 3, 0, 1));
	uint16_t tid = target_modbus_req(seen);
	target_answer((uint16_t)(tid + 1), 1, 666);
	answer_run(&a, tid, 7, 7);
	finish();
}
END_TEST

/* Without ids, an answer that cannot be trusted closes the connection:
 * half of one and then silence is a timeout (its answer could still come,
 * to someone else); bytes beyond the answer in the same read leave nobody
 * able to tell which frame answers the request, so none is delivered. */
static const struct {
	const char *name;
	const char *sends; /* what the target answers "ping\n" with */
	size_t len;
	enum exchange_result want;
} untrusted[] = {
	{ "half an answer", "po", 2, EXCH_TIMEOUT },
	{ "bytes beyond the answer", "pong\nstray\n", 11, EXCH_BAD_GATEWAY },
};

START_TEST(test_untrusted_answer)
{
	setup_for("echo");
	start();
	struct run a = { 0 };
	run_start(&a, "ping\n", 5);
	char got[16];
	ck_assert_int_eq(tm_line_recv(target, got, sizeof got, IO_MS), 5);
	ck_assert_int_eq(tm_write_all(target, untrusted[_i].sends, untrusted[_i].len), 0);
	ck_assert_msg(run_join(&a) == untrusted[_i].want, "%s", untrusted[_i].name);
	ck_assert_int_eq(slot_state(), SLOT_DOWN);
	buf_free(&a.out);
	finish();
}
END_TEST

/* --request-gap: the next request reaches the target no sooner than the
 * gap after the previous answer. */
START_TEST(test_request_gap)
{
	setup_for("echo");
	cfg.request_gap_ms = 150;
	start();
	char got[16];
	struct run a = { 0 }, b = { 0 };
	run_start(&a, "one\n", 4);
	ck_assert_int_eq(tm_line_recv(target, got, sizeof got, IO_MS), 4);
	ck_assert_int_eq(tm_write_all(target, "1\n", 2), 0);
	ck_assert_int_eq(run_join(&a), EXCH_OK);
	int64_t answered = time_now_ms();
	run_start(&b, "two\n", 4);
	ck_assert_int_eq(tm_line_recv(target, got, sizeof got, IO_MS), 4);
	ck_assert_int_ge(time_now_ms() - answered, 140);
	ck_assert_int_eq(tm_write_all(target, "2\n", 2), 0);
	ck_assert_int_eq(run_join(&b), EXCH_OK);
	buf_free(&a.out);
	buf_free(&b.out);
	finish();
}
END_TEST

/* The dialect's policy check refuses a write under --modbus-read-only
 * before anything is sent. */
START_TEST(test_policy_refusal)
{
	setup_for("modbus");
	cfg.modbus_policy.read_only = 1;
	start();
	uint8_t req[12];
	char why[160];
	tm_modbus_req_write1(req, 1, 1, 10, 5);
	ck_assert_int_eq(dialect.check(&dialect, req, 12, why, sizeof why), CODEC_ERR_POLICY);
	ck_assert_ptr_nonnull(strstr(why, "--modbus-read-only"));
	tm_modbus_req_read(req, 1, 1, 3, 10, 5);
	ck_assert_int_eq(dialect.check(&dialect, req, 12, why, sizeof why), CODEC_ERR_NONE);
	ck_assert_int_eq(net_peer_state(target), 0);
	uint8_t b;
	ck_assert_int_eq(recv(target, &b, 1, MSG_DONTWAIT), -1); /* nothing reached the target */
	finish();
}
END_TEST

/* A coalescing follower whose own deadline passes first waits as long as
 * its leader may, and gets the leader's answer. */
START_TEST(test_follower_deadline)
{
	setup_for("modbus");
	cfg.coalesce = 1;
	cfg.answer_timeout_ms = 2000;
	start();
	uint8_t req[12], seen[260];
	struct run lead = { 0 }, follow = { 0 };
	run_start(&lead, req, tm_modbus_req_read(req, 1, 1, 3, 0, 1));
	uint16_t tid = target_modbus_req(seen);
	follow.deadline = time_now_ms() + 100;
	run_start(&follow, req, tm_modbus_req_read(req, 2, 1, 3, 0, 1));
	tm_sleep_ms(300); /* the target's pace: it answers past the follower's own deadline */
	target_answer(tid, 1, 77);
	run_join(&lead);
	run_join(&follow);
	assert_answer(&lead, 1, 77);
	assert_answer(&follow, 2, 77);
	finish();
}
END_TEST

/* Polls until n clients wait for the slot. */
static void wait_for_waiters(int n)
{
	int live, busy, waiting = -1;
	for (int64_t end = time_now_ms() + IO_MS; time_now_ms() < end && waiting != n; tm_sleep_ms(1))
		pool_counts(&pool, &live, &busy, &waiting);
	ck_assert_int_eq(waiting, n);
}

/* A client that left while it queued for the connection: its request is
 * never sent (a write here, so the hand-off leaves the check to it). */
START_TEST(test_client_gone_before_send)
{
	setup_for("modbus");
	start();
	struct pool_slot *held;
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + IO_MS, &held), 0);
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	uint8_t req[12];
	struct run a = { .client_fd = sv[0] };
	run_start(&a, req, tm_modbus_req_write1(req, 1, 1, 10, 5));
	wait_for_waiters(1);
	close(sv[1]);
	pool_return(&pool, held, POOL_HEALTHY);
	ck_assert_int_eq(run_join(&a), EXCH_CLIENT_GONE);
	uint8_t b;
	ck_assert_int_eq(recv(target, &b, 1, MSG_DONTWAIT), -1);
	ck_assert_int_eq(slot_state(), SLOT_IDLE);
	close(sv[0]);
	buf_free(&a.out);
	finish();
}
END_TEST

/* A read queued behind a held connection is put on the wire by the thread
 * that gives the connection back (the hand-off), and gets its answer. */
START_TEST(test_handoff_sends_for_waiter)
{
	setup_for("modbus");
	start();
	struct pool_slot *held;
	ck_assert_int_eq(pool_borrow(&pool, time_now_ms() + IO_MS, &held), 0);
	uint8_t req[12], seen[260];
	struct run a = { 0 };
	run_start(&a, req, tm_modbus_req_read(req, 9, 1, 3, 0, 1));
	wait_for_waiters(1);
	held->last_answer_at = time_now_ms();
	uint16_t tag = (uint16_t)held->next_tag;
	pool_return(&pool, held, POOL_HEALTHY);
	ck_assert_int_eq(target_modbus_req(seen), tag); /* sent with the slot's next id */
	answer_run(&a, tag, 9, 5);
	finish();
}
END_TEST

/* A client that leaves while its answer is awaited (ids): the connection
 * goes back at once, and the late answer is dropped by id later. */
START_TEST(test_client_leaves_while_waiting)
{
	setup_for("modbus");
	cfg.answer_timeout_ms = 2000;
	start();
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	uint8_t req[12], seen[260];
	struct run a = { .client_fd = sv[0] }, b = { 0 };
	run_start(&a, req, tm_modbus_req_read(req, 1, 1, 3, 0, 1));
	uint16_t late = target_modbus_req(seen);
	shutdown(sv[1], SHUT_WR);
	ck_assert_int_eq(run_join(&a), EXCH_CLIENT_GONE);
	ck_assert_int_lt(a.took, 1000);
	run_start(&b, req, tm_modbus_req_read(req, 2, 1, 3, 0, 1));
	uint16_t tid = target_modbus_req(seen);
	target_answer(late, 1, 1);
	answer_run(&b, tid, 2, 2);
	close(sv[0]);
	close(sv[1]);
	buf_free(&a.out);
	finish();
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("exchange");
	TM_LOOPS(s, "answers", 20, TM_ONCE(test_late_answer_dropped), TM_ONCE(test_wrong_id_dropped),
		 TM_LOOP(test_untrusted_answer, untrusted));
	TM_CASE(s, "timing", 20, test_request_gap, test_follower_deadline);
	TM_CASE(s, "policy and clients", 20, test_policy_refusal, test_client_gone_before_send,
		test_handoff_sends_for_waiter, test_client_leaves_while_waiting);
	return s;
}
