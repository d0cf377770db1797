/* Logging to stderr (with timestamps, or with <N> priority prefixes for the
 * journal) or to syslog; thread-safe, one write per line. */
#include "config.h"
#include "log.h"
#include "timeutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

enum log_sink { SINK_STDERR, SINK_JOURNAL, SINK_SYSLOG };

/* Set once by log_init before any thread starts, read-only afterwards. */
static atomic_int log_level = LOG_LVL_WARN;
static atomic_int log_sink = SINK_STDERR;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
/* syslog(3) priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static const int level_prio[] = { 3, 4, 6, 7 };

void log_init(enum log_level level, int use_syslog)
{
	atomic_store(&log_level, level);
	if (use_syslog) {
		openlog("tcp-multiplexer", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		atomic_store(&log_sink, SINK_SYSLOG);
	} else if (getenv("JOURNAL_STREAM") != NULL) {
		/* systemd connected stderr to the journal: it adds timestamps and
		 * reads the <N> prefix as the priority (sd-daemon(3)). */
		atomic_store(&log_sink, SINK_JOURNAL);
	} else {
		atomic_store(&log_sink, SINK_STDERR);
	}
}

int log_enabled(enum log_level level)
{
	return (int)level <= atomic_load(&log_level);
}

static void write_line(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere left to report it */
		p += w;
		n -= (size_t)w;
	}
}

__attribute__((format(printf, 2, 0)))
static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[1024];
	size_t n = 0;
	int sink = atomic_load(&log_sink);

	if (sink == SINK_SYSLOG) {
		vsyslog(level_prio[level], fmt, ap);
		return;
	}
	if (sink == SINK_JOURNAL) {
		n = (size_t)snprintf(line, sizeof line, "<%d>", level_prio[level]);
	} else {
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof line - n, ".%03ld ", (long)(tv.tv_usec / 1000));
		n += strftime(line + n, sizeof line - n, "%z ", &tm);
	}
	n += (size_t)snprintf(line + n, sizeof line - n, "%s: ", level_names[level]);
	int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof line - 2)
		n = sizeof line - 2; /* truncated */
	line[n++] = '\n';
	write_line(line, n);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_hex(const char *what, const uint8_t *p, size_t n)
{
	if (!log_enabled(LOG_LVL_DEBUG))
		return;
	char hex[256 * 3 + 8];
	size_t shown = n < 256 ? n : 256, k = 0;
	for (size_t i = 0; i < shown; i++)
		k += (size_t)snprintf(hex + k, sizeof hex - k, "%s%02x", i ? " " : "", p[i]);
	log_debug("%s (%zu bytes): %s%s", what, n, hex, shown < n ? " ..." : "");
}

int log_ratelimit_ok(struct log_ratelimit *rl, int64_t interval_ms, unsigned *suppressed)
{
	int64_t now = time_now_ms();
	int64_t next = atomic_load(&rl->next);
	if (now >= next && atomic_compare_exchange_strong(&rl->next, &next, now + interval_ms)) {
		*suppressed = atomic_exchange(&rl->suppressed, 0);
		return 1;
	}
	atomic_fetch_add(&rl->suppressed, 1);
	return 0;
}
