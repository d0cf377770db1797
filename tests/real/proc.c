/* Outside programs for the end-to-end suites: spawn with a parent-death
 * signal, wait with deadlines, capture output, temporary directories. */
#include "config.h"
#include "proc.h"
#include "testing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

bool proc_which(const char *prog, char *path, size_t cap)
{
	if (strchr(prog, '/')) {
		if (access(prog, X_OK) != 0 || strlen(prog) >= cap) {
			if (cap > 0)
				path[0] = '\0';
			return false;
		}
		strcpy(path, prog);
		return true;
	}
	const char *env = getenv("PATH");
	const char *p = env && *env ? env : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
	while (*p) {
		const char *colon = strchr(p, ':');
		size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
		int n = snprintf(path, cap, "%.*s/%s", (int)dlen, dlen ? p : ".", prog);
		struct stat st;
		if (n > 0 && (size_t)n < cap && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(path, X_OK) == 0)
			return true;
		if (!colon)
			break;
		p = colon + 1;
	}
	/* callers test path[0] to know whether prog was found */
	if (cap > 0)
		path[0] = '\0';
	return false;
}

/* Runs argv with stdout and stderr on out (tm_spawn). Returns the pid or
 * -errno. */
static pid_t proc_fork(const char *const argv[], int out)
{
	char file[PATH_MAX];
	if (!proc_which(argv[0], file, sizeof(file)))
		return -ENOENT;
	return tm_spawn(file, argv, out);
}

pid_t proc_start(const char *const argv[], const char *log_path)
{
	int out = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (out < 0)
		return -errno;
	pid_t pid = proc_fork(argv, out);
	close(out);
	return pid;
}

int proc_wait(pid_t pid, int timeout_ms)
{
	return tm_wait_pid(pid, timeout_ms);
}

int proc_stop(pid_t pid, int sig, int timeout_ms)
{
	int rc = tm_stop_pid(pid, sig, timeout_ms);
	if (rc == -ETIMEDOUT)
		fprintf(stderr, "proc_stop: pid %d still running %d ms after signal %d: killed\n",
			(int)pid, timeout_ms, sig);
	return rc;
}

int proc_run(const char *const argv[], char *out, size_t cap, int timeout_ms)
{
	char file[PATH_MAX];
	if (!proc_which(argv[0], file, sizeof(file)))
		return -ENOENT;
	return tm_run_program(file, argv, out, cap, timeout_ms);
}

int proc_run_args(const char *prog, const char *first, const char *const args[], char *out,
		  size_t cap, int timeout_ms)
{
	const char *argv[48];
	size_t n = 0;
	argv[n++] = prog;
	if (first)
		argv[n++] = first;
	for (size_t i = 0; args[i]; i++) {
		if (n + 1 >= sizeof(argv) / sizeof(argv[0]))
			return -E2BIG;
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	return proc_run(argv, out, cap, timeout_ms);
}

char *proc_slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (n + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			buf = NULL;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (buf) {
		buf[n] = '\0';
		if (len)
			*len = n;
	}
	return buf;
}

int proc_write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	const char *p = data;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int err = errno;
			close(fd);
			return -err;
		}
		p += w;
		n -= (size_t)w;
	}
	return close(fd) < 0 ? -errno : 0;
}

/* Scans the file's lines for needle; copies the first match to line. */
static int proc_scan(const char *path, const char *needle, char *line, size_t cap)
{
	char *text = proc_slurp(path, NULL);
	int count = 0;
	if (!text)
		return 0;
	for (char *l = text; *l;) {
		char *eol = strchr(l, '\n');
		if (!eol) /* a line still being written: only whole lines count */
			break;
		*eol = '\0';
		if (strstr(l, needle)) {
			if (count++ == 0 && line && cap > 0)
				snprintf(line, cap, "%s", l);
		}
		l = eol + 1;
	}
	free(text);
	return count;
}

bool proc_wait_file(const char *path, const char *needle, char *line, size_t cap, int timeout_ms)
{
	int64_t deadline = tm_now_ms() + timeout_ms;
	for (;;) {
		if (proc_scan(path, needle, line, cap) > 0)
			return true;
		if (tm_now_ms() >= deadline)
			return false;
		tm_sleep_ms(5);
	}
}

int proc_count_file(const char *path, const char *needle)
{
	return proc_scan(path, needle, NULL, 0);
}

/* Set by proc_tmproot_setup in the runner, inherited by the forked tests. */
static char proc_root[PATH_MAX];

int proc_tmpdir(const char *tag, char *path, size_t cap)
{
	const char *base = proc_root[0] ? proc_root : getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	int n = snprintf(path, cap, "%s/tcpmux-%s-XXXXXX", base, tag);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	return mkdtemp(path) ? 0 : -errno;
}

void proc_tmproot_setup(void)
{
	proc_root[0] = '\0'; /* so proc_tmpdir makes it under $TMPDIR */
	int rc = proc_tmpdir("tests", proc_root, sizeof proc_root);
	if (rc < 0) {
		fprintf(stderr, "proc: cannot make a temporary directory: %s\n", strerror(-rc));
		proc_root[0] = '\0';
	}
}

void proc_tmproot_teardown(void)
{
	const char *keep = getenv("TM_KEEP");
	if (!proc_root[0])
		return;
	if (keep && *keep)
		fprintf(stderr, "TM_KEEP: kept %s\n", proc_root);
	else
		proc_rmtree(proc_root);
	proc_root[0] = '\0';
}

static int proc_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void proc_rmtree(const char *path)
{
	nftw(path, proc_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int proc_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof(a);
	int rc = 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) < 0)
		rc = -errno;
	close(fd);
	return rc < 0 ? rc : ntohs(a.sin_port);
}
