/* Child processes for the benchmark (the daemon without -v, nginx, wrk)
 * and what /proc tells about them. */
#include "config.h"
#include "bench.h"
#include "testing.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 48
#define PORT_TRIES 3

static char tmp_dir[128];

const char *bench_tmp_dir(void)
{
	if (tmp_dir[0] == '\0') {
		const char *base = getenv("TMPDIR");
		snprintf(tmp_dir, sizeof tmp_dir, "%s/tcpmux-bench.XXXXXX", base && *base ? base : "/tmp");
		if (mkdtemp(tmp_dir) == NULL) {
			fprintf(stderr, "bench: mkdtemp %s: %s\n", tmp_dir, strerror(errno));
			exit(1);
		}
		/* nginx may drop privileges: let it read its files */
		chmod(tmp_dir, 0755);
	}
	return tmp_dir;
}

static int daemon_seq;  /* daemon-N.log files made so far */

void bench_tmp_cleanup(void)
{
	if (tmp_dir[0] == '\0')
		return;
	char p[PATH_MAX];
	for (int i = 0; i < daemon_seq; i++) {
		snprintf(p, sizeof p, "%s/daemon-%d.log", tmp_dir, i);
		unlink(p);
	}
	if (rmdir(tmp_dir) < 0 && errno != ENOENT)
		fprintf(stderr, "bench: %s left behind: %s\n", tmp_dir, strerror(errno));
	tmp_dir[0] = '\0';
}

int bench_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int rc = 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		rc = -errno;
	close(fd);
	return rc < 0 ? rc : ntohs(a.sin_port);
}

static bool child_gone(pid_t child)
{
	int st;
	return child > 0 && waitpid(child, &st, WNOHANG) == child;
}

int bench_wait_listening(int port, pid_t child, int timeout_ms)
{
	int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (;;) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
		close(fd);
		if (rc == 0)
			return 0;
		if (child_gone(child))
			return -ECHILD;
		if (bench_now_ns() >= deadline)
			return -ETIMEDOUT;
		poll(NULL, 0, 5);
	}
}

pid_t bench_spawn(const char *const argv[], const char *log_path, int *out_fd)
{
	int p[2] = { -1, -1 }, out;
	if (log_path)
		out = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	else if (pipe2(p, O_CLOEXEC) == 0)
		out = p[1];
	else
		out = -1;
	if (out < 0)
		return -errno;
	pid_t pid = tm_spawn(NULL, argv, out);
	close(out);
	if (pid < 0) {
		if (p[0] >= 0)
			close(p[0]);
		return pid;
	}
	if (out_fd)
		*out_fd = p[0];
	return pid;
}

int bench_reap(pid_t pid, int sig, int timeout_ms)
{
	return tm_stop_pid(pid, sig, timeout_ms);
}

/* ---- the daemon --------------------------------------------------------- */

int bench_daemon_start(struct bench_daemon *d, const char *const args[])
{
	return bench_daemon_start_bin(d, NULL, args);
}

int bench_daemon_start_bin(struct bench_daemon *d, const char *bin, const char *const args[])
{
	const char *argv[MAX_ARGS + 8];
	char listen[32];
	size_t n = 0;

	memset(d, 0, sizeof *d);
	snprintf(d->log, sizeof d->log, "%s/daemon-%d.log", bench_tmp_dir(), daemon_seq++);
	argv[n++] = bin ? bin : tm_daemon_binary();
	argv[n++] = "server";
	argv[n++] = "-l";
	argv[n++] = listen;
	for (size_t i = 0; args && args[i]; i++) {
		if (i >= MAX_ARGS)
			return -E2BIG;
		argv[n++] = args[i];
	}
	argv[n] = NULL;

	int rc = -EADDRINUSE;
	/* The port is free when picked but could be taken before the daemon
	 * binds it: then the daemon exits (status 1) and we try another. */
	for (int attempt = 0; attempt < PORT_TRIES; attempt++) {
		d->port = bench_free_port();
		if (d->port < 0)
			return d->port;
		snprintf(listen, sizeof listen, "127.0.0.1:%d", d->port);
		d->pid = bench_spawn(argv, d->log, NULL);
		if (d->pid < 0)
			return d->pid;
		rc = bench_wait_listening(d->port, d->pid, BENCH_START_TIMEOUT_MS);
		if (rc == 0)
			return 0;
		bench_reap(d->pid, SIGKILL, 1000);
		d->pid = 0;
		if (rc != -ECHILD)
			break;
	}
	fprintf(stderr, "bench: the daemon did not start: %s\n", strerror(-rc));
	bench_daemon_log_tail(d, 10);
	return rc;
}

int bench_daemon_stop(struct bench_daemon *d)
{
	if (d->pid <= 0)
		return -ESRCH;
	int rc = bench_reap(d->pid, SIGTERM, BENCH_STOP_TIMEOUT_MS);
	d->pid = 0;
	return rc;
}

static FILE *open_log(const struct bench_daemon *d)
{
	return d->log[0] ? fopen(d->log, "r") : NULL;
}

int bench_daemon_log_lines(const struct bench_daemon *d)
{
	FILE *f = open_log(d);
	if (f == NULL)
		return 0;
	char line[1024];
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += strstr(line, "warn: ") != NULL || strstr(line, "error: ") != NULL;
	fclose(f);
	return n;
}

void bench_daemon_log_tail(const struct bench_daemon *d, int lines)
{
	FILE *f = open_log(d);
	if (f == NULL)
		return;
	char ring[16][512];
	int n = 0;
	if (lines > 16)
		lines = 16;
	while (fgets(ring[n % lines], sizeof ring[0], f))
		n++;
	fclose(f);
	for (int i = n > lines ? n - lines : 0; i < n; i++)
		fprintf(stderr, "  daemon log: %s", ring[i % lines]);
}

/* ---- /proc -------------------------------------------------------------- */

int bench_proc_status(pid_t pid, long *rss_kib, long *threads)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	*rss_kib = *threads = -1;
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			*rss_kib = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "Threads:", 8) == 0)
			*threads = strtol(line + 8, NULL, 10);
	}
	fclose(f);
	return *rss_kib >= 0 && *threads >= 0 ? 0 : -EPROTO;
}

long bench_proc_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *dir = opendir(path);
	if (dir == NULL)
		return -errno;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL)
		n += e->d_name[0] >= '0' && e->d_name[0] <= '9';
	closedir(dir);
	return n;
}

bool bench_child_running(pid_t pid, int *status)
{
	int st;
	pid_t r;
	do
		r = waitpid(pid, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return true;
	if (status)
		*status = r != pid ? -ECHILD : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return false;
}

/* Sums the first field of /proc/PID/task/TID/schedstat (time on a CPU,
 * ns) over the live threads: nanosecond resolution, where /proc/PID/stat
 * counts clock ticks. Threads that end between two readings take their
 * time with them; the measurements keep their threads alive. */
int64_t bench_proc_cpu_us(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *dir = opendir(path);
	if (dir == NULL)
		return -1;
	unsigned long long sum = 0;
	struct dirent *e;
	int n = 0;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char p[128];
		snprintf(p, sizeof p, "/proc/%d/task/%.20s/schedstat", (int)pid, e->d_name);
		FILE *f = fopen(p, "r");
		unsigned long long ns;
		if (f && fscanf(f, "%llu", &ns) == 1) {
			sum += ns;
			n++;
		}
		if (f)
			fclose(f);
	}
	closedir(dir);
	return n > 0 ? (int64_t)(sum / 1000) : -1;
}

/* ---- strace ------------------------------------------------------------- */

#define STRACE_ATTACH_MS 10000

/* Whether every thread of pid has a tracer (TracerPid in its status). */
static bool all_traced(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *dir = opendir(path);
	if (dir == NULL)
		return false;
	bool all = true;
	int n = 0;
	struct dirent *e;
	while (all && (e = readdir(dir)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char p[128], line[128];
		snprintf(p, sizeof p, "/proc/%d/task/%.20s/status", (int)pid, e->d_name);
		FILE *f = fopen(p, "r");
		long tracer = 0;
		while (f && fgets(line, sizeof line, f))
			if (strncmp(line, "TracerPid:", 10) == 0)
				tracer = strtol(line + 10, NULL, 10);
		if (f)
			fclose(f);
		all = tracer != 0;
		n++;
	}
	closedir(dir);
	return all && n > 0;
}

int bench_strace_attach(pid_t pid, const char *out_path, pid_t *tracer)
{
	char strace[PATH_MAX], spid[16], log[PATH_MAX];
	*tracer = 0;
	if (!bench_find_program("strace", strace, sizeof strace))
		return -ENOENT;
	snprintf(spid, sizeof spid, "%d", (int)pid);
	snprintf(log, sizeof log, "%s.log", out_path);
	const char *argv[] = { strace, "-f", "-c", "-o", out_path, "-p", spid, NULL };
	pid_t t = bench_spawn(argv, log, NULL);
	if (t < 0)
		return (int)t;
	*tracer = t;
	int64_t deadline = bench_now_ns() + (int64_t)STRACE_ATTACH_MS * 1000000;
	while (!all_traced(pid)) {
		if (!bench_child_running(t, NULL)) {
			*tracer = 0;
			return -ECHILD; /* e.g. ptrace not permitted here */
		}
		if (bench_now_ns() >= deadline)
			return -ETIMEDOUT;
		poll(NULL, 0, 5);
	}
	return 0;
}

/* Reads strace -c's table: "% time seconds usecs/call calls [errors]
 * syscall" rows, then a "total" row. */
static int strace_parse(FILE *f, struct bench_syscalls *sc)
{
	char line[256];
	memset(sc, 0, sizeof *sc);
	sc->total = -1;
	while (fgets(line, sizeof line, f)) {
		char *tok[8], *save = NULL;
		int n = 0;
		for (char *t = strtok_r(line, " \t\n", &save); t && n < 8; t = strtok_r(NULL, " \t\n", &save))
			tok[n++] = t;
		if (n < 5 || tok[0][0] < '0' || tok[0][0] > '9')
			continue;
		long calls = strtol(tok[3], NULL, 10);
		const char *name = tok[n - 1];
		if (strcmp(name, "total") == 0) {
			sc->total = calls;
			continue;
		}
		/* keep the three largest (rows come sorted by time, not calls) */
		for (int i = 0; i < 3; i++) {
			if (calls > sc->top[i].calls) {
				memmove(&sc->top[i + 1], &sc->top[i], (size_t)(2 - i) * sizeof sc->top[0]);
				snprintf(sc->top[i].name, sizeof sc->top[i].name, "%s", name);
				sc->top[i].calls = calls;
				break;
			}
		}
	}
	return sc->total >= 0 ? 0 : -EPROTO;
}

int bench_strace_finish(pid_t tracer, const char *out_path, struct bench_syscalls *sc)
{
	char log[PATH_MAX];
	memset(sc, 0, sizeof *sc);
	sc->total = -1;
	if (tracer > 0)
		bench_reap(tracer, SIGINT, 10000); /* SIGINT: detach and write the summary */
	FILE *f = fopen(out_path, "r");
	int rc = f ? strace_parse(f, sc) : -errno;
	if (f)
		fclose(f);
	unlink(out_path);
	snprintf(log, sizeof log, "%s.log", out_path);
	unlink(log);
	return rc;
}

int bench_host_cpu(int64_t *busy, int64_t *total)
{
	FILE *f = fopen("/proc/stat", "r");
	if (f == NULL)
		return -errno;
	unsigned long long v[8] = { 0 };
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
		       &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 5)
		return -EPROTO;
	unsigned long long all = 0;
	for (int i = 0; i < 8; i++)
		all += v[i];
	*total = (int64_t)all;
	*busy = (int64_t)(all - v[3] - v[4]); /* minus idle and iowait */
	return 0;
}

double bench_host_busy(const int64_t before[2], const int64_t after[2])
{
	int64_t total = after[1] - before[1];
	if (before[1] <= 0 || after[1] <= 0 || total <= 0)
		return -1;
	return (double)(after[0] - before[0]) / (double)total;
}

bool bench_find_program(const char *name, char *path, size_t cap)
{
	const char *env = getenv("PATH");
	char dirs[4096];
	snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/sbin", env ? env : "/usr/bin:/bin");
	char *save = NULL;
	for (char *dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(path, cap, "%s/%s", dir, name);
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

long bench_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_cur;
}
