/* HTTP for the benchmark: a private nginx on a loopback port serving one
 * small static file, and wrk with its report parsed. */
#include "config.h"
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE_SIZE_BYTES 612  /* about nginx's own welcome page */
#define WRK_GRACE_S 15       /* beyond its duration before wrk is killed */

/* The directories nginx makes for its temporary files; all set inside
 * our directory so nothing outside it is touched. */
static const char *const temp_dirs[] = { "body", "proxy", "fastcgi", "uwsgi", "scgi" };

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -errno;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -errno;
}

/* dir/name into out; false when it does not fit. */
static bool path_in(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);
	return n > 0 && (size_t)n < cap;
}

int bench_nginx_start(struct bench_nginx *n, const char *nginx_path)
{
	char conf[PATH_MAX], www[PATH_MAX], page[PATH_MAX], log[PATH_MAX];
	char text[8192], body[PAGE_SIZE_BYTES + 1];

	memset(n, 0, sizeof *n);
	if (access(nginx_path, X_OK) < 0)
		return -ENOENT;
	snprintf(n->dir, sizeof n->dir, "%s/nginx", bench_tmp_dir());
	if (!path_in(www, sizeof www, n->dir, "www") || !path_in(page, sizeof page, www, "index.html") ||
	    !path_in(conf, sizeof conf, n->dir, "nginx.conf") || !path_in(log, sizeof log, n->dir, "nginx.log"))
		return -ENAMETOOLONG;
	if (mkdir(n->dir, 0755) < 0 || mkdir(www, 0755) < 0)
		return -errno;
	memset(body, 'x', sizeof body - 1);
	body[sizeof body - 2] = '\n';
	body[sizeof body - 1] = '\0';
	int rc = write_file(page, body);
	if (rc < 0)
		return rc;

	n->port = bench_free_port();
	if (n->port < 0)
		return n->port;
	/* One process (master_process off) so it dies with us; keep-alive
	 * without a request cap, as a long benchmark connection needs. */
	int len = snprintf(text, sizeof text,
		 "daemon off;\n"
		 "master_process off;\n"
		 "worker_processes 1;\n"
		 "pid %s/nginx.pid;\n"
		 "error_log %s warn;\n"
		 "events { worker_connections 1024; }\n"
		 "http {\n"
		 "  access_log off;\n"
		 "  keepalive_requests 100000000;\n"
		 "  keepalive_timeout 60s;\n"
		 "  client_body_temp_path %s/body;\n"
		 "  proxy_temp_path %s/proxy;\n"
		 "  fastcgi_temp_path %s/fastcgi;\n"
		 "  uwsgi_temp_path %s/uwsgi;\n"
		 "  scgi_temp_path %s/scgi;\n"
		 "  server {\n"
		 "    listen 127.0.0.1:%d;\n"
		 "    root %s;\n"
		 "    location / { }\n"
		 "  }\n"
		 "}\n",
		 n->dir, log, n->dir, n->dir, n->dir, n->dir, n->dir, n->port, www);
	if (len < 0 || (size_t)len >= sizeof text)
		return -ENAMETOOLONG;
	rc = write_file(conf, text);
	if (rc < 0)
		return rc;

	const char *argv[] = { nginx_path, "-p", n->dir, "-c", conf, "-e", log, NULL };
	n->pid = bench_spawn(argv, log, NULL);
	if (n->pid < 0)
		return n->pid;
	rc = bench_wait_listening(n->port, n->pid, BENCH_START_TIMEOUT_MS);
	if (rc < 0) {
		bench_reap(n->pid, SIGKILL, 1000);
		n->pid = 0;
		FILE *f = fopen(log, "r");
		char line[512];
		while (f && fgets(line, sizeof line, f))
			fprintf(stderr, "  nginx: %s", line);
		if (f)
			fclose(f);
	}
	return rc;
}

void bench_nginx_stop(struct bench_nginx *n)
{
	char p[PATH_MAX], www[PATH_MAX];
	if (n->pid > 0)
		bench_reap(n->pid, SIGQUIT, 5000);
	n->pid = 0;
	if (n->dir[0] == '\0')
		return;
	if (path_in(www, sizeof www, n->dir, "www") && path_in(p, sizeof p, www, "index.html")) {
		unlink(p);
		rmdir(www);
	}
	static const char *const files[] = { "nginx.conf", "nginx.log", "nginx.pid" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		if (path_in(p, sizeof p, n->dir, files[i]))
			unlink(p);
	}
	for (size_t i = 0; i < sizeof temp_dirs / sizeof temp_dirs[0]; i++) {
		if (path_in(p, sizeof p, n->dir, temp_dirs[i]))
			rmdir(p);
	}
	rmdir(n->dir);
	n->dir[0] = '\0';
}

/* "123.45us", "1.20ms", "2.00s", "1.00m" -> microseconds; -1 if unknown. */
static double wrk_time_us(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s)
		return -1;
	if (strncmp(end, "us", 2) == 0)
		return v;
	if (strncmp(end, "ms", 2) == 0)
		return v * 1e3;
	if (end[0] == 's')
		return v * 1e6;
	if (end[0] == 'm')
		return v * 60e6;
	if (end[0] == 'h')
		return v * 3600e6;
	return -1;
}

/* Parses wrk 4's report (with --latency). */
static void wrk_parse(const char *out, struct bench_result *res)
{
	const char *p;
	char a[32], b[32], c[32];
	double rate = -1;
	res->p50_us = res->p99_us = res->max_us = -1;

	/* "    Latency   101.34us   52.12us   3.01ms   90.00%" : avg stdev max */
	if ((p = strstr(out, "Latency ")) && sscanf(p, "Latency %31s %31s %31s", a, b, c) == 3)
		res->max_us = wrk_time_us(c);
	if ((p = strstr(out, " 50% ")) && sscanf(p, " 50%% %31s", a) == 1)
		res->p50_us = wrk_time_us(a);
	if ((p = strstr(out, " 99% ")) && sscanf(p, " 99%% %31s", a) == 1)
		res->p99_us = wrk_time_us(a);
	if ((p = strstr(out, "Requests/sec:")))
		rate = strtod(p + strlen("Requests/sec:"), NULL);
	long req = 0;
	if ((p = strstr(out, " requests in ")))
		for (const char *q = p; q > out && q[-1] >= '0' && q[-1] <= '9'; q--)
			req = strtol(q - 1, NULL, 10);
	/* "  Socket errors: connect 0, read 0, write 0, timeout 0" */
	long e1 = 0, e2 = 0, e3 = 0, e4 = 0;
	if ((p = strstr(out, "Socket errors:")))
		sscanf(p, "Socket errors: connect %ld, read %ld, write %ld, timeout %ld", &e1, &e2, &e3, &e4);
	long non2xx = 0;
	if ((p = strstr(out, "Non-2xx or 3xx responses:")))
		non2xx = strtol(p + strlen("Non-2xx or 3xx responses:"), NULL, 10);
	res->errors = e1 + e2 + e3 + e4 + non2xx;
	res->requests = req;
	res->rate = rate;
	res->valid = rate >= 0 && res->p50_us >= 0;
	if (!res->valid)
		snprintf(res->note, sizeof res->note, "could not parse the wrk report");
	else if (res->errors)
		snprintf(res->note, sizeof res->note,
			 "wrk: socket errors connect %ld read %ld write %ld timeout %ld, non-2xx %ld", e1, e2,
			 e3, e4, non2xx);
}

/* Reaps wrk (killed when it overran) and parses its report into res. */
static void wrk_finish(pid_t pid, bool overran, const char *out, struct bench_result *res)
{
	int st = bench_reap(pid, overran ? SIGKILL : 0, 5000);
	double busy = res->host_busy;
	wrk_parse(out, res);
	res->host_busy = busy;
	if (st != 0 && res->note[0] == '\0')
		snprintf(res->note, sizeof res->note, "wrk exited with status %d", st);
	if (st != 0)
		res->valid = false;
}

/* CPU time (us) of wrk and the server together, or -1. */
static int64_t load_cpu_us(pid_t wrk, pid_t server)
{
	int64_t a = bench_proc_cpu_us(wrk), b = server > 0 ? bench_proc_cpu_us(server) : 0;
	return a < 0 || b < 0 ? -1 : a + b;
}

int bench_wrk_run(const char *wrk_path, const char *url, int threads, int conns, int dur_s,
		  pid_t daemon, pid_t server, struct bench_result *res)
{
	char t[16], c[16], d[16];
	memset(res, 0, sizeof *res);
	res->rss_kib = res->threads = -1;
	res->cpu_us_per_req = -1;
	res->load_cpu_us_per_req = -1;
	res->host_busy = -1;
	snprintf(t, sizeof t, "-t%d", threads);
	snprintf(c, sizeof c, "-c%d", conns);
	snprintf(d, sizeof d, "-d%ds", dur_s);
	/* wrk speaks HTTP/1.1 and keeps its connections alive by default. */
	const char *argv[] = { wrk_path, t, c, d, "--latency", "--timeout", "5s", url, NULL };
	int fd = -1;
	pid_t pid = bench_spawn(argv, NULL, &fd);
	if (pid < 0) {
		snprintf(res->note, sizeof res->note, "cannot run wrk: %s", strerror((int)-pid));
		return (int)pid;
	}
	int64_t t0 = bench_now_ns();
	int64_t deadline = t0 + (int64_t)(dur_s + WRK_GRACE_S) * 1000000000;
	int64_t cpu0 = daemon > 0 ? bench_proc_cpu_us(daemon) : -1, cpu1 = -1;
	int64_t load0 = load_cpu_us(pid, server), load1 = -1;
	int64_t host0[2] = { 0, 0 }, host1[2] = { 0, 0 };
	bench_host_cpu(&host0[0], &host0[1]);
	const int64_t sample_at = t0 + (int64_t)dur_s * 1000000000 * 9 / 10;
	int64_t sampled = 0;
	char out[8192];
	size_t len = 0;
	for (;;) {
		int64_t now = bench_now_ns();
		if (now >= deadline)
			break;
		/* Sample the daemon near the end of the run, while loaded. */
		if (sampled == 0 && now >= sample_at) {
			bench_host_cpu(&host1[0], &host1[1]);
			res->host_busy = bench_host_busy(host0, host1);
			if (daemon > 0) {
				cpu1 = bench_proc_cpu_us(daemon);
				bench_proc_status(daemon, &res->rss_kib, &res->threads);
			}
			load1 = load_cpu_us(pid, server);
			sampled = now;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int wait = (int)((deadline - now) / 1000000);
		if (sampled == 0)
			wait = (int)((sample_at - now) / 1000000) + 1;
		int rc = poll(&pfd, 1, wait < 1 ? 1 : wait);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			break;
		if (rc == 0)
			continue;
		ssize_t r = read(fd, out + len, sizeof out - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == sizeof out - 1)
			break;
	}
	out[len] = '\0';
	close(fd);
	wrk_finish(pid, bench_now_ns() >= deadline, out, res);
	/* wrk's rate over its whole run stands for the sampled part */
	double reqs = res->rate * (double)(sampled - t0) / 1e9;
	res->cpu_us_per_req = cpu0 >= 0 && cpu1 >= 0 && reqs > 0 ? (double)(cpu1 - cpu0) / reqs : -1;
	res->load_cpu_us_per_req = load0 >= 0 && load1 >= 0 && reqs > 0 ? (double)(load1 - load0) / reqs : -1;
	if (getenv("BENCH_SHOW_WRK"))
		fputs(out, stderr);
	return res->valid ? 0 : -EPROTO;
}
