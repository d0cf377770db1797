/* The connection to the target: opening it (a TCP connection or a serial
 * port), checking an idle one, when it is due for a check, the gap between
 * exchanges, and sending a request. */
#include "config.h"
#include "upstream.h"
#include "log.h"
#include "net.h"
#include "serial.h"
#include "timeutil.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

/* Bounds the frames drained from one idle connection in one check. */
#define MAX_STRAY_FRAMES 64
/* Bounds the reads that empty a serial port's input before a request. */
#define MAX_STALE_READS 64
/* MODBUS over Serial Line V1.02, 2.4.1: after a broadcast the master waits
 * a "turnaround delay" (typically 100 to 200 ms) so that every device has
 * acted on it before the next request. */
#define BROADCAST_TURNAROUND_MS 100

static int is_serial(const struct upstream *u)
{
	return u->cfg->serial_path[0] != '\0';
}

void upstream_init(struct upstream *u, const struct config *cfg, const struct dialect *d)
{
	u->cfg = cfg;
	u->dialect = d;
	u->timed_recv = cfg->serial_path[0] == '\0'; /* a tty has no receive timeout */
}

int upstream_connect(const struct upstream *u, int64_t deadline)
{
	if (is_serial(u)) {
		struct serial_line l;
		serial_line_of(u->cfg, &l);
		int fd = serial_open(u->cfg->serial_path, &l);
		/* a port that is away may come back; a wrong setting will not */
		if (fd < 0 && serial_gone(fd))
			log_info("serial port %s: %s", u->cfg->serial_path, serial_explain(fd));
		else if (fd < 0)
			log_warn("serial port %s: %s", u->cfg->serial_path, serial_explain(fd));
		return fd;
	}
	int fd = net_connect(u->cfg->target_host, u->cfg->target_port, deadline);
	if (fd >= 0)
		upstream_tune(u, fd);
	return fd;
}

void upstream_tune(const struct upstream *u, int fd)
{
	if (u->timed_recv)
		net_set_recv_timeout(fd, UPSTREAM_WATCH_MS);
}

/* When the connection last carried an exchange (or opened). Health
 * checks do not count: they send nothing. */
static int64_t idle_since(const struct pool_slot *s)
{
	return s->last_answer_at > s->opened_at ? s->last_answer_at : s->opened_at;
}

int64_t upstream_idle_due(const void *arg, const struct pool_slot *s)
{
	const struct config *cfg = ((const struct upstream *)arg)->cfg;
	int64_t due = INT64_MAX;
	if (cfg->health_ms > 0)
		due = s->last_used + cfg->health_ms;
	if (cfg->upstream_max_idle_ms > 0 && idle_since(s) + cfg->upstream_max_idle_ms < due)
		due = idle_since(s) + cfg->upstream_max_idle_ms;
	if (cfg->upstream_max_age_ms > 0 && s->opened_at + cfg->upstream_max_age_ms < due)
		due = s->opened_at + cfg->upstream_max_age_ms;
	return due;
}

/* Which time rule s is past: 0 none, 1 --upstream-max-idle, 2 -max-age. */
static int past_rule(const struct config *cfg, const struct pool_slot *s, int64_t now)
{
	if (cfg->upstream_max_idle_ms > 0 && now - idle_since(s) >= cfg->upstream_max_idle_ms)
		return 1;
	return cfg->upstream_max_age_ms > 0 && now - s->opened_at >= cfg->upstream_max_age_ms ? 2 : 0;
}

/* --upstream-max-idle and -age: POOL_RETIRE (logged) when s is past either. */
static enum pool_health check_age(const struct config *cfg, const struct pool_slot *s, int64_t now)
{
	int rule = past_rule(cfg, s, now);
	if (rule == 1)
		log_info("upstream #%d: idle for %lld ms (--upstream-max-idle), reopening", s->id,
			 (long long)(now - idle_since(s)));
	else if (rule == 2)
		log_info("upstream #%d: open for %lld ms (--upstream-max-age), reopening", s->id,
			 (long long)(now - s->opened_at));
	return rule ? POOL_RETIRE : POOL_HEALTHY;
}

/* Reads what an idle connection holds. Whole frames are dropped when the
 * dialect matches answers by id; anything else breaks the connection. */
static enum pool_health drain_idle(const struct upstream *u, struct pool_slot *s, int rdhup)
{
	struct frame_ctx ctx = { .max_frame = u->cfg->max_frame };
	for (int i = 0; i < MAX_STRAY_FRAMES; i++) {
		ssize_t n = buf_read_frame(&s->rbuf, s->fd, u->dialect->response, &ctx, 0, 0);
		if (n > 0) {
			log_info("upstream #%d: a %zd-byte frame nobody asked for (late or unsolicited)%s",
				 s->id, n,
				 u->dialect->ids ? ", discarded" : "; the stream is out of step, reopening");
			log_hex("discarded", buf_head(&s->rbuf), (size_t)n);
			buf_consume(&s->rbuf, (size_t)n);
			if (!u->dialect->ids)
				return POOL_BROKEN;
			continue;
		}
		if (n == -ETIMEDOUT && buf_len(&s->rbuf) == 0 && !rdhup)
			return POOL_HEALTHY;
		if (n == -ETIMEDOUT && !rdhup)
			log_info("upstream #%d: idle connection holds part of a frame; reopening", s->id);
		else if (n == 0 || n == -ETIMEDOUT || n == -ECONNRESET)
			log_info("upstream #%d: closed by the target while idle", s->id);
		else
			log_info("upstream #%d: idle connection holds bytes that form no frame (%s)", s->id,
				 strerror((int)-n));
		return POOL_BROKEN;
	}
	return POOL_BROKEN;
}

int upstream_past_age(const struct upstream *u, const struct pool_slot *s)
{
	return past_rule(u->cfg, s, time_now_ms()) != 0;
}

enum pool_health upstream_check_age(const struct upstream *u, struct pool_slot *s)
{
	return check_age(u->cfg, s, time_now_ms());
}

/* Empties a serial port's input: on a bus with one master, bytes that
 * come between exchanges belong to no request (noise, another master, a
 * late answer). Returns 0, or -errno when the port failed. */
static int drop_stale(struct pool_slot *s)
{
	uint8_t junk[256];
	size_t total = buf_len(&s->rbuf);
	buf_reset(&s->rbuf);
	for (int i = 0; i < MAX_STALE_READS; i++) {
		ssize_t n = net_read(s->fd, junk, sizeof junk, time_now_ms());
		if (n == -ETIMEDOUT)
			break;
		if (n <= 0)
			return n == 0 ? -EIO : (int)n;
		log_hex("discarded", junk, (size_t)n);
		total += (size_t)n;
	}
	if (total > 0)
		log_info("upstream #%d: %zu bytes on the line that belong to no request, discarded", s->id,
			 total);
	return 0;
}

enum pool_health upstream_check_idle(const struct upstream *u, struct pool_slot *s)
{
	if (check_age(u->cfg, s, time_now_ms()) != POOL_HEALTHY)
		return POOL_RETIRE;
	if (is_serial(u)) {
		int rc = drop_stale(s);
		if (rc < 0)
			log_info("upstream #%d: serial port %s: %s", s->id, u->cfg->serial_path,
				 serial_explain(rc));
		return rc < 0 ? POOL_BROKEN : POOL_HEALTHY;
	}
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN | POLLRDHUP };
	if (poll(&pfd, 1, 0) == 0 && buf_len(&s->rbuf) == 0)
		return POOL_HEALTHY;
	if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) {
		log_info("upstream #%d: connection closed by the target while idle", s->id);
		return POOL_BROKEN;
	}
	return drain_idle(u, s, (pfd.revents & POLLRDHUP) != 0);
}

/* Sleeps until the monotonic clock reaches at_us. */
static void sleep_until_us(int64_t at_us)
{
	struct timespec ts = { .tv_sec = at_us / 1000000, .tv_nsec = (long)(at_us % 1000000) * 1000 };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		continue;
}

/* A serial line's silence, timed to the microsecond: last_answer_at is a
 * whole millisecond at or before the answer's end, so one more is added. */
static int64_t serial_gap_us(const struct upstream *u)
{
	struct serial_line l;
	serial_line_of(u->cfg, &l);
	int64_t silence = serial_silence_us(&l) + 1000, gap = u->dialect->min_gap_ms * 1000;
	return gap > silence ? gap : silence;
}

int upstream_gapless(const struct upstream *u)
{
	return !is_serial(u) && u->dialect->min_gap_ms <= 0;
}

void upstream_gap(const struct upstream *u, const struct pool_slot *s)
{
	int64_t gap = u->dialect->min_gap_ms;
	if (s->last_answer_at == 0)
		return;
	if (is_serial(u)) {
		sleep_until_us(s->last_answer_at * 1000 + serial_gap_us(u));
		return;
	}
	if (gap <= 0)
		return;
	int left;
	while ((left = time_left_ms(s->last_answer_at + gap)) > 0)
		poll(NULL, 0, left);
}

/* Reads back what the adapter echoed of the request (--serial-echo): the
 * bytes must be the request's, else something else is on the bus. */
static int skip_echo(const struct dialect_msg *m, struct pool_slot *s, int64_t deadline)
{
	uint8_t echo[DIALECT_WIRE_MAX];
	size_t got = 0;
	while (got < m->wirelen) {
		ssize_t n = net_read(s->fd, echo + got, m->wirelen - got, deadline);
		if (n <= 0)
			return n == 0 ? -EIO : (int)n;
		got += (size_t)n;
	}
	if (memcmp(echo, m->wire, m->wirelen) != 0) {
		log_hex("echo", echo, got);
		return -EPROTO;
	}
	return 0;
}

int upstream_send(const struct upstream *u, struct pool_slot *s, const struct dialect_msg *m,
		  int64_t deadline)
{
	if (!is_serial(u))
		return net_write_all(s->fd, m->wire, m->wirelen, deadline);
	int rc = drop_stale(s);
	if (rc == 0)
		rc = net_write_all(s->fd, m->wire, m->wirelen, deadline);
	/* the echo comes while the request is on the wire */
	int64_t echo_by = time_now_ms() + u->cfg->answer_timeout_ms + m->line_ms;
	if (rc == 0 && u->cfg->serial_echo)
		rc = skip_echo(m, s, deadline >= 0 && deadline < echo_by ? deadline : echo_by);
	if (rc == 0 && m->answerless)
		sleep_until_us((time_now_ms() + m->line_ms + BROADCAST_TURNAROUND_MS) * 1000);
	return rc;
}
