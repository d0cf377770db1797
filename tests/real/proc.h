/* Outside programs for the end-to-end suites with real clients and servers
 * (pymodbus, mbpoll, curl, wrk, nginx): spawn, wait with deadlines, skip
 * when missing, and the temporary directories they work in. */
#ifndef TCPMUX_PROC_H
#define TCPMUX_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* automake's exit status for a skipped test */
#define PROC_SKIP 77

/* The full path of prog: itself when it contains a '/' and is executable,
 * else the first executable match in $PATH. Returns false, with path
 * emptied, when none. */
bool proc_which(const char *prog, char *path, size_t cap);

/*
 * Starts argv (argv[0] resolved with proc_which) with stdin on /dev/null
 * and stdout and stderr appended to log_path (created when missing). The
 * child gets SIGKILL when the calling thread ends (PR_SET_PDEATHSIG), so a
 * failed test leaves nothing running: call it from the test's own thread.
 * Returns the pid or -errno.
 */
pid_t proc_start(const char *const argv[], const char *log_path);
/* Waits up to timeout_ms for pid to exit. Returns its exit code, 128 + N
 * when signal N ended it, or -ETIMEDOUT (it is still running then). */
int proc_wait(pid_t pid, int timeout_ms);
/* Sends sig, waits up to timeout_ms, then SIGKILLs. Returns the exit code
 * as proc_wait does, or -ETIMEDOUT when it had to be killed. */
int proc_stop(pid_t pid, int sig, int timeout_ms);
/* Runs argv to completion with stdout and stderr captured together into
 * out (NUL-terminated, cut at cap - 1); killed after timeout_ms. Returns
 * the exit code as proc_wait does, -ETIMEDOUT, or -errno. */
int proc_run(const char *const argv[], char *out, size_t cap, int timeout_ms);
/* The same for `prog first ARGS...` (args NULL-terminated, at most 45;
 * first may be NULL), e.g. curl -sS ARGS. -E2BIG for too many. */
int proc_run_args(const char *prog, const char *first, const char *const args[], char *out,
		  size_t cap, int timeout_ms);

/* The whole file, NUL-terminated, malloc'd (free it); NULL when unreadable.
 * *len gets the length when len is not NULL. */
char *proc_slurp(const char *path, size_t *len);
/* Writes n bytes to path (created or truncated). Returns 0 or -errno. */
int proc_write_file(const char *path, const void *data, size_t n);
/* Waits until a line of the file contains needle (copied to line without
 * its '\n' when line is not NULL), or timeout_ms pass. */
bool proc_wait_file(const char *path, const char *needle, char *line, size_t cap, int timeout_ms);
/* How many lines of the file contain needle, now. */
int proc_count_file(const char *path, const char *needle);

/* A new directory named after tag, under the root below when there is one,
 * else under $TMPDIR (or /tmp). Returns 0 or -errno. */
int proc_tmpdir(const char *tag, char *path, size_t cap);
/* Removes the directory tree (not following symbolic links). */
void proc_rmtree(const char *path);
/* An unchecked fixture (tcase_add_unchecked_fixture): it runs in the test
 * runner, around the forked tests, so the root it makes for proc_tmpdir is
 * removed even after a failed assertion ended a test (kept, and named on
 * stderr, when $TM_KEEP is set). */
void proc_tmproot_setup(void);
void proc_tmproot_teardown(void);

/* A loopback port that was free a moment ago (bound to 0 and closed): for
 * programs that cannot listen on port 0 and report it. Its user must retry
 * with another one when the bind fails. Returns the port or -errno. */
int proc_free_port(void);

#endif
