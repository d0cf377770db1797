/* End to end, Modbus/TCP: the real daemon between concurrent clients and a
 * simulated target that accepts one (or four) connections; every answer is
 * checked against the register formula, so a misdelivered answer fails. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

/* One read of 1..4 registers at an address and unit that identify this
 * client and request; every value is checked against the simulator's
 * formula, so an answer delivered to the wrong client cannot pass. */
static enum tm_next one_read(struct tm_client *c, int i)
{
	uint16_t tid = (uint16_t)(c->index * 1000 + i);
	uint8_t unit = (uint8_t)(1 + c->index % 200);
	uint8_t fc = (i % 2) ? 3 : 4;
	uint16_t addr = (uint16_t)(c->index * 256 + (i * 7) % 200);
	uint16_t qty = (uint16_t)(1 + i % 4);
	return tm_client_note(c, tm_modbus_check(c->fd, tid, unit, fc, addr, qty, unit));
}

/* n clients making `requests` reads each, or (0) reads until joined. */
static struct tm_swarm *clients_start(int port, int n, int requests)
{
	int max = requests ? requests : 100000;
	struct tm_swarm *w = tm_swarm_start(port, n, requests, max, one_read, NULL);
	ck_assert_ptr_nonnull(w);
	return w;
}

struct totals {
	int ok, exc_0a, exc_0b, mismatches, closed, other_exc;
};

static struct totals clients_join(struct tm_swarm *w)
{
	long t[TM_OUTCOMES];
	tm_swarm_join(w, t);
	tm_swarm_free(w);
	long a = t[TM_EXC(0x0A)], b = t[TM_EXC(0x0B)];
	return (struct totals){ .ok = (int)t[TM_OK], .exc_0a = (int)a, .exc_0b = (int)b,
				.mismatches = (int)t[TM_MISMATCH], .closed = (int)t[TM_ERROR],
				.other_exc = (int)(tm_exceptions(t) - a - b) };
}

/* (1) 50 clients x 200 reads through a target that accepts ONE connection. */
START_TEST(test_fifty_clients_one_connection)
{
	enum { N = 50, R = 200 };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	const char *extra[] = { "--timeout", "10", "--queue-size", "64", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);

	struct totals t = clients_join(clients_start(p.port, N, R));
	fprintf(stderr, "50x200: ok=%d 0x0A=%d 0x0B=%d mismatches=%d closed=%d\n", t.ok, t.exc_0a,
		t.exc_0b, t.mismatches, t.closed);
	ck_assert_int_eq(t.mismatches, 0);
	ck_assert_int_eq(t.ok, N * R);

	struct sim_stats st;
	sim_get_stats(p.sim, &st);
	ck_assert_int_eq(st.accepted, 1);   /* one upstream connection throughout */
	ck_assert_int_eq(st.rejected, 0);
	ck_assert_int_eq(st.answers, N * R);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* (2) --max-connections 4 against a target that takes 4 and answers in
 * 2 ms: the target sees 4 requests in flight at once. */
START_TEST(test_four_connections_in_parallel)
{
	enum { N = 32, R = 40 };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 4, .delay_ms = 2 };
	const char *extra[] = { "--max-connections", "4", "--timeout", "10", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	/* all four connected before the clients start */
	ck_assert(TM_SIM_WAIT(p.sim, accepted, 4, 5000));

	struct totals t = clients_join(clients_start(p.port, N, R));
	ck_assert_int_eq(t.mismatches, 0);
	ck_assert_int_eq(t.ok, N * R);

	struct sim_stats st;
	sim_get_stats(p.sim, &st);
	fprintf(stderr, "max-connections 4: in flight at once at the target: %ld, connections %ld\n",
		st.inflight_max, st.conns_max);
	ck_assert_int_eq(st.inflight_max, 4);
	ck_assert_int_eq(st.conns_max, 4);
	ck_assert_int_eq(st.rejected, 0);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* (3) The target goes away mid-run and comes back: clients get gateway
 * exceptions meanwhile, never a wrong answer, and service returns without
 * restarting the daemon. */
START_TEST(test_target_restarts)
{
	enum { N = 8 };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	const char *extra[] = { "--timeout", "1", "--reconnect-backoff", "100ms", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	int port = p.port;
	ck_assert(tm_modbus_served(port, 5000));

	struct tm_swarm *w = clients_start(port, N, 0);
	ck_assert(TM_SIM_WAIT(p.sim, answers, 200, 10000));
	size_t mark = tm_daemon_log_mark(p.d); /* before the kill: its log line may come at once */
	ck_assert_int_eq(sim_kill(p.sim), 0);
	/* while it is away, requests keep coming and get exceptions (a read
	 * that finds the connection gone goes again once, and a borrower
	 * asks for a connect: keep it away until a client was answered so) */
	ck_assert(tm_daemon_wait_log(p.d, mark, "cannot connect to the target", NULL, 0, 5000));
	ck_assert(tm_daemon_wait_log(p.d, mark, "no upstream connection", NULL, 0, 5000));
	ck_assert_int_eq(sim_revive(p.sim), 0);
	int64_t t0 = tm_now_ms();
	long before = TM_SIM_STAT(p.sim, answers);
	ck_assert(TM_SIM_WAIT(p.sim, answers, before + 200, 10000));
	fprintf(stderr, "target back: served again after %lld ms\n", (long long)(tm_now_ms() - t0));
	struct totals t = clients_join(w);
	fprintf(stderr, "restart: ok=%d 0x0A=%d 0x0B=%d mismatches=%d closed=%d other=%d\n", t.ok,
		t.exc_0a, t.exc_0b, t.mismatches, t.closed, t.other_exc);
	ck_assert_int_eq(t.mismatches, 0);
	ck_assert_int_eq(t.closed, 0);          /* an exception, not a dropped socket */
	ck_assert_int_eq(t.other_exc, 0);
	ck_assert_int_gt(t.exc_0a + t.exc_0b, 0);
	ck_assert(tm_daemon_running(p.d));
	ck_assert(tm_modbus_served(port, 0));
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* (4) The target is down when the daemon starts: the first request gets
 * exception 0x0A at once; once the target is up, it is served. */
START_TEST(test_target_down_at_start)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	const char *extra[] = { "--reconnect-backoff", "100ms", "--timeout", "5", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start_down(&p, &o, extra), 0);
	ck_assert(tm_daemon_wait_log(p.d, 0, "cannot connect to the target", NULL, 0, 5000));

	int fd = tm_pair_client(&p);
	uint16_t v;
	uint8_t exc = 0;
	int64_t t0 = tm_now_ms();
	ck_assert_int_eq(tm_modbus_read(fd, 0x1234, 9, 3, 10, 1, &v, &exc), 0);
	ck_assert_int_eq(exc, 0x0A);
	ck_assert_int_lt(tm_now_ms() - t0, 2000); /* at once, not after --timeout */
	close(fd);

	ck_assert_int_eq(sim_revive(p.sim), 0);
	ck_assert(tm_modbus_served(p.port, 5000));
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* (5) Every 5th request is answered after the timeout: those clients get
 * 0x0B, the late answers are discarded, nobody gets a wrong answer, and the
 * target sees one connection throughout. */
START_TEST(test_late_answers_discarded)
{
	enum { N = 3, R = 60 };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .late_every = 5, .late_ms = 400 };
	const char *extra[] = { "--timeout", "250ms", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);

	struct totals t = clients_join(clients_start(p.port, N, R));
	struct sim_stats st;
	sim_get_stats(p.sim, &st);
	fprintf(stderr, "late: ok=%d 0x0A=%d 0x0B=%d mismatches=%d closed=%d; target late=%ld accepted=%ld\n",
		t.ok, t.exc_0a, t.exc_0b, t.mismatches, t.closed, st.late, st.accepted);
	ck_assert_int_eq(t.mismatches, 0);
	ck_assert_int_eq(t.closed, 0);
	ck_assert_int_eq(t.other_exc, 0);
	ck_assert_int_gt(st.late, 0);
	ck_assert_int_ge(t.exc_0b, 1);
	ck_assert_int_eq(t.ok + t.exc_0a + t.exc_0b, N * R);
	ck_assert_int_eq(st.accepted, 1);
	ck_assert_int_gt(tm_daemon_log_count(p.d, 0, "late answer"), 0);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* Queue full: with --queue-size 1 and the one connection busy, one more
 * client waits and the next is refused at once with 0x0A (which of b and
 * c comes first is up to the scheduler, so exactly one of them is). */
START_TEST(test_queue_full)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .delay_ms = 800 };
	const char *extra[] = { "--queue-size", "1", "--timeout", "5", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	/* the slot is usable once a request was answered through it: that the
	 * target accepted the connection is not enough (it may still be
	 * connecting or warming up, and then a is refused as well) */
	ck_assert(tm_modbus_served(p.port, 10000));
	int a = tm_connect(p.port), b = tm_connect(p.port), c = tm_connect(p.port);
	ck_assert_int_ge(a, 0);
	ck_assert_int_ge(b, 0);
	ck_assert_int_ge(c, 0);
	uint8_t req[12];
	size_t n = tm_modbus_req_read(req, 1, 1, 3, 0, 1);
	ck_assert_int_eq(tm_write_all(a, req, n), 0);
	ck_assert(TM_SIM_WAIT(p.sim, requests, 2, 5000)); /* a's request holds the connection */
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
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* A malformed request closes that client only; others are served. */
START_TEST(test_bad_frame_closes_client)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, NULL), 0);
	int port = p.port;
	int bad = tm_connect(port);
	ck_assert_int_ge(bad, 0);
	const uint8_t garbage[] = { 0, 1, 0x12, 0x34, 0, 6, 1, 3, 0, 0, 0, 1 }; /* protocol id != 0 */
	ck_assert_int_eq(tm_write_all(bad, garbage, sizeof garbage), 0);
	ck_assert_int_eq(tm_wait_closed(bad, 5000), 0);
	close(bad);
	ck_assert(tm_daemon_wait_log(p.d, 0, "malformed request", NULL, 0, 5000));
	ck_assert(tm_modbus_served(port, 0));
	ck_assert_int_eq(TM_SIM_STAT(p.sim, protocol_errors), 0); /* never reached the target */
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* An idle upstream connection closed by the target is replaced before a
 * client is given it: the next request is served, not failed. */
START_TEST(test_idle_connection_closed_by_target)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .close_after = 1 };
	const char *extra[] = { "--reconnect-backoff", "50ms", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	int port = p.port;
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
		TM_WAIT_FOR(TM_SIM_STAT(p.sim, conns) == 0, 5000);
		ck_assert_int_eq(TM_SIM_STAT(p.sim, conns), 0);
	}
	close(fd);
	ck_assert_int_ge(TM_SIM_STAT(p.sim, accepted), 5);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
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
	TM_CASE(s, "sharing", 120, test_fifty_clients_one_connection,
		test_four_connections_in_parallel, test_queue_full);
	TM_CASE(s, "failures", 120, test_target_restarts, test_target_down_at_start,
		test_late_answers_discarded, test_bad_frame_closes_client,
		test_idle_connection_closed_by_target, test_no_reconnect_storm);
	return s;
}
