/* echo: a frame is a line, the bytes up to and including '\n'. */
#include "config.h"
#include "codec.h"

#include <errno.h>
#include <string.h>

static ssize_t echo_frame(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof)
{
	(void)eof;
	size_t look = len < ctx->max_frame ? len : ctx->max_frame;
	const uint8_t *nl = memchr(buf, '\n', look);
	if (nl != NULL)
		return nl - buf + 1;
	return len >= ctx->max_frame ? -EMSGSIZE : 0;
}

const struct codec codec_echo = {
	.name = "echo",
	.summary = "newline-terminated lines: each line is a request, each line back its answer",
	.request = echo_frame,
	.response = echo_frame,
	.error_reply = NULL,
	.initial_buf = 512,
	.tagged = 0,
};
