/* End to end, what may reach a Modbus device: the real daemon in front of
 * the simulated targets (Modbus/TCP and RTU over TCP). A request that is
 * not exactly as long as its function defines is answered 0x03, one that
 * --modbus-read-only refuses 0x01, and neither reaches the device (its
 * request counter and its registers say so). Write ranges name the
 * device's unit id and an address space. mbpoll, when installed, is the
 * real client; without it its case is left out and the program exits 77
 * (SKIP) naming it, once the others passed. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

#define MBPOLL_MS 20000 /* bound on one mbpoll run */

static char mbpoll_bin[256];

/* The simulator for proto (one connection) with the daemon in front of
 * it started with opts (NULL-terminated; an RTU target is "-p modbus
 * --modbus-upstream rtu"), and a client connected to the daemon. */
static int open_pair(struct tm_pair *p, enum sim_proto proto, const char *const opts[])
{
	struct sim_opts o = { .proto = proto, .max_conns = 1 };
	ck_assert_int_eq(tm_pair_start(p, &o, opts), 0);
	int fd = tm_connect(p->port);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static void close_pair(struct tm_pair *p, int fd)
{
	close(fd);
	ck_assert_int_eq(tm_pair_stop(p), 0);
}

/* Sends the request unit + pdu (len bytes) with transaction id tid and reads
 * the answer. Returns the exception code of an exception answer, 0 for a
 * normal answer of the same function; fails the test on anything else. */
static int exchange(int fd, uint16_t tid, uint8_t unit, const uint8_t *pdu, size_t len)
{
	uint8_t req[300], ans[300];
	ck_assert_uint_le(len + 7, sizeof req);
	req[0] = (uint8_t)(tid >> 8);
	req[1] = (uint8_t)tid;
	req[2] = req[3] = 0;
	req[4] = (uint8_t)((len + 1) >> 8);
	req[5] = (uint8_t)(len + 1);
	req[6] = unit;
	memcpy(req + 7, pdu, len);
	ck_assert_int_eq(tm_write_all(fd, req, len + 7), 0);
	ssize_t n = tm_modbus_recv(fd, ans, sizeof ans, TM_IO_TIMEOUT_MS);
	ck_assert_int_ge(n, 9);
	ck_assert_uint_eq(ans[0] << 8 | ans[1], tid);
	ck_assert_uint_eq(ans[6], unit);
	ck_assert_uint_eq(ans[7] & 0x7F, pdu[0]);
	if (ans[7] & 0x80) {
		ck_assert_int_eq(n, 9);
		return ans[8];
	}
	return 0;
}

/* A function 3 read of one register at 0 from unit 1 whose PDU carries,
 * behind its own CRC, a whole RTU frame "unit 1: write value to register
 * addr": a device that frames RTU by function code sees two requests. */
static size_t hidden_write(uint8_t *pdu, uint16_t addr, uint16_t value)
{
	uint8_t f[8] = { 0x01, 0x03, 0x00, 0x00, 0x00, 0x01 };
	sim_rtu_seal(f, 6);
	memcpy(pdu, f + 1, 7);
	uint8_t w[8] = { 0x01, 0x06, (uint8_t)(addr >> 8), (uint8_t)addr, (uint8_t)(value >> 8), (uint8_t)value };
	sim_rtu_seal(w, 6);
	memcpy(pdu + 7, w, 8);
	return 15;
}

/* Regression (issue 13, point 1): with --modbus-upstream rtu and
 * --modbus-read-only an allowed read carrying a hidden RTU write reached
 * the device, which ran the write. Now it is answered 0x03 and the device
 * sees nothing; the connection stays in step for the next read. The same
 * holds without the policy. */
START_TEST(test_rtu_hidden_write)
{
	static const char *const ro[] = { "--modbus-read-only", NULL };
	struct tm_pair p;
	int fd = open_pair(&p, SIM_MODBUS_RTU, _i == 0 ? ro : NULL);
	struct sim *s = p.sim;
	uint16_t before = sim_modbus_holding(s, 100, 1);
	uint8_t pdu[16];
	size_t len = hidden_write(pdu, 100, (uint16_t)(before ^ 0x5555));
	ck_assert_int_eq(exchange(fd, 0x0101, 1, pdu, len), 0x03);
	uint16_t val;
	uint8_t exc = 0xFF;
	ck_assert_int_eq(tm_modbus_read(fd, 0x0102, 1, 3, 100, 1, &val, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_uint_eq(val, before);
	ck_assert_uint_eq(sim_modbus_holding(s, 100, 1), before);
	ck_assert_int_eq(TM_SIM_STAT(s, requests), 1);   /* the good read only */
	ck_assert_int_eq(TM_SIM_STAT(s, crc_errors), 0);
	ck_assert(tm_daemon_wait_log(p.d, 0, "refused function 3 for unit 1: its length", NULL, 0, 5000));
	close_pair(&p, fd);
}
END_TEST

/* Regression (issue 13, point 1): over Modbus/TCP a function 16 whose byte
 * count does not match its quantity passed the policy when its quantity
 * lay inside an allowed range. Now it is answered 0x03 and never reaches
 * the device, policy or not; the same write with a right count passes. */
START_TEST(test_tcp_bad_byte_count)
{
	static const char *const ro[] = { "--modbus-read-only", "--modbus-allow-write", "1:100-100", NULL };
	struct tm_pair p;
	int fd = open_pair(&p, SIM_MODBUS, _i == 0 ? ro : NULL);
	struct sim *s = p.sim;
	uint16_t r101 = sim_modbus_holding(s, 101, 1);
	/* quantity 1 (register 100), byte count 4: two values */
	const uint8_t bad[] = { 16, 0, 100, 0, 1, 4, 0x11, 0x11, 0x22, 0x22 };
	ck_assert_int_eq(exchange(fd, 7, 1, bad, sizeof bad), 0x03);
	ck_assert_int_eq(TM_SIM_STAT(s, requests), 0); /* the 0x03 is the multiplexer's */
	/* quantity 2, byte count 2 */
	const uint8_t short_count[] = { 16, 0, 100, 0, 2, 2, 0x11, 0x11 };
	ck_assert_int_eq(exchange(fd, 8, 1, short_count, sizeof short_count), 0x03);
	ck_assert_int_eq(TM_SIM_STAT(s, requests), 0);
	ck_assert_uint_eq(sim_modbus_holding(s, 101, 1), r101);
	const uint8_t good[] = { 16, 0, 100, 0, 1, 2, 0x12, 0x34 };
	ck_assert_int_eq(exchange(fd, 9, 1, good, sizeof good), 0);
	ck_assert_uint_eq(sim_modbus_holding(s, 100, 1), 0x1234);
	ck_assert_int_eq(TM_SIM_STAT(s, requests), 1);
	close_pair(&p, fd);
}
END_TEST

/* An unknown (vendor) function passes untouched over Modbus/TCP (the
 * simulator itself answers 0x01), is refused by the multiplexer under the
 * policy, and over RTU, where its end cannot be told. */
START_TEST(test_unknown_function)
{
	const uint8_t vendor[] = { 0x41, 0x00, 0x10 };
	struct tm_pair p;
	int fd = open_pair(&p, SIM_MODBUS, NULL);
	struct sim *s = p.sim;
	ck_assert_int_eq(exchange(fd, 1, 1, vendor, sizeof vendor), 0x01);
	ck_assert(TM_SIM_WAIT(s, requests, 1, 5000)); /* from the device */
	close_pair(&p, fd);

	static const char *const ro[] = { "--modbus-read-only", NULL };
	fd = open_pair(&p, SIM_MODBUS, ro);
	s = p.sim;
	ck_assert_int_eq(exchange(fd, 2, 1, vendor, sizeof vendor), 0x01);
	ck_assert_int_eq(TM_SIM_STAT(s, requests), 0);
	close_pair(&p, fd);

	fd = open_pair(&p, SIM_MODBUS_RTU, NULL);
	s = p.sim;
	ck_assert_int_eq(exchange(fd, 3, 1, vendor, sizeof vendor), 0x01);
	ck_assert(tm_daemon_wait_log(p.d, 0, "cannot be framed as RTU", NULL, 0, 5000));
	uint16_t val;
	uint8_t exc = 0xFF;
	ck_assert_int_eq(tm_modbus_read(fd, 4, 1, 3, 7, 1, &val, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_int_eq(TM_SIM_STAT(s, requests), 1);
	close_pair(&p, fd);
}
END_TEST

/* UNIT in --modbus-allow-write is the device's unit id: with
 * --modbus-unit-map 1=3 a range for unit 3 admits a client's writes to
 * unit 1 (the device sees 3), and a range for unit 1 admits nothing. */
START_TEST(test_allow_write_unit_map)
{
	static const char *const dev[] = { "--modbus-read-only", "--modbus-unit-map", "1=3",
					   "--modbus-allow-write", "3:100-109", NULL };
	struct tm_pair p;
	int fd = open_pair(&p, SIM_MODBUS, dev);
	struct sim *s = p.sim;
	uint8_t exc = 0xFF;
	ck_assert_int_eq(tm_modbus_write1(fd, 1, 1, 105, 4242, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_uint_eq(sim_modbus_holding(s, 105, 3), 4242);
	ck_assert_int_eq(tm_modbus_write1(fd, 2, 2, 106, 4343, &exc), 0); /* device 2: no range */
	ck_assert_int_eq(exc, 0x01);
	ck_assert_int_eq(TM_SIM_STAT(s, requests), 1);
	close_pair(&p, fd);

	static const char *const client[] = { "--modbus-read-only", "--modbus-unit-map", "1=3",
					      "--modbus-allow-write", "1:100-109", NULL };
	fd = open_pair(&p, SIM_MODBUS, client);
	s = p.sim;
	uint16_t before = sim_modbus_holding(s, 105, 3);
	ck_assert_int_eq(tm_modbus_write1(fd, 3, 1, 105, (uint16_t)(before + 1), &exc), 0);
	ck_assert_int_eq(exc, 0x01);
	ck_assert_uint_eq(sim_modbus_holding(s, 105, 3), before);
	ck_assert_int_eq(TM_SIM_STAT(s, requests), 0);
	close_pair(&p, fd);
}
END_TEST

/* A range admits coils (5, 15), holding registers (6, 16, 22, 23), or,
 * without a space, both. The simulator serves registers and answers
 * coil writes with 0x01 itself, so its request counter tells which
 * writes the multiplexer let through. */
START_TEST(test_allow_write_spaces)
{
	static const char *const opts[] = { "--modbus-read-only", "--modbus-allow-write", "1:coils:100-109",
					    "--modbus-allow-write", "1:registers:200-209",
					    "--modbus-allow-write", "1:300-309", NULL };
	struct tm_pair p;
	int fd = open_pair(&p, SIM_MODBUS, opts);
	struct sim *s = p.sim;
	const uint8_t coil100[] = { 5, 0, 100, 0xFF, 0 }, coils100[] = { 15, 0, 100, 0, 9, 2, 0xFF, 1 };
	const uint8_t reg100[] = { 6, 0, 100, 0, 1 };
	const uint8_t coil200[] = { 5, 0, 200, 0xFF, 0 }, reg200[] = { 6, 0, 200, 0, 0x42 };
	const uint8_t regs200[] = { 16, 0, 201, 0, 2, 4, 0, 1, 0, 2 };
	const uint8_t coil300[] = { 5, 0x01, 0x2C, 0x12, 0x34 }; /* value 0x1234: 0x03 before the device */
	const uint8_t coil305[] = { 5, 0x01, 0x31, 0, 0 }, reg305[] = { 6, 0x01, 0x31, 0, 0x43 };
	long seen = 0;
	ck_assert_int_eq(exchange(fd, 1, 1, coil100, sizeof coil100), 0x01);  /* passed: the device's 0x01 */
	ck_assert_int_eq(TM_SIM_STAT(s, requests), ++seen);
	ck_assert_int_eq(exchange(fd, 2, 1, coils100, sizeof coils100), 0x01);
	ck_assert_int_eq(TM_SIM_STAT(s, requests), ++seen);
	ck_assert_int_eq(exchange(fd, 3, 1, reg100, sizeof reg100), 0x01);    /* refused here */
	ck_assert_int_eq(TM_SIM_STAT(s, requests), seen);
	ck_assert_int_eq(exchange(fd, 4, 1, coil200, sizeof coil200), 0x01);  /* refused here */
	ck_assert_int_eq(TM_SIM_STAT(s, requests), seen);
	ck_assert_int_eq(exchange(fd, 5, 1, reg200, sizeof reg200), 0);
	ck_assert_uint_eq(sim_modbus_holding(s, 200, 1), 0x42);
	ck_assert_int_eq(exchange(fd, 6, 1, regs200, sizeof regs200), 0);
	ck_assert_uint_eq(sim_modbus_holding(s, 202, 1), 2);
	seen += 2;
	ck_assert_int_eq(exchange(fd, 7, 1, coil300, sizeof coil300), 0x03);
	ck_assert_int_eq(exchange(fd, 8, 1, coil305, sizeof coil305), 0x01);  /* passed: the device's 0x01 */
	ck_assert_int_eq(exchange(fd, 9, 1, reg305, sizeof reg305), 0);
	ck_assert_uint_eq(sim_modbus_holding(s, 305, 1), 0x43);
	seen += 2;
	ck_assert_int_eq(TM_SIM_STAT(s, requests), seen);
	close_pair(&p, fd);
}
END_TEST

/* ---- mbpoll ------------------------------------------------------------ */

/* mbpoll -1 (one poll) on table (4 holding registers, 0 coils), reference
 * ref (1-based: address ref - 1), writing values when given. */
static int mbpoll(int port, const char *table, int ref, const char *v1, const char *v2, char *out, size_t cap)
{
	char p[16], r[16];
	snprintf(p, sizeof p, "%d", port);
	snprintf(r, sizeof r, "%d", ref);
	const char *argv[] = { mbpoll_bin, "-m", "tcp", "-a", "1", "-r", r, "-t", table, "-1", "-o", "5",
			       "-p", p, "127.0.0.1", v1, v2, NULL };
	int rc = tm_run_program(NULL, argv, out, cap, MBPOLL_MS);
	fprintf(stderr, "mbpoll -t %s -r %d %s %s: exit %d\n", table, ref, v1 ? v1 : "", v2 ? v2 : "", rc);
	return rc;
}

/* A real client through the policy: mbpoll's writes inside the allowed
 * range (functions 6 and 16) reach the device, those outside and coil
 * writes to a register-only range fail with "Illegal function" and do not. */
START_TEST(test_mbpoll)
{
	static const char *const opts[] = { "--modbus-read-only", "--modbus-allow-write", "1:registers:100-109",
					    NULL };
	struct tm_pair pair;
	int fd = open_pair(&pair, SIM_MODBUS, opts);
	struct sim *s = pair.sim;
	int port = pair.port;
	char out[8192];
	ck_assert_int_eq(mbpoll(port, "4", 101, "4242", NULL, out, sizeof out), 0);
	ck_assert_uint_eq(sim_modbus_holding(s, 100, 1), 4242);
	ck_assert_int_eq(mbpoll(port, "4", 109, "17", "18", out, sizeof out), 0);   /* 108..109 */
	ck_assert_uint_eq(sim_modbus_holding(s, 108, 1), 17);
	ck_assert_uint_eq(sim_modbus_holding(s, 109, 1), 18);
	long seen = TM_SIM_STAT(s, requests);
	uint16_t r110 = sim_modbus_holding(s, 110, 1);
	ck_assert_int_ne(mbpoll(port, "4", 110, "1", "2", out, sizeof out), 0);     /* 109..110 */
	ck_assert_msg(strstr(out, "Illegal function") != NULL, "mbpoll said:\n%s", out);
	ck_assert_int_ne(mbpoll(port, "0", 101, "1", NULL, out, sizeof out), 0);    /* a coil */
	ck_assert_msg(strstr(out, "Illegal function") != NULL, "mbpoll said:\n%s", out);
	ck_assert_uint_eq(sim_modbus_holding(s, 110, 1), r110);
	ck_assert_int_eq(TM_SIM_STAT(s, requests), seen);
	/* and reads pass */
	ck_assert_int_eq(mbpoll(port, "4:hex", 101, NULL, NULL, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "[101]: \t0x1092") != NULL, "mbpoll said:\n%s", out);
	close_pair(&pair, fd);
}
END_TEST

/* Its own main (libtesting's is not linked then) for the skip. */
int main(void)
{
	const char *env = getenv("TM_MBPOLL");
	snprintf(mbpoll_bin, sizeof mbpoll_bin, "%s", env && *env ? env : "/usr/bin/mbpoll");
	int with_mbpoll = access(mbpoll_bin, X_OK) == 0;
	Suite *s = suite_create("e2e_policy");
	/* the first two run under the policy (_i 0), then without it */
	TM_LOOPS(s, "length", 60, { test_rtu_hidden_write, 2 }, { test_tcp_bad_byte_count, 2 },
		 TM_ONCE(test_unknown_function));
	TM_CASE(s, "allow_write", 60, test_allow_write_unit_map, test_allow_write_spaces);
	if (with_mbpoll)
		TM_CASE(s, "mbpoll", 120, test_mbpoll);
	else
		fprintf(stderr, "the mbpoll case needs %s (apt-get install mbpoll)\n", mbpoll_bin);
	return tm_run_suite(s, with_mbpoll ? NULL : " mbpoll");
}
