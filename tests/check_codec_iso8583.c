/* Tests for src/codec_iso8583.c: 2-byte big-endian length, then the message. */
#include "config.h"
#include "codec_test.h"

#include <errno.h>

#define FN (codec_iso8583.request)

static const struct ct_msg frames[] = {
	{ "empty message", CT_BYTES("\x00\x00") },
	{ "one byte", CT_BYTES("\x00\x01\x00") },
	/* an 0800 network management request, bitmap and fields abridged */
	{ "short message", CT_BYTES("\x00\x0c" "0800\x82\x20\x00\x00\x00\x00\x00\x00") },
};

static const struct ct_msg truncated[] = {
	{ "half a header", CT_BYTES("\x00") },
	{ "one byte short", CT_BYTES("\x00\x05" "abcd") },
};

static const struct ct_size sizes[] = {
	{ "2 + L is max_frame", CT_BYTES("\x00\x04" "abcd"), 6, 6 },
	{ "2 + L is one over", CT_BYTES("\x00\x05" "abcde"), 6, -EMSGSIZE },
	/* refused from the header alone, before the message comes */
	{ "header only, over", CT_BYTES("\x40\x00"), 1024, -EMSGSIZE },
	/* every byte pair is a length: text sent to this port reads as one */
	{ "garbage, small max_frame", CT_BYTES("GET / HTTP/1.1\r\n"), 4096, -EMSGSIZE },
	{ "garbage, default max_frame", CT_BYTES("GET / HTTP/1.1\r\n"), CT_MAX_FRAME, 0 },
};

const struct ct_codec ct_under_test = {
	CT_CODEC(iso8583), .one_framer = 1, .buf_exactly = 512,
	.frames = CT_TABLE(frames), .truncated = CT_TABLE(truncated), .sizes = CT_TABLE(sizes),
};

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
	ct_whole_only(FN, msg, sizeof(msg));
}
END_TEST

Suite *make_suite(void)
{
	return ct_suite(NULL, TM_TESTS(test_long), NULL, "oversize and garbage");
}
