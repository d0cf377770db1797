/* Tests for src/codec_iso8583.c: 2-byte big-endian length, then the message. */
#include "config.h"
#include "codec_test.h"

#include <errno.h>

#define FN (codec_iso8583.request)

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
} frames[] = {
	{ "empty message", CT_BYTES("\x00\x00") },
	{ "one byte", CT_BYTES("\x00\x01\x00") },
	/* an 0800 network management request, bitmap and fields abridged */
	{ "short message", CT_BYTES("\x00\x0c" "0800\x82\x20\x00\x00\x00\x00\x00\x00") },
};

START_TEST(test_registered)
{
	ck_assert_ptr_eq(codec_find("iso8583"), &codec_iso8583);
	ck_assert_ptr_eq(codec_iso8583.request, codec_iso8583.response);
	ck_assert_ptr_null(codec_iso8583.error_reply);
	ck_assert_int_eq(codec_iso8583.tagged, 0);
	ck_assert_uint_eq(codec_iso8583.initial_buf, 512);
}
END_TEST

START_TEST(test_splits)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	struct frame_ctx c = ct_splits(FN, &base, frames[_i].msg, frames[_i].len, frames[_i].name);
	ck_assert(ct_same_ctx(&c, &base));
}
END_TEST

/* Lengths that need the high byte: 256 (every split) and 65535, the most. */
START_TEST(test_long)
{
	static uint8_t msg[2 + 65535];
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	msg[0] = 0x01;
	msg[1] = 0x00;
	ct_splits(FN, &base, msg, 2 + 256, "256 bytes");

	msg[0] = 0xff;
	msg[1] = 0xff;
	struct frame_ctx c = base;
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
	ck_assert_int_eq(ct_call(FN, &c, CT_BYTES("\x00"), 1), 0);
	ck_assert_int_eq(ct_call(FN, &c, CT_BYTES("\x00\x05" "abcd"), 1), 0);
}
END_TEST

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
	size_t max;
	ssize_t want;
} sizes[] = {
	{ "2 + L is max_frame", CT_BYTES("\x00\x04" "abcd"), 6, 6 },
	{ "2 + L is one over", CT_BYTES("\x00\x05" "abcde"), 6, -EMSGSIZE },
	/* refused from the header alone, before the message comes */
	{ "header only, over", CT_BYTES("\x40\x00"), 1024, -EMSGSIZE },
	/* every byte pair is a length: text sent to this port reads as one */
	{ "garbage, small max_frame", CT_BYTES("GET / HTTP/1.1\r\n"), 4096, -EMSGSIZE },
	{ "garbage, default max_frame", CT_BYTES("GET / HTTP/1.1\r\n"), CT_MAX_FRAME, 0 },
};

START_TEST(test_sizes)
{
	struct frame_ctx c = ct_ctx(sizes[_i].max);
	ssize_t r = ct_call(FN, &c, sizes[_i].msg, sizes[_i].len, 0);
	ck_assert_msg(r == sizes[_i].want, "%s: gave %zd, want %zd", sizes[_i].name, r,
		      sizes[_i].want);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("codec_iso8583");
	TCase *tc;

	tc = tcase_create("registered");
	tcase_add_test(tc, test_registered);
	suite_add_tcase(s, tc);

	tc = tcase_create("every split point");
	tcase_add_loop_test(tc, test_splits, 0, CT_COUNT(frames));
	tcase_add_test(tc, test_long);
	suite_add_tcase(s, tc);

	tc = tcase_create("two frames in one buffer");
	tcase_add_loop_test(tc, test_two_frames, 0, CT_COUNT(frames));
	suite_add_tcase(s, tc);

	tc = tcase_create("truncated at eof");
	tcase_add_test(tc, test_truncated_at_eof);
	suite_add_tcase(s, tc);

	tc = tcase_create("oversize and garbage");
	tcase_add_loop_test(tc, test_sizes, 0, CT_COUNT(sizes));
	suite_add_tcase(s, tc);
	return s;
}
