/* End to end, the edges of one request's life: its one deadline (taken at
 * its first byte, shared by a coalescing follower), a client that leaves,
 * a target that comes back, and waiting rather than refusing by default. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

#define IO_MS 5000

struct reading {
	int fd;
	uint16_t tid, addr;
	int rc;
	uint8_t exc;
	uint16_t v;
};

static void *read_one(void *arg)
{
	struct reading *r = arg;
	r->rc = tm_modbus_read(r->fd, r->tid, 1, 3, r->addr, 1, &r->v, &r->exc);
	return NULL;
}

/* Two identical reads queue behind a slow one with --coalesce: one leads,
 * one follows. The leader's wait for the connection plus the answer take
 * longer than --timeout; whatever the leader gets, the follower gets the
 * same (it used to give up one --timeout after it joined, while the
 * leader, whose two waits each had a --timeout, went on and succeeded). */
START_TEST(test_follower_shares_leader_deadline)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .delay_ms = 700 };
	const char *extra[] = { "--coalesce", "--timeout", "1s", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	int port = p.port;

	struct reading hold = { .fd = tm_connect(port), .tid = 1, .addr = 1 };
	pthread_t th[3];
	ck_assert_int_eq(pthread_create(&th[0], NULL, read_one, &hold), 0);
	ck_assert(TM_SIM_WAIT(p.sim, requests, 1, IO_MS)); /* the one connection is busy for 700 ms */
	struct reading same[2] = { { .fd = tm_connect(port), .tid = 2, .addr = 5 },
				   { .fd = tm_connect(port), .tid = 3, .addr = 5 } };
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[1 + i], NULL, read_one, &same[i]), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	fprintf(stderr, "follower: rc %d/%d exception 0x%02x/0x%02x\n", same[0].rc, same[1].rc, same[0].exc,
		same[1].exc);
	ck_assert_int_eq(hold.rc, 0);
	ck_assert_int_eq(same[0].rc, 0);
	ck_assert_int_eq(same[1].rc, 0);
	ck_assert_int_eq(same[0].exc, same[1].exc);
	ck_assert_int_eq(same[0].v, same[1].v);
	close(hold.fd);
	close(same[0].fd);
	close(same[1].fd);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* A client idle for longer than --timeout, whose next request then comes
 * in two segments, is answered: the request's deadline starts with its
 * first byte, not with the idle wait before it. */
START_TEST(test_deadline_starts_at_first_byte)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	const char *extra[] = { "--timeout", "500ms", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	int fd = tm_pair_client(&p);
	uint8_t req[12], resp[260];
	tm_modbus_req_read(req, 7, 1, 3, 0, 1);
	tm_sleep_ms(800); /* the client's own pace: idle past --timeout */
	ck_assert_int_eq(tm_write_all(fd, req, 5), 0);
	tm_sleep_ms(300); /* the rest of the request comes later, within --timeout of its first byte */
	ck_assert_int_eq(tm_write_all(fd, req + 5, sizeof req - 5), 0);
	ck_assert_int_eq(tm_modbus_recv(fd, resp, sizeof resp, IO_MS), 11);
	close(fd);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* A request the device ignores, whose client then leaves, gives the only
 * connection back at once (the late answer would be dropped by its id):
 * the next client is served at once, not after --timeout (60 s). */
START_TEST(test_ignored_request_client_leaves)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .drop_every = 2 };
	const char *extra[] = { NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	int port = p.port;
	int a = tm_connect(port), b = tm_connect(port);
	uint16_t v;
	uint8_t exc = 0xff, req[12];
	ck_assert_int_eq(tm_modbus_read(a, 1, 1, 3, 0, 1, &v, &exc), 0);
	ck_assert_int_eq(exc, 0);
	tm_modbus_req_read(req, 2, 1, 3, 0, 1);
	ck_assert_int_eq(tm_write_all(a, req, sizeof req), 0);
	ck_assert(TM_SIM_WAIT(p.sim, dropped, 1, IO_MS));
	close(a);
	int64_t t0 = tm_now_ms();
	ck_assert_int_eq(tm_modbus_read(b, 3, 1, 3, 0, 1, &v, &exc), 0);
	int64_t took = tm_now_ms() - t0;
	fprintf(stderr, "ignored request, client gone: next client served in %lld ms\n", (long long)took);
	ck_assert_int_eq(exc, 0);
	ck_assert_int_lt(took, 1000);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, accepted), 1);
	close(b);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* A request the device ignores while its client stays holds the
 * connection for --answer-timeout, not for the whole --timeout. */
START_TEST(test_ignored_request_answer_timeout)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .drop_every = 1000 };
	/* request 1000 is dropped: send 999 first through the proxy, fast */
	const char *extra[] = { "--answer-timeout", "300ms", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	int port = p.port;
	int a = tm_connect(port), b = tm_connect(port);
	uint16_t v;
	uint8_t exc = 0;
	for (int i = 0; i < 999; i++)
		ck_assert_int_eq(tm_modbus_read(a, (uint16_t)i, 1, 3, 0, 1, &v, &exc), 0);
	struct reading ignored = { .fd = a, .tid = 1000, .addr = 0 };
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, read_one, &ignored), 0);
	ck_assert(TM_SIM_WAIT(p.sim, dropped, 1, IO_MS));
	int64_t t0 = tm_now_ms();
	ck_assert_int_eq(tm_modbus_read(b, 1, 1, 3, 0, 1, &v, &exc), 0);
	int64_t took = tm_now_ms() - t0;
	pthread_join(th, NULL);
	fprintf(stderr, "ignored request: next client served in %lld ms, the ignored one got 0x%02x\n",
		(long long)took, ignored.exc);
	ck_assert_int_eq(exc, 0);
	ck_assert_int_lt(took, 2000);
	ck_assert_int_eq(ignored.exc, 0x0B);
	close(a);
	close(b);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* Reads every 20 ms until one is answered or limit_ms pass; returns the
 * time of the first answer (or -1) and counts 0x0A answers. */
static int64_t poll_until_served(int port, int limit_ms, int *refused)
{
	int64_t end = tm_now_ms() + limit_ms;
	int fd = -1;
	for (uint16_t tid = 1; tm_now_ms() < end && tid < 10000; tid++) {
		if (fd < 0)
			fd = tm_connect(port);
		uint16_t v;
		uint8_t exc = 0;
		int rc = fd >= 0 ? tm_modbus_read(fd, tid, 1, 3, 0, 1, &v, &exc) : -1;
		if (rc == 0 && exc == 0) {
			close(fd);
			return tm_now_ms();
		}
		*refused += rc == 0 && exc == 0x0A;
		if (rc != 0 && fd >= 0) {
			close(fd);
			fd = -1;
		}
		tm_sleep_ms(20); /* a poller's pace */
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

/* A target that starts 1.5 s after the daemon is used within a moment of
 * accepting connections (a borrower asks for a connect instead of waiting
 * for the backoff schedule), and a poller that finds it down causes only a
 * few connect attempts a second. */
START_TEST(test_back_at_once)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	const char *extra[] = { NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start_down(&p, &o, extra), 0);
	int port = p.port;
	int refused = 0;
	int64_t t0 = tm_now_ms();
	ck_assert_int_eq(poll_until_served(port, 1500, &refused), -1);
	int attempts = tm_daemon_log_count(p.d, 0, "cannot connect");
	double per_s = attempts * 1000.0 / (double)(tm_now_ms() - t0);
	ck_assert_int_eq(sim_revive(p.sim), 0);
	int64_t up = tm_now_ms();
	int64_t served = poll_until_served(port, IO_MS, &refused);
	ck_assert_int_ge(served, 0);
	fprintf(stderr, "back at once: served %lld ms after the target listened; while down %d connect attempts "
		"(%.1f/s), %d answers 0x0A\n", (long long)(served - up), attempts, per_s, refused);
	ck_assert_int_gt(refused, 0);
	ck_assert_int_lt(served - up, 1000); /* the backoff schedule alone took 1.5-3 s here */
	ck_assert(per_s <= 6.0);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

struct poller {
	int port, n;
	int ok, refused, wrong, other;
};

static void *poll_many(void *arg)
{
	struct poller *p = arg;
	int fd = tm_connect(p->port);
	for (int i = 0; i < p->n && fd >= 0; i++) {
		uint16_t v;
		uint8_t exc = 0;
		int rc = tm_modbus_read(fd, (uint16_t)i, 1, 3, (uint16_t)(i % 50), 1, &v, &exc);
		if (rc == 0 && exc == 0x0A)
			p->refused++;
		else if (rc == 0 && exc == 0)
			p->ok++;
		else if (rc == -EPROTO)
			p->wrong++;
		else
			p->other++;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* 50 clients through one connection with default options: every read is
 * served (the default queue waits; it used to refuse past 32 waiters). */
START_TEST(test_wait_by_default)
{
	enum { N = 50, R = 40 };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	const char *extra[] = { NULL };
	struct tm_pair pair;
	ck_assert_int_eq(tm_pair_start(&pair, &o, extra), 0);
	static struct poller p[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		p[i] = (struct poller){ .port = pair.port, .n = R };
		ck_assert_int_eq(pthread_create(&th[i], NULL, poll_many, &p[i]), 0);
	}
	int ok = 0, refused = 0, wrong = 0, other = 0;
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		ok += p[i].ok, refused += p[i].refused, wrong += p[i].wrong, other += p[i].other;
	}
	fprintf(stderr, "wait by default: ok=%d 0x0A=%d wrong=%d other=%d\n", ok, refused, wrong, other);
	ck_assert_int_eq(refused, 0);
	ck_assert_int_eq(wrong, 0);
	ck_assert_int_eq(other, 0);
	ck_assert_int_eq(ok, N * R);
	ck_assert_int_eq(tm_pair_stop(&pair), 0);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_edges");
	TM_CASE(s, "deadline", 30, test_follower_shares_leader_deadline,
		test_deadline_starts_at_first_byte);
	TM_CASE(s, "abandoned", 30, test_ignored_request_client_leaves,
		test_ignored_request_answer_timeout);
	TM_CASE(s, "availability", 60, test_back_at_once, test_wait_by_default);
	return s;
}
