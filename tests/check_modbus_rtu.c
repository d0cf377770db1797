/* Tests for src/modbus_rtu.c: the CRC against the specification's example,
 * MBAP <-> RTU conversion (only of requests with their exact length), and
 * the length of every function's answer. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <string.h>

#include "modbus.h"
#include "modbus_rtu.h"
#include "testing.h"

/* Appends the CRC, low byte first. */
static size_t with_crc(uint8_t *p, size_t n)
{
	uint16_t c = rtu_crc16(p, n);
	p[n] = (uint8_t)c;
	p[n + 1] = (uint8_t)(c >> 8);
	return n + 2;
}

START_TEST(test_crc)
{
	/* MODBUS over Serial Line V1.02, 6.2.2: the CRC of 02 07 is 0x1241, sent 41 12 */
	const uint8_t spec[] = { 0x02, 0x07 };
	ck_assert_uint_eq(rtu_crc16(spec, 2), 0x1241);
	const uint8_t read10[] = { 0x01, 0x03, 0x00, 0x00, 0x00, 0x0A };
	ck_assert_uint_eq(rtu_crc16(read10, sizeof read10), 0xCDC5);
	ck_assert_uint_eq(rtu_crc16(NULL, 0), 0xFFFF);
}
END_TEST

START_TEST(test_convert)
{
	const uint8_t mbap[] = { 0x12, 0x34, 0, 0, 0, 6, 0x01, 0x03, 0x00, 0x00, 0x00, 0x0A };
	uint8_t rtu[RTU_MAX_ADU];
	ck_assert_uint_eq(rtu_from_mbap(mbap, sizeof mbap, rtu), 8);
	const uint8_t want[] = { 0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD };
	ck_assert_int_eq(memcmp(rtu, want, sizeof want), 0);

	uint8_t ans[] = { 0x01, 0x03, 0x04, 0x00, 0x2A, 0x01, 0x00, 0, 0 };
	size_t n = with_crc(ans, 7);
	uint8_t back[MODBUS_MAX_ADU];
	ck_assert_uint_eq(rtu_to_mbap(ans, n, 0xBEEF, back), 13);
	const uint8_t wantm[] = { 0xBE, 0xEF, 0, 0, 0, 7, 0x01, 0x03, 0x04, 0x00, 0x2A, 0x01, 0x00 };
	ck_assert_int_eq(memcmp(back, wantm, sizeof wantm), 0);
}
END_TEST

/* Regression: an allowed read whose PDU carries a whole RTU frame of its
 * own (with its CRC) went out as is, and a device that frames RTU by
 * function code ran the hidden frame as a second request: a write. */
START_TEST(test_refuses_trailing_frame)
{
	uint8_t hidden[8] = { 0x01, 0x06, 0x00, 0x64, 0x00, 0x01 };
	with_crc(hidden, 6);
	uint8_t read[8] = { 0x01, 0x03, 0x00, 0x00, 0x00, 0x01 };
	with_crc(read, 6);
	uint8_t mbap[7 + 7 + 8] = { 0, 1, 0, 0, 0, 1 + 7 + 8, 0x01 };
	memcpy(mbap + 7, read + 1, 7); /* function 3, address, quantity, the read's CRC */
	memcpy(mbap + 14, hidden, 8);
	uint8_t rtu[RTU_MAX_ADU];
	ck_assert_int_eq(rtu_from_mbap(mbap, sizeof mbap, rtu), -EBADMSG);
	/* one byte too many, or too few, is refused as well */
	const uint8_t plus1[] = { 0, 1, 0, 0, 0, 7, 0x01, 0x03, 0, 0, 0, 1, 0 };
	ck_assert_int_eq(rtu_from_mbap(plus1, sizeof plus1, rtu), -EBADMSG);
	const uint8_t short16[] = { 0, 1, 0, 0, 0, 8, 0x01, 0x10, 0, 0, 0, 2, 4, 0 };
	ck_assert_int_eq(rtu_from_mbap(short16, sizeof short16, rtu), -EBADMSG);
	/* an unknown function: nobody can tell where it ends */
	const uint8_t vendor[] = { 0, 1, 0, 0, 0, 4, 0x01, 0x41, 1, 2 };
	ck_assert_int_eq(rtu_from_mbap(vendor, sizeof vendor, rtu), -EOPNOTSUPP);
	/* an exact write goes out whole, CRC appended */
	const uint8_t w16[] = { 0, 1, 0, 0, 0, 11, 0x05, 0x10, 0, 1, 0, 2, 4, 0, 0x0A, 1, 2 };
	ck_assert_int_eq(rtu_from_mbap(w16, sizeof w16, rtu), 1 + 10 + 2);
	ck_assert_int_eq(memcmp(rtu, w16 + 6, 11), 0);
	ck_assert_uint_eq(rtu_crc16(rtu, 11), (uint16_t)(rtu[11] | rtu[12] << 8));
}
END_TEST

/* Answers of every function code the framer knows, as (bytes after unit
 * and function, without CRC). */
static const struct { uint8_t fc; uint8_t body[12]; size_t blen; } answers[] = {
	{ 0x01, { 2, 0xCD, 0x01 }, 3 },                  /* read coils: byte count 2 */
	{ 0x02, { 1, 0x35 }, 2 },
	{ 0x03, { 4, 0, 1, 0, 2 }, 5 },
	{ 0x04, { 2, 0xAB, 0xCD }, 3 },
	{ 0x05, { 0, 0xAC, 0xFF, 0 }, 4 },               /* echo */
	{ 0x06, { 0, 1, 0, 3 }, 4 },
	{ 0x07, { 0x6D }, 1 },
	{ 0x08, { 0, 0, 0xA5, 0x37 }, 4 },
	{ 0x08, { 0, 0, 1, 2, 3, 4, 5, 6 }, 8 },           /* return query data: the echo, by CRC */
	{ 0x08, { 0, 1, 0, 0 }, 4 },
	{ 0x0B, { 0, 0, 1, 8 }, 4 },
	{ 0x0C, { 6, 0, 0, 1, 8, 1, 0x21 }, 7 },        /* comm event log: byte count */
	{ 0x0F, { 0, 0x13, 0, 0x0A }, 4 },
	{ 0x10, { 0, 1, 0, 2 }, 4 },
	{ 0x11, { 3, 0x42, 0xFF, 0x00 }, 4 },            /* report server id */
	{ 0x14, { 4, 3, 6, 0, 1 }, 5 },                  /* read file record */
	{ 0x15, { 4, 6, 0, 4, 7 }, 5 },
	{ 0x16, { 0, 4, 0, 0xF2, 0, 0x25 }, 6 },         /* mask write */
	{ 0x17, { 2, 0, 0xFE }, 3 },                     /* read/write multiple */
	{ 0x18, { 0, 6, 0, 2, 1, 0xB8, 0x12, 0x84 }, 8 },/* FIFO: 2-byte byte count */
	{ 0x2B, { 0x0E, 1, 1, 0, 0, 1, 0, 3, 'A', 'B', 'C' }, 11 }, /* device id: by CRC */
	{ 0x41, { 9, 9, 9 }, 3 },                        /* a vendor code: by CRC */
	{ 0x83, { 0x02 }, 1 },                           /* exception */
	{ 0xAB, { 0x0B }, 1 },
};

START_TEST(test_answer_lengths)
{
	uint8_t f[64];
	f[0] = 0x11;
	f[1] = answers[_i].fc;
	memcpy(f + 2, answers[_i].body, answers[_i].blen);
	size_t n = with_crc(f, 2 + answers[_i].blen);
	struct frame_ctx ctx = { .max_frame = 1 << 20 };
	for (size_t k = 0; k < n; k++)
		ck_assert_msg(rtu_response_frame(&ctx, f, k, 0) == 0, "fc 0x%02x: prefix %zu", f[1], k);
	ck_assert_int_eq(rtu_response_frame(&ctx, f, n, 0), (ssize_t)n);
	/* followed by more bytes: still the same frame */
	memset(f + n, 0x5A, 8);
	ck_assert_int_eq(rtu_response_frame(&ctx, f, n + 8, 0), (ssize_t)n);
}
END_TEST

START_TEST(test_bad_crc)
{
	uint8_t f[16] = { 0x01, 0x03, 0x02, 0x00, 0x07 };
	size_t n = with_crc(f, 5);
	f[n - 1] ^= 0x01;
	struct frame_ctx ctx = { .max_frame = 1 << 20 };
	ck_assert_int_eq(rtu_response_frame(&ctx, f, n, 0), -EPROTO);
	uint8_t e[8] = { 0x01, 0x86, 0x02 };
	n = with_crc(e, 3);
	e[2] = 0x03;
	ck_assert_int_eq(rtu_response_frame(&ctx, e, n, 0), -EPROTO);
}
END_TEST

START_TEST(test_unknown_without_crc_match)
{
	/* a vendor answer whose CRC never matches: more bytes wanted until the cap, then an error */
	uint8_t f[RTU_MAX_ADU + 8];
	memset(f, 0, sizeof f);
	f[0] = 1;
	f[1] = 0x42;
	struct frame_ctx ctx = { .max_frame = 1 << 20 };
	ssize_t r = 0;
	size_t k;
	for (k = 2; k <= sizeof f && r == 0; k++)
		r = rtu_response_frame(&ctx, f, k, 0);
	/* zeros: some prefix may match by chance; either a frame or an error, never endless */
	ck_assert_int_ne(r, 0);
	ck_assert_uint_le(k, RTU_MAX_ADU + 1);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("modbus_rtu");
	TM_LOOPS(s, "rtu", 0, TM_ONCE(test_crc), TM_ONCE(test_convert),
		 TM_ONCE(test_refuses_trailing_frame), TM_LOOP(test_answer_lengths, answers),
		 TM_ONCE(test_bad_crc), TM_ONCE(test_unknown_without_crc_match));
	return s;
}
