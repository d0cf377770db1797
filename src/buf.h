/* A growable byte buffer that keeps the bytes after one frame for the next,
 * so pipelined and split frames both work. */
#ifndef TCPMUX_BUF_H
#define TCPMUX_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec.h"

struct buf {
	uint8_t *data;
	size_t start;   /* first unread byte */
	size_t end;     /* one past the last byte */
	size_t cap;
	size_t max;     /* never grows beyond this */
	int eof;        /* the peer closed */
};

int buf_init(struct buf *b, size_t initial, size_t max);
void buf_free(struct buf *b);
static inline size_t buf_len(const struct buf *b) { return b->end - b->start; }
static inline const uint8_t *buf_head(const struct buf *b) { return b->data + b->start; }
/* Drops n bytes from the front. */
void buf_consume(struct buf *b, size_t n);
/* Drops everything. */
void buf_reset(struct buf *b);
/* Appends bytes (tests, and building replies). Returns 0 or -EMSGSIZE/-ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);

/* Reads from fd until fn finds a whole frame at the front of the buffer.
 * first_deadline bounds the wait for the first byte when the buffer is
 * empty (the idle timeout); deadline bounds the rest of the frame.
 * Returns the frame length (> 0, frame at buf_head), 0 when the peer closed
 * cleanly between frames, or -ETIMEDOUT, -EPROTO, -EMSGSIZE, -EOPNOTSUPP,
 * -ECONNRESET (closed inside a frame) or another -errno; -EINPROGRESS
 * when the framer set ctx->expect to CODEC_EXPECT_WANTED: the caller
 * answers (codec->expect_reply), sets CODEC_EXPECT_ANSWERED and calls again,
 * and the framer goes on where it stopped. */
ssize_t buf_read_frame(struct buf *b, int fd, frame_fn fn, struct frame_ctx *ctx,
		       int64_t first_deadline, int64_t deadline);

#endif
