/* Helpers the codec suites share: run a framer over every split of a
 * message, on exact-size copies so ASan and valgrind see any over-read. */
#ifndef TCPMUX_CODEC_TEST_H
#define TCPMUX_CODEC_TEST_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "testing.h"

Suite *make_suite(void);

#define CT_MAX_FRAME ((size_t)1 << 20) /* the --max-frame default */

/* A string literal as bytes and length (it may hold NUL bytes). */
#define CT_BYTES(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

/* A table's length. */
#define CT_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static inline struct frame_ctx ct_ctx(size_t max_frame)
{
	struct frame_ctx c = { .max_frame = max_frame };
	return c;
}

static inline int ct_same_ctx(const struct frame_ctx *a, const struct frame_ctx *b)
{
	return a->max_frame == b->max_frame && a->req_head == b->req_head &&
	       a->req_connect == b->req_connect && a->close_client == b->close_client &&
	       a->close_upstream == b->close_upstream;
}

/* Calls fn on a private copy of exactly len bytes and checks that the
 * framer left them alone. */
static inline ssize_t ct_call(frame_fn fn, struct frame_ctx *ctx, const uint8_t *msg, size_t len,
			      int eof)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	ck_assert_ptr_nonnull(copy);
	if (len > 0)
		memcpy(copy, msg, len);
	ssize_t r = fn(ctx, copy, len, eof);
	ck_assert_msg(len == 0 || memcmp(copy, msg, len) == 0, "the framer changed its buffer");
	free(copy);
	return r;
}

/* Every proper prefix of msg needs more bytes, with or without eof (a
 * partial frame at eof is 0 too), and leaves ctx as it was; the whole of
 * it is one frame of n bytes, with or without eof. Returns the ctx the
 * whole frame left. */
static inline struct frame_ctx ct_splits(frame_fn fn, const struct frame_ctx *base,
					 const uint8_t *msg, size_t n, const char *what)
{
	struct frame_ctx c;
	ssize_t r;

	for (size_t k = 0; k < n; k++) {
		for (int eof = 0; eof <= 1; eof++) {
			c = *base;
			r = ct_call(fn, &c, msg, k, eof);
			ck_assert_msg(r == 0, "%s: %zu of %zu bytes (eof %d) gave %zd, want 0", what, k, n,
				      eof, r);
			ck_assert_msg(ct_same_ctx(&c, base), "%s: %zu of %zu bytes changed ctx", what, k,
				      n);
		}
	}
	struct frame_ctx at_eof = *base;
	r = ct_call(fn, &at_eof, msg, n, 1);
	ck_assert_msg(r == (ssize_t)n, "%s: whole frame at eof gave %zd, want %zu", what, r, n);
	c = *base;
	r = ct_call(fn, &c, msg, n, 0);
	ck_assert_msg(r == (ssize_t)n, "%s: whole frame gave %zd, want %zu", what, r, n);
	ck_assert_msg(ct_same_ctx(&c, &at_eof), "%s: eof changed the flags", what);
	return c;
}

/* a then b in one buffer: the first call frames a alone (with the flags a
 * alone sets), the next frames b from the rest. */
static inline void ct_pair(frame_fn fn, const struct frame_ctx *base, const uint8_t *a, size_t na,
			   const uint8_t *b, size_t nb, const char *what)
{
	uint8_t *both = malloc(na + nb);
	ck_assert_ptr_nonnull(both);
	memcpy(both, a, na);
	memcpy(both + na, b, nb);

	struct frame_ctx alone = *base, c = *base;
	ck_assert_msg(ct_call(fn, &alone, a, na, 0) == (ssize_t)na, "%s: first frame alone", what);
	ssize_t r = ct_call(fn, &c, both, na + nb, 0);
	ck_assert_msg(r == (ssize_t)na, "%s: two frames gave %zd, want %zu", what, r, na);
	ck_assert_msg(ct_same_ctx(&c, &alone), "%s: the second frame changed the flags", what);
	c = *base;
	r = ct_call(fn, &c, both + na, nb, 0);
	ck_assert_msg(r == (ssize_t)nb, "%s: second frame gave %zd, want %zu", what, r, nb);
	free(both);
}

/* A bad message: no prefix of it is ever a frame (each is 0 or already
 * the error), the whole of it is err, and ctx is never touched. */
static inline void ct_error(frame_fn fn, const struct frame_ctx *base, const uint8_t *msg,
			    size_t n, ssize_t err, const char *what)
{
	for (size_t k = 0; k <= n; k++) {
		struct frame_ctx c = *base;
		ssize_t r = ct_call(fn, &c, msg, k, 0);
		if (k == n)
			ck_assert_msg(r == err, "%s: gave %zd, want %zd", what, r, err);
		else
			ck_assert_msg(r == 0 || r == err, "%s: %zu of %zu bytes gave %zd, want 0 or %zd",
				      what, k, n, r, err);
		ck_assert_msg(ct_same_ctx(&c, base), "%s: %zu bytes changed ctx", what, k);
	}
}

/* The prefix length at which a bad message is first refused: checks the
 * framer refuses garbage as soon as the bad byte is there. */
static inline size_t ct_refused_at(frame_fn fn, const struct frame_ctx *base, const uint8_t *msg,
				   size_t n)
{
	for (size_t k = 0; k <= n; k++) {
		struct frame_ctx c = *base;
		if (ct_call(fn, &c, msg, k, 0) < 0)
			return k;
	}
	return n + 1;
}

/* ---- the tests every length-delimited codec shares (codec_test.c) ---- */

/* A message and its name. */
struct ct_msg {
	const char *name;
	const uint8_t *msg;
	size_t len;
};

/* A bad message under max_frame max: err for the whole of it, and
 * refused once refused_at bytes are there (0: not checked). */
struct ct_bad {
	const char *name;
	const uint8_t *msg;
	size_t len;
	size_t max;
	ssize_t err;
	size_t refused_at;
};

/* What the framer says for all of msg at once under max_frame max. */
struct ct_size {
	const char *name;
	const uint8_t *msg;
	size_t len;
	size_t max;
	ssize_t want;
};

/* The codec a suite tests and its tables (a table may be empty). */
struct ct_codec {
	const char *name;               /* the suite's */
	const struct codec *codec;
	const char *find;               /* codec_find(find) must give codec */
	int one_framer;                 /* check that request and response are one function */
	int error_reply;                /* whether it has an error reply */
	int tagged;
	size_t buf_exactly;             /* its initial_buf, or 0: at least buf_at_least */
	size_t buf_at_least;
	int also_response;              /* frame each whole frame with the response framer too */
	const struct ct_msg *frames;    /* whole, valid frames that set no flags (one at least) */
	int n_frames;
	const struct ct_msg *truncated; /* each needs more bytes, at eof too */
	int n_truncated;
	const struct ct_bad *bad;
	int n_bad;
	const struct ct_size *sizes;
	int n_sizes;
};
#define CT_TABLE(a) (a), CT_COUNT(a)
/* The names of codec_X: the suite's, the codec's, the one to find. */
#define CT_CODEC(x) .name = "codec_" #x, .codec = &codec_##x, .find = #x

/* The whole of msg is one frame, and at eof one byte short is none: for
 * the longest frames, too long to try every split. */
static inline void ct_whole_only(frame_fn fn, const uint8_t *msg, size_t n)
{
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	ck_assert_int_eq(ct_call(fn, &c, msg, n - 1, 1), 0);
	ck_assert_int_eq(ct_call(fn, &c, msg, n, 0), (ssize_t)n);
}

/* The suite's codec: each suite using ct_suite() defines it. */
extern const struct ct_codec ct_under_test;

/* Checks b with fn: ct_error, then where it is refused. */
static inline void ct_check_bad(frame_fn fn, const struct ct_bad *b)
{
	struct frame_ctx base = ct_ctx(b->max);
	ct_error(fn, &base, b->msg, b->len, b->err, b->name);
	if (b->refused_at != 0) {
		size_t at = ct_refused_at(fn, &base, b->msg, b->len);
		ck_assert_msg(at == b->refused_at, "%s: refused at %zu, want %zu", b->name, at,
			      b->refused_at);
	}
}

/*
 * The suite for ct_under_test: "registered" (codec_find, the framers, the
 * error reply, tagged and initial_buf as the table says, then the suite's
 * own test when not NULL),
 * every split point of each frame (plus the extra tests), two frames in
 * one buffer, truncated at eof (plus its own test when not NULL), and
 * refused (the bad messages and the sizes) under the name refused.
 */
Suite *ct_suite(const TTest *registered, const TTest *const extra[], size_t n_extra,
		const TTest *truncated, const char *refused);

#endif
