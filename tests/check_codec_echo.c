/* Tests for src/codec_echo.c: newline-terminated lines. */
#include "config.h"
#include "codec_test.h"

#include <errno.h>

static const struct ct_msg lines[] = {
	{ "a word", CT_BYTES("hello\n") },
	{ "an empty line", CT_BYTES("\n") },
	{ "CRLF ends in LF", CT_BYTES("status?\r\n") },
	/* echo has no garbage: any byte but '\n' belongs to the line */
	{ "binary", CT_BYTES("\x00\x01\xff\r\x7f bin\n") },
};

static const struct ct_msg truncated[] = {
	{ "no newline", CT_BYTES("no newline yet") },
	{ "nothing", CT_BYTES("") },
};

static const struct ct_size sizes[] = {
	{ "exactly max_frame", CT_BYTES("1234567\n"), 8, 8 },
	{ "max_frame bytes, no newline", CT_BYTES("12345678"), 8, -EMSGSIZE },
	{ "one over max_frame", CT_BYTES("12345678\n"), 8, -EMSGSIZE },
	{ "below max_frame", CT_BYTES("1234567"), 8, 0 },
	{ "a frame, then more than max_frame", CT_BYTES("12\n45678901"), 8, 3 },
};

/* echo sets no flags: the shared split test checks that for every line */
const struct ct_codec ct_under_test = {
	CT_CODEC(echo), .one_framer = 1, .buf_at_least = 1,
	.frames = CT_TABLE(lines), .truncated = CT_TABLE(truncated), .sizes = CT_TABLE(sizes),
};

START_TEST(test_registered)
{
	ck_assert_str_eq(codec_echo.name, "echo");
}
END_TEST

Suite *make_suite(void)
{
	return ct_suite(test_registered, NULL, 0, NULL, "oversize");
}
