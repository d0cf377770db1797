/* Soak (issue 7): the daemon for a bounded time in front of a simulated
 * target with faults on (unanswered requests, answers after the timeout,
 * connections closed, the target killed and revived), under well-behaved
 * clients whose every answer is checked and misbehaving clients that churn.
 * Progress every 30 s; at the end a verdict on wrong answers, memory,
 * threads, descriptors, and whether the daemon still serves. */
#include "config.h"
#include "bench.h"
#include "sim.h"
#include "testing.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define GOOD_CLIENTS 20
#define BAD_CLIENTS 2
#define CLIENT_STACK (64 * 1024)

/* the target: answers in 2 ms; faults on request numbers (primes, so they
 * drift over the connections and the clients) */
#define SIM_DELAY_MS 2
#define SIM_MAX_CONNS 2
#define SIM_DROP_EVERY 1009   /* never answered: the daemon times out (0x0B) */
#define SIM_LATE_EVERY 757    /* answered after the daemon's --timeout: discarded by id */
#define SIM_LATE_MS 1500
#define SIM_CLOSE_AFTER 997   /* answers per connection before the target closes it */
#define KILL_FIRST_S 15       /* the target is killed then, and every KILL_EVERY_S after */
#define KILL_EVERY_S 20
#define KILL_DOWN_MS 1000     /* revived this long after */

#define TICK_MS 50
#define REPORT_EVERY_S 30
#define WARMUP_S 10           /* the start figures are taken then */
#define RSS_SLACK_KIB 2048    /* end RSS <= start RSS + this */
#define BASE_WAIT_MS 5000     /* for the daemon to settle before the baseline */
#define SETTLE_MS 15000       /* for threads and fds to come back after the clients stop */
#define FINAL_TRIES 5
#define BAD_PAUSE_MS 20       /* between two misbehaviours of one client */
#define ERROR_PAUSE_MS 20     /* a well-behaved client waits this long after an error */
#define BAD_WAIT_MS 4000      /* for the daemon to close a misbehaving client */
#define MAX_KINDS 48          /* distinct warning lines told apart in the log summary */

static const char *const daemon_args[] = { "--max-connections", "2", "--timeout", "1", "--reconnect-backoff",
					   "100ms", "--queue-size", "1000" };

/* ---- counters --------------------------------------------------------------- */

static atomic_long served, ex0a, ex0b, exother, closed_n, other_n, mismatches;
static atomic_bool stop_flag;
static int daemon_port;
static pthread_mutex_t note_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_mismatch[320], first_other[160];

enum bad_kind {
	BAD_CONNECT_CLOSE,  /* connect and close at once, five times */
	BAD_GARBAGE,        /* bytes that are no MBAP frame (protocol id 0xBEEF): the daemon must close */
	BAD_OVERSIZE,       /* an MBAP length of 1024: the daemon must close */
	BAD_HALF_CLOSE,     /* half a request, then close */
	BAD_HALF_STALL,     /* half a request, then silence: closed after --timeout */
	BAD_MID_EXCHANGE,   /* a whole request, then close before the answer */
	BAD_MID_RESET,      /* the same with a reset (RST) */
	BAD_PIPELINE_CLOSE, /* three requests at once, read one answer (checked), close */
	NBAD
};
static const char *const bad_names[NBAD] = { "connect/close", "garbage", "oversize", "half+close",
					     "half+stall", "close mid-exchange", "reset mid-exchange",
					     "pipeline+close" };
static atomic_long bad_done[NBAD];
static atomic_long bad_unexpected; /* the daemon did not close when it should have, or answered wrong */
static char first_unexpected[200];

static void note(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(char *dst, size_t cap, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&note_lock);
	if (dst[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(dst, cap, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&note_lock);
}

static int64_t now_ms(void)
{
	return bench_now_ns() / 1000000;
}

/* ---- well-behaved clients ----------------------------------------------------- */

/* Client idx reads from unit idx + 1, at addresses of its own that move on
 * with every request, functions 3 and 4 in turn, 1..12 registers: an
 * answer meant for another client or another request cannot pass the
 * check. Back to back; it reconnects when its connection is lost. */
static void *good_main(void *arg)
{
	int idx = (int)(intptr_t)arg;
	uint8_t unit = (uint8_t)(idx + 1);
	uint16_t tid = (uint16_t)(idx * 3203);
	unsigned k = 0;
	int fd = -1;
	while (!atomic_load(&stop_flag)) {
		if (fd < 0) {
			fd = tm_connect(daemon_port);
			if (fd < 0) {
				atomic_fetch_add(&other_n, 1);
				note(first_other, sizeof first_other, "client %d: connect: %s", idx, strerror(-fd));
				fd = -1;
				tm_sleep_ms(100);
				continue;
			}
		}
		k++;
		tid++;
		uint8_t fc = k & 1 ? 3 : 4;
		uint16_t qty = (uint16_t)(1 + k % 12);
		uint16_t addr = (uint16_t)((idx * 2999u + k * 13u) % 60000u);
		uint8_t ex = 0;
		char why[256];
		int rc = bench_modbus_read(fd, tid, unit, fc, addr, qty, &ex, why, sizeof why);
		if (rc == 0) {
			atomic_fetch_add(&served, 1);
			continue;
		}
		/* Like a real master, it waits a little after an error: with the
		 * target down, 0x0A comes at once, and back to back would spin. */
		if (rc == -EREMOTEIO) {
			atomic_fetch_add(ex == 0x0A ? &ex0a : ex == 0x0B ? &ex0b : &exother, 1);
			tm_sleep_ms(ERROR_PAUSE_MS);
			continue;
		}
		if (rc == 1) {
			atomic_fetch_add(&mismatches, 1);
			note(first_mismatch, sizeof first_mismatch, "client %d: %s", idx, why);
		} else if (rc == -ECONNRESET || rc == -EPIPE) {
			atomic_fetch_add(&closed_n, 1);
		} else {
			atomic_fetch_add(&other_n, 1);
			note(first_other, sizeof first_other, "client %d: %s", idx, strerror(-rc));
		}
		/* the stream may be out of step: start afresh */
		close(fd);
		fd = -1;
		tm_sleep_ms(ERROR_PAUSE_MS);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* ---- misbehaving clients ------------------------------------------------------ */

static void unexpected(const char *what, int idx, int rc)
{
	atomic_fetch_add(&bad_unexpected, 1);
	note(first_unexpected, sizeof first_unexpected, "misbehaving client %d, %s: %s", idx, what,
	     rc == -EPROTO ? "the daemon sent bytes" : strerror(-rc));
}

/* Sends n bytes the daemon must answer by closing the connection; closes fd. */
static void send_then_closed(int fd, const void *buf, size_t n, const char *what, int idx)
{
	int rc = tm_write_all(fd, buf, n);
	if (rc == 0 && (rc = tm_wait_closed(fd, BAD_WAIT_MS)) != 0)
		unexpected(what, idx, rc);
	close(fd);
}

static void close_reset(int fd)
{
	struct linger lg = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
}

static void misbehave(enum bad_kind kind, int idx, unsigned k)
{
	uint8_t unit = (uint8_t)(200 + idx);
	uint16_t tid = (uint16_t)(40000 + k * 3);
	uint8_t req[36];
	int fd;
	if (kind == BAD_CONNECT_CLOSE) {
		for (int i = 0; i < 5; i++) {
			fd = tm_connect(daemon_port);
			if (fd >= 0)
				close(fd);
		}
		return;
	}
	fd = tm_connect(daemon_port);
	if (fd < 0)
		return;
	tm_modbus_req_read(req, tid, unit, 3, (uint16_t)(k % 1000), 4);
	int rc;
	switch (kind) {
	case BAD_GARBAGE: {
		static const uint8_t junk[] = { 0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x06, 0x01, 0x03, 0x00, 0x00, 0x00, 0x01 };
		send_then_closed(fd, junk, sizeof junk, "garbage", idx);
		break;
	}
	case BAD_OVERSIZE: {
		uint8_t big[12];
		memcpy(big, req, sizeof big);
		big[4] = 0x04; /* length 1024 */
		big[5] = 0x00;
		send_then_closed(fd, big, sizeof big, "oversize", idx);
		break;
	}
	case BAD_HALF_CLOSE:
		tm_write_all(fd, req, 5);
		close(fd);
		break;
	case BAD_HALF_STALL:
		send_then_closed(fd, req, 7, "half a request, then silence", idx);
		break;
	case BAD_MID_EXCHANGE:
		tm_write_all(fd, req, 12);
		close(fd);
		break;
	case BAD_MID_RESET:
		tm_write_all(fd, req, 12);
		close_reset(fd);
		break;
	case BAD_PIPELINE_CLOSE: {
		tm_modbus_req_read(req + 12, (uint16_t)(tid + 1), unit, 4, 10, 2);
		tm_modbus_req_read(req + 24, (uint16_t)(tid + 2), unit, 3, 20, 3);
		uint8_t resp[260];
		rc = tm_write_all(fd, req, 36);
		ssize_t n = rc < 0 ? rc : tm_modbus_recv(fd, resp, sizeof resp, BENCH_IO_TIMEOUT_MS);
		if (n >= 8) {
			bool ok = (resp[0] << 8 | resp[1]) == tid && resp[6] == unit;
			if (ok && resp[7] == 3)
				ok = n == 9 + 8 && resp[8] == 8 &&
				     (resp[9] << 8 | resp[10]) == sim_modbus_value(3, (uint16_t)(k % 1000), unit);
			else if (ok)
				ok = resp[7] == 0x83 && n == 9;
			if (!ok) {
				/* the answer to the first request must come first, and be right */
				atomic_fetch_add(&mismatches, 1);
				note(first_mismatch, sizeof first_mismatch,
				     "pipelining client %d: first answer tid %u unit %u fc %u, %zd bytes (asked tid %u)",
				     idx, resp[0] << 8 | resp[1], resp[6], resp[7], n, tid);
			}
		} else if (n >= 0) {
			unexpected("pipeline", idx, -EPROTO);
		}
		close(fd);
		break;
	}
	default:
		close(fd);
		break;
	}
}

static void *bad_main(void *arg)
{
	int idx = (int)(intptr_t)arg;
	unsigned k = (unsigned)idx * 5;
	while (!atomic_load(&stop_flag)) {
		enum bad_kind kind = (enum bad_kind)(k % NBAD);
		misbehave(kind, idx, k);
		atomic_fetch_add(&bad_done[kind], 1);
		k++;
		tm_sleep_ms(BAD_PAUSE_MS);
	}
	return NULL;
}

/* ---- the daemon as /proc sees it ----------------------------------------------- */

struct sample {
	long rss_kib, threads, fds;
};

static bool take(pid_t pid, struct sample *s)
{
	s->fds = bench_proc_fds(pid);
	return bench_proc_status(pid, &s->rss_kib, &s->threads) == 0 && s->fds >= 0;
}

/* Waits until the threads and descriptors stay put for 300 ms. */
static bool settle(pid_t pid, struct sample *s, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct sample prev = { -1, -1, -1 };
	int same = 0;
	while (now_ms() < deadline) {
		if (!take(pid, s))
			return false;
		same = s->threads == prev.threads && s->fds == prev.fds ? same + 1 : 0;
		if (same >= 15)
			return true;
		prev = *s;
		tm_sleep_ms(20);
	}
	return false;
}

static void print_report(int64_t elapsed_ms, long served_before, int64_t since_ms, const struct sample *base,
			 const struct sample *start, const struct sample *cur, struct sim *s, int kills)
{
	long n = atomic_load(&served);
	struct sim_stats st;
	sim_get_stats(s, &st);
	printf("[%5.0f s] served %ld (%.0f/s lately) | errors: 0x0A %ld, 0x0B %ld, other exception %ld, closed %ld, "
	       "other %ld | mismatches %ld\n",
	       elapsed_ms / 1000.0, n, since_ms > 0 ? (n - served_before) * 1000.0 / since_ms : 0.0,
	       atomic_load(&ex0a), atomic_load(&ex0b), atomic_load(&exother), atomic_load(&closed_n),
	       atomic_load(&other_n), atomic_load(&mismatches));
	char st_rss[32] = "-", st_thr[16] = "-", st_fds[16] = "-";
	if (start->rss_kib >= 0) {
		snprintf(st_rss, sizeof st_rss, "%.2f", start->rss_kib / 1024.0);
		snprintf(st_thr, sizeof st_thr, "%ld", start->threads);
		snprintf(st_fds, sizeof st_fds, "%ld", start->fds);
	}
	printf("          daemon: RSS %.2f MiB (start %s), threads %ld (start %s, idle %ld), fds %ld (start %s, "
	       "idle %ld)\n",
	       cur->rss_kib / 1024.0, st_rss, cur->threads, st_thr, base->threads, cur->fds, st_fds, base->fds);
	printf("          target: %ld requests, %ld answers, %ld dropped, %ld late; %ld connections accepted, "
	       "%ld rejected; killed %d times\n",
	       st.requests, st.answers, st.dropped, st.late, st.accepted, st.rejected, kills);
	long total = 0;
	for (int i = 0; i < NBAD; i++)
		total += atomic_load(&bad_done[i]);
	printf("          misbehaving: %ld rounds (", total);
	for (int i = 0; i < NBAD; i++)
		printf("%s%s %ld", i ? ", " : "", bad_names[i], atomic_load(&bad_done[i]));
	printf("); unexpected %ld\n", atomic_load(&bad_unexpected));
	fflush(stdout);
}

/* ---- the daemon's log ----------------------------------------------------------- */

struct kind {
	char text[160];
	long n;
};

static int by_count(const void *a, const void *b)
{
	const struct kind *x = a, *y = b;
	return x->n < y->n ? 1 : x->n > y->n ? -1 : 0;
}

/* Counts the warning and error lines of the log by kind: the text after
 * the level with every run of digits made '#'. */
static void log_summary(const struct bench_daemon *d)
{
	FILE *f = fopen(d->log, "r");
	if (f == NULL)
		return;
	static struct kind kinds[MAX_KINDS];
	int nk = 0;
	long warn = 0, err = 0, rest = 0, total = 0;
	char line[1024];
	while (fgets(line, sizeof line, f)) {
		total++;
		const char *p = strstr(line, "warn: ");
		bool is_err = false;
		if (p == NULL) {
			p = strstr(line, "error: ");
			is_err = p != NULL;
		}
		if (p == NULL)
			continue;
		if (is_err)
			err++;
		else
			warn++;
		char norm[160];
		size_t k = 0;
		for (const char *q = p; *q && *q != '\n' && k + 1 < sizeof norm; q++) {
			if (*q >= '0' && *q <= '9') {
				if (k == 0 || norm[k - 1] != '#')
					norm[k++] = '#';
			} else {
				norm[k++] = *q;
			}
		}
		norm[k] = '\0';
		int i;
		for (i = 0; i < nk; i++)
			if (strcmp(kinds[i].text, norm) == 0)
				break;
		if (i < nk)
			kinds[i].n++;
		else if (nk < MAX_KINDS) {
			snprintf(kinds[nk].text, sizeof kinds[nk].text, "%s", norm);
			kinds[nk++].n = 1;
		} else {
			rest++;
		}
	}
	fclose(f);
	qsort(kinds, (size_t)nk, sizeof kinds[0], by_count);
	printf("daemon log: %ld lines, %ld warnings, %ld errors; by kind (digits as #):\n", total, warn, err);
	for (int i = 0; i < nk && i < 16; i++)
		printf("  %7ld  %s\n", kinds[i].n, kinds[i].text);
	if (nk > 16 || rest > 0)
		printf("  (%d more kinds, %ld lines of kinds not told apart)\n", nk > 16 ? nk - 16 : 0, rest);
}

/* ---- the run ---------------------------------------------------------------------- */

static int final_read(int port, int *attempts)
{
	int rc = -EIO;
	for (*attempts = 1; *attempts <= FINAL_TRIES; (*attempts)++) {
		int fd = tm_connect(port);
		if (fd < 0) {
			rc = fd;
		} else {
			char why[256] = "";
			rc = bench_modbus_read(fd, (uint16_t)(4242 + *attempts), 99, 3, 1234, 10, NULL, why,
					       sizeof why);
			close(fd);
			if (rc == 1)
				printf("  final read: mismatch: %s\n", why);
		}
		if (rc == 0 || rc == 1)
			return rc;
		tm_sleep_ms(200);
	}
	return rc;
}

static const char *verdict_word(bool ok)
{
	return ok ? "OK" : "FAILED";
}

int bench_soak(int seconds)
{
	struct sim_opts so = { .proto = SIM_MODBUS, .max_conns = SIM_MAX_CONNS, .delay_ms = SIM_DELAY_MS,
			       .drop_every = SIM_DROP_EVERY, .late_every = SIM_LATE_EVERY, .late_ms = SIM_LATE_MS,
			       .close_after = SIM_CLOSE_AFTER };
	printf("tcpmux-bench --soak %d: daemon %s\n", seconds, tm_daemon_binary());
	printf("daemon flags: -p modbus -t 127.0.0.1:PORT");
	for (size_t i = 0; i < sizeof daemon_args / sizeof daemon_args[0]; i++)
		printf(" %s", daemon_args[i]);
	printf(" (no -v)\n");
	printf("target: answers in %d ms, at most %d connections; request numbers divisible by %d get no answer, "
	       "by %d an answer after %d ms; a connection is closed after %d answers; killed at %d s and every "
	       "%d s after, revived %d ms later\n",
	       SIM_DELAY_MS, SIM_MAX_CONNS, SIM_DROP_EVERY, SIM_LATE_EVERY, SIM_LATE_MS, SIM_CLOSE_AFTER, KILL_FIRST_S,
	       KILL_EVERY_S, KILL_DOWN_MS);
	printf("clients: %d well-behaved (back to back, %d ms pause after an error; unit and addresses their own, every answer checked), %d "
	       "misbehaving in turn: ",
	       GOOD_CLIENTS, ERROR_PAUSE_MS, BAD_CLIENTS);
	for (int i = 0; i < NBAD; i++)
		printf("%s%s", i ? ", " : "", bad_names[i]);
	printf("\nstart figures after %d s; report every %d s\n", WARMUP_S, REPORT_EVERY_S);

	struct sim *s = sim_start(&so);
	if (s == NULL) {
		printf("soak: cannot start the simulator: %s\n", strerror(errno));
		return 1;
	}
	char target[32];
	snprintf(target, sizeof target, "127.0.0.1:%d", sim_port(s));
	const char *args[32] = { "-p", "modbus", "-t", target };
	size_t na = 4;
	for (size_t i = 0; i < sizeof daemon_args / sizeof daemon_args[0]; i++)
		args[na++] = daemon_args[i];
	args[na] = NULL;
	struct bench_daemon d;
	if (bench_daemon_start(&d, args) < 0) {
		printf("soak: the daemon did not start\n");
		sim_stop(s);
		return 1;
	}
	daemon_port = d.port;
	TM_WAIT_FOR(TM_SIM_STAT(s, conns) >= SIM_MAX_CONNS, BENCH_START_TIMEOUT_MS);
	struct sample base, start = { -1, -1, -1 }, cur, end = { -1, -1, -1 }, after = { -1, -1, -1 };
	if (!settle(d.pid, &base, BASE_WAIT_MS))
		printf("note: the daemon did not settle within %d ms before the clients\n", BASE_WAIT_MS);
	printf("daemon idle (%ld upstream connections): RSS %.2f MiB, threads %ld, fds %ld\n",
	       TM_SIM_STAT(s, conns), base.rss_kib / 1024.0, base.threads, base.fds);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, CLIENT_STACK);
	pthread_t good[GOOD_CLIENTS], bad[BAD_CLIENTS];
	int ngood = 0, nbad = 0;
	atomic_store(&stop_flag, false);
	for (; ngood < GOOD_CLIENTS; ngood++)
		if (pthread_create(&good[ngood], &attr, good_main, (void *)(intptr_t)ngood) != 0)
			break;
	for (; nbad < BAD_CLIENTS; nbad++)
		if (pthread_create(&bad[nbad], &attr, bad_main, (void *)(intptr_t)nbad) != 0)
			break;
	pthread_attr_destroy(&attr);
	bool setup_ok = ngood == GOOD_CLIENTS && nbad == BAD_CLIENTS;
	if (!setup_ok)
		printf("soak: only %d + %d client threads started\n", ngood, nbad);

	int64_t t0 = now_ms(), t_end = t0 + (int64_t)seconds * 1000;
	int64_t next_report = t0 + REPORT_EVERY_S * 1000, last_report = t0;
	int64_t next_kill = t0 + KILL_FIRST_S * 1000, revive_at = 0;
	long served_at_last = 0;
	int kills = 0, daemon_status = 0;
	bool daemon_alive = true, down = false, revive_ok = true;
	/* Bounded by t_end (and a revive by its own deadline). */
	while (setup_ok) {
		int64_t t = now_ms();
		if (!bench_child_running(d.pid, &daemon_status)) {
			daemon_alive = false;
			printf("[%5.0f s] THE DAEMON EXITED: status %d\n", (t - t0) / 1000.0, daemon_status);
			bench_daemon_log_tail(&d, 10);
			break;
		}
		if (down && t >= revive_at) {
			int rc = sim_revive(s);
			if (rc == 0) {
				down = false;
			} else if (t >= revive_at + 10000) {
				printf("soak: the target could not be revived: %s\n", strerror(-rc));
				revive_ok = false;
				break;
			}
		}
		if (t >= t_end && !down)
			break;
		if (!down && t >= next_kill) {
			if (t + KILL_DOWN_MS + 3000 < t_end) {
				sim_kill(s);
				kills++;
				down = true;
				revive_at = t + KILL_DOWN_MS;
			}
			next_kill += KILL_EVERY_S * 1000;
		}
		if (start.rss_kib < 0 && t - t0 >= WARMUP_S * 1000)
			take(d.pid, &start);
		if (t >= next_report) {
			take(d.pid, &cur);
			print_report(t - t0, served_at_last, t - last_report, &base, &start, &cur, s, kills);
			served_at_last = atomic_load(&served);
			last_report = t;
			next_report += REPORT_EVERY_S * 1000;
		}
		tm_sleep_ms(TICK_MS);
	}
	int64_t ran_ms = now_ms() - t0;
	if (daemon_alive) {
		take(d.pid, &end);
		print_report(ran_ms, served_at_last, ran_ms - (last_report - t0), &base, &start, &end, s, kills);
	}

	/* The clients stop; each of their steps is bounded by the socket timeouts. */
	atomic_store(&stop_flag, true);
	for (int i = 0; i < ngood; i++)
		pthread_join(good[i], NULL);
	for (int i = 0; i < nbad; i++)
		pthread_join(bad[i], NULL);
	if (down && sim_revive(s) != 0)
		revive_ok = false;

	/* Back to the idle figures: every client thread gone, every client
	 * socket closed, the pool full again. */
	int64_t t_stop = now_ms();
	bool back = false;
	if (daemon_alive) {
		while (now_ms() - t_stop < SETTLE_MS) {
			if (!take(d.pid, &after))
				break;
			if (after.threads <= base.threads && after.fds <= base.fds) {
				back = true;
				break;
			}
			tm_sleep_ms(20);
		}
	}
	int64_t settle_ms = now_ms() - t_stop;
	int attempts = 0;
	int final_rc = daemon_alive ? final_read(d.port, &attempts) : -ESRCH;
	if (daemon_alive)
		daemon_alive = bench_child_running(d.pid, &daemon_status);

	printf("\nverdict after %.0f s (%ld requests served)\n", ran_ms / 1000.0, atomic_load(&served));
	long mism = atomic_load(&mismatches);
	bool ok_mism = mism == 0;
	printf("  %-7s mismatches: %ld", verdict_word(ok_mism), mism);
	if (first_mismatch[0])
		printf(" (first: %s)", first_mismatch);
	printf("\n");
	bool ok_rss = start.rss_kib >= 0 && end.rss_kib >= 0 && end.rss_kib <= start.rss_kib + RSS_SLACK_KIB;
	if (start.rss_kib >= 0 && end.rss_kib >= 0)
		printf("  %-7s RSS: %.2f MiB at %d s, %.2f MiB at the end: %+.2f MiB (bound +%.0f MiB)\n",
		       verdict_word(ok_rss), start.rss_kib / 1024.0, WARMUP_S, end.rss_kib / 1024.0,
		       (end.rss_kib - start.rss_kib) / 1024.0, RSS_SLACK_KIB / 1024.0);
	else
		printf("  %-7s RSS: not measured (the run was too short or the daemon is gone)\n", verdict_word(false));
	bool ok_back = back;
	if (after.threads >= 0)
		printf("  %-7s after the clients stopped: threads %ld (idle %ld), fds %ld (idle %ld), %s %.1f s; "
		       "RSS then %.2f MiB\n",
		       verdict_word(ok_back), after.threads, base.threads, after.fds, base.fds,
		       back ? "back in" : "not back after", settle_ms / 1000.0, after.rss_kib / 1024.0);
	else
		printf("  %-7s after the clients stopped: not measured\n", verdict_word(false));
	bool ok_final = final_rc == 0;
	if (ok_final)
		printf("  %-7s still serving: a final read answered right (attempt %d)\n", "OK", attempts);
	else
		printf("  %-7s still serving: the final read failed: %s\n", "FAILED",
		       final_rc == 1 ? "wrong answer" : strerror(-final_rc));
	bool ok_alive = daemon_alive && revive_ok && setup_ok;
	printf("  %-7s the daemon ran throughout%s%s\n", verdict_word(ok_alive),
	       daemon_alive ? "" : " -- it exited", revive_ok ? "" : " (the target could not be revived)");
	struct sim_stats st;
	sim_get_stats(s, &st);
	long rounds = 0;
	for (int i = 0; i < NBAD; i++)
		rounds += atomic_load(&bad_done[i]);
	printf("  faults exercised: %ld requests left unanswered, %ld answered late, %ld upstream connections "
	       "accepted in all, the target killed %d times; %ld misbehaving rounds\n",
	       st.dropped, st.late, st.accepted, kills, rounds);
	printf("  errors (expected under the faults): 0x0A %ld, 0x0B %ld, other exception %ld, closed %ld, other %ld\n",
	       atomic_load(&ex0a), atomic_load(&ex0b), atomic_load(&exother), atomic_load(&closed_n),
	       atomic_load(&other_n));
	if (first_other[0])
		printf("    first 'other': %s\n", first_other);
	if (atomic_load(&bad_unexpected) > 0)
		printf("  note: %ld misbehaving rounds went unexpectedly (first: %s)\n", atomic_load(&bad_unexpected),
		       first_unexpected);

	int stop_rc = daemon_alive ? bench_daemon_stop(&d) : daemon_status;
	bool ok_stop = stop_rc == 0;
	printf("  %-7s the daemon stopped on SIGTERM with status %d\n", verdict_word(ok_stop), stop_rc);
	log_summary(&d);
	sim_stop(s);

	bool ok = ok_mism && ok_rss && ok_back && ok_final && ok_alive && ok_stop;
	printf("\nSOAK %s\n", ok ? "PASSED" : "FAILED");
	return ok ? 0 : 1;
}
