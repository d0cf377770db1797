/* A growable byte buffer that keeps the bytes after one frame for the next,
 * so pipelined and split frames both work. Growth beyond the first size is
 * charged to one process-wide budget (--max-buffered) and given back as
 * soon as the large frame is gone. */
#ifndef TCPMUX_BUF_H
#define TCPMUX_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec.h"

struct buf {
	uint8_t *data;
	size_t start; /* first unread byte */
	size_t end;   /* one past the last byte */
	size_t cap;
	size_t initial; /* the size it starts with and shrinks back to */
	size_t max;	/* never grows beyond this */
	int eof;	/* the peer closed */
};

/* The ceiling on the bytes all buffers together hold beyond their initial
 * sizes; 0 (the start) means none. Set it before the first buffer grows. */
void buf_budget_set(size_t max);
/* Those bytes now. */
size_t buf_budget_used(void);

int buf_init(struct buf *b, size_t initial, size_t max);
void buf_free(struct buf *b);
static inline size_t buf_len(const struct buf *b)
{
	return b->end - b->start;
}
static inline const uint8_t *buf_head(const struct buf *b)
{
	return b->data + b->start;
}
/* Drops n bytes from the front; once the rest fits the initial size, the
 * memory grown beyond it is given back. */
void buf_consume(struct buf *b, size_t n);
/* Drops everything and forgets end of stream; the memory grown beyond the
 * initial size is given back, as by buf_consume. */
void buf_reset(struct buf *b);
/* Appends bytes (tests, and building replies). Returns 0 or -EMSGSIZE,
 * -ENOBUFS (the growth would pass the budget) or -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);

/* Reads from fd until fn finds a whole frame at the front of the buffer.
 * first_deadline bounds the wait for the first byte when the buffer is
 * empty (the idle timeout); deadline bounds the rest of the frame.
 * Returns the frame length (> 0, frame at buf_head), 0 when the peer closed
 * cleanly between frames, or -ETIMEDOUT, -EPROTO, -EMSGSIZE, -EOPNOTSUPP,
 * -ENOBUFS (growing would pass the budget), -ECONNRESET (closed inside a
 * frame) or another -errno; -EINPROGRESS when the framer set ctx->expect
 * to CODEC_EXPECT_WANTED: the caller answers (codec->expect_reply), sets
 * CODEC_EXPECT_ANSWERED and calls again, and the framer goes on where it
 * stopped. */
ssize_t buf_read_frame(struct buf *b, int fd, frame_fn fn, struct frame_ctx *ctx, int64_t first_deadline,
		       int64_t deadline);

/* Reads what fd has (at least one byte) into the buffer, waiting until
 * deadline, or with BUF_SOCKET_TIMEOUT in one blocking read bounded by the
 * socket's own receive timeout. Returns the bytes read, 0 at end of stream
 * (eof is set), -ETIMEDOUT, -EMSGSIZE (the buffer is full) or -errno. */
#define BUF_SOCKET_TIMEOUT (-2)
ssize_t buf_fill(struct buf *b, int fd, int64_t deadline);
/* Reads one request: waits for its first byte as long as the socket's
 * receive timeout allows (the idle timeout), then sets *deadline to
 * frame_ms after that and reads the rest of the frame by it. Returns as
 * buf_read_frame. */
ssize_t buf_read_request(struct buf *b, int fd, frame_fn fn, struct frame_ctx *ctx, int64_t frame_ms,
			 int64_t *deadline);

#endif
