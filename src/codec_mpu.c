/* mpu: messages behind a length written as 4 ASCII decimal digits
 * ("0042" then 42 bytes). */
#include "config.h"
#include "codec.h"

#include <errno.h>

#define MPU_HDR 4

/* The frame is 4 + L bytes. Each header byte is checked as soon as it is
 * there, so a client speaking something else is refused at its first byte. */
static ssize_t mpu_frame(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof)
{
	(void)eof;
	size_t n = 0;
	for (size_t i = 0; i < MPU_HDR && i < len; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -EPROTO;
		n = n * 10 + (size_t)(buf[i] - '0');
	}
	if (len < MPU_HDR)
		return 0;
	if (MPU_HDR + n > ctx->max_frame)
		return -EMSGSIZE;
	return len >= MPU_HDR + n ? (ssize_t)(MPU_HDR + n) : 0;
}

const struct codec codec_mpu = {
	.name = "mpu",
	.summary = "4 ASCII decimal digits of length, then the message",
	.request = mpu_frame,
	.response = mpu_frame,
	.error_reply = NULL,
	.initial_buf = 512,
	.tagged = 0,
};
