/* Modbus load for the benchmark: closed-loop (or paced) client threads,
 * each answer checked against sim_modbus_value, per-request latency on
 * CLOCK_MONOTONIC in per-thread arrays merged for percentiles. */
#include "config.h"
#include "bench.h"
#include "sim.h"
#include "testing.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_STACK (64 * 1024)
#define LAT_START 4096
#define LAT_MAX (16u * 1024 * 1024)  /* samples kept per thread; more are counted only */
#define READ_QTY 8                   /* registers per read: a typical inverter poll */
#define UNIT 1
#define IDLE_BATCH 250               /* below the daemon's listen backlog (1024) */
#define IDLE_BATCH_WAIT_MS 10000

int64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sleep_until(int64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000), (long)(t % 1000000000) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Reads one MBAP frame with plain blocking recv calls (the socket's
 * SO_RCVTIMEO bounds each), so a request costs the client one send and
 * usually one recv: the client's own cost stays small next to the
 * daemon's. Returns the frame length or -errno; *got is how many bytes
 * arrived. */
static ssize_t recv_frame(int fd, uint8_t *buf, size_t cap, size_t *got)
{
	size_t have = 0, need = 6;
	while (have < need) {
		ssize_t r = recv(fd, buf + have, cap - have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		if (r == 0)
			return -ECONNRESET;
		have += (size_t)r;
		*got = have;
		if (need == 6 && have >= 6) {
			size_t l = be16(buf + 4);
			if (be16(buf + 2) != 0 || l < 2 || l > 254 || 6 + l > cap)
				return -EPROTO;
			need = 6 + l;
		}
	}
	/* One request in flight per connection: nothing may follow the frame. */
	return have == need ? (ssize_t)need : -EPROTO;
}

/* Says what is wrong with an answer into why (when not NULL): what was
 * asked, and the answer's first bytes. Returns 1 (a mismatch). */
static int mismatch(char *why, size_t cap, const char *what, const uint8_t *req, const uint8_t *resp,
		    ssize_t n)
{
	if (why == NULL || cap == 0)
		return 1;
	int k = snprintf(why, cap, "%s: asked tid %u unit %u fc %u addr %u qty %u; got %zd bytes:", what,
			 be16(req), req[6], req[7], be16(req + 8), be16(req + 10), n);
	for (ssize_t i = 0; i < n && i < 16 && k > 0 && (size_t)k < cap; i++)
		k += snprintf(why + k, cap - (size_t)k, " %02x", resp[i]);
	return 1;
}

int bench_modbus_read(int fd, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t qty,
		      uint8_t *exception, char *why, size_t why_cap)
{
	uint8_t req[12], resp[260];
	tm_modbus_req_read(req, tid, unit, fc, addr, qty);
	ssize_t w;
	do
		w = send(fd, req, sizeof req, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	if (w != (ssize_t)sizeof req)
		return -EIO;
	size_t have = 0;
	ssize_t n = recv_frame(fd, resp, sizeof resp, &have);
	if (n == -EPROTO)
		return mismatch(why, why_cap, "malformed answer, or bytes after it", req, resp, (ssize_t)have);
	if (n < 0)
		return (int)n;
	if (be16(resp) != tid)
		return mismatch(why, why_cap, "wrong transaction id", req, resp, n);
	if (resp[6] != unit)
		return mismatch(why, why_cap, "wrong unit id", req, resp, n);
	if (resp[7] == (fc | 0x80)) {
		if (n != 9)
			return mismatch(why, why_cap, "malformed exception", req, resp, n);
		if (exception)
			*exception = resp[8];
		return -EREMOTEIO;
	}
	if (resp[7] != fc || n != 9 + 2 * qty || resp[8] != 2 * qty)
		return mismatch(why, why_cap, "wrong function or length", req, resp, n);
	for (uint16_t i = 0; i < qty; i++)
		if (be16(resp + 9 + 2 * i) != sim_modbus_value(fc, (uint16_t)(addr + i), unit))
			return mismatch(why, why_cap, "wrong value", req, resp, n);
	return 0;
}

/* A read from UNIT, checked. Returns 0, 1 for a mismatch, or -errno
 * (-EREMOTEIO for an exception reply). */
static int modbus_read_checked(int fd, uint16_t tid, uint8_t fc, uint16_t addr, uint16_t qty)
{
	return bench_modbus_read(fd, tid, UNIT, fc, addr, qty, NULL, NULL, 0);
}

int bench_modbus_once(int fd, uint16_t tid, uint16_t addr, uint16_t qty)
{
	return modbus_read_checked(fd, tid, 3, addr, qty);
}

struct plan {
	int64_t t_start, t_window, t_end; /* ns */
	int64_t pace_ns;
	int clients;
	int fixed_qty;       /* > 0: every client reads fc 3, fixed_qty at fixed_addr */
	uint16_t fixed_addr;
	pthread_mutex_t lock;
	pthread_cond_t go;   /* released: the times above are set */
	bool released;
};

/* Every client starts at once, when the main thread has set the times. */
static void wait_go(struct plan *p)
{
	pthread_mutex_lock(&p->lock);
	while (!p->released)
		pthread_cond_wait(&p->go, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

static void release(struct plan *p, int warm_ms, int dur_ms)
{
	pthread_mutex_lock(&p->lock);
	p->t_start = bench_now_ns() + 2000000;
	p->t_window = p->t_start + (int64_t)warm_ms * 1000000;
	p->t_end = p->t_window + (int64_t)dur_ms * 1000000;
	p->released = true;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->lock);
}

struct client {
	pthread_t thread;
	int idx;
	int fd;
	struct plan *plan;
	uint32_t *lat;       /* ns, answers inside the window */
	size_t nlat, cap;
	long answered;       /* inside the window */
	long mismatches, errors;
	int first_err;
};

static void record(struct client *c, int64_t ns)
{
	c->answered++;
	if (c->nlat == c->cap) {
		if (c->cap >= LAT_MAX)
			return;
		size_t ncap = c->cap ? c->cap * 2 : LAT_START;
		uint32_t *p = realloc(c->lat, ncap * sizeof *p);
		if (p == NULL)
			return;
		c->lat = p;
		c->cap = ncap;
	}
	c->lat[c->nlat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	wait_go(c->plan);
	const struct plan *p = c->plan;
	uint16_t tid = (uint16_t)(c->idx * 1009);
	uint16_t addr = (uint16_t)((c->idx * 97) % 60000);
	int64_t next = p->t_start;
	if (p->pace_ns > 0)
		next += p->pace_ns * c->idx / p->clients; /* spread the pollers over one period */

	/* Bounded by t_end; each request by the socket timeouts. */
	for (;;) {
		if (p->pace_ns > 0) {
			if (next >= p->t_end)
				break;
			bench_sleep_until(next);
			next += p->pace_ns;
		}
		int64_t t0 = bench_now_ns();
		if (t0 >= p->t_end)
			break;
		tid++;
		uint8_t fc;
		uint16_t qty;
		if (p->fixed_qty > 0) {
			fc = 3;
			addr = p->fixed_addr;
			qty = (uint16_t)p->fixed_qty;
		} else {
			addr = (uint16_t)((addr + READ_QTY) % 60000);
			fc = (tid & 1) ? 3 : 4;
			qty = READ_QTY;
		}
		int rc = modbus_read_checked(c->fd, tid, fc, addr, qty);
		int64_t t1 = bench_now_ns();
		if (rc == 1) {
			c->mismatches++;
			break; /* the stream is out of step: stop this client */
		}
		if (rc < 0) {
			c->errors++;
			if (c->first_err == 0)
				c->first_err = -rc;
			if (rc != -EREMOTEIO)
				break;
			continue;
		}
		if (t1 >= p->t_window && t1 < p->t_end)
			record(c, t1 - t0);
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

void bench_percentiles(uint32_t *ns, size_t n, double *p50_us, double *p99_us, double *max_us)
{
	if (n == 0) {
		*p50_us = *p99_us = *max_us = 0;
		return;
	}
	qsort(ns, n, sizeof *ns, cmp_u32);
	/* nearest rank */
	size_t i50 = (n * 50 + 99) / 100, i99 = (n * 99 + 99) / 100;
	*p50_us = ns[i50 ? i50 - 1 : 0] / 1000.0;
	*p99_us = ns[i99 ? i99 - 1 : 0] / 1000.0;
	*max_us = ns[n - 1] / 1000.0;
}

/* CPU time (user + system, us) of this process, the simulated targets'
 * threads that ended meanwhile included (unlike bench_proc_cpu_us). */
static int64_t self_cpu_us(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return -1;
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_usec;
}

/* Samples the recorded window of a released plan: the host's busy share,
 * the target's requests, the daemon's RSS and threads at its end into res;
 * cpu[0] the daemon's CPU time (us) in it, cpu[1] this process's (-1 when
 * unknown). */
static void watch_window(const struct bench_load *load, const struct plan *plan, struct bench_result *res,
			 int64_t cpu[2])
{
	bench_sleep_until(plan->t_window);
	int64_t cpu0 = load->daemon > 0 ? bench_proc_cpu_us(load->daemon) : -1;
	int64_t self0 = self_cpu_us();
	int64_t host0[2] = { 0, 0 }, host1[2] = { 0, 0 };
	long sim0 = load->target ? TM_SIM_STAT(load->target, requests) : -1;
	bench_host_cpu(&host0[0], &host0[1]);
	bench_sleep_until(plan->t_end);
	bench_host_cpu(&host1[0], &host1[1]);
	if (load->target)
		res->target_requests = TM_SIM_STAT(load->target, requests) - sim0;
	/* /proc/stat counts in clock ticks: paced load aliases with them */
	res->host_busy = load->pace_us > 0 ? -1 : bench_host_busy(host0, host1);
	int64_t cpu1 = load->daemon > 0 ? bench_proc_cpu_us(load->daemon) : -1;
	int64_t self1 = self_cpu_us();
	if (load->daemon > 0)
		bench_proc_status(load->daemon, &res->rss_kib, &res->threads);
	cpu[0] = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
	cpu[1] = self0 >= 0 && self1 >= 0 ? self1 - self0 : -1;
}

/* Adds up the clients' counts and latencies into res. */
static void merge_clients(const struct client *cl, int n, struct bench_result *res)
{
	size_t total = 0, k = 0;
	for (int i = 0; i < n; i++)
		total += cl[i].nlat;
	uint32_t *all = malloc((total ? total : 1) * sizeof *all);
	int first_err = 0;
	for (int i = 0; i < n; i++) {
		if (all && cl[i].nlat > 0) /* a client that got no answer has no latencies (lat may be NULL) */
			memcpy(all + k, cl[i].lat, cl[i].nlat * sizeof *all);
		k += cl[i].nlat;
		res->requests += cl[i].answered;
		res->mismatches += cl[i].mismatches;
		res->errors += cl[i].errors;
		res->clients_answered += cl[i].answered > 0;
		if (first_err == 0)
			first_err = cl[i].first_err;
	}
	if (all)
		bench_percentiles(all, total, &res->p50_us, &res->p99_us, &res->max_us);
	free(all);
	if (first_err != 0)
		snprintf(res->note, sizeof res->note, "first error: %s", strerror(first_err));
}

int bench_modbus_run(const struct bench_load *load, struct bench_result *res)
{
	memset(res, 0, sizeof *res);
	res->rss_kib = res->threads = -1;
	res->cpu_us_per_req = -1;
	res->load_cpu_us_per_req = -1;
	res->host_busy = -1;
	res->target_requests = -1;

	struct client *cl = calloc((size_t)load->clients, sizeof *cl);
	struct plan plan = { .clients = load->clients, .pace_ns = (int64_t)load->pace_us * 1000,
			     .fixed_qty = load->fixed_qty, .fixed_addr = load->fixed_addr,
			     .lock = PTHREAD_MUTEX_INITIALIZER, .go = PTHREAD_COND_INITIALIZER };
	if (cl == NULL) {
		snprintf(res->note, sizeof res->note, "out of memory");
		return -ENOMEM;
	}
	int nconn = 0, rc = 0;
	for (; nconn < load->clients; nconn++) {
		cl[nconn].fd = tm_connect(load->port);
		if (cl[nconn].fd < 0) {
			rc = cl[nconn].fd;
			snprintf(res->note, sizeof res->note, "connect %d of %d failed: %s", nconn + 1,
				 load->clients, strerror(-rc));
			res->errors++;
			break;
		}
		cl[nconn].idx = nconn;
		cl[nconn].plan = &plan;
	}

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, CLIENT_STACK);
	int started = 0;
	if (rc == 0) {
		for (; started < load->clients; started++) {
			if (pthread_create(&cl[started].thread, &attr, client_main, &cl[started]) != 0)
				break;
		}
		if (started < load->clients) {
			rc = -EAGAIN;
			snprintf(res->note, sizeof res->note, "only %d client threads could start", started);
			res->errors++;
			/* let the started ones end at once */
			release(&plan, 0, 0);
			for (int i = 0; i < started; i++)
				pthread_join(cl[i].thread, NULL);
		}
	}
	if (rc == 0) {
		release(&plan, load->warm_ms, load->dur_ms);
		int64_t cpu[2];
		watch_window(load, &plan, res, cpu);
		for (int i = 0; i < started; i++)
			pthread_join(cl[i].thread, NULL);

		merge_clients(cl, started, res);
		res->rate = res->requests / (load->dur_ms / 1000.0);
		if (cpu[0] >= 0 && res->requests > 0)
			res->cpu_us_per_req = (double)cpu[0] / (double)res->requests;
		if (cpu[1] >= 0 && res->requests > 0)
			res->load_cpu_us_per_req = (double)cpu[1] / (double)res->requests;
		res->valid = true;
	}
	pthread_attr_destroy(&attr);
	for (int i = 0; i < nconn; i++) {
		close(cl[i].fd);
		free(cl[i].lat);
	}
	free(cl);
	return rc;
}

/* ---- idle clients ------------------------------------------------------- */

int bench_idle_open(int port, int want, int *fds, int *n, pid_t daemon, long threads_base)
{
	int target = *n + want;
	while (*n < target) {
		int batch_end = *n + IDLE_BATCH < target ? *n + IDLE_BATCH : target;
		while (*n < batch_end) {
			int fd = tm_connect(port);
			if (fd < 0)
				return fd;
			fds[(*n)++] = fd;
		}
		if (daemon <= 0)
			continue;
		/* Every client gets a thread: wait until the acceptor caught up,
		 * so the next batch does not overflow the listen backlog. */
		int64_t deadline = bench_now_ns() + (int64_t)IDLE_BATCH_WAIT_MS * 1000000;
		long rss, threads = 0;
		for (;;) {
			if (bench_proc_status(daemon, &rss, &threads) < 0)
				return -ESRCH;
			if (threads >= threads_base + *n)
				break;
			if (bench_now_ns() >= deadline)
				return -ETIMEDOUT;
			poll(NULL, 0, 5);
		}
	}
	return 0;
}

void bench_idle_close(int *fds, int *n)
{
	for (int i = 0; i < *n; i++)
		close(fds[i]);
	*n = 0;
}
