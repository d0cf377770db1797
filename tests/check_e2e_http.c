/* End to end, HTTP/1.1: curl, wrk and client threads of our own through the
 * daemon to nginx (started here, in a temporary directory), and the framing
 * corner cases (pipelining, Connection: close, 400/413/501/503) against the
 * simulated target. Without curl, wrk or nginx the simulator cases still
 * run, then the program exits 77 naming what is missing. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "real/proc.h"
#include "testing.h"

#ifndef TESTS_SRCDIR
#error "TESTS_SRCDIR must be the tests/ directory of the source tree (tests/protocols.mk)"
#endif

#define NPATHS 20                  /* /p/0.txt ... /p/19.txt, one per client thread */
#define BIG_SIZE (5 * 1024 * 1024) /* /big.bin */
#define RESP_CAP (256 * 1024)
#define RUN_MS 60000               /* bound on any outside program */

/* Set by main: where the outside programs are (empty when missing). */
static char curl_bin[PATH_MAX], wrk_bin[PATH_MAX], nginx_bin[PATH_MAX];

/* ---- content: distinct per path, so a misdelivered answer shows -------- */

/* The body of /p/N.txt. Returns its length. */
static size_t path_body(int n, char *out, size_t cap)
{
	size_t len = (size_t)snprintf(out, cap, "path %d\n", n);
	int lines = 3 + (n * 13) % 40;
	for (int i = 0; i < lines && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "line %d of /p/%d.txt: %08x\n", i, n,
					(unsigned)(n * 2654435761u + (unsigned)i));
	return len < cap ? len : cap - 1;
}

/* ---- nginx in a temporary directory, the daemon in front -------------- */

struct web {
	char dir[PATH_MAX];
	int nginx_port;
	pid_t nginx;
	struct tm_daemon *d;
	int port;               /* the daemon's */
	char url[64];           /* http://127.0.0.1:PORT */
};

static void mkdir_in(const struct web *w, const char *rel)
{
	char p[PATH_MAX];
	tm_path_in(w->dir, rel, p, sizeof p);
	ck_assert_msg(mkdir(p, 0755) == 0, "mkdir %s: %s", p, strerror(errno));
}

static void write_in(const struct web *w, const char *rel, const void *data, size_t n)
{
	char p[PATH_MAX];
	tm_path_in(w->dir, rel, p, sizeof p);
	int rc = proc_write_file(p, data, n);
	ck_assert_msg(rc == 0, "write %s: %s", p, strerror(-rc));
}

/* Replaces every @NAME@ of the template with its value, into out. */
static char *substitute(const char *tmpl, const char *const pairs[][2], size_t npairs)
{
	size_t cap = strlen(tmpl) * 2 + 4096, len = 0;
	char *out = malloc(cap);
	ck_assert_ptr_nonnull(out);
	for (const char *p = tmpl; *p;) {
		size_t i;
		for (i = 0; i < npairs; i++) {
			size_t k = strlen(pairs[i][0]);
			if (strncmp(p, pairs[i][0], k) == 0)
				break;
		}
		const char *add = i < npairs ? pairs[i][1] : p;
		size_t alen = i < npairs ? strlen(pairs[i][1]) : 1;
		ck_assert(len + alen + 1 < cap);
		memcpy(out + len, add, alen);
		len += alen;
		p += i < npairs ? strlen(pairs[i][0]) : 1;
	}
	out[len] = '\0';
	return out;
}

/* GETs path directly from nginx (a connection of its own); on a 200 the
 * body goes to body, cut at cap. */
static bool direct_get(int port, const char *path, char *body, size_t cap)
{
	int fd = tm_connect(port);
	if (fd < 0)
		return false;
	char req[256], *resp = malloc(RESP_CAP);
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
	bool ok = resp && tm_write_all(fd, req, strlen(req)) == 0 &&
		  tm_http_recv(fd, resp, RESP_CAP, false, 5000) > 0 && tm_http_status(resp) == 200;
	if (ok)
		snprintf(body, cap, "%s", tm_http_body(resp));
	free(resp);
	close(fd);
	return ok;
}

/* Starts nginx on a free port (another one when the bind fails) and
 * returns once it serves this test's own marker file. */
static void nginx_start(struct web *w, int keepalive_requests)
{
	char conf_in[PATH_MAX], conf[PATH_MAX], out[PATH_MAX], err[PATH_MAX];
	snprintf(conf_in, sizeof conf_in, "%s/real/nginx.conf.in", TESTS_SRCDIR);
	char *tmpl = proc_slurp(conf_in, NULL);
	ck_assert_msg(tmpl != NULL, "cannot read %s", conf_in);
	tm_path_in(w->dir, "nginx.conf", conf, sizeof conf);
	tm_path_in(w->dir, "nginx.out", out, sizeof out);
	tm_path_in(w->dir, "error.log", err, sizeof err);

	for (int attempt = 0; attempt < 5; attempt++) {
		int port = proc_free_port();
		ck_assert_int_gt(port, 0);
		char port_s[16], ka_s[16];
		snprintf(port_s, sizeof port_s, "%d", port);
		snprintf(ka_s, sizeof ka_s, "%d", keepalive_requests);
		const char *const pairs[][2] = { { "@DIR@", w->dir }, { "@PORT@", port_s },
						 { "@KEEPALIVE_REQUESTS@", ka_s } };
		char *text = substitute(tmpl, pairs, 3);
		ck_assert_int_eq(proc_write_file(conf, text, strlen(text)), 0);
		free(text);

		const char *argv[] = { nginx_bin, "-p", w->dir, "-c", conf, "-e", err, NULL };
		w->nginx = proc_start(argv, out);
		ck_assert_int_gt(w->nginx, 0);
		/* ready when it serves our marker; gone when the bind failed */
		int64_t deadline = tm_now_ms() + 10000;
		int rc = -ETIMEDOUT;
		while (tm_now_ms() < deadline) {
			char body[PATH_MAX + 16];
			if (direct_get(port, "/marker.txt", body, sizeof body) && strstr(body, w->dir)) {
				w->nginx_port = port;
				free(tmpl);
				return;
			}
			rc = proc_wait(w->nginx, 0);
			if (rc != -ETIMEDOUT)
				break;
			tm_sleep_ms(5);
		}
		if (rc == -ETIMEDOUT) {
			proc_stop(w->nginx, SIGKILL, 2000);
			ck_abort_msg("nginx did not serve on port %d within 10 s", port);
		}
		char *log = proc_slurp(err, NULL);
		bool busy = log && strstr(log, "Address already in use");
		fprintf(stderr, "nginx exited with %d:\n%s\n", rc, log ? log : "(no error.log)");
		free(log);
		ck_assert_msg(busy, "nginx failed to start (exit %d)", rc);
		/* someone took the port meanwhile: try another */
	}
	ck_abort_msg("nginx: no free port after 5 attempts");
}

/* A temporary directory with the content, nginx, and the daemon with
 * extra options in front of it. */
static void web_start(struct web *w, int keepalive_requests, const char *const extra[])
{
	memset(w, 0, sizeof *w);
	ck_assert_int_eq(proc_tmpdir("http", w->dir, sizeof w->dir), 0);
	mkdir_in(w, "www");
	mkdir_in(w, "www/p");
	mkdir_in(w, "www/dav");
	mkdir_in(w, "tmp");
	write_in(w, "www/marker.txt", w->dir, strlen(w->dir));
	for (int i = 0; i < NPATHS; i++) {
		char rel[64], body[4096];
		snprintf(rel, sizeof rel, "www/p/%d.txt", i);
		write_in(w, rel, body, path_body(i, body, sizeof body));
	}
	unsigned char *big = malloc(BIG_SIZE);
	ck_assert_ptr_nonnull(big);
	tm_fill_bytes(big, BIG_SIZE, 5);
	write_in(w, "www/big.bin", big, BIG_SIZE);
	free(big);
	nginx_start(w, keepalive_requests);

	const char *args[] = { "--max-connections", "4", "--queue-size", "128", "--max-frame", "8M", "--timeout",
			       "10", NULL };
	w->d = tm_daemon_start_target("http", w->nginx_port, args, extra);
	ck_assert_ptr_nonnull(w->d);
	w->port = tm_daemon_port(w->d);
	snprintf(w->url, sizeof w->url, "http://127.0.0.1:%d", w->port);
}

static void web_stop(struct web *w)
{
	ck_assert_int_eq(tm_daemon_stop(w->d, SIGTERM, 0), 0);
	int rc = proc_stop(w->nginx, SIGTERM, 10000);
	ck_assert_msg(rc == 0, "nginx exit status %d", rc);
	proc_rmtree(w->dir);
}

/* curl with args (NULL-terminated), output into out; asserts exit 0. */
static void curl(char *out, size_t cap, const char *const args[])
{
	int rc = proc_run_args(curl_bin, "-sS", args, out, cap, RUN_MS);
	ck_assert_msg(rc == 0, "curl exited with %d: %s", rc, out);
}

/* Whether the file holds exactly n bytes equal to data. */
/* n deterministic bytes (seeded) in data and in the site's upload.bin,
 * for curl: its path in up, and "@path" in at. */
static void make_upload(const struct web *w, unsigned char *data, size_t n, unsigned seed, char up[PATH_MAX],
			char at[PATH_MAX + 1])
{
	tm_fill_bytes(data, n, seed);
	tm_path_in(w->dir, "upload.bin", up, PATH_MAX);
	ck_assert_int_eq(proc_write_file(up, data, n), 0);
	snprintf(at, PATH_MAX + 1, "@%s", up);
}

static bool file_is(const char *path, const void *data, size_t n)
{
	size_t len;
	char *got = proc_slurp(path, &len);
	bool same = got && len == n && memcmp(got, data, n) == 0;
	if (got && !same)
		fprintf(stderr, "%s: %zu bytes, expected %zu%s\n", path, len, n,
			len == n ? " (content differs)" : "");
	free(got);
	return same;
}

/* file_is for the file rel of the site. */
static bool file_in(const struct web *w, const char *rel, const void *data, size_t n)
{
	char p[PATH_MAX];
	tm_path_in(w->dir, rel, p, sizeof p);
	return file_is(p, data, n);
}

/* nginx's stub_status, fetched directly: accepted connections and requests
 * so far; returns the connections open now (this probe's included). */
static long nginx_status(const struct web *w, long *accepts, long *requests)
{
	char body[1024];
	long active, handled;
	ck_assert(direct_get(w->nginx_port, "/nginx-status", body, sizeof body));
	ck_assert_int_eq(sscanf(body, "Active connections: %ld", &active), 1);
	const char *p = strstr(body, "requests\n");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p + 9, "%ld %ld %ld", accepts, &handled, requests), 3);
	return active;
}

/* Waits until nginx has accepted the daemon's four connections (their
 * connect() returns before nginx calls accept()). */
static void nginx_wait_pool(const struct web *w, long *accepts, long *requests)
{
	long active = 0;
	int64_t deadline = tm_now_ms() + 10000;
	while ((active = nginx_status(w, accepts, requests)) < 5 && tm_now_ms() < deadline)
		tm_sleep_ms(5);
	ck_assert_int_eq(active, 5);
}

/* ---- curl ------------------------------------------------------------- */

/* GET of two paths in one curl: both bodies right, and the second reuses
 * the first's connection (keep-alive through the daemon). */
START_TEST(test_curl_get_keepalive)
{
	struct web w;
	web_start(&w, 1000000, NULL);
	char u1[128], u2[128], f1[PATH_MAX], f2[PATH_MAX], out[4096];
	snprintf(u1, sizeof u1, "%s/p/1.txt", w.url);
	snprintf(u2, sizeof u2, "%s/p/2.txt", w.url);
	tm_path_in(w.dir, "get1", f1, sizeof f1);
	tm_path_in(w.dir, "get2", f2, sizeof f2);
	const char *args[] = { "-o", f1, "-o", f2, "-w", "%{http_code} %{num_connects}\\n", u1, u2, NULL };
	curl(out, sizeof out, args);
	ck_assert_str_eq(out, "200 1\n200 0\n");
	char body[4096];
	ck_assert(file_is(f1, body, path_body(1, body, sizeof body)));
	ck_assert(file_is(f2, body, path_body(2, body, sizeof body)));
	/* the daemon saw one client */
	ck_assert_int_gt(tm_daemon_log_count(w.d, 0, "#1 127.0.0.1:"), 0);
	ck_assert_int_eq(tm_daemon_log_count(w.d, 0, "#2 127.0.0.1:"), 0);
	web_stop(&w);
}
END_TEST

/* HEAD has no body, and the connection goes on: curl's next request on it
 * (--next keeps the connection) is answered whole. Then the same by hand,
 * pipelined: HEAD and GET in one write. */
START_TEST(test_head)
{
	struct web w;
	web_start(&w, 1000000, NULL);
	char u3[128], u4[128], f4[PATH_MAX], out[4096], body[4096];
	snprintf(u3, sizeof u3, "%s/p/3.txt", w.url);
	snprintf(u4, sizeof u4, "%s/p/4.txt", w.url);
	tm_path_in(w.dir, "get4", f4, sizeof f4);
	const char *args[] = { "-I", u3, "--next", "-sS", "-o", f4, "-w", "%{http_code} %{num_connects}\\n",
			       u4, NULL };
	curl(out, sizeof out, args);
	char cl[64];
	snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", path_body(3, body, sizeof body));
	ck_assert_msg(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, cl));
	ck_assert_ptr_nonnull(strstr(out, "\r\n\r\n200 0\n")); /* no body, then the GET on the same connection */
	ck_assert(file_is(f4, body, path_body(4, body, sizeof body)));

	int fd = tm_connect(w.port);
	ck_assert_int_ge(fd, 0);
	const char req[] = "HEAD /p/5.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /p/5.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(tm_write_all(fd, req, sizeof req - 1), 0);
	static char resp[RESP_CAP];
	ssize_t n = tm_http_recv(fd, resp, sizeof resp, true, 5000);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(tm_http_status(resp), 200);
	ck_assert_str_eq(tm_http_body(resp), "");
	n = tm_http_recv(fd, resp, sizeof resp, false, 5000);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(tm_http_status(resp), 200);
	size_t blen = path_body(5, body, sizeof body);
	const char *b = tm_http_body(resp);
	ck_assert_int_eq((size_t)n - (size_t)(b - resp), blen);
	ck_assert(memcmp(b, body, blen) == 0);
	close(fd);
	web_stop(&w);
}
END_TEST

/* POST with a body: nginx's `return` reads and discards it and answers
 * "ok"; the connection goes on (the next GET reuses it). The same bytes
 * PUT to the DAV location arrive unchanged (compared on disk). */
START_TEST(test_post)
{
	struct web w;
	web_start(&w, 1000000, NULL);
	enum { N = 300 * 1000 };
	static unsigned char data[N];
	char up[PATH_MAX], at[PATH_MAX + 1], f6[PATH_MAX], out[4096], body[4096];
	make_upload(&w, data, N, 11, up, at);
	tm_path_in(w.dir, "get6", f6, sizeof f6);
	char upost[128], u6[128], uput[128];
	snprintf(upost, sizeof upost, "%s/post", w.url);
	snprintf(u6, sizeof u6, "%s/p/6.txt", w.url);
	snprintf(uput, sizeof uput, "%s/dav/put.bin", w.url);

	const char *args[] = { "-H", "Expect:", "--data-binary", at, "-w", "\\n%{http_code} %{num_connects}\\n",
			       upost, "--next", "-sS", "-o", f6, "-w", "%{http_code} %{num_connects}\\n",
			       u6, NULL };
	curl(out, sizeof out, args);
	ck_assert_str_eq(out, "ok\n\n200 1\n200 0\n");
	ck_assert(file_is(f6, body, path_body(6, body, sizeof body)));

	const char *put[] = { "-H", "Expect:", "-T", up, "-w", "%{http_code}", uput, NULL };
	curl(out, sizeof out, put);
	ck_assert_str_eq(out, "201");
	ck_assert(file_in(&w, "www/dav/put.bin", data, N));
	web_stop(&w);
}
END_TEST

/* Chunked uploads: a chunked POST, and a chunked PUT compared on disk and
 * fetched back through the daemon; one with curl's "Expect: 100-continue",
 * so nginx's interim 100 travels with its final answer. */
START_TEST(test_chunked_upload)
{
	struct web w;
	web_start(&w, 1000000, NULL);
	enum { N = 200 * 1000 + 17 };
	static unsigned char data[N];
	char up[PATH_MAX], at[PATH_MAX + 1], back[PATH_MAX], out[4096];
	make_upload(&w, data, N, 23, up, at);
	char upost[128], u1[128], u2[128];
	snprintf(upost, sizeof upost, "%s/post", w.url);
	snprintf(u1, sizeof u1, "%s/dav/c1.bin", w.url);
	snprintf(u2, sizeof u2, "%s/dav/c2.bin", w.url);

	const char *post[] = { "-H", "Transfer-Encoding: chunked", "-H", "Expect:", "--data-binary", at,
			       "-w", "%{http_code}", upost, NULL };
	curl(out, sizeof out, post);
	ck_assert_str_eq(out, "ok\n200");

	const char *put1[] = { "-H", "Transfer-Encoding: chunked", "-H", "Expect:", "-T", up, "-w",
			       "%{http_code}", u1, NULL };
	curl(out, sizeof out, put1);
	ck_assert_str_eq(out, "201");
	ck_assert(file_in(&w, "www/dav/c1.bin", data, N));

	int64_t t0 = tm_now_ms();
	const char *put2[] = { "-H", "Transfer-Encoding: chunked", "-T", up, "-w", "%{http_code}", u2, NULL };
	curl(out, sizeof out, put2);
	ck_assert_str_eq(out, "201");
	fprintf(stderr, "chunked PUT with Expect: 100-continue took %lld ms\n",
		(long long)(tm_now_ms() - t0));
	ck_assert(file_in(&w, "www/dav/c2.bin", data, N));

	tm_path_in(w.dir, "back.bin", back, sizeof back);
	const char *get[] = { "-o", back, "-w", "%{http_code}", u2, NULL };
	curl(out, sizeof out, get);
	ck_assert_str_eq(out, "200");
	ck_assert(file_is(back, data, N));
	web_stop(&w);
}
END_TEST

/* A 5 MiB download arrives whole (--max-frame 8M). Through a second daemon
 * with the default --max-frame (1 MiB) it arrives whole too (streamed),
 * and that daemon goes on serving. */
START_TEST(test_large_download)
{
	struct web w;
	web_start(&w, 1000000, NULL);
	static unsigned char big[BIG_SIZE];
	tm_fill_bytes(big, BIG_SIZE, 5);
	char f[PATH_MAX], url[128], out[4096];
	tm_path_in(w.dir, "big.out", f, sizeof f);
	snprintf(url, sizeof url, "%s/big.bin", w.url);
	int64_t t0 = tm_now_ms();
	const char *args[] = { "-o", f, "-w", "%{http_code} %{size_download}", url, NULL };
	curl(out, sizeof out, args);
	fprintf(stderr, "5 MiB through the daemon: %lld ms\n", (long long)(tm_now_ms() - t0));
	ck_assert_str_eq(out, "200 5242880");
	ck_assert(file_is(f, big, BIG_SIZE));

	struct tm_daemon *d2 = tm_daemon_start_target("http", w.nginx_port, NULL, NULL);
	ck_assert_ptr_nonnull(d2);
	char url2[128], url3[128], f2[PATH_MAX], f3[PATH_MAX], body[4096];
	snprintf(url2, sizeof url2, "http://127.0.0.1:%d/big.bin", tm_daemon_port(d2));
	snprintf(url3, sizeof url3, "http://127.0.0.1:%d/p/7.txt", tm_daemon_port(d2));
	tm_path_in(w.dir, "get7", f3, sizeof f3);
	tm_path_in(w.dir, "big2.out", f2, sizeof f2);
	const char *args2[] = { "-o", f2, "-w", "%{http_code}\\n", url2, "--next", "-sS", "-o", f3,
				"-w", "%{http_code}\\n", url3, NULL };
	curl(out, sizeof out, args2);
	ck_assert_str_eq(out, "200\n200\n");
	ck_assert(file_is(f2, big, BIG_SIZE));
	ck_assert(file_is(f3, body, path_body(7, body, sizeof body)));
	ck_assert_int_eq(tm_daemon_stop(d2, SIGTERM, 0), 0);
	web_stop(&w);
}
END_TEST

/* ---- load: wrk plus client threads that check every body --------------- */

/* One GET of the client's own path (/p/INDEX.txt), the body checked. */
static enum tm_next get_own(struct tm_client *c, int round)
{
	(void)round;
	char expect[4096], req[128];
	size_t elen = path_body(c->index, expect, sizeof expect);
	int rlen = snprintf(req, sizeof req, "GET /p/%d.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
			    c->index);
	char *resp = c->own ? c->own : (c->own = malloc(RESP_CAP));
	if (!resp)
		return TM_END;
	ssize_t n = -EIO;
	if (tm_write_all(c->fd, req, (size_t)rlen) == 0)
		n = tm_http_recv(c->fd, resp, RESP_CAP, false, 10000);
	if (n <= 0 || tm_http_status(resp) != 200) {
		fprintf(stderr, "getter %d: %s\n", c->index, n <= 0 ? strerror((int)-n) : resp);
		return tm_client_note(c, TM_ERROR);
	}
	const char *b = tm_http_body(resp);
	if ((size_t)n - (size_t)(b - resp) != elen || memcmp(b, expect, elen) != 0) {
		fprintf(stderr, "getter %d: wrong body: %.60s\n", c->index, b);
		return tm_client_note(c, TM_MISMATCH);
	}
	enum tm_next next = tm_client_note(c, TM_OK);
	/* the answer ended the connection (RFC 9112 §9.6): a new one */
	const char *cc = strcasestr(resp, "\r\nConnection: close\r\n");
	return cc != NULL && cc < b ? TM_RECONNECT : next;
}

/* Once nginx holds the daemon's connections (nginx_wait_pool: its
 * counters then in acc0 and req0), NPATHS keep-alive clients, each
 * fetching its own path: at least 10 times, then until getters_join. */
static struct tm_swarm *getters_start(const struct web *web, long *acc0, long *req0)
{
	nginx_wait_pool(web, acc0, req0);
	struct tm_swarm *w = tm_swarm_start(web->port, NPATHS, 10, 1000000, get_own, NULL);
	ck_assert_ptr_nonnull(w);
	return w;
}

static void getters_join(struct tm_swarm *w, long *ok, long *mismatches, long *errors)
{
	long t[TM_OUTCOMES];
	tm_swarm_join(w, t);
	tm_swarm_free(w);
	*ok = t[TM_OK];
	*mismatches = t[TM_MISMATCH];
	*errors = t[TM_ERROR];
}

/* wrk -c 50 -t 2 -d 3s with zero errors, while 20 keep-alive clients of
 * ours fetch their own paths and check every body; nginx sees no new
 * connection: everything went over the daemon's four. */
START_TEST(test_wrk_and_checked_clients)
{
	struct web w;
	web_start(&w, 1000000, NULL);
	long acc0, req0, acc1, req1;

	struct tm_swarm *gs = getters_start(&w, &acc0, &req0);
	char url[128];
	snprintf(url, sizeof url, "%s/p/0.txt", w.url);
	const char *argv[] = { wrk_bin, "-c", "50", "-t", "2", "-d", "3s", "--timeout", "10s", url, NULL };
	static char out[16384];
	int rc = proc_run(argv, out, sizeof out, RUN_MS);
	long ok, mismatches, errors;
	getters_join(gs, &ok, &mismatches, &errors);
	long active = nginx_status(&w, &acc1, &req1);

	fprintf(stderr, "wrk:\n%s", out);
	fprintf(stderr, "checked clients: ok=%ld mismatches=%ld errors=%ld; nginx: %ld requests, %ld new "
		"connections (1 of them the status probe)\n", ok, mismatches, errors, req1 - req0, acc1 - acc0);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(strstr(out, "Non-2xx") == NULL, "wrk saw non-2xx answers");
	ck_assert_msg(strstr(out, "Socket errors") == NULL, "wrk saw socket errors");
	const char *p = strstr(out, " requests in ");
	ck_assert_ptr_nonnull(p);
	while (p > out && p[-1] != '\n')
		p--;
	long wrk_requests = strtol(p, NULL, 10);
	ck_assert_int_gt(wrk_requests, 100);
	ck_assert_int_eq(mismatches, 0);
	ck_assert_int_eq(errors, 0);
	ck_assert_int_ge(ok, NPATHS * 10);
	/* every request reached nginx over the daemon's existing connections */
	ck_assert_int_ge(req1 - req0, wrk_requests + ok);
	ck_assert_int_eq(acc1 - acc0, 1);
	ck_assert_int_eq(active, 5);
	web_stop(&w);
}
END_TEST

/* nginx closes each connection after 25 requests ("Connection: close" on
 * the last answer): the daemon replaces it, and the clients notice
 * nothing: every body right, no error. */
START_TEST(test_target_closes_after_keepalive_requests)
{
	struct web w;
	web_start(&w, 25, NULL);
	long acc0, req0, acc1, req1;
	struct tm_swarm *gs = getters_start(&w, &acc0, &req0);
	/* run until the daemon has replaced plenty of connections */
	TM_WAIT_FOR(tm_daemon_log_count(w.d, 0, ": connected to ") >= 4 + 40, 30000);
	long ok, mismatches, errors;
	getters_join(gs, &ok, &mismatches, &errors);
	nginx_status(&w, &acc1, &req1);
	int upstream = tm_daemon_log_count(w.d, 0, ": connected to ");
	fprintf(stderr, "keepalive_requests 25: ok=%ld mismatches=%ld errors=%ld; nginx: %ld requests, "
		"%ld connections; the daemon connected %d times\n", ok, mismatches, errors, req1 - req0,
		acc1 - acc0 - 1, upstream);
	ck_assert_int_eq(mismatches, 0);
	ck_assert_int_eq(errors, 0);
	ck_assert_int_ge(ok, NPATHS * 10);
	ck_assert_int_ge(upstream, 4 + 40);
	/* at most 25 requests on any connection: more connections than that */
	ck_assert_int_ge((acc1 - acc0 - 1 + 4) * 25, req1 - req0);
	web_stop(&w);
}
END_TEST

/* ---- against the simulated target -------------------------------------- */

/* The HTTP simulator (chunked: its answers are) and the daemon in front
 * of it with extra. */
static void http_pair(struct tm_pair *p, int chunked, const char *const extra[])
{
	struct sim_opts o = { .proto = SIM_HTTP, .max_conns = 1, .http_chunked = chunked };
	ck_assert_int_eq(tm_pair_start(p, &o, extra), 0);
}

/* Reads one response and checks its status and, when body is not NULL,
 * its body (as sent: the simulator's Content-Length bodies). */
static void expect_response(int fd, bool head, int status, const char *body)
{
	static char resp[RESP_CAP];
	ssize_t n = tm_http_recv(fd, resp, sizeof resp, head, 5000);
	ck_assert_msg(n > 0, "no response: %s", strerror((int)-n));
	ck_assert_msg(tm_http_status(resp) == status, "expected %d, got: %s", status, resp);
	if (body)
		ck_assert_str_eq(tm_http_body(resp), body);
}

/* Requests pipelined in one write, and split over many: answered in
 * order, each with its own body (the simulator answers "METHOD TARGET\n"
 * and the request body). */
START_TEST(test_sim_pipelining)
{
	struct tm_pair p;
	http_pair(&p, 0, NULL);
	int fd = tm_pair_client(&p);
	const char two[] = "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(tm_write_all(fd, two, sizeof two - 1), 0);
	expect_response(fd, false, 200, "GET /one\n");
	expect_response(fd, false, 200, "GET /two\n");

	const char mixed[] = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
			     "PUT /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
			     "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
			     "HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n"
			     "GET /d HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(tm_write_split(fd, mixed, sizeof mixed - 1, 7), 0);
	expect_response(fd, false, 200, "POST /a\nhello");
	expect_response(fd, false, 200, "PUT /b\nabcde");
	expect_response(fd, true, 200, "");
	expect_response(fd, false, 200, "GET /d\n");
	close(fd);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, accepted), 1);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* Chunked answers, and an answer that ends when the target closes: both
 * forwarded whole; the daemon then uses a new upstream connection. */
START_TEST(test_sim_response_framing)
{
	const char *extra[] = { "--reconnect-backoff", "50ms", NULL };
	struct tm_pair p;
	http_pair(&p, 1, extra);
	int fd = tm_pair_client(&p);
	const char reqs[] = "GET /x HTTP/1.1\r\nHost: x\r\n\r\nGET /eof HTTP/1.1\r\nHost: x\r\n\r\n"
			    "GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(tm_write_all(fd, reqs, sizeof reqs - 1), 0);
	static char resp[RESP_CAP];
	ck_assert_int_gt(tm_http_recv(fd, resp, sizeof resp, false, 5000), 0);
	ck_assert_ptr_nonnull(strstr(resp, "Transfer-Encoding: chunked"));
	ck_assert_ptr_nonnull(strstr(tm_http_body(resp), "GET /x\n"));
	/* "/eof" has no length: read its head, then exactly the body we know */
	const char eof_body[] = "GET /eof\n";
	char head[1024];
	size_t hl = 0;
	while (hl < 4 || memcmp(head + hl - 4, "\r\n\r\n", 4) != 0) {
		ck_assert(hl + 1 < sizeof head);
		ck_assert_int_eq(tm_read_exact(fd, head + hl, 1, 5000), 1);
		hl++;
	}
	head[hl] = '\0';
	ck_assert_int_eq(tm_http_status(head), 200);
	char b[sizeof eof_body];
	ck_assert_int_eq(tm_read_exact(fd, b, sizeof eof_body - 1, 5000), (ssize_t)sizeof eof_body - 1);
	ck_assert(memcmp(b, eof_body, sizeof eof_body - 1) == 0);
	/* that answer ended the client's connection too (RFC 9112 §9.6):
	 * the requests after it were never read; sent again on a new one */
	ck_assert_int_eq(tm_wait_closed(fd, 5000), 0);
	close(fd);
	fd = tm_pair_client(&p);
	const char rest[] = "GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(tm_write_all(fd, rest, sizeof rest - 1), 0);
	expect_response(fd, false, 204, "");
	ck_assert_int_gt(tm_http_recv(fd, resp, sizeof resp, false, 5000), 0);
	ck_assert_ptr_nonnull(strstr(tm_http_body(resp), "GET /y\n"));
	close(fd);
	ck_assert_int_ge(TM_SIM_STAT(p.sim, accepted), 2); /* a new connection after /eof */
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* Sends req on a new connection: a 200 with body, then the close. */
static void expect_answer_then_close(const struct tm_pair *p, const char *req, const char *body)
{
	int fd = tm_pair_client(p);
	ck_assert_int_eq(tm_write_all(fd, req, strlen(req)), 0);
	expect_response(fd, false, 200, body);
	ck_assert_int_eq(tm_wait_closed(fd, 5000), 0);
	close(fd);
}

/* "Connection: close" from the client: answered, then closed. */
START_TEST(test_sim_connection_close)
{
	struct tm_pair p;
	http_pair(&p, 0, NULL);
	expect_answer_then_close(&p, "GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET /bye\n");
	/* HTTP/1.0 without keep-alive closes too */
	expect_answer_then_close(&p, "GET /old HTTP/1.0\r\n\r\n", "GET /old\n");
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* Target down: 503 (closed after it only when the client asked to), the
 * connection stays usable, and once the target is back the same
 * connection is served. */
START_TEST(test_sim_target_down)
{
	const char *extra[] = { "--reconnect-backoff", "50ms", "--timeout", "5", NULL };
	struct sim_opts o = { .proto = SIM_HTTP, .max_conns = 1 };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start_down(&p, &o, extra), 0);
	ck_assert(tm_daemon_wait_log(p.d, 0, "cannot connect to the target", NULL, 0, 5000));
	int fd = tm_pair_client(&p);
	const char req[] = "GET /z HTTP/1.1\r\nHost: x\r\n\r\n";
	for (int i = 0; i < 2; i++) {
		int64_t t0 = tm_now_ms();
		ck_assert_int_eq(tm_write_all(fd, req, sizeof req - 1), 0);
		expect_response(fd, false, 503, NULL);
		ck_assert_int_lt(tm_now_ms() - t0, 2000); /* at once, not after --timeout */
	}
	const char head[] = "HEAD /z HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(tm_write_all(fd, head, sizeof head - 1), 0);
	expect_response(fd, true, 503, "");  /* no body after HEAD, even for our own answer */
	/* a client that asked to close is closed after the 503 too */
	int other = tm_pair_client(&p);
	const char bye[] = "GET /z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	ck_assert_int_eq(tm_write_all(other, bye, sizeof bye - 1), 0);
	expect_response(other, false, 503, NULL);
	ck_assert_int_eq(tm_wait_closed(other, 5000), 0);
	close(other);
	ck_assert_int_eq(sim_revive(p.sim), 0);
	int status = 0;
	int64_t deadline = tm_now_ms() + 10000;
	static char resp[RESP_CAP];
	while (status != 200 && tm_now_ms() < deadline) {
		ck_assert_int_eq(tm_write_all(fd, req, sizeof req - 1), 0);
		ck_assert_int_gt(tm_http_recv(fd, resp, sizeof resp, false, 5000), 0);
		status = tm_http_status(resp);
		ck_assert(status == 200 || status == 503);
		if (status != 200)
			tm_sleep_ms(20);
	}
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(tm_http_body(resp), "GET /z\n");
	close(fd);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

/* Sends req (write errors ignored: the daemon may close before all of it
 * is read), expects status and a close; the target never sees it. */
static void expect_refused(int port, const char *req, size_t n, int status)
{
	int fd = tm_connect(port);
	ck_assert_int_ge(fd, 0);
	(void)tm_write_all(fd, req, n);
	expect_response(fd, false, status, NULL);
	ck_assert_int_eq(tm_wait_closed(fd, 5000), 0);
	close(fd);
}

/* Upgrade and CONNECT: 501; an oversize head: 413; malformed: 400. Each
 * closes that client only, and none reaches the target. */
START_TEST(test_sim_refusals)
{
	struct tm_pair p;
	http_pair(&p, 0, NULL);
	int port = p.port;
	int good = tm_connect(port);
	ck_assert_int_ge(good, 0);
	const char req[] = "GET /still HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(tm_write_all(good, req, sizeof req - 1), 0);
	expect_response(good, false, 200, "GET /still\n");

	const char upgrade[] = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
	expect_refused(port, upgrade, sizeof upgrade - 1, 501);
	const char connect[] = "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n";
	expect_refused(port, connect, sizeof connect - 1, 501);

	size_t big = 70 * 1024;
	char *huge = malloc(big + 64);
	ck_assert_ptr_nonnull(huge);
	int h = snprintf(huge, 64, "GET /big HTTP/1.1\r\nX-Filler: ");
	memset(huge + h, 'a', big - (size_t)h);
	memcpy(huge + big, "\r\n\r\n", 4);
	expect_refused(port, huge, big + 4, 413);
	free(huge);
	ck_assert(tm_daemon_wait_log(p.d, 0, "oversize request", NULL, 0, 5000));

	const char bad_field[] = "GET / HTTP/1.1\r\nHost: x\r\nBad Field: y\r\n\r\n";
	expect_refused(port, bad_field, sizeof bad_field - 1, 400);
	const char two_lengths[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
	expect_refused(port, two_lengths, sizeof two_lengths - 1, 400);
	const char garbage[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
	expect_refused(port, garbage, sizeof garbage - 1, 400);
	ck_assert(tm_daemon_wait_log(p.d, 0, "malformed request", NULL, 0, 5000));

	/* the first client was never disturbed */
	ck_assert_int_eq(tm_write_all(good, req, sizeof req - 1), 0);
	expect_response(good, false, 200, "GET /still\n");
	close(good);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, requests), 2);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, protocol_errors), 0);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

static Suite *make_http_suite(bool with_tools)
{
	Suite *s = suite_create("e2e_http");
	TM_CASE(s, "simulated target", 60, test_sim_pipelining, test_sim_response_framing,
		test_sim_connection_close, test_sim_target_down, test_sim_refusals);
	if (!with_tools)
		return s;
	TCase *tc = TM_CASE(s, "curl to nginx", 120, test_curl_get_keepalive, test_head, test_post,
			    test_chunked_upload, test_large_download);
	tcase_add_unchecked_fixture(tc, proc_tmproot_setup, proc_tmproot_teardown);
	tc = TM_CASE(s, "load to nginx", 120, test_wrk_and_checked_clients,
		     test_target_closes_after_keepalive_requests);
	tcase_add_unchecked_fixture(tc, proc_tmproot_setup, proc_tmproot_teardown);
	return s;
}

/* nginx lives in sbin, which a user's $PATH may lack. */
static bool find_tool(const char *name, char *path, size_t cap)
{
	char sbin[64];
	if (proc_which(name, path, cap))
		return true;
	snprintf(sbin, sizeof sbin, "/usr/sbin/%s", name);
	return proc_which(sbin, path, cap);
}

int main(void)
{
	char missing[64] = "";
	if (!find_tool("curl", curl_bin, sizeof curl_bin))
		strcat(missing, " curl");
	if (!find_tool("wrk", wrk_bin, sizeof wrk_bin))
		strcat(missing, " wrk");
	if (!find_tool("nginx", nginx_bin, sizeof nginx_bin))
		strcat(missing, " nginx");
	if (*missing)
		printf("missing:%s; running only the simulated-target cases\n", missing);

	return tm_run_suite(make_http_suite(*missing == '\0'), missing);
}
