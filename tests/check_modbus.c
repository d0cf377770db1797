/* Tests for src/modbus.c: exception replies, upstream ids, the function-code
 * classifier (every function's exact length), the request check, the
 * read-only policy and its write allow-list. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <string.h>

#include "modbus.h"
#include "testing.h"

START_TEST(test_exception)
{
	const uint8_t req[] = { 0xAB, 0xCD, 0, 0, 0, 6, 0x11, 0x03, 0, 0, 0, 2 };
	uint8_t out[MODBUS_EXC_LEN];
	ck_assert_uint_eq(modbus_exception(req, MODBUS_EXC_GATEWAY_TARGET, out), 9);
	const uint8_t want[] = { 0xAB, 0xCD, 0, 0, 0, 3, 0x11, 0x83, 0x0B };
	ck_assert_int_eq(memcmp(out, want, sizeof want), 0);
}
END_TEST

START_TEST(test_ids_wrap)
{
	struct modbus_ids ids = { .next = 65534 };
	ck_assert_uint_eq(modbus_ids_take(&ids), 65534);
	ck_assert_uint_eq(modbus_ids_take(&ids), 65535);
	ck_assert_uint_eq(modbus_ids_take(&ids), 0);
	uint8_t adu[8] = { 0 };
	modbus_set_tid(adu, 0xBEEF);
	ck_assert_uint_eq(modbus_tid(adu), 0xBEEF);
}
END_TEST

/* ---- the classifier: every function code's exact length --------------- */

#define MAXPDU 253

/* One PDU, what the classifier must say about it, and why. */
struct pdu_case {
	const char *what;
	uint8_t pdu[MAXPDU];
	size_t len;                 /* 0: as many bytes as listed (see FILL) */
	int rc;                     /* 0, -EBADMSG or -EOPNOTSUPP */
	enum modbus_access access;
	enum modbus_space space;
	uint32_t first, last;
};

/* Cases with a long tail: len given, the rest of pdu zero (the values do not matter). */
static const struct pdu_case cases[] = {
	/* 6.1-6.4: address, quantity */
	{ "read coils", { 1, 0, 0x13, 0, 0x13 }, 5, 0, MODBUS_READ, 0, 0, 0 },
	{ "read coils 2000", { 1, 0, 0, 0x07, 0xD0 }, 5, 0, MODBUS_READ, 0, 0, 0 },
	{ "read coils 2001", { 1, 0, 0, 0x07, 0xD1 }, 5, -EBADMSG, MODBUS_READ, 0, 0, 0 },
	{ "read coils 0", { 1, 0, 0, 0, 0 }, 5, -EBADMSG, MODBUS_READ, 0, 0, 0 },
	{ "read inputs", { 2, 0, 0xC4, 0, 0x16 }, 5, 0, MODBUS_READ, 0, 0, 0 },
	{ "read holding", { 3, 0, 0x6B, 0, 3 }, 5, 0, MODBUS_READ, 0, 0, 0 },
	{ "read holding 125", { 3, 0, 0, 0, 125 }, 5, 0, MODBUS_READ, 0, 0, 0 },
	{ "read holding 126", { 3, 0, 0, 0, 126 }, 5, -EBADMSG, MODBUS_READ, 0, 0, 0 },
	{ "read holding, short", { 3, 0, 0, 0 }, 4, -EBADMSG, MODBUS_READ, 0, 0, 0 },
	{ "read holding + 1 byte", { 3, 0, 0, 0, 1, 0 }, 6, -EBADMSG, MODBUS_READ, 0, 0, 0 },
	{ "read holding + an RTU write", { 3, 0, 0, 0, 1, 0x84, 0x0A, 1, 6, 0, 100, 0, 1, 0x09, 0xD5 }, 15,
	  -EBADMSG, MODBUS_READ, 0, 0, 0 },
	{ "read input", { 4, 0, 8, 0, 1 }, 5, 0, MODBUS_READ, 0, 0, 0 },
	/* 6.5, 6.6: address, value */
	{ "write coil on", { 5, 0, 0xAC, 0xFF, 0 }, 5, 0, MODBUS_WRITE, MODBUS_SPACE_COILS, 172, 172 },
	{ "write coil off", { 5, 0, 0xAC, 0, 0 }, 5, 0, MODBUS_WRITE, MODBUS_SPACE_COILS, 172, 172 },
	{ "write coil 0x1234", { 5, 0, 0xAC, 0x12, 0x34 }, 5, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	{ "write register", { 6, 0, 1, 0, 3 }, 5, 0, MODBUS_WRITE, MODBUS_SPACE_REGISTERS, 1, 1 },
	{ "write register + 1", { 6, 0, 1, 0, 3, 0 }, 6, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	/* serial-line reads: the function code alone */
	{ "exception status", { 7 }, 1, 0, MODBUS_READ, 0, 0, 0 },
	{ "exception status + 1", { 7, 0 }, 2, -EBADMSG, MODBUS_READ, 0, 0, 0 },
	{ "comm event counter", { 11 }, 1, 0, MODBUS_READ, 0, 0, 0 },
	{ "comm event log", { 12 }, 1, 0, MODBUS_READ, 0, 0, 0 },
	{ "report server id", { 17 }, 1, 0, MODBUS_READ, 0, 0, 0 },
	/* 6.8: sub-function, data */
	{ "return query data", { 8, 0, 0, 0xA5, 0x37 }, 5, 0, MODBUS_CONTROL, 0, 0, 0 },
	{ "return query data x3", { 8, 0, 0, 1, 2, 3, 4, 5, 6 }, 9, 0, MODBUS_CONTROL, 0, 0, 0 },
	{ "return query data, odd", { 8, 0, 0, 1, 2, 3 }, 6, -EBADMSG, MODBUS_CONTROL, 0, 0, 0 },
	{ "restart communications", { 8, 0, 1, 0, 0 }, 5, 0, MODBUS_CONTROL, 0, 0, 0 },
	{ "restart communications + 2", { 8, 0, 1, 0, 0, 0, 0 }, 7, -EBADMSG, MODBUS_CONTROL, 0, 0, 0 },
	{ "diagnostics, short", { 8, 0, 1 }, 3, -EBADMSG, MODBUS_CONTROL, 0, 0, 0 },
	/* 6.11: address, quantity, byte count = ceil(quantity / 8), values */
	{ "write coils", { 15, 0, 0x13, 0, 0x0A, 2, 0xCD, 1 }, 8, 0, MODBUS_WRITE, MODBUS_SPACE_COILS, 19, 28 },
	{ "write coils, count 1 for 10", { 15, 0, 0x13, 0, 0x0A, 1, 0xCD }, 7, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	{ "write coils, count 3 for 10", { 15, 0, 0x13, 0, 0x0A, 3, 0xCD, 1, 0 }, 9, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	{ "write coils + 1", { 15, 0, 0x13, 0, 0x0A, 2, 0xCD, 1, 0 }, 9, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	{ "write coils 1968", { 15, 0, 0, 0x07, 0xB0, 246 }, 252, 0, MODBUS_WRITE, MODBUS_SPACE_COILS, 0, 1967 },
	{ "write coils 1969", { 15, 0, 0, 0x07, 0xB1, 247 }, 253, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	{ "write coils 0", { 15, 0, 0, 0, 0, 0 }, 6, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	/* 6.12: address, quantity, byte count = 2 x quantity, values */
	{ "write registers", { 16, 0, 1, 0, 2, 4, 0, 0x0A, 1, 2 }, 10, 0, MODBUS_WRITE, MODBUS_SPACE_REGISTERS, 1, 2 },
	{ "write registers, count 4 for 1", { 16, 0, 1, 0, 1, 4, 0, 0x0A, 1, 2 }, 10, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	{ "write registers, count 2 for 2", { 16, 0, 1, 0, 2, 2, 0, 0x0A }, 8, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	{ "write registers + 2", { 16, 0, 1, 0, 1, 2, 0, 0x0A, 1, 2 }, 10, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	{ "write registers 123", { 16, 0, 0, 0, 123, 246 }, 252, 0, MODBUS_WRITE, MODBUS_SPACE_REGISTERS, 0, 122 },
	{ "write registers 124", { 16, 0, 0, 0, 124, 248 }, 254, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	{ "write registers, short", { 16, 0, 1, 0, 1 }, 5, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	{ "write registers past 65535", { 16, 0xFF, 0xFF, 0, 2, 4, 0, 1, 0, 2 }, 10, 0, MODBUS_WRITE,
	  MODBUS_SPACE_REGISTERS, 65535, 65536 },
	/* 6.14, 6.15: file records */
	{ "read file record", { 20, 14, 6, 0, 4, 0, 1, 0, 2, 6, 0, 3, 0, 9, 0, 2 }, 16, 0, MODBUS_READ, 0, 0, 0 },
	{ "read file record, type 5", { 20, 7, 5, 0, 4, 0, 1, 0, 2 }, 9, -EBADMSG, MODBUS_READ, 0, 0, 0 },
	{ "read file record, count 8", { 20, 8, 6, 0, 4, 0, 1, 0, 2, 6 }, 10, -EBADMSG, MODBUS_READ, 0, 0, 0 },
	{ "read file record + 1", { 20, 7, 6, 0, 4, 0, 1, 0, 2, 0 }, 10, -EBADMSG, MODBUS_READ, 0, 0, 0 },
	{ "write file record", { 21, 13, 6, 0, 4, 0, 7, 0, 3, 6, 0xAF, 4, 0xBE, 0x10, 0x0D }, 15, 0, MODBUS_WRITE,
	  MODBUS_SPACE_FILES, 0, 0 },
	{ "write file record, 3 for 2", { 21, 11, 6, 0, 4, 0, 7, 0, 3, 6, 0xAF, 4, 0xBE }, 13, -EBADMSG,
	  MODBUS_WRITE, 0, 0, 0 },
	/* 6.16: address, AND mask, OR mask */
	{ "mask write", { 22, 0, 4, 0, 0xF2, 0, 0x25 }, 7, 0, MODBUS_WRITE, MODBUS_SPACE_REGISTERS, 4, 4 },
	{ "mask write, short", { 22, 0, 4, 0, 0xF2, 0 }, 6, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	/* 6.17: read address, quantity; write address, quantity, byte count, values */
	{ "read/write", { 23, 0, 3, 0, 6, 0, 14, 0, 3, 6, 0, 0xFF, 0, 0xFF, 0, 0xFF }, 16, 0, MODBUS_WRITE,
	  MODBUS_SPACE_REGISTERS, 14, 16 },
	{ "read/write, count 4 for 3", { 23, 0, 3, 0, 6, 0, 14, 0, 3, 4, 0, 0xFF, 0, 0xFF }, 14, -EBADMSG,
	  MODBUS_WRITE, 0, 0, 0 },
	{ "read/write, read 126", { 23, 0, 3, 0, 126, 0, 14, 0, 1, 2, 0, 1 }, 12, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	{ "read/write, write 122", { 23, 0, 3, 0, 1, 0, 14, 0, 122, 244 }, 254, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	{ "read/write, write 121", { 23, 0, 3, 0, 1, 0, 14, 0, 121, 242 }, 252, 0, MODBUS_WRITE,
	  MODBUS_SPACE_REGISTERS, 14, 134 },
	{ "read/write + 1", { 23, 0, 3, 0, 6, 0, 14, 0, 1, 2, 0, 1, 9 }, 13, -EBADMSG, MODBUS_WRITE, 0, 0, 0 },
	/* 6.18: FIFO pointer address */
	{ "read fifo", { 24, 4, 0xDE }, 3, 0, MODBUS_READ, 0, 0, 0 },
	{ "read fifo, short", { 24, 4 }, 2, -EBADMSG, MODBUS_READ, 0, 0, 0 },
	/* 6.21: MEI 0x0E, read device id code 1..4, object id */
	{ "device id", { 43, 0x0E, 1, 0 }, 4, 0, MODBUS_READ, 0, 0, 0 },
	{ "device id, code 5", { 43, 0x0E, 5, 0 }, 4, -EBADMSG, MODBUS_READ, 0, 0, 0 },
	{ "device id + 1", { 43, 0x0E, 1, 0, 0 }, 5, -EBADMSG, MODBUS_READ, 0, 0, 0 },
	{ "canopen", { 43, 0x0D, 1, 0 }, 4, -EOPNOTSUPP, MODBUS_UNKNOWN, 0, 0, 0 },
	/* no layout to check */
	{ "vendor 0x41", { 0x41, 1, 2, 3 }, 4, -EOPNOTSUPP, MODBUS_UNKNOWN, 0, 0, 0 },
	{ "user 100", { 100 }, 1, -EOPNOTSUPP, MODBUS_UNKNOWN, 0, 0, 0 },
	{ "function 0", { 0, 0, 0, 0, 1 }, 5, -EOPNOTSUPP, MODBUS_UNKNOWN, 0, 0, 0 },
	{ "exception code", { 0x83, 2 }, 2, -EOPNOTSUPP, MODBUS_UNKNOWN, 0, 0, 0 },
	{ "reserved 9", { 9, 0, 0 }, 3, -EOPNOTSUPP, MODBUS_UNKNOWN, 0, 0, 0 },
};

START_TEST(test_pdu_table)
{
	const struct pdu_case *t = &cases[_i];
	struct modbus_class c;
	int rc = modbus_pdu_check(t->pdu, t->len, &c);
	ck_assert_msg(rc == t->rc, "%s: rc %d, want %d", t->what, rc, t->rc);
	ck_assert_msg(c.access == t->access, "%s: access %d, want %d", t->what, c.access, t->access);
	ck_assert_msg(modbus_access_of(t->pdu, t->len) == t->access, "%s: modbus_access_of", t->what);
	if (rc == 0 && t->space != MODBUS_SPACE_NONE) {
		ck_assert_msg(c.space == t->space, "%s: space %d, want %d", t->what, c.space, t->space);
		if (t->space != MODBUS_SPACE_FILES)
			ck_assert_msg(c.first == t->first && c.last == t->last, "%s: range %u-%u, want %u-%u",
				      t->what, c.first, c.last, t->first, t->last);
	}
	/* a good PDU with one byte more or less is never good */
	if (rc == 0) {
		ck_assert_msg(modbus_pdu_check(t->pdu, t->len - 1, &c) == -EBADMSG, "%s: one byte short", t->what);
		if (t->len < MAXPDU)
			ck_assert_msg(modbus_pdu_check(t->pdu, t->len + 1, &c) == -EBADMSG, "%s: one byte more",
				      t->what);
	}
}
END_TEST

/* The whole MBAP frame around pdu (len bytes) for unit. */
static size_t mbap(uint8_t *out, uint8_t unit, const uint8_t *pdu, size_t len)
{
	out[0] = 0x12;
	out[1] = 0x34;
	out[2] = out[3] = 0;
	out[4] = (uint8_t)((len + 1) >> 8);
	out[5] = (uint8_t)(len + 1);
	out[6] = unit;
	memcpy(out + 7, pdu, len);
	return len + 7;
}

START_TEST(test_request_check)
{
	uint8_t a[MODBUS_MAX_ADU + 8];
	const uint8_t read[] = { 3, 0, 0, 0, 1 };
	size_t n = mbap(a, 1, read, sizeof read);
	ck_assert_int_eq(modbus_request_check(a, n), 0);
	ck_assert_int_eq(modbus_request_check(a, n - 1), -EBADMSG);  /* length field disagrees */
	a[5]++;
	ck_assert_int_eq(modbus_request_check(a, n), -EBADMSG);
	const uint8_t vendor[] = { 0x41, 1 };
	ck_assert_int_eq(modbus_request_check(a, mbap(a, 1, vendor, sizeof vendor)), -EOPNOTSUPP);
	ck_assert_int_eq(modbus_request_check(a, 7), -EBADMSG);
}
END_TEST

/* ---- the policy ----------------------------------------------------------- */

static const uint8_t pdu_read[] = { 3, 0, 100, 0, 2 };
static const uint8_t pdu_devid[] = { 43, 0x0E, 1, 0 };
static const uint8_t pdu_canopen[] = { 43, 0x0D, 1, 0 };
static const uint8_t pdu_vendor[] = { 0x41, 0, 100 };
static const uint8_t pdu_diag[] = { 8, 0, 1, 0, 0 };
static const uint8_t pdu_filewrite[] = { 21, 9, 6, 0, 4, 0, 7, 0, 1, 6, 0xAF };
/* function 3 whose PDU carries a whole RTU frame "unit 1: write 1 to register 100" */
static const uint8_t pdu_hidden[] = { 3, 0, 0, 0, 1, 0x84, 0x0A, 1, 6, 0, 100, 0, 1, 0x09, 0xD5 };

static int admit(const struct modbus_policy *p, const uint8_t *map, int rtu, uint8_t unit, const uint8_t *pdu,
		 size_t len)
{
	uint8_t a[MODBUS_MAX_ADU];
	return modbus_admit(p, map, rtu, a, mbap(a, unit, pdu, len));
}
#define ADMIT(p, map, rtu, unit, pdu) admit((p), (map), (rtu), (unit), (pdu), sizeof(pdu))

START_TEST(test_open)
{
	struct modbus_policy open = { .read_only = 0 };
	ck_assert_int_eq(ADMIT(&open, NULL, 0, 1, pdu_read), 0);
	const uint8_t w16[] = { 16, 0, 100, 0, 1, 2, 0, 7 };
	ck_assert_int_eq(ADMIT(&open, NULL, 0, 1, w16), 0);
	ck_assert_int_eq(ADMIT(&open, NULL, 0, 1, pdu_diag), 0);
	/* over Modbus/TCP an unknown function passes untouched */
	ck_assert_int_eq(ADMIT(&open, NULL, 0, 1, pdu_vendor), 0);
	ck_assert_int_eq(ADMIT(&open, NULL, 0, 1, pdu_canopen), 0);
	/* over RTU it cannot be framed */
	ck_assert_int_eq(ADMIT(&open, NULL, 1, 1, pdu_vendor), -EOPNOTSUPP);
	ck_assert_uint_eq(modbus_refusal_code(-EOPNOTSUPP), MODBUS_EXC_ILLEGAL_FUNCTION);
	/* a known function with the wrong length is refused 0x03, policy or not */
	ck_assert_int_eq(ADMIT(&open, NULL, 0, 1, pdu_hidden), -EBADMSG);
	ck_assert_int_eq(ADMIT(&open, NULL, 1, 1, pdu_hidden), -EBADMSG);
	const uint8_t bad16[] = { 16, 0, 100, 0, 1, 4, 0, 7, 0, 8 };
	ck_assert_int_eq(ADMIT(&open, NULL, 0, 1, bad16), -EBADMSG);
	ck_assert_uint_eq(modbus_refusal_code(-EBADMSG), MODBUS_EXC_ILLEGAL_VALUE);
}
END_TEST

START_TEST(test_read_only)
{
	struct modbus_policy p = { .read_only = 1 };
	for (uint8_t fc = 1; fc <= 4; fc++) {
		const uint8_t r[] = { fc, 0, 0, 0, 1 };
		ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, r), 0);
		ck_assert_int_eq(ADMIT(&p, NULL, 1, 1, r), 0);
	}
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, pdu_devid), 0);
	const uint8_t fifo[] = { 24, 0, 1 }, event[] = { 11 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, fifo), 0);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, event), 0);
	/* writes (no range allowed), diagnostics, file writes, unknown: 0x01 */
	const uint8_t w5[] = { 5, 0, 0, 0xFF, 0 }, w6[] = { 6, 0, 0, 0, 1 };
	const uint8_t w15[] = { 15, 0, 0, 0, 1, 1, 1 }, w16[] = { 16, 0, 0, 0, 1, 2, 0, 1 };
	const uint8_t w22[] = { 22, 0, 0, 0, 0, 0, 0 };
	const uint8_t w23[] = { 23, 0, 0, 0, 1, 0, 0, 0, 1, 2, 0, 1 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, w5), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, w6), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, w15), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, w16), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, w22), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, w23), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, pdu_diag), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, pdu_filewrite), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, pdu_vendor), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, pdu_canopen), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 1, 1, pdu_vendor), -EPERM);
	ck_assert_uint_eq(modbus_refusal_code(-EPERM), MODBUS_EXC_ILLEGAL_FUNCTION);
	/* a read with a write frame behind it: 0x03, in every upstream mode */
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, pdu_hidden), -EBADMSG);
	ck_assert_int_eq(ADMIT(&p, NULL, 1, 1, pdu_hidden), -EBADMSG);
	/* a diagnostics request is refused as a function before its length matters */
	const uint8_t diag_long[] = { 8, 0, 1, 0, 0, 0, 0 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, diag_long), -EPERM);
}
END_TEST

/* Regression: a write inside an allowed range whose byte count does not
 * match its quantity passed the policy (which read only the quantity), so
 * a device that writes by byte count wrote past the range. */
START_TEST(test_allow_write_counts)
{
	struct modbus_policy p = { .read_only = 1, .nallow = 1 };
	ck_assert_int_eq(modbus_parse_write_range("1:100-100", &p.allow[0]), 0);
	const uint8_t good[] = { 16, 0, 100, 0, 1, 2, 0, 7 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, good), 0);
	const uint8_t two_for_one[] = { 16, 0, 100, 0, 1, 4, 0, 7, 0, 8 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, two_for_one), -EBADMSG);
	const uint8_t coils_short[] = { 15, 0, 100, 0, 1 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, coils_short), -EBADMSG);
	const uint8_t trailing[] = { 6, 0, 100, 0, 7, 1, 6, 0, 101, 0, 7 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, trailing), -EBADMSG);
}
END_TEST

START_TEST(test_allow_write)
{
	struct modbus_policy p = { .read_only = 1, .nallow = 1 };
	ck_assert_int_eq(modbus_parse_write_range("3:100-109", &p.allow[0]), 0);
	const uint8_t w6_100[] = { 6, 0, 100, 0, 7 }, w6_109[] = { 6, 0, 109, 0, 7 };
	const uint8_t w6_110[] = { 6, 0, 110, 0, 7 }, w6_99[] = { 6, 0, 99, 0, 7 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 3, w6_100), 0);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 3, w6_109), 0);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 3, w6_110), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 3, w6_99), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 4, w6_100), -EPERM);   /* another unit */
	uint8_t w16[6 + 2 * 11] = { 16, 0, 100, 0, 10, 20 };
	ck_assert_int_eq(admit(&p, NULL, 0, 3, w16, 6 + 20), 0);   /* 100..109 */
	w16[4] = 11;
	w16[5] = 22;
	ck_assert_int_eq(admit(&p, NULL, 0, 3, w16, 6 + 22), -EPERM); /* 100..110 sticks out */
	const uint8_t w5[] = { 5, 0, 101, 0xFF, 0 }, w15[] = { 15, 0, 108, 0, 2, 1, 3 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 3, w5), 0);            /* no space given: coils too */
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 3, w15), 0);
	/* mask write and read/write: writes to holding registers like 6 and 16 */
	const uint8_t w22[] = { 22, 0, 105, 0, 0xF2, 0, 0x25 }, w22_out[] = { 22, 0, 110, 0, 0xF2, 0, 0x25 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 3, w22), 0);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 3, w22_out), -EPERM);
	/* 23: the write part must lie inside; the read part may be anywhere */
	const uint8_t w23[] = { 23, 0x10, 0, 0, 5, 0, 108, 0, 2, 4, 0, 1, 0, 2 };
	const uint8_t w23_out[] = { 23, 0, 100, 0, 1, 0, 109, 0, 2, 4, 0, 1, 0, 2 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 3, w23), 0);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 3, w23_out), -EPERM);
	/* writes that end past 65535 never fit a range */
	ck_assert_int_eq(modbus_parse_write_range("3:65530-65535", &p.allow[0]), 0);
	const uint8_t wrap[] = { 16, 0xFF, 0xFF, 0, 2, 4, 0, 1, 0, 2 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 3, wrap), -EPERM);
}
END_TEST

/* A range names coils, holding registers, or (without a space) both. */
START_TEST(test_allow_write_spaces)
{
	struct modbus_policy p = { .read_only = 1, .nallow = 2 };
	ck_assert_int_eq(modbus_parse_write_range("1:coils:10-19", &p.allow[0]), 0);
	ck_assert_int_eq(modbus_parse_write_range("1:registers:200-209", &p.allow[1]), 0);
	const uint8_t coil10[] = { 5, 0, 10, 0xFF, 0 }, coils10[] = { 15, 0, 10, 0, 10, 2, 0, 0 };
	const uint8_t reg10[] = { 6, 0, 10, 0, 1 }, regs10[] = { 16, 0, 10, 0, 1, 2, 0, 1 };
	const uint8_t coil200[] = { 5, 0, 200, 0xFF, 0 }, reg200[] = { 6, 0, 200, 0, 1 };
	const uint8_t mask200[] = { 22, 0, 200, 0, 0, 0, 0 };
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, coil10), 0);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, coils10), 0);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, reg10), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, regs10), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, coil200), -EPERM);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, reg200), 0);
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, mask200), 0);
}
END_TEST

/* UNIT is the device's unit id: the one --modbus-unit-map sends. */
START_TEST(test_allow_write_unit_map)
{
	uint8_t map[256];
	for (int i = 0; i < 256; i++)
		map[i] = (uint8_t)i;
	map[1] = 3;
	struct modbus_policy p = { .read_only = 1, .nallow = 1 };
	ck_assert_int_eq(modbus_parse_write_range("3:100-109", &p.allow[0]), 0);
	const uint8_t w6[] = { 6, 0, 100, 0, 7 };
	ck_assert_int_eq(ADMIT(&p, map, 0, 1, w6), 0);       /* client 1 is device 3 */
	ck_assert_int_eq(ADMIT(&p, map, 0, 3, w6), 0);       /* and so is client 3 */
	ck_assert_int_eq(ADMIT(&p, map, 0, 2, w6), -EPERM);
	ck_assert_int_eq(modbus_parse_write_range("1:100-109", &p.allow[0]), 0);
	ck_assert_int_eq(ADMIT(&p, map, 0, 1, w6), -EPERM);  /* client 1 reaches device 3, not 1 */
	ck_assert_int_eq(ADMIT(&p, NULL, 0, 1, w6), 0);      /* without a map, the same id */
}
END_TEST

START_TEST(test_parse_range)
{
	struct modbus_write_range r;
	ck_assert_int_eq(modbus_parse_write_range("1:40100", &r), 0);
	ck_assert_uint_eq(r.unit, 1);
	ck_assert_uint_eq(r.first, 40100);
	ck_assert_uint_eq(r.last, 40100);
	ck_assert_uint_eq(r.spaces, MODBUS_RANGE_COILS | MODBUS_RANGE_REGISTERS);
	ck_assert_int_eq(modbus_parse_write_range("255:0x10-0x1f", &r), 0);
	ck_assert_uint_eq(r.first, 16);
	ck_assert_uint_eq(r.last, 31);
	ck_assert_int_eq(modbus_parse_write_range("1:0100", &r), 0); /* decimal, not octal */
	ck_assert_uint_eq(r.first, 100);
	ck_assert_int_eq(modbus_parse_write_range("2:coils:5-6", &r), 0);
	ck_assert_uint_eq(r.unit, 2);
	ck_assert_uint_eq(r.spaces, MODBUS_RANGE_COILS);
	ck_assert_uint_eq(r.first, 5);
	ck_assert_uint_eq(r.last, 6);
	ck_assert_int_eq(modbus_parse_write_range("2:registers:0x10", &r), 0);
	ck_assert_uint_eq(r.spaces, MODBUS_RANGE_REGISTERS);
	ck_assert_uint_eq(r.first, 16);
	ck_assert_uint_eq(r.last, 16);
	static const char *const bad[] = { "", "1", "1:", ":5", "256:1", "1:70000", "1:9-3", "x:1", "1:1-",
					   "1:-3", "1:2-3-4", "-1:5", "1:coils", "1:coils:", "1:holding:5",
					   "1:coils:registers:5", "1:Coils:5", "1:coils:5-" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(modbus_parse_write_range(bad[i], &r) < 0, "'%s' should be refused", bad[i]);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("modbus");
	TM_CASE(s, "mbap", 0, test_exception, test_ids_wrap);
	TM_LOOPS(s, "classifier", 0, TM_LOOP(test_pdu_table, cases), TM_ONCE(test_request_check));
	TM_CASE(s, "policy", 0, test_open, test_read_only, test_allow_write_counts, test_allow_write,
		test_allow_write_spaces, test_allow_write_unit_map, test_parse_range);
	return s;
}
