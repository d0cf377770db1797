/* End to end, Modbus/TCP with real clients: pymodbus (client and server,
 * tests/real/pymodbus_clients.py) and mbpoll, through the daemon. The
 * pymodbus server, like an inverter, serves one connection at a time.
 * Without pymodbus or mbpoll the cases that need them are left out, and
 * the program exits 77 naming what is missing. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "real/proc.h"
#include "testing.h"

#ifndef TESTS_SRCDIR
#error "TESTS_SRCDIR must be the tests/ directory of the source tree (tests/protocols.mk)"
#endif

#define SCRIPT TESTS_SRCDIR "/real/pymodbus_clients.py"
#define RUN_MS 120000 /* bound on any outside program */

/* Set by main: the interpreter ($TM_PYTHON, else /usr/bin/python3, the
 * one Debian's python3-pymodbus is installed for) and mbpoll. */
static char python_bin[PATH_MAX], mbpoll_bin[PATH_MAX];

/* ---- the pymodbus server ----------------------------------------------- */

struct pyserver {
	pid_t pid;
	int port;
	char log[PATH_MAX];
};

/* Starts it on port (0: the kernel picks) with its output in dir, and
 * waits for its "listening on" line. Returns false when it exited instead
 * (e.g. the port was taken), with its output on stderr. */
static bool pyserver_start(struct pyserver *ps, const char *dir, int port, int n)
{
	char port_s[16];
	snprintf(port_s, sizeof port_s, "%d", port);
	int len = snprintf(ps->log, sizeof ps->log, "%s/pyserver-%d.log", dir, n);
	ck_assert(len > 0 && (size_t)len < sizeof ps->log);
	const char *argv[] = { python_bin, SCRIPT, "server", "1", port_s, NULL };
	ps->pid = proc_start(argv, ps->log);
	ck_assert_int_gt(ps->pid, 0);
	char line[256];
	int64_t deadline = tm_now_ms() + 20000;
	while (tm_now_ms() < deadline) {
		if (proc_wait_file(ps->log, "listening on 127.0.0.1:", line, sizeof line, 20)) {
			ps->port = atoi(strrchr(line, ':') + 1);
			ck_assert_int_gt(ps->port, 0);
			return true;
		}
		int rc = proc_wait(ps->pid, 0);
		if (rc != -ETIMEDOUT) {
			char *text = proc_slurp(ps->log, NULL);
			fprintf(stderr, "pymodbus server exited with %d:\n%s\n", rc, text ? text : "");
			free(text);
			return false;
		}
	}
	proc_stop(ps->pid, SIGKILL, 2000);
	ck_abort_msg("the pymodbus server printed no \"listening on\" line within 20 s");
	return false;
}

/* Starts it again on the same port (another attempt while the port is
 * still held) and waits until the daemon has connected to it. */
static void pyserver_restart(struct pyserver *ps, const char *dir)
{
	int port = ps->port;
	bool up = false;
	for (int attempt = 2; attempt < 8 && !up; attempt++) {
		up = pyserver_start(ps, dir, port, attempt);
		if (!up)
			tm_sleep_ms(200); /* pacing between bind attempts */
	}
	ck_assert(up);
	ck_assert(proc_wait_file(ps->log, "accepted 1", NULL, 0, 15000));
}

/* Stops it with SIGTERM; it must exit 0. */
static void pyserver_stop(struct pyserver *ps)
{
	int rc = proc_stop(ps->pid, SIGTERM, 10000);
	ck_assert_msg(rc == 0, "pymodbus server exit status %d", rc);
}

/* Runs the script's client side with args; returns its exit code and
 * output. */
static int pyclients(char *out, size_t cap, const char *mode, int port, const char *a, const char *b)
{
	char port_s[16];
	snprintf(port_s, sizeof port_s, "%d", port);
	const char *argv[] = { python_bin, SCRIPT, mode, port_s, a, b, NULL };
	int rc = proc_run(argv, out, cap, RUN_MS);
	fprintf(stderr, "pymodbus %s: exit %d\n%s", mode, rc, out);
	return rc;
}

/* The daemon in front of the pymodbus server. */
static struct tm_daemon *daemon_for(int port, const char *const more[])
{
	const char *args[] = { "--queue-size", "64", NULL };
	struct tm_daemon *d = tm_daemon_start_target("modbus", port, args, more);
	ck_assert_ptr_nonnull(d);
	return d;
}

/* The daemon stops cleanly, then the pymodbus server; the case's files go. */
static void pymodbus_case_end(struct tm_daemon *d, struct pyserver *ps, const char *dir)
{
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	pyserver_stop(ps);
	proc_rmtree(dir);
}

/* ---- mbpoll ------------------------------------------------------------ */

/* One mbpoll read: unit, first reference (1-based), count, table (3 input,
 * 4 holding); its output, once it exited 0, must list every value. */
struct mbread {
	int unit, ref, count, table;
	/* what the target holds: fc 3 (holding) or 4 (input), 0-based address */
	uint16_t (*value)(uint8_t fc, uint16_t addr, uint8_t unit);
	pid_t pid;
	char log[PATH_MAX];
};

static void mbpoll_start(struct mbread *m, const char *dir, int port, int n)
{
	char a[8], r[8], c[8], t[8], p[8];
	snprintf(a, sizeof a, "%d", m->unit);
	snprintf(r, sizeof r, "%d", m->ref);
	snprintf(c, sizeof c, "%d", m->count);
	snprintf(t, sizeof t, "%d:hex", m->table);
	snprintf(p, sizeof p, "%d", port);
	int len = snprintf(m->log, sizeof m->log, "%s/mbpoll-%d.out", dir, n);
	ck_assert(len > 0 && (size_t)len < sizeof m->log);
	const char *argv[] = { mbpoll_bin, "-m", "tcp", "-a", a, "-r", r, "-c", c, "-t", t, "-1",
			       "-o", "5", "-p", p, "127.0.0.1", NULL };
	m->pid = proc_start(argv, m->log);
	ck_assert_int_gt(m->pid, 0);
}

/* Checks "[REF]: \t0xVALUE" for every reference against m->value
 * (mbpoll's references are 1-based: address = REF - 1). */
static void mbpoll_check(const struct mbread *m)
{
	int rc = proc_wait(m->pid, RUN_MS);
	char *text = proc_slurp(m->log, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(rc == 0, "mbpoll exited with %d:\n%s", rc, text);
	int seen = 0;
	for (int k = 0; k < m->count; k++) {
		char want[32];
		uint8_t fc = m->table == 4 ? 3 : 4; /* holding registers: function 3 */
		uint16_t v = m->value(fc, (uint16_t)(m->ref - 1 + k), (uint8_t)m->unit);
		snprintf(want, sizeof want, "[%d]: \t0x%04X\n", m->ref + k, v);
		if (strstr(text, want))
			seen++;
		else
			fprintf(stderr, "mbpoll -a %d: no line \"%.*s\" in:\n%s\n", m->unit,
				(int)strlen(want) - 1, want, text);
	}
	free(text);
	ck_assert_int_eq(seen, m->count);
}

/* ---- pymodbus clients through the daemon ------------------------------- */

/* The pymodbus server's holding registers as the script fills them. */
static uint16_t py_value(uint8_t fc, uint16_t addr, uint8_t unit)
{
	(void)fc;
	(void)unit;
	return (uint16_t)(addr * 31u + 7u);
}

/* mbpoll reads the pymodbus server's shared registers (while nothing
 * writes them) through the daemon. */
static void mbpoll_pymodbus(const char *dir, int port)
{
	struct mbread m[] = {
		{ .unit = 1, .ref = 5001, .count = 40, .table = 4, .value = py_value },
		{ .unit = 9, .ref = 5011, .count = 10, .table = 4, .value = py_value },
	};
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
		mbpoll_start(&m[i], dir, port, 100 + (int)i);
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
		mbpoll_check(&m[i]);
}

/* 10 pymodbus clients at once, each writing and reading back registers of
 * its own and reading shared ones (every value checked by the script),
 * through the daemon to a pymodbus server that serves one connection: it
 * refuses a second one, and sees exactly one from the daemon. Then mbpoll
 * (when there) reads the shared registers through the same daemon. */
START_TEST(test_pymodbus_ten_clients)
{
	char dir[PATH_MAX];
	ck_assert_int_eq(proc_tmpdir("modbus", dir, sizeof dir), 0);
	struct pyserver ps;
	ck_assert(pyserver_start(&ps, dir, 0, 1));
	const char *more[] = { "--timeout", "10", NULL };
	struct tm_daemon *d = daemon_for(ps.port, more);
	ck_assert(proc_wait_file(ps.log, "accepted 1", NULL, 0, 10000));

	/* the target takes one connection: a second is closed at once */
	int direct = tm_connect(ps.port);
	ck_assert_int_ge(direct, 0);
	ck_assert_int_eq(tm_wait_closed(direct, 5000), 0);
	close(direct);
	ck_assert(proc_wait_file(ps.log, "rejected 1", NULL, 0, 5000));

	static char out[65536];
	int64_t t0 = tm_now_ms();
	ck_assert_int_eq(pyclients(out, sizeof out, "clients", tm_daemon_port(d), "10", "40"), 0);
	fprintf(stderr, "10 pymodbus clients x 40 rounds: %lld ms\n", (long long)(tm_now_ms() - t0));
	ck_assert_ptr_nonnull(strstr(out, "clients: ok=2000 bad=0 errors=0"));
	if (mbpoll_bin[0])
		mbpoll_pymodbus(dir, tm_daemon_port(d));
	/* one upstream connection throughout */
	ck_assert_int_eq(proc_count_file(ps.log, "accepted "), 1);
	pymodbus_case_end(d, &ps, dir);
}
END_TEST

/* The target stops: pymodbus clients get a Modbus exception (0x0A, gateway
 * path unavailable), and their connection stays open. It comes back on
 * the same port: the same daemon serves again. */
START_TEST(test_pymodbus_target_stopped)
{
	char dir[PATH_MAX];
	ck_assert_int_eq(proc_tmpdir("modbus", dir, sizeof dir), 0);
	struct pyserver ps;
	ck_assert(pyserver_start(&ps, dir, 0, 1));
	const char *more[] = { "--timeout", "5", "--reconnect-backoff", "100ms", NULL };
	struct tm_daemon *d = daemon_for(ps.port, more);
	static char out[65536];
	ck_assert_int_eq(pyclients(out, sizeof out, "clients", tm_daemon_port(d), "10", "3"), 0);

	/* the daemon finds out when the next request wants the connection */
	size_t mark = tm_daemon_log_mark(d);
	pyserver_stop(&ps);
	ck_assert_int_eq(pyclients(out, sizeof out, "gateway-error", tm_daemon_port(d), NULL, NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "gateway-error: codes=0x0A,0x0A connected=1"));
	ck_assert(tm_daemon_wait_log(d, mark, "cannot connect to the target", NULL, 0, 10000));

	pyserver_restart(&ps, dir);
	ck_assert_int_eq(pyclients(out, sizeof out, "clients", tm_daemon_port(d), "10", "3"), 0);
	ck_assert(tm_daemon_running(d));
	pymodbus_case_end(d, &ps, dir);
}
END_TEST

/* The target is killed while 10 pymodbus clients keep reading: each
 * request gets its values or a gateway exception (0x0B for the exchanges
 * cut off, 0x0A while it is down), never a wrong value or a dropped
 * connection; the target comes back and the same clients go on. */
START_TEST(test_pymodbus_target_dies_under_load)
{
	char dir[PATH_MAX], stop[PATH_MAX + 8], log[PATH_MAX + 16], port_s[16];
	ck_assert_int_eq(proc_tmpdir("modbus", dir, sizeof dir), 0);
	snprintf(stop, sizeof stop, "%s/stop", dir);
	snprintf(log, sizeof log, "%s/outage.log", dir);
	struct pyserver ps;
	ck_assert(pyserver_start(&ps, dir, 0, 1));
	const char *more[] = { "--timeout", "3", "--reconnect-backoff", "100ms", NULL };
	struct tm_daemon *d = daemon_for(ps.port, more);
	snprintf(port_s, sizeof port_s, "%d", tm_daemon_port(d));
	const char *argv[] = { python_bin, SCRIPT, "outage", port_s, "10", stop, NULL };
	pid_t clients = proc_start(argv, log);
	ck_assert_int_gt(clients, 0);
	ck_assert(proc_wait_file(log, "progress", NULL, 0, 20000));

	ck_assert_int_eq(proc_stop(ps.pid, SIGKILL, 5000), 128 + SIGKILL);
	ck_assert(proc_wait_file(log, "gateway 0x", NULL, 0, 20000));
	pyserver_restart(&ps, dir);
	int before = proc_count_file(log, "progress");
	TM_WAIT_FOR(proc_count_file(log, "progress") >= before + 2, 20000);
	ck_assert_int_ge(proc_count_file(log, "progress"), before + 2);

	ck_assert_int_eq(proc_write_file(stop, "", 0), 0);
	int rc = proc_wait(clients, 30000);
	char *text = proc_slurp(log, NULL);
	ck_assert_ptr_nonnull(text);
	fprintf(stderr, "pymodbus outage clients: exit %d\n%s", rc, text);
	const char *sum = strstr(text, "outage: ");
	ck_assert_ptr_nonnull(sum);
	long ok, gateway, bad, errors;
	ck_assert_int_eq(sscanf(sum, "outage: ok=%ld gateway=%ld bad=%ld errors=%ld", &ok, &gateway, &bad,
				&errors), 4);
	free(text);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(errors, 0);
	ck_assert_int_gt(gateway, 0);
	ck_assert_int_gt(ok, 0);
	ck_assert(tm_daemon_running(d));
	pymodbus_case_end(d, &ps, dir);
}
END_TEST

/* ---- mbpoll against the simulated target -------------------------------- */

/* Six mbpolls at once, holding and input registers, different units and
 * ranges, through the daemon to a simulator that takes one connection:
 * every value is the simulator's for that unit and address. */
START_TEST(test_mbpoll_reads)
{
	char dir[PATH_MAX];
	ck_assert_int_eq(proc_tmpdir("mbpoll", dir, sizeof dir), 0);
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, NULL), 0);
	struct mbread m[] = {
		{ .unit = 1, .ref = 1, .count = 10, .table = 4, .value = sim_modbus_value },
		{ .unit = 1, .ref = 1, .count = 10, .table = 3, .value = sim_modbus_value },
		{ .unit = 17, .ref = 100, .count = 125, .table = 4, .value = sim_modbus_value },
		{ .unit = 42, .ref = 30001, .count = 64, .table = 3, .value = sim_modbus_value },
		{ .unit = 247, .ref = 65000, .count = 20, .table = 4, .value = sim_modbus_value },
		{ .unit = 0, .ref = 7, .count = 3, .table = 4, .value = sim_modbus_value },
	};
	size_t n = sizeof m / sizeof m[0];
	for (size_t i = 0; i < n; i++)
		mbpoll_start(&m[i], dir, p.port, (int)i);
	for (size_t i = 0; i < n; i++)
		mbpoll_check(&m[i]);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, accepted), 1);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, answers), (long)n);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
	proc_rmtree(dir);
}
END_TEST

/* mbpoll writes three holding registers (function 16): the simulator holds
 * them, and mbpoll reads them back. With the target gone, mbpoll reports
 * the gateway exception, not a broken connection. */
START_TEST(test_mbpoll_write_and_gateway_error)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	const char *extra[] = { "--reconnect-backoff", "100ms", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	char port[8];
	snprintf(port, sizeof port, "%d", p.port);
	static char out[16384];

	const char *write[] = { mbpoll_bin, "-m", "tcp", "-a", "5", "-r", "101", "-t", "4", "-1", "-p", port,
				"127.0.0.1", "11", "22", "33", NULL };
	int rc = proc_run(write, out, sizeof out, RUN_MS);
	ck_assert_msg(rc == 0, "mbpoll write exited with %d:\n%s", rc, out);
	ck_assert_ptr_nonnull(strstr(out, "Written 3 references."));
	ck_assert_int_eq(sim_modbus_holding(p.sim, 100, 5), 11);
	ck_assert_int_eq(sim_modbus_holding(p.sim, 101, 5), 22);
	ck_assert_int_eq(sim_modbus_holding(p.sim, 102, 5), 33);

	const char *read[] = { mbpoll_bin, "-m", "tcp", "-a", "5", "-r", "101", "-c", "3", "-t", "4", "-1",
			       "-p", port, "127.0.0.1", NULL };
	rc = proc_run(read, out, sizeof out, RUN_MS);
	ck_assert_msg(rc == 0, "mbpoll read exited with %d:\n%s", rc, out);
	ck_assert_ptr_nonnull(strstr(out, "[101]: \t11\n[102]: \t22\n[103]: \t33\n"));

	ck_assert_int_eq(sim_kill(p.sim), 0);
	rc = proc_run(read, out, sizeof out, RUN_MS);
	fprintf(stderr, "mbpoll with the target down: exit %d\n%s", rc, out);
	ck_assert_int_ne(rc, 0);
	ck_assert_ptr_nonnull(strstr(out, "Gateway path unavailable"));
	ck_assert(tm_daemon_wait_log(p.d, 0, "cannot connect to the target", NULL, 0, 10000));
	ck_assert(tm_daemon_running(p.d));
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

int main(void)
{
	char missing[64] = "", out[4096];
	const char *py = getenv("TM_PYTHON");
	if (!proc_which(py && *py ? py : "/usr/bin/python3", python_bin, sizeof python_bin)) {
		strcat(missing, " python3");
	} else {
		const char *argv[] = { python_bin, SCRIPT, "version", NULL };
		int rc = proc_run(argv, out, sizeof out, 60000);
		if (rc == 0)
			printf("pymodbus %s", out);
		else
			strcat(missing, " pymodbus");
		if (rc != 0)
			printf("%s: %s", python_bin, out);
	}
	if (!proc_which("mbpoll", mbpoll_bin, sizeof mbpoll_bin))
		strcat(missing, " mbpoll");
	if (*missing)
		printf("missing:%s\n", missing);

	Suite *s = suite_create("e2e_realmodbus");
	/* each group of cases runs when its program is there */
	if (!strstr(missing, "py")) {
		TCase *tc = TM_CASE(s, "pymodbus", 120, test_pymodbus_ten_clients,
				    test_pymodbus_target_stopped, test_pymodbus_target_dies_under_load);
		tcase_add_unchecked_fixture(tc, proc_tmproot_setup, proc_tmproot_teardown);
	}
	if (!strstr(missing, "mbpoll")) {
		TCase *tc = TM_CASE(s, "mbpoll", 120, test_mbpoll_reads, test_mbpoll_write_and_gateway_error);
		tcase_add_unchecked_fixture(tc, proc_tmproot_setup, proc_tmproot_teardown);
	}
	return tm_run_suite(s, missing);
}
