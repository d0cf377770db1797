/* iso8583: messages behind a 2-byte big-endian length, a common way to
 * carry ISO 8583 on TCP. */
#include "config.h"
#include "codec.h"

#include <errno.h>

/* The length counts the message only, so the frame is 2 + L bytes. Any
 * L is well formed, 0 included: there is no byte to call garbage. */
static ssize_t iso8583_frame(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof)
{
	(void)eof;
	if (len < 2)
		return 0;
	size_t n = 2 + ((size_t)buf[0] << 8 | buf[1]);
	if (n > ctx->max_frame)
		return -EMSGSIZE;
	return len >= n ? (ssize_t)n : 0;
}

const struct codec codec_iso8583 = {
	.name = "iso8583",
	.summary = "ISO 8583: 2-byte big-endian length, then the message",
	.request = iso8583_frame,
	.response = iso8583_frame,
	.error_reply = NULL,
	.initial_buf = 512,
	.tagged = 0,
};
