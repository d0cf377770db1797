/* The connection to the target: opening it, checking an idle one, when it
 * is due for a check, and the gap between exchanges. */
#ifndef TCPMUX_UPSTREAM_H
#define TCPMUX_UPSTREAM_H

#include <stdint.h>

#include "cli.h"
#include "dialect.h"
#include "pool.h"

/* An answer's first wait is one blocking read this long at most (set
 * once per connection as its receive timeout); a slower answer is then
 * awaited with poll(), watching the client. */
#define UPSTREAM_WATCH_MS 100

struct upstream {
	const struct config *cfg;
	const struct dialect *dialect;
	int timed_recv; /* connections carry UPSTREAM_WATCH_MS as their receive timeout */
};

void upstream_init(struct upstream *u, const struct config *cfg, const struct dialect *d);
/* Opens a connection to the target within deadline, or its serial port.
 * Returns fd or -errno. */
int upstream_connect(const struct upstream *u, int64_t deadline);
/* Checks an idle connection without blocking. Whole frames that arrived
 * unasked are logged and dropped when answers carry ids; for a framing
 * without ids they mean the stream is out of step, so the connection is
 * replaced. Returns POOL_HEALTHY when it may be used, POOL_RETIRE when it is
 * past --upstream-max-idle or -age, POOL_BROKEN when it is closed, errored
 * or holds bytes it should not. */
enum pool_health upstream_check_idle(const struct upstream *u, struct pool_slot *s);
/* Only the time rules of the check (--upstream-max-idle and -age), with no
 * system call: for a connection that answered a moment ago. */
enum pool_health upstream_check_age(const struct upstream *u, struct pool_slot *s);
/* The same decision without the log line: whether s is past either rule. */
int upstream_past_age(const struct upstream *u, const struct pool_slot *s);
/* Gives a new connection what the exchange expects of it (its receive
 * timeout); upstream_connect does it, tests that make their own call it. */
void upstream_tune(const struct upstream *u, int fd);
/* When an idle slot is due for a check (a pool_due_fn; arg is the upstream). */
int64_t upstream_idle_due(const void *arg, const struct pool_slot *s);
/* Whether a request may follow an answer at once (no gap, no line
 * silence): only then may the previous holder send for the next. */
int upstream_gapless(const struct upstream *u);
/* Waits out the dialect's gap (--request-gap, RTU silence) since the
 * slot's last answer. */
void upstream_gap(const struct upstream *u, const struct pool_slot *s);
/* Sends m's wire bytes over s by deadline. On a serial line it first
 * drops input that belongs to no request, then skips the adapter's echo
 * (--serial-echo), and after a broadcast waits until the devices have
 * acted on it. Returns 0 or -errno. */
int upstream_send(const struct upstream *u, struct pool_slot *s, const struct dialect_msg *m,
		  int64_t deadline);

#endif
