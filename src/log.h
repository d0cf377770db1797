/* Logging to stderr (with timestamps, or with <N> priority prefixes for the
 * journal) or to syslog; thread-safe, one write per line. */
#ifndef TCPMUX_LOG_H
#define TCPMUX_LOG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* NOTICE is for routine events worth seeing at the default level (a stop
 * on request): syslog's LOG_NOTICE, so `journalctl -p warning` skips them. */
enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Call once before threads start. use_syslog sends lines to syslog(3). */
void log_init(enum log_level level, int use_syslog);
/* The "<N>" prefix that gives a line on stderr its priority when systemd
 * connected stderr to the journal (JOURNAL_STREAM set), else "". Usable
 * before log_init, for the usage errors main() prints. */
const char *log_stderr_prefix(enum log_level level);
/* Also writes error lines to stderr while logging to syslog, so the reason
 * for a failed start is not lost where no syslog daemon runs. */
void log_errors_to_stderr(int on);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* At debug level: "what (N bytes): 00 01 ..." (the first 256 bytes). */
void log_hex(const char *what, const uint8_t *p, size_t n);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/* Lets one line through per interval and counts the rest, so a dead target
 * or a flood of rejected clients cannot flood the log. */
struct log_ratelimit {
	_Atomic int64_t next; /* time_now_ms() when the next line may pass */
	atomic_uint suppressed;
};
/* Returns nonzero when a line may be logged now; *suppressed gets how many
 * were held back since the last one that passed. */
int log_ratelimit_ok(struct log_ratelimit *rl, int64_t interval_ms, unsigned *suppressed);

#endif
