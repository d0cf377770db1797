/* Tests of the simulated targets and of the harness themselves, with no
 * daemon involved: what the end-to-end suites rely on must be right first. */
#include "config.h"
#include "sim.h"
#include "testing.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 5000

static struct sim *start(struct sim_opts o)
{
	struct sim *s = sim_start(&o);
	ck_assert_msg(s != NULL, "sim_start: %s", strerror(errno));
	ck_assert_int_gt(sim_port(s), 0);
	return s;
}

static int conn(struct sim *s)
{
	int fd = tm_connect(sim_port(s));
	ck_assert_msg(fd >= 0, "tm_connect: %s", strerror(-fd));
	return fd;
}

/* Reads qty registers and checks each against the formula. */
static void check_read(int fd, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t qty)
{
	uint16_t v[125];
	uint8_t exc = 0xFF;
	int rc = tm_modbus_read(fd, tid, unit, fc, addr, qty, v, &exc);
	ck_assert_msg(rc == 0, "tm_modbus_read: %s", strerror(-rc));
	ck_assert_int_eq(exc, 0);
	for (uint16_t i = 0; i < qty; i++)
		ck_assert_uint_eq(v[i], sim_modbus_value(fc, (uint16_t)(addr + i), unit));
}

static uint8_t read_exception(int fd, uint8_t fc, uint16_t addr, uint16_t qty)
{
	uint16_t v[125];
	uint8_t exc = 0;
	ck_assert_int_eq(tm_modbus_read(fd, 9, 1, fc, addr, qty, v, &exc), 0);
	return exc;
}

/* ---- modbus ------------------------------------------------------------- */

START_TEST(test_modbus_read)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS });
	int fd = conn(s);

	check_read(fd, 0x1234, 1, 3, 100, 10);
	check_read(fd, 0xFFFF, 7, 4, 65530, 6);
	check_read(fd, 0, 0xF7, 3, 0, 125);
	ck_assert_uint_ne(sim_modbus_value(3, 10, 1), sim_modbus_value(4, 10, 1));
	ck_assert_uint_ne(sim_modbus_value(3, 10, 1), sim_modbus_value(3, 10, 2));

	ck_assert_int_eq(read_exception(fd, 3, 65535, 2), 0x02);
	ck_assert_int_eq(read_exception(fd, 3, 0, 0), 0x03);
	ck_assert_int_eq(read_exception(fd, 4, 0, 126), 0x03);
	ck_assert_int_eq(read_exception(fd, 0x41, 0, 1), 0x01);
	ck_assert_int_eq(read_exception(fd, 5, 0, 1), 0x01);

	/* Without an exception pointer an exception reply is an error. */
	uint16_t v[1];
	ck_assert_int_eq(tm_modbus_read(fd, 1, 1, 0x41, 0, 1, v, NULL), -EREMOTEIO);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.requests, 9);
	ck_assert_int_eq(st.answers, 9);
	ck_assert_int_eq(st.accepted, 1);
	ck_assert_int_eq(st.inflight, 0);
	close(fd);
	sim_stop(s);
}
END_TEST

START_TEST(test_modbus_write)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS });
	int fd = conn(s), fd2 = conn(s);
	uint16_t v[5];
	uint8_t exc = 0xFF;

	ck_assert_int_eq(tm_modbus_write1(fd, 5, 1, 500, 0xBEEF, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_int_eq(tm_modbus_read(fd2, 6, 1, 3, 499, 3, v, &exc), 0);
	ck_assert_uint_eq(v[0], sim_modbus_value(3, 499, 1));
	ck_assert_uint_eq(v[1], 0xBEEF);
	ck_assert_uint_eq(v[2], sim_modbus_value(3, 501, 1));
	ck_assert_uint_eq(sim_modbus_holding(s, 500, 9), 0xBEEF);
	ck_assert_uint_eq(sim_modbus_holding(s, 501, 9), sim_modbus_value(3, 501, 9));
	/* Input registers are not written. */
	check_read(fd, 7, 1, 4, 500, 1);

	const uint16_t w[3] = { 1, 0, 0xFFFF };
	ck_assert_int_eq(tm_modbus_write_multi(fd, 8, 2, 65533, 3, w, &exc), 0);
	ck_assert_int_eq(exc, 0);
	ck_assert_int_eq(tm_modbus_read(fd, 9, 2, 3, 65532, 4, v, &exc), 0);
	ck_assert_uint_eq(v[0], sim_modbus_value(3, 65532, 2));
	ck_assert_uint_eq(v[1], 1);
	ck_assert_uint_eq(v[2], 0);
	ck_assert_uint_eq(v[3], 0xFFFF);
	ck_assert_int_eq(tm_modbus_write_multi(fd, 10, 2, 65534, 3, w, &exc), 0);
	ck_assert_int_eq(exc, 0x02);
	ck_assert_int_eq(tm_modbus_write_multi(fd, 10, 2, 0, 0, w, &exc), -EINVAL);
	close(fd);
	close(fd2);
	sim_stop(s);
}
END_TEST

START_TEST(test_modbus_framing)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS });
	int fd = conn(s);
	uint8_t req[4 * 12], adu[260];

	/* One request, one byte per segment. */
	tm_modbus_req_read(req, 0x0101, 1, 3, 10, 2);
	ck_assert_int_eq(tm_write_split(fd, req, 12, 1), 0);
	ck_assert_int_eq(tm_modbus_recv(fd, adu, sizeof(adu), WAIT_MS), 13);
	ck_assert_uint_eq(adu[0] << 8 | adu[1], 0x0101);

	/* Three and a half requests in one write, then the rest. */
	for (int i = 0; i < 4; i++)
		tm_modbus_req_read(req + 12 * i, (uint16_t)(0x200 + i), (uint8_t)(i + 1), 3,
				   (uint16_t)(20 * i), 1);
	ck_assert_int_eq(tm_write_all(fd, req, 42), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(tm_modbus_recv(fd, adu, sizeof(adu), WAIT_MS), 11);
		ck_assert_uint_eq(adu[0] << 8 | adu[1], 0x200 + i);
		ck_assert_uint_eq(adu[6], i + 1);
		ck_assert_uint_eq(adu[9] << 8 | adu[10],
				  sim_modbus_value(3, (uint16_t)(20 * i), (uint8_t)(i + 1)));
	}
	ck_assert_int_eq(tm_read_exact(fd, adu, 1, 100), -ETIMEDOUT);
	ck_assert_int_eq(tm_write_all(fd, req + 42, 6), 0);
	ck_assert_int_eq(tm_modbus_recv(fd, adu, sizeof(adu), WAIT_MS), 11);
	ck_assert_uint_eq(adu[0] << 8 | adu[1], 0x203);
	close(fd);
	sim_stop(s);
}
END_TEST

START_TEST(test_modbus_tid_offset)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS, .tid_offset = 1 });
	int fd = conn(s);
	uint8_t req[12], adu[260];
	uint16_t v[1];

	tm_modbus_req_read(req, 0xFFFF, 0xF7, 4, 1, 1);
	ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
	ck_assert_int_eq(tm_modbus_recv(fd, adu, sizeof(adu), WAIT_MS), 11);
	ck_assert_uint_eq(adu[0] << 8 | adu[1], 0x0000);
	ck_assert_uint_eq(adu[6], 0xF7);
	ck_assert_int_eq(tm_modbus_read(fd, 7, 1, 3, 0, 1, v, NULL), -EPROTO);
	close(fd);
	sim_stop(s);
}
END_TEST

START_TEST(test_modbus_malformed)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS });
	static const uint8_t bad_pid[] = { 0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1 };
	static const uint8_t bad_len[] = { 0, 1, 0, 0, 1, 0, 1, 3, 0, 0, 0, 1 };
	int fd = conn(s);

	ck_assert_int_eq(tm_write_all(fd, bad_pid, sizeof(bad_pid)), 0);
	ck_assert_int_eq(tm_wait_closed(fd, WAIT_MS), 0);
	close(fd);
	fd = conn(s);
	ck_assert_int_eq(tm_write_all(fd, bad_len, sizeof(bad_len)), 0);
	ck_assert_int_eq(tm_wait_closed(fd, WAIT_MS), 0);
	close(fd);
	ck_assert(TM_SIM_WAIT(s, protocol_errors, 2, WAIT_MS));
	ck_assert_int_eq(TM_SIM_STAT(s, requests), 0);
	sim_stop(s);
}
END_TEST

/* ---- modbus rtu --------------------------------------------------------- */

/* Reads one RTU answer, framed by its function code (exception: 5 bytes;
 * 1-4: 5 + byte count; 5, 6, 15, 16: 8). Returns its length, -EBADMSG when
 * the CRC is wrong, -EPROTO for a function code it cannot frame, -errno. */
static ssize_t rtu_recv(int fd, uint8_t *r, int timeout_ms)
{
	ssize_t got = tm_read_exact(fd, r, 3, timeout_ms);
	if (got != 3)
		return got < 0 ? got : -ECONNRESET;
	size_t total;
	if (r[1] & 0x80)
		total = 5;
	else if (r[1] >= 1 && r[1] <= 4)
		total = 5 + (size_t)r[2];
	else if (r[1] == 5 || r[1] == 6 || r[1] == 15 || r[1] == 16)
		total = 8;
	else
		return -EPROTO;
	got = tm_read_exact(fd, r + 3, total - 3, timeout_ms);
	if (got != (ssize_t)(total - 3))
		return got < 0 ? got : -ECONNRESET;
	if (sim_modbus_crc(r, total - 2) != (uint16_t)(r[total - 2] | r[total - 1] << 8))
		return -EBADMSG;
	return (ssize_t)total;
}

/* Sends unit + pdu sealed with its CRC. */
static void rtu_send(int fd, uint8_t unit, const uint8_t *pdu, size_t pdulen)
{
	uint8_t req[300];
	req[0] = unit;
	memcpy(req + 1, pdu, pdulen);
	size_t n = sim_rtu_seal(req, 1 + pdulen);
	ck_assert_int_eq(tm_write_all(fd, req, n), 0);
}

static size_t rtu_pdu_read(uint8_t *pdu, uint8_t fc, uint16_t addr, uint16_t qty)
{
	pdu[0] = fc;
	pdu[1] = (uint8_t)(addr >> 8);
	pdu[2] = (uint8_t)addr;
	pdu[3] = (uint8_t)(qty >> 8);
	pdu[4] = (uint8_t)qty;
	return 5;
}

/* Reads qty registers over RTU and checks unit, fc, count and values. */
static void rtu_check_read(int fd, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t qty)
{
	uint8_t pdu[5], r[300];
	rtu_send(fd, unit, pdu, rtu_pdu_read(pdu, fc, addr, qty));
	ck_assert_int_eq(rtu_recv(fd, r, WAIT_MS), 5 + 2 * qty);
	ck_assert_uint_eq(r[0], unit);
	ck_assert_uint_eq(r[1], fc);
	ck_assert_uint_eq(r[2], 2 * qty);
	for (uint16_t i = 0; i < qty; i++)
		ck_assert_uint_eq(r[3 + 2 * i] << 8 | r[4 + 2 * i],
				  sim_modbus_value(fc, (uint16_t)(addr + i), unit));
}

/* Sends a request and returns the exception code of the RTU answer. */
static uint8_t rtu_exception(int fd, uint8_t unit, const uint8_t *pdu, size_t pdulen)
{
	uint8_t r[300];
	rtu_send(fd, unit, pdu, pdulen);
	ck_assert_int_eq(rtu_recv(fd, r, WAIT_MS), 5);
	ck_assert_uint_eq(r[0], unit);
	ck_assert_uint_eq(r[1], pdu[0] | 0x80);
	return r[2];
}

START_TEST(test_modbus_crc)
{
	/* MODBUS over serial line v1.02, 6.2.2: the CRC of 02 07 is 0x1241,
	 * sent as 41 12; 0x4B37 is CRC-16/MODBUS's check value for "123456789";
	 * the others are read requests as real masters send them. */
	static const struct {
		const char *bytes;
		size_t len;
		uint16_t crc;
	} cases[] = {
		{ "\x02\x07", 2, 0x1241 },
		{ "123456789", 9, 0x4B37 },
		{ "\x01\x03\x00\x00\x00\x0A", 6, 0xCDC5 },
		{ "\x01\x04\x80\xE8\x00\x0C", 6, 0xFB59 },
		{ "", 0, 0xFFFF },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(sim_modbus_crc((const uint8_t *)cases[i].bytes, cases[i].len) == cases[i].crc,
			      "case %zu: %04x", i,
			      sim_modbus_crc((const uint8_t *)cases[i].bytes, cases[i].len));

	uint8_t f[4] = { 0x02, 0x07 };
	ck_assert_uint_eq(sim_rtu_seal(f, 2), 4);
	ck_assert_uint_eq(f[2], 0x41);
	ck_assert_uint_eq(f[3], 0x12);
	/* A frame with its CRC appended has a CRC of zero. */
	ck_assert_uint_eq(sim_modbus_crc(f, 4), 0);
}
END_TEST

START_TEST(test_rtu_request_len)
{
	uint8_t f[300] = { 1, 3, 0, 0, 0, 1 };
	sim_rtu_seal(f, 6);
	for (size_t n = 0; n < 8; n++)
		ck_assert_int_eq(sim_rtu_request_len(f, n), 0);
	ck_assert_int_eq(sim_rtu_request_len(f, 8), 8);
	ck_assert_int_eq(sim_rtu_request_len(f, 20), 8);

	/* 16: 7 header bytes, byte count at 6, the values, the CRC. */
	static const uint8_t w16[] = { 1, 16, 0, 10, 0, 2, 4, 0, 1, 0, 2 };
	memcpy(f, w16, sizeof(w16));
	sim_rtu_seal(f, sizeof(w16));
	for (size_t n = 0; n < 13; n++)
		ck_assert_int_eq(sim_rtu_request_len(f, n), 0);
	ck_assert_int_eq(sim_rtu_request_len(f, 13), 13);
	f[1] = 15;
	ck_assert_int_eq(sim_rtu_request_len(f, 13), 13);

	static const struct {
		uint8_t fc;
		ssize_t len;
	} fixed[] = { { 1, 8 }, { 2, 8 }, { 4, 8 }, { 5, 8 }, { 6, 8 }, { 8, 8 },
		      { 7, 4 }, { 11, 4 }, { 12, 4 }, { 17, 4 }, { 22, 10 } };
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		f[1] = fixed[i].fc;
		ck_assert_int_eq(sim_rtu_request_len(f, (size_t)fixed[i].len - 1), 0);
		ck_assert_int_eq(sim_rtu_request_len(f, 20), fixed[i].len);
	}
	/* 23: byte count at 10. */
	memset(f, 0, 20);
	f[1] = 23;
	f[10] = 4;
	ck_assert_int_eq(sim_rtu_request_len(f, 16), 0);
	ck_assert_int_eq(sim_rtu_request_len(f, 17), 17);

	/* An unknown code ends where its CRC is. */
	static const uint8_t vendor[] = { 9, 0x41, 0xAA, 0xBB, 0xCC };
	memcpy(f, vendor, sizeof(vendor));
	sim_rtu_seal(f, sizeof(vendor));
	for (size_t n = 0; n < 7; n++)
		ck_assert_int_eq(sim_rtu_request_len(f, n), 0);
	ck_assert_int_eq(sim_rtu_request_len(f, 7), 7);
	ck_assert_int_eq(sim_rtu_request_len(f, 30), 7);
	memset(f, 0x55, sizeof(f));
	f[1] = 0x64;
	ck_assert_int_eq(sim_rtu_request_len(f, 255), 0);
	ck_assert_int_eq(sim_rtu_request_len(f, 256), -EPROTO);
}
END_TEST

START_TEST(test_rtu_read_write)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS_RTU });
	ck_assert_int_eq(sim_get_proto(s), SIM_MODBUS_RTU);
	int fd = conn(s);
	uint8_t pdu[260], r[300];

	rtu_check_read(fd, 1, 3, 100, 10);
	rtu_check_read(fd, 0xF7, 4, 65530, 6);
	rtu_check_read(fd, 0, 3, 0, 125);

	/* Function 6 echoes the request; the value lands in the registers. */
	pdu[0] = 6;
	pdu[1] = 0x01;
	pdu[2] = 0xF4;
	pdu[3] = 0xBE;
	pdu[4] = 0xEF;
	rtu_send(fd, 2, pdu, 5);
	ck_assert_int_eq(rtu_recv(fd, r, WAIT_MS), 8);
	ck_assert_uint_eq(r[0], 2);
	ck_assert(memcmp(r + 1, pdu, 5) == 0);
	ck_assert_uint_eq(sim_modbus_holding(s, 500, 2), 0xBEEF);

	/* Function 16: address and quantity come back. */
	static const uint8_t w16[] = { 16, 0x01, 0xF5, 0, 2, 4, 0x12, 0x34, 0x56, 0x78 };
	rtu_send(fd, 2, w16, sizeof(w16));
	ck_assert_int_eq(rtu_recv(fd, r, WAIT_MS), 8);
	ck_assert_uint_eq(r[1], 16);
	ck_assert(memcmp(r + 2, w16 + 1, 4) == 0);
	rtu_send(fd, 2, pdu, rtu_pdu_read(pdu, 3, 499, 4));
	ck_assert_int_eq(rtu_recv(fd, r, WAIT_MS), 13);
	ck_assert_uint_eq(r[3] << 8 | r[4], sim_modbus_value(3, 499, 2));
	ck_assert_uint_eq(r[5] << 8 | r[6], 0xBEEF);
	ck_assert_uint_eq(r[7] << 8 | r[8], 0x1234);
	ck_assert_uint_eq(r[9] << 8 | r[10], 0x5678);

	/* Exceptions, in RTU framing. */
	ck_assert_uint_eq(rtu_exception(fd, 1, pdu, rtu_pdu_read(pdu, 3, 65535, 2)), 0x02);
	ck_assert_uint_eq(rtu_exception(fd, 1, pdu, rtu_pdu_read(pdu, 4, 0, 126)), 0x03);
	ck_assert_uint_eq(rtu_exception(fd, 1, pdu, rtu_pdu_read(pdu, 5, 0, 0xFF00)), 0x01);
	ck_assert_uint_eq(rtu_exception(fd, 1, pdu, rtu_pdu_read(pdu, 0x41, 1, 2)), 0x01);
	pdu[0] = 7;
	ck_assert_uint_eq(rtu_exception(fd, 3, pdu, 1), 0x01);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.requests, 11);
	ck_assert_int_eq(st.answers, 11);
	ck_assert_int_eq(st.crc_errors, 0);
	close(fd);
	sim_stop(s);
}
END_TEST

START_TEST(test_rtu_framing)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS_RTU });
	int fd = conn(s);
	uint8_t req[4 * 8], r[300];

	/* One byte per segment. */
	req[0] = 1;
	rtu_pdu_read(req + 1, 3, 10, 2);
	sim_rtu_seal(req, 6);
	ck_assert_int_eq(tm_write_split(fd, req, 8, 1), 0);
	ck_assert_int_eq(rtu_recv(fd, r, WAIT_MS), 9);
	ck_assert_uint_eq(r[3] << 8 | r[4], sim_modbus_value(3, 10, 1));

	/* Three and a half requests in one write, then the rest. */
	for (int i = 0; i < 4; i++) {
		req[8 * i] = (uint8_t)(i + 1);
		rtu_pdu_read(req + 8 * i + 1, 4, (uint16_t)(20 * i), 1);
		sim_rtu_seal(req + 8 * i, 6);
	}
	ck_assert_int_eq(tm_write_all(fd, req, 28), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(rtu_recv(fd, r, WAIT_MS), 7);
		ck_assert_uint_eq(r[0], i + 1);
		ck_assert_uint_eq(r[3] << 8 | r[4], sim_modbus_value(4, (uint16_t)(20 * i), (uint8_t)(i + 1)));
	}
	ck_assert_int_eq(tm_read_exact(fd, r, 1, 100), -ETIMEDOUT);
	ck_assert_int_eq(tm_write_all(fd, req + 28, 4), 0);
	ck_assert_int_eq(rtu_recv(fd, r, WAIT_MS), 7);
	ck_assert_uint_eq(r[0], 4);

	/* A bad CRC gets no answer, as on a serial line, and the stream stays
	 * in step: the next request is answered. */
	req[0] = 1;
	rtu_pdu_read(req + 1, 3, 10, 1);
	sim_rtu_seal(req, 6);
	req[7] ^= 0x01;
	ck_assert_int_eq(tm_write_all(fd, req, 8), 0);
	ck_assert_int_eq(tm_read_exact(fd, r, 1, 200), -ETIMEDOUT);
	ck_assert_int_eq(TM_SIM_STAT(s, crc_errors), 1);
	rtu_check_read(fd, 5, 3, 11, 1);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.requests, 6);
	ck_assert_int_eq(st.answers, 6);
	ck_assert_int_eq(st.crc_errors, 1);
	ck_assert_int_eq(st.protocol_errors, 0);
	close(fd);

	/* 256 bytes that never carry their CRC close the connection. */
	fd = conn(s);
	uint8_t junk[256];
	memset(junk, 0x55, sizeof(junk));
	junk[1] = 0x64;
	ck_assert_int_eq(tm_write_all(fd, junk, sizeof(junk)), 0);
	ck_assert_int_eq(tm_wait_closed(fd, WAIT_MS), 0);
	close(fd);
	ck_assert(TM_SIM_WAIT(s, protocol_errors, 1, WAIT_MS));
	sim_stop(s);
}
END_TEST

START_TEST(test_rtu_bad_crc_answers)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS_RTU, .rtu_bad_crc_every = 2 });
	int fd = conn(s);
	uint8_t pdu[5], r[300];

	rtu_check_read(fd, 1, 3, 0, 1);
	rtu_send(fd, 1, pdu, rtu_pdu_read(pdu, 3, 0, 1));
	ck_assert_int_eq(rtu_recv(fd, r, WAIT_MS), -EBADMSG);
	rtu_check_read(fd, 1, 3, 0, 1);
	ck_assert_int_eq(TM_SIM_STAT(s, bad_crc_sent), 1);
	close(fd);
	sim_stop(s);

	/* The option is for RTU only. */
	s = start((struct sim_opts){ .proto = SIM_MODBUS, .rtu_bad_crc_every = 1 });
	fd = conn(s);
	check_read(fd, 1, 1, 3, 0, 1);
	ck_assert_int_eq(TM_SIM_STAT(s, bad_crc_sent), 0);
	close(fd);
	sim_stop(s);
}
END_TEST

/* ---- device quirks ------------------------------------------------------ */

/* Waits until ms have passed since t0: the pause is the stimulus here. */
static void pause_since(int64_t t0, int ms)
{
	TM_WAIT_FOR(tm_now_ms() - t0 >= ms, ms + 1000);
}

START_TEST(test_min_gap)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS, .min_gap_ms = 100 });
	int fd = conn(s), other = conn(s);
	uint8_t req[24], adu[260];

	/* The first request of a connection is served; one right after its
	 * answer is refused as busy, and so is one right after that refusal. */
	check_read(fd, 1, 1, 3, 0, 1);
	ck_assert_int_eq(read_exception(fd, 3, 0, 1), 0x06);
	int64_t t0 = tm_now_ms();
	ck_assert_int_eq(read_exception(fd, 3, 0, 1), 0x06);
	ck_assert_int_eq(TM_SIM_STAT(s, gap_violations), 2);

	/* Another connection has its own clock. */
	check_read(other, 2, 1, 3, 0, 1);

	pause_since(t0, 110);
	check_read(fd, 3, 1, 4, 7, 3);

	/* Two requests in one write: the second is too soon. */
	pause_since(tm_now_ms(), 110);
	tm_modbus_req_read(req, 10, 1, 3, 5, 1);
	tm_modbus_req_read(req + 12, 11, 1, 3, 6, 1);
	ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
	ck_assert_int_eq(tm_modbus_recv(fd, adu, sizeof(adu), WAIT_MS), 11);
	ck_assert_uint_eq(adu[1], 10);
	ck_assert_int_eq(tm_modbus_recv(fd, adu, sizeof(adu), WAIT_MS), 9);
	ck_assert_uint_eq(adu[1], 11);
	ck_assert_uint_eq(adu[7], 0x83);
	ck_assert_uint_eq(adu[8], 0x06);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.gap_violations, 3);
	ck_assert_int_eq(st.requests, 7);
	ck_assert_int_eq(st.answers, 7);
	close(fd);
	close(other);
	sim_stop(s);

	/* RTU: the same, in RTU framing. */
	s = start((struct sim_opts){ .proto = SIM_MODBUS_RTU, .min_gap_ms = 100 });
	fd = conn(s);
	uint8_t pdu[5];
	rtu_check_read(fd, 4, 3, 0, 2);
	ck_assert_uint_eq(rtu_exception(fd, 4, pdu, rtu_pdu_read(pdu, 3, 0, 2)), 0x06);
	pause_since(tm_now_ms(), 110);
	rtu_check_read(fd, 4, 3, 0, 2);
	ck_assert_int_eq(TM_SIM_STAT(s, gap_violations), 1);
	close(fd);
	sim_stop(s);

	/* Other protocols ignore the option. */
	s = start((struct sim_opts){ .proto = SIM_ECHO, .min_gap_ms = 1000 });
	fd = conn(s);
	char line[16];
	ck_assert_int_eq(tm_write_all(fd, "a\nb\n", 4), 0);
	ck_assert_int_eq(tm_line_recv(fd, line, sizeof(line), WAIT_MS), 2);
	ck_assert_int_eq(tm_line_recv(fd, line, sizeof(line), WAIT_MS), 2);
	ck_assert_str_eq(line, "b\n");
	close(fd);
	sim_stop(s);
}
END_TEST

START_TEST(test_blackhole)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS, .blackhole_idle_ms = 200 });
	int fd = conn(s), busy = conn(s);
	uint8_t req[12], adu[260];

	check_read(fd, 1, 1, 3, 0, 1);
	int64_t t0 = tm_now_ms();

	/* A connection that keeps talking stays alive meanwhile. */
	for (int i = 0; i < 8; i++) {
		check_read(busy, (uint16_t)i, 2, 3, 1, 1);
		tm_sleep_ms(50);
	}
	ck_assert(TM_SIM_WAIT(s, blackholed, 1, WAIT_MS));
	ck_assert_int_ge(tm_now_ms() - t0, 190);
	ck_assert_int_eq(TM_SIM_STAT(s, blackholed), 1);
	close(busy);

	/* Silent for good: no answer, no close, even to garbage. */
	tm_modbus_req_read(req, 2, 1, 3, 0, 1);
	ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
	ck_assert(TM_SIM_WAIT(s, ignored, 1, WAIT_MS));
	ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
	ck_assert(TM_SIM_WAIT(s, ignored, 2, WAIT_MS));
	static const uint8_t bad_pid[] = { 0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1 };
	ck_assert_int_eq(tm_write_all(fd, bad_pid, sizeof(bad_pid)), 0);
	ck_assert_int_eq(tm_wait_closed(fd, 300), -ETIMEDOUT);

	/* A new connection is served, then goes silent when left idle; one that
	 * never says anything goes silent too. */
	int fresh = conn(s);
	check_read(fresh, 3, 1, 3, 0, 1);
	int mute = conn(s);
	ck_assert(TM_SIM_WAIT(s, blackholed, 3, WAIT_MS));
	tm_modbus_req_read(req, 4, 1, 3, 0, 1);
	ck_assert_int_eq(tm_write_all(mute, req, sizeof(req)), 0);
	ck_assert_int_eq(tm_modbus_recv(mute, adu, sizeof(adu), 300), -ETIMEDOUT);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.ignored, 3);
	ck_assert_int_eq(st.requests, 10);
	ck_assert_int_eq(st.answers, 10);
	ck_assert_int_eq(st.protocol_errors, 0);
	ck_assert_int_eq(st.blackholed, 3);
	TM_WAIT_FOR(TM_SIM_STAT(s, conns) == 3, WAIT_MS);
	ck_assert_int_eq(TM_SIM_STAT(s, conns), 3);

	/* Stopping does not wait for the silent ones. */
	int64_t t1 = tm_now_ms();
	sim_stop(s);
	ck_assert_int_lt(tm_now_ms() - t1, 2000);
	ck_assert_int_eq(tm_wait_closed(fd, WAIT_MS), 0);
	close(fd);
	close(fresh);
	close(mute);
}
END_TEST

START_TEST(test_proto_names)
{
	static const enum sim_proto all[] = { SIM_MODBUS, SIM_ECHO, SIM_ISO8583, SIM_MPU, SIM_HTTP,
					      SIM_MODBUS_RTU };
	ck_assert_str_eq(sim_proto_name(SIM_MODBUS_RTU), "modbus-rtu");
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		ck_assert_int_eq(sim_proto_parse(sim_proto_name(all[i])), all[i]);
	ck_assert_int_eq(sim_proto_parse("rtu"), -1);
	ck_assert_str_eq(sim_proto_name((enum sim_proto)99), "?");
}
END_TEST

/* ---- connections and faults --------------------------------------------- */

START_TEST(test_max_conns)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS, .max_conns = 1 });
	int a = conn(s);
	check_read(a, 1, 1, 3, 0, 1);

	int b = conn(s);
	ck_assert_int_eq(tm_wait_closed(b, WAIT_MS), 0);
	close(b);
	ck_assert_int_eq(TM_SIM_STAT(s, rejected), 1);
	check_read(a, 2, 1, 3, 1, 1);

	close(a);
	TM_WAIT_FOR(TM_SIM_STAT(s, conns) == 0, WAIT_MS);
	ck_assert_int_eq(TM_SIM_STAT(s, conns), 0);
	int c = conn(s);
	check_read(c, 3, 1, 3, 2, 1);
	close(c);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.accepted, 2);
	ck_assert_int_eq(st.rejected, 1);
	ck_assert_int_eq(st.conns_max, 1);
	sim_stop(s);
}
END_TEST

START_TEST(test_inflight)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS, .delay_ms = 300 });
	int fd[4];
	uint8_t req[12], adu[260];

	for (int i = 0; i < 4; i++)
		fd[i] = conn(s);
	int64_t t0 = tm_now_ms();
	for (int i = 0; i < 4; i++) {
		tm_modbus_req_read(req, (uint16_t)i, 1, 3, (uint16_t)i, 1);
		ck_assert_int_eq(tm_write_all(fd[i], req, sizeof(req)), 0);
	}
	ck_assert(TM_SIM_WAIT(s, inflight, 4, WAIT_MS));
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(tm_modbus_recv(fd[i], adu, sizeof(adu), WAIT_MS), 11);
		ck_assert_uint_eq(adu[0] << 8 | adu[1], i);
	}
	ck_assert_int_ge(tm_now_ms() - t0, 300);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.inflight_max, 4);
	ck_assert_int_eq(st.inflight, 0);
	ck_assert_int_eq(st.conns_max, 4);
	sim_reset_max(s);
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.inflight_max, 0);
	ck_assert_int_eq(st.conns_max, 4);

	/* One connection at a time never has two in flight. */
	sim_set_delay(s, 20);
	for (int i = 0; i < 3; i++)
		check_read(fd[0], 1, 1, 3, 0, 1);
	ck_assert_int_eq(TM_SIM_STAT(s, inflight_max), 1);
	for (int i = 0; i < 4; i++)
		close(fd[i]);
	sim_stop(s);
}
END_TEST

START_TEST(test_late)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS, .late_every = 2, .late_ms = 400 });
	int fd = conn(s);
	uint8_t req[12], adu[260];

	check_read(fd, 1, 1, 3, 0, 1);
	tm_modbus_req_read(req, 2, 1, 3, 0, 1);
	int64_t t0 = tm_now_ms();
	ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
	ck_assert_int_eq(tm_modbus_recv(fd, adu, sizeof(adu), 100), -ETIMEDOUT);
	ck_assert_int_eq(tm_modbus_recv(fd, adu, sizeof(adu), WAIT_MS), 11);
	ck_assert_int_ge(tm_now_ms() - t0, 400);
	ck_assert_uint_eq(adu[1], 2);
	check_read(fd, 3, 1, 3, 0, 1);
	ck_assert_int_eq(TM_SIM_STAT(s, late), 1);
	close(fd);
	sim_stop(s);
}
END_TEST

START_TEST(test_drop)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS, .drop_every = 2 });
	int fd = conn(s);
	uint8_t req[12], adu[260];

	check_read(fd, 1, 1, 3, 0, 1);
	tm_modbus_req_read(req, 2, 1, 3, 0, 1);
	ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
	ck_assert_int_eq(tm_modbus_recv(fd, adu, sizeof(adu), 300), -ETIMEDOUT);
	/* The connection stays usable and the next answer is the next request's. */
	check_read(fd, 3, 1, 3, 0, 1);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.requests, 3);
	ck_assert_int_eq(st.answers, 2);
	ck_assert_int_eq(st.dropped, 1);
	ck_assert_int_eq(st.inflight, 0);
	close(fd);
	sim_stop(s);
}
END_TEST

START_TEST(test_hangup_close_after)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_ECHO, .hangup_every = 2 });
	int fd = conn(s);
	char line[64];

	ck_assert_int_eq(tm_write_all(fd, "a\n", 2), 0);
	ck_assert_int_eq(tm_line_recv(fd, line, sizeof(line), WAIT_MS), 2);
	ck_assert_int_eq(tm_write_all(fd, "b\n", 2), 0);
	ck_assert_int_eq(tm_wait_closed(fd, WAIT_MS), 0);
	close(fd);
	ck_assert_int_eq(TM_SIM_STAT(s, hangups), 1);
	sim_stop(s);

	s = start((struct sim_opts){ .proto = SIM_ECHO, .close_after = 2 });
	fd = conn(s);
	ck_assert_int_eq(tm_write_all(fd, "a\nb\nc\n", 6), 0);
	ck_assert_int_eq(tm_line_recv(fd, line, sizeof(line), WAIT_MS), 2);
	ck_assert_str_eq(line, "a\n");
	ck_assert_int_eq(tm_line_recv(fd, line, sizeof(line), WAIT_MS), 2);
	ck_assert_str_eq(line, "b\n");
	ck_assert_int_eq(tm_line_recv(fd, line, sizeof(line), WAIT_MS), -EPIPE);
	close(fd);
	ck_assert_int_eq(TM_SIM_STAT(s, answers), 2);
	sim_stop(s);
}
END_TEST

START_TEST(test_kill_revive)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS });
	int port = sim_port(s);
	int fd = conn(s);

	check_read(fd, 1, 1, 3, 0, 1);
	ck_assert_int_eq(sim_revive(s), -EBUSY);
	ck_assert_int_eq(sim_kill(s), 0);
	ck_assert_int_eq(sim_kill(s), 0);
	ck_assert_int_eq(tm_wait_closed(fd, WAIT_MS), 0);
	close(fd);
	ck_assert_int_eq(tm_connect(port), -ECONNREFUSED);

	ck_assert_int_eq(sim_revive(s), 0);
	ck_assert_int_eq(sim_port(s), port);
	fd = conn(s);
	check_read(fd, 2, 1, 3, 0, 1);
	close(fd);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.accepted, 2);
	ck_assert_int_eq(st.requests, 2);
	sim_stop(s);
}
END_TEST

START_TEST(test_stop_while_busy)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS, .delay_ms = 20000 });
	int fd = conn(s), idle = conn(s);
	uint8_t req[12];

	tm_modbus_req_read(req, 1, 1, 3, 0, 1);
	ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
	ck_assert(TM_SIM_WAIT(s, inflight, 1, WAIT_MS));
	int64_t t0 = tm_now_ms();
	sim_stop(s);
	ck_assert_int_lt(tm_now_ms() - t0, 2000);
	ck_assert_int_eq(tm_wait_closed(fd, WAIT_MS), 0);
	ck_assert_int_eq(tm_wait_closed(idle, WAIT_MS), 0);
	close(fd);
	close(idle);
}
END_TEST

START_TEST(test_fixed_port)
{
	struct sim *a = start((struct sim_opts){ .proto = SIM_ECHO });
	int port = sim_port(a);
	sim_stop(a);
	struct sim *b = start((struct sim_opts){ .proto = SIM_ECHO, .port = port });
	ck_assert_int_eq(sim_port(b), port);
	errno = 0;
	ck_assert_ptr_null(sim_start(&(struct sim_opts){ .proto = SIM_ECHO, .port = port }));
	ck_assert_int_eq(errno, EADDRINUSE);
	ck_assert_ptr_null(sim_start(&(struct sim_opts){ .proto = (enum sim_proto)99 }));
	ck_assert_int_eq(errno, EINVAL);
	sim_stop(b);
	sim_stop(NULL);
}
END_TEST

/* reset_every: the peer sees a reset, not an answer and not a clean close. */
START_TEST(test_reset)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS, .reset_every = 2 });
	int fd = conn(s);
	uint8_t req[12], adu[260];

	check_read(fd, 1, 1, 3, 0, 1);
	tm_modbus_req_read(req, 2, 1, 3, 0, 1);
	ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
	ck_assert_int_eq(tm_modbus_recv(fd, adu, sizeof(adu), WAIT_MS), -ECONNRESET);
	close(fd);
	TM_WAIT_FOR(TM_SIM_STAT(s, conns) == 0, WAIT_MS);

	/* Set while running, on a new connection, read with a plain recv. */
	struct sim_opts o = { .reset_every = 1 };
	sim_set_faults(s, &o);
	fd = conn(s);
	ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
	ck_assert_int_eq(tm_read_exact(fd, adu, 1, WAIT_MS), -ECONNRESET);
	close(fd);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.requests, 3);
	ck_assert_int_eq(st.answers, 1);
	ck_assert_int_eq(st.resets, 2);
	ck_assert_int_eq(st.hangups, 0);
	ck_assert_int_eq(st.inflight, 0);
	sim_stop(s);
}
END_TEST

/* half_every: half the answer, then silence on an open connection. */
START_TEST(test_half)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS, .half_every = 2 });
	int fd = conn(s), other = conn(s);
	uint8_t req[12], adu[260];

	check_read(fd, 1, 1, 3, 0, 1);
	tm_modbus_req_read(req, 0x0102, 1, 3, 0, 1);
	ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
	/* 11 bytes: tid 01 02, protocol 00 00, length 00 05; half is 5 */
	ck_assert_int_eq(tm_read_exact(fd, adu, 5, WAIT_MS), 5);
	static const uint8_t head[] = { 0x01, 0x02, 0, 0, 0 };
	ck_assert(memcmp(adu, head, sizeof(head)) == 0);
	ck_assert_int_eq(tm_read_exact(fd, adu, 1, 300), -ETIMEDOUT);

	/* Stalled for good: later requests get nothing, the connection stays. */
	ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
	ck_assert(TM_SIM_WAIT(s, ignored, 1, WAIT_MS));
	ck_assert_int_eq(tm_wait_closed(fd, 300), -ETIMEDOUT);
	/* Other connections are served (request 3 is not a multiple of 2). */
	check_read(other, 3, 1, 3, 0, 1);

	/* Echo: the first 3 bytes of "abcdef\n". */
	sim_stop(s);
	close(fd);
	close(other);
	s = start((struct sim_opts){ .proto = SIM_ECHO, .half_every = 1 });
	fd = conn(s);
	char line[16];
	ck_assert_int_eq(tm_write_all(fd, "abcdef\n", 7), 0);
	ck_assert_int_eq(tm_read_exact(fd, line, 3, WAIT_MS), 3);
	ck_assert(memcmp(line, "abc", 3) == 0);
	ck_assert_int_eq(tm_read_exact(fd, line, 1, 300), -ETIMEDOUT);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.halves, 1);
	ck_assert_int_eq(st.answers, 0);
	ck_assert_int_eq(st.inflight, 0);
	close(fd);
	sim_stop(s);
}
END_TEST

/* The unsolicited Modbus frame: whole, unit 247, 0xBAD0, an id far from
 * the last request's. Returns its transaction id. */
static uint16_t check_unsolicited_modbus(const uint8_t *adu, ssize_t n, uint16_t last_tid)
{
	ck_assert_int_eq(n, 11);
	ck_assert_uint_eq(adu[6], 247);
	ck_assert_uint_eq(adu[7], 3);
	ck_assert_uint_eq(adu[8], 2);
	ck_assert_uint_eq(adu[9] << 8 | adu[10], 0xBAD0);
	uint16_t tid = (uint16_t)(adu[0] << 8 | adu[1]);
	uint16_t dist = (uint16_t)(tid - last_tid);
	ck_assert_uint_ge(dist, 0x4000);
	ck_assert_uint_lt(dist, 0xC000);
	return tid;
}

/* unsolicited_every_ms on an idle connection, and between exchanges. */
START_TEST(test_unsolicited_modbus)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS, .unsolicited_every_ms = 150 });
	int fd = conn(s);
	uint8_t adu[260];
	int64_t t0 = tm_now_ms();

	check_read(fd, 0x1234, 1, 3, 0, 1);
	ssize_t n = tm_modbus_recv(fd, adu, sizeof(adu), WAIT_MS);
	ck_assert_int_ge(tm_now_ms() - t0, 140);
	check_unsolicited_modbus(adu, n, 0x1234);
	t0 = tm_now_ms();
	n = tm_modbus_recv(fd, adu, sizeof(adu), WAIT_MS);
	ck_assert_int_ge(tm_now_ms() - t0, 100);
	check_unsolicited_modbus(adu, n, 0x1234);

	/* Busy: requests keep the connection between exchanges only briefly,
	 * yet frames still come, each whole, between the answers. */
	uint8_t req[12];
	int answers = 0, extra = 0;
	t0 = tm_now_ms();
	for (uint16_t tid = 100; tm_now_ms() - t0 < 600 && tid < 60000; tid++) {
		tm_modbus_req_read(req, tid, 2, 4, tid, 1);
		ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
		/* Its answer, after any unsolicited frames. */
		for (int k = 0; k < 10; k++) {
			n = tm_modbus_recv(fd, adu, sizeof(adu), WAIT_MS);
			ck_assert_int_eq(n, 11);
			if (adu[6] == 247) {
				check_unsolicited_modbus(adu, n, (uint16_t)(tid - 1));
				extra++;
				continue;
			}
			ck_assert_uint_eq(adu[0] << 8 | adu[1], tid);
			ck_assert_uint_eq(adu[9] << 8 | adu[10], sim_modbus_value(4, tid, 2));
			answers++;
			break;
		}
	}
	ck_assert_int_gt(answers, 0);
	ck_assert_int_ge(extra, 2);
	/* one more may be on its way after the last answer */
	ck_assert_int_ge(TM_SIM_STAT(s, unsolicited), 2 + extra);
	ck_assert_int_le(TM_SIM_STAT(s, unsolicited), 3 + extra);
	ck_assert_int_eq(TM_SIM_STAT(s, answers), 1 + answers);
	close(fd);
	sim_stop(s);
}
END_TEST

/* One unsolicited frame per protocol, readable by the protocol's reader;
 * garbage instead with unsolicited_garbage. */
START_TEST(test_unsolicited_protocols)
{
	uint8_t buf[512];
	char text[512];
	struct sim *s = start((struct sim_opts){ .proto = SIM_ECHO, .unsolicited_every_ms = 50 });
	int fd = conn(s);
	ck_assert_int_eq(tm_line_recv(fd, text, sizeof(text), WAIT_MS), 12);
	ck_assert_str_eq(text, "unsolicited\n");
	close(fd);
	sim_stop(s);

	s = start((struct sim_opts){ .proto = SIM_ISO8583, .unsolicited_every_ms = 50 });
	fd = conn(s);
	ck_assert_int_eq(tm_iso8583_recv(fd, buf, sizeof(buf), WAIT_MS), 11);
	ck_assert(memcmp(buf, "UNSOLICITED", 11) == 0);
	close(fd);
	sim_stop(s);

	s = start((struct sim_opts){ .proto = SIM_MPU, .unsolicited_every_ms = 50 });
	fd = conn(s);
	ck_assert_int_eq(tm_mpu_recv(fd, buf, sizeof(buf), WAIT_MS), 11);
	ck_assert(memcmp(buf, "UNSOLICITED", 11) == 0);
	close(fd);
	sim_stop(s);

	s = start((struct sim_opts){ .proto = SIM_HTTP, .unsolicited_every_ms = 50 });
	fd = conn(s);
	ck_assert_int_gt(tm_http_recv(fd, text, sizeof(text), false, WAIT_MS), 0);
	ck_assert_int_eq(tm_http_status(text), 408);
	close(fd);
	sim_stop(s);

	s = start((struct sim_opts){ .proto = SIM_MODBUS_RTU, .unsolicited_every_ms = 50 });
	fd = conn(s);
	ck_assert_int_eq(rtu_recv(fd, buf, WAIT_MS), 7);
	ck_assert_uint_eq(buf[0], 247);
	ck_assert_uint_eq(buf[1], 3);
	ck_assert_uint_eq(buf[3] << 8 | buf[4], 0xBAD0);
	close(fd);
	sim_stop(s);

	static const uint8_t junk[] = { 0xDE, 0xAD, 0xBE, 0xEF, 0xFF, 0xFF, 0xFF, 0xFF };
	static const enum sim_proto all[] = { SIM_MODBUS, SIM_ECHO, SIM_HTTP };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		s = start((struct sim_opts){ .proto = all[i], .unsolicited_every_ms = 50,
					     .unsolicited_garbage = 1 });
		fd = conn(s);
		ck_assert_int_eq(tm_read_exact(fd, buf, 16, WAIT_MS), 16);
		ck_assert(memcmp(buf, junk, 8) == 0);
		ck_assert(memcmp(buf + 8, junk, 8) == 0);
		close(fd);
		ck_assert_int_ge(TM_SIM_STAT(s, unsolicited), 2);
		sim_stop(s);
	}
}
END_TEST

/* sim_set_faults takes effect for the next request, and for a connection
 * already waiting between exchanges; clearing them restores service. */
START_TEST(test_set_faults)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS });
	int fd = conn(s);
	uint8_t req[12], adu[260];

	check_read(fd, 1, 1, 3, 0, 1);
	sim_set_faults(s, &(struct sim_opts){ .drop_every = 1 });
	tm_modbus_req_read(req, 2, 1, 3, 0, 1);
	ck_assert_int_eq(tm_write_all(fd, req, sizeof(req)), 0);
	ck_assert_int_eq(tm_modbus_recv(fd, adu, sizeof(adu), 300), -ETIMEDOUT);
	ck_assert_int_eq(TM_SIM_STAT(s, dropped), 1);

	sim_set_faults(s, &(struct sim_opts){ .delay_ms = 200 });
	int64_t t0 = tm_now_ms();
	check_read(fd, 3, 1, 3, 0, 1);
	ck_assert_int_ge(tm_now_ms() - t0, 190);

	/* The connection now waits for a request; frames start within
	 * SIM_FAULT_POLL_MS + every. */
	sim_set_faults(s, &(struct sim_opts){ .unsolicited_every_ms = 20 });
	ck_assert_int_eq(tm_modbus_recv(fd, adu, sizeof(adu), 1000), 11);
	ck_assert_uint_eq(adu[6], 247);
	sim_set_faults(s, &(struct sim_opts){ 0 });
	long sent = TM_SIM_STAT(s, unsolicited);
	/* Drain what was sent before the change; then nothing more comes. */
	for (int k = 0; k < 100 && tm_modbus_recv(fd, adu, sizeof(adu), 300) == 11; k++)
		ck_assert_uint_eq(adu[6], 247);
	ck_assert_int_le(TM_SIM_STAT(s, unsolicited), sent + 1);
	check_read(fd, 4, 1, 3, 0, 1);

	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_int_eq(st.requests, 4);
	ck_assert_int_eq(st.answers, 3);
	close(fd);
	sim_stop(s);
}
END_TEST

/* ---- echo, iso8583, mpu ------------------------------------------------- */

START_TEST(test_echo)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_ECHO });
	int fd = conn(s);
	char line[64];

	ck_assert_int_eq(tm_write_all(fd, "hel", 3), 0);
	ck_assert_int_eq(tm_read_exact(fd, line, 1, 100), -ETIMEDOUT);
	ck_assert_int_eq(tm_write_all(fd, "lo\nwor", 6), 0);
	ck_assert_int_eq(tm_write_all(fd, "ld\n\n", 4), 0);
	ck_assert_int_eq(tm_line_recv(fd, line, sizeof(line), WAIT_MS), 6);
	ck_assert_str_eq(line, "hello\n");
	ck_assert_int_eq(tm_line_recv(fd, line, sizeof(line), WAIT_MS), 6);
	ck_assert_str_eq(line, "world\n");
	ck_assert_int_eq(tm_line_recv(fd, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(line, "\n");
	ck_assert_int_eq(tm_write_split(fd, "split line\r\n", 12, 1), 0);
	ck_assert_int_eq(tm_line_recv(fd, line, sizeof(line), WAIT_MS), 12);
	ck_assert_str_eq(line, "split line\r\n");
	ck_assert_int_eq(TM_SIM_STAT(s, answers), 4);
	close(fd);
	sim_stop(s);
}
END_TEST

/* Sends frames through fd and checks the reversed answers. */
static void check_reversed(int fd, bool mpu, const uint8_t *payload, size_t len, size_t step)
{
	static uint8_t frame[70000], got[70000], want[70000];
	size_t n = mpu ? tm_mpu_frame(frame, payload, len) : tm_iso8583_frame(frame, payload, len);
	ck_assert_int_eq(tm_write_split(fd, frame, n, step), 0);
	ssize_t r = mpu ? tm_mpu_recv(fd, got, sizeof(got), WAIT_MS)
			: tm_iso8583_recv(fd, got, sizeof(got), WAIT_MS);
	ck_assert_int_eq(r, (ssize_t)len);
	sim_reverse(payload, want, len);
	ck_assert(memcmp(got, want, len) == 0);
}

static void check_length_prefixed(enum sim_proto proto)
{
	struct sim *s = start((struct sim_opts){ .proto = proto });
	bool mpu = proto == SIM_MPU;
	int fd = conn(s);
	static uint8_t big[9999];
	static const char msg[] = "0200B23800000080000000000000000000123456";

	check_reversed(fd, mpu, (const uint8_t *)msg, strlen(msg), 1);
	check_reversed(fd, mpu, (const uint8_t *)"x", 1, 1);
	check_reversed(fd, mpu, (const uint8_t *)"", 0, 1);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 31 + 7);
	check_reversed(fd, mpu, big, sizeof(big), 4000);

	/* Two frames and a piece of a third in one write. */
	uint8_t frames[64], got[16];
	size_t n = 0;
	for (int i = 0; i < 3; i++)
		n += mpu ? tm_mpu_frame(frames + n, "abc", 3) : tm_iso8583_frame(frames + n, "abc", 3);
	ck_assert_int_eq(tm_write_all(fd, frames, n - 2), 0);
	for (int i = 0; i < 2; i++) {
		ssize_t r = mpu ? tm_mpu_recv(fd, got, sizeof(got), WAIT_MS)
				: tm_iso8583_recv(fd, got, sizeof(got), WAIT_MS);
		ck_assert_int_eq(r, 3);
		ck_assert(memcmp(got, "cba", 3) == 0);
	}
	ck_assert_int_eq(tm_read_exact(fd, got, 1, 100), -ETIMEDOUT);
	ck_assert_int_eq(tm_write_all(fd, frames + n - 2, 2), 0);
	ssize_t r = mpu ? tm_mpu_recv(fd, got, sizeof(got), WAIT_MS)
			: tm_iso8583_recv(fd, got, sizeof(got), WAIT_MS);
	ck_assert_int_eq(r, 3);
	close(fd);
	ck_assert_int_eq(TM_SIM_STAT(s, answers), 7);
	sim_stop(s);
}

START_TEST(test_iso8583)
{
	check_length_prefixed(SIM_ISO8583);
	struct sim *s = start((struct sim_opts){ .proto = SIM_ISO8583 });
	int fd = conn(s);
	static uint8_t big[65535];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i ^ (i >> 8));
	check_reversed(fd, false, big, sizeof(big), sizeof(big) + 2);
	close(fd);
	sim_stop(s);
}
END_TEST

START_TEST(test_mpu)
{
	check_length_prefixed(SIM_MPU);
	struct sim *s = start((struct sim_opts){ .proto = SIM_MPU });
	int fd = conn(s);
	ck_assert_int_eq(tm_write_all(fd, "00x1a", 5), 0);
	ck_assert_int_eq(tm_wait_closed(fd, WAIT_MS), 0);
	close(fd);
	ck_assert(TM_SIM_WAIT(s, protocol_errors, 1, WAIT_MS));
	sim_stop(s);
}
END_TEST

/* ---- http --------------------------------------------------------------- */

static void http_call(int fd, const char *req, bool head, int status, const char *body)
{
	static char resp[8192];
	ck_assert_int_eq(tm_write_split(fd, req, strlen(req), 7), 0);
	ssize_t n = tm_http_recv(fd, resp, sizeof(resp), head, WAIT_MS);
	ck_assert_msg(n > 0, "tm_http_recv: %s", strerror((int)-n));
	ck_assert_int_eq(tm_http_status(resp), status);
	if (body)
		ck_assert_str_eq(tm_http_body(resp), body);
}

START_TEST(test_http)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_HTTP });
	int fd = conn(s);
	char resp[4096];

	http_call(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", false, 200, "GET /a\n");
	http_call(fd, "POST /b HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello", false, 200,
		  "POST /b\nhello");
	http_call(fd,
		  "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n",
		  false, 200, "POST /c\nabcde");
	http_call(fd, "HEAD /d HTTP/1.1\r\n\r\n", true, 200, "");
	http_call(fd, "GET /status/204 HTTP/1.1\r\n\r\n", false, 204, "");
	http_call(fd, "GET /status/404 HTTP/1.1\r\n\r\n", false, 404, "GET /status/404\n");

	/* An interim answer, then the final one. */
	static const char interim[] = "GET /status/100 HTTP/1.1\r\n\r\n";
	ck_assert_int_eq(tm_write_all(fd, interim, strlen(interim)), 0);
	ck_assert_int_gt(tm_http_recv(fd, resp, sizeof(resp), false, WAIT_MS), 0);
	ck_assert_int_eq(tm_http_status(resp), 100);
	ck_assert_int_gt(tm_http_recv(fd, resp, sizeof(resp), false, WAIT_MS), 0);
	ck_assert_int_eq(tm_http_status(resp), 200);

	/* Two requests in one write. */
	static const char two[] = "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
	ck_assert_int_eq(tm_write_all(fd, two, strlen(two)), 0);
	ck_assert_int_gt(tm_http_recv(fd, resp, sizeof(resp), false, WAIT_MS), 0);
	ck_assert_str_eq(tm_http_body(resp), "GET /1\n");
	ck_assert_int_gt(tm_http_recv(fd, resp, sizeof(resp), false, WAIT_MS), 0);
	ck_assert_str_eq(tm_http_body(resp), "GET /2\n");

	/* A body that ends at close. */
	http_call(fd, "GET /eof HTTP/1.1\r\n\r\n", false, 200, "GET /eof\n");
	ck_assert_int_eq(tm_wait_closed(fd, WAIT_MS), 0);
	close(fd);

	fd = conn(s);
	http_call(fd, "GET /e HTTP/1.1\r\nConnection: close\r\n\r\n", false, 200, "GET /e\n");
	ck_assert_int_eq(tm_wait_closed(fd, WAIT_MS), 0);
	close(fd);

	fd = conn(s);
	ck_assert_int_eq(tm_write_all(fd, "BAD\r\n\r\n", 7), 0);
	ck_assert_int_eq(tm_wait_closed(fd, WAIT_MS), 0);
	close(fd);
	ck_assert(TM_SIM_WAIT(s, protocol_errors, 1, WAIT_MS));
	sim_stop(s);
}
END_TEST

START_TEST(test_http_chunked_answer)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_HTTP, .http_chunked = 1 });
	int fd = conn(s);
	static char req[1024], resp[4096];
	static uint8_t body[1024];
	char payload[301];

	memset(payload, 'z', 300);
	payload[300] = '\0';
	snprintf(req, sizeof(req), "PUT /big HTTP/1.1\r\nContent-Length: 300\r\n\r\n%s", payload);
	ck_assert_int_eq(tm_write_all(fd, req, strlen(req)), 0);
	ssize_t n = tm_http_recv(fd, resp, sizeof(resp), false, WAIT_MS);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(tm_http_status(resp), 200);
	ck_assert_ptr_nonnull(strstr(resp, "Transfer-Encoding: chunked\r\n"));
	const char *b = tm_http_body(resp);
	size_t blen = 0;
	ssize_t used = sim_http_dechunk((const uint8_t *)b, (size_t)(resp + n - b), body, &blen);
	ck_assert_int_eq(used, resp + n - b);
	ck_assert_uint_eq(blen, strlen("PUT /big\n") + 300);
	ck_assert(memcmp(body, "PUT /big\n", 9) == 0);

	/* HEAD: the chunked header, no body; the connection stays in step. */
	static const char two[] = "HEAD / HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n";
	ck_assert_int_eq(tm_write_all(fd, two, strlen(two)), 0);
	ck_assert_int_gt(tm_http_recv(fd, resp, sizeof(resp), true, WAIT_MS), 0);
	ck_assert_str_eq(tm_http_body(resp), "");
	ck_assert_int_gt(tm_http_recv(fd, resp, sizeof(resp), false, WAIT_MS), 0);
	ck_assert_str_eq(tm_http_body(resp), "7\r\nGET /x\n\r\n0\r\n\r\n");
	close(fd);
	sim_stop(s);
}
END_TEST

START_TEST(test_http_dechunk)
{
	static const struct {
		const char *in;
		ssize_t rc;
		const char *body;
	} cases[] = {
		{ "0\r\n\r\n", 5, "" },
		{ "1\r\na\r\n0\r\n\r\n", 11, "a" },
		{ "A\r\n0123456789\r\n0\r\n\r\nnext", 20, "0123456789" },
		{ "2 ; x=y\r\nab\r\n0\r\nT: 1\r\nU: 2\r\n\r\n", 30, "ab" },
		{ "1\r\na\r\n0\r\n", 0, NULL },
		{ "1\r\na", 0, NULL },
		{ "", 0, NULL },
		{ "z\r\n", -EPROTO, NULL },
		{ "1\r\nab\r\n", -EPROTO, NULL },
		{ "\r\n", -EPROTO, NULL },
		{ "fffffffffffffffff\r\n", -EPROTO, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t out[64];
		size_t olen = 99;
		ssize_t rc = sim_http_dechunk((const uint8_t *)cases[i].in, strlen(cases[i].in), out, &olen);
		ck_assert_msg(rc == cases[i].rc, "case %zu: %zd", i, rc);
		if (cases[i].body) {
			ck_assert_uint_eq(olen, strlen(cases[i].body));
			ck_assert(memcmp(out, cases[i].body, olen) == 0);
		}
	}
}
END_TEST

/* ---- the harness -------------------------------------------------------- */

/* A stand-in for the daemon: a shell script that reports its arguments,
 * prints the listening line, and answers SIGUSR1. */
static const char fake_daemon[] =
	"#!/bin/sh\n"
	"echo \"args: $*\" >&2\n"
	"case \"$1\" in\n"
	"server) ;;\n"
	"--help) echo 'usage: fake'; exit 0 ;;\n"
	"*) echo \"fake: bad subcommand $1\" >&2; exit 2 ;;\n"
	"esac\n"
	"case \"$*\" in *--exit-now*) echo 'fake: failing' >&2; exit 3 ;; esac\n"
	"trap 'echo \"fake: got USR1\" >&2' USR1\n"
	"printf 'fake: listening on 127.0.0.1:4242\\n' >&2\n"
	"i=0\n"
	"while [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done\n";

static char fake_path[64];

static void fake_setup(void)
{
	snprintf(fake_path, sizeof(fake_path), "/tmp/tm-fake-daemon-XXXXXX");
	int fd = mkstemp(fake_path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, fake_daemon, strlen(fake_daemon)), (ssize_t)strlen(fake_daemon));
	ck_assert_int_eq(fchmod(fd, 0700), 0);
	close(fd);
	setenv("TCPMUX_BIN", fake_path, 1);
}

static void fake_teardown(void)
{
	unlink(fake_path);
}

START_TEST(test_harness_daemon)
{
	struct sim *s = start((struct sim_opts){ .proto = SIM_MODBUS });
	static const char *const extra[] = { "--max-connections", "4", NULL };
	char line[256], want[128];

	ck_assert_str_eq(tm_daemon_binary(), fake_path);
	struct tm_daemon *d = tm_daemon_start_sim(s, extra);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(tm_daemon_port(d), 4242);
	ck_assert(tm_daemon_running(d));
	snprintf(want, sizeof(want),
		 "args: server -v -l 127.0.0.1:0 -p modbus -t 127.0.0.1:%d --max-connections 4",
		 sim_port(s));
	ck_assert(tm_daemon_wait_log(d, 0, "args: ", line, sizeof(line), WAIT_MS));
	ck_assert_str_eq(line, want);

	size_t mark = tm_daemon_log_mark(d);
	ck_assert_int_gt(mark, 0);
	ck_assert_int_eq(tm_daemon_log_count(d, 0, "listening on"), 1);
	ck_assert_int_eq(tm_daemon_log_count(d, mark, "listening on"), 0);
	ck_assert_int_eq(tm_daemon_signal(d, SIGUSR1), 0);
	ck_assert(tm_daemon_wait_log(d, mark, "got USR1", NULL, 0, WAIT_MS));
	ck_assert(!tm_daemon_wait_log(d, mark, "never printed", NULL, 0, 50));
	ck_assert_int_eq(tm_daemon_stop(d, SIGTERM, WAIT_MS), 128 + SIGTERM);
	sim_stop(s);
}
END_TEST

START_TEST(test_harness_early_exit)
{
	static const char *const extra[] = { "--exit-now", NULL };
	int64_t t0 = tm_now_ms();
	ck_assert_ptr_null(tm_daemon_start(extra));
	ck_assert_int_lt(tm_now_ms() - t0, TM_START_TIMEOUT_MS / 2);

	setenv("TCPMUX_BIN", "/nonexistent/tcp-multiplexer", 1);
	ck_assert_ptr_null(tm_daemon_start(NULL));
}
END_TEST

START_TEST(test_harness_run)
{
	static const char *const help[] = { "--help", NULL };
	static const char *const bad[] = { "bogus", "x y", NULL };
	char out[256];

	ck_assert_int_eq(tm_run(help, out, sizeof(out), WAIT_MS), 0);
	ck_assert_str_eq(out, "args: --help\nusage: fake\n");
	ck_assert_int_eq(tm_run(bad, out, sizeof(out), WAIT_MS), 2);
	ck_assert_ptr_nonnull(strstr(out, "bad subcommand bogus"));
	ck_assert_int_eq(tm_run(help, out, 8, WAIT_MS), 0);
	ck_assert_str_eq(out, "args: -");
}
END_TEST

/* A daemon whose test dies without stopping it is killed with the test. */
START_TEST(test_harness_orphan)
{
	int p[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct tm_daemon *d = tm_daemon_start(NULL);
		pid_t pid = d ? tm_daemon_pid(d) : -1;
		if (write(p[1], &pid, sizeof(pid)) != sizeof(pid))
			_exit(1);
		_exit(0);
	}
	pid_t pid = -1;
	ck_assert_int_eq(tm_read_exact(p[0], &pid, sizeof(pid), WAIT_MS), sizeof(pid));
	ck_assert_int_gt(pid, 0);
	int st;
	ck_assert_int_eq(waitpid(child, &st, 0), child);

	/* Gone, or a zombie waiting for init to reap it. */
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	bool dead = false;
	int64_t deadline = tm_now_ms() + WAIT_MS;
	while (!dead && tm_now_ms() < deadline) {
		FILE *f = fopen(path, "r");
		dead = !f;
		if (f) {
			const char *state = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
			dead = !state || state[2] == 'Z' || state[2] == 'X';
			fclose(f);
		}
		if (!dead)
			tm_sleep_ms(2);
	}
	if (!dead)
		kill(pid, SIGKILL);
	ck_assert_msg(dead, "the orphaned daemon %d still runs", (int)pid);
	close(p[0]);
	close(p[1]);
}
END_TEST

Suite *make_suite(void);

Suite *make_suite(void)
{
	Suite *s = suite_create("sim");
	struct {
		const char *name;
		const TTest *test;
		bool fake;
	} tests[] = {
		{ "modbus_read", test_modbus_read, false },
		{ "modbus_write", test_modbus_write, false },
		{ "modbus_framing", test_modbus_framing, false },
		{ "modbus_tid_offset", test_modbus_tid_offset, false },
		{ "modbus_malformed", test_modbus_malformed, false },
		{ "modbus_crc", test_modbus_crc, false },
		{ "rtu_request_len", test_rtu_request_len, false },
		{ "rtu_read_write", test_rtu_read_write, false },
		{ "rtu_framing", test_rtu_framing, false },
		{ "rtu_bad_crc_answers", test_rtu_bad_crc_answers, false },
		{ "min_gap", test_min_gap, false },
		{ "blackhole", test_blackhole, false },
		{ "proto_names", test_proto_names, false },
		{ "max_conns", test_max_conns, false },
		{ "inflight", test_inflight, false },
		{ "late", test_late, false },
		{ "drop", test_drop, false },
		{ "hangup_close_after", test_hangup_close_after, false },
		{ "kill_revive", test_kill_revive, false },
		{ "stop_while_busy", test_stop_while_busy, false },
		{ "fixed_port", test_fixed_port, false },
		{ "reset", test_reset, false },
		{ "half", test_half, false },
		{ "unsolicited_modbus", test_unsolicited_modbus, false },
		{ "unsolicited_protocols", test_unsolicited_protocols, false },
		{ "set_faults", test_set_faults, false },
		{ "echo", test_echo, false },
		{ "iso8583", test_iso8583, false },
		{ "mpu", test_mpu, false },
		{ "http", test_http, false },
		{ "http_chunked_answer", test_http_chunked_answer, false },
		{ "http_dechunk", test_http_dechunk, false },
		{ "harness_daemon", test_harness_daemon, true },
		{ "harness_early_exit", test_harness_early_exit, true },
		{ "harness_run", test_harness_run, true },
		{ "harness_orphan", test_harness_orphan, true },
	};
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		TCase *tc = tcase_create(tests[i].name);
		tcase_set_timeout(tc, 60);
		if (tests[i].fake)
			tcase_add_checked_fixture(tc, fake_setup, fake_teardown);
		tcase_add_test(tc, tests[i].test);
		suite_add_tcase(s, tc);
	}
	return s;
}
