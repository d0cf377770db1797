/* Harness for the end-to-end suites: the daemon as a child process with its
 * output captured, and client helpers bound by deadlines. */
#include "config.h"
#include "testing.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TCPMUX_BIN
#error "TCPMUX_BIN must be the path of the daemon binary (Makefile.am defines it)"
#endif

#define TM_MAX_ARGS 64
#define TM_LOG_MAX (4 * 1024 * 1024)
#define TM_LINE_MAX 4096
#define TM_DRAIN_GRACE_MS 2000

struct tm_daemon {
	pid_t pid;
	int port;
	int fd;                 /* read end of the daemon's stdout/stderr pipe */
	bool exited;            /* reaped; status is valid */
	int status;
	pthread_t drain;

	pthread_mutex_t lock;   /* everything below */
	pthread_cond_t cond;    /* output arrived, or it ended */
	char *log;              /* NUL-terminated */
	size_t len;
	size_t cap;
	size_t base;            /* bytes dropped from the front (the log is capped) */
	bool eof;
	int64_t drain_deadline; /* > 0: the drain thread gives up at this time */

	/* the drain thread's own: the line being forwarded to stderr */
	bool quiet;
	char partial[TM_LINE_MAX];
	size_t plen;
};

/* ---- time and waiting --------------------------------------------------- */

int64_t tm_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tm_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int tm_left(int64_t deadline)
{
	int64_t left = deadline - tm_now_ms();
	if (left <= 0)
		return 0;
	return left > 1000000000 ? 1000000000 : (int)left;
}

static struct timespec tm_abs(int64_t deadline)
{
	struct timespec ts = { deadline / 1000, (long)(deadline % 1000) * 1000000L };
	return ts;
}

/* Waits until fd has bytes (or end of stream) before deadline. Returns 0,
 * -ETIMEDOUT or -errno. */
static int tm_wait_readable(int fd, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int rc = poll(&pfd, 1, tm_left(deadline));
		if (rc > 0)
			return 0;
		if (rc == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

bool tm_wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
	int64_t deadline = tm_now_ms() + timeout_ms;
	while (!cond(arg)) {
		if (tm_now_ms() >= deadline)
			return cond(arg);
		tm_sleep_ms(2);
	}
	return true;
}

long tm_sim_stat(struct sim *s, size_t offset)
{
	struct sim_stats st;
	long v;
	sim_get_stats(s, &st);
	memcpy(&v, (const char *)&st + offset, sizeof(v));
	return v;
}

bool tm_sim_wait(struct sim *s, size_t offset, long at_least, int timeout_ms)
{
	int64_t deadline = tm_now_ms() + timeout_ms;
	while (tm_sim_stat(s, offset) < at_least) {
		if (tm_now_ms() >= deadline)
			return tm_sim_stat(s, offset) >= at_least;
		tm_sleep_ms(2);
	}
	return true;
}

/* ---- child processes ---------------------------------------------------- */

const char *tm_daemon_binary(void)
{
	const char *env = getenv("TCPMUX_BIN");
	return env && *env ? env : TCPMUX_BIN;
}

/* Only async-signal-safe calls here: the parent has threads. */
__attribute__((noreturn))
static void tm_child(const char *file, const char *const argv[], int out, int null, pid_t parent)
{
	static const char msg[] = "testing: exec failed\n";
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	static const int sigs[] = { SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 };
	sigset_t none;

	/* Dies with the test, so a failed or timed-out test leaves no child. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	if (dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	/* thousands of client sockets (the benchmark) must not leak into it */
	close_range(3, ~0U, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &dfl, NULL);
	execv(file, (char *const *)argv);
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	_exit(127);
}

pid_t tm_spawn(const char *file, const char *const argv[], int out)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0)
		return -errno;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0)
		tm_child(file ? file : argv[0], argv, out, null, parent);
	int err = errno;
	close(null);
	return pid < 0 ? -err : pid;
}

/* tm_spawn with stdout+stderr on a pipe whose read end goes to *rfd. */
static pid_t tm_spawn_piped(const char *file, const char *const argv[], int *rfd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = tm_spawn(file, argv, p[1]);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return pid;
	}
	*rfd = p[0];
	return pid;
}

int tm_exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -ECHILD;
}

/* Waits up to timeout_ms for pid; *status is valid when it returns >= 0
 * or -ECHILD. Returns the exit code, -ETIMEDOUT (still running) or -errno. */
static int tm_wait_status(pid_t pid, int timeout_ms, int *status)
{
	int64_t deadline = tm_now_ms() + timeout_ms;
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return tm_exit_code(*status);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (tm_now_ms() >= deadline)
			return -ETIMEDOUT;
		tm_sleep_ms(2);
	}
}

int tm_wait_pid(pid_t pid, int timeout_ms)
{
	int status;
	return tm_wait_status(pid, timeout_ms, &status);
}

/* Reaps pid within timeout_ms, else SIGKILLs and reaps it. Returns the
 * exit code (tm_exit_code) or -ETIMEDOUT. */
static int tm_reap(pid_t pid, int timeout_ms, int *status)
{
	int rc = tm_wait_status(pid, timeout_ms, status);
	if (rc != -ETIMEDOUT)
		return rc;
	kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	return -ETIMEDOUT;
}

int tm_stop_pid(pid_t pid, int sig, int timeout_ms)
{
	int status;
	if (sig && kill(pid, sig) < 0 && errno != ESRCH)
		return -errno;
	return tm_reap(pid, timeout_ms, &status);
}

/* ---- the daemon's output ------------------------------------------------ */

static void tm_log_append(struct tm_daemon *d, const char *p, size_t n)
{
	pthread_mutex_lock(&d->lock);
	if (d->len + n > TM_LOG_MAX) {
		size_t drop = d->len / 2 > n ? d->len / 2 : d->len;
		memmove(d->log, d->log + drop, d->len - drop);
		d->len -= drop;
		d->base += drop;
	}
	if (d->len + n + 1 > d->cap) {
		size_t cap = d->cap ? d->cap : 4096;
		while (cap < d->len + n + 1)
			cap *= 2;
		char *l = realloc(d->log, cap);
		if (!l) {
			pthread_mutex_unlock(&d->lock);
			return;
		}
		d->log = l;
		d->cap = cap;
	}
	memcpy(d->log + d->len, p, n);
	d->len += n;
	d->log[d->len] = '\0';
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void tm_forward_line(struct tm_daemon *d)
{
	if (!d->quiet)
		fprintf(stderr, "daemon[%d]: %.*s\n", (int)d->pid, (int)d->plen, d->partial);
	d->plen = 0;
}

static void tm_forward(struct tm_daemon *d, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' || d->plen == sizeof(d->partial)) {
			tm_forward_line(d);
			if (p[i] == '\n')
				continue;
		}
		d->partial[d->plen++] = p[i];
	}
}

static void *tm_drain(void *arg)
{
	struct tm_daemon *d = arg;
	char tmp[4096];

	/* Ends at the end of the output, or at drain_deadline once the daemon
	 * has been reaped (a grandchild could hold the pipe open). */
	for (;;) {
		pthread_mutex_lock(&d->lock);
		int64_t dl = d->drain_deadline;
		pthread_mutex_unlock(&d->lock);
		if (dl > 0 && tm_now_ms() >= dl)
			break;
		int rc = tm_wait_readable(d->fd, tm_now_ms() + 100);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc < 0)
			break;
		ssize_t n = read(d->fd, tmp, sizeof(tmp));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		tm_log_append(d, tmp, (size_t)n);
		tm_forward(d, tmp, (size_t)n);
	}
	if (d->plen > 0)
		tm_forward_line(d);
	pthread_mutex_lock(&d->lock);
	d->eof = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* Finds, at or after offset mark, a whole line (or the last one once the
 * output has ended) containing needle. With count, counts them instead.
 * Returns the number found; the first is copied to line. Lock held. */
static int tm_log_scan(struct tm_daemon *d, size_t mark, const char *needle, char *line, size_t cap,
		       bool count)
{
	size_t pos = mark > d->base ? mark - d->base : 0, nlen = strlen(needle);
	int found = 0;
	if (pos > d->len)
		pos = d->len;
	while (pos < d->len) {
		const char *start = d->log + pos;
		const char *nl = memchr(start, '\n', d->len - pos);
		if (!nl && !d->eof)
			break;
		size_t l = nl ? (size_t)(nl - start) : d->len - pos;
		if (memmem(start, l, needle, nlen)) {
			if (found == 0 && line && cap > 0) {
				size_t c = l < cap - 1 ? l : cap - 1;
				memcpy(line, start, c);
				line[c] = '\0';
			}
			found++;
			if (!count)
				break;
		}
		pos += l + 1;
	}
	return found;
}

size_t tm_daemon_log_mark(struct tm_daemon *d)
{
	pthread_mutex_lock(&d->lock);
	size_t m = d->base + d->len;
	pthread_mutex_unlock(&d->lock);
	return m;
}

bool tm_daemon_wait_log(struct tm_daemon *d, size_t mark, const char *needle, char *line,
			size_t cap, int timeout_ms)
{
	struct timespec ts = tm_abs(tm_now_ms() + timeout_ms);
	bool found;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		found = tm_log_scan(d, mark, needle, line, cap, false) > 0;
		if (found || d->eof)
			break;
		if (pthread_cond_timedwait(&d->cond, &d->lock, &ts) == ETIMEDOUT) {
			found = tm_log_scan(d, mark, needle, line, cap, false) > 0;
			break;
		}
	}
	pthread_mutex_unlock(&d->lock);
	return found;
}

int tm_daemon_log_count(struct tm_daemon *d, size_t mark, const char *needle)
{
	pthread_mutex_lock(&d->lock);
	int n = tm_log_scan(d, mark, needle, NULL, 0, true);
	pthread_mutex_unlock(&d->lock);
	return n;
}

/* ---- the daemon --------------------------------------------------------- */

/* "... listening on 127.0.0.1:40123" -> 40123: the digits after the last
 * ':' of the address, so "[::1]:40123" works too. */
static int tm_parse_port(const char *line)
{
	const char *a = strstr(line, "listening on ");
	if (!a)
		return -EPROTO;
	a += strlen("listening on ");
	size_t alen = strcspn(a, " \t\r\n,;)");
	const char *colon = NULL;
	for (size_t i = 0; i < alen; i++)
		if (a[i] == ':')
			colon = a + i;
	if (!colon || colon + 1 == a + alen)
		return -EPROTO;
	long port = 0;
	for (const char *p = colon + 1; p < a + alen; p++) {
		if (!isdigit((unsigned char)*p))
			return -EPROTO;
		port = port * 10 + (*p - '0');
		if (port > 65535)
			return -EPROTO;
	}
	return port > 0 ? (int)port : -EPROTO;
}

static void tm_daemon_free(struct tm_daemon *d)
{
	pthread_mutex_lock(&d->lock);
	d->drain_deadline = tm_now_ms() + TM_DRAIN_GRACE_MS;
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->drain, NULL);
	close(d->fd);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	free(d->log);
	free(d);
}

static struct tm_daemon *tm_daemon_launch(const char *const argv[])
{
	struct tm_daemon *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	const char *q = getenv("TM_QUIET");
	d->quiet = q && *q && strcmp(q, "0") != 0;
	pthread_mutex_init(&d->lock, NULL);
	sim_cond_init_monotonic(&d->cond);

	d->pid = tm_spawn_piped(NULL, argv, &d->fd);
	if (d->pid < 0) {
		fprintf(stderr, "tm_daemon_start: cannot start %s: %s\n", argv[0], strerror((int)-d->pid));
		pthread_cond_destroy(&d->cond);
		pthread_mutex_destroy(&d->lock);
		free(d);
		return NULL;
	}
	if (pthread_create(&d->drain, NULL, tm_drain, d) != 0) {
		fprintf(stderr, "tm_daemon_start: cannot create the output thread\n");
		kill(d->pid, SIGKILL);
		tm_reap(d->pid, 0, &d->status);
		close(d->fd);
		pthread_cond_destroy(&d->cond);
		pthread_mutex_destroy(&d->lock);
		free(d);
		return NULL;
	}

	char line[TM_LINE_MAX];
	int port = -EPROTO;
	if (tm_daemon_wait_log(d, 0, "listening on ", line, sizeof(line), TM_START_TIMEOUT_MS))
		port = tm_parse_port(line);
	if (port < 0) {
		pthread_mutex_lock(&d->lock);
		bool ended = d->eof;
		pthread_mutex_unlock(&d->lock);
		if (ended)
			fprintf(stderr, "tm_daemon_start: %s ended its output without a "
				"\"listening on ADDR:PORT\" line\n", argv[0]);
		else
			fprintf(stderr, "tm_daemon_start: %s printed no "
				"\"listening on ADDR:PORT\" line within %d ms\n", argv[0], TM_START_TIMEOUT_MS);
		tm_daemon_stop(d, SIGKILL, 1000);
		return NULL;
	}
	d->port = port;
	return d;
}

/* Appends extra (NULL-terminated, may be NULL) to the n arguments in
 * argv, which has room for TM_MAX_ARGS more and the NULL, and ends it.
 * Returns false, with the reason on stderr, when extra is too long. */
static bool tm_args_append(const char *argv[], size_t n, const char *const extra[])
{
	for (size_t i = 0; extra && extra[i]; i++) {
		if (i >= TM_MAX_ARGS) {
			fprintf(stderr, "testing: more than %d arguments for the daemon\n", TM_MAX_ARGS);
			return false;
		}
		argv[n++] = extra[i];
	}
	argv[n] = NULL;
	return true;
}

struct tm_daemon *tm_daemon_start(const char *const extra[])
{
	const char *argv[TM_MAX_ARGS + 8];
	size_t n = 0;
	argv[n++] = tm_daemon_binary();
	argv[n++] = "server";
	argv[n++] = "-v";
	argv[n++] = "-l";
	argv[n++] = "127.0.0.1:0";
	if (!tm_args_append(argv, n, extra))
		return NULL;
	return tm_daemon_launch(argv);
}

/* The arguments that point the daemon at s (target is their buffer).
 * Returns how many were put in args. */
static size_t tm_sim_target_args(struct sim *s, const char *args[], char *target, size_t cap)
{
	size_t n = 0;
	snprintf(target, cap, "127.0.0.1:%d", sim_port(s));
	args[n++] = "-p";
	if (sim_get_proto(s) == SIM_MODBUS_RTU) {
		/* RTU frames over TCP, as from a serial-to-Ethernet converter */
		args[n++] = "modbus";
		args[n++] = "--modbus-upstream";
		args[n++] = "rtu";
	} else {
		args[n++] = sim_proto_name(sim_get_proto(s));
	}
	args[n++] = "-t";
	args[n++] = target;
	return n;
}

struct tm_daemon *tm_daemon_start_sim(struct sim *s, const char *const extra[])
{
	const char *args[TM_MAX_ARGS + 8];
	char target[32];
	size_t n = tm_sim_target_args(s, args, target, sizeof(target));
	return tm_args_append(args, n, extra) ? tm_daemon_start(args) : NULL;
}

struct tm_daemon *tm_daemon_start_args(const char *const args[], const char *const more[])
{
	const char *argv[2 * TM_MAX_ARGS + 1];
	size_t n = 0;
	if (!tm_args_append(argv, 0, args))
		return NULL;
	while (argv[n] != NULL)
		n++;
	return tm_args_append(argv, n, more) ? tm_daemon_start(argv) : NULL;
}

struct tm_daemon *tm_daemon_start_target(const char *proto, int port, const char *const args[],
					 const char *const more[])
{
	const char *argv[TM_MAX_ARGS + 8];
	char target[32];
	snprintf(target, sizeof(target), "127.0.0.1:%d", port);
	argv[0] = "-p";
	argv[1] = proto;
	argv[2] = "-t";
	argv[3] = target;
	return tm_args_append(argv, 4, args) ? tm_daemon_start_args(argv, more) : NULL;
}

int tm_daemon_port(const struct tm_daemon *d)
{
	return d->port;
}

pid_t tm_daemon_pid(const struct tm_daemon *d)
{
	return d->pid;
}

bool tm_daemon_running(struct tm_daemon *d)
{
	if (d->exited)
		return false;
	pid_t r;
	do
		r = waitpid(d->pid, &d->status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return true;
	d->exited = true;
	if (r < 0)
		d->status = -1;
	return false;
}

int tm_daemon_signal(struct tm_daemon *d, int sig)
{
	if (!tm_daemon_running(d))
		return -ESRCH;
	return kill(d->pid, sig) < 0 ? -errno : 0;
}

int tm_daemon_stop(struct tm_daemon *d, int sig, int timeout_ms)
{
	int rc;
	if (!d)
		return -EINVAL;
	if (timeout_ms <= 0)
		timeout_ms = TM_STOP_TIMEOUT_MS;
	if (tm_daemon_running(d)) {
		kill(d->pid, sig);
		rc = tm_reap(d->pid, timeout_ms, &d->status);
		if (rc == -ETIMEDOUT)
			fprintf(stderr, "tm_daemon_stop: pid %d still running %d ms after signal %d: killed\n",
				(int)d->pid, timeout_ms, sig);
		d->exited = true;
	} else {
		rc = d->status < 0 ? -ECHILD : tm_exit_code(d->status);
	}
	tm_daemon_free(d);
	return rc;
}

int tm_run_program(const char *file, const char *const argv[], char *out, size_t cap,
		   int timeout_ms)
{
	int rfd;
	size_t len = 0;
	pid_t pid = tm_spawn_piped(file, argv, &rfd);
	if (pid < 0)
		return (int)pid;
	int64_t deadline = tm_now_ms() + timeout_ms;
	/* Reads until the end of the output or the deadline. */
	for (;;) {
		if (tm_wait_readable(rfd, deadline) < 0)
			break;
		char tmp[4096];
		ssize_t r = read(rfd, tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t room = cap > len + 1 ? cap - len - 1 : 0;
		size_t c = (size_t)r < room ? (size_t)r : room;
		memcpy(out + len, tmp, c);
		len += c;
	}
	if (cap > 0)
		out[len] = '\0';
	close(rfd);
	/* Its output ended (it is exiting, or left a child holding the pipe),
	 * or the deadline passed. */
	int rc = tm_stop_pid(pid, 0, tm_left(deadline));
	if (rc == -ETIMEDOUT)
		fprintf(stderr, "tm_run_program: %s still running after %d ms: killed\n", argv[0],
			timeout_ms);
	return rc;
}

int tm_run(const char *const args[], char *out, size_t cap, int timeout_ms)
{
	const char *argv[TM_MAX_ARGS + 2];
	size_t n = 0;
	argv[n++] = tm_daemon_binary();
	if (!tm_args_append(argv, n, args))
		return -E2BIG;
	return tm_run_program(NULL, argv, out, cap, timeout_ms);
}

/* ---- clients ------------------------------------------------------------ */

int tm_count(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

void tm_fill_bytes(void *p, size_t n, unsigned seed)
{
	unsigned char *out = p;
	unsigned x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		out[i] = (unsigned char)x;
	}
}

int tm_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = { TM_IO_TIMEOUT_MS / 1000, (TM_IO_TIMEOUT_MS % 1000) * 1000 };
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	int err = errno;
	if (err == EINTR || err == EINPROGRESS) {
		/* The connect goes on: wait for its outcome. */
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		socklen_t elen = sizeof(err);
		int rc;
		do
			rc = poll(&pfd, 1, TM_IO_TIMEOUT_MS);
		while (rc < 0 && errno == EINTR);
		if (rc == 0)
			err = ETIMEDOUT;
		else if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			err = errno;
		if (err == 0)
			return fd;
	}
	close(fd);
	return -err;
}

int tm_write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int tm_write_split(int fd, const void *buf, size_t n, size_t step)
{
	const uint8_t *p = buf;
	if (step == 0)
		step = 1;
	for (size_t off = 0; off < n; off += step) {
		if (off > 0)
			tm_sleep_ms(2);
		int rc = tm_write_all(fd, p + off, n - off < step ? n - off : step);
		if (rc < 0)
			return rc;
	}
	return 0;
}

ssize_t tm_read_exact(int fd, void *buf, size_t n, int timeout_ms)
{
	int64_t deadline = tm_now_ms() + timeout_ms;
	uint8_t *p = buf;
	size_t got = 0;

	while (got < n) {
		int rc = tm_wait_readable(fd, deadline);
		if (rc < 0)
			return rc;
		ssize_t r = recv(fd, p + got, n - got, MSG_DONTWAIT);
		if (r == 0)
			return (ssize_t)got;
		if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (r < 0)
			return -errno;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int tm_wait_closed(int fd, int timeout_ms)
{
	int64_t deadline = tm_now_ms() + timeout_ms;
	for (;;) {
		int rc = tm_wait_readable(fd, deadline);
		if (rc < 0)
			return rc;
		uint8_t b;
		ssize_t r = recv(fd, &b, 1, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return 0;
		if (r > 0)
			return -EPROTO;
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
	}
}

/* Reads exactly n bytes of a frame before deadline; first: these are the
 * frame's first bytes, so a clean close is -EPIPE rather than -ECONNRESET. */
static int tm_recv_part(int fd, void *buf, size_t n, int64_t deadline, bool first)
{
	ssize_t r = tm_read_exact(fd, buf, n, tm_left(deadline));
	if (r < 0)
		return (int)r;
	if ((size_t)r < n)
		return first && r == 0 ? -EPIPE : -ECONNRESET;
	return 0;
}

ssize_t tm_line_recv(int fd, char *buf, size_t cap, int timeout_ms)
{
	int64_t deadline = tm_now_ms() + timeout_ms;
	for (size_t i = 0; i + 1 < cap; i++) {
		int rc = tm_recv_part(fd, buf + i, 1, deadline, i == 0);
		if (rc < 0)
			return rc;
		if (buf[i] == '\n') {
			buf[i + 1] = '\0';
			return (ssize_t)(i + 1);
		}
	}
	return -EMSGSIZE;
}

/* ---- Modbus/TCP --------------------------------------------------------- */

static void tm_put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t tm_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void tm_mbap(uint8_t *out, uint16_t tid, uint8_t unit, size_t pdulen)
{
	tm_put16(out, tid);
	tm_put16(out + 2, 0);
	tm_put16(out + 4, (unsigned)(pdulen + 1));
	out[6] = unit;
}

size_t tm_modbus_req_read(uint8_t out[12], uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr,
			  uint16_t qty)
{
	tm_mbap(out, tid, unit, 5);
	out[7] = fc;
	tm_put16(out + 8, addr);
	tm_put16(out + 10, qty);
	return 12;
}

size_t tm_modbus_req_write1(uint8_t out[12], uint16_t tid, uint8_t unit, uint16_t addr,
			    uint16_t value)
{
	return tm_modbus_req_read(out, tid, unit, 6, addr, value);
}

ssize_t tm_modbus_recv(int fd, uint8_t *adu, size_t cap, int timeout_ms)
{
	int64_t deadline = tm_now_ms() + timeout_ms;
	uint8_t h[6];
	int rc = tm_recv_part(fd, h, 6, deadline, true);
	if (rc < 0)
		return rc;
	size_t l = tm_be16(h + 4);
	if (tm_be16(h + 2) != 0 || l < 2 || l > 254)
		return -EPROTO;
	if (cap < 6 + l)
		return -EMSGSIZE;
	memcpy(adu, h, 6);
	rc = tm_recv_part(fd, adu + 6, l, deadline, false);
	return rc < 0 ? rc : (ssize_t)(6 + l);
}

/* Sends req and reads the answer into resp. Returns 1 for a normal answer
 * of *n bytes with the right tid, unit and fc, 0 for an exception reply
 * (stored in *exception), or -errno. */
static int tm_modbus_call(int fd, const uint8_t *req, size_t reqlen, uint8_t *resp, size_t *n,
			  uint8_t *exception)
{
	int rc = tm_write_all(fd, req, reqlen);
	if (rc < 0)
		return rc;
	ssize_t r = tm_modbus_recv(fd, resp, 260, TM_IO_TIMEOUT_MS);
	if (r < 0)
		return (int)r;
	*n = (size_t)r;
	if (r < 9 || tm_be16(resp) != tm_be16(req) || resp[6] != req[6])
		return -EPROTO;
	if (resp[7] == (req[7] | 0x80)) {
		if (r != 9)
			return -EPROTO;
		if (!exception)
			return -EREMOTEIO;
		*exception = resp[8];
		return 0;
	}
	if (resp[7] != req[7])
		return -EPROTO;
	if (exception)
		*exception = 0;
	return 1;
}

int tm_modbus_read(int fd, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t qty,
		   uint16_t *out, uint8_t *exception)
{
	uint8_t req[12], resp[260];
	size_t n;
	tm_modbus_req_read(req, tid, unit, fc, addr, qty);
	int rc = tm_modbus_call(fd, req, sizeof(req), resp, &n, exception);
	if (rc <= 0)
		return rc;
	if (resp[8] != 2 * qty || n != 9 + 2 * (size_t)qty)
		return -EPROTO;
	for (size_t i = 0; i < qty; i++)
		out[i] = tm_be16(resp + 9 + 2 * i);
	return 0;
}

int tm_modbus_write1(int fd, uint16_t tid, uint8_t unit, uint16_t addr, uint16_t value,
		     uint8_t *exception)
{
	uint8_t req[12], resp[260];
	size_t n;
	tm_modbus_req_write1(req, tid, unit, addr, value);
	int rc = tm_modbus_call(fd, req, sizeof(req), resp, &n, exception);
	if (rc <= 0)
		return rc;
	return n == sizeof(req) && memcmp(req, resp, n) == 0 ? 0 : -EPROTO;
}

int tm_modbus_write_multi(int fd, uint16_t tid, uint8_t unit, uint16_t addr, uint16_t qty,
			  const uint16_t *values, uint8_t *exception)
{
	uint8_t req[260], resp[260];
	size_t n;
	if (qty < 1 || qty > 123)
		return -EINVAL;
	tm_mbap(req, tid, unit, 6 + 2 * (size_t)qty);
	req[7] = 16;
	tm_put16(req + 8, addr);
	tm_put16(req + 10, qty);
	req[12] = (uint8_t)(2 * qty);
	for (size_t i = 0; i < qty; i++)
		tm_put16(req + 13 + 2 * i, values[i]);
	int rc = tm_modbus_call(fd, req, 13 + 2 * (size_t)qty, resp, &n, exception);
	if (rc <= 0)
		return rc;
	return n == 12 && memcmp(req + 8, resp + 8, 4) == 0 ? 0 : -EPROTO;
}

/* ---- iso8583 and mpu ---------------------------------------------------- */

size_t tm_iso8583_frame(uint8_t *out, const void *payload, size_t len)
{
	tm_put16(out, (unsigned)len);
	memcpy(out + 2, payload, len);
	return len + 2;
}

size_t tm_mpu_frame(uint8_t *out, const void *payload, size_t len)
{
	char digits[8];
	snprintf(digits, sizeof(digits), "%04u", (unsigned)(len % 10000));
	memcpy(out, digits, 4);
	memcpy(out + 4, payload, len);
	return len + 4;
}

/* One frame of a length-prefixed framing: hdr 2 is iso8583's big-endian
 * length, hdr 4 mpu's ASCII decimal one. Copies the payload. */
static ssize_t tm_prefixed_recv(int fd, size_t hdr, uint8_t *payload, size_t cap, int timeout_ms)
{
	int64_t deadline = tm_now_ms() + timeout_ms;
	uint8_t h[4];
	int rc = tm_recv_part(fd, h, hdr, deadline, true);
	if (rc < 0)
		return rc;
	size_t l = hdr == 2 ? tm_be16(h) : 0;
	for (size_t i = 0; hdr == 4 && i < 4; i++) {
		if (!isdigit(h[i]))
			return -EPROTO;
		l = l * 10 + (size_t)(h[i] - '0');
	}
	if (l > cap)
		return -EMSGSIZE;
	rc = tm_recv_part(fd, payload, l, deadline, false);
	return rc < 0 ? rc : (ssize_t)l;
}

ssize_t tm_iso8583_recv(int fd, uint8_t *payload, size_t cap, int timeout_ms)
{
	return tm_prefixed_recv(fd, 2, payload, cap, timeout_ms);
}

ssize_t tm_mpu_recv(int fd, uint8_t *payload, size_t cap, int timeout_ms)
{
	return tm_prefixed_recv(fd, 4, payload, cap, timeout_ms);
}

/* ---- HTTP/1.1 ----------------------------------------------------------- */

int tm_http_status(const char *resp)
{
	if (strncmp(resp, "HTTP/1.", 7) != 0 || !resp[7] || resp[8] != ' ')
		return 0;
	int st = 0;
	for (int i = 9; i < 12; i++) {
		if (!isdigit((unsigned char)resp[i]))
			return 0;
		st = st * 10 + (resp[i] - '0');
	}
	return st;
}

const char *tm_http_body(const char *resp)
{
	const char *e = strstr(resp, "\r\n\r\n");
	return e ? e + 4 : NULL;
}

int tm_http_once(int port, const char *req, char *buf, size_t cap)
{
	int fd = tm_connect(port);
	if (fd < 0)
		return fd;
	ssize_t n = tm_write_all(fd, req, strlen(req));
	if (n == 0)
		n = tm_http_recv(fd, buf, cap, false, TM_IO_TIMEOUT_MS);
	close(fd);
	return n < 0 ? (int)n : tm_http_status(buf);
}

bool tm_daemon_stats(struct tm_daemon *d, char *line, size_t cap)
{
	size_t mark = tm_daemon_log_mark(d);
	return tm_daemon_signal(d, SIGUSR1) == 0 &&
	       tm_daemon_wait_log(d, mark, "stats:", line, cap, 5000);
}

int tm_metrics_port(struct tm_daemon *d)
{
	char line[512];
	if (!tm_daemon_wait_log(d, 0, "serving /metrics on", line, sizeof line, 5000))
		return -ETIMEDOUT;
	return atoi(strrchr(line, ':') + 1);
}

/* The daemon closes the metrics connection after each answer; the request
 * says so too. */
ssize_t tm_metrics_scrape(int port, char *buf, size_t cap, int timeout_ms)
{
	int fd = tm_connect(port);
	if (fd < 0)
		return fd;
	const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	ssize_t n = tm_write_all(fd, req, sizeof req - 1);
	if (n == 0)
		n = tm_http_recv(fd, buf, cap, false, timeout_ms);
	close(fd);
	return n;
}

long tm_metric(const char *text, const char *name)
{
	char key[128];
	snprintf(key, sizeof key, "\n%s ", name);
	const char *p = strstr(text, key);
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* The value of header name in the head (NUL-terminated), copied to val. */
static bool tm_http_header(const char *head, const char *name, char *val, size_t cap)
{
	size_t nlen = strlen(name);
	const char *line = strstr(head, "\r\n");
	while (line && strncmp(line, "\r\n\r\n", 4) != 0) {
		line += 2;
		const char *eol = strstr(line, "\r\n");
		if (!eol)
			break;
		if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t l = (size_t)(eol - v);
			if (l >= cap)
				l = cap - 1;
			memcpy(val, v, l);
			val[l] = '\0';
			return true;
		}
		line = eol;
	}
	return false;
}

/* Reads one CRLF-terminated line, appending it to buf at *len. */
static int tm_http_line(int fd, char *buf, size_t cap, size_t *len, int64_t deadline)
{
	size_t start = *len;
	for (;;) {
		if (*len + 1 >= cap)
			return -EMSGSIZE;
		int rc = tm_recv_part(fd, buf + *len, 1, deadline, false);
		if (rc < 0)
			return rc;
		(*len)++;
		if (*len - start >= 2 && buf[*len - 2] == '\r' && buf[*len - 1] == '\n')
			return 0;
	}
}

ssize_t tm_http_recv(int fd, char *buf, size_t cap, bool head_request, int timeout_ms)
{
	int64_t deadline = tm_now_ms() + timeout_ms;
	size_t len = 0;
	int rc;
	char val[64];

	if (cap < 2)
		return -EMSGSIZE;
	/* The head, byte by byte, so nothing of a next response is consumed. */
	do {
		if (len + 1 >= cap)
			return -EMSGSIZE;
		rc = tm_recv_part(fd, buf + len, 1, deadline, len == 0);
		if (rc < 0)
			return rc;
		len++;
	} while (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0);
	buf[len] = '\0';
	int status = tm_http_status(buf);
	if (status == 0)
		return -EPROTO;
	/* RFC 9112 section 6.3: no body after HEAD, 1xx, 204 and 304. */
	if (head_request || status < 200 || status == 204 || status == 304)
		return (ssize_t)len;

	if (tm_http_header(buf, "Transfer-Encoding", val, sizeof(val)) && strstr(val, "chunked")) {
		/* Each round reads one chunk; the buffer's size bounds them. */
		for (;;) {
			size_t line = len;
			rc = tm_http_line(fd, buf, cap, &len, deadline);
			if (rc < 0)
				return rc;
			char *end;
			unsigned long size = strtoul(buf + line, &end, 16);
			if (end == buf + line)
				return -EPROTO;
			if (size == 0)
				break;
			if (size + 2 >= cap - len)
				return -EMSGSIZE;
			rc = tm_recv_part(fd, buf + len, size + 2, deadline, false);
			if (rc < 0)
				return rc;
			len += size + 2;
		}
		/* Trailer fields up to the empty line. */
		for (;;) {
			size_t line = len;
			rc = tm_http_line(fd, buf, cap, &len, deadline);
			if (rc < 0)
				return rc;
			if (len - line == 2)
				break;
		}
	} else if (tm_http_header(buf, "Content-Length", val, sizeof(val))) {
		char *end;
		unsigned long cl = strtoul(val, &end, 10);
		if (end == val)
			return -EPROTO;
		if (cl >= cap - len)
			return -EMSGSIZE;
		rc = tm_recv_part(fd, buf + len, cl, deadline, false);
		if (rc < 0)
			return rc;
		len += cl;
	} else {
		/* The body ends when the server closes. */
		for (;;) {
			if (len + 1 >= cap)
				return -EMSGSIZE;
			ssize_t r = tm_read_exact(fd, buf + len, 1, tm_left(deadline));
			if (r < 0)
				return r;
			if (r == 0)
				break;
			len++;
		}
	}
	buf[len] = '\0';
	return (ssize_t)len;
}
