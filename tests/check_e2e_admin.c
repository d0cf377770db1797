/* End to end, running it for real: --allow, --max-clients, --idle-timeout,
 * --modbus-read-only, /metrics, SIGUSR1, graceful stop with requests in
 * flight, and the journal log format. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "testing.h"

/* A Modbus simulator and the daemon in front of it with extra. */
static void start_pair(struct tm_pair *p, int max_conns, int delay_ms, const char *const extra[])
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = max_conns, .delay_ms = delay_ms };
	ck_assert_int_eq(tm_pair_start(p, &o, extra), 0);
}

/* A one-connection target, the daemon with extra, and a client of it. */
static int open_pair(struct tm_pair *p, const char *const extra[])
{
	start_pair(p, 1, 0, extra);
	return tm_pair_client(p);
}

/* Closes the client, checks the daemon logged needle, and stops cleanly. */
static void close_expecting(struct tm_pair *p, int fd, const char *needle)
{
	close(fd);
	ck_assert_msg(tm_daemon_wait_log(p->d, 0, needle, NULL, 0, 5000), "no log line with '%s'",
		      needle);
	ck_assert_int_eq(tm_pair_stop(p), 0);
}

static int read_one(int port, uint16_t addr, uint8_t *exc)
{
	int fd = tm_connect(port);
	if (fd < 0)
		return fd;
	uint16_t v = 0;
	int rc = tm_modbus_read(fd, 1, 1, 3, addr, 1, &v, exc);
	close(fd);
	if (rc == 0 && *exc == 0 && v != sim_modbus_value(3, addr, 1))
		return -EPROTO;
	return rc;
}

START_TEST(test_allow)
{
	const char *deny[] = { "--allow", "192.0.2.0/24", "--allow", "2001:db8::/32", NULL };
	struct tm_pair p;
	int fd = open_pair(&p, deny);
	ck_assert_int_eq(tm_wait_closed(fd, 5000), 0); /* closed at accept, nothing sent */
	close(fd);
	ck_assert(tm_daemon_wait_log(p.d, 0, "not in --allow", NULL, 0, 5000));

	const char *allow[] = { "--allow", "192.0.2.0/24", "--allow", "127.0.0.0/8", NULL };
	ck_assert_int_eq(tm_pair_restart(&p, allow), 0);
	uint8_t exc = 0xff;
	ck_assert_int_eq(read_one(p.port, 5, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

START_TEST(test_max_clients)
{
	enum { MAX = 1000 };
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < 2 * MAX + 200) {
		fprintf(stderr, "skipping --max-clients %d: only %lu file descriptors allowed\n", MAX,
			(unsigned long)rl.rlim_max);
		return;
	}
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	const char *extra[] = { "--max-clients", "1000", NULL };
	struct tm_pair p;
	start_pair(&p, 1, 0, extra);
	int port = p.port;

	static int fds[MAX];
	for (int i = 0; i < MAX; i++) {
		fds[i] = tm_connect(port);
		ck_assert_int_ge(fds[i], 0);
	}
	/* each of them is served (proves all 1000 were accepted, not queued) */
	for (int i = 0; i < MAX; i += 50) {
		uint16_t v;
		uint8_t exc = 0xff;
		ck_assert_int_eq(tm_modbus_read(fds[i], (uint16_t)i, 1, 3, 7, 1, &v, &exc), 0);
		ck_assert_int_eq(exc, 0);
	}
	uint16_t v;
	uint8_t exc = 0xff;
	ck_assert_int_eq(tm_modbus_read(fds[MAX - 1], 1, 1, 3, 7, 1, &v, &exc), 0);
	int extra_fd = tm_connect(port);
	ck_assert_int_ge(extra_fd, 0);
	ck_assert_int_eq(tm_wait_closed(extra_fd, 5000), 0); /* client 1001 */
	close(extra_fd);
	ck_assert(tm_daemon_wait_log(p.d, 0, "--max-clients reached", NULL, 0, 5000));
	/* the others keep working */
	ck_assert_int_eq(tm_modbus_read(fds[3], 2, 1, 3, 8, 1, &v, &exc), 0);
	ck_assert_int_eq(exc, 0);
	/* one leaves: a new one gets in */
	close(fds[0]);
	bool served = false;
	for (int tries = 0; tries < 200 && !served; tries++) {
		int fd = tm_connect(port);
		if (fd >= 0) {
			served = tm_modbus_read(fd, 3, 1, 3, 9, 1, &v, &exc) == 0 && exc == 0;
			close(fd);
		}
		if (!served)
			tm_sleep_ms(10);
	}
	ck_assert(served);
	for (int i = 1; i < MAX; i++)
		close(fds[i]);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

START_TEST(test_idle_timeout)
{
	const char *extra[] = { "--idle-timeout", "300ms", NULL };
	struct tm_pair p;
	int fd = open_pair(&p, extra);
	int64_t t0 = tm_now_ms();
	ck_assert_int_eq(tm_wait_closed(fd, 5000), 0);
	ck_assert_int_ge(tm_now_ms() - t0, 250);
	close_expecting(&p, fd, "idle for");
}
END_TEST

START_TEST(test_read_only)
{
	const char *extra[] = { "--modbus-read-only", "--modbus-allow-write", "1:200-209", NULL };
	struct tm_pair p;
	int fd = open_pair(&p, extra);
	uint16_t before = sim_modbus_holding(p.sim, 100, 1);
	uint8_t exc = 0;
	ck_assert_int_eq(tm_modbus_write1(fd, 77, 1, 100, (uint16_t)(before + 1), &exc), 0);
	ck_assert_int_eq(exc, 0x01);
	uint16_t vals[3] = { 1, 2, 3 };
	ck_assert_int_eq(tm_modbus_write_multi(fd, 78, 1, 99, 3, vals, &exc), 0);
	ck_assert_int_eq(exc, 0x01);
	ck_assert_uint_eq(sim_modbus_holding(p.sim, 100, 1), before); /* untouched */
	ck_assert_int_eq(TM_SIM_STAT(p.sim, requests), 0);              /* never reached the device */
	/* reads pass; a write inside the allow-list passes */
	uint16_t v;
	exc = 0xff;
	ck_assert_int_eq(tm_modbus_read(fd, 79, 1, 3, 100, 1, &v, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_int_eq(tm_modbus_write1(fd, 80, 1, 205, 4242, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_uint_eq(sim_modbus_holding(p.sim, 205, 1), 4242);
	close_expecting(&p, fd, "refused function 6 for unit 1");
}
END_TEST

START_TEST(test_metrics_and_usr1)
{
	const char *extra[] = { "--metrics-listen", "127.0.0.1:0", "--modbus-read-only", NULL };
	struct tm_pair p;
	start_pair(&p, 1, 0, extra);
	int mport = tm_metrics_port(p.d);
	ck_assert_int_gt(mport, 0);

	int fd = tm_pair_client(&p);
	for (int i = 0; i < 10; i++) {
		uint16_t v;
		uint8_t exc = 0xff;
		ck_assert_int_eq(tm_modbus_read(fd, (uint16_t)i, 1, 4, (uint16_t)i, 1, &v, &exc), 0);
		ck_assert_int_eq(exc, 0);
	}
	uint8_t exc = 0;
	ck_assert_int_eq(tm_modbus_write1(fd, 99, 1, 1, 1, &exc), 0);
	ck_assert_int_eq(exc, 0x01);
	close(fd);

	static char body[65536];
	ck_assert_int_gt(tm_metrics_scrape(mport, body, sizeof body, 5000), 0);
	ck_assert_int_eq(tm_http_status(body), 200);
	ck_assert_ptr_nonnull(strstr(body, "text/plain; version=0.0.4"));
	ck_assert_int_eq(tm_metric(body, "tcpmux_requests_total"), 11);
	ck_assert_int_eq(tm_metric(body, "tcpmux_requests_ok_total"), 10);
	ck_assert_int_eq(tm_metric(body, "tcpmux_requests_failed_total{reason=\"policy\"}"), 1);
	ck_assert_int_eq(tm_metric(body, "tcpmux_clients_accepted_total"), 1);
	ck_assert_int_eq(tm_metric(body, "tcpmux_upstream_live"), 1);
	ck_assert_int_eq(tm_metric(body, "tcpmux_request_duration_seconds_count"), 10);
	ck_assert_int_eq(tm_metric(body, "tcpmux_client_bytes_received_total"), 11 * 12);

	char line[512];
	ck_assert(tm_daemon_stats(p.d, line, sizeof line));
	ck_assert_ptr_nonnull(strstr(line, "requests total=11 ok=10"));
	ck_assert_ptr_nonnull(strstr(line, "policy=1"));
	ck_assert_ptr_nonnull(strstr(line, "accepted=1"));
	ck_assert(tm_daemon_running(p.d));

	ck_assert_int_eq(tm_http_once(mport, "GET /other HTTP/1.1\r\n\r\n", body, sizeof body), 404);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

struct inflight {
	int port, index, rc;
	uint8_t exc;
	uint16_t v;
	int fd;
};

static void *inflight_client(void *arg)
{
	struct inflight *c = arg;
	c->rc = tm_modbus_read(c->fd, (uint16_t)c->index, 1, 3, (uint16_t)(300 + c->index), 1, &c->v, &c->exc);
	return NULL;
}

/* SIGTERM with 20 requests in flight: all 20 answered, exit 0, in time. */
START_TEST(test_graceful_stop)
{
	enum { N = 20 };
	const char *extra[] = { "--max-connections", "4", "--timeout", "10", "--metrics-listen", "127.0.0.1:0", NULL };
	struct tm_pair p;
	start_pair(&p, 4, 300, extra);
	int mport = tm_metrics_port(p.d);
	ck_assert_int_gt(mport, 0);
	ck_assert(TM_SIM_WAIT(p.sim, accepted, 4, 5000));

	pthread_t th[N];
	struct inflight c[N];
	for (int i = 0; i < N; i++) {
		c[i] = (struct inflight){ .port = p.port, .index = i };
		c[i].fd = tm_connect(c[i].port);
		ck_assert_int_ge(c[i].fd, 0);
		ck_assert_int_eq(pthread_create(&th[i], NULL, inflight_client, &c[i]), 0);
	}
	/* every request has been read by the daemon before the signal */
	static char body[65536];
	long seen = 0;
	for (int tries = 0; tries < 500 && seen < N; tries++) {
		if (tm_metrics_scrape(mport, body, sizeof body, 5000) > 0)
			seen = tm_metric(body, "tcpmux_requests_total");
		if (seen < N)
			tm_sleep_ms(5);
	}
	ck_assert_int_eq(seen, N);
	ck_assert_int_lt(TM_SIM_STAT(p.sim, answers), N); /* still in flight */
	int64_t t0 = tm_now_ms();
	ck_assert_int_eq(tm_daemon_signal(p.d, SIGTERM), 0);
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(c[i].rc, 0);
		ck_assert_int_eq(c[i].exc, 0);
		ck_assert_uint_eq(c[i].v, sim_modbus_value(3, (uint16_t)(300 + i), 1));
		close(c[i].fd);
	}
	ck_assert_int_eq(tm_daemon_stop(p.d, SIGTERM, 12000), 0);
	int64_t took = tm_now_ms() - t0;
	fprintf(stderr, "graceful stop with %d in flight took %lld ms\n", N, (long long)took);
	ck_assert_int_lt(took, 10000 + 2000);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, answers), N);
	sim_stop(p.sim);
}
END_TEST

/* Under systemd (JOURNAL_STREAM set) lines carry <N> priorities, no time. */
START_TEST(test_journal_format)
{
	setenv("JOURNAL_STREAM", "8:12345", 1);
	struct tm_pair p;
	start_pair(&p, 1, 0, NULL);
	unsetenv("JOURNAL_STREAM");
	char line[512];
	ck_assert(tm_daemon_wait_log(p.d, 0, "listening on", line, sizeof line, 5000));
	ck_assert_msg(strncmp(line, "<6>listening on", 15) == 0, "line: %s", line);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

START_TEST(test_usage_errors)
{
	char out[4096];
	const char *bad[] = { "server", "--allow", "10.0.0.0/33", NULL };
	ck_assert_int_eq(tm_run(bad, out, sizeof out, 5000), 2);
	ck_assert_ptr_nonnull(strstr(out, "--allow"));
	const char *ro[] = { "server", "-p", "echo", "--modbus-read-only", NULL };
	ck_assert_int_eq(tm_run(ro, out, sizeof out, 5000), 2);
	ck_assert_ptr_nonnull(strstr(out, "-p modbus"));
	/* a port that is taken: exit status 1 and a clear line */
	struct sim *s = sim_start(&(struct sim_opts){ .proto = SIM_MODBUS, .max_conns = 1 });
	ck_assert_ptr_nonnull(s);
	char port[16];
	snprintf(port, sizeof port, "127.0.0.1:%d", sim_port(s));
	const char *busy[] = { "server", "-l", port, NULL };
	ck_assert_int_eq(tm_run(busy, out, sizeof out, 5000), 1);
	ck_assert_ptr_nonnull(strstr(out, "cannot listen on"));
	sim_stop(s);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_admin");
	TM_CASE(s, "access", 60, test_allow, test_max_clients, test_idle_timeout, test_read_only);
	TM_CASE(s, "operations", 60, test_metrics_and_usr1, test_graceful_stop, test_journal_format,
		test_usage_errors);
	return s;
}
