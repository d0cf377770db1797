/* End to end, the limits: --allow with IPv4-mapped forms, the metrics port
 * (behind --allow, never delayed by idle connections, its failure logged
 * once), and --max-buffered (memory has a ceiling and is given back). */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testing.h"

/* Sanitizers keep shadow memory and quarantines of their own, so the
 * daemon's RSS says nothing about its buffers there: the RSS bounds are
 * then skipped (the budget's own count is still checked). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* rss_kb < bound_kb, unless the build is sanitized (then said, not checked). */
static void check_rss(const char *what, long rss_kb, long bound_kb)
{
	if (SANITIZED) {
		fprintf(stderr, "sanitizer build: not checking %s (%ld kB) against %ld kB\n", what, rss_kb, bound_kb);
		return;
	}
	ck_assert_msg(rss_kb < bound_kb, "%s is %ld kB, over %ld kB", what, rss_kb, bound_kb);
}

/* The simulator for proto and the daemon in front of it with extra. */
static void start_pair(struct tm_pair *p, enum sim_proto proto, const char *const extra[])
{
	struct sim_opts o = { .proto = proto };
	ck_assert_int_eq(tm_pair_start(p, &o, extra), 0);
}

/* One echo round trip through the daemon: 0, or -errno when refused. */
static int echo_once(int port)
{
	int fd = tm_connect(port);
	if (fd < 0)
		return fd;
	char line[64];
	int rc = tm_write_all(fd, "ping\n", 5);
	ssize_t n = rc == 0 ? tm_line_recv(fd, line, sizeof line, 3000) : rc;
	close(fd);
	if (n < 0)
		return (int)n;
	return strcmp(line, "ping\n") == 0 ? 0 : -EPROTO;
}

/* A field of /proc/PID/status in kB ("VmRSS", "VmHWM"), or -1. */
static long proc_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	long kb = -1;
	size_t flen = strlen(field);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, flen) == 0 && line[flen] == ':')
			kb = strtol(line + flen + 1, NULL, 10);
	fclose(f);
	return kb;
}

/* --allow ::ffff:127.0.0.1 admits 127.0.0.1, and ::/0 admits an IPv4
 * client seen as ::ffff:127.0.0.1 on an IPv6 socket (dual stack). */
START_TEST(test_allow_mapped)
{
	const char *mapped[] = { "--allow", "::ffff:127.0.0.1", NULL };
	struct tm_pair p;
	start_pair(&p, SIM_ECHO, mapped);
	ck_assert_int_eq(echo_once(p.port), 0);
	ck_assert_int_eq(tm_daemon_log_count(p.d, 0, "not in --allow"), 0);

	const char *mapped_net[] = { "--allow", "::ffff:127.0.0.0/104", NULL };
	ck_assert_int_eq(tm_pair_restart(&p, mapped_net), 0);
	ck_assert_int_eq(echo_once(p.port), 0);

	if (access("/proc/net/if_inet6", R_OK) != 0) {
		fprintf(stderr, "skipping the dual-stack half: no IPv6 here\n");
	} else {
		/* an IPv6 socket on the mapped loopback address: peers are ::ffff:127.0.0.1 */
		const char *any6[] = { "-l", "[::ffff:127.0.0.1]:0", "--allow", "::/0", NULL };
		ck_assert_int_eq(tm_pair_restart(&p, any6), 0);
		ck_assert_int_eq(echo_once(p.port), 0);
		ck_assert_int_eq(tm_daemon_log_count(p.d, 0, "not in --allow"), 0);
		/* and a rule for another IPv6 network still refuses it */
		const char *other6[] = { "-l", "[::ffff:127.0.0.1]:0", "--allow", "2001:db8::/32", NULL };
		ck_assert_int_eq(tm_pair_restart(&p, other6), 0);
		ck_assert_int_lt(echo_once(p.port), 0);
		ck_assert(tm_daemon_wait_log(p.d, 0, "not in --allow", NULL, 0, 5000));
	}
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* A client not in --allow is refused on the metrics port too. */
START_TEST(test_metrics_allow)
{
	const char *deny[] = { "--allow", "192.0.2.0/24", "--metrics-listen", "127.0.0.1:0", NULL };
	struct tm_pair p;
	start_pair(&p, SIM_ECHO, deny);
	int mport = tm_metrics_port(p.d);
	ck_assert_int_gt(mport, 0);
	static char body[65536];
	ssize_t n = tm_metrics_scrape(mport, body, sizeof body, 3000);
	ck_assert_msg(n < 0, "a refused client got %zd bytes from /metrics", n);
	ck_assert(tm_daemon_wait_log(p.d, 0, "metrics: rejected 127.0.0.1", NULL, 0, 5000));

	const char *allow[] = { "--allow", "127.0.0.0/8", "--metrics-listen", "127.0.0.1:0", NULL };
	ck_assert_int_eq(tm_pair_restart(&p, allow), 0);
	mport = tm_metrics_port(p.d);
	ck_assert_int_gt(mport, 0);
	ck_assert_int_gt(tm_metrics_scrape(mport, body, sizeof body, 3000), 0);
	ck_assert_int_eq(tm_http_status(body), 200);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* Idle and half-sent connections to the metrics port (more of them than
 * it keeps) do not delay a scrape. */
START_TEST(test_metrics_not_delayed)
{
	enum { SILENT = 12, SCRAPES = 5, MAX_MS = 300 };
	const char *extra[] = { "--metrics-listen", "127.0.0.1:0", NULL };
	struct tm_pair p;
	start_pair(&p, SIM_ECHO, extra);
	int mport = tm_metrics_port(p.d);
	ck_assert_int_gt(mport, 0);
	int quiet[SILENT];
	for (int i = 0; i < SILENT; i++) {
		quiet[i] = tm_connect(mport);
		ck_assert_int_ge(quiet[i], 0);
		if (i % 2) /* half a request, then nothing */
			ck_assert_int_eq(tm_write_all(quiet[i], "GET /metr", 9), 0);
	}
	static char body[65536];
	for (int i = 0; i < SCRAPES; i++) {
		int64_t t0 = tm_now_ms();
		ssize_t n = tm_metrics_scrape(mport, body, sizeof body, 5000);
		int64_t took = tm_now_ms() - t0;
		ck_assert_int_gt(n, 0);
		ck_assert_int_eq(tm_http_status(body), 200);
		ck_assert_msg(took < MAX_MS, "scrape %d took %lld ms with %d silent connections", i,
			      (long long)took, SILENT);
	}
	for (int i = 0; i < SILENT; i++)
		close(quiet[i]);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* A metrics port that is taken: exit 1 and one line, naming that port. */
START_TEST(test_metrics_listen_fails_once)
{
	struct sim_opts o = { .proto = SIM_ECHO };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	char target[32], taken[32], out[4096];
	snprintf(target, sizeof target, "127.0.0.1:%d", sim_port(s));
	snprintf(taken, sizeof taken, "127.0.0.1:%d", sim_port(s)); /* the simulator's port is taken */
	const char *args[] = { "server", "-l", "127.0.0.1:0", "-t", target, "--metrics-listen", taken, NULL };
	ck_assert_int_eq(tm_run(args, out, sizeof out, 5000), 1);
	int lines = tm_count(out, "cannot listen");
	ck_assert_msg(lines == 1, "%d lines say 'cannot listen':\n%s", lines, out);
	char want[64];
	snprintf(want, sizeof want, "--metrics-listen %s", taken);
	ck_assert_msg(strstr(out, want) != NULL, "no '%s' in:\n%s", want, out);
	sim_stop(s);
}
END_TEST

/* With a budget of 4 KiB beyond the first 4 KiB buffer, a request that
 * needs more is refused with a 503 and the connection closed. */
START_TEST(test_refusal_is_503)
{
	const char *extra[] = { "--max-buffered", "4k", "--metrics-listen", "127.0.0.1:0", NULL };
	struct tm_pair p;
	start_pair(&p, SIM_HTTP, extra);
	int mport = tm_metrics_port(p.d);
	ck_assert_int_gt(mport, 0);
	/* exactly 8192 bytes: the daemon reads them all (its buffer may grow to
	 * 8 KiB) and then needs more, so no unread byte turns the close into a reset */
	static char req[8192];
	int head = snprintf(req, sizeof req, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
	memset(req + head, 'b', sizeof req - (size_t)head);
	int fd = tm_pair_client(&p);
	ck_assert_int_eq(tm_write_all(fd, req, sizeof req), 0);
	static char resp[4096];
	ck_assert_int_gt(tm_http_recv(fd, resp, sizeof resp, false, 5000), 0);
	ck_assert_int_eq(tm_http_status(resp), 503);
	ck_assert_ptr_nonnull(strstr(resp, "Connection: close"));
	ck_assert_int_eq(tm_wait_closed(fd, 5000), 0);
	close(fd);
	ck_assert(tm_daemon_wait_log(p.d, 0, "--max-buffered", NULL, 0, 5000));

	/* a small request still passes, and the counters agree in both places */
	const char small[] = "GET /small HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(tm_http_once(p.port, small, resp, sizeof resp), 200);
	static char body[65536];
	ck_assert_int_gt(tm_metrics_scrape(mport, body, sizeof body, 3000), 0);
	ck_assert_int_eq(tm_metric(body, "tcpmux_requests_failed_total{reason=\"no_buffer\"}"), 1);
	ck_assert_int_eq(tm_metric(body, "tcpmux_buffered_bytes"), 0);
	char line[1024];
	ck_assert(tm_daemon_stats(p.d, line, sizeof line));
	ck_assert_ptr_nonnull(strstr(line, " no_buffer=1 "));
	ck_assert_ptr_nonnull(strstr(line, " buffered=0"));
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* Sends want[i] bytes of buf to each fd without blocking on any one, until
 * all are sent, refused (the daemon closed) or the deadline passes.
 * Returns how many fds were closed by the daemon. */
static int send_all_nonblocking(const int *fds, int n, const char *buf, size_t len, int timeout_ms)
{
	size_t *sent = calloc((size_t)n, sizeof *sent);
	struct pollfd *pfd = calloc((size_t)n, sizeof *pfd);
	ck_assert(sent != NULL && pfd != NULL);
	int refused = 0, left = n;
	for (int i = 0; i < n; i++)
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
	int64_t deadline = tm_now_ms() + timeout_ms;
	while (left > 0 && tm_now_ms() < deadline) {
		for (int i = 0; i < n; i++)
			pfd[i] = (struct pollfd){ .fd = sent[i] < len ? fds[i] : -1, .events = POLLOUT };
		if (poll(pfd, (nfds_t)n, 100) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (pfd[i].fd < 0 || pfd[i].revents == 0)
				continue;
			ssize_t k = send(fds[i], buf + sent[i], len - sent[i], MSG_NOSIGNAL);
			if (k > 0)
				sent[i] += (size_t)k;
			else if (k < 0 && errno != EAGAIN && errno != EINTR) {
				sent[i] = len;
				refused++;
			}
			if (sent[i] == len)
				left--;
		}
	}
	free(sent);
	free(pfd);
	ck_assert_msg(left == 0, "%d clients could not send within %d ms", left, timeout_ms);
	return refused;
}

/* Many clients each holding a partial large HTTP request: the daemon's
 * memory stays near --max-buffered, and the refusals are logged. */
START_TEST(test_ceiling_many_partial)
{
	enum { N = 1000, BODY = 128 * 1024, BUDGET_MB = 8, SLACK_MB = 48 };
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 2 * N + 64) {
		fprintf(stderr, "skipping: only %lu file descriptors allowed\n", (unsigned long)rl.rlim_cur);
		return;
	}
	const char *extra[] = { "--max-buffered", "8M", "--max-clients", "2000", "--metrics-listen", "127.0.0.1:0",
				NULL };
	struct tm_pair pair;
	start_pair(&pair, SIM_HTTP, extra);
	int mport = tm_metrics_port(pair.d);
	ck_assert_int_gt(mport, 0);
	long rss0 = proc_kb(tm_daemon_pid(pair.d), "VmRSS");
	ck_assert_int_gt(rss0, 0);

	static char req[BODY];
	int head = snprintf(req, sizeof req, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
	memset(req + head, 'p', sizeof req - (size_t)head);
	static int fds[N];
	for (int i = 0; i < N; i++) {
		fds[i] = tm_connect(pair.port);
		ck_assert_int_ge(fds[i], 0);
	}
	int64_t t0 = tm_now_ms();
	send_all_nonblocking(fds, N, req, sizeof req, 60000);
	/* the daemon has read what it will read once buffered bytes stop moving */
	static char body[65536];
	long prev = -1, cur = -2, refused = 0;
	for (int tries = 0; tries < 200 && cur != prev; tries++) {
		tm_sleep_ms(50);
		prev = cur;
		ck_assert_int_gt(tm_metrics_scrape(mport, body, sizeof body, 5000), 0);
		cur = tm_metric(body, "tcpmux_buffered_bytes");
		refused = tm_metric(body, "tcpmux_requests_failed_total{reason=\"no_buffer\"}");
	}
	long hwm = proc_kb(tm_daemon_pid(pair.d), "VmHWM"), rss = proc_kb(tm_daemon_pid(pair.d), "VmRSS");
	fprintf(stderr, "%d clients x %d KiB partial: %ld refused, %ld bytes buffered, RSS %ld kB (peak %ld, "
		"at start %ld) after %lld ms\n", N, BODY / 1024, refused, cur, rss, hwm, rss0,
		(long long)(tm_now_ms() - t0));
	check_rss("the peak RSS", hwm, rss0 + (BUDGET_MB + SLACK_MB) * 1024);
	ck_assert_int_le(cur, BUDGET_MB * 1024 * 1024);
	ck_assert_int_gt(refused, 0);
	/* one line per 10 pair.sim, with a count, however many were refused */
	int lines = tm_daemon_log_count(pair.d, 0, "refused: --max-buffered");
	ck_assert_int_ge(lines, 1);
	ck_assert_int_le(lines, 1 + (int)((tm_now_ms() - t0) / 10000));
	for (int i = 0; i < N; i++)
		close(fds[i]);
	ck_assert_int_eq(tm_pair_stop(&pair), 0);
}
END_TEST

/* Clients that each fetched a large answer and then sit idle do not keep
 * large buffers: the daemon's memory is back near where it started. */
START_TEST(test_memory_given_back)
{
	enum { N = 200, BODY = 400 * 1024, SLACK_MB = 40 };
	const char *extra[] = { "--metrics-listen", "127.0.0.1:0", NULL };
	struct tm_pair p;
	start_pair(&p, SIM_HTTP, extra);
	int mport = tm_metrics_port(p.d);
	ck_assert_int_gt(mport, 0);
	long rss0 = proc_kb(tm_daemon_pid(p.d), "VmRSS");
	ck_assert_int_gt(rss0, 0);

	static char req[BODY + 256];
	int head = snprintf(req, sizeof req, "POST /large HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", BODY);
	memset(req + head, 'q', BODY);
	static char resp[BODY + 4096];
	static int fds[N];
	for (int i = 0; i < N; i++) {
		fds[i] = tm_connect(p.port);
		ck_assert_int_ge(fds[i], 0);
		ck_assert_int_eq(tm_write_all(fds[i], req, (size_t)head + BODY), 0);
		ssize_t n = tm_http_recv(fds[i], resp, sizeof resp, false, 10000);
		ck_assert_int_gt(n, BODY);
		ck_assert_int_eq(tm_http_status(resp), 200);
	}
	/* the last client may read its answer before the daemon's thread has
	 * returned from writing it: wait for the buffer to be given back */
	static char body[65536];
	long buffered = -1;
	int64_t deadline = tm_now_ms() + 5000;
	do {
		if (buffered > 0)
			tm_sleep_ms(10);
		ck_assert_int_gt(tm_metrics_scrape(mport, body, sizeof body, 5000), 0);
		buffered = tm_metric(body, "tcpmux_buffered_bytes");
	} while (buffered != 0 && tm_now_ms() < deadline);
	long rss = proc_kb(tm_daemon_pid(p.d), "VmRSS");
	fprintf(stderr, "%d idle clients after a %d KiB answer each: RSS %ld kB (at start %ld), %ld bytes "
		"buffered\n", N, BODY / 1024, rss, rss0, buffered);
	check_rss("the RSS", rss, rss0 + SLACK_MB * 1024);
	ck_assert_int_eq(tm_metric(body, "tcpmux_clients_connected"), N);
	ck_assert_int_eq(buffered, 0);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_limits");
	TM_CASE(s, "access", 60, test_allow_mapped, test_metrics_allow, test_metrics_not_delayed,
		test_metrics_listen_fails_once);
	TM_CASE(s, "memory", 120, test_refusal_is_503, test_ceiling_many_partial,
		test_memory_given_back);
	return s;
}
