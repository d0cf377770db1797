/* A growable byte buffer that keeps the bytes after one frame for the next,
 * so pipelined and split frames both work. */
#include "config.h"
#include "buf.h"
#include "net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int buf_init(struct buf *b, size_t initial, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max;
	b->cap = initial < max ? initial : max;
	b->data = malloc(b->cap);
	return b->data ? 0 : -ENOMEM;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->cap = b->start = b->end = 0;
}

void buf_consume(struct buf *b, size_t n)
{
	b->start += n;
	if (b->start >= b->end)
		b->start = b->end = 0;
}

void buf_reset(struct buf *b)
{
	b->start = b->end = 0;
	b->eof = 0;
}

/* Makes room for at least one more byte: first by moving the unread bytes
 * to the front, then by doubling up to max. */
static int make_room(struct buf *b)
{
	if (b->end < b->cap)
		return 0;
	if (b->start > 0) {
		memmove(b->data, b->data + b->start, b->end - b->start);
		b->end -= b->start;
		b->start = 0;
		return 0;
	}
	if (b->cap >= b->max)
		return -EMSGSIZE;
	size_t ncap = b->cap * 2 > b->max ? b->max : b->cap * 2;
	uint8_t *p = realloc(b->data, ncap);
	if (p == NULL)
		return -ENOMEM;
	b->data = p;
	b->cap = ncap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	const uint8_t *src = p;
	while (n > 0) {
		int rc = make_room(b);
		if (rc < 0)
			return rc;
		size_t k = b->cap - b->end < n ? b->cap - b->end : n;
		memcpy(b->data + b->end, src, k);
		b->end += k;
		src += k;
		n -= k;
	}
	return 0;
}

ssize_t buf_read_frame(struct buf *b, int fd, frame_fn fn, struct frame_ctx *ctx,
		       int64_t first_deadline, int64_t deadline)
{
	for (;;) {
		if (buf_len(b) > 0 || b->eof) {
			ssize_t n = buf_len(b) ? fn(ctx, buf_head(b), buf_len(b), b->eof) : 0;
			if (n != 0)
				return n; /* a frame or an error: the framer has reset its scan */
			if (ctx->expect == CODEC_EXPECT_WANTED)
				return -EINPROGRESS; /* the caller answers, then calls again */
			if (b->eof) {
				codec_restart(ctx);
				return buf_len(b) == 0 ? 0 : -ECONNRESET;
			}
		}
		int rc = make_room(b);
		ssize_t r = rc < 0 ? rc : net_read(fd, b->data + b->end, b->cap - b->end,
						   buf_len(b) ? deadline : first_deadline);
		if (r < 0) {
			/* the frame is given up: the ctx may frame another one next */
			codec_restart(ctx);
			return r;
		}
		if (r == 0)
			b->eof = 1;
		b->end += (size_t)r;
	}
}
