/* libFuzzer target for one codec's request and response framers (the
 * codec's name comes from FUZZ_CODEC at build time). The first input byte
 * picks the side, the flags and a split point; the rest is the stream. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

/* A frame found in a prefix is the same frame in any longer buffer, never
 * longer than the bytes or the cap, and the framer never writes the input.
 * A framer that resumes where the prefix left it (same ctx, more bytes)
 * gives what a fresh ctx gives for the longer buffer. */
static void one_side(frame_fn fn, int head, int stream, const uint8_t *buf, size_t len, size_t split)
{
	struct frame_ctx ctx = { .max_frame = 4096, .req_head = head, .stream = stream };
	uint8_t *copy = malloc(len ? len : 1);
	memcpy(copy, buf, len);

	size_t cut = len ? split % (len + 1) : 0;
	ssize_t early = fn(&ctx, copy, cut, 0);
	ctx.req_head = head;
	ssize_t full = fn(&ctx, copy, len, 0);
	struct frame_ctx fresh = { .max_frame = 4096, .req_head = head, .stream = stream };
	check(fn(&fresh, copy, len, 0) == full);
	check(fresh.close_client == ctx.close_client && fresh.close_upstream == ctx.close_upstream);
	ctx.req_head = head;
	ssize_t at_eof = fn(&ctx, copy, len, 1);

	check(memcmp(copy, buf, len) == 0);
	check(full <= (ssize_t)len && (stream || full <= (ssize_t)ctx.max_frame));
	check(at_eof <= (ssize_t)len);
	if (early > 0)
		check(full == early); /* more bytes never change a whole frame */
	if (full > 0) {
		ctx.req_head = head;
		check(fn(&ctx, copy, (size_t)full, 0) == full);
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct codec *codec;
	if (codec == NULL)
		codec = codec_find(FUZZ_CODEC);
	if (size < 2)
		return 0;
	uint8_t mode = data[0];
	size_t split = data[1];
	data += 2;
	size -= 2;
	one_side(codec->request, 0, 0, data, size, split);
	one_side(codec->response, mode & 1, (mode >> 1) & 1, data, size, split * 7);

	if (codec->error_reply != NULL) {
		struct frame_ctx ctx = { .max_frame = 4096 };
		uint8_t out[512];
		size_t n = codec->error_reply(&ctx, size >= 8 ? data : NULL, size, (enum codec_err)(mode % 7), out,
					      sizeof out);
		check(n <= sizeof out);
	}
	return 0;
}
