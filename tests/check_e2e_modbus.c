/* End to end, Modbus/TCP: the real daemon between concurrent clients and a
 * simulated target that accepts one (or four) connections; every answer is
 * checked against the register formula, so a misdelivered answer fails. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

/* What one client thread did. */
struct client_run {
	int port;
	int index;
	int requests;          /* how many reads to make */
	atomic_int *stop;      /* or run until this is set (requests == 0) */
	int ok;                /* correct answers */
	int exc_0a, exc_0b;    /* gateway exceptions */
	int mismatches;        /* answers that were not ours, or wrong values */
	int closed;            /* the daemon closed the connection or timed out */
	int other_exc;
};

/* One read of 1..4 registers at an address and unit that identify this
 * client and request; checks every value against the simulator's formula. */
static void one_read(struct client_run *r, int fd, int i)
{
	uint16_t tid = (uint16_t)(r->index * 1000 + i);
	uint8_t unit = (uint8_t)(1 + r->index % 200);
	uint8_t fc = (i % 2) ? 3 : 4;
	uint16_t addr = (uint16_t)(r->index * 256 + (i * 7) % 200);
	uint16_t qty = (uint16_t)(1 + i % 4);
	uint16_t vals[4];
	uint8_t exc = 0;

	int rc = tm_modbus_read(fd, tid, unit, fc, addr, qty, vals, &exc);
	if (rc == -EPROTO) {
		r->mismatches++;
		return;
	}
	if (rc < 0) {
		r->closed++;
		return;
	}
	if (exc == 0x0A) {
		r->exc_0a++;
		return;
	}
	if (exc == 0x0B) {
		r->exc_0b++;
		return;
	}
	if (exc != 0) {
		r->other_exc++;
		return;
	}
	for (int k = 0; k < qty; k++) {
		if (vals[k] != sim_modbus_value(fc, (uint16_t)(addr + k), unit)) {
			r->mismatches++;
			return;
		}
	}
	r->ok++;
}

static void *client_main(void *arg)
{
	struct client_run *r = arg;
	int fd = tm_connect(r->port);
	if (fd < 0) {
		r->closed++;
		return NULL;
	}
	for (int i = 0; r->requests ? i < r->requests : !atomic_load(r->stop) && i < 100000; i++) {
		int before = r->closed;
		one_read(r, fd, i);
		if (r->closed != before) {
			close(fd); /* the daemon dropped us: come back as a new client */
			fd = tm_connect(r->port);
			if (fd < 0)
				return NULL;
		}
	}
	close(fd);
	return NULL;
}

struct totals {
	int ok, exc_0a, exc_0b, mismatches, closed, other_exc;
};

static struct totals run_clients(int port, int nclients, int requests, atomic_int *stop,
				 pthread_t *threads, struct client_run *runs, int join)
{
	struct totals t = { 0 };
	if (!join) {
		for (int i = 0; i < nclients; i++) {
			runs[i] = (struct client_run){ .port = port, .index = i, .requests = requests, .stop = stop };
			ck_assert_int_eq(pthread_create(&threads[i], NULL, client_main, &runs[i]), 0);
		}
		return t;
	}
	for (int i = 0; i < nclients; i++) {
		pthread_join(threads[i], NULL);
		t.ok += runs[i].ok;
		t.exc_0a += runs[i].exc_0a;
		t.exc_0b += runs[i].exc_0b;
		t.mismatches += runs[i].mismatches;
		t.closed += runs[i].closed;
		t.other_exc += runs[i].other_exc;
	}
	return t;
}

/* (1) 50 clients x 200 reads through a target that accepts ONE connection. */
START_TEST(test_fifty_clients_one_connection)
{
	enum { N = 50, R = 200 };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	const char *extra[] = { "--timeout", "10", "--queue-size", "64", NULL };
	struct tm_daemon *d = tm_daemon_start_sim(s, extra);
	ck_assert_ptr_nonnull(d);

	static pthread_t th[N];
	static struct client_run runs[N];
	run_clients(tm_daemon_port(d), N, R, NULL, th, runs, 0);
	struct totals t = run_clients(0, N, 0, NULL, th, runs, 1);
	fprintf(stderr, "50x200: ok=%d 0x0A=%d 0x0B=%d mismatches=%d closed=%d\n", t.ok, t.exc_0a,
		t.exc_0b, t.mismatches, t.closed);
	ck_assert_int_eq(t.mismatches, 0);
	ck_assert_int_eq(t.ok, N * R);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.accepted, 1);   /* one upstream connection throughout */
	ck_assert_int_eq(st.rejected, 0);
	ck_assert_int_eq(st.answers, N * R);
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	sim_stop(s);
}
END_TEST

/* (2) --max-connections 4 against a target that takes 4 and answers in
 * 2 ms: the target sees 4 requests in flight at once. */
START_TEST(test_four_connections_in_parallel)
{
	enum { N = 32, R = 40 };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 4, .delay_ms = 2 };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	const char *extra[] = { "--max-connections", "4", "--timeout", "10", NULL };
	struct tm_daemon *d = tm_daemon_start_sim(s, extra);
	ck_assert_ptr_nonnull(d);
	/* all four connected before the clients start */
	ck_assert(TM_SIM_WAIT(s, accepted, 4, 5000));

	static pthread_t th[N];
	static struct client_run runs[N];
	run_clients(tm_daemon_port(d), N, R, NULL, th, runs, 0);
	struct totals t = run_clients(0, N, 0, NULL, th, runs, 1);
	ck_assert_int_eq(t.mismatches, 0);
	ck_assert_int_eq(t.ok, N * R);

	struct sim_stats st;
	sim_get_stats(s, &st);
	fprintf(stderr, "max-connections 4: in flight at once at the target: %ld, connections %ld\n",
		st.inflight_max, st.conns_max);
	ck_assert_int_eq(st.inflight_max, 4);
	ck_assert_int_eq(st.conns_max, 4);
	ck_assert_int_eq(st.rejected, 0);
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	sim_stop(s);
}
END_TEST

/* A read with a fresh connection, for "is it served again" polling. */
static bool read_works(void *arg)
{
	int port = *(int *)arg;
	int fd = tm_connect(port);
	if (fd < 0)
		return false;
	uint16_t v;
	uint8_t exc = 0xff;
	int rc = tm_modbus_read(fd, 7, 1, 3, 100, 1, &v, &exc);
	close(fd);
	return rc == 0 && exc == 0 && v == sim_modbus_value(3, 100, 1);
}

/* (3) The target goes away mid-run and comes back: clients get gateway
 * exceptions meanwhile, never a wrong answer, and service returns without
 * restarting the daemon. */
START_TEST(test_target_restarts)
{
	enum { N = 8 };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	const char *extra[] = { "--timeout", "1", "--reconnect-backoff", "100ms", NULL };
	struct tm_daemon *d = tm_daemon_start_sim(s, extra);
	ck_assert_ptr_nonnull(d);
	int port = tm_daemon_port(d);
	ck_assert(tm_wait_until(read_works, &port, 5000));

	static pthread_t th[N];
	static struct client_run runs[N];
	atomic_int stop = 0;
	run_clients(port, N, 0, &stop, th, runs, 0);
	ck_assert(TM_SIM_WAIT(s, answers, 200, 10000));
	size_t mark = tm_daemon_log_mark(d); /* before the kill: its log line may come at once */
	ck_assert_int_eq(sim_kill(s), 0);
	/* while it is away, requests keep coming and get exceptions */
	ck_assert(tm_daemon_wait_log(d, mark, "cannot connect to the target", NULL, 0, 5000));
	ck_assert_int_eq(sim_revive(s), 0);
	int64_t t0 = tm_now_ms();
	long before = TM_SIM_STAT(s, answers);
	ck_assert(TM_SIM_WAIT(s, answers, before + 200, 10000));
	fprintf(stderr, "target back: served again after %lld ms\n", (long long)(tm_now_ms() - t0));
	atomic_store(&stop, 1);
	struct totals t = run_clients(0, N, 0, NULL, th, runs, 1);
	fprintf(stderr, "restart: ok=%d 0x0A=%d 0x0B=%d mismatches=%d closed=%d other=%d\n", t.ok,
		t.exc_0a, t.exc_0b, t.mismatches, t.closed, t.other_exc);
	ck_assert_int_eq(t.mismatches, 0);
	ck_assert_int_eq(t.closed, 0);          /* an exception, not a dropped socket */
	ck_assert_int_eq(t.other_exc, 0);
	ck_assert_int_gt(t.exc_0a + t.exc_0b, 0);
	ck_assert(tm_daemon_running(d));
	ck_assert(read_works(&port));
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	sim_stop(s);
}
END_TEST

/* (4) The target is down when the daemon starts: the first request gets
 * exception 0x0A at once; once the target is up, it is served. */
START_TEST(test_target_down_at_start)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(sim_kill(s), 0);
	const char *extra[] = { "--reconnect-backoff", "100ms", "--timeout", "5", NULL };
	struct tm_daemon *d = tm_daemon_start_sim(s, extra);
	ck_assert_ptr_nonnull(d);
	ck_assert(tm_daemon_wait_log(d, 0, "cannot connect to the target", NULL, 0, 5000));

	int fd = tm_connect(tm_daemon_port(d));
	ck_assert_int_ge(fd, 0);
	uint16_t v;
	uint8_t exc = 0;
	int64_t t0 = tm_now_ms();
	ck_assert_int_eq(tm_modbus_read(fd, 0x1234, 9, 3, 10, 1, &v, &exc), 0);
	ck_assert_int_eq(exc, 0x0A);
	ck_assert_int_lt(tm_now_ms() - t0, 2000); /* at once, not after --timeout */
	close(fd);

	ck_assert_int_eq(sim_revive(s), 0);
	int port = tm_daemon_port(d);
	ck_assert(tm_wait_until(read_works, &port, 5000));
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	sim_stop(s);
}
END_TEST

/* (5) Every 5th request is answered after the timeout: those clients get
 * 0x0B, the late answers are discarded, nobody gets a wrong answer, and the
 * target sees one connection throughout. */
START_TEST(test_late_answers_discarded)
{
	enum { N = 3, R = 60 };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .late_every = 5, .late_ms = 400 };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	const char *extra[] = { "--timeout", "250ms", NULL };
	struct tm_daemon *d = tm_daemon_start_sim(s, extra);
	ck_assert_ptr_nonnull(d);

	static pthread_t th[N];
	static struct client_run runs[N];
	run_clients(tm_daemon_port(d), N, R, NULL, th, runs, 0);
	struct totals t = run_clients(0, N, 0, NULL, th, runs, 1);
	struct sim_stats st;
	sim_get_stats(s, &st);
	fprintf(stderr, "late: ok=%d 0x0A=%d 0x0B=%d mismatches=%d closed=%d; target late=%ld accepted=%ld\n",
		t.ok, t.exc_0a, t.exc_0b, t.mismatches, t.closed, st.late, st.accepted);
	ck_assert_int_eq(t.mismatches, 0);
	ck_assert_int_eq(t.closed, 0);
	ck_assert_int_eq(t.other_exc, 0);
	ck_assert_int_gt(st.late, 0);
	ck_assert_int_ge(t.exc_0b, 1);
	ck_assert_int_eq(t.ok + t.exc_0a + t.exc_0b, N * R);
	ck_assert_int_eq(st.accepted, 1);
	ck_assert_int_gt(tm_daemon_log_count(d, 0, "late answer"), 0);
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	sim_stop(s);
}
END_TEST

/* Queue full: with --queue-size 1 and the one connection busy, one more
 * client waits and the next is refused at once with 0x0A (which of b and
 * c comes first is up to the scheduler, so exactly one of them is). */
START_TEST(test_queue_full)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .delay_ms = 800 };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	const char *extra[] = { "--queue-size", "1", "--timeout", "5", NULL };
	struct tm_daemon *d = tm_daemon_start_sim(s, extra);
	ck_assert_ptr_nonnull(d);
	ck_assert(TM_SIM_WAIT(s, accepted, 1, 5000));
	int a = tm_connect(tm_daemon_port(d)), b = tm_connect(tm_daemon_port(d)), c = tm_connect(tm_daemon_port(d));
	ck_assert_int_ge(a, 0);
	ck_assert_int_ge(b, 0);
	ck_assert_int_ge(c, 0);
	uint8_t req[12];
	size_t n = tm_modbus_req_read(req, 1, 1, 3, 0, 1);
	ck_assert_int_eq(tm_write_all(a, req, n), 0);
	ck_assert(TM_SIM_WAIT(s, requests, 1, 5000)); /* a's request holds the connection */
	ck_assert_int_eq(tm_write_all(b, req, n), 0);
	ck_assert_int_eq(tm_write_all(c, req, n), 0);
	uint8_t resp[260];
	int refused = 0;
	for (int i = 0; i < 2; i++) {
		int len = tm_modbus_recv(i == 0 ? b : c, resp, sizeof resp, 5000);
		ck_assert(len == 9 || len == 11);
		if (len == 9) {
			ck_assert_int_eq(resp[8], 0x0A);
			refused++;
		}
	}
	ck_assert_int_eq(refused, 1);
	ck_assert_int_eq(tm_modbus_recv(a, resp, sizeof resp, 5000), 11);
	close(a);
	close(b);
	close(c);
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	sim_stop(s);
}
END_TEST

/* A malformed request closes that client only; others are served. */
START_TEST(test_bad_frame_closes_client)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	struct tm_daemon *d = tm_daemon_start_sim(s, NULL);
	ck_assert_ptr_nonnull(d);
	int port = tm_daemon_port(d);
	int bad = tm_connect(port);
	ck_assert_int_ge(bad, 0);
	const uint8_t garbage[] = { 0, 1, 0x12, 0x34, 0, 6, 1, 3, 0, 0, 0, 1 }; /* protocol id != 0 */
	ck_assert_int_eq(tm_write_all(bad, garbage, sizeof garbage), 0);
	ck_assert_int_eq(tm_wait_closed(bad, 5000), 0);
	close(bad);
	ck_assert(tm_daemon_wait_log(d, 0, "malformed request", NULL, 0, 5000));
	ck_assert(read_works(&port));
	ck_assert_int_eq(TM_SIM_STAT(s, protocol_errors), 0); /* never reached the target */
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	sim_stop(s);
}
END_TEST

/* An idle upstream connection closed by the target is replaced before a
 * client is given it: the next request is served, not failed. */
START_TEST(test_idle_connection_closed_by_target)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .close_after = 1 };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	const char *extra[] = { "--reconnect-backoff", "50ms", NULL };
	struct tm_daemon *d = tm_daemon_start_sim(s, extra);
	ck_assert_ptr_nonnull(d);
	int port = tm_daemon_port(d);
	int fd = tm_connect(port);
	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 5; i++) {
		uint16_t v;
		uint8_t exc = 0xff;
		/* each answer is the connection's last: the next request must find a new one */
		ck_assert_int_eq(tm_modbus_read(fd, (uint16_t)i, 1, 3, 100, 1, &v, &exc), 0);
		ck_assert_int_eq(exc, 0);
		ck_assert_int_eq(v, sim_modbus_value(3, 100, 1));
		/* wait until the target has closed this connection, so the next
		 * request really meets a dead idle connection */
		TM_WAIT_FOR(TM_SIM_STAT(s, conns) == 0, 5000);
		ck_assert_int_eq(TM_SIM_STAT(s, conns), 0);
	}
	close(fd);
	ck_assert_int_ge(TM_SIM_STAT(s, accepted), 5);
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	sim_stop(s);
}
END_TEST


/* A target whose one session another master holds accepts each connection
 * and drops it at once: the daemon backs off as after a failed connect
 * instead of reconnecting in a tight loop; its clients get 0x0A at their
 * --timeout. */
START_TEST(test_no_reconnect_storm)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	int holder = tm_connect(sim_port(s)); /* the other master */
	ck_assert_int_ge(holder, 0);
	ck_assert(TM_SIM_WAIT(s, accepted, 1, 5000));
	const char *extra[] = { "--timeout", "1", "--reconnect-backoff", "200ms", NULL };
	struct tm_daemon *d = tm_daemon_start_sim(s, extra);
	ck_assert_ptr_nonnull(d);
	int fd = tm_connect(tm_daemon_port(d));
	ck_assert_int_ge(fd, 0);
	int64_t end = tm_now_ms() + 2000;
	int answers = 0;
	for (int i = 0; i < 100000 && tm_now_ms() < end; i++) {
		uint16_t v;
		uint8_t exc = 0;
		ck_assert_int_eq(tm_modbus_read(fd, (uint16_t)i, 1, 3, 1, 1, &v, &exc), 0);
		ck_assert(exc == 0x0A || exc == 0x0B);
		answers++;
	}
	long attempts = TM_SIM_STAT(s, rejected);
	fprintf(stderr, "held target: %d exceptions, %ld connection attempts in 2 s\n", answers, attempts);
	ck_assert_int_gt(answers, 0);
	ck_assert_int_le(attempts, 12); /* 200 ms doubling: about 5; a storm makes thousands */
	/* the other master leaves: served again */
	close(holder);
	bool served = false;
	for (int tries = 0; tries < 400 && !served; tries++) {
		uint16_t v;
		uint8_t exc = 0xff;
		served = tm_modbus_read(fd, 9, 1, 3, 1, 1, &v, &exc) == 0 && exc == 0 && v == sim_modbus_value(3, 1, 1);
		if (!served)
			tm_sleep_ms(25);
	}
	ck_assert(served);
	close(fd);
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	sim_stop(s);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_modbus");
	TCase *tc = tcase_create("sharing");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_fifty_clients_one_connection);
	tcase_add_test(tc, test_four_connections_in_parallel);
	tcase_add_test(tc, test_queue_full);
	suite_add_tcase(s, tc);
	tc = tcase_create("failures");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_target_restarts);
	tcase_add_test(tc, test_target_down_at_start);
	tcase_add_test(tc, test_late_answers_discarded);
	tcase_add_test(tc, test_bad_frame_closes_client);
	tcase_add_test(tc, test_idle_connection_closed_by_target);
	tcase_add_test(tc, test_no_reconnect_storm);
	suite_add_tcase(s, tc);
	return s;
}
