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
static atomic_int log_errors_also_stderr = 0;

static const char *const level_names[] = { "error", "warn", "notice", "info", "debug" };
/* syslog(3) priorities: LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG */
static const int level_prio[] = { 3, 4, 5, 6, 7 };
static const char *const journal_prefix[] = { "<3>", "<4>", "<5>", "<6>", "<7>" };

/* systemd connected stderr to the journal: it adds timestamps and reads a
 * <N> prefix as the priority (sd-daemon(3), systemd.exec(5) $JOURNAL_STREAM). */
static int stderr_is_journal(void)
{
	return getenv("JOURNAL_STREAM") != NULL;
}

const char *log_stderr_prefix(enum log_level level)
{
	return stderr_is_journal() ? journal_prefix[level] : "";
}

void log_errors_to_stderr(int on)
{
	atomic_store(&log_errors_also_stderr, on);
}

void log_init(enum log_level level, int use_syslog)
{
	atomic_store(&log_level, level);
	if (use_syslog) {
		openlog("tcp-multiplexer", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		atomic_store(&log_sink, SINK_SYSLOG);
	} else if (stderr_is_journal()) {
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

/* Formats one line for stderr: "<N>text" for the journal (the priority says
 * the level, so no "warn:" beside it), else "TIME LEVEL: text". */
__attribute__((format(printf, 5, 0))) static size_t
format_line(char *line, size_t size, int journal, enum log_level level, const char *fmt, va_list ap)
{
	size_t n;
	if (journal) {
		n = (size_t)snprintf(line, size, "%s", journal_prefix[level]);
	} else {
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		n = strftime(line, size, "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, size - n, ".%03ld ", (long)(tv.tv_usec / 1000));
		n += strftime(line + n, size - n, "%z ", &tm);
		n += (size_t)snprintf(line + n, size - n, "%s: ", level_names[level]);
	}
	int m = vsnprintf(line + n, size - n, fmt, ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > size - 2)
		n = size - 2; /* truncated */
	line[n++] = '\n';
	return n;
}

__attribute__((format(printf, 2, 0))) static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[1024];
	int sink = atomic_load(&log_sink);

	if (sink == SINK_SYSLOG) {
		va_list copy;
		va_copy(copy, ap);
		vsyslog(level_prio[level], fmt, copy);
		va_end(copy);
		if (level != LOG_LVL_ERROR || !atomic_load(&log_errors_also_stderr))
			return;
	}
	write_line(line, format_line(line, sizeof line, stderr_is_journal(), level, fmt, ap));
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
