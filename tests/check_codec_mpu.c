/* Tests for src/codec_mpu.c: 4 ASCII decimal digits of length, then the message. */
#include "config.h"
#include "codec_test.h"

#include <errno.h>

#define FN (codec_mpu.request)

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
} frames[] = {
	{ "empty message", CT_BYTES("0000") },
	{ "short message", CT_BYTES("0005hello") },
	{ "leading zeros, binary body", CT_BYTES("0012\x00\x01\x02\x03\xff\r\n" "0008a") },
	{ "three digits", CT_BYTES("0100" "0123456789" "0123456789" "0123456789" "0123456789"
				   "0123456789" "0123456789" "0123456789" "0123456789"
				   "0123456789" "0123456789") },
};

START_TEST(test_registered)
{
	ck_assert_ptr_eq(codec_find("mpu"), &codec_mpu);
	ck_assert_ptr_eq(codec_mpu.request, codec_mpu.response);
	ck_assert_ptr_null(codec_mpu.error_reply);
	ck_assert_int_eq(codec_mpu.tagged, 0);
	ck_assert_uint_eq(codec_mpu.initial_buf, 512);
}
END_TEST

START_TEST(test_splits)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	struct frame_ctx c = ct_splits(FN, &base, frames[_i].msg, frames[_i].len, frames[_i].name);
	ck_assert(ct_same_ctx(&c, &base));
}
END_TEST

/* "9999", the longest message the header can announce. */
START_TEST(test_longest)
{
	static uint8_t msg[4 + 9999];
	memset(msg, 'x', sizeof(msg));
	memcpy(msg, "9999", 4);
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	ck_assert_int_eq(ct_call(FN, &c, msg, sizeof(msg) - 1, 1), 0);
	ck_assert_int_eq(ct_call(FN, &c, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
}
END_TEST

START_TEST(test_two_frames)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	int j = (_i + 1) % CT_COUNT(frames);
	ct_pair(FN, &base, frames[_i].msg, frames[_i].len, frames[j].msg, frames[j].len,
		frames[_i].name);
}
END_TEST

START_TEST(test_truncated_at_eof)
{
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	ck_assert_int_eq(ct_call(FN, &c, CT_BYTES("00"), 1), 0);
	ck_assert_int_eq(ct_call(FN, &c, CT_BYTES("0005hell"), 1), 0);
}
END_TEST

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
	size_t max;
	ssize_t err;
	size_t refused_at; /* the prefix length at which it must be refused */
} bad[] = {
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

START_TEST(test_bad)
{
	struct frame_ctx base = ct_ctx(bad[_i].max);
	ct_error(FN, &base, bad[_i].msg, bad[_i].len, bad[_i].err, bad[_i].name);
	ck_assert_msg(ct_refused_at(FN, &base, bad[_i].msg, bad[_i].len) == bad[_i].refused_at,
		      "%s: refused late", bad[_i].name);
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
	Suite *s = suite_create("codec_mpu");
	TCase *tc;

	tc = tcase_create("registered");
	tcase_add_test(tc, test_registered);
	suite_add_tcase(s, tc);

	tc = tcase_create("every split point");
	tcase_add_loop_test(tc, test_splits, 0, CT_COUNT(frames));
	tcase_add_test(tc, test_longest);
	tcase_add_test(tc, test_exactly_max_frame);
	suite_add_tcase(s, tc);

	tc = tcase_create("two frames in one buffer");
	tcase_add_loop_test(tc, test_two_frames, 0, CT_COUNT(frames));
	suite_add_tcase(s, tc);

	tc = tcase_create("truncated at eof");
	tcase_add_test(tc, test_truncated_at_eof);
	suite_add_tcase(s, tc);

	tc = tcase_create("garbage and oversize");
	tcase_add_loop_test(tc, test_bad, 0, CT_COUNT(bad));
	suite_add_tcase(s, tc);
	return s;
}
