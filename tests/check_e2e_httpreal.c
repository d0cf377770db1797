/* End to end, HTTP as real servers and clients speak it (issue 14): curl and
 * ab through the daemon to Python's http.server (its CGI mode, whose
 * answers end at the close and may end lines with a bare LF) and to a small
 * HTTP/1.1 server of Python's http.server classes (100-continue uploads, a
 * GET whose body is another request), and ab to nginx closing connections
 * after a few requests. A case whose program is missing is
 * left out; the program then exits 77 naming it. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "real/proc.h"
#include "real/pysite.h"
#include "testing.h"

#define PYTHON "/usr/bin/python3"
#define RUN_MS 30000               /* bound on any outside program */
#define UPLOAD_SIZE (2 * 1024 * 1024)

#ifndef TESTS_SRCDIR
#error "TESTS_SRCDIR must be the tests/ directory of the source tree (tests/protocols.mk)"
#endif

static char curl_bin[PATH_MAX], ab_bin[PATH_MAX], nginx_bin[PATH_MAX];

/* An HTTP/1.1 target made of http.server's classes: files from the
 * directory argv[1]; PUT and POST read the content and answer its length
 * and SHA-256. HTTP/1.1, so it keeps connections open and answers
 * Expect: 100-continue itself. Prints its port. */
static const char py_server[] =
	"import hashlib, http.server, sys\n"
	"class H(http.server.SimpleHTTPRequestHandler):\n"
	"    protocol_version = 'HTTP/1.1'\n"
	"    def do_PUT(self):\n"
	"        left = int(self.headers.get('Content-Length', '0'))\n"
	"        h, n = hashlib.sha256(), 0\n"
	"        while left > 0:\n"
	"            b = self.rfile.read(min(left, 65536))\n"
	"            if not b:\n"
	"                break\n"
	"            h.update(b); n += len(b); left -= len(b)\n"
	"        body = ('%d %s\\n' % (n, h.hexdigest())).encode()\n"
	"        self.send_response(200)\n"
	"        self.send_header('Content-Length', str(len(body)))\n"
	"        self.end_headers()\n"
	"        self.wfile.write(body)\n"
	"    do_POST = do_PUT\n"
	"d = sys.argv[1]\n"
	"srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0),\n"
	"    lambda *a, **k: H(*a, directory=d, **k))\n"
	"print('port', srv.server_address[1], flush=True)\n"
	"srv.serve_forever()\n";

/* CGI scripts: one writes its head with CRLF, one with print()'s bare LF.
 * Neither sends a length: the answer ends when http.server closes. */
static const char cgi_crlf[] = "#!" PYTHON "\n"
			       "import sys\n"
			       "sys.stdout.write('Content-Type: text/plain\\r\\n\\r\\nclose-delimited\\n')\n";
static const char cgi_lf[] = "#!" PYTHON "\n"
			     "print('Content-Type: text/plain')\n"
			     "print('X-Script: lf')\n"
			     "print()\n"
			     "print('lines end in LF')\n";

static void write_in(const struct pysite *s, const char *rel, const void *data, size_t n, mode_t mode)
{
	char p[PATH_MAX];
	tm_path_in(s->dir, rel, p, sizeof p);
	int rc = proc_write_file(p, data, n);
	ck_assert_msg(rc == 0, "write %s: %s", p, strerror(-rc));
	ck_assert_int_eq(chmod(p, mode), 0);
}

/* Starts argv (a Python server that prints "port N" when it listens),
 * or only the daemon when argv is NULL (the server runs), in front of it
 * with --max-connections conns. */
static void site_start(struct pysite *s, const char *const argv[], const char *conns)
{
	const char *args[] = { "--max-connections", conns, "--max-frame", "8M", "--timeout", "10", NULL };
	if (argv != NULL)
		pysite_start(s, argv, args, NULL);
	else
		pysite_daemon(s, args, NULL);
}

/* A temporary directory with a.txt, b.txt and the CGI scripts. */
static void site_files(struct pysite *s)
{
	pysite_dir(s, "httpreal");
	/* run as root, http.server runs CGI scripts as user nobody, group root
	 * (it changes only the uid): both must reach them */
	char up[PATH_MAX];
	snprintf(up, sizeof up, "%s", s->dir);
	for (char *slash; (slash = strrchr(up, '/')) != NULL && slash != up;) {
		struct stat st;
		ck_assert_int_eq(stat(up, &st), 0);
		if ((st.st_mode & (S_IXOTH | S_IXGRP)) != (S_IXOTH | S_IXGRP))
			ck_assert_int_eq(chmod(up, (st.st_mode & 07777) | S_IXOTH | S_IXGRP), 0);
		*slash = '\0';
	}
	char p[PATH_MAX];
	tm_path_in(s->dir, "cgi-bin", p, sizeof p);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	write_in(s, "a.txt", "file a\n", 7, 0644);
	write_in(s, "b.txt", "file b\n", 7, 0644);
	write_in(s, "cgi-bin/crlf.py", cgi_crlf, sizeof cgi_crlf - 1, 0755);
	write_in(s, "cgi-bin/lf.py", cgi_lf, sizeof cgi_lf - 1, 0755);
}

/* python3 -m http.server --cgi: HTTP/1.0, a connection per request. */
static void cgi_site_start(struct pysite *s)
{
	site_files(s);
	const char *argv[] = { PYTHON, "-u", "-m", "http.server", "--cgi", "--bind", "127.0.0.1",
			       "--directory", s->dir, "0", NULL };
	site_start(s, argv, "2");
}

/* The HTTP/1.1 server above, behind one upstream connection. */
static void py11_site_start(struct pysite *s)
{
	site_files(s);
	char script[PATH_MAX];
	tm_path_in(s->dir, "server.py", script, sizeof script);
	write_in(s, "server.py", py_server, sizeof py_server - 1, 0644);
	const char *argv[] = { PYTHON, "-u", script, s->dir, NULL };
	site_start(s, argv, "1");
}

/* curl -sS ARGS...; returns its exit code, output in out. */
static int curl(char *out, size_t cap, const char *const args[])
{
	return proc_run_args(curl_bin, "-sS", args, out, cap, RUN_MS);
}

/* ---- point 1: an answer that ends the connection ends the client's ---- */

/* A CGI answer has no length: it ends when http.server closes. curl waits
 * for the close of its own connection, so the daemon must close it after
 * forwarding (RFC 9112 §9.6); it used to wait for --idle-timeout. */
START_TEST(test_cgi_close_delimited)
{
	struct pysite s;
	cgi_site_start(&s);
	char url[128], out[4096];
	snprintf(url, sizeof url, "%s/cgi-bin/crlf.py", s.url);
	int64_t t0 = tm_now_ms();
	const char *args[] = { "--max-time", "8", "-w", "|%{http_code}", url, NULL };
	int rc = curl(out, sizeof out, args);
	int64_t took = tm_now_ms() - t0;
	fprintf(stderr, "curl through the daemon to a CGI script: exit %d in %lld ms: %s\n", rc,
		(long long)took, out);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, "close-delimited\n|200");
	ck_assert_int_lt(took, 5000);
	ck_assert(tm_daemon_wait_log(s.d, 0, "closing after the answer", NULL, 0, 5000));
	pysite_stop(&s);
}
END_TEST

/* ab -k asks for keep-alive; http.server answers HTTP/1.0 and closes. ab
 * reads every answer to its end, which here is the close. */
START_TEST(test_ab_keepalive)
{
	struct pysite s;
	cgi_site_start(&s);
	char url[128];
	static char out[16384];
	snprintf(url, sizeof url, "%s/a.txt", s.url);
	const char *argv[] = { ab_bin, "-k", "-n", "40", "-c", "2", "-s", "10", url, NULL };
	int rc = proc_run(argv, out, sizeof out, 20000);
	fprintf(stderr, "ab -k through the daemon: exit %d\n%s\n", rc, out);
	ck_assert_int_eq(rc, 0);
	ck_assert_ptr_nonnull(strstr(out, "Complete requests:      40"));
	ck_assert_ptr_nonnull(strstr(out, "Failed requests:        0"));
	pysite_stop(&s);
}
END_TEST

/* Whether GET /a.txt on port answers 200 now. */
static bool serves(int port)
{
	static const char req[] = "GET /a.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	char resp[4096];
	int fd = tm_connect(port);
	if (fd < 0)
		return false;
	bool ok = tm_write_all(fd, req, sizeof req - 1) == 0 &&
		  tm_http_recv(fd, resp, sizeof resp, false, 2000) > 0 && tm_http_status(resp) == 200;
	close(fd);
	return ok;
}

/* nginx from tests/real/nginx.conf.in, closing each connection after
 * keepalive requests ("Connection: close" on the last answer), with the
 * daemon in front; in s->py and s->py_port. */
static void nginx_site_start(struct pysite *s, int keepalive, const char *conns)
{
	char conf_in[PATH_MAX], conf[PATH_MAX], err[PATH_MAX], p[PATH_MAX];
	site_files(s);
	tm_path_in(s->dir, "www", p, sizeof p);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	tm_path_in(s->dir, "tmp", p, sizeof p);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	write_in(s, "www/a.txt", "file a\n", 7, 0644);
	snprintf(conf_in, sizeof conf_in, "%s/real/nginx.conf.in", TESTS_SRCDIR);
	tm_path_in(s->dir, "nginx.conf", conf, sizeof conf);
	tm_path_in(s->dir, "error.log", err, sizeof err);
	char *tmpl = proc_slurp(conf_in, NULL);
	ck_assert_msg(tmpl != NULL, "cannot read %s", conf_in);
	for (int attempt = 0; attempt < 5 && s->py_port == 0; attempt++) {
		int port = proc_free_port();
		ck_assert_int_gt(port, 0);
		FILE *f = fopen(conf, "w");
		ck_assert_ptr_nonnull(f);
		for (const char *t = tmpl; *t; t++) { /* @DIR@, @PORT@, @KEEPALIVE_REQUESTS@ */
			if (strncmp(t, "@DIR@", 5) == 0)
				t += 4, fputs(s->dir, f);
			else if (strncmp(t, "@PORT@", 6) == 0)
				t += 5, fprintf(f, "%d", port);
			else if (strncmp(t, "@KEEPALIVE_REQUESTS@", 20) == 0)
				t += 19, fprintf(f, "%d", keepalive);
			else
				fputc(*t, f);
		}
		ck_assert_int_eq(fclose(f), 0);
		const char *argv[] = { nginx_bin, "-p", s->dir, "-c", conf, "-e", err, NULL };
		s->py = proc_start(argv, s->log);
		ck_assert_int_gt(s->py, 0);
		int64_t deadline = tm_now_ms() + 10000;
		while (!serves(port) && proc_wait(s->py, 0) == -ETIMEDOUT && tm_now_ms() < deadline)
			tm_sleep_ms(5);
		if (serves(port))
			s->py_port = port;
		else
			proc_stop(s->py, SIGKILL, 2000); /* the port was taken: another */
	}
	free(tmpl);
	ck_assert_msg(s->py_port > 0, "nginx did not start");
	site_start(s, NULL, conns);
}

/* Stock nginx closes a connection after keepalive_requests answers, the
 * last one saying "Connection: close". ab -k is stranded on that client
 * connection unless the daemon closes it too. */
START_TEST(test_ab_keepalive_nginx)
{
	struct pysite s;
	nginx_site_start(&s, 10, "2");
	char url[128];
	static char out[16384];
	snprintf(url, sizeof url, "%s/a.txt", s.url);
	const char *argv[] = { ab_bin, "-k", "-n", "200", "-c", "4", "-s", "10", url, NULL };
	int rc = proc_run(argv, out, sizeof out, 30000);
	fprintf(stderr, "ab -k through the daemon to nginx (keepalive_requests 10): exit %d\n%s\n", rc,
		out);
	ck_assert_int_eq(rc, 0);
	ck_assert_ptr_nonnull(strstr(out, "Complete requests:      200"));
	ck_assert_ptr_nonnull(strstr(out, "Failed requests:        0"));
	/* most requests kept their connection: ab's keep-alive count */
	const char *ka = strstr(out, "Keep-Alive requests:");
	ck_assert_ptr_nonnull(ka);
	ck_assert_int_ge(atoi(ka + 20), 100);
	pysite_stop(&s);
}
END_TEST

/* ---- point 2: answers whose lines end in a bare LF --------------------- */

/* A CGI script that uses print(): http.server's own lines end in CRLF, the
 * script's in LF. curl takes it directly, so must the daemon (RFC 9112 §2.2). */
START_TEST(test_cgi_bare_lf)
{
	struct pysite s;
	cgi_site_start(&s);
	char url[128], direct[128], out[4096], out_direct[4096];
	snprintf(url, sizeof url, "%s/cgi-bin/lf.py", s.url);
	snprintf(direct, sizeof direct, "%s/cgi-bin/lf.py", s.direct);
	const char *args_direct[] = { "--max-time", "8", "-i", direct, NULL };
	ck_assert_int_eq(curl(out_direct, sizeof out_direct, args_direct), 0);
	ck_assert_ptr_nonnull(strstr(out_direct, "X-Script: lf\n"));
	const char *args[] = { "--max-time", "8", "-w", "|%{http_code}", url, NULL };
	int rc = curl(out, sizeof out, args);
	fprintf(stderr, "curl through the daemon to a CGI script using print(): exit %d: %s\n", rc, out);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, "lines end in LF\n|200");
	pysite_stop(&s);
}
END_TEST

/* ---- point 3: Expect: 100-continue ------------------------------------- */

/* Seconds curl took (time_total) and the answer, from "-w CODE TIME" after
 * the body. */
static double upload(const char *file, const char *url, const char *hdrs, char *out, size_t cap)
{
	const char *args[] = { "--max-time", "20", "-T", file, "-H", "Expect: 100-continue", "-D", hdrs,
			       "-w", "|%{http_code} %{time_total}", url, NULL };
	int rc = curl(out, cap, args);
	ck_assert_msg(rc == 0, "curl exited with %d: %s", rc, out);
	char *bar = strrchr(out, '|');
	ck_assert_ptr_nonnull(bar);
	ck_assert_int_eq(atoi(bar + 1), 200);
	double t = atof(strchr(bar, ' ') + 1);
	*bar = '\0';
	return t;
}

/* curl sends a 2 MiB upload with Expect: 100-continue and waits up to a
 * second for the 100 before sending the content. The daemon answers the
 * expectation itself (the target only sees whole requests), and the
 * target's own 100 never reaches curl as a second one. */
START_TEST(test_expect_100_upload)
{
	struct pysite s;
	py11_site_start(&s);
	char file[PATH_MAX], hdrs[PATH_MAX], url[128], direct[128], out[4096], out_direct[4096];
	tm_path_in(s.dir, "upload.bin", file, sizeof file);
	tm_path_in(s.dir, "headers.txt", hdrs, sizeof hdrs);
	unsigned char *data = malloc(UPLOAD_SIZE);
	ck_assert_ptr_nonnull(data);
	for (size_t i = 0; i < UPLOAD_SIZE; i++)
		data[i] = (unsigned char)(i * 2654435761u >> 13);
	ck_assert_int_eq(proc_write_file(file, data, UPLOAD_SIZE), 0);
	free(data);
	snprintf(url, sizeof url, "%s/up", s.url);
	snprintf(direct, sizeof direct, "%s/up", s.direct);

	double t_direct = upload(file, direct, hdrs, out_direct, sizeof out_direct);
	double t_via = upload(file, url, hdrs, out, sizeof out);
	fprintf(stderr, "2 MiB upload with Expect: 100-continue: direct %.3f s, through the daemon %.3f s\n",
		t_direct, t_via);
	ck_assert_str_eq(out, out_direct); /* "2097152 SHA-256" */
	ck_assert_int_eq(atoi(out), UPLOAD_SIZE);
	/* the daemon costs far less than curl's one-second wait */
	ck_assert_msg(t_via - t_direct < 0.5, "the daemon added %.3f s", t_via - t_direct);
	char *h = proc_slurp(hdrs, NULL);
	ck_assert_ptr_nonnull(h);
	int interim = tm_count(h, "HTTP/1.1 100");
	ck_assert_msg(interim == 1, "curl saw %d interim answers:\n%s", interim, h);
	ck_assert_ptr_nonnull(strstr(h, "HTTP/1.1 200"));
	free(h);
	pysite_stop(&s);
}
END_TEST

/* ---- point 6: one client's body cannot become another's request -------- */

/* http.server ignores the content of a GET and reads it as the next
 * request on the connection. Behind one shared connection, the attacker's
 * body, the start of a request, would swallow the next client's request
 * (its credentials included) into the attacker's. Refused with 400. */
START_TEST(test_get_body_smuggling)
{
	struct pysite s;
	py11_site_start(&s);
	int port = tm_daemon_port(s.d);
	static char resp[65536];
	const char smuggled[] = "GET /smuggled.txt HTTP/1.1\r\nX-Ignore: ";
	char attack[512];
	int n = snprintf(attack, sizeof attack,
			 "GET /a.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n%s",
			 sizeof smuggled - 1, smuggled);
	int fd = tm_connect(port);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(tm_write_all(fd, attack, (size_t)n), 0);
	ck_assert_int_gt(tm_http_recv(fd, resp, sizeof resp, false, 5000), 0);
	ck_assert_msg(tm_http_status(resp) == 400, "the attacker got: %.200s", resp);
	ck_assert_int_eq(tm_wait_closed(fd, 5000), 0);
	close(fd);

	/* the next client gets its own answer */
	const char victim[] = "GET /b.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic dXNlcjpzZWNyZXQ=\r\n\r\n";
	fd = tm_connect(port);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(tm_write_all(fd, victim, sizeof victim - 1), 0);
	ck_assert_int_gt(tm_http_recv(fd, resp, sizeof resp, false, 5000), 0);
	ck_assert_msg(tm_http_status(resp) == 200, "the next client got: %.200s", resp);
	ck_assert_str_eq(tm_http_body(resp), "file b\n");
	close(fd);
	/* and the target never saw the smuggled request */
	ck_assert_int_eq(proc_count_file(s.log, "smuggled"), 0);
	ck_assert_int_eq(proc_count_file(s.log, "GET /a.txt"), 0);
	ck_assert_int_eq(proc_count_file(s.log, "GET /b.txt"), 1);
	pysite_stop(&s);
}
END_TEST

static Suite *make_httpreal_suite(bool have_curl, bool have_ab, bool have_nginx)
{
	Suite *su = suite_create("e2e_httpreal");
	TCase *tc = tm_add_case(su, "real clients and Python's http.server", 90, NULL, 0);
	tcase_add_unchecked_fixture(tc, proc_tmproot_setup, proc_tmproot_teardown);
	if (have_curl) {
		tcase_add_test(tc, test_cgi_close_delimited);
		tcase_add_test(tc, test_cgi_bare_lf);
		tcase_add_test(tc, test_expect_100_upload);
	}
	if (have_ab)
		tcase_add_test(tc, test_ab_keepalive);
	if (have_ab && have_nginx)
		tcase_add_test(tc, test_ab_keepalive_nginx);
	tcase_add_test(tc, test_get_body_smuggling);
	return su;
}

int main(void)
{
	if (access(PYTHON, X_OK) != 0) {
		printf("SKIP: every case needs %s (Python's http.server)\n", PYTHON);
		return PROC_SKIP;
	}
	char missing[64] = "";
	bool have_curl = proc_which("curl", curl_bin, sizeof curl_bin);
	bool have_ab = proc_which("ab", ab_bin, sizeof ab_bin);
	if (!have_curl)
		strcat(missing, " curl");
	bool have_nginx = proc_which("nginx", nginx_bin, sizeof nginx_bin) ||
			  proc_which("/usr/sbin/nginx", nginx_bin, sizeof nginx_bin);
	if (!have_ab)
		strcat(missing, " ab (apache2-utils)");
	if (!have_nginx)
		strcat(missing, " nginx");
	return tm_run_suite(make_httpreal_suite(have_curl, have_ab, have_nginx), missing);
}
