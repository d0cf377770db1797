/* Tests for src/codec_mpu.c: 4 ASCII decimal digits of length, then the message. */
#include "config.h"
#include "codec_test.h"

#include <errno.h>

#define FN (codec_mpu.request)

static const struct ct_msg frames[] = {
	{ "empty message", CT_BYTES("0000") },
	{ "short message", CT_BYTES("0005hello") },
	{ "leading zeros, binary body", CT_BYTES("0012\x00\x01\x02\x03\xff\r\n" "0008a") },
	{ "three digits", CT_BYTES("0100" "0123456789" "0123456789" "0123456789" "0123456789"
				   "0123456789" "0123456789" "0123456789" "0123456789"
				   "0123456789" "0123456789") },
};

static const struct ct_msg truncated[] = {
	{ "half a header", CT_BYTES("00") },
	{ "one byte short", CT_BYTES("0005hell") },
};

static const struct ct_bad bad[] = {
	{ "letter first", CT_BYTES("x005hello"), CT_MAX_FRAME, -EPROTO, 1 },
	{ "letter second", CT_BYTES("0x05hello"), CT_MAX_FRAME, -EPROTO, 2 },
	{ "letter fourth", CT_BYTES("000ahello"), CT_MAX_FRAME, -EPROTO, 4 },
	{ "sign", CT_BYTES("+005hello"), CT_MAX_FRAME, -EPROTO, 1 },
	{ "space padded", CT_BYTES(" 005hello"), CT_MAX_FRAME, -EPROTO, 1 },
	{ "binary length", CT_BYTES("\x00\x05hello"), CT_MAX_FRAME, -EPROTO, 1 },
	{ "HTTP", CT_BYTES("GET / HTTP/1.1\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 1 },
	{ "one over max_frame", CT_BYTES("0005hello"), 8, -EMSGSIZE, 4 },
	{ "header says too much", CT_BYTES("9999"), 1024, -EMSGSIZE, 4 },
};

const struct ct_codec ct_under_test = {
	CT_CODEC(mpu), .one_framer = 1, .buf_exactly = 512,
	.frames = CT_TABLE(frames), .truncated = CT_TABLE(truncated), .bad = CT_TABLE(bad),
};

/* "9999", the longest message the header can announce. */
START_TEST(test_longest)
{
	static uint8_t msg[4 + 9999];
	memset(msg, 'x', sizeof(msg));
	memcpy(msg, "9999", 4);
	ct_whole_only(FN, msg, sizeof(msg));
}
END_TEST

START_TEST(test_exactly_max_frame)
{
	struct frame_ctx base = ct_ctx(9);
	ct_splits(FN, &base, CT_BYTES("0005hello"), "4 + L is max_frame");
}
END_TEST

Suite *make_suite(void)
{
	return ct_suite(NULL, TM_TESTS(test_longest, test_exactly_max_frame), NULL,
			"garbage and oversize");
}
