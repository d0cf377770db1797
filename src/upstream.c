/* The connection to the target: opening it, checking an idle one, when it
 * is due for a check, and the gap between exchanges. */
#include "config.h"
#include "upstream.h"
#include "log.h"
#include "net.h"
#include "timeutil.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

/* Bounds the frames drained from one idle connection in one check. */
#define MAX_STRAY_FRAMES 64

void upstream_init(struct upstream *u, const struct config *cfg, const struct dialect *d)
{
	u->cfg = cfg;
	u->dialect = d;
	u->timed_recv = 1;
}

int upstream_connect(const struct upstream *u, int64_t deadline)
{
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

/* --upstream-max-idle and -age: POOL_RETIRE when s is past either. */
static enum pool_health check_age(const struct config *cfg, const struct pool_slot *s, int64_t now)
{
	if (cfg->upstream_max_idle_ms > 0 && now - idle_since(s) >= cfg->upstream_max_idle_ms) {
		log_info("upstream #%d: idle for %lld ms (--upstream-max-idle), reopening", s->id,
			 (long long)(now - idle_since(s)));
		return POOL_RETIRE;
	}
	if (cfg->upstream_max_age_ms > 0 && now - s->opened_at >= cfg->upstream_max_age_ms) {
		log_info("upstream #%d: open for %lld ms (--upstream-max-age), reopening", s->id,
			 (long long)(now - s->opened_at));
		return POOL_RETIRE;
	}
	return POOL_HEALTHY;
}

/* Reads what an idle connection holds. Whole frames are dropped when the
 * dialect matches answers by id; anything else breaks the connection. */
static enum pool_health drain_idle(const struct upstream *u, struct pool_slot *s, int rdhup)
{
	struct frame_ctx ctx = { .max_frame = u->cfg->max_frame };
	for (int i = 0; i < MAX_STRAY_FRAMES; i++) {
		ssize_t n = buf_read_frame(&s->rbuf, s->fd, u->dialect->response, &ctx, 0, 0);
		if (n > 0) {
			log_info("upstream #%d: a %zd-byte frame nobody asked for (late or unsolicited)%s", s->id, n,
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

enum pool_health upstream_check_age(const struct upstream *u, struct pool_slot *s)
{
	return check_age(u->cfg, s, time_now_ms());
}

enum pool_health upstream_check_idle(const struct upstream *u, struct pool_slot *s)
{
	if (check_age(u->cfg, s, time_now_ms()) != POOL_HEALTHY)
		return POOL_RETIRE;
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN | POLLRDHUP };
	if (poll(&pfd, 1, 0) == 0 && buf_len(&s->rbuf) == 0)
		return POOL_HEALTHY;
	if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) {
		log_info("upstream #%d: connection closed by the target while idle", s->id);
		return POOL_BROKEN;
	}
	return drain_idle(u, s, (pfd.revents & POLLRDHUP) != 0);
}

void upstream_gap(const struct upstream *u, const struct pool_slot *s)
{
	int64_t gap = u->dialect->min_gap_ms;
	if (gap <= 0 || s->last_answer_at == 0)
		return;
	int left;
	while ((left = time_left_ms(s->last_answer_at + gap)) > 0)
		poll(NULL, 0, left);
}
