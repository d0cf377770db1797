/* End to end, field quirks (issue 8): RTU framing upstream, a device that
 * needs a pause between requests, one that forgets idle connections, a
 * gateway that answers with the wrong transaction id, unit id mapping. Each
 * quirk is shown to break things without its option first where it can, so
 * a test that passes means the option did the work. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

#define WAIT_MS 5000
#define MAX_CLIENTS 8

/* ---- helpers ------------------------------------------------------------ */

/* Which unit client i asks (units[i % n]), and whose values it must get
 * back (device_units[i % n]; the same units when NULL). */
struct units {
	const uint8_t *units, *device_units;
	int n;
};

/* One read whose transaction id, address and size identify the client and
 * the request, so an answer delivered to the wrong client cannot pass. */
static enum tm_next client_read(struct tm_client *c, int i)
{
	const struct units *u = c->arg;
	uint8_t unit = u->units ? u->units[c->index % u->n] : (uint8_t)(1 + c->index);
	uint8_t device_unit = u->device_units ? u->device_units[c->index % u->n] : unit;
	uint16_t tid = (uint16_t)(c->index * 4096 + i);
	uint8_t fc = (i % 2) ? 3 : 4;
	uint16_t addr = (uint16_t)(c->index * 300 + (i * 7) % 250);
	uint16_t qty = (uint16_t)(1 + (i * 37) % 125);
	return tm_client_note(c, tm_modbus_check(c->fd, tid, unit, fc, addr, qty, device_unit));
}

struct clients {
	struct tm_swarm *w;
	struct units u;
	/* totals after clients_join */
	long ok, exc, exc_06, exc_0a, exc_0b, mismatches, errors;
};

/* Starts n clients making `requests` reads each, or (0) reading until
 * clients_join; client i asks units[i % nunits] and expects the values of
 * device_units[i % nunits] (the same units when device_units is NULL). */
static void clients_start(struct clients *cs, struct tm_pair *p, int n, int requests,
			  const uint8_t *units, const uint8_t *device_units, int nunits)
{
	ck_assert_int_le(n, MAX_CLIENTS);
	memset(cs, 0, sizeof(*cs));
	cs->u = (struct units){ units, device_units, nunits };
	cs->w = tm_swarm_start(p->port, n, requests, requests ? requests : 100000, client_read, &cs->u);
	ck_assert_ptr_nonnull(cs->w);
}

static void clients_join(struct clients *cs, const char *what)
{
	long t[TM_OUTCOMES];
	tm_swarm_join(cs->w, t);
	tm_swarm_free(cs->w);
	cs->w = NULL;
	cs->ok = t[TM_OK];
	cs->exc = tm_exceptions(t);
	cs->exc_06 = t[TM_EXC(0x06)];
	cs->exc_0a = t[TM_EXC(0x0A)];
	cs->exc_0b = t[TM_EXC(0x0B)];
	cs->mismatches = t[TM_MISMATCH];
	cs->errors = t[TM_ERROR];
	fprintf(stderr, "%s: ok=%ld exceptions=%ld (0x06=%ld 0x0B=%ld) mismatches=%ld errors=%ld\n", what,
		cs->ok, cs->exc, cs->exc_06, cs->exc_0b, cs->mismatches, cs->errors);
}

/* No client got an answer that was not its own, or lost its connection. */
static void assert_clean(const struct clients *cs)
{
	ck_assert_int_eq(cs->mismatches, 0);
	ck_assert_int_eq(cs->errors, 0);
}

/* One read on fd; returns the exception code (0: served and checked). */
static uint8_t read_once(int fd, uint16_t tid, uint8_t unit, uint8_t device_unit, uint16_t addr)
{
	uint16_t v[4];
	uint8_t exc = 0xFF;
	int rc = tm_modbus_read(fd, tid, unit, 3, addr, 4, v, &exc);
	ck_assert_msg(rc == 0, "tm_modbus_read: %s", strerror(-rc));
	for (int k = 0; exc == 0 && k < 4; k++)
		ck_assert_uint_eq(v[k], sim_modbus_value(3, (uint16_t)(addr + k), device_unit));
	return exc;
}

/* Waits until ms have passed since t0: here the pause itself is the test. */
static void pause_since(int64_t t0, int ms)
{
	TM_WAIT_FOR(tm_now_ms() - t0 >= ms, ms + 1000);
}

/* ---- a) RTU upstream ---------------------------------------------------- */

START_TEST(test_rtu_upstream)
{
	const char *opts[] = { "--timeout", "5", NULL };
	struct sim_opts o = { .proto = SIM_MODBUS_RTU, .max_conns = 1 };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, opts), 0);

	/* Concurrent MBAP clients, reads of 1..125 registers, all through one
	 * RTU connection. */
	static struct clients cs;
	clients_start(&cs, &p, 6, 40, NULL, NULL, 0);
	clients_join(&cs, "rtu reads");
	assert_clean(&cs);
	ck_assert_int_eq(cs.ok, 6 * 40);

	/* Writes go through, and read back. */
	int fd = tm_pair_client(&p);
	uint8_t exc = 0xFF;
	uint16_t v[3];
	ck_assert_int_eq(tm_modbus_write1(fd, 0x7001, 9, 60000, 0xBEEF, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_uint_eq(sim_modbus_holding(p.sim, 60000, 9), 0xBEEF);
	ck_assert_int_eq(tm_modbus_read(fd, 0x7002, 9, 3, 60000, 1, v, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_uint_eq(v[0], 0xBEEF);
	const uint16_t w[3] = { 0x0102, 0, 0xFFFF };
	ck_assert_int_eq(tm_modbus_write_multi(fd, 0x7003, 9, 60010, 3, w, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_int_eq(tm_modbus_read(fd, 0x7004, 9, 3, 60010, 3, v, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_mem_eq(v, w, sizeof(w));

	/* The device's exceptions come back as MBAP exceptions, with the
	 * client's transaction id and unit (checked by tm_modbus_read). */
	ck_assert_int_eq(tm_modbus_read(fd, 0x7005, 9, 3, 65535, 2, v, &exc), 0);
	ck_assert_int_eq(exc, 0x02);
	ck_assert_int_eq(tm_modbus_read(fd, 0x7006, 9, 0x41, 1, 2, v, &exc), 0);
	ck_assert_int_eq(exc, 0x01);
	close(fd);

	struct sim_stats st;
	sim_get_stats(p.sim, &st);
	ck_assert_int_eq(st.crc_errors, 0);      /* every request carried a good CRC */
	ck_assert_int_eq(st.protocol_errors, 0);
	/* all but function 0x41: over RTU the multiplexer answers it 0x01 itself */
	ck_assert_int_eq(st.requests, 6 * 40 + 5);
	ck_assert_int_eq(st.answers, st.requests);
	ck_assert_int_eq(st.accepted, 1);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* An answer with a bad CRC is an exception 0x0B for its client only; the
 * next requests are served. */
START_TEST(test_rtu_bad_crc)
{
	const char *opts[] = { "--timeout", "2", "--reconnect-backoff", "50ms", NULL };
	struct sim_opts o = { .proto = SIM_MODBUS_RTU, .rtu_bad_crc_every = 3 };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, opts), 0);
	int fd = tm_pair_client(&p);
	int served = 0, failed = 0;

	for (int i = 0; i < 9; i++) {
		uint8_t exc = read_once(fd, (uint16_t)(0x100 + i), 1, 1, (uint16_t)(10 * i));
		ck_assert_msg(exc == 0 || exc == 0x0B, "request %d: exception 0x%02x", i, exc);
		if (exc)
			failed++;
		else
			served++;
	}
	close(fd);
	long bad = TM_SIM_STAT(p.sim, bad_crc_sent);
	fprintf(stderr, "rtu bad crc: served=%d 0x0B=%d bad answers sent=%ld\n", served, failed, bad);
	ck_assert_int_ge(bad, 1);
	ck_assert_int_eq(failed, bad);
	ck_assert_int_eq(served, 9 - bad);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, crc_errors), 0);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* ---- b) request gap ----------------------------------------------------- */

static void gap_run(const char *gap, struct clients *cs, struct sim_stats *st)
{
	const char *with[] = { "--request-gap", gap, "--timeout", "5", NULL };
	const char *without[] = { "--timeout", "5", NULL };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .min_gap_ms = 50 };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, gap ? with : without), 0);
	ck_assert(TM_SIM_WAIT(p.sim, accepted, 1, WAIT_MS));

	int64_t t0 = tm_now_ms();
	clients_start(cs, &p, 3, 8, NULL, NULL, 0);
	clients_join(cs, gap ? "with --request-gap" : "without --request-gap");
	sim_get_stats(p.sim, st);
	fprintf(stderr, "  %lld ms, target: requests=%ld gap_violations=%ld\n",
		(long long)(tm_now_ms() - t0), st->requests, st->gap_violations);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}

START_TEST(test_request_gap)
{
	static struct clients cs;
	struct sim_stats st;

	/* The target is strict: back-to-back requests get "busy". */
	gap_run(NULL, &cs, &st);
	ck_assert_int_gt(st.gap_violations, 0);
	ck_assert_int_gt(cs.exc_06, 0);
	ck_assert_int_eq(cs.exc, cs.exc_06);
	assert_clean(&cs);

	/* With a gap longer than the target needs, the same burst is served. */
	gap_run("60ms", &cs, &st);
	ck_assert_int_eq(st.gap_violations, 0);
	ck_assert_int_eq(cs.exc, 0);
	assert_clean(&cs);
	ck_assert_int_eq(cs.ok, 3 * 8);
	ck_assert_int_eq(st.requests, 3 * 8);
}
END_TEST

/* ---- c) upstream max idle ----------------------------------------------- */

START_TEST(test_max_idle_counter_check)
{
	/* Without the option, the connection the target has forgotten is used
	 * and the request times out. */
	const char *opts[] = { "--timeout", "1", NULL };
	struct sim_opts o = { .proto = SIM_MODBUS, .blackhole_idle_ms = 400 };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, opts), 0);
	int fd = tm_pair_client(&p);

	ck_assert_int_eq(read_once(fd, 1, 1, 1, 100), 0);
	ck_assert(TM_SIM_WAIT(p.sim, blackholed, 1, WAIT_MS));
	ck_assert_int_eq(read_once(fd, 2, 1, 1, 100), 0x0B);
	ck_assert_int_ge(TM_SIM_STAT(p.sim, ignored), 1);
	close(fd);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

START_TEST(test_max_idle)
{
	const char *opts[] = { "--upstream-max-idle", "200ms", "--timeout", "1", NULL };
	struct sim_opts o = { .proto = SIM_MODBUS, .blackhole_idle_ms = 400 };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, opts), 0);
	ck_assert(TM_SIM_WAIT(p.sim, accepted, 1, WAIT_MS));
	int fd = tm_pair_client(&p);
	size_t mark = tm_daemon_log_mark(p.d);

	ck_assert_int_eq(read_once(fd, 1, 1, 1, 100), 0);
	int64_t t0 = tm_now_ms();
	/* Long enough for the target to forget a connection left alone. */
	pause_since(t0, 700);
	ck_assert_int_eq(read_once(fd, 2, 1, 1, 100), 0);
	ck_assert_int_eq(read_once(fd, 3, 1, 1, 104), 0);

	struct sim_stats st;
	sim_get_stats(p.sim, &st);
	fprintf(stderr, "max idle: accepted=%ld blackholed=%ld ignored=%ld, log lines with \"idle\": %d\n",
		st.accepted, st.blackholed, st.ignored, tm_daemon_log_count(p.d, mark, "idle"));
	ck_assert_int_ge(st.accepted, 2);
	ck_assert_int_eq(st.ignored, 0); /* no request went to a forgotten connection */
	ck_assert_int_eq(st.answers, 3);
	close(fd);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* A connection in constant use is not idle, even when it goes from one
 * waiting client straight to the next without ever lying idle in the pool. */
START_TEST(test_max_idle_busy)
{
	const char *opts[] = { "--upstream-max-idle", "200ms", "--timeout", "2", NULL };
	struct sim_opts o = { .proto = SIM_MODBUS, .delay_ms = 2 };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, opts), 0);
	ck_assert(TM_SIM_WAIT(p.sim, accepted, 1, WAIT_MS));
	size_t mark = tm_daemon_log_mark(p.d);

	static struct clients cs;
	int64_t t0 = tm_now_ms();
	clients_start(&cs, &p, 4, 0, NULL, NULL, 0);
	/* Several times --upstream-max-idle of uninterrupted traffic. */
	TM_WAIT_FOR(tm_now_ms() - t0 >= 800 && TM_SIM_STAT(p.sim, answers) >= 100, WAIT_MS);
	clients_join(&cs, "max idle, busy");
	struct sim_stats st;
	sim_get_stats(p.sim, &st);
	fprintf(stderr, "max idle, busy: %lld ms, answers=%ld accepted=%ld, \"idle for\" log lines: %d\n",
		(long long)(tm_now_ms() - t0), st.answers, st.accepted,
		tm_daemon_log_count(p.d, mark, "idle for"));
	ck_assert_int_ge(st.answers, 100);
	assert_clean(&cs);
	ck_assert_int_eq(cs.exc, 0);
	ck_assert_int_eq(st.accepted, 1);
	ck_assert_int_eq(tm_daemon_log_count(p.d, mark, "idle for"), 0);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* A client that waits for the first connection (here: during --delay) is
 * served by it; a connection that was never used is not "idle since boot". */
START_TEST(test_max_idle_first_connection)
{
	const char *opts[] = { "--delay", "300ms", "--upstream-max-idle", "1s", "--timeout", "3", NULL };
	struct sim_opts o = { .proto = SIM_MODBUS };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, opts), 0);
	int fd = tm_pair_client(&p);

	int64_t t0 = tm_now_ms();
	uint8_t exc = read_once(fd, 1, 1, 1, 100);
	fprintf(stderr, "first connection: exception 0x%02x after %lld ms, accepted=%ld\n", exc,
		(long long)(tm_now_ms() - t0), TM_SIM_STAT(p.sim, accepted));
	ck_assert_int_eq(exc, 0);
	ck_assert_int_eq(read_once(fd, 2, 1, 1, 104), 0);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, accepted), 1);
	ck_assert_int_eq(tm_daemon_log_count(p.d, 0, "idle for"), 0);
	close(fd);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* ---- d) upstream max age ------------------------------------------------ */

START_TEST(test_max_age)
{
	const char *opts[] = { "--upstream-max-age", "300ms", "--timeout", "2",
			       "--reconnect-backoff", "50ms", NULL };
	struct sim_opts o = { .proto = SIM_MODBUS, .delay_ms = 1 };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, opts), 0);
	ck_assert(TM_SIM_WAIT(p.sim, accepted, 1, WAIT_MS));
	int64_t t0 = tm_now_ms();

	static struct clients cs;
	clients_start(&cs, &p, 3, 0, NULL, NULL, 0);
	bool second = TM_SIM_WAIT(p.sim, accepted, 2, WAIT_MS);
	int64_t replaced = tm_now_ms() - t0;
	bool third = TM_SIM_WAIT(p.sim, accepted, 3, WAIT_MS);
	clients_join(&cs, "max age");
	fprintf(stderr, "max age: first replacement after %lld ms, accepted=%ld\n",
		(long long)replaced, TM_SIM_STAT(p.sim, accepted));
	ck_assert(second);
	ck_assert(third);
	ck_assert_int_ge(replaced, 250);
	ck_assert_int_gt(cs.ok, 0);
	ck_assert_int_eq(cs.exc, 0);
	assert_clean(&cs);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* ---- e) transaction id check -------------------------------------------- */

START_TEST(test_tid_check)
{
	/* A gateway that answers id + 1: with the default strict check the
	 * answers never match. */
	const char *strict[] = { "--timeout", "300ms", "--reconnect-backoff", "50ms", NULL };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .tid_offset = 1 };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, strict), 0);
	int fd = tm_pair_client(&p);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(read_once(fd, (uint16_t)(0x500 + i), 1, 1, (uint16_t)(8 * i)), 0x0B);
	close(fd);
	ck_assert_int_ge(TM_SIM_STAT(p.sim, answers), 1);
	ck_assert_int_eq(tm_pair_stop(&p), 0);

	/* With the check off they are served, each client with its own id. */
	const char *off[] = { "--modbus-tid-check", "off", "--timeout", "5", NULL };
	ck_assert_int_eq(tm_pair_start(&p, &o, off), 0); /* the same target, afresh */
	static struct clients cs;
	clients_start(&cs, &p, 6, 30, NULL, NULL, 0);
	clients_join(&cs, "tid check off");
	assert_clean(&cs);
	ck_assert_int_eq(cs.exc, 0);
	ck_assert_int_eq(cs.ok, 6 * 30);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, answers), 6 * 30);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* ---- lockstep matching -------------------------------------------------- */

/* Without usable ids (RTU, --modbus-tid-check off) an answer that comes
 * after the timeout would be taken for the next request's: the connection
 * must be replaced instead, so no client ever gets another's answer. */
static void lockstep_run(struct sim_opts o, const char *const extra[], const char *what)
{
	/* No max_conns: the target still holds the old connection while it
	 * sleeps before its late answer, and would refuse the new one. */
	o.late_every = 4;
	o.late_ms = 500;
	const char *opts[16] = { "--timeout", "250ms", "--reconnect-backoff", "50ms" };
	size_t n = 4;
	for (size_t i = 0; extra && extra[i]; i++)
		opts[n++] = extra[i];
	opts[n] = NULL;
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, opts), 0);

	static struct clients cs;
	clients_start(&cs, &p, 3, 8, NULL, NULL, 0);
	clients_join(&cs, what);
	ck_assert(TM_SIM_WAIT(p.sim, late, 1, WAIT_MS)); /* counted once the late answer went out */
	struct sim_stats st;
	sim_get_stats(p.sim, &st);
	fprintf(stderr, "  target: late=%ld accepted=%ld\n", st.late, st.accepted);
	assert_clean(&cs);
	ck_assert_int_gt(st.late, 0);
	ck_assert_int_gt(cs.exc_0b, 0);
	ck_assert_int_eq(cs.ok + cs.exc_0b + cs.exc_0a,
			 3 * 8);
	ck_assert_int_gt(cs.ok, 0);
	ck_assert_int_ge(st.accepted, 2);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}

START_TEST(test_lockstep_late_answers)
{
	static const char *const off[] = { "--modbus-tid-check", "off", NULL };
	lockstep_run((struct sim_opts){ .proto = SIM_MODBUS_RTU }, NULL, "rtu, late answers");
	lockstep_run((struct sim_opts){ .proto = SIM_MODBUS, .tid_offset = 1 }, off,
		     "tid check off, late answers");
}
END_TEST

/* ---- f) unit map -------------------------------------------------------- */

static void unit_map_run(enum sim_proto proto)
{
	const char *opts[] = { "--modbus-unit-map", "1=0", "--modbus-unit-map", "2=5", "--timeout", "5",
			       NULL };
	struct sim_opts o = { .proto = proto, .max_conns = 1 };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, opts), 0);
	static const uint8_t units[] = { 1, 2, 3 }, device[] = { 0, 5, 3 };

	/* The values are the device unit's; the answers carry the client's
	 * unit (tm_modbus_read checks it). */
	static struct clients cs;
	clients_start(&cs, &p, 6, 20, units, device, 3);
	clients_join(&cs, proto == SIM_MODBUS_RTU ? "unit map, rtu" : "unit map");
	assert_clean(&cs);
	ck_assert_int_eq(cs.exc, 0);
	ck_assert_int_eq(cs.ok, 6 * 20);

	/* Exceptions come back with the client's unit too. */
	int fd = tm_pair_client(&p);
	uint16_t v[1];
	uint8_t exc = 0;
	ck_assert_int_eq(tm_modbus_read(fd, 0x900, 1, 0x41, 0, 1, v, &exc), 0);
	ck_assert_int_eq(exc, 0x01);
	ck_assert_int_eq(tm_modbus_read(fd, 0x901, 2, 3, 65535, 2, v, &exc), 0);
	ck_assert_int_eq(exc, 0x02);
	close(fd);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}

START_TEST(test_unit_map)
{
	/* The formula gives each unit its own values, so a missed mapping shows. */
	ck_assert_uint_ne(sim_modbus_value(3, 10, 0), sim_modbus_value(3, 10, 1));
	ck_assert_uint_ne(sim_modbus_value(4, 10, 5), sim_modbus_value(4, 10, 2));
	unit_map_run(SIM_MODBUS);
	/* Mapped before the CRC is computed. */
	unit_map_run(SIM_MODBUS_RTU);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_field");
	TM_EACH(s, 60, test_rtu_upstream, test_rtu_bad_crc, test_request_gap,
		test_max_idle_counter_check, test_max_idle, test_max_idle_busy,
		test_max_idle_first_connection, test_max_age, test_tid_check,
		test_lockstep_late_answers, test_unit_map);
	return s;
}
