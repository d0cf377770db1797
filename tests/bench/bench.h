/* tcpmux-bench: shared pieces of the benchmark (load generation, child
 * processes, /proc readings). Everything runs on 127.0.0.1. */
#ifndef TCPMUX_BENCH_H
#define TCPMUX_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_IO_TIMEOUT_MS 5000   /* SO_RCVTIMEO/SO_SNDTIMEO of client sockets */
#define BENCH_START_TIMEOUT_MS 10000
#define BENCH_STOP_TIMEOUT_MS 15000 /* the daemon waits up to --timeout (10 s) for exchanges */

/* ---- time --------------------------------------------------------------- */

/* Nanoseconds on CLOCK_MONOTONIC. */
int64_t bench_now_ns(void);
/* Sleeps until the CLOCK_MONOTONIC time t (ns). */
void bench_sleep_until(int64_t t);

/* ---- Modbus load (bench_load.c) ----------------------------------------- */

struct sim;  /* sim.h */

/* One measurement: clients connect, all start together, run warm_ms
 * without recording, then dur_ms recorded. A request counts when its
 * answer arrives inside the recorded window (so requests queued at the
 * window's start are not lost from the rate). */
struct bench_load {
	int port;
	int clients;
	int warm_ms;
	int dur_ms;
	int pace_us;         /* 0: back to back; else one request per client every pace_us */
	pid_t daemon;        /* > 0: sample its CPU time, RSS and threads at the window's end */
	/* 0: each client walks addresses of its own, functions 3 and 4 in
	 * turn; > 0: every client reads function 3, fixed_qty registers at
	 * fixed_addr (all of them ask the same question) */
	int fixed_qty;
	uint16_t fixed_addr;
	struct sim *target;  /* when set, count the requests it received inside the window */
};

struct bench_result {
	bool valid;          /* the measurement ran */
	long requests;       /* answered inside the window */
	double rate;         /* requests per second */
	double p50_us, p99_us, max_us;
	long mismatches;     /* answers that did not match the request or sim_modbus_value */
	long errors;         /* timeouts, resets, exception replies, connect failures */
	long clients_answered; /* clients with at least one answer in the window */
	long rss_kib;        /* of the daemon at the window's end, -1 when not sampled */
	long threads;
	double cpu_us_per_req; /* daemon CPU time (user + system) per answered request, -1 if none */
	/* CPU time of the load itself per answered request: the client
	 * threads and the simulated target (both in this process), or wrk and
	 * nginx; -1 if not sampled */
	double load_cpu_us_per_req;
	double host_busy;    /* share of all CPUs of the machine busy during the window, -1 if unknown */
	long target_requests; /* requests load->target received inside the window, -1 if not sampled */
	char note[160];      /* set when something went wrong */
};

int bench_modbus_run(const struct bench_load *load, struct bench_result *res);

/* One request over fd (fc 3, qty registers at addr, checked). Returns 0,
 * 1 for a mismatch, or -errno. */
int bench_modbus_once(int fd, uint16_t tid, uint16_t addr, uint16_t qty);

/* Reads qty registers with fc (3 or 4) from unit and checks the answer:
 * transaction id, unit, function, byte count, and each value against
 * sim_modbus_value. Returns 0, 1 for a mismatch (including an answer that
 * is malformed or followed by extra bytes; why, when not NULL, then says
 * what was asked and what came), or -errno: -EREMOTEIO for an exception
 * reply (its code in *exception when not NULL), -ETIMEDOUT when nothing
 * came within the socket's SO_RCVTIMEO, -ECONNRESET when the connection
 * closed. */
int bench_modbus_read(int fd, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t qty,
		      uint8_t *exception, char *why, size_t why_cap);

/* Opens up to want idle client connections to port, appending their fds
 * to fds[*n]. Connects in batches and, when daemon > 0, waits after each
 * batch until the daemon shows a thread per client (threads_base + *n).
 * Returns 0, or -errno of the first failure (*n says how far it got). */
int bench_idle_open(int port, int want, int *fds, int *n, pid_t daemon, long threads_base);
void bench_idle_close(int *fds, int *n);

/* Latency percentiles over ns samples (sorted in place). */
void bench_percentiles(uint32_t *ns, size_t n, double *p50_us, double *p99_us, double *max_us);

/* ---- processes (bench_proc.c) ------------------------------------------- */

/* A temporary directory for logs and the nginx config, removed at exit
 * by bench_tmp_cleanup (only the files this program made). */
const char *bench_tmp_dir(void);
void bench_tmp_cleanup(void);

/* A port that was free a moment ago on 127.0.0.1, or -errno. */
int bench_free_port(void);
/* Polls a connect to 127.0.0.1:port every few ms until it succeeds,
 * child exits, or timeout_ms. Returns 0, -ECHILD or -ETIMEDOUT. */
int bench_wait_listening(int port, pid_t child, int timeout_ms);

/* Starts argv (argv[0] a path) with stdin on /dev/null and stdout and
 * stderr appended to log_path (or to the pipe *out_fd when log_path is
 * NULL). The child dies with this process (PR_SET_PDEATHSIG) and does not
 * inherit its other descriptors. Returns the pid or -errno. */
pid_t bench_spawn(const char *const argv[], const char *log_path, int *out_fd);
/* Sends sig, waits up to timeout_ms, then SIGKILLs. Returns the exit code,
 * 128 + signal, or -ETIMEDOUT when it had to be killed. */
int bench_reap(pid_t pid, int sig, int timeout_ms);

struct bench_daemon {
	pid_t pid;
	int port;
	char log[256];
};

/*
 * Runs the daemon WITHOUT -v (warnings only: no per-connection log line)
 * with `server -l 127.0.0.1:PORT ARGS...`, PORT picked by bench_free_port
 * (retried when taken meanwhile), its output in a log file, and waits until
 * it accepts connections. Returns 0 or -errno (the log tail is printed).
 */
int bench_daemon_start(struct bench_daemon *d, const char *const args[]);
/* The same with the daemon binary bin (NULL: the one under test). */
int bench_daemon_start_bin(struct bench_daemon *d, const char *bin, const char *const args[]);
/* SIGTERM, wait, SIGKILL if needed. Returns the exit code as bench_reap. */
int bench_daemon_stop(struct bench_daemon *d);
/* Warning and error lines in the daemon's log so far. */
int bench_daemon_log_lines(const struct bench_daemon *d);
/* Prints the last lines of the daemon's log to stderr. */
void bench_daemon_log_tail(const struct bench_daemon *d, int lines);

/* VmRSS (KiB) and Threads from /proc/PID/status; -1 when unreadable. */
int bench_proc_status(pid_t pid, long *rss_kib, long *threads);
/* Open descriptors of the process (entries of /proc/PID/fd), or -errno. */
long bench_proc_fds(pid_t pid);
/* Whether the child is still running (reaps it when it is not; *status
 * then holds the exit code, or 128 + signal). */
bool bench_child_running(pid_t pid, int *status);
/* CPU time (user + system) of the process's live threads in microseconds,
 * or -1. */
int64_t bench_proc_cpu_us(pid_t pid);

/* The system calls a process makes, counted by strace -f -c attached to
 * it: the total, and the three most frequent (sendto 20000, ...). */
struct bench_syscalls {
	long total;
	struct {
		char name[24];
		long calls;
	} top[3];
};

/* Attaches `strace -f -c` to the running process pid (every thread, and
 * those it starts); *tracer is strace's pid, its summary goes to out_path.
 * Returns once every thread of pid is traced: 0, -ENOENT when strace is
 * missing, or -errno. */
int bench_strace_attach(pid_t pid, const char *out_path, pid_t *tracer);
/* Detaches strace (SIGINT), waits for it and reads its summary. Returns 0
 * or -errno. */
int bench_strace_finish(pid_t tracer, const char *out_path, struct bench_syscalls *sc);

/* Busy and total CPU time of the whole machine so far (/proc/stat, clock
 * ticks over all CPUs); 0 or -errno. */
int bench_host_cpu(int64_t *busy, int64_t *total);
/* The busy share between two readings, or -1. */
double bench_host_busy(const int64_t before[2], const int64_t after[2]);

/* Finds an executable by name in $PATH and then in /usr/sbin and /sbin.
 * Returns false when absent. */
bool bench_find_program(const char *name, char *path, size_t cap);

/* Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new
 * soft limit (children inherit it). */
long bench_raise_nofile(void);

/* ---- soak (bench_soak.c) ------------------------------------------------ */

/* Runs the daemon for seconds under well-behaved and misbehaving clients
 * in front of a faulty target; prints progress and a verdict. Returns 0
 * when the verdict is good, 1 otherwise. */
int bench_soak(int seconds);

/* ---- HTTP (bench_http.c) ------------------------------------------------ */

struct bench_nginx {
	pid_t pid;
	int port;
	char dir[256];
};

/* Starts nginx (daemon off, one process) on a free loopback port serving
 * a small static file /index.html from a directory under bench_tmp_dir().
 * Returns 0, -ENOENT when nginx is not installed, or another -errno. */
int bench_nginx_start(struct bench_nginx *n, const char *nginx_path);
void bench_nginx_stop(struct bench_nginx *n);

/* Runs wrk with keep-alive connections against url for dur_s seconds and
 * parses its report. Sets res->note when it cannot. The CPU time of
 * daemon (when > 0) and of wrk with server (the load) is sampled. */
int bench_wrk_run(const char *wrk_path, const char *url, int threads, int conns, int dur_s,
		  pid_t daemon, pid_t server, struct bench_result *res);

#endif
