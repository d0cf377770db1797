/* End to end over a serial line: the real daemon with -t on one end of a
 * pty pair from socat, the simulated RTU device (tests/serial_sim.h) on
 * the other, pacing its answers as the line would. Several clients at
 * once, broadcasts, the line's timing, faults (slow, split, noisy, mute
 * devices, the port vanishing and coming back), the adapter's echo, and
 * the Modbus options over the line. Without socat the program exits 77. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "real/proc.h"
#include "serial_sim.h"
#include "testing.h"

/* The line, the device on it and the daemon in front. */
struct bus {
	char dir[PATH_MAX];
	struct serial_link link;
	struct serial_sim *dev;
	struct tm_daemon *d;
};

/* Brings up a line at baud with a device (unit 1 unless o says) and the
 * daemon with -t on it plus more options. */
static void bus_up(struct bus *b, int baud, const struct serial_sim_opts *o, const char *const more[])
{
	ck_assert_int_eq(proc_tmpdir("serial", b->dir, sizeof b->dir), 0);
	ck_assert_int_eq(serial_link_start(&b->link, b->dir), 0);
	struct serial_sim_opts so = { .unit = 1 };
	if (o != NULL)
		so = *o;
	so.path = b->link.dev;
	so.baud = baud;
	b->dev = serial_sim_start(&so);
	ck_assert_ptr_nonnull(b->dev);
	char speed[16];
	snprintf(speed, sizeof speed, "%d", baud);
	const char *args[] = { "-p", "modbus", "-t", b->link.port, "--serial-speed", speed, NULL };
	b->d = tm_daemon_start_args(args, more);
	ck_assert_ptr_nonnull(b->d);
	ck_assert(tm_daemon_wait_log(b->d, 0, "connected to", NULL, 0, 5000));
}

/* The daemon must still run and stop cleanly; the master never broke
 * the line's silence. */
static void bus_down(struct bus *b)
{
	struct serial_sim_stats st;
	serial_sim_get_stats(b->dev, &st);
	ck_assert(tm_daemon_running(b->d));
	ck_assert_int_eq(tm_daemon_stop(b->d, SIGTERM, 0), 0);
	serial_sim_stop(b->dev);
	serial_link_stop(&b->link);
	ck_assert_int_eq(st.gap_violations, 0);
	ck_assert_int_eq(st.crc_errors, 0);
}

static int client(const struct bus *b)
{
	int fd = tm_connect(tm_daemon_port(b->d));
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* bus_up, and a client connected to its daemon. */
static int bus_up_client(struct bus *b, int baud, const struct serial_sim_opts *o, const char *const more[])
{
	bus_up(b, baud, o, more);
	return client(b);
}

/* Closes the client, then bus_down. */
static void bus_down_client(struct bus *b, int fd)
{
	close(fd);
	bus_down(b);
}

/* Reads qty registers from unit at addr and checks them against the
 * device's initial values. */
static void read_initial(int fd, uint16_t tid, uint8_t unit, uint16_t addr, uint16_t qty)
{
	uint16_t v[125];
	uint8_t exc = 0xFF;
	ck_assert_int_eq(tm_modbus_read(fd, tid, unit, 3, addr, qty, v, &exc), 0);
	ck_assert_int_eq(exc, 0);
	for (uint16_t i = 0; i < qty; i++)
		ck_assert_uint_eq(v[i], serial_sim_initial((uint16_t)(addr + i)));
}

/* After a fault: reads qty registers at addr (ids from 10 on, 20 ms
 * apart, at most tries times) until the answer is not an exception, into
 * v. Meanwhile only the exception code allowed may come (0: any). Returns
 * whether the line served one again. */
static bool read_until_served(int fd, uint16_t addr, uint16_t qty, uint16_t *v, int tries, uint8_t allowed)
{
	bool ok = false;
	for (int i = 0; i < tries && !ok; i++) {
		uint8_t exc = 0;
		ck_assert_int_eq(tm_modbus_read(fd, (uint16_t)(10 + i), 1, 3, addr, qty, v, &exc), 0);
		ok = exc == 0;
		if (!ok) {
			if (allowed != 0)
				ck_assert_int_eq(exc, allowed);
			tm_sleep_ms(20);
		}
	}
	return ok;
}

/* Whether the device's register addr comes to hold v within 2 s. */
static bool wait_reg(struct serial_sim *dev, uint16_t addr, uint16_t v)
{
	TM_WAIT_FOR(serial_sim_reg(dev, addr) == v, 2000);
	return serial_sim_reg(dev, addr) == v;
}

/* ---- several clients on one line ---------------------------------------- */

#define NCLIENTS 6
#define ROUNDS 8

struct worker {
	const struct bus *b;
	int index;
	int bad;        /* values that were not what this client wrote or expects */
	char why[160];
};

/* Each client writes its own registers and reads them back, and reads a
 * shared block, checking every value: an answer meant for another
 * client would show as a wrong value, id or count. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int fd = tm_connect(tm_daemon_port(w->b->d));
	if (fd < 0) {
		snprintf(w->why, sizeof w->why, "connect: %s", strerror(-fd));
		w->bad++;
		return NULL;
	}
	uint16_t base = (uint16_t)(1000 * (w->index + 1)), vals[10], got[125];
	for (int r = 0; r < ROUNDS && w->bad == 0; r++) {
		uint8_t exc = 0;
		uint16_t tid = (uint16_t)(w->index * 1000 + r * 3);
		for (int k = 0; k < 10; k++)
			vals[k] = (uint16_t)(w->index * 4099 + r * 131 + k);
		int rc = tm_modbus_write_multi(fd, tid, 1, base, 10, vals, &exc);
		if (rc == 0 && exc == 0)
			rc = tm_modbus_read(fd, (uint16_t)(tid + 1), 1, 3, base, 10, got, &exc);
		for (int k = 0; rc == 0 && exc == 0 && k < 10; k++)
			if (got[k] != vals[k])
				rc = -EBADMSG;
		if (rc == 0 && exc == 0)
			rc = tm_modbus_read(fd, (uint16_t)(tid + 2), 1, 4, 100, 20, got, &exc);
		for (int k = 0; rc == 0 && exc == 0 && k < 20; k++)
			if (got[k] != serial_sim_initial((uint16_t)(100 + k)))
				rc = -EBADMSG;
		if (rc != 0 || exc != 0) {
			snprintf(w->why, sizeof w->why, "client %d round %d: %s, exception %u", w->index, r,
				 strerror(-rc), exc);
			w->bad++;
		}
	}
	close(fd);
	return NULL;
}

START_TEST(test_clients_share_the_line)
{
	struct bus b;
	bus_up(&b, 38400, NULL, NULL);
	pthread_t t[NCLIENTS];
	struct worker w[NCLIENTS];
	for (int i = 0; i < NCLIENTS; i++) {
		w[i] = (struct worker){ .b = &b, .index = i };
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < NCLIENTS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < NCLIENTS; i++)
		ck_assert_msg(w[i].bad == 0, "%s", w[i].why);
	struct serial_sim_stats st;
	serial_sim_get_stats(b.dev, &st);
	ck_assert_int_eq(st.requests, NCLIENTS * ROUNDS * 3);
	ck_assert_int_eq(st.answers, NCLIENTS * ROUNDS * 3);
	bus_down(&b);
}
END_TEST

START_TEST(test_broadcast)
{
	struct bus b;
	int fd = bus_up_client(&b, 19200, NULL, NULL);
	uint8_t exc = 0xFF;
	/* a write to unit 0 goes out, nobody answers, the client gets the
	 * answer a device gives to its write (README, "Serial devices") */
	int64_t t0 = tm_now_ms();
	ck_assert_int_eq(tm_modbus_write1(fd, 77, 0, 500, 0x1234, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_int_ge(tm_now_ms() - t0, 100); /* the turnaround delay */
	ck_assert(wait_reg(b.dev, 500, 0x1234));
	struct serial_sim_stats st;
	serial_sim_get_stats(b.dev, &st);
	ck_assert_int_eq(st.broadcasts, 1);
	ck_assert_int_eq(st.answers, 0);
	/* a read cannot be broadcast: refused, never sent */
	uint16_t v[1];
	ck_assert_int_eq(tm_modbus_read(fd, 78, 0, 3, 500, 1, v, &exc), 0);
	ck_assert_int_eq(exc, 0x01);
	/* the line goes on as usual */
	read_initial(fd, 79, 1, 10, 5);
	serial_sim_get_stats(b.dev, &st);
	ck_assert_int_eq(st.requests, 2);
	bus_down_client(&b, fd);
}
END_TEST

/* ---- the line's timing ----------------------------------------------------- */

START_TEST(test_answer_time_covers_the_line)
{
	/* 100 registers at 1200 baud: a 205-byte answer, 1.9 s on the wire,
	 * far beyond --answer-timeout 500ms: the line's time is added */
	struct bus b;
	const char *more[] = { "--answer-timeout", "500ms", NULL };
	int fd = bus_up_client(&b, 1200, NULL, more);
	int64_t t0 = tm_now_ms();
	read_initial(fd, 1, 1, 2000, 100);
	ck_assert_int_ge(tm_now_ms() - t0, 1700);
	bus_down_client(&b, fd);
}
END_TEST

START_TEST(test_slow_split_mute)
{
	struct bus b;
	const char *more[] = { "--answer-timeout", "400ms", "--reconnect-backoff", "50ms", NULL };
	int fd = bus_up_client(&b, 19200, NULL, more);
	struct serial_sim_faults f = { .slow_ms = 120 };
	serial_sim_set_faults(b.dev, &f);
	read_initial(fd, 1, 1, 0, 10);        /* slow, but within the answer timeout */
	f = (struct serial_sim_faults){ .split_ms = 80 };
	serial_sim_set_faults(b.dev, &f);
	read_initial(fd, 2, 1, 20, 30);       /* the answer comes in two parts */
	f = (struct serial_sim_faults){ .mute = true };
	serial_sim_set_faults(b.dev, &f);
	uint16_t v[10];
	uint8_t exc = 0;
	int64_t t0 = tm_now_ms();
	ck_assert_int_eq(tm_modbus_read(fd, 3, 1, 3, 0, 10, v, &exc), 0);
	ck_assert_int_eq(exc, 0x0B);          /* gateway target failed to respond */
	ck_assert_int_lt(tm_now_ms() - t0, 2000);
	f = (struct serial_sim_faults){ 0 };
	serial_sim_set_faults(b.dev, &f);
	/* the device is back: so is the line, without a restart (a request
	 * may meet the reopened port still backing off: 0x0A, then fine) */
	ck_assert(read_until_served(fd, 40, 3, v, 50, 0x0A));
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(v[i], serial_sim_initial((uint16_t)(40 + i)));
	bus_down_client(&b, fd);
}
END_TEST

START_TEST(test_noise_is_never_delivered)
{
	struct bus b;
	int fd = bus_up_client(&b, 19200, NULL, NULL);
	struct serial_sim_faults f = { .noise = true };
	serial_sim_set_faults(b.dev, &f);
	/* garbage and another unit's frame before every answer */
	for (int i = 0; i < 10; i++)
		read_initial(fd, (uint16_t)i, 1, (uint16_t)(i * 10), 4);
	/* bytes right behind the answer (without a silence): the answer is
	 * still whole and checked, the rest is dropped */
	f = (struct serial_sim_faults){ .trailing = true };
	serial_sim_set_faults(b.dev, &f);
	for (int i = 0; i < 5; i++)
		read_initial(fd, (uint16_t)(50 + i), 1, (uint16_t)(200 + i), 3);
	f.trailing = false;
	serial_sim_set_faults(b.dev, &f);
	/* bytes between exchanges: another master, or a late answer */
	const uint8_t stray[] = { 0x01, 0x03, 0x02, 0xBA, 0xD0, 0x00, 0x00, 0x55 };
	size_t mark = tm_daemon_log_mark(b.d);
	for (int i = 0; i < 5; i++) {
		serial_sim_inject(b.dev, stray, sizeof stray);
		read_initial(fd, (uint16_t)(100 + i), 1, (uint16_t)(300 + i), 2);
	}
	/* dropped before the next request, or by the framing while it waited */
	ck_assert_int_ge(tm_daemon_log_count(b.d, mark, "belong to no request") +
				 tm_daemon_log_count(b.d, mark, "discarding an answer"),
			 1);
	bus_down_client(&b, fd);
}
END_TEST

/* ---- the port vanishing ---------------------------------------------------- */

START_TEST(test_port_vanishes_and_returns)
{
	struct bus b;
	const char *more[] = { "--reconnect-backoff", "100ms", "--timeout", "2s", NULL };
	int fd = bus_up_client(&b, 19200, NULL, more);
	read_initial(fd, 1, 1, 0, 5);
	pid_t pid = tm_daemon_pid(b.d);
	serial_link_stop(&b.link);            /* the adapter is unplugged */
	uint16_t v[5];
	uint8_t exc = 0;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(tm_modbus_read(fd, (uint16_t)(2 + i), 1, 3, 0, 5, v, &exc), 0);
		ck_assert_msg(exc == 0x0A || exc == 0x0B, "exception %u", exc);
	}
	ck_assert(tm_daemon_wait_log(b.d, 0, "cannot connect to the target", NULL, 0, 5000));
	ck_assert_int_eq(serial_link_restart(&b.link), 0);   /* plugged in again */
	ck_assert(read_until_served(fd, 0, 5, v, 200, 0));
	read_initial(fd, 300, 1, 50, 5);
	ck_assert(tm_daemon_wait_log(b.d, 0, "connected to the target", NULL, 0, 1000));
	ck_assert_int_eq(tm_daemon_pid(b.d), pid);
	bus_down_client(&b, fd);
}
END_TEST

/* ---- the adapter's echo ---------------------------------------------------- */

START_TEST(test_adapter_echo)
{
	struct bus b;
	struct serial_sim_opts o = { .unit = 1, .echo = true };
	const char *more[] = { "--serial-echo", NULL };
	int fd = bus_up_client(&b, 19200, &o, more);
	uint8_t exc = 0xFF;
	/* a write's echo looks like its answer: only skipping it tells them apart */
	ck_assert_int_eq(tm_modbus_write1(fd, 1, 1, 600, 0xBEEF, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_uint_eq(serial_sim_reg(b.dev, 600), 0xBEEF);
	read_initial(fd, 2, 1, 0, 8);
	/* a write the device refuses: the client sees the exception, not the echo */
	uint8_t req[12] = { 0, 3, 0, 0, 0, 6, 1, 0x05, 0x00, 0x01, 0xFF, 0x00 };
	ck_assert_int_eq(tm_write_all(fd, req, sizeof req), 0);
	uint8_t ans[260];
	ck_assert_int_eq(tm_modbus_recv(fd, ans, sizeof ans, 5000), 9);
	ck_assert_uint_eq(ans[7], 0x85);
	ck_assert_uint_eq(ans[8], 0x01);
	bus_down_client(&b, fd);
}
END_TEST

/* ---- the Modbus options over the line ------------------------------------- */

struct reader {
	int port;
	int rc;
	uint8_t exc;
	uint16_t v[20];
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	int fd = tm_connect(r->port);
	r->rc = fd < 0 ? fd : tm_modbus_read(fd, 9, 1, 3, 700, 20, r->v, &r->exc);
	if (fd >= 0)
		close(fd);
	return NULL;
}

START_TEST(test_read_sharing)
{
	/* 9600 baud: a 20-register read takes 56 ms, so readers overlap */
	struct bus b;
	const char *more[] = { "--coalesce", "--cache-ttl", "3s", NULL };
	bus_up(&b, 9600, NULL, more);
	struct reader r[6];
	pthread_t t[6];
	for (int i = 0; i < 6; i++) {
		r[i] = (struct reader){ .port = tm_daemon_port(b.d) };
		ck_assert_int_eq(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
	}
	for (int i = 0; i < 6; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(r[i].rc, 0);
		ck_assert_int_eq(r[i].exc, 0);
		for (int k = 0; k < 20; k++)
			ck_assert_uint_eq(r[i].v[k], serial_sim_initial((uint16_t)(700 + k)));
	}
	struct serial_sim_stats st;
	serial_sim_get_stats(b.dev, &st);
	ck_assert_int_lt(st.requests, 6);
	long before = st.requests;
	int fd = client(&b);
	read_initial(fd, 5, 1, 700, 20);     /* from the cache */
	serial_sim_get_stats(b.dev, &st);
	ck_assert_int_eq(st.requests, before);
	/* a write to the unit makes the next read go to the device */
	uint8_t exc = 0;
	ck_assert_int_eq(tm_modbus_write1(fd, 6, 1, 705, 4242, &exc), 0);
	ck_assert_int_eq(exc, 0);
	uint16_t v[20];
	ck_assert_int_eq(tm_modbus_read(fd, 7, 1, 3, 700, 20, v, &exc), 0);
	ck_assert_uint_eq(v[5], 4242);
	bus_down_client(&b, fd);
}
END_TEST

START_TEST(test_policy_and_unit_map)
{
	struct bus b;
	/* the range names the device's unit (after the unit map) */
	const char *more[] = { "--modbus-read-only", "--modbus-allow-write", "1:100-109", "--modbus-unit-map",
			       "5=1", NULL };
	int fd = bus_up_client(&b, 19200, NULL, more);
	uint8_t exc = 0xFF;
	/* client unit 5 is device unit 1; the answer carries unit 5 */
	read_initial(fd, 1, 5, 0, 4);
	ck_assert_int_eq(tm_modbus_write1(fd, 2, 5, 105, 777, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_uint_eq(serial_sim_reg(b.dev, 105), 777);
	struct serial_sim_stats st;
	serial_sim_get_stats(b.dev, &st);
	long before = st.requests;
	ck_assert_int_eq(tm_modbus_write1(fd, 3, 5, 200, 1, &exc), 0);
	ck_assert_int_eq(exc, 0x01);         /* refused by --modbus-read-only */
	ck_assert_uint_eq(serial_sim_reg(b.dev, 200), serial_sim_initial(200));
	serial_sim_get_stats(b.dev, &st);
	ck_assert_int_eq(st.requests, before);
	bus_down_client(&b, fd);
}
END_TEST

int main(void)
{
	if (!serial_link_available()) {
		printf("SKIP: socat is missing (apt-get install socat): no pty pair for the serial line\n");
		return PROC_SKIP;
	}
	Suite *s = suite_create("e2e_serial");
	TCase *tc = TM_CASE(s, "line", 60, test_clients_share_the_line, test_broadcast,
			    test_answer_time_covers_the_line, test_slow_split_mute, test_noise_is_never_delivered,
			    test_port_vanishes_and_returns, test_adapter_echo, test_read_sharing,
			    test_policy_and_unit_map);
	tcase_add_unchecked_fixture(tc, proc_tmproot_setup, proc_tmproot_teardown);
	return tm_run_suite(s, NULL);
}
