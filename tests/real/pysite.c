/* A server in a temporary directory and the daemon in front of it (the
 * httpbig and httpreal suites). */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "real/proc.h"
#include "real/pysite.h"
#include "testing.h"

void pysite_dir(struct pysite *s, const char *tag)
{
	memset(s, 0, sizeof *s);
	ck_assert_int_eq(proc_tmpdir(tag, s->dir, sizeof s->dir), 0);
	tm_path_in(s->dir, "python.log", s->log, sizeof s->log);
}

void pysite_start(struct pysite *s, const char *const argv[], const char *const args[],
		  const char *const more[])
{
	char line[256];
	s->py = proc_start(argv, s->log);
	ck_assert_int_gt(s->py, 0);
	ck_assert_msg(proc_wait_file(s->log, "port ", line, sizeof line, 10000),
		      "the Python server did not start");
	s->py_port = atoi(strstr(line, "port ") + 5);
	ck_assert_int_gt(s->py_port, 0);
	pysite_daemon(s, args, more);
}

void pysite_daemon(struct pysite *s, const char *const args[], const char *const more[])
{
	snprintf(s->direct, sizeof s->direct, "http://127.0.0.1:%d", s->py_port);
	s->d = tm_daemon_start_target("http", s->py_port, args, more);
	ck_assert_ptr_nonnull(s->d);
	s->port = tm_daemon_port(s->d);
	snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
}

void pysite_stop(struct pysite *s)
{
	ck_assert_int_eq(tm_daemon_stop(s->d, SIGTERM, 0), 0);
	proc_stop(s->py, SIGTERM, 5000);
	proc_rmtree(s->dir);
}
