/* A growable byte buffer that keeps the bytes after one frame for the next,
 * so pipelined and split frames both work. Growth beyond the first size is
 * charged to one process-wide budget (--max-buffered) and given back as
 * soon as the large frame is gone. */
#include "config.h"
#include "buf.h"
#include "net.h"
#include "timeutil.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Bytes held beyond the buffers' initial sizes, and the ceiling (0: none). */
static atomic_size_t budget_used;
static atomic_size_t budget_max;

void buf_budget_set(size_t max)
{
	atomic_store(&budget_max, max);
}

size_t buf_budget_used(void)
{
	return atomic_load(&budget_used);
}

static int charge(size_t n)
{
	size_t max = atomic_load(&budget_max);
	size_t used = atomic_load(&budget_used);
	do {
		if (max != 0 && (used > max || n > max - used))
			return -ENOBUFS;
	} while (!atomic_compare_exchange_weak(&budget_used, &used, used + n));
	return 0;
}

static void refund(size_t n)
{
	atomic_fetch_sub(&budget_used, n);
}

/* The initial size comes from malloc; anything larger is mapped on its own,
 * so that giving it back returns the pages to the system at once (a freed
 * malloc block inside the heap would stay in the process). */
static uint8_t *storage_alloc(const struct buf *b, size_t cap)
{
	if (cap <= b->initial)
		return malloc(cap);
	void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void storage_free(const struct buf *b, uint8_t *p, size_t cap)
{
	if (p == NULL)
		return;
	if (cap <= b->initial)
		free(p);
	else
		munmap(p, cap);
}

static size_t charged(const struct buf *b, size_t cap)
{
	return cap > b->initial ? cap - b->initial : 0;
}

/* Moves the unread bytes into new storage of ncap bytes (at least
 * buf_len(b)). Returns 0, -ENOBUFS (over the budget) or -ENOMEM. */
static int resize(struct buf *b, size_t ncap)
{
	size_t had = charged(b, b->cap), want = charged(b, ncap);
	if (want > had && charge(want - had) < 0)
		return -ENOBUFS;
	uint8_t *p = storage_alloc(b, ncap);
	if (p == NULL) {
		if (want > had)
			refund(want - had);
		return -ENOMEM;
	}
	size_t len = buf_len(b);
	if (len > 0)
		memcpy(p, b->data + b->start, len);
	storage_free(b, b->data, b->cap);
	if (had > want)
		refund(had - want);
	b->data = p;
	b->cap = ncap;
	b->start = 0;
	b->end = len;
	return 0;
}

int buf_init(struct buf *b, size_t initial, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max;
	b->initial = b->cap = initial < max ? initial : max;
	b->data = storage_alloc(b, b->cap);
	return b->data ? 0 : -ENOMEM;
}

void buf_free(struct buf *b)
{
	storage_free(b, b->data, b->cap);
	refund(charged(b, b->cap));
	b->data = NULL;
	b->cap = b->start = b->end = 0;
}

/* Once what is left fits the initial size, the growth goes back: a large
 * frame must not keep its memory while its connection sits idle. */
static void shrink(struct buf *b)
{
	if (b->cap > b->initial && buf_len(b) <= b->initial)
		(void)resize(b, b->initial); /* on -ENOMEM the large one stays, still valid */
}

void buf_consume(struct buf *b, size_t n)
{
	b->start += n;
	if (b->start >= b->end)
		b->start = b->end = 0;
	shrink(b);
}

void buf_reset(struct buf *b)
{
	b->start = b->end = 0;
	b->eof = 0;
	shrink(b);
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
	return resize(b, b->cap * 2 > b->max ? b->max : b->cap * 2);
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

ssize_t buf_read_frame(struct buf *b, int fd, frame_fn fn, struct frame_ctx *ctx, int64_t first_deadline,
		       int64_t deadline)
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
		ssize_t r = buf_fill(b, fd, buf_len(b) ? deadline : first_deadline);
		if (r < 0) {
			/* the frame is given up: the ctx may frame another one next */
			codec_restart(ctx);
			return r;
		}
	}
}

ssize_t buf_fill(struct buf *b, int fd, int64_t deadline)
{
	int rc = make_room(b);
	if (rc < 0)
		return rc;
	ssize_t r = deadline == BUF_SOCKET_TIMEOUT
			    ? net_recv_wait(fd, b->data + b->end, b->cap - b->end)
			    : net_read(fd, b->data + b->end, b->cap - b->end, deadline);
	if (r == 0)
		b->eof = 1;
	if (r > 0)
		b->end += (size_t)r;
	return r;
}

ssize_t buf_read_request(struct buf *b, int fd, frame_fn fn, struct frame_ctx *ctx, int64_t frame_ms,
			 int64_t *deadline)
{
	if (buf_len(b) == 0 && !b->eof) {
		ssize_t r = buf_fill(b, fd, BUF_SOCKET_TIMEOUT);
		if (r <= 0)
			return r;
	}
	/* the request's one deadline starts with its first byte, not with the idle wait */
	*deadline = time_now_ms() + frame_ms;
	return buf_read_frame(b, fd, fn, ctx, *deadline, *deadline);
}
