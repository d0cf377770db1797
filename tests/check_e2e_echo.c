/* End to end, echo: 20 clients through one upstream connection, with
 * pipelined lines and lines split over many writes; every line comes back
 * to the client that sent it. */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

struct echo_run {
	int port;
	int index;
	int ok, bad;
};

enum { LINES = 60, PIPELINE = 5 };

static void *echo_client(void *arg)
{
	struct echo_run *r = arg;
	int fd = tm_connect(r->port);
	if (fd < 0) {
		r->bad++;
		return NULL;
	}
	for (int i = 0; i < LINES; i += PIPELINE) {
		char batch[PIPELINE * 128];
		size_t n = 0;
		/* several lines in one write; every third batch trickles in 3-byte pieces */
		for (int k = 0; k < PIPELINE; k++)
			n += (size_t)snprintf(batch + n, sizeof batch - n, "client %d line %d %.*s\n", r->index,
					      i + k, (i + k) % 40, "........................................");
		int rc = (i / PIPELINE) % 3 == 0 ? tm_write_split(fd, batch, n, 3) : tm_write_all(fd, batch, n);
		if (rc < 0) {
			r->bad++;
			break;
		}
		for (int k = 0; k < PIPELINE; k++) {
			char want[128], got[256];
			snprintf(want, sizeof want, "client %d line %d %.*s\n", r->index, i + k, (i + k) % 40,
				 "........................................");
			ssize_t g = tm_line_recv(fd, got, sizeof got, 10000);
			if (g > 0 && strcmp(got, want) == 0)
				r->ok++;
			else
				r->bad++;
		}
	}
	close(fd);
	return NULL;
}

START_TEST(test_twenty_clients)
{
	enum { N = 20 };
	struct sim_opts o = { .proto = SIM_ECHO, .max_conns = 1 };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	const char *extra[] = { "--timeout", "10", NULL };
	struct tm_daemon *d = tm_daemon_start_sim(s, extra);
	ck_assert_ptr_nonnull(d);

	pthread_t th[N];
	struct echo_run runs[N];
	for (int i = 0; i < N; i++) {
		runs[i] = (struct echo_run){ .port = tm_daemon_port(d), .index = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, echo_client, &runs[i]), 0);
	}
	int ok = 0, bad = 0;
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		ok += runs[i].ok;
		bad += runs[i].bad;
	}
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(ok, N * LINES);
	ck_assert_int_eq(TM_SIM_STAT(s, accepted), 1);
	ck_assert_int_eq(TM_SIM_STAT(s, requests), N * LINES); /* one line, one request upstream */
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	sim_stop(s);
}
END_TEST

/* A line longer than --max-frame closes that client with a log line. */
START_TEST(test_oversize_line)
{
	struct sim_opts o = { .proto = SIM_ECHO, .max_conns = 1 };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	const char *extra[] = { "--max-frame", "64", NULL };
	struct tm_daemon *d = tm_daemon_start_sim(s, extra);
	ck_assert_ptr_nonnull(d);
	int fd = tm_connect(tm_daemon_port(d));
	ck_assert_int_ge(fd, 0);
	char big[200];
	memset(big, 'x', sizeof big);
	ck_assert_int_eq(tm_write_all(fd, big, sizeof big), 0);
	ck_assert_int_eq(tm_wait_closed(fd, 5000), 0);
	close(fd);
	ck_assert(tm_daemon_wait_log(d, 0, "oversize request", NULL, 0, 5000));
	ck_assert_int_eq(TM_SIM_STAT(s, requests), 0);
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	sim_stop(s);
}
END_TEST

/* The target closes after every answer: each line still gets its answer,
 * over a fresh connection each time. */
START_TEST(test_target_closes_after_each_answer)
{
	struct sim_opts o = { .proto = SIM_ECHO, .max_conns = 1, .close_after = 1 };
	struct sim *s = sim_start(&o);
	ck_assert_ptr_nonnull(s);
	const char *extra[] = { "--reconnect-backoff", "50ms", NULL };
	struct tm_daemon *d = tm_daemon_start_sim(s, extra);
	ck_assert_ptr_nonnull(d);
	int fd = tm_connect(tm_daemon_port(d));
	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 5; i++) {
		char line[32], got[64];
		snprintf(line, sizeof line, "again %d\n", i);
		TM_WAIT_FOR(TM_SIM_STAT(s, conns) == 0 || i == 0, 5000);
		ck_assert_int_eq(tm_write_all(fd, line, strlen(line)), 0);
		ck_assert_int_gt(tm_line_recv(fd, got, sizeof got, 5000), 0);
		ck_assert_str_eq(got, line);
	}
	close(fd);
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, 0), 0);
	sim_stop(s);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_echo");
	TCase *tc = tcase_create("echo");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_twenty_clients);
	tcase_add_test(tc, test_oversize_line);
	tcase_add_test(tc, test_target_closes_after_each_answer);
	suite_add_tcase(s, tc);
	return s;
}
