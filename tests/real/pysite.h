/* A server in a temporary directory (Python's http.server, or nginx) and
 * the daemon in front of it: the fixture of the httpbig and httpreal
 * suites. Functions fail the running check test when a step fails. */
#ifndef TCPMUX_PYSITE_H
#define TCPMUX_PYSITE_H

#include <limits.h>
#include <sys/types.h>

struct tm_daemon;

struct pysite {
	char dir[PATH_MAX];
	char log[PATH_MAX];     /* the server's output: one line per request */
	pid_t py;
	int py_port;
	struct tm_daemon *d;
	int port;               /* the daemon's */
	char url[64];           /* the daemon: http://127.0.0.1:PORT */
	char direct[64];        /* the server itself */
};

/* Empties s and makes its directory (named after tag); the log goes there. */
void pysite_dir(struct pysite *s, const char *tag);
/* Starts argv, a server that prints "port N" once it listens (waited for
 * 10 s), then pysite_daemon. */
void pysite_start(struct pysite *s, const char *const argv[], const char *const args[],
		  const char *const more[]);
/* The daemon (-p http, then args and more, both NULL-terminated, may be
 * NULL) in front of the server on s->py_port. */
void pysite_daemon(struct pysite *s, const char *const args[], const char *const more[]);
/* Stops the daemon (it must stop cleanly) and the server, and removes the
 * directory. */
void pysite_stop(struct pysite *s);

#endif
