/* Tests for src/codec_echo.c: newline-terminated lines. */
#include "config.h"
#include "codec_test.h"

#include <errno.h>

#define FN (codec_echo.request)

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
} lines[] = {
	{ "a word", CT_BYTES("hello\n") },
	{ "an empty line", CT_BYTES("\n") },
	{ "CRLF ends in LF", CT_BYTES("status?\r\n") },
	/* echo has no garbage: any byte but '\n' belongs to the line */
	{ "binary", CT_BYTES("\x00\x01\xff\r\x7f bin\n") },
};

START_TEST(test_registered)
{
	ck_assert_ptr_eq(codec_find("echo"), &codec_echo);
	ck_assert_str_eq(codec_echo.name, "echo");
	ck_assert_ptr_eq(codec_echo.request, codec_echo.response);
	ck_assert_ptr_null(codec_echo.error_reply);
	ck_assert_int_eq(codec_echo.tagged, 0);
	ck_assert_uint_gt(codec_echo.initial_buf, 0);
}
END_TEST

START_TEST(test_splits)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	struct frame_ctx c = ct_splits(FN, &base, lines[_i].msg, lines[_i].len, lines[_i].name);
	ck_assert(ct_same_ctx(&c, &base)); /* echo sets no flags */
}
END_TEST

START_TEST(test_two_frames)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	int j = (_i + 1) % CT_COUNT(lines);
	ct_pair(FN, &base, lines[_i].msg, lines[_i].len, lines[j].msg, lines[j].len,
		lines[_i].name);
}
END_TEST

START_TEST(test_truncated_at_eof)
{
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	ck_assert_int_eq(ct_call(FN, &c, CT_BYTES("no newline yet"), 1), 0);
	ck_assert_int_eq(ct_call(FN, &c, CT_BYTES(""), 1), 0);
}
END_TEST

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
	size_t max;
	ssize_t want;
} sizes[] = {
	{ "exactly max_frame", CT_BYTES("1234567\n"), 8, 8 },
	{ "max_frame bytes, no newline", CT_BYTES("12345678"), 8, -EMSGSIZE },
	{ "one over max_frame", CT_BYTES("12345678\n"), 8, -EMSGSIZE },
	{ "below max_frame", CT_BYTES("1234567"), 8, 0 },
	{ "a frame, then more than max_frame", CT_BYTES("12\n45678901"), 8, 3 },
};

START_TEST(test_oversize)
{
	struct frame_ctx c = ct_ctx(sizes[_i].max);
	ssize_t r = ct_call(FN, &c, sizes[_i].msg, sizes[_i].len, 0);
	ck_assert_msg(r == sizes[_i].want, "%s: gave %zd, want %zd", sizes[_i].name, r,
		      sizes[_i].want);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("codec_echo");
	TCase *tc;

	tc = tcase_create("registered");
	tcase_add_test(tc, test_registered);
	suite_add_tcase(s, tc);

	tc = tcase_create("every split point");
	tcase_add_loop_test(tc, test_splits, 0, CT_COUNT(lines));
	suite_add_tcase(s, tc);

	tc = tcase_create("two frames in one buffer");
	tcase_add_loop_test(tc, test_two_frames, 0, CT_COUNT(lines));
	suite_add_tcase(s, tc);

	tc = tcase_create("truncated at eof");
	tcase_add_test(tc, test_truncated_at_eof);
	suite_add_tcase(s, tc);

	tc = tcase_create("oversize");
	tcase_add_loop_test(tc, test_oversize, 0, CT_COUNT(sizes));
	suite_add_tcase(s, tc);
	return s;
}
