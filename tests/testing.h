/* Harness for the end-to-end suites: starts the real daemon with its stderr
 * captured, plus client helpers that never wait without a deadline. */
#ifndef TCPMUX_TESTING_H
#define TCPMUX_TESTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sim.h"

#define TM_IO_TIMEOUT_MS 5000      /* reads, and SO_RCVTIMEO/SO_SNDTIMEO of tm_connect */
#define TM_START_TIMEOUT_MS 10000  /* for the daemon's "listening on" line (valgrind is slow) */
#define TM_STOP_TIMEOUT_MS 10000   /* default for tm_daemon_stop */

/*
 * Errors: every function returns a negative errno on failure. The frame
 * readers (tm_*_recv) return the frame's length, or -ETIMEDOUT, -EPIPE (the
 * peer closed cleanly before the frame began), -ECONNRESET (closed or reset
 * inside the frame), -EPROTO (malformed), -EMSGSIZE (larger than cap).
 */

/* ---- time and waiting --------------------------------------------------- */

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t tm_now_ms(void);
/* Pacing for polling loops only; never use it to "let something happen". */
void tm_sleep_ms(int ms);
/* Polls cond(arg) every 2 ms until it is true or timeout_ms have passed.
 * Returns its last value. */
bool tm_wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms);
/* The same for an expression, as a statement: TM_WAIT_FOR(x == 3, 2000);
 * then assert the expression as usual. */
#define TM_WAIT_FOR(cond, timeout_ms)                                           \
	do {                                                                    \
		int64_t tm_deadline_ = tm_now_ms() + (timeout_ms);              \
		while (!(cond) && tm_now_ms() < tm_deadline_)                   \
			tm_sleep_ms(2);                                         \
	} while (0)

/* One counter of a simulator, by its offset in struct sim_stats:
 * TM_SIM_STAT(s, answers); TM_SIM_WAIT(s, answers, 4, 2000) waits until it
 * is at least 4 and returns whether it got there. */
long tm_sim_stat(struct sim *s, size_t offset);
bool tm_sim_wait(struct sim *s, size_t offset, long at_least, int timeout_ms);
#define TM_SIM_STAT(s, field) tm_sim_stat((s), offsetof(struct sim_stats, field))
#define TM_SIM_WAIT(s, field, at_least, timeout_ms)                             \
	tm_sim_wait((s), offsetof(struct sim_stats, field), (at_least), (timeout_ms))

/* ---- child processes (the daemon, tests/real's programs, the benchmark) -- */

/*
 * Forks and runs file (argv[0] when file is NULL) with argv, stdin on
 * /dev/null, stdout and stderr on out, every other descriptor closed and
 * every signal at its default, unblocked. The child gets SIGKILL when the
 * calling thread ends (PR_SET_PDEATHSIG), so a failed test leaves nothing
 * running: call it from the thread that will stop the child. The caller
 * still owns out. Returns the pid or -errno.
 */
pid_t tm_spawn(const char *file, const char *const argv[], int out);
/* A wait status as one number: the exit code, 128 + N when signal N ended
 * the process, or -ECHILD. */
int tm_exit_code(int status);
/* Waits up to timeout_ms for pid to end. Returns its exit code
 * (tm_exit_code), -ETIMEDOUT when it is still running, or -errno. */
int tm_wait_pid(pid_t pid, int timeout_ms);
/* Sends sig (none when 0), waits up to timeout_ms, then SIGKILLs and reaps.
 * Returns the exit code, or -ETIMEDOUT when it had to be killed. */
int tm_stop_pid(pid_t pid, int sig, int timeout_ms);

/* Runs file (argv[0] when NULL) with argv to completion and captures its
 * stdout and stderr together into out (NUL-terminated, cut at cap - 1);
 * killed after timeout_ms. Returns the exit code, -ETIMEDOUT or -errno. */
int tm_run_program(const char *file, const char *const argv[], char *out, size_t cap,
		   int timeout_ms);

/* ---- the daemon --------------------------------------------------------- */

struct tm_daemon;

/* The binary: $TCPMUX_BIN when set (to test an installed one), else the
 * build tree's, fixed at compile time. */
const char *tm_daemon_binary(void);

/*
 * Runs `BINARY server -v -l 127.0.0.1:0 EXTRA...` (extra is NULL-terminated,
 * may be NULL) with stdin on /dev/null and stdout+stderr on a pipe, and
 * waits up to TM_START_TIMEOUT_MS for the line with "listening on ADDR:PORT".
 * A thread keeps reading the pipe: it records everything (see the log
 * functions) and copies each line to our stderr as "daemon[PID]: ..."
 * unless $TM_QUIET is set. Returns NULL, with the reason on stderr, when
 * the daemon exits or prints no such line in time (it is killed then).
 * Call it from the thread that will stop it (the daemon gets SIGKILL when
 * that thread ends: PR_SET_PDEATHSIG, so a failed test leaves no daemon).
 */
struct tm_daemon *tm_daemon_start(const char *const extra[]);
/* The same with the arguments that point it at the simulator s first:
 * `-p PROTO -t 127.0.0.1:PORT`, and for SIM_MODBUS_RTU (RTU frames over
 * TCP) `-p modbus --modbus-upstream rtu -t 127.0.0.1:PORT`. */
struct tm_daemon *tm_daemon_start_sim(struct sim *s, const char *const extra[]);
/* tm_daemon_start with args, then more (both NULL-terminated, more may be
 * NULL): a suite's own options for every daemon, then a test's. */
struct tm_daemon *tm_daemon_start_args(const char *const args[], const char *const more[]);
/* The same in front of a TCP target on 127.0.0.1:port (a real server
 * that is no simulator): `-p PROTO -t 127.0.0.1:PORT ARGS... MORE...`. */
struct tm_daemon *tm_daemon_start_target(const char *proto, int port, const char *const args[],
					 const char *const more[]);
/* The port the daemon listens on. */
int tm_daemon_port(const struct tm_daemon *d);
pid_t tm_daemon_pid(const struct tm_daemon *d);
/* Whether the process is still running (reaps it when it is not). */
bool tm_daemon_running(struct tm_daemon *d);
/* kill(pid, sig) unless it has exited. Returns 0 or -errno (-ESRCH). */
int tm_daemon_signal(struct tm_daemon *d, int sig);
/* Sends sig and waits up to timeout_ms (<= 0: TM_STOP_TIMEOUT_MS) for the
 * exit, then SIGKILLs it. Frees d. Returns the exit code, 128 + N when
 * signal N killed it, or -ETIMEDOUT when it had to be SIGKILLed. */
int tm_daemon_stop(struct tm_daemon *d, int sig, int timeout_ms);

/* The daemon's output so far, as a position; pass it as mark to look only
 * at what comes after (e.g. before sending SIGUSR1). 0 = from the start. */
size_t tm_daemon_log_mark(struct tm_daemon *d);
/* Waits until a line after mark contains needle, or the daemon's output
 * ends, or timeout_ms pass. Copies that line (without '\n') into line when
 * line is not NULL. Returns whether it was found. */
bool tm_daemon_wait_log(struct tm_daemon *d, size_t mark, const char *needle, char *line,
			size_t cap, int timeout_ms);
/* How many lines after mark contain needle, now. */
int tm_daemon_log_count(struct tm_daemon *d, size_t mark, const char *needle);

/* Sends SIGUSR1 and waits up to 5 s for the "stats:" line it writes, copied
 * into line. Returns whether it came. */
bool tm_daemon_stats(struct tm_daemon *d, char *line, size_t cap);

/* Runs `BINARY ARGS...` (NULL-terminated) to completion, e.g. --help, and
 * captures stdout and stderr together into out (NUL-terminated, cut at
 * cap - 1). Returns the exit status as tm_daemon_stop does. */
int tm_run(const char *const args[], char *out, size_t cap, int timeout_ms);

/* ---- a simulated target and the daemon in front of it ------------------ */

/* The pair most end-to-end tests start with. How the daemon reaches the
 * simulator follows from o->proto (see tm_daemon_start_sim): TCP today; a
 * serial line (a pty pair) would be one more kind there. */
struct tm_pair {
	struct sim *sim;
	struct tm_daemon *d;
	int port;               /* the daemon's */
};

/* Starts a simulator with o, then the daemon in front of it with extra
 * (NULL-terminated, may be NULL). Returns 0, or -errno with the reason on
 * stderr and nothing left running. */
int tm_pair_start(struct tm_pair *p, const struct sim_opts *o, const char *const extra[]);
/* The same with the target down (sim_kill) before the daemon starts;
 * sim_revive(p->sim) brings it up on the same port. */
int tm_pair_start_down(struct tm_pair *p, const struct sim_opts *o, const char *const extra[]);
/* Stops the daemon with SIGTERM and starts another in front of the same
 * simulator with extra. Returns the old daemon's exit status as
 * tm_daemon_stop does (0 for a clean stop), or -EIO when the new one did
 * not start (p->d is NULL then). */
int tm_pair_restart(struct tm_pair *p, const char *const extra[]);
/* Stops the daemon with SIGTERM, then the simulator. Returns the daemon's
 * exit status as tm_daemon_stop does: 0 for a clean stop. */
int tm_pair_stop(struct tm_pair *p);

/* ---- many clients at once ----------------------------------------------- */

/* What came of one request. TM_EXC(code): a Modbus exception reply. */
enum tm_outcome {
	TM_OK,          /* the right answer */
	TM_MISMATCH,    /* an answer, but not this request's: the one thing that must never happen */
	TM_ERROR,       /* no answer: closed, reset, timed out, could not connect */
	TM_EXC_BASE,
	TM_OUTCOMES = TM_EXC_BASE + 256
};
#define TM_EXC(code) (TM_EXC_BASE + (code))

/* One client thread of a swarm. */
struct tm_client {
	int index;              /* 0 .. n - 1 */
	int port;               /* the daemon's */
	int fd;                 /* connected by the swarm */
	void *arg;              /* the swarm's */
	void *own;              /* the round function's; freed when the client ends */
	long tally[TM_OUTCOMES];
	char why[160];          /* the first failure, told on stderr by the join */
};

/* What a round asks the swarm to do next. */
enum tm_next { TM_GO_ON, TM_RECONNECT, TM_END };

/* One round of client c (round counts from 0): sends its request(s) on
 * c->fd, checks the answers and adds them to c->tally. A round may also
 * close c->fd, set it to -1 and connect again itself in a later round
 * (the swarm closes whatever is open when the client ends). */
typedef enum tm_next (*tm_round_fn)(struct tm_client *c, int round);

struct tm_swarm;

/*
 * Starts n client threads, each connected to port, each running rounds
 * 0, 1, ... of fn: at least min_rounds, then until tm_swarm_join, never
 * more than max_rounds. TM_RECONNECT closes the connection and opens a new
 * one (a client that cannot connect ends; one that could not connect at
 * first counts a TM_ERROR). Returns NULL with errno set when it cannot.
 */
struct tm_swarm *tm_swarm_start(int port, int n, int min_rounds, int max_rounds, tm_round_fn fn,
				void *arg);
/* Tells the clients to stop after their min_rounds, waits for them, prints
 * each one's first failure, and sums their tallies into total (when not
 * NULL). */
void tm_swarm_join(struct tm_swarm *w, long total[TM_OUTCOMES]);
/* Client i's own tally (valid after the join). */
const struct tm_client *tm_swarm_client(const struct tm_swarm *w, int i);
void tm_swarm_free(struct tm_swarm *w);
/* Notes outcome in c's tally; TM_ERROR asks for a new connection. */
enum tm_next tm_client_note(struct tm_client *c, enum tm_outcome outcome);
/* The sum of total[TM_EXC(1..255)]: all exception replies. */
long tm_exceptions(const long total[TM_OUTCOMES]);

/* ---- clients ------------------------------------------------------------ */

/* How many times needle occurs in text (overlapping ones too). */
int tm_count(const char *text, const char *needle);
/* n deterministic bytes from seed (xorshift32), for files and uploads
 * whose every byte a test checks. */
void tm_fill_bytes(void *p, size_t n, unsigned seed);

/* Connects to 127.0.0.1:port with TCP_NODELAY and TM_IO_TIMEOUT_MS send
 * and receive timeouts. Returns the fd or -errno. */
int tm_connect(int port);
/* Sends all n bytes (MSG_NOSIGNAL). Returns 0 or -errno. */
int tm_write_all(int fd, const void *buf, size_t n);
/* Sends buf in pieces of step bytes with a short pause between them, so
 * the peer sees the frame split across reads. Returns 0 or -errno. */
int tm_write_split(int fd, const void *buf, size_t n, size_t step);
/* Reads exactly n bytes within timeout_ms. Returns n, fewer when the peer
 * closed first, or -errno (-ETIMEDOUT, -ECONNRESET). */
ssize_t tm_read_exact(int fd, void *buf, size_t n, int timeout_ms);
/* Waits for the peer to close. Returns 0 at end of stream or reset,
 * -EPROTO when bytes arrive instead, -ETIMEDOUT. */
int tm_wait_closed(int fd, int timeout_ms);

/* One line up to and including '\n', NUL-terminated (the echo framing). */
ssize_t tm_line_recv(int fd, char *buf, size_t cap, int timeout_ms);

/* ---- Modbus/TCP --------------------------------------------------------- */

/* Request builders; they return the length (12). */
size_t tm_modbus_req_read(uint8_t out[12], uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr,
			  uint16_t qty);
size_t tm_modbus_req_write1(uint8_t out[12], uint16_t tid, uint8_t unit, uint16_t addr,
			    uint16_t value);
/* Reads one whole MBAP frame (header checked: protocol id 0, length 2..254). */
ssize_t tm_modbus_recv(int fd, uint8_t *adu, size_t cap, int timeout_ms);
/*
 * Reads qty registers with fc (3 or 4) and checks the answer carries tid,
 * unit and fc and the right byte count. Returns 0 with *exception = 0 and
 * out[] filled, 0 with *exception = the code of an exception reply, or
 * -errno (-EPROTO when the answer does not match; -EREMOTEIO for an
 * exception reply when exception is NULL).
 */
int tm_modbus_read(int fd, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t qty,
		   uint16_t *out, uint8_t *exception);
/* A read (tm_modbus_read) whose every value is checked against the
 * simulator's formula for device_unit (sim_modbus_value). Returns TM_OK,
 * TM_EXC(code), TM_MISMATCH (an answer that is not this request's) or
 * TM_ERROR. */
enum tm_outcome tm_modbus_check(int fd, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr,
				uint16_t qty, uint8_t device_unit);
/* Polls with a read on a fresh connection until one is answered right, or
 * timeout_ms pass: the daemon's upstream slot is then usable. */
bool tm_modbus_served(int port, int timeout_ms);
/* Function 6; a normal answer must echo the request. */
int tm_modbus_write1(int fd, uint16_t tid, uint8_t unit, uint16_t addr, uint16_t value,
		     uint8_t *exception);
/* Function 16 with qty (1..123) values. */
int tm_modbus_write_multi(int fd, uint16_t tid, uint8_t unit, uint16_t addr, uint16_t qty,
			  const uint16_t *values, uint8_t *exception);

/* ---- iso8583 and mpu ---------------------------------------------------- */

/* Frame builders; out needs len + 2 (iso8583, len <= 65535) or len + 4 (mpu,
 * len <= 9999) bytes. They return the frame length. */
size_t tm_iso8583_frame(uint8_t *out, const void *payload, size_t len);
size_t tm_mpu_frame(uint8_t *out, const void *payload, size_t len);
/* Read one frame and copy its payload to payload; they return its length. */
ssize_t tm_iso8583_recv(int fd, uint8_t *payload, size_t cap, int timeout_ms);
ssize_t tm_mpu_recv(int fd, uint8_t *payload, size_t cap, int timeout_ms);

/* ---- HTTP/1.1 ----------------------------------------------------------- */

/* Reads one whole response, raw (head and body as sent, chunked or not),
 * NUL-terminated. head_request: the request was HEAD (no body follows).
 * A body with no length ends at close. An interim 1xx response is returned
 * on its own; call again for the final one. */
ssize_t tm_http_recv(int fd, char *buf, size_t cap, bool head_request, int timeout_ms);
/* Sends req (a whole request) on a new connection to port and reads one
 * response into buf (within TM_IO_TIMEOUT_MS), then closes. Returns its
 * status code (tm_http_status) or -errno. */
int tm_http_once(int port, const char *req, char *buf, size_t cap);
/* The status code of a response (0 when malformed). */
int tm_http_status(const char *resp);
/* The body of a response: the bytes after the head (NULL when none). */
const char *tm_http_body(const char *resp);

/* ---- the metrics port (--metrics-listen 127.0.0.1:0) ---------------------- */

/* The port from d's "serving /metrics on ADDR:PORT" line, waited for up to
 * 5 s; -ETIMEDOUT when there is none. */
int tm_metrics_port(struct tm_daemon *d);
/* GET /metrics on port within timeout_ms; the whole response in buf
 * (NUL-terminated). Returns its length or -errno. */
ssize_t tm_metrics_scrape(int port, char *buf, size_t cap, int timeout_ms);
/* The value on the line "NAME VALUE" of a scrape, or -1 when none. */
long tm_metric(const char *text, const char *name);

/* ---- check suites (where <check.h> was included first) ------------------- */

#ifdef CHECK_H
/* Adds to s a test case called name holding tests (timeout_s > 0: its
 * timeout, else check's default) and returns it. */
TCase *tm_add_case(Suite *s, const char *name, int timeout_s, const TTest *const tests[], size_t n);
/* Adds one test case per test, called after it without "test_", so that
 * CK_RUN_CASE picks one. */
void tm_add_each(Suite *s, int timeout_s, const TTest *const tests[], size_t n);
#define TM_TESTS(...)                                                           \
	(const TTest *const[]){ __VA_ARGS__ },                                  \
		sizeof((const TTest *const[]){ __VA_ARGS__ }) / sizeof(const TTest *)
/* TM_CASE(s, "sharing", 120, test_a, test_b); TM_EACH(s, 60, test_a, test_b); */
/* dir/rel into out; the test fails when it does not fit in cap. */
void tm_path_in(const char *dir, const char *rel, char *out, size_t cap);
/* A client connected to p's daemon (tm_connect); the test fails when it
 * cannot connect. */
int tm_pair_client(const struct tm_pair *p);
/* automake's exit status for a skipped test */
#define TM_SKIP 77
/* Runs s (and frees it). Returns EXIT_FAILURE when a test failed, else
 * TM_SKIP naming what is missing when missing is not empty (the cases that
 * needed it were left out), else EXIT_SUCCESS: main's exit status. */
int tm_run_suite(Suite *s, const char *missing);
#define TM_CASE(s, name, timeout_s, ...) tm_add_case((s), (name), (timeout_s), TM_TESTS(__VA_ARGS__))
#define TM_EACH(s, timeout_s, ...) tm_add_each((s), (timeout_s), TM_TESTS(__VA_ARGS__))
/* One test of a case with loop tests: run once (loops 0), or with _i from
 * 0 to loops - 1 (a table-driven test, one run per row). */
struct tm_test {
	const TTest *test;
	int loops;
};
#define TM_ONCE(test) { (test), 0 }
#define TM_LOOP(test, table) { (test), (int)(sizeof(table) / sizeof((table)[0])) }
TCase *tm_add_tests(Suite *s, const char *name, int timeout_s, const struct tm_test t[], size_t n);
/* TM_LOOPS(s, "splits", 0, TM_LOOP(test_splits, frames), TM_ONCE(test_long)); */
#define TM_LOOPS(s, name, timeout_s, ...)                                       \
	tm_add_tests((s), (name), (timeout_s), (const struct tm_test[]){ __VA_ARGS__ }, \
		     sizeof((const struct tm_test[]){ __VA_ARGS__ }) / sizeof(struct tm_test))
#endif

#endif
