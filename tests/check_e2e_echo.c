/* End to end, echo: 20 clients through one upstream connection, with
 * pipelined lines and lines split over many writes; every line comes back
 * to the client that sent it. */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

enum { LINES = 60, PIPELINE = 5 };

/* One batch of PIPELINE lines in one write (every third batch trickles in
 * 3-byte pieces), then each answer checked in order. */
static enum tm_next echo_batch(struct tm_client *c, int round)
{
	int i = round * PIPELINE;
	char batch[PIPELINE * 128];
	size_t n = 0;
	for (int k = 0; k < PIPELINE; k++)
		n += (size_t)snprintf(batch + n, sizeof batch - n, "client %d line %d %.*s\n", c->index,
				      i + k, (i + k) % 40, "........................................");
	int rc = round % 3 == 0 ? tm_write_split(c->fd, batch, n, 3) : tm_write_all(c->fd, batch, n);
	if (rc < 0) {
		c->tally[TM_ERROR]++;
		return TM_END;
	}
	for (int k = 0; k < PIPELINE; k++) {
		char want[128], got[256];
		snprintf(want, sizeof want, "client %d line %d %.*s\n", c->index, i + k, (i + k) % 40,
			 "........................................");
		ssize_t g = tm_line_recv(c->fd, got, sizeof got, 10000);
		c->tally[g > 0 && strcmp(got, want) == 0 ? TM_OK : TM_MISMATCH]++;
	}
	return TM_GO_ON;
}

START_TEST(test_twenty_clients)
{
	enum { N = 20 };
	struct sim_opts o = { .proto = SIM_ECHO, .max_conns = 1 };
	const char *extra[] = { "--timeout", "10", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);

	enum { ROUNDS = LINES / PIPELINE };
	struct tm_swarm *w = tm_swarm_start(p.port, N, ROUNDS, ROUNDS, echo_batch, NULL);
	ck_assert_ptr_nonnull(w);
	long t[TM_OUTCOMES];
	tm_swarm_join(w, t);
	tm_swarm_free(w);
	long ok = t[TM_OK], bad = t[TM_MISMATCH] + t[TM_ERROR];
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(ok, N * LINES);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, accepted), 1);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, requests), N * LINES); /* one line, one request upstream */
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* A line longer than --max-frame closes that client with a log line. */
START_TEST(test_oversize_line)
{
	struct sim_opts o = { .proto = SIM_ECHO, .max_conns = 1 };
	const char *extra[] = { "--max-frame", "64", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	int fd = tm_pair_client(&p);
	char big[200];
	memset(big, 'x', sizeof big);
	ck_assert_int_eq(tm_write_all(fd, big, sizeof big), 0);
	ck_assert_int_eq(tm_wait_closed(fd, 5000), 0);
	close(fd);
	ck_assert(tm_daemon_wait_log(p.d, 0, "oversize request", NULL, 0, 5000));
	ck_assert_int_eq(TM_SIM_STAT(p.sim, requests), 0);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* The target closes after every answer: each line still gets its answer,
 * over a fresh connection each time. */
START_TEST(test_target_closes_after_each_answer)
{
	struct sim_opts o = { .proto = SIM_ECHO, .max_conns = 1, .close_after = 1 };
	const char *extra[] = { "--reconnect-backoff", "50ms", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	int fd = tm_pair_client(&p);
	for (int i = 0; i < 5; i++) {
		char line[32], got[64];
		snprintf(line, sizeof line, "again %d\n", i);
		TM_WAIT_FOR(TM_SIM_STAT(p.sim, conns) == 0 || i == 0, 5000);
		ck_assert_int_eq(tm_write_all(fd, line, strlen(line)), 0);
		ck_assert_int_gt(tm_line_recv(fd, got, sizeof got, 5000), 0);
		ck_assert_str_eq(got, line);
	}
	close(fd);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_echo");
	TM_CASE(s, "echo", 120, test_twenty_clients, test_oversize_line,
		test_target_closes_after_each_answer);
	return s;
}
