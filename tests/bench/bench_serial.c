/* tcpmux-bench-serial: the serial scenario of `make bench`. The simulated
 * RTU device (tests/serial_sim.h) on a socat pty pair emulates a 9600-baud
 * 8N1 line: it waits while the request would still be on the wire, keeps
 * 3.5 characters of silence, and paces its answer one character time per
 * byte. Several clients read through the daemon at once; the requests per
 * second are set against the line's own limit (frame bytes x 10 bits /
 * speed plus two silences per exchange), with 0.9x of it as the goal. A
 * second run has every client ask the same question with --coalesce.
 * Exit 1 when an answer was wrong or a request failed; timings are printed,
 * not judged in the exit status. Without socat it says so and exits 0. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serial_sim.h"
#include "testing.h"

#define BAUD 9600
#define CHAR_BITS 10          /* 8N1 */
#define QTY 10                /* registers per read: 8-byte request, 25-byte answer */
#define CLIENTS 4
#define GOAL 0.9

struct run {
	int port;
	bool same;                /* every client reads the same registers */
	int64_t start, end;       /* the recorded window (ms) */
	atomic_long answered, mismatches, errors;
	atomic_int go;
};

struct client {
	struct run *run;
	int index;
};

/* Reads until the window ends, checking each value; counts the answers
 * that arrive inside the window. */
static void *client_main(void *arg)
{
	struct client *c = arg;
	struct run *r = c->run;
	int fd = tm_connect(r->port);
	if (fd < 0) {
		atomic_fetch_add(&r->errors, 1);
		return NULL;
	}
	while (!atomic_load(&r->go))
		tm_sleep_ms(1);
	uint16_t v[QTY];
	for (uint16_t tid = 1; tm_now_ms() < r->end; tid++) {
		uint16_t addr = r->same ? 100 : (uint16_t)(1000 * (c->index + 1) + tid % 50);
		uint8_t exc = 0;
		int rc = tm_modbus_read(fd, tid, 1, 3, addr, QTY, v, &exc);
		int64_t now = tm_now_ms();
		bool counted = now >= r->start && now <= r->end;
		if (rc != 0 || exc != 0) {
			atomic_fetch_add(&r->errors, 1);
			break;
		}
		bool good = true;
		for (int k = 0; k < QTY; k++)
			good = good && v[k] == serial_sim_initial((uint16_t)(addr + k));
		if (!good)
			atomic_fetch_add(&r->mismatches, 1);
		else if (counted)
			atomic_fetch_add(&r->answered, 1);
	}
	close(fd);
	return NULL;
}

/* The line's own limit in exchanges per second. */
static double line_limit(void)
{
	double char_s = (double)CHAR_BITS / BAUD;
	double bytes = 8 + (5 + 2 * QTY);
	return 1.0 / (bytes * char_s + 2 * 3.5 * char_s);
}

static int measure(const char *port_path, bool same, int warm_ms, int dur_ms, double *rate, long *bad)
{
	char speed[16];
	snprintf(speed, sizeof speed, "%d", BAUD);
	const char *args[] = { "-p", "modbus", "-t", port_path, "--serial-speed", speed, "--timeout", "30s",
			       same ? "--coalesce" : NULL, NULL };
	struct tm_daemon *d = tm_daemon_start(args);
	if (d == NULL)
		return -ECHILD;
	struct run r = { .port = tm_daemon_port(d), .same = same };
	struct client c[CLIENTS];
	pthread_t t[CLIENTS];
	for (int i = 0; i < CLIENTS; i++) {
		c[i] = (struct client){ .run = &r, .index = i };
		pthread_create(&t[i], NULL, client_main, &c[i]);
	}
	r.start = tm_now_ms() + warm_ms;
	r.end = r.start + dur_ms;
	atomic_store(&r.go, 1);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(t[i], NULL);
	tm_daemon_stop(d, SIGTERM, 0);
	*rate = (double)atomic_load(&r.answered) * 1000.0 / dur_ms;
	*bad = atomic_load(&r.mismatches) + atomic_load(&r.errors);
	return 0;
}

/* Runs unless --only names other scenarios and not "serial". */
static void parse(int argc, char **argv, bool *quick, int *dur_ms, bool *run)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },  { "duration", required_argument, NULL, 'd' },
		{ "only", required_argument, NULL, 'o' }, { "repeat", required_argument, NULL, 'r' },
		{ "keep", no_argument, NULL, 'k' },   { NULL, 0, NULL, 0 },
	};
	const char *q = getenv("BENCH_QUICK");
	*quick = q && *q && strcmp(q, "0") != 0;
	*run = true;
	*dur_ms = 0;
	opterr = 0;
	for (int c; (c = getopt_long(argc, argv, "qd:o:r:k", longopts, NULL)) != -1;) {
		if (c == 'q')
			*quick = true;
		else if (c == 'd')
			*dur_ms = atoi(optarg);
		else if (c == 'o')
			*run = strstr(optarg, "serial") != NULL;
	}
	if (*dur_ms < 1000)
		*dur_ms = *quick ? 1000 : 5000;
}

int main(int argc, char **argv)
{
	bool quick, run;
	int dur_ms;
	parse(argc, argv, &quick, &dur_ms, &run);
	if (!run)
		return 0;
	setenv("TM_QUIET", "1", 1);
	setvbuf(stdout, NULL, _IOLBF, 0);
	alarm(300);
	printf("\nserial: %d clients reading %d registers each through a %d-baud 8N1 line "
	       "(simulated device, socat pty pair), %d ms recorded\n", CLIENTS, QTY, BAUD, dur_ms);
	if (!serial_link_available()) {
		printf("  skipped: socat is missing (apt-get install socat)\n");
		return 0;
	}
	char dir[] = "/tmp/tcpmux-bench-serial-XXXXXX";
	struct serial_link link;
	if (mkdtemp(dir) == NULL || serial_link_start(&link, dir) < 0) {
		printf("  failed: no pty pair\n");
		return 1;
	}
	struct serial_sim_opts so = { .path = link.dev, .baud = BAUD, .char_bits = CHAR_BITS, .unit = 1 };
	struct serial_sim *dev = serial_sim_start(&so);
	double limit = line_limit(), rate[2] = { 0, 0 };
	long bad[2] = { 0, 0 };
	int rc0 = measure(link.port, false, 300, dur_ms, &rate[0], &bad[0]);
	int rc1 = measure(link.port, true, 300, dur_ms, &rate[1], &bad[1]);
	struct serial_sim_stats st;
	serial_sim_get_stats(dev, &st);
	serial_sim_stop(dev);
	serial_link_stop(&link);
	rmdir(dir);
	printf("  line limit: %.1f requests/s (33 bytes x %d bits / %d + 2 x 3.5 characters of silence)\n",
	       limit, CHAR_BITS, BAUD);
	printf("  different reads:          %6.1f requests/s = %.2fx the line's limit (goal >= %.1fx: %s); bad %ld\n",
	       rate[0], rate[0] / limit, GOAL, rate[0] >= GOAL * limit ? "MET" : "NOT MET", bad[0]);
	printf("  the same read, --coalesce: %6.1f requests/s = %.2fx the line's limit; bad %ld\n", rate[1],
	       rate[1] / limit, bad[1]);
	printf("  device: %ld requests, %ld silences shorter than 3.5 characters, %ld CRC errors\n", st.requests,
	       st.gap_violations, st.crc_errors);
	if (rc0 < 0 || rc1 < 0)
		printf("  failed: the daemon did not start\n");
	return rc0 < 0 || rc1 < 0 || bad[0] || bad[1] || st.gap_violations || st.crc_errors ? 1 : 0;
}
