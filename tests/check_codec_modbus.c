/* Tests for src/codec_modbus.c: Modbus/TCP frames and exception replies. */
#include "config.h"
#include "codec_test.h"
#include "modbus.h"

#include <errno.h>

#define FN (codec_modbus.request)

static const struct ct_msg frames[] = {
	/* read holding registers (0x03), unit 0x11, 3 registers from 0x006B */
	{ "request", CT_BYTES("\x00\x01\x00\x00\x00\x06\x11\x03\x00\x6b\x00\x03") },
	{ "response", CT_BYTES("\x00\x01\x00\x00\x00\x09\x11\x03\x06\x02\x2b\x00\x00\x00\x64") },
	{ "exception", CT_BYTES("\x12\x34\x00\x00\x00\x03\x11\x83\x02") },
	/* length 2, the least: unit id and a function code without data */
	{ "shortest", CT_BYTES("\xff\xff\x00\x00\x00\x02\x01\x07") },
};

static const struct ct_bad bad[] = {
	{ "protocol id high byte", CT_BYTES("\x00\x01\x01\x00\x00\x06\x11\x03\x00\x6b\x00\x03"),
	  CT_MAX_FRAME, -EPROTO, 3 },
	{ "protocol id low byte", CT_BYTES("\x00\x01\x00\x01\x00\x06\x11\x03\x00\x6b\x00\x03"),
	  CT_MAX_FRAME, -EPROTO, 4 },
	{ "length 0", CT_BYTES("\x00\x01\x00\x00\x00\x00"), CT_MAX_FRAME, -EPROTO, 6 },
	{ "length 1", CT_BYTES("\x00\x01\x00\x00\x00\x01\x11"), CT_MAX_FRAME, -EPROTO, 6 },
	{ "length 255", CT_BYTES("\x00\x01\x00\x00\x00\xff\x11\x03"), CT_MAX_FRAME, -EPROTO, 6 },
	{ "length 0x0106", CT_BYTES("\x00\x01\x00\x00\x01\x06\x11\x03"), CT_MAX_FRAME, -EPROTO, 6 },
	{ "HTTP to a Modbus port", CT_BYTES("GET / HTTP/1.1\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 3 },
	{ "over max_frame", CT_BYTES("\x00\x01\x00\x00\x00\x06\x11\x03\x00\x6b\x00\x03"), 11,
	  -EMSGSIZE, 6 },
};

const struct ct_codec ct_under_test = {
	CT_CODEC(modbus), .error_reply = 1, .tagged = 1, .buf_at_least = MODBUS_MAX_ADU,
	.also_response = 1,
	.frames = CT_TABLE(frames), .bad = CT_TABLE(bad),
};

/* Length 254: a 253-byte PDU, the 260-byte maximum ADU. */
START_TEST(test_max_adu)
{
	uint8_t adu[MODBUS_MAX_ADU] = { 0x00, 0x07, 0x00, 0x00, 0x00, 0xfe, 0x01, 0x10 };
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	ct_splits(FN, &base, adu, sizeof(adu), "max ADU");
	base = ct_ctx(MODBUS_MAX_ADU);
	ct_splits(FN, &base, adu, sizeof(adu), "max ADU, max_frame 260");
}
END_TEST

START_TEST(test_truncated_at_eof)
{
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	for (int i = 0; i < CT_COUNT(frames); i++)
		ck_assert_int_eq(ct_call(FN, &c, frames[i].msg, frames[i].len - 1, 1), 0);
}
END_TEST

static const struct {
	enum codec_err err;
	int code; /* 0: no reply */
} replies[] = {
	{ CODEC_ERR_NO_UPSTREAM, MODBUS_EXC_GATEWAY_PATH },
	{ CODEC_ERR_TIMEOUT, MODBUS_EXC_GATEWAY_TARGET },
	{ CODEC_ERR_BAD_GATEWAY, MODBUS_EXC_GATEWAY_TARGET },
	{ CODEC_ERR_POLICY, MODBUS_EXC_ILLEGAL_FUNCTION },
	{ CODEC_ERR_BAD_REQUEST, 0 },
	{ CODEC_ERR_TOO_LARGE, 0 },
	{ CODEC_ERR_UNSUPPORTED, 0 },
};

/* An exception carries the request's transaction id and unit id, and its
 * function code with the high bit set. */
START_TEST(test_error_reply)
{
	static const uint8_t req[] = { 0xbe, 0xef, 0x00, 0x00, 0x00, 0x06, 0x2a, 0x06,
				       0x00, 0x01, 0x00, 0x03 };
	struct frame_ctx ctx = ct_ctx(CT_MAX_FRAME);
	uint8_t out[64];
	memset(out, 0xaa, sizeof(out));
	size_t n = codec_modbus.error_reply(&ctx, req, sizeof(req), replies[_i].err, out,
					    sizeof(out));
	if (replies[_i].code == 0) {
		ck_assert_uint_eq(n, 0);
		return;
	}
	const uint8_t want[] = { 0xbe, 0xef, 0x00, 0x00, 0x00, 0x03, 0x2a, 0x86,
				 (uint8_t)replies[_i].code };
	ck_assert_uint_eq(n, sizeof(want));
	ck_assert_mem_eq(out, want, sizeof(want));
	ck_assert_uint_eq(out[sizeof(want)], 0xaa); /* nothing written past it */
	/* the reply is itself a valid frame */
	ck_assert_int_eq(codec_modbus.response(&ctx, out, n, 0), (ssize_t)n);
}
END_TEST

START_TEST(test_error_reply_limits)
{
	static const uint8_t req[] = { 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x07 };
	struct frame_ctx ctx = ct_ctx(CT_MAX_FRAME);
	uint8_t out[MODBUS_EXC_LEN];
	error_fn fn = codec_modbus.error_reply;
	ck_assert_uint_eq(fn(&ctx, req, sizeof(req), CODEC_ERR_TIMEOUT, out, sizeof(out)),
			  MODBUS_EXC_LEN);
	ck_assert_uint_eq(fn(&ctx, req, sizeof(req), CODEC_ERR_TIMEOUT, out, sizeof(out) - 1), 0);
	ck_assert_uint_eq(fn(&ctx, req, 7, CODEC_ERR_TIMEOUT, out, sizeof(out)), 0);
	ck_assert_uint_eq(fn(&ctx, NULL, 0, CODEC_ERR_NO_UPSTREAM, out, sizeof(out)), 0);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = ct_suite(NULL, TM_TESTS(test_max_adu), test_truncated_at_eof,
			    "garbage and oversize");
	TM_LOOPS(s, "exception replies", 0, TM_LOOP(test_error_reply, replies),
		 TM_ONCE(test_error_reply_limits));
	return s;
}
