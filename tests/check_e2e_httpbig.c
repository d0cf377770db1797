/* End to end, HTTP answers larger than --max-frame (issue 14 point 4): curl
 * downloads 2 MiB and 50 MiB files and a chunked 8 MiB answer through the
 * daemon with its default --max-frame (1 MiB), bodies checked by SHA-256
 * and the daemon's memory by its peak RSS; a client that stops reading is
 * cut off after --timeout while other clients are served; a target that
 * dies mid-body closes the client's connection after a true prefix. The
 * target is a small HTTP/1.1 server of Python's http.server classes. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "real/proc.h"
#include "real/pysite.h"
#include "testing.h"

#define PYTHON "/usr/bin/python3"
#define RUN_MS 60000            /* bound on any outside program */
#define MIB (1024 * 1024)
#define DIES_AFTER (1 * MIB)    /* /dies/ sends this much of the body, then closes */

#ifndef TESTS_SRCDIR
#error "TESTS_SRCDIR must be the tests/ directory of the source tree (tests/protocols.mk)"
#endif

static char curl_bin[PATH_MAX], sha_bin[PATH_MAX];

/* HTTP/1.1 (keep-alive) files from argv[1]; GET /chunked/NAME sends NAME
 * with Transfer-Encoding: chunked in uneven chunks and a trailer; GET
 * /eof/NAME sends NAME with no length, ending it with the close; GET
 * /dies/NAME promises all of NAME, sends DIES_AFTER bytes and closes;
 * /stalls/NAME does the same but waits 20 s before it closes. PUT reads
 * the content (after its own 100 Continue, when asked) and answers f8m.
 * Prints its port. */
static const char py_server[] =
	"import http.server, os, sys, time\n"
	"class H(http.server.SimpleHTTPRequestHandler):\n"
	"    protocol_version = 'HTTP/1.1'\n"
	"    def log_message(self, *a):\n"
	"        sys.stdout.write('%s\\n' % self.requestline)\n"
	"    def do_GET(self):\n"
	"        if self.path.startswith('/chunked/'):\n"
	"            return self.chunked(self.path[9:])\n"
	"        if self.path.startswith('/dies/'):\n"
	"            return self.dies(self.path[6:], 0)\n"
	"        if self.path.startswith('/eof/'):\n"
	"            return self.until_close(self.path[5:])\n"
	"        if self.path.startswith('/stalls/'):\n"
	"            return self.dies(self.path[8:], 20)\n"
	"        return super().do_GET()\n"
	"    def chunked(self, name):\n"
	"        data = open(os.path.join(d, name), 'rb').read()\n"
	"        self.send_response(200)\n"
	"        self.send_header('Transfer-Encoding', 'chunked')\n"
	"        self.send_header('Trailer', 'X-Done')\n"
	"        self.end_headers()\n"
	"        i, c = 0, 1\n"
	"        while i < len(data):\n"
	"            part = data[i:i + c]\n"
	"            self.wfile.write(b'%x;ext=1\\r\\n' % len(part) + part + b'\\r\\n')\n"
	"            i += len(part)\n"
	"            c = c * 7 % 90001 + 1\n"
	"        self.wfile.write(b'0\\r\\nX-Done: yes\\r\\n\\r\\n')\n"
	"    def do_PUT(self):\n"
	"        self.rfile.read(int(self.headers.get('Content-Length', '0')))\n"
	"        data = open(os.path.join(d, 'f8m'), 'rb').read()\n"
	"        self.send_response(200)\n"
	"        self.send_header('Content-Length', str(len(data)))\n"
	"        self.end_headers()\n"
	"        self.wfile.write(data)\n"
	"    def until_close(self, name):\n"
	"        data = open(os.path.join(d, name), 'rb').read()\n"
	"        self.send_response(200)\n"
	"        self.send_header('Connection', 'close')\n"
	"        self.end_headers()\n"
	"        for i in range(0, len(data), 65536):\n"
	"            self.wfile.write(data[i:i + 65536])\n"
	"        self.close_connection = True\n"
	"    def dies(self, name, stall):\n"
	"        data = open(os.path.join(d, name), 'rb').read()\n"
	"        self.send_response(200)\n"
	"        self.send_header('Content-Length', str(len(data)))\n"
	"        self.end_headers()\n"
	"        self.wfile.write(data[:1048576])\n"
	"        self.wfile.flush()\n"
	"        time.sleep(stall)\n"
	"        self.close_connection = True\n"
	"d = sys.argv[1]\n"
	"srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0),\n"
	"    lambda *a, **k: H(*a, directory=d, **k))\n"
	"print('port', srv.server_address[1], flush=True)\n"
	"srv.serve_forever()\n";

/* Writes n deterministic bytes (seeded) to the file rel of the site. */
static void make_file(const struct pysite *s, const char *rel, size_t n, unsigned seed)
{
	char p[PATH_MAX];
	tm_path_in(s->dir, rel, p, sizeof p);
	unsigned char *data = malloc(n);
	ck_assert_ptr_nonnull(data);
	tm_fill_bytes(data, n, seed);
	ck_assert_int_eq(proc_write_file(p, data, n), 0);
	free(data);
}

/* The Python server over the site's files, then the daemon in front of it
 * with the default --max-frame and extra options (NULL-terminated). */
static void site_start(struct pysite *s, const char *const extra[])
{
	pysite_dir(s, "httpbig");
	char script[PATH_MAX], line[256];
	tm_path_in(s->dir, "server.py", script, sizeof script);
	ck_assert_int_eq(proc_write_file(script, py_server, sizeof py_server - 1), 0);
	make_file(s, "f2m", 2 * MIB, 2);
	make_file(s, "f8m", 8 * MIB, 8);
	tm_path_in(s->dir, "small.txt", line, sizeof line);
	ck_assert_int_eq(proc_write_file(line, "small file\n", 11), 0);
	const char *argv[] = { PYTHON, "-u", script, s->dir, NULL };
	pysite_start(s, argv, NULL, extra);
}

/* The SHA-256 of a file, in hex (sha256sum). */
static void sha256_of(const char *path, char out[65])
{
	char buf[PATH_MAX + 128];
	const char *argv[] = { sha_bin, path, NULL };
	ck_assert_int_eq(proc_run(argv, buf, sizeof buf, RUN_MS), 0);
	ck_assert(strlen(buf) > 64);
	memcpy(out, buf, 64);
	out[64] = '\0';
}

/* curl -sS -o FILE -w "%{http_code} %{size_download}" URL; returns curl's
 * exit code, its -w output in out. */
static int download(const char *url, const char *file, char *out, size_t cap)
{
	const char *argv[] = { curl_bin, "-sS", "--max-time", "50", "-o", file, "-w",
			       "%{http_code} %{size_download}", url, NULL };
	return proc_run(argv, out, cap, RUN_MS);
}

/* GET /name through the daemon into the site's file got.NAME, checked
 * against the original by SHA-256. */
static void fetch_checked(const struct pysite *s, const char *path, const char *name, size_t size)
{
	char url[128], file[PATH_MAX], orig[PATH_MAX], out[512], want[64], a[65], b[65];
	snprintf(url, sizeof url, "%s/%s", s->url, path);
	snprintf(want, sizeof want, "200 %zu", size);
	char got[64];
	snprintf(got, sizeof got, "got.%s", name);
	tm_path_in(s->dir, got, file, sizeof file);
	tm_path_in(s->dir, name, orig, sizeof orig);
	int64_t t0 = tm_now_ms();
	int rc = download(url, file, out, sizeof out);
	fprintf(stderr, "GET /%s through the daemon: curl exit %d, '%s' in %lld ms\n", path, rc, out,
		(long long)(tm_now_ms() - t0));
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, want);
	sha256_of(orig, a);
	sha256_of(file, b);
	ck_assert_str_eq(a, b);
	unlink(file);
}

/* A field of /proc/PID/status in kB ("VmRSS", "VmHWM"), or -1. */
static long proc_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kb = -1;
	size_t n = strlen(field);
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			kb = atol(line + n + 1);
	if (f != NULL)
		fclose(f);
	return kb;
}

/* 2 MiB and 50 MiB with Content-Length: whole, and the daemon's peak RSS
 * stays far under the file size (a 2 MiB answer used to be a 502). */
START_TEST(test_large_downloads)
{
	struct pysite s;
	site_start(&s, NULL);
	make_file(&s, "f50m", 50 * MIB, 50);
	long rss0 = proc_kb(tm_daemon_pid(s.d), "VmRSS");
	fetch_checked(&s, "f2m", "f2m", 2 * MIB);
	fetch_checked(&s, "f50m", "f50m", 50 * MIB);
	fetch_checked(&s, "f2m", "f2m", 2 * MIB); /* the connection went on */
	long hwm = proc_kb(tm_daemon_pid(s.d), "VmHWM");
	fprintf(stderr, "daemon RSS at start %ld kB, peak %ld kB after 54 MiB of answers\n", rss0, hwm);
	ck_assert_int_gt(rss0, 0);
	ck_assert_int_lt(hwm, rss0 + 8 * 1024);
	pysite_stop(&s);
}
END_TEST

/* A chunked 8 MiB answer with uneven chunks, extensions and a trailer,
 * and one that ends when the target closes (RFC 9112 section 6.3 item 8). */
START_TEST(test_chunked_download)
{
	struct pysite s;
	site_start(&s, NULL);
	fetch_checked(&s, "chunked/f8m", "f8m", 8 * MIB);
	fetch_checked(&s, "eof/f8m", "f8m", 8 * MIB);
	/* the close ended that answer: a whole one, not one cut short */
	ck_assert(tm_daemon_wait_log(s.d, 0, "closing after the answer", NULL, 0, 5000));
	ck_assert_int_eq(tm_daemon_log_count(s.d, 0, "the answer stopped"), 0);
	fetch_checked(&s, "small.txt", "small.txt", 11);
	pysite_stop(&s);
}
END_TEST

/* A PUT with Expect: 100-continue answered with 8 MiB: the daemon
 * answers the expectation itself, and the target's own 100, at the start
 * of the streamed answer, never reaches curl as a second one. */
START_TEST(test_expect_100_big_answer)
{
	struct pysite s;
	site_start(&s, NULL);
	char up[PATH_MAX], hdrs[PATH_MAX], file[PATH_MAX], orig[PATH_MAX], url[128], out[512], a[65], b[65];
	make_file(&s, "up.bin", 100 * 1024, 3);
	tm_path_in(s.dir, "up.bin", up, sizeof up);
	tm_path_in(s.dir, "headers.txt", hdrs, sizeof hdrs);
	tm_path_in(s.dir, "got.put", file, sizeof file);
	tm_path_in(s.dir, "f8m", orig, sizeof orig);
	snprintf(url, sizeof url, "%s/put", s.url);
	const char *argv[] = { curl_bin, "-sS", "--max-time", "50", "-T", up, "-H", "Expect: 100-continue", "-D", hdrs,
			       "-o", file, "-w", "%{http_code} %{size_download}", url, NULL };
	int rc = proc_run(argv, out, sizeof out, RUN_MS);
	fprintf(stderr, "PUT with Expect: 100-continue, 8 MiB answer: curl exit %d, '%s'\n", rc, out);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, "200 8388608");
	sha256_of(orig, a);
	sha256_of(file, b);
	ck_assert_str_eq(a, b);
	char *h = proc_slurp(hdrs, NULL);
	ck_assert_ptr_nonnull(h);
	int interim = tm_count(h, " 100 ");
	ck_assert_msg(interim == 1, "curl saw %d interim answers:\n%s", interim, h);
	free(h);
	pysite_stop(&s);
}
END_TEST

/* Requests stay bounded by --max-frame: a 2 MiB upload is a 413, while
 * the 2 MiB download passes. */
START_TEST(test_requests_stay_bounded)
{
	struct pysite s;
	site_start(&s, NULL);
	char up[PATH_MAX], url[128], out[512];
	tm_path_in(s.dir, "f2m", up, sizeof up);
	snprintf(url, sizeof url, "%s/put", s.url);
	const char *argv[] = { curl_bin, "-sS", "--max-time", "50", "-T", up, "-H", "Expect:", "-o", "/dev/null",
			       "-w", "%{http_code}", url, NULL };
	int rc = proc_run(argv, out, sizeof out, RUN_MS);
	fprintf(stderr, "2 MiB upload through the daemon: curl exit %d, '%s'\n", rc, out);
	ck_assert_ptr_nonnull(strstr(out, "413"));
	ck_assert_int_eq(proc_count_file(s.log, "PUT /put"), 0);
	fetch_checked(&s, "f2m", "f2m", 2 * MIB);
	pysite_stop(&s);
}
END_TEST

/* Whether GET /small.txt answers right on a new connection within ms. */
static bool small_served(int port, int ms)
{
	/* no "Connection: close": http.server would then close the shared
	 * upstream connection without saying so in its answer */
	static const char req[] = "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	char resp[4096];
	int fd = tm_connect(port);
	if (fd < 0)
		return false;
	bool ok = tm_write_all(fd, req, sizeof req - 1) == 0 && tm_http_recv(fd, resp, sizeof resp, false, ms) > 0 &&
		  tm_http_status(resp) == 200 && strcmp(tm_http_body(resp), "small file\n") == 0;
	close(fd);
	return ok;
}

/* A request that says Connection: close ends the target's connection too,
 * whether or not the target's answer says so (Python's http.server does
 * not): the daemon does not give that connection to the next client, who
 * would get a 502 (RFC 9112 §9.6). */
START_TEST(test_request_close_retires_upstream)
{
	struct pysite s;
	const char *extra[] = { "--max-connections", "1", NULL };
	site_start(&s, extra);
	static const char bye[] = "GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	static const char next[] = "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	char resp[4096];
	int bad = 0;
	for (int i = 0; i < 20; i++) {
		/* b's request waits for the one connection while a's goes */
		int a = tm_connect(s.port), b = tm_connect(s.port);
		ck_assert_int_ge(a, 0);
		ck_assert_int_ge(b, 0);
		ck_assert_int_eq(tm_write_all(a, bye, sizeof bye - 1), 0);
		ck_assert_int_eq(tm_write_all(b, next, sizeof next - 1), 0);
		ck_assert_int_gt(tm_http_recv(a, resp, sizeof resp, false, 5000), 0);
		ck_assert_int_eq(tm_http_status(resp), 200);
		ck_assert_int_eq(tm_wait_closed(a, 5000), 0); /* it asked for the end */
		bad += tm_http_recv(b, resp, sizeof resp, false, 5000) <= 0 || tm_http_status(resp) != 200;
		close(a);
		close(b);
	}
	fprintf(stderr, "after a Connection: close request: %d of 20 next requests failed\n", bad);
	ck_assert_int_eq(bad, 0);
	pysite_stop(&s);
}
END_TEST

/* Reads fd until it closes or timeout_ms pass. Returns the bytes read, or
 * -ETIMEDOUT when it did not close in time. */
static long drain(int fd, int timeout_ms)
{
	static char buf[65536];
	long total = 0;
	int64_t deadline = tm_now_ms() + timeout_ms;
	while (tm_now_ms() < deadline) { /* each read waits at most TM_IO_TIMEOUT_MS */
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return total;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return total;
		if (n > 0)
			total += n;
	}
	return -ETIMEDOUT;
}

/* A client that asks for 50 MiB and stops reading holds one upstream
 * connection: other clients go on over the other one meanwhile, and the
 * daemon cuts the slow one off once a write has waited --timeout (2 s). */
START_TEST(test_slow_reader)
{
	struct pysite s;
	const char *extra[] = { "--max-connections", "2", "--timeout", "2", NULL };
	site_start(&s, extra);
	make_file(&s, "f50m", 50 * MIB, 50);
	ck_assert(small_served(s.port, 5000));
	int fd = tm_connect(s.port);
	ck_assert_int_ge(fd, 0);
	static const char req[] = "GET /f50m HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(tm_write_all(fd, req, sizeof req - 1), 0);
	char head[16];
	ck_assert_int_eq(tm_read_exact(fd, head, 12, 5000), 12);
	ck_assert_msg(memcmp(head, "HTTP/1.1 200", 12) == 0, "the slow client got: %.12s", head);
	/* it reads no more; meanwhile the others are served, each promptly */
	size_t mark = tm_daemon_log_mark(s.d);
	int64_t t0 = tm_now_ms();
	int served = 0;
	for (int i = 0; i < 20; i++) {
		int64_t t = tm_now_ms();
		ck_assert_msg(small_served(s.port, 2000), "request %d while a client stalls", i);
		ck_assert_int_lt(tm_now_ms() - t, 1000);
		served++;
	}
	ck_assert(tm_daemon_wait_log(s.d, mark, "did not take the answer", NULL, 0, 15000));
	int64_t cut = tm_now_ms() - t0;
	long got = drain(fd, 10000);
	fprintf(stderr, "%d requests served while a client stalled; it was cut off after %lld ms having %ld "
		"bytes\n", served, (long long)cut, got);
	ck_assert_int_ge(got, 0); /* closed */
	ck_assert_int_lt(got, 50 * MIB);
	close(fd);
	/* both connections serve again */
	fetch_checked(&s, "f2m", "f2m", 2 * MIB);
	ck_assert(small_served(s.port, 5000));
	pysite_stop(&s);
}
END_TEST

/* GETs path on a new connection and reads until the daemon closes it
 * (within 20 s). The client must have got the head of a 200 and a true
 * prefix of f8m, and nothing after it (no 502 once bytes went). Returns
 * the body bytes it got. */
static size_t cut_answer(const struct pysite *s, const char *path)
{
	char req[256];
	int rlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	int fd = tm_connect(s->port);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(tm_write_all(fd, req, (size_t)rlen), 0);
	size_t cap = 9 * MIB, len = 0;
	char *got = malloc(cap);
	ck_assert_ptr_nonnull(got);
	int64_t deadline = tm_now_ms() + 20000;
	ssize_t n = 1;
	while (n != 0 && len < cap && tm_now_ms() < deadline) { /* reads wait TM_IO_TIMEOUT_MS at most */
		n = recv(fd, got + len, cap - len, 0);
		if (n > 0)
			len += (size_t)n;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
	}
	ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET), "the connection did not close: %zd %s", n,
		      n < 0 ? strerror(errno) : "");
	close(fd);
	ck_assert_msg(len >= 12 && memcmp(got, "HTTP/1.1 200", 12) == 0, "the client got: %.40s", got);
	char *body = memmem(got, len, "\r\n\r\n", 4);
	ck_assert_ptr_nonnull(body);
	body += 4;
	size_t blen = len - (size_t)(body - got);
	ck_assert_uint_le(blen, DIES_AFTER);
	ck_assert_uint_gt(blen, 0);
	char orig[PATH_MAX];
	tm_path_in(s->dir, "f8m", orig, sizeof orig);
	char *want = proc_slurp(orig, NULL);
	ck_assert_ptr_nonnull(want);
	ck_assert(memcmp(body, want, blen) == 0); /* a prefix of the truth, nothing appended */
	free(want);
	free(got);
	return blen;
}

/* The target promises 8 MiB, sends 1 MiB and closes: the client gets the
 * head and a true prefix of the body, then its connection closes. The
 * next request is served. */
START_TEST(test_target_dies_mid_body)
{
	struct pysite s;
	site_start(&s, NULL);
	size_t blen = cut_answer(&s, "/dies/f8m");
	fprintf(stderr, "target died mid-body: the client got %zu bytes of body, then the close\n", blen);
	ck_assert(tm_daemon_wait_log(s.d, 0, "the answer stopped after", NULL, 0, 5000));
	ck_assert(small_served(s.port, 5000));
	pysite_stop(&s);
}
END_TEST

/* The target sends 1 MiB of 8 and goes silent: after --answer-timeout
 * (1 s) without a byte, the client's connection is closed. */
START_TEST(test_target_stalls_mid_body)
{
	struct pysite s;
	const char *extra[] = { "--answer-timeout", "1", "--max-connections", "2", NULL };
	site_start(&s, extra);
	int64_t t0 = tm_now_ms();
	size_t blen = cut_answer(&s, "/stalls/f8m");
	int64_t took = tm_now_ms() - t0;
	fprintf(stderr, "target stalled mid-body: the client got %zu bytes of body, closed after %lld ms\n", blen,
		(long long)took);
	ck_assert_int_ge(took, 900);
	ck_assert_int_lt(took, 8000);
	char line[512];
	ck_assert(tm_daemon_wait_log(s.d, 0, "the answer stopped after", line, sizeof line, 5000));
	ck_assert_msg(strstr(line, "timed out") != NULL, "%s", line);
	ck_assert(small_served(s.port, 5000));
	pysite_stop(&s);
}
END_TEST

int main(void)
{
	if (access(PYTHON, X_OK) != 0) {
		printf("SKIP: every case needs %s (Python's http.server)\n", PYTHON);
		return PROC_SKIP;
	}
	if (!proc_which("curl", curl_bin, sizeof curl_bin) || !proc_which("sha256sum", sha_bin, sizeof sha_bin)) {
		printf("SKIP: every case needs curl and sha256sum\n");
		return PROC_SKIP;
	}
	Suite *su = suite_create("e2e_httpbig");
	TCase *tc = TM_CASE(su, "answers larger than --max-frame", 120, test_large_downloads, test_chunked_download,
			    test_expect_100_big_answer, test_requests_stay_bounded,
			    test_request_close_retires_upstream, test_slow_reader, test_target_dies_mid_body,
			    test_target_stalls_mid_body);
	tcase_add_unchecked_fixture(tc, proc_tmproot_setup, proc_tmproot_teardown);
	return tm_run_suite(su, NULL);
}
