/* End to end over a serial line with devices and clients nobody here
 * wrote: pymodbus's RTU server (tests/real/pymodbus_serial.py) and a
 * libmodbus RTU server (tests/real/rtu_server.c) on one end of a socat pty
 * pair, the daemon on the other, and pymodbus clients
 * (tests/real/pymodbus_clients.py) and mbpoll reading and writing through
 * it at once, every value checked by them. Cases whose programs are
 * missing are left out and the program exits 77 naming them; without
 * socat nothing runs. */
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
#include "serial_sim.h"
#include "testing.h"

#ifndef TESTS_SRCDIR
#error "TESTS_SRCDIR must be the tests/ directory of the source tree"
#endif
#ifndef RTU_SERVER_BIN
#define RTU_SERVER_BIN ""  /* configure found no libmodbus */
#endif

#define PY_SERVER TESTS_SRCDIR "/real/pymodbus_serial.py"
#define PY_CLIENTS TESTS_SRCDIR "/real/pymodbus_clients.py"
#define RUN_MS 120000
#define BAUD "19200"
#define NPY 4         /* pymodbus clients at once; they use units 1..NPY */
#define ROUNDS "3"

static char python_bin[PATH_MAX], mbpoll_bin[PATH_MAX];

/* What both servers hold: pymodbus_clients.py's value(). */
static uint16_t value(unsigned addr)
{
	return (uint16_t)(addr * 31u + 7u);
}

struct rig {
	char dir[PATH_MAX / 2];
	struct serial_link link;
	pid_t server;
	char server_log[PATH_MAX];
	struct tm_daemon *d;
};

/* The line, a server (argv, with the device's end as "@") on it, and
 * the daemon with more options in front. */
static void rig_up(struct rig *r, const char *const server[], const char *const more[])
{
	ck_assert_int_eq(proc_tmpdir("serialreal", r->dir, sizeof r->dir), 0);
	ck_assert_int_eq(serial_link_start(&r->link, r->dir), 0);
	const char *argv[8];
	size_t n = 0;
	for (; server[n] && n + 1 < 8; n++)
		argv[n] = strcmp(server[n], "@") == 0 ? r->link.dev : server[n];
	argv[n] = NULL;
	snprintf(r->server_log, sizeof r->server_log, "%s/server.log", r->dir);
	r->server = proc_start(argv, r->server_log);
	ck_assert_int_gt(r->server, 0);
	if (!proc_wait_file(r->server_log, "serving", NULL, 0, 20000)) {
		char *text = proc_slurp(r->server_log, NULL);
		ck_abort_msg("the server did not start:\n%s", text ? text : "");
	}
	const char *args[] = { "-p", "modbus", "-t", r->link.port, "--serial-speed", BAUD, "--timeout", "20s", NULL };
	r->d = tm_daemon_start_args(args, more);
	ck_assert_ptr_nonnull(r->d);
	ck_assert(tm_daemon_wait_log(r->d, 0, "connected to", NULL, 0, 5000));
}

static void rig_down(struct rig *r)
{
	ck_assert(tm_daemon_running(r->d));
	ck_assert_int_eq(tm_daemon_stop(r->d, SIGTERM, 0), 0);
	proc_stop(r->server, SIGTERM, 5000);
	serial_link_stop(&r->link);
}

/* mbpoll ARGS... against the daemon, then the values to write (NULL:
 * a read), output into log; returns its pid. */
static pid_t mbpoll_start(const struct rig *r, const char *log, const char *const args[],
			  const char *const values[])
{
	char port[16];
	snprintf(port, sizeof port, "%d", tm_daemon_port(r->d));
	const char *argv[24] = { mbpoll_bin, "-m", "tcp", "-1", "-o", "10", "-p", port };
	size_t n = 8;
	for (size_t i = 0; args[i] && n + 2 < 24; i++)
		argv[n++] = args[i];
	argv[n++] = "127.0.0.1";
	for (size_t i = 0; values && values[i] && n + 1 < 24; i++)
		argv[n++] = values[i];
	argv[n] = NULL;
	pid_t pid = proc_start(argv, log);
	ck_assert_int_gt(pid, 0);
	return pid;
}

/* Waits for mbpoll; every register from ref (1-based) on must be listed
 * with want(ref - 1 + k). */
static void mbpoll_check(pid_t pid, const char *log, int ref, int count, uint16_t (*want)(unsigned))
{
	int rc = proc_wait(pid, RUN_MS);
	char *text = proc_slurp(log, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(rc == 0, "mbpoll exited with %d:\n%s", rc, text);
	for (int k = 0; k < count; k++) {
		char line[48];
		snprintf(line, sizeof line, "[%d]: \t0x%04X\n", ref + k, want((unsigned)(ref - 1 + k)));
		ck_assert_msg(strstr(text, line) != NULL, "no \"%.*s\" in mbpoll's output:\n%s",
			      (int)strlen(line) - 1, line, text);
	}
	free(text);
}

/* What mbpoll writes at addresses 7000..7003. */
static uint16_t written(unsigned addr)
{
	return (uint16_t)(0x5B58 + addr - 7000);
}

/* NPY pymodbus clients (each writes and reads back its own registers and
 * reads shared ones) and two mbpoll readers at once, then mbpoll writes
 * registers and reads them back. */
static void swarm(struct rig *r)
{
	char port[16], pylog[PATH_MAX], log1[PATH_MAX], log2[PATH_MAX], log3[PATH_MAX];
	snprintf(port, sizeof port, "%d", tm_daemon_port(r->d));
	snprintf(pylog, sizeof pylog, "%s/pyclients.log", r->dir);
	snprintf(log1, sizeof log1, "%s/mbpoll1.log", r->dir);
	snprintf(log2, sizeof log2, "%s/mbpoll2.log", r->dir);
	snprintf(log3, sizeof log3, "%s/mbpoll3.log", r->dir);
	char nclients[8];
	snprintf(nclients, sizeof nclients, "%d", NPY);
	const char *py[] = { python_bin, PY_CLIENTS, "clients", port, nclients, ROUNDS, NULL };
	pid_t pyc = proc_start(py, pylog);
	ck_assert_int_gt(pyc, 0);
	const char *a1[] = { "-a", "1", "-r", "5001", "-c", "40", "-t", "4:hex", NULL };
	const char *a2[] = { "-a", "2", "-r", "5011", "-c", "10", "-t", "4:hex", NULL };
	pid_t m1 = mbpoll_start(r, log1, a1, NULL), m2 = mbpoll_start(r, log2, a2, NULL);
	mbpoll_check(m1, log1, 5001, 40, value);
	mbpoll_check(m2, log2, 5011, 10, value);
	int rc = proc_wait(pyc, RUN_MS);
	char *text = proc_slurp(pylog, NULL);
	ck_assert_msg(rc == 0, "pymodbus clients exited with %d:\n%s", rc, text ? text : "");
	ck_assert_ptr_nonnull(strstr(text, "bad=0 errors=0"));
	free(text);

	/* mbpoll writes 4 registers (function 16), then reads them back */
	const char *w[] = { "-a", "1", "-r", "7001", "-t", "4:hex", NULL };
	const char *vals[] = { "0x5B58", "0x5B59", "0x5B5A", "0x5B5B", NULL };
	pid_t mw = mbpoll_start(r, log3, w, vals);
	ck_assert_int_eq(proc_wait(mw, RUN_MS), 0);
	const char *rd[] = { "-a", "1", "-r", "7001", "-c", "4", "-t", "4:hex", NULL };
	pid_t mr = mbpoll_start(r, log1, rd, NULL);
	mbpoll_check(mr, log1, 7001, 4, written);
}

START_TEST(test_pymodbus_serial_server)
{
	struct rig r;
	const char *server[] = { python_bin, PY_SERVER, "@", BAUD, NULL };
	rig_up(&r, server, NULL);
	swarm(&r);
	rig_down(&r);
}
END_TEST

START_TEST(test_libmodbus_rtu_server)
{
	/* libmodbus answers unit 1 only: the clients' units 2..NPY map to it */
	struct rig r;
	const char *server[] = { RTU_SERVER_BIN, "@", BAUD, "1", NULL };
	const char *more[] = { "--modbus-unit-map", "2=1", "--modbus-unit-map", "3=1", "--modbus-unit-map", "4=1",
			       "--coalesce", NULL };
	rig_up(&r, server, more);
	swarm(&r);
	rig_down(&r);
}
END_TEST

/* Whether the pymodbus serial server and clients can run. */
static bool have_pymodbus(void)
{
	char out[4096];
	const char *py = getenv("TM_PYTHON");
	if (!proc_which(py && *py ? py : "/usr/bin/python3", python_bin, sizeof python_bin))
		return false;
	const char *argv[] = { python_bin, PY_SERVER, "check", NULL };
	int rc = proc_run(argv, out, sizeof out, 60000);
	if (rc != 0)
		printf("%s", out);
	return rc == 0;
}

int main(void)
{
	if (!serial_link_available()) {
		printf("SKIP: socat is missing (apt-get install socat): no pty pair for the serial line\n");
		return PROC_SKIP;
	}
	char missing[128] = "";
	bool py = have_pymodbus(), mb = proc_which("mbpoll", mbpoll_bin, sizeof mbpoll_bin);
	bool lib = RTU_SERVER_BIN[0] != '\0' && access(RTU_SERVER_BIN, X_OK) == 0;
	if (!py)
		strcat(missing, " pymodbus-serial (python3-pymodbus python3-serial python3-serial-asyncio)");
	if (!mb)
		strcat(missing, " mbpoll");
	if (!lib)
		strcat(missing, " libmodbus (libmodbus-dev at configure time)");
	Suite *s = suite_create("e2e_serial_real");
	TCase *tc = tm_add_case(s, "real", 150, NULL, 0);
	tcase_add_unchecked_fixture(tc, proc_tmproot_setup, proc_tmproot_teardown);
	/* the clients are pymodbus and mbpoll in every case */
	if (py && mb)
		tcase_add_test(tc, test_pymodbus_serial_server);
	if (py && mb && lib)
		tcase_add_test(tc, test_libmodbus_rtu_server);
	return tm_run_suite(s, missing);
}
