/* End to end, the length-prefixed framings (iso8583: 2-byte big-endian
 * length; mpu: 4 ASCII digits): many clients at once through a target that
 * takes one connection, each pipelining messages cut into small writes,
 * with zero-length and maximum-length messages; the simulator answers the
 * payload reversed, so every answer is checked against its own request. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testing.h"

#define NCLIENTS 20
#define ROUNDS 10
#define BATCH 4               /* messages pipelined per round */
#define MAX_PIECES 64         /* a round is written in at most this many pieces */
#define ROUND_MS 30000        /* deadline of one round */

/* What differs between the two framings. */
struct framing {
	enum sim_proto proto;
	size_t hdr;           /* header bytes */
	size_t max_len;       /* largest payload the header can say */
	const char *max_frame; /* --max-frame that fits exactly the largest frame */
};

static const struct framing iso8583 = { SIM_ISO8583, 2, 65535, "65537" };
static const struct framing mpu = { SIM_MPU, 4, 9999, "10003" };

static size_t put_frame(const struct framing *f, uint8_t *out, const uint8_t *payload, size_t len)
{
	return f->proto == SIM_ISO8583 ? tm_iso8583_frame(out, payload, len) : tm_mpu_frame(out, payload, len);
}

/* The payload length of message k of round r of client c: one empty
 * message per client, one of the largest, the rest 1..500 bytes. */
static size_t msg_len(const struct framing *f, int c, int r, int k)
{
	if (r == 0 && k == 0)
		return 0;
	if (r == 1 && k == c % BATCH)
		return f->max_len;
	return (size_t)((c * 37 + r * 11 + k * 101) % 500 + 1);
}

/* Bytes that name their client, round and message, then noise from them. */
static void msg_payload(uint8_t *p, size_t len, int c, int r, int k)
{
	char tag[32];
	int t = snprintf(tag, sizeof tag, "c%02d r%d k%d|", c, r, k);
	unsigned x = (unsigned)(c * 7919 + r * 104729 + k * 1299709 + 1);
	for (size_t i = 0; i < len; i++) {
		if (i < (size_t)t) {
			p[i] = (uint8_t)tag[i];
			continue;
		}
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

/*
 * Writes out[0..n) in pieces of step bytes, pausing about a millisecond
 * between them so the daemon sees the frames split across reads, and reads
 * whatever comes back meanwhile (so neither side can block the other),
 * until all is written and want bytes are in. Returns the bytes read (fewer
 * when the daemon closed) or -errno.
 */
static ssize_t pipeline(int fd, const uint8_t *out, size_t n, size_t step, uint8_t *in, size_t want,
			int timeout_ms)
{
	int64_t deadline = tm_now_ms() + timeout_ms;
	size_t off = 0, got = 0;
	while (off < n || got < want) {
		int64_t left = deadline - tm_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		short events = got < want ? POLLIN : 0;
		int wait = (int)left;
		if (off < n) {
			size_t k = n - off < step ? n - off : step;
			ssize_t w = send(fd, out + off, k, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w > 0) {
				off += (size_t)w;
				wait = off < n ? 1 : 0; /* the pause between pieces */
			} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				events |= POLLOUT;
			} else if (w < 0 && errno != EINTR) {
				return -errno;
			}
		}
		struct pollfd pfd = { .fd = fd, .events = events };
		if (poll(&pfd, 1, wait) < 0 && errno != EINTR)
			return -errno;
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)) || got >= want)
			continue;
		ssize_t r = recv(fd, in + got, want - got, MSG_DONTWAIT);
		if (r == 0)
			return (ssize_t)got;
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (r > 0)
			got += (size_t)r;
	}
	return (ssize_t)got;
}

/* A client's buffers, made in its first round. */
struct bufs {
	uint8_t *out, *in, *payload, *rev;
	uint8_t mem[];
};

/* One round of one client: BATCH pipelined messages, every answer checked
 * in order. */
static enum tm_next lp_round(struct tm_client *c, int r)
{
	const struct framing *f = c->arg;
	size_t cap = BATCH * (f->hdr + f->max_len);
	struct bufs *b = c->own;
	if (!b) {
		b = c->own = malloc(sizeof(*b) + 2 * cap + 2 * f->max_len);
		if (!b) {
			snprintf(c->why, sizeof c->why, "setup failed (fd %d)", c->fd);
			c->tally[TM_ERROR]++;
			return TM_END;
		}
		b->out = b->mem;
		b->in = b->out + cap;
		b->payload = b->in + cap;
		b->rev = b->payload + f->max_len;
	}
	size_t n = 0;
	for (int k = 0; k < BATCH; k++) {
		size_t len = msg_len(f, c->index, r, k);
		msg_payload(b->payload, len, c->index, r, k);
		n += put_frame(f, b->out + n, b->payload, len);
	}
	/* pieces of 1..19 bytes, fewer and larger for big rounds */
	size_t step = 1 + (size_t)(c->index % 7) * 3;
	if (n / MAX_PIECES > step)
		step = n / MAX_PIECES;
	ssize_t got = pipeline(c->fd, b->out, n, step, b->in, n, ROUND_MS);
	if (got != (ssize_t)n) {
		snprintf(c->why, sizeof c->why, "round %d: %zd of %zu bytes (%s)", r, got, n,
			 got < 0 ? strerror((int)-got) : "closed");
		c->tally[TM_ERROR]++;
		return TM_END;
	}
	/* answers in order, each the reversed payload in the same framing */
	size_t pos = 0;
	for (int k = 0; k < BATCH; k++) {
		size_t len = msg_len(f, c->index, r, k);
		msg_payload(b->payload, len, c->index, r, k);
		sim_reverse(b->payload, b->rev, len);
		size_t flen = put_frame(f, b->out, b->rev, len);
		if (memcmp(b->in + pos, b->out, flen) != 0) {
			snprintf(c->why, sizeof c->why, "round %d message %d: wrong answer", r, k);
			c->tally[TM_MISMATCH]++;
		} else {
			c->tally[TM_OK]++;
		}
		pos += flen;
	}
	return TM_GO_ON;
}

static struct tm_swarm *clients_start(const struct framing *f, int port)
{
	struct tm_swarm *w = tm_swarm_start(port, NCLIENTS, ROUNDS, ROUNDS, lp_round, (void *)f);
	ck_assert_ptr_nonnull(w);
	return w;
}

/* Joins them and asserts every answer was right. Returns the total. */
static long clients_check(struct tm_swarm *w)
{
	long t[TM_OUTCOMES];
	tm_swarm_join(w, t);
	tm_swarm_free(w);
	long ok = t[TM_OK], wrong = t[TM_MISMATCH], failed = t[TM_ERROR];
	fprintf(stderr, "%d clients: ok=%ld wrong=%ld failed=%ld\n", NCLIENTS, ok, wrong, failed);
	ck_assert_int_eq(wrong, 0);
	ck_assert_int_eq(failed, 0);
	ck_assert_int_eq(ok, NCLIENTS * ROUNDS * BATCH);
	return ok;
}

/* The daemon with --max-frame exactly the largest frame, in front of a
 * simulator that takes one connection. */
static void start_pair(const struct framing *f, struct tm_pair *p)
{
	struct sim_opts o = { .proto = f->proto, .max_conns = 1 };
	const char *extra[] = { "--max-frame", f->max_frame, "--timeout", "20", "--queue-size", "64", NULL };
	ck_assert_int_eq(tm_pair_start(p, &o, extra), 0);
}

static void many_clients(const struct framing *f)
{
	struct tm_pair p;
	start_pair(f, &p);
	int64_t t0 = tm_now_ms();
	long total = clients_check(clients_start(f, p.port));
	fprintf(stderr, "%s: %ld messages in %lld ms\n", sim_proto_name(f->proto), total,
		(long long)(tm_now_ms() - t0));
	struct sim_stats st;
	sim_get_stats(p.sim, &st);
	ck_assert_int_eq(st.accepted, 1);  /* one upstream connection throughout */
	ck_assert_int_eq(st.rejected, 0);
	ck_assert_int_eq(st.answers, total);
	ck_assert_int_eq(st.inflight_max, 1);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}

START_TEST(test_iso8583_many_clients)
{
	many_clients(&iso8583);
}
END_TEST

START_TEST(test_mpu_many_clients)
{
	many_clients(&mpu);
}
END_TEST

/* A bad mpu header while 20 clients are busy: that client gets the answer
 * to the whole frame it sent before, then is closed, with a log line; the
 * others carry on untouched and the target never sees the garbage. */
START_TEST(test_mpu_bad_header)
{
	struct tm_pair p;
	start_pair(&mpu, &p);
	struct tm_swarm *w = clients_start(&mpu, p.port);
	ck_assert(TM_SIM_WAIT(p.sim, answers, NCLIENTS, 10000)); /* they are under way */

	int bad = tm_pair_client(&p);
	const char good[] = "0003abc", garbage[] = "00x5hello";
	ck_assert_int_eq(tm_write_split(bad, good, sizeof good - 1, 2), 0);
	/* the daemon may close before all of it is written */
	(void)tm_write_split(bad, garbage, sizeof garbage - 1, 2);
	uint8_t answer[16];
	ck_assert_int_eq(tm_mpu_recv(bad, answer, sizeof answer, 10000), 3);
	ck_assert(memcmp(answer, "cba", 3) == 0);
	ck_assert_int_eq(tm_wait_closed(bad, 10000), 0);
	close(bad);
	char line[512];
	ck_assert(tm_daemon_wait_log(p.d, 0, "malformed request", line, sizeof line, 5000));
	fprintf(stderr, "logged: %s\n", line);

	long total = clients_check(w);
	struct sim_stats st;
	sim_get_stats(p.sim, &st);
	ck_assert_int_eq(st.protocol_errors, 0);
	ck_assert_int_eq(st.accepted, 1);
	ck_assert_int_eq(st.answers, total + 1);
	ck_assert(tm_daemon_running(p.d));
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* --max-frame is a bound on the whole frame, header included: with 1000,
 * a 998-byte payload passes and a 999-byte one closes the client (logged),
 * for both framings, and the next client is served. */
static void max_frame_bound(const struct framing *f)
{
	struct sim_opts o = { .proto = f->proto, .max_conns = 1 };
	const char *extra[] = { "--max-frame", "1000", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	size_t fit = 1000 - f->hdr;
	static uint8_t payload[1024], frame[1100], back[1100], rev[1024];
	for (int over = 0; over <= 1; over++) {
		size_t len = fit + (size_t)over;
		msg_payload(payload, len, 99, over, 0);
		size_t n = put_frame(f, frame, payload, len);
		int fd = tm_pair_client(&p);
		int rc = tm_write_split(fd, frame, n, 300);
		if (over) {
			/* refused at the header: the rest may meet a closed socket */
			(void)rc;
			ck_assert_int_eq(tm_wait_closed(fd, 5000), 0);
		} else {
			ck_assert_int_eq(rc, 0);
			ssize_t r = f->proto == SIM_ISO8583 ? tm_iso8583_recv(fd, back, sizeof back, 5000)
							    : tm_mpu_recv(fd, back, sizeof back, 5000);
			ck_assert_int_eq(r, (ssize_t)len);
			sim_reverse(payload, rev, len);
			ck_assert(memcmp(back, rev, len) == 0);
		}
		close(fd);
	}
	ck_assert(tm_daemon_wait_log(p.d, 0, "oversize request", NULL, 0, 5000));
	ck_assert_int_eq(TM_SIM_STAT(p.sim, requests), 1);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}

START_TEST(test_max_frame_bound)
{
	max_frame_bound(&iso8583);
	max_frame_bound(&mpu);
}
END_TEST

/* The target closes mid-exchange: with no ids to match answers, the client
 * is closed (never given a stale answer), and the next one is served over
 * a new connection. */
START_TEST(test_iso8583_target_hangs_up)
{
	struct sim_opts o = { .proto = SIM_ISO8583, .max_conns = 1, .hangup_every = 3 };
	const char *extra[] = { "--reconnect-backoff", "50ms", "--timeout", "5", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	int served = 0, closed = 0;
	for (int i = 0; i < 9; i++) {
		uint8_t payload[64], frame[80], back[80], rev[64];
		size_t len = 10 + (size_t)i;
		msg_payload(payload, len, 50, i, 0);
		size_t n = tm_iso8583_frame(frame, payload, len);
		int fd = tm_pair_client(&p);
		ck_assert_int_eq(tm_write_all(fd, frame, n), 0);
		ssize_t r = tm_iso8583_recv(fd, back, sizeof back, 10000);
		if (r == -EPIPE || r == -ECONNRESET) {
			closed++;
		} else {
			ck_assert_int_eq(r, (ssize_t)len);
			sim_reverse(payload, rev, len);
			ck_assert(memcmp(back, rev, len) == 0);
			served++;
		}
		close(fd);
	}
	fprintf(stderr, "hangup every 3rd: served=%d closed=%d accepted=%ld\n", served, closed,
		TM_SIM_STAT(p.sim, accepted));
	ck_assert_int_eq(closed, 3);
	ck_assert_int_eq(served, 6);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_lenprefix");
	TM_CASE(s, "sharing", 120, test_iso8583_many_clients, test_mpu_many_clients);
	TM_CASE(s, "failures", 120, test_mpu_bad_header, test_max_frame_bound,
		test_iso8583_target_hangs_up);
	return s;
}
