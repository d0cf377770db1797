/* End to end, faults: every fault a target or a client can commit on one
 * machine, each while well-behaved clients keep reading. Each case checks
 * the two invariants of DESIGN.md: (1) no client ever gets an answer that
 * is not its own, (2) the daemon needs no restart: the good clients are
 * served again within the case's stated time after the fault, and the
 * daemon's descriptors and threads return to their baseline. */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testing.h"

#define GOOD_CLIENTS 4          /* well-behaved clients running through every fault */
#define IO_MS 5000              /* no answer, close or exception within this: stuck */
#define SERVED_MS 10000         /* every good client's first answer, before the fault */
#define FAULT_EVENTS_MS 20000   /* for the simulator to commit its faults */
#define BASELINE_MS 10000       /* for descriptors and threads to return to the baseline */
#define CASE_TIMEOUT_S 60       /* check's limit for one case (each takes a few seconds) */

/* Target faults: the daemon answers with 0x0B/0x0A meanwhile, at worst
 * after --timeout (1 s); once the fault stops, every good client is served
 * again within this. */
#define DROP_RECOVERY_MS 3000
#define LATE_RECOVERY_MS 3000
#define CLOSE_RECOVERY_MS 3000
#define RESET_RECOVERY_MS 3000
#define HALF_RECOVERY_MS 3000
#define UNSOLICITED_RECOVERY_MS 2000
#define GARBAGE_TARGET_RECOVERY_MS 3000
#define RESTART_RECOVERY_MS 3000
/* Client faults: the good clients are served during the fault, and after. */
#define DISCONNECT_RECOVERY_MS 2000
#define SLOWLORIS_RECOVERY_MS 2000
#define GARBAGE_CLIENT_RECOVERY_MS 2000
#define OVERSIZE_RECOVERY_MS 2000
#define MASS_RECOVERY_MS 5000
#define CHURN_RECOVERY_MS 2000
#define ECHO_RECOVERY_MS 3000

/* The typical target: Modbus, one connection at a time. */
#define ONE_CONN_MODBUS ((struct sim_opts){ .proto = SIM_MODBUS, .max_conns = 1 })

/* The daemon's flags for most cases: a fault costs at most 1 s. */
#define FAST_FLAGS "--timeout", "1", "--reconnect-backoff", "50ms"

/* ---- the daemon's resources --------------------------------------------- */

/* Entries of /proc/PID/fd, or -errno. */
static int proc_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* "Threads:" of /proc/PID/status, or -errno. */
static int proc_threads(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int n = -ENOENT;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* ---- well-behaved clients ----------------------------------------------- */

struct fcase;

struct good {
	struct fcase *fc;
	int index;
	/* the thread's own, read after the join */
	long mismatches;      /* an answer that was not to this request: invariant 1 broken */
	long stuck;           /* nothing at all within IO_MS */
	long closed;          /* the daemon closed the connection (echo: how it reports a failure) */
	long exc_0a, exc_0b, other_exc;
	int64_t worst_gap_ms; /* longest time from a failure to the next answer */
	int64_t fail_since;   /* when the failures since the last answer began; 0: none */
	char first_bad[160];  /* what the first mismatch looked like */
	/* read while it runs */
	atomic_long ok;
	atomic_llong first_ok_after_mark; /* when the first answer to a request sent after mark came */
};

struct fcase {
	const char *name;
	enum sim_proto proto;
	struct tm_pair p;       /* the simulated target and the daemon */
	pid_t pid;
	int base_fds, base_threads;
	atomic_llong mark_ms;   /* the end of the fault; INT64_MAX before */
	struct tm_swarm *swarm; /* the good clients */
	struct good good[GOOD_CLIENTS];
};

struct totals {
	long ok, mismatches, stuck, closed, exc_0a, exc_0b, other_exc;
	int64_t worst_gap_ms;
};

/* The outcome of one request. */
enum outcome { OK, FAILED, RECONNECT };

static void good_note(struct good *g, enum outcome r, int64_t sent, int64_t *fail_since)
{
	int64_t now = tm_now_ms();
	if (r != OK) {
		if (*fail_since == 0)
			*fail_since = now;
		return;
	}
	if (*fail_since) {
		if (now - *fail_since > g->worst_gap_ms)
			g->worst_gap_ms = now - *fail_since;
		*fail_since = 0;
	}
	atomic_fetch_add(&g->ok, 1);
	if (sent >= atomic_load(&g->fc->mark_ms) && atomic_load(&g->first_ok_after_mark) == 0)
		atomic_store(&g->first_ok_after_mark, now);
}

/* One read whose unit, address, quantity and transaction id identify this
 * client and this request; the values are checked against the formula. */
static enum outcome good_modbus_once(struct good *g, int fd, unsigned i)
{
	uint16_t tid = (uint16_t)((g->index + 1) << 12 | (i & 0xFFF));
	uint8_t unit = (uint8_t)(1 + g->index);
	uint8_t fc = (i % 2) ? 3 : 4;
	uint16_t addr = (uint16_t)(g->index * 8192 + (i * 7) % 8000);
	uint16_t qty = (uint16_t)(1 + i % 4);
	uint16_t v[4];
	uint8_t exc = 0;

	int rc = tm_modbus_read(fd, tid, unit, fc, addr, qty, v, &exc);
	if (rc == -EPROTO) {
		if (g->mismatches++ == 0)
			snprintf(g->first_bad, sizeof(g->first_bad),
				 "an answer that does not match tid %u unit %u fc %u qty %u", tid, unit, fc,
				 qty);
		return RECONNECT; /* the stream is out of step now */
	}
	if (rc == -ETIMEDOUT) {
		g->stuck++;
		return RECONNECT;
	}
	if (rc < 0) {
		g->closed++;
		return RECONNECT;
	}
	if (exc) {
		if (exc == 0x0A)
			g->exc_0a++;
		else if (exc == 0x0B)
			g->exc_0b++;
		else
			g->other_exc++;
		return FAILED;
	}
	for (int k = 0; k < qty; k++) {
		if (v[k] != sim_modbus_value(fc, (uint16_t)(addr + k), unit)) {
			if (g->mismatches++ == 0)
				snprintf(g->first_bad, sizeof(g->first_bad),
					 "register %u of unit %u read %u, not %u", addr + k, unit, v[k],
					 sim_modbus_value(fc, (uint16_t)(addr + k), unit));
			return RECONNECT;
		}
	}
	return OK;
}

/* One line that names this client and request; the echo must be it. */
static enum outcome good_echo_once(struct good *g, int fd, unsigned i)
{
	char line[128], got[256];
	int pad = (int)(i % 40);
	int n = snprintf(line, sizeof(line), "good %d request %u %.*s\n", g->index, i, pad,
			 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
	if (tm_write_all(fd, line, (size_t)n) < 0) {
		g->closed++;
		return RECONNECT;
	}
	ssize_t r = tm_line_recv(fd, got, sizeof(got), IO_MS);
	if (r == -ETIMEDOUT) {
		g->stuck++;
		return RECONNECT;
	}
	if (r == -EPIPE || r == -ECONNRESET) {
		g->closed++; /* the daemon's way to say "no answer" without ids */
		return RECONNECT;
	}
	if (r < 0 || strcmp(got, line) != 0) {
		if (g->mismatches++ == 0)
			snprintf(g->first_bad, sizeof(g->first_bad), "sent \"%.*s\", got \"%.*s\" (%zd)",
				 n - 1, line, r > 0 ? (int)strcspn(got, "\n") : 0, got, r);
		return RECONNECT;
	}
	return OK;
}

/* One request of a good client; a connection the daemon refused or closed
 * is opened again in its next round. */
static enum tm_next good_round(struct tm_client *c, int round)
{
	struct fcase *fc = c->arg;
	struct good *g = &fc->good[c->index];
	unsigned i = (unsigned)round;
	if (c->fd < 0) {
		c->fd = tm_connect(c->port);
		if (c->fd < 0) {
			g->closed++;
			good_note(g, FAILED, 0, &g->fail_since);
			tm_sleep_ms(10); /* pacing: the daemon should never refuse us */
			return TM_GO_ON;
		}
	}
	int64_t sent = tm_now_ms();
	enum outcome r = fc->proto == SIM_ECHO ? good_echo_once(g, c->fd, i) : good_modbus_once(g, c->fd, i);
	good_note(g, r, sent, &g->fail_since);
	if (r == RECONNECT) {
		close(c->fd);
		c->fd = -1;
	}
	return TM_GO_ON;
}

static long good_ok(struct fcase *fc)
{
	long n = 0;
	for (int i = 0; i < GOOD_CLIENTS; i++)
		n += atomic_load(&fc->good[i].ok);
	return n;
}

static bool all_served(struct fcase *fc)
{
	for (int i = 0; i < GOOD_CLIENTS; i++)
		if (atomic_load(&fc->good[i].ok) == 0)
			return false;
	return true;
}

static bool all_recovered(struct fcase *fc)
{
	for (int i = 0; i < GOOD_CLIENTS; i++)
		if (atomic_load(&fc->good[i].first_ok_after_mark) == 0)
			return false;
	return true;
}

/* ---- a case: set up, fault, recover, check ------------------------------ */

/* Starts the simulator and the daemon, waits for nconn upstream
 * connections, takes the baseline, starts the good clients and waits until
 * each has been served. */
static struct fcase *fc_begin(const char *name, struct sim_opts o, const char *const extra[], int nconn)
{
	struct fcase *fc = calloc(1, sizeof(*fc));
	ck_assert_ptr_nonnull(fc);
	fc->name = name;
	fc->proto = o.proto;
	atomic_store(&fc->mark_ms, INT64_MAX);
	ck_assert_int_eq(tm_pair_start(&fc->p, &o, extra), 0);
	fc->pid = tm_daemon_pid(fc->p.d);
	TM_WAIT_FOR(tm_daemon_log_count(fc->p.d, 0, ": connected to ") >= nconn, SERVED_MS);
	ck_assert_int_ge(tm_daemon_log_count(fc->p.d, 0, ": connected to "), nconn);
	ck_assert(TM_SIM_WAIT(fc->p.sim, accepted, nconn, SERVED_MS));

	/* Connected upstream, no client yet: the baseline. */
	fc->base_fds = proc_fds(fc->pid);
	fc->base_threads = proc_threads(fc->pid);
	ck_assert_int_gt(fc->base_fds, 0);
	ck_assert_int_gt(fc->base_threads, 0);
	fprintf(stderr, "faults: %s: baseline %d fds, %d threads\n", name, fc->base_fds, fc->base_threads);

	for (int i = 0; i < GOOD_CLIENTS; i++) {
		fc->good[i].fc = fc;
		fc->good[i].index = i;
	}
	/* until fc_stop_clients; the count is a backstop */
	fc->swarm = tm_swarm_start(fc->p.port, GOOD_CLIENTS, 0, 10000000, good_round, fc);
	ck_assert_ptr_nonnull(fc->swarm);
	TM_WAIT_FOR(all_served(fc), SERVED_MS);
	ck_assert_msg(all_served(fc), "%s: the good clients are not served before the fault", name);
	return fc;
}

/* fc_begin with the daemon's lines not copied to stderr (thousands of
 * "connected" lines); they are still recorded for the log checks. */
static struct fcase *fc_begin_quiet(const char *name, struct sim_opts o, const char *const extra[], int nconn)
{
	bool was = getenv("TM_QUIET") != NULL;
	if (!was)
		setenv("TM_QUIET", "1", 1);
	struct fcase *fc = fc_begin(name, o, extra, nconn);
	if (!was)
		unsetenv("TM_QUIET"); /* for the next cases under CK_FORK=no */
	return fc;
}

/* The fault is over: waits until every good client has been answered a
 * request sent after now, within recovery_ms. Returns the time it took. */
static int64_t fc_recovered(struct fcase *fc, int recovery_ms)
{
	for (int i = 0; i < GOOD_CLIENTS; i++)
		atomic_store(&fc->good[i].first_ok_after_mark, 0);
	int64_t t0 = tm_now_ms();
	atomic_store(&fc->mark_ms, t0);
	TM_WAIT_FOR(all_recovered(fc), recovery_ms);
	int64_t worst = 0;
	for (int i = 0; i < GOOD_CLIENTS; i++) {
		int64_t t = atomic_load(&fc->good[i].first_ok_after_mark);
		ck_assert_msg(t != 0, "%s: good client %d not served within %d ms after the fault", fc->name,
			      i, recovery_ms);
		if (t - t0 > worst)
			worst = t - t0;
	}
	ck_assert_int_le(worst, recovery_ms);
	fprintf(stderr, "faults: %s: every good client served again %lld ms after the fault (limit %d ms)\n",
		fc->name, (long long)worst, recovery_ms);
	return worst;
}

/* Stops the good clients and checks invariant 1 over all their answers. */
static struct totals fc_stop_clients(struct fcase *fc)
{
	struct totals t = { 0 };
	tm_swarm_join(fc->swarm, NULL);
	tm_swarm_free(fc->swarm);
	fc->swarm = NULL;
	for (int i = 0; i < GOOD_CLIENTS; i++) {
		struct good *g = &fc->good[i];
		if (g->mismatches)
			fprintf(stderr, "faults: %s: good client %d: %s\n", fc->name, i, g->first_bad);
		t.ok += atomic_load(&g->ok);
		t.mismatches += g->mismatches;
		t.stuck += g->stuck;
		t.closed += g->closed;
		t.exc_0a += g->exc_0a;
		t.exc_0b += g->exc_0b;
		t.other_exc += g->other_exc;
		if (g->worst_gap_ms > t.worst_gap_ms)
			t.worst_gap_ms = g->worst_gap_ms;
	}
	struct sim_stats st;
	sim_get_stats(fc->p.sim, &st);
	fprintf(stderr,
		"faults: %s: good clients ok=%ld 0x0A=%ld 0x0B=%ld other=%ld closed=%ld stuck=%ld "
		"wrong=%ld, worst gap %lld ms; target: requests=%ld answers=%ld accepted=%ld "
		"rejected=%ld dropped=%ld late=%ld resets=%ld halves=%ld unsolicited=%ld\n",
		fc->name, t.ok, t.exc_0a, t.exc_0b, t.other_exc, t.closed, t.stuck, t.mismatches,
		(long long)t.worst_gap_ms, st.requests, st.answers, st.accepted, st.rejected, st.dropped,
		st.late, st.resets, st.halves, st.unsolicited);
	ck_assert_msg(t.mismatches == 0, "%s: %ld answers went to the wrong client", fc->name, t.mismatches);
	ck_assert_msg(t.stuck == 0, "%s: %ld requests got nothing within %d ms", fc->name, t.stuck, IO_MS);
	ck_assert_int_eq(t.other_exc, 0);
	ck_assert_msg(tm_daemon_running(fc->p.d), "%s: the daemon died", fc->name);
	return t;
}

/* Waits until at least n lines after mark contain needle (the daemon's
 * output reaches us through a pipe and a thread: never count at once). */
static int log_lines(struct fcase *fc, size_t mark, const char *needle, int n)
{
	TM_WAIT_FOR(tm_daemon_log_count(fc->p.d, mark, needle) >= n, IO_MS);
	return tm_daemon_log_count(fc->p.d, mark, needle);
}

static bool probe_served(struct fcase *fc)
{
	int fd = tm_connect(fc->p.port);
	if (fd < 0)
		return false;
	bool ok;
	if (fc->proto == SIM_ECHO) {
		char line[64];
		ok = tm_write_all(fd, "probe\n", 6) == 0 &&
		     tm_line_recv(fd, line, sizeof(line), IO_MS) == 6 && strcmp(line, "probe\n") == 0;
	} else {
		uint16_t v;
		uint8_t exc = 0xFF;
		ok = tm_modbus_read(fd, 0x7777, 99, 3, 4242, 1, &v, &exc) == 0 && exc == 0 &&
		     v == sim_modbus_value(3, 4242, 99);
	}
	close(fd);
	return ok;
}

static bool at_baseline(struct fcase *fc)
{
	return proc_fds(fc->pid) == fc->base_fds && proc_threads(fc->pid) == fc->base_threads;
}

/* Every fault's client is gone: a new client is served, the descriptors
 * and threads come back to the baseline (counts, not numbers: the upstream
 * connection may have been replaced), and the daemon stops cleanly. */
static void fc_finish(struct fcase *fc)
{
	TM_WAIT_FOR(probe_served(fc), SERVED_MS);
	ck_assert_msg(probe_served(fc), "%s: a new client is not served after the fault", fc->name);
	int64_t t0 = tm_now_ms();
	TM_WAIT_FOR(at_baseline(fc), BASELINE_MS);
	int fds = proc_fds(fc->pid), threads = proc_threads(fc->pid);
	fprintf(stderr, "faults: %s: after: %d fds, %d threads (baseline %d, %d), settled in %lld ms\n",
		fc->name, fds, threads, fc->base_fds, fc->base_threads, (long long)(tm_now_ms() - t0));
	ck_assert_msg(fds == fc->base_fds,
		      "%s: %d descriptors open, %d at the baseline: a leak (or a sanitizer report, whose "
		      "symbolizer holds descriptors too: see the daemon's output)", fc->name, fds,
		      fc->base_fds);
	ck_assert_msg(threads == fc->base_threads, "%s: %d threads, %d at the baseline: a leak", fc->name,
		      threads, fc->base_threads);
	ck_assert_int_eq(tm_pair_stop(&fc->p), 0);
	free(fc);
}

/* Turns the target's faults on, waits until it has committed `events` of
 * the kind counted at offset, turns them off. */
static void fc_target_fault(struct fcase *fc, struct sim_opts faults, size_t offset, long events)
{
	sim_set_faults(fc->p.sim, &faults);
	bool done = tm_sim_wait(fc->p.sim, offset, events, FAULT_EVENTS_MS);
	sim_set_faults(fc->p.sim, &(struct sim_opts){ 0 });
	ck_assert_msg(done, "%s: the target committed %ld of %ld faults", fc->name,
		      tm_sim_stat(fc->p.sim, offset), events);
}

#define FC_TARGET_FAULT(fc, faults, field, events)                               \
	fc_target_fault((fc), (faults), offsetof(struct sim_stats, field), (events))

/* ---- target faults ------------------------------------------------------ */

static const char *const modbus_flags[] = { FAST_FLAGS, NULL };

/* Every 7th request is never answered: 0x0B after --timeout; matched by
 * transaction id, the one connection survives single timeouts. */
START_TEST(test_target_drops)
{
	struct fcase *fc = fc_begin("drops", ONE_CONN_MODBUS, modbus_flags, 1);
	FC_TARGET_FAULT(fc, ((struct sim_opts){ .drop_every = 7 }), dropped, 3);
	fc_recovered(fc, DROP_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_ge(t.exc_0b, 1);
	ck_assert_int_eq(t.closed, 0);
	ck_assert_int_eq(TM_SIM_STAT(fc->p.sim, accepted), 1);
	fc_finish(fc);
}
END_TEST

/* Every 5th answer comes 300 ms after --timeout: discarded by id, never
 * handed to the next client. */
START_TEST(test_target_late)
{
	struct fcase *fc = fc_begin("late", ONE_CONN_MODBUS, modbus_flags, 1);
	size_t mark = tm_daemon_log_mark(fc->p.d);
	FC_TARGET_FAULT(fc, ((struct sim_opts){ .late_every = 5, .late_ms = 1300 }), late, 3);
	fc_recovered(fc, LATE_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_ge(t.exc_0b, 1);
	ck_assert_int_eq(t.closed, 0);
	TM_WAIT_FOR(tm_daemon_log_count(fc->p.d, mark, "a late answer") +
			    tm_daemon_log_count(fc->p.d, mark, "late or unsolicited") > 0, IO_MS);
	ck_assert_int_gt(tm_daemon_log_count(fc->p.d, mark, "a late answer") +
			 tm_daemon_log_count(fc->p.d, mark, "late or unsolicited"), 0);
	ck_assert_int_eq(TM_SIM_STAT(fc->p.sim, accepted), 1);
	fc_finish(fc);
}
END_TEST

/* The target closes each connection after 5 answers. */
START_TEST(test_target_closes)
{
	struct fcase *fc = fc_begin("closes", ONE_CONN_MODBUS, modbus_flags, 1);
	FC_TARGET_FAULT(fc, ((struct sim_opts){ .close_after = 5 }), accepted, 6);
	fc_recovered(fc, CLOSE_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_eq(t.closed, 0);
	fc_finish(fc);
}
END_TEST

/* Every 6th request: the connection is reset (RST) instead of answered. */
START_TEST(test_target_resets)
{
	struct fcase *fc = fc_begin("resets", ONE_CONN_MODBUS, modbus_flags, 1);
	FC_TARGET_FAULT(fc, ((struct sim_opts){ .reset_every = 6 }), resets, 4);
	fc_recovered(fc, RESET_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_ge(t.exc_0b, 1);
	ck_assert_int_eq(t.closed, 0);
	ck_assert_int_ge(TM_SIM_STAT(fc->p.sim, accepted), 1 + 4);
	fc_finish(fc);
}
END_TEST

/* Every 6th answer: half of it, then the connection stalls for good. The
 * half must never be completed by another answer's bytes. */
START_TEST(test_target_half_answers)
{
	struct fcase *fc = fc_begin("half answers", ONE_CONN_MODBUS, modbus_flags, 1);
	FC_TARGET_FAULT(fc, ((struct sim_opts){ .half_every = 6 }), halves, 3);
	fc_recovered(fc, HALF_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_ge(t.exc_0b, 1);
	ck_assert_int_eq(t.closed, 0);
	/* a stalled connection is replaced, not used again */
	ck_assert_int_ge(TM_SIM_STAT(fc->p.sim, accepted), 1 + 3);
	fc_finish(fc);
}
END_TEST

/* Whole Modbus answers nobody asked for, every 20 ms between exchanges:
 * discarded (by id during an exchange, by the idle check otherwise); the
 * connection is kept and nobody gets an error. */
START_TEST(test_target_unsolicited_frames)
{
	struct fcase *fc = fc_begin("unsolicited frames", ONE_CONN_MODBUS, modbus_flags, 1);
	size_t mark = tm_daemon_log_mark(fc->p.d);
	FC_TARGET_FAULT(fc, ((struct sim_opts){ .unsolicited_every_ms = 20 }), unsolicited, 30);
	fc_recovered(fc, UNSOLICITED_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_eq(t.closed, 0);
	ck_assert_int_eq(t.exc_0b, 0);
	ck_assert_int_gt(log_lines(fc, mark, "discarding", 1), 0);
	ck_assert_int_eq(TM_SIM_STAT(fc->p.sim, accepted), 1);
	fc_finish(fc);
}
END_TEST

/* Bytes that form no frame, every 100 ms between exchanges: the
 * connection is replaced; a request caught by them gets 0x0B. */
START_TEST(test_target_unsolicited_garbage)
{
	struct fcase *fc = fc_begin("unsolicited garbage", ONE_CONN_MODBUS, modbus_flags, 1);
	FC_TARGET_FAULT(fc, ((struct sim_opts){ .unsolicited_every_ms = 100, .unsolicited_garbage = 1 }),
			unsolicited, 5);
	fc_recovered(fc, GARBAGE_TARGET_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_eq(t.closed, 0);
	ck_assert_int_ge(TM_SIM_STAT(fc->p.sim, accepted), 2);
	fc_finish(fc);
}
END_TEST

/* The target goes away (every connection closed, port refused) and comes
 * back on the same port. */
START_TEST(test_target_restarts)
{
	struct fcase *fc = fc_begin("target restart", ONE_CONN_MODBUS, modbus_flags, 1);
	size_t mark = tm_daemon_log_mark(fc->p.d);
	ck_assert_int_eq(sim_kill(fc->p.sim), 0);
	ck_assert(tm_daemon_wait_log(fc->p.d, mark, "cannot connect to the target", NULL, 0, IO_MS));
	long ok_down = good_ok(fc);
	ck_assert_int_eq(sim_revive(fc->p.sim), 0);
	fc_recovered(fc, RESTART_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_eq(t.closed, 0);
	ck_assert_int_gt(t.exc_0a + t.exc_0b, 0);
	ck_assert_int_gt(t.ok, ok_down);
	fc_finish(fc);
}
END_TEST

/* ---- client faults ------------------------------------------------------ */

/* Closes fd with a reset (RST) instead of a FIN. */
static void close_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Clients that send a write and leave at once (half with FIN, half with
 * RST) while the one connection is busy with another client's request
 * (the target takes 50 ms to answer): by their turn they have gone, so
 * their writes are never sent and cost the others nothing. The client that
 * held the connection gets its answer; the connection is kept. */
START_TEST(test_client_disconnects_mid_exchange)
{
	enum { N = 10, UNIT = 250, BASE = 60000 };
	struct fcase *fc = fc_begin("client leaves mid-exchange",
				    (struct sim_opts){ .proto = SIM_MODBUS, .max_conns = 1, .delay_ms = 50 },
				    modbus_flags, 1);
	for (int i = 0; i < N; i++) {
		int holder = tm_connect(fc->p.port), fd = tm_connect(fc->p.port);
		ck_assert_int_ge(holder, 0);
		ck_assert_int_ge(fd, 0);
		uint8_t hold[12], req[12], resp[260];
		tm_modbus_req_read(hold, (uint16_t)(1000 + i), 1, 3, 0, 1);
		long before = TM_SIM_STAT(fc->p.sim, requests);
		size_t mark = tm_daemon_log_mark(fc->p.d);
		ck_assert_int_eq(tm_write_all(holder, hold, sizeof(hold)), 0);
		ck_assert(TM_SIM_WAIT(fc->p.sim, requests, before + 1, IO_MS)); /* the connection is busy */
		uint16_t addr = (uint16_t)(BASE + i);
		int old = sim_modbus_holding(fc->p.sim, addr, UNIT);
		tm_modbus_req_write1(req, (uint16_t)i, UNIT, addr, (uint16_t)(old + 1));
		ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
		if (i % 2)
			close_reset(fd);
		else
			close(fd);
		ck_assert(tm_daemon_wait_log(fc->p.d, mark, "left before its request was sent", NULL, 0, IO_MS));
		ck_assert_msg(sim_modbus_holding(fc->p.sim, addr, UNIT) == old,
			      "the write of a client that left (%s) reached the target", i % 2 ? "RST" : "FIN");
		ck_assert_int_eq(tm_modbus_recv(holder, resp, sizeof resp, IO_MS), 11);
		close(holder);
	}
	fc_recovered(fc, DISCONNECT_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_eq(t.closed, 0);
	ck_assert_int_eq(t.exc_0b, 0);
	ck_assert_int_eq(TM_SIM_STAT(fc->p.sim, accepted), 1);
	fc_finish(fc);
}
END_TEST

struct slowloris {
	int port;
	int64_t closed_after_ms; /* -1: never closed */
	int bytes_sent;
};

/* Sends a valid request one byte per second until the daemon closes. */
static void *slowloris_main(void *arg)
{
	struct slowloris *sl = arg;
	uint8_t req[12];
	sl->closed_after_ms = -1;
	tm_modbus_req_read(req, 1, 1, 3, 0, 1);
	int fd = tm_connect(sl->port);
	if (fd < 0)
		return NULL;
	int64_t t0 = tm_now_ms();
	for (size_t i = 0; i + 1 < sizeof(req); i++) {
		if (tm_write_all(fd, req + i, 1) < 0)
			break;
		sl->bytes_sent++;
		/* the second between bytes doubles as the wait for the close */
		int rc = tm_wait_closed(fd, 1000);
		if (rc != -ETIMEDOUT) {
			if (rc == 0)
				sl->closed_after_ms = tm_now_ms() - t0;
			break;
		}
	}
	close(fd);
	return NULL;
}

/* Clients that send a byte per second never finish a request: the daemon
 * closes each after --timeout (2 s) within the frame, and the good clients
 * are served all along. */
START_TEST(test_client_slowloris)
{
	enum { N = 4, TIMEOUT_MS = 2000 };
	static const char *const flags[] = { "--timeout", "2", "--reconnect-backoff", "50ms", NULL };
	struct fcase *fc = fc_begin("slowloris", ONE_CONN_MODBUS, flags, 1);
	size_t mark = tm_daemon_log_mark(fc->p.d);
	struct slowloris sl[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		sl[i] = (struct slowloris){ .port = fc->p.port };
		ck_assert_int_eq(pthread_create(&th[i], NULL, slowloris_main, &sl[i]), 0);
	}
	/* Served meanwhile: answers keep coming while the slow ones hang on. */
	long ok0 = good_ok(fc);
	TM_WAIT_FOR(good_ok(fc) > ok0 + 100, TIMEOUT_MS);
	ck_assert_int_gt(good_ok(fc), ok0 + 100);
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		fprintf(stderr, "faults: slowloris %d: closed by the daemon after %lld ms, %d bytes\n", i,
			(long long)sl[i].closed_after_ms, sl[i].bytes_sent);
		ck_assert_int_ge(sl[i].closed_after_ms, TIMEOUT_MS - 100);
		ck_assert_int_le(sl[i].closed_after_ms, TIMEOUT_MS + 1500);
	}
	ck_assert_int_ge(log_lines(fc, mark, "request not complete within", N), N);
	fc_recovered(fc, SLOWLORIS_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_eq(t.closed, 0);
	ck_assert_int_eq(TM_SIM_STAT(fc->p.sim, protocol_errors), 0);
	fc_finish(fc);
}
END_TEST

/* Garbage from clients: random bytes, a bad MBAP length, a valid request
 * with garbage behind it. Each such client is closed (after its valid
 * request is answered); nothing reaches the target. */
START_TEST(test_client_garbage)
{
	enum { N = 30 };
	struct fcase *fc = fc_begin("client garbage", ONE_CONN_MODBUS, modbus_flags, 1);
	size_t mark = tm_daemon_log_mark(fc->p.d);
	unsigned seed = 7;
	long requests0 = TM_SIM_STAT(fc->p.sim, requests);
	for (int i = 0; i < N; i++) {
		int fd = tm_connect(fc->p.port);
		ck_assert_int_ge(fd, 0);
		uint8_t junk[64];
		size_t n = 0;
		if (i % 3 == 0) {
			for (n = 0; n < sizeof(junk); n++)
				junk[n] = (uint8_t)rand_r(&seed);
			junk[2] |= 0x01; /* a protocol id other than 0 */
		} else if (i % 3 == 1) {
			static const uint8_t bad_len[] = { 0, 1, 0, 0, 0, 1, 1, 3 };
			memcpy(junk, bad_len, sizeof(bad_len));
			n = sizeof(bad_len);
		} else {
			uint16_t v;
			uint8_t exc = 0xFF;
			ck_assert_int_eq(tm_modbus_read(fd, 5, 200, 3, 10, 1, &v, &exc), 0);
			ck_assert_int_eq(exc, 0);
			ck_assert_uint_eq(v, sim_modbus_value(3, 10, 200));
			memcpy(junk, "\x00\x02\xff\xff garbage", 12);
			n = 12;
		}
		ck_assert_int_eq(tm_write_all(fd, junk, n), 0);
		ck_assert_int_eq(tm_wait_closed(fd, IO_MS), 0);
		close(fd);
	}
	ck_assert_int_ge(log_lines(fc, mark, "malformed request", N), N);
	fc_recovered(fc, GARBAGE_CLIENT_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_eq(t.closed, 0);
	ck_assert_int_eq(t.exc_0b, 0);
	struct sim_stats st;
	sim_get_stats(fc->p.sim, &st);
	ck_assert_int_eq(st.protocol_errors, 0);
	ck_assert_int_eq(st.accepted, 1);
	ck_assert_int_ge(st.requests - requests0, N / 3);
	fc_finish(fc);
}
END_TEST

/* Frames larger than --max-frame 64: a 100-register write (213 bytes), and
 * a header that announces 260 bytes. Closed, never forwarded. */
START_TEST(test_client_oversize)
{
	enum { N = 20, UNIT = 201, ADDR = 100 };
	static const char *const flags[] = { FAST_FLAGS, "--max-frame", "64", NULL };
	struct fcase *fc = fc_begin("oversize", ONE_CONN_MODBUS, flags, 1);
	size_t mark = tm_daemon_log_mark(fc->p.d);
	for (int i = 0; i < N; i++) {
		int fd = tm_connect(fc->p.port);
		ck_assert_int_ge(fd, 0);
		if (i % 2 == 0) {
			uint16_t vals[100];
			for (int k = 0; k < 100; k++)
				vals[k] = 0xEEEE;
			uint8_t exc;
			/* the helper sends it whole, then finds the connection closed */
			int rc = tm_modbus_write_multi(fd, (uint16_t)i, UNIT, ADDR, 100, vals, &exc);
			ck_assert_msg(rc == -EPIPE || rc == -ECONNRESET, "oversize write: %s", strerror(-rc));
		} else {
			static const uint8_t head[] = { 0, 9, 0, 0, 0, 254, UNIT, 16 };
			ck_assert_int_eq(tm_write_all(fd, head, sizeof(head)), 0);
			ck_assert_int_eq(tm_wait_closed(fd, IO_MS), 0);
		}
		close(fd);
	}
	ck_assert_int_ge(log_lines(fc, mark, "oversize request", N), N);
	fc_recovered(fc, OVERSIZE_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_eq(t.closed, 0);
	for (int k = 0; k < 100; k++)
		ck_assert_uint_eq(sim_modbus_holding(fc->p.sim, (uint16_t)(ADDR + k), UNIT),
				  sim_modbus_value(3, (uint16_t)(ADDR + k), UNIT));
	ck_assert_int_eq(TM_SIM_STAT(fc->p.sim, accepted), 1);
	fc_finish(fc);
}
END_TEST

struct mass {
	int port;
	int first, count;
	int *fds;
	int failed;
};

/* Connects count clients and sends each its request at once. */
static void *mass_connect(void *arg)
{
	struct mass *m = arg;
	for (int i = m->first; i < m->first + m->count; i++) {
		m->fds[i] = tm_connect(m->port);
		uint8_t req[12];
		tm_modbus_req_read(req, (uint16_t)i, (uint8_t)(100 + i % 100), 4, (uint16_t)i, 1);
		if (m->fds[i] < 0 || tm_write_all(m->fds[i], req, sizeof(req)) < 0)
			m->failed++;
	}
	return NULL;
}

/* 2000 clients connect at once, each with one request, while the good
 * clients go on: every one gets its own answer, and every thread and
 * descriptor is given back once they leave. */
START_TEST(test_client_flood)
{
	enum { WANT = 2000, THREADS = 4 };
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	int n = WANT;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)WANT + 200) {
		n = rl.rlim_cur > 400 ? (int)rl.rlim_cur - 200 : 200;
		fprintf(stderr, "faults: flood: only %d descriptors allowed: %d clients instead of %d\n",
			(int)rl.rlim_cur, n, WANT);
	}
	static const char *const flags[] = { "--timeout", "10", "--reconnect-backoff", "50ms",
					      "--max-clients", "5000", "--queue-size", "5000", NULL };
	struct fcase *fc = fc_begin_quiet("flood", ONE_CONN_MODBUS, flags, 1);
	int *fds = calloc((size_t)n, sizeof(int));
	ck_assert_ptr_nonnull(fds);
	struct mass m[THREADS];
	pthread_t th[THREADS];
	int64_t t0 = tm_now_ms();
	for (int i = 0; i < THREADS; i++) {
		m[i] = (struct mass){ .port = fc->p.port, .first = i * n / THREADS,
				      .count = (i + 1) * n / THREADS - i * n / THREADS, .fds = fds };
		ck_assert_int_eq(pthread_create(&th[i], NULL, mass_connect, &m[i]), 0);
	}
	int failed = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		failed += m[i].failed;
	}
	ck_assert_int_eq(failed, 0);
	int64_t t_connected = tm_now_ms();
	int ok = 0, exc = 0;
	for (int i = 0; i < n; i++) {
		uint8_t adu[260];
		ssize_t r = tm_modbus_recv(fds[i], adu, sizeof(adu), 20000);
		ck_assert_msg(r > 0, "flood client %d: %s", i, strerror((int)-r));
		ck_assert_uint_eq(adu[0] << 8 | adu[1], (uint16_t)i);
		ck_assert_uint_eq(adu[6], 100 + i % 100);
		if (r == 9 && adu[7] == 0x84) {
			exc++;
			continue;
		}
		ck_assert_int_eq(r, 11);
		ck_assert_uint_eq(adu[9] << 8 | adu[10],
				  sim_modbus_value(4, (uint16_t)i, (uint8_t)(100 + i % 100)));
		ok++;
	}
	int64_t t_answered = tm_now_ms();
	/* All answered, none gone: one thread each (plus the good clients'). */
	int peak = proc_threads(fc->pid), peak_fds = proc_fds(fc->pid);
	ck_assert_int_ge(peak, fc->base_threads + n);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	fprintf(stderr, "faults: flood: %d clients connected and sent in %lld ms, answered %d ok + %d "
		"exceptions %lld ms later; daemon then %d threads, %d fds\n", n,
		(long long)(t_connected - t0), ok, exc, (long long)(t_answered - t_connected), peak,
		peak_fds);
	ck_assert_int_eq(ok + exc, n);
	ck_assert_int_ge(ok, n * 9 / 10);
	fc_recovered(fc, MASS_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_eq(t.closed, 0);
	fc_finish(fc);
}
END_TEST

/* 2000 connect-and-close in a tight loop: plain closes, resets, and closes
 * after half a request. */
START_TEST(test_client_churn)
{
	enum { N = 2000 };
	struct fcase *fc = fc_begin_quiet("churn", ONE_CONN_MODBUS, modbus_flags, 1);
	uint8_t req[12];
	tm_modbus_req_read(req, 1, 1, 3, 0, 1);
	int64_t t0 = tm_now_ms();
	long ok0 = good_ok(fc);
	for (int i = 0; i < N; i++) {
		int fd = tm_connect(fc->p.port);
		ck_assert_msg(fd >= 0, "churn %d: %s", i, strerror(-fd));
		if (i % 3 == 0) {
			close(fd);
		} else if (i % 3 == 1) {
			close_reset(fd);
		} else {
			ck_assert_int_eq(tm_write_all(fd, req, 5), 0);
			close(fd);
		}
	}
	fprintf(stderr, "faults: churn: %d connect+close in %lld ms; good answers meanwhile: %ld\n", N,
		(long long)(tm_now_ms() - t0), good_ok(fc) - ok0);
	ck_assert_int_gt(good_ok(fc), ok0);
	fc_recovered(fc, CHURN_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_eq(t.closed, 0);
	ck_assert_int_eq(TM_SIM_STAT(fc->p.sim, accepted), 1);
	fc_finish(fc);
}
END_TEST

/* ---- echo: no ids, so a timeout must cost the upstream connection -------- */

static const char *const echo_flags[] = { FAST_FLAGS, NULL };

/* Every 4th line is echoed 300 ms after --timeout. The late line must
 * never reach the next client: the daemon closes that connection. */
START_TEST(test_echo_late)
{
	struct fcase *fc = fc_begin("echo late", (struct sim_opts){ .proto = SIM_ECHO, .max_conns = 1 },
				    echo_flags, 1);
	size_t mark = tm_daemon_log_mark(fc->p.d);
	FC_TARGET_FAULT(fc, ((struct sim_opts){ .late_every = 4, .late_ms = 1300 }), late, 3);
	fc_recovered(fc, ECHO_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_ge(t.closed, 1);
	ck_assert_int_ge(log_lines(fc, mark, "reconnecting", 3), 3);
	ck_assert_int_ge(TM_SIM_STAT(fc->p.sim, accepted), 1 + 3);
	fc_finish(fc);
}
END_TEST

/* Every 4th line: half of it, then silence. The half must never be
 * completed by the next client's line. */
START_TEST(test_echo_half)
{
	struct fcase *fc = fc_begin("echo half", (struct sim_opts){ .proto = SIM_ECHO, .max_conns = 1 },
				    echo_flags, 1);
	FC_TARGET_FAULT(fc, ((struct sim_opts){ .half_every = 4 }), halves, 3);
	fc_recovered(fc, ECHO_RECOVERY_MS);
	struct totals t = fc_stop_clients(fc);
	ck_assert_int_ge(t.closed, 1);
	ck_assert_int_ge(TM_SIM_STAT(fc->p.sim, accepted), 1 + 3);
	fc_finish(fc);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_faults");
	TM_EACH(s, CASE_TIMEOUT_S, test_target_drops, test_target_late, test_target_closes,
		test_target_resets, test_target_half_answers, test_target_unsolicited_frames,
		test_target_unsolicited_garbage, test_target_restarts,
		test_client_disconnects_mid_exchange, test_client_slowloris, test_client_garbage,
		test_client_oversize, test_client_flood, test_client_churn, test_echo_late,
		test_echo_half);
	return s;
}
