/* Framing: each protocol is a pair of pure functions that find where one
 * request (or response) ends in a byte buffer, plus an optional error reply. */
#ifndef TCPMUX_CODEC_H
#define TCPMUX_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* Where a framer stopped inside the frame at the start of the buffer, so
 * that the next call (same frame start, more bytes) resumes there and the
 * cost of framing grows linearly with the bytes received. Private to the
 * framer that uses it (http); all zero means "nothing examined yet". The
 * framer clears it when it returns a frame or an error; a caller that
 * gives a frame up otherwise (a timeout, a closed peer) calls
 * codec_restart() before the ctx frames anything else. */
struct frame_scan {
	size_t pos;	 /* bytes of the frame examined so far */
	size_t line;	 /* where the line (or chunk-size line) being read starts */
	size_t mark;	 /* http: where the version starts, or a field name's colon */
	size_t head;	 /* http: where the message head being read starts */
	size_t interim;	 /* http: bytes of the leading 100 (Continue) answers */
	uint64_t size;	 /* http: chunk-data bytes still to come, or the frame's end */
	uint64_t length; /* http: the Content-Length */
	int step;	 /* what comes next, in the framer's own numbering */
	unsigned facts;	 /* what the head said so far, the framer's own bits */
	int minor;	 /* http: HTTP/1.minor */
	int code;	 /* http: the status code, or the kind of method */
};

/* The answer to a request's expectation (http: Expect: 100-continue). */
enum codec_expect {
	CODEC_EXPECT_NONE,     /* nothing to answer */
	CODEC_EXPECT_WANTED,   /* the head is whole, the body not: answer now */
	CODEC_EXPECT_ANSWERED, /* the server sent codec->expect_reply */
};

/* Per client connection framing state. The server zeroes the out-flags
 * before each call; a framer sets them only when it returns a whole frame
 * (expect, which a framer sets while it returns 0, is the exception). */
struct frame_ctx {
	size_t max_frame; /* a frame longer than this is -EMSGSIZE */
	/* set by the request framer, read by the response framer */
	int req_head;	 /* http: the request was HEAD (response has no body) */
	int req_connect; /* http: CONNECT (never forwarded) */
	/* out-flags */
	int close_client;	  /* close the client after answering: the request
				   * asked for it, or the answer ends its connection
				   * (http: RFC 9112 §9.6) */
	int close_upstream;	  /* response framer: do not reuse the upstream connection */
	size_t interim_len;	  /* response framer: leading interim answers (http:
				   * 100 Continue) that the server drops when it
				   * answered the expectation itself */
	enum codec_expect expect; /* request framer: set to WANTED once, while it
				   * returns 0; the server answers and sets ANSWERED;
				   * the server resets it to NONE per request */
	int stream;		  /* set by a caller that forwards an answer's body as
				   * it comes (codec->settled, codec->shift): the
				   * response framer then caps the head, not the body */
	uint64_t scanned;	  /* bytes the framers examined: a counter for the
				   * tests (framing must stay linear); never reset */
	struct frame_scan scan;
};

/* Forgets where the framers stopped: the frame at the start of the buffer
 * will be framed from its first byte. */
static inline void codec_restart(struct frame_ctx *ctx)
{
	memset(&ctx->scan, 0, sizeof ctx->scan);
}

/* Returns > 0: length of the complete frame at the start of buf; 0: need
 * more bytes; < 0: -EPROTO (malformed), -EMSGSIZE (over max_frame) or
 * -EOPNOTSUPP (well-formed but refused, e.g. HTTP Upgrade). eof != 0 means
 * the peer has closed and no more bytes will come (http responses that end
 * at close use it; every other framer treats a partial frame at eof as 0). */
typedef ssize_t (*frame_fn)(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof);

/* What went wrong, for error_reply. */
enum codec_err {
	CODEC_ERR_NONE = -1,   /* no error (a dialect's check lets the request pass) */
	CODEC_ERR_BAD_REQUEST, /* malformed request (-EPROTO) */
	CODEC_ERR_TOO_LARGE,   /* request over --max-frame (-EMSGSIZE) */
	CODEC_ERR_UNSUPPORTED, /* refused request (-EOPNOTSUPP) */
	CODEC_ERR_NO_UPSTREAM, /* no upstream connection in time, or queue full */
	CODEC_ERR_TIMEOUT,     /* the target did not answer in time */
	CODEC_ERR_BAD_GATEWAY, /* the target closed, failed or sent garbage */
	CODEC_ERR_POLICY,      /* a policy refused the request (modbus read-only) */
	CODEC_ERR_BAD_VALUE,   /* lengths or counts its function forbids (modbus 0x03) */
};

/* Writes a protocol-level error answer for the request req (which may be
 * NULL for errors found before a whole request was read) into out.
 * Returns its length, or 0 when the protocol has none (the server then
 * closes the client). */
typedef size_t (*error_fn)(const struct frame_ctx *ctx, const uint8_t *req, size_t reqlen, enum codec_err err,
			   uint8_t *out, size_t cap);

struct codec {
	const char *name;
	const char *summary; /* one line for `tcp-multiplexer list` */
	frame_fn request;
	frame_fn response;
	error_fn error_reply; /* may be NULL */
	/* Streaming answers (may be NULL: the codec cannot). settled: how many
	 * bytes at the start of the buffer (len there) surely belong to the
	 * answer being framed, so they may be forwarded before it is whole;
	 * shift: the caller forwarded and dropped n (<= settled) of them, and
	 * the next call sees the buffer from there. settled never covers a
	 * whole answer: the call that returns its end needs a byte of it. */
	size_t (*settled)(const struct frame_ctx *ctx, size_t len);
	void (*shift)(struct frame_ctx *ctx, size_t n);
	const char *expect_reply; /* sent when the request framer sets
				   * CODEC_EXPECT_WANTED (http: 100 Continue); may be NULL */
	size_t initial_buf;	  /* a good first size for per-connection buffers */
	int tagged;		  /* responses carry the request's id (modbus) */
};

extern const struct codec codec_echo;
extern const struct codec codec_http;
extern const struct codec codec_iso8583;
extern const struct codec codec_modbus;
extern const struct codec codec_mpu;

/* NULL when there is no codec of that name. */
const struct codec *codec_find(const char *name);
/* The known codecs, NULL-terminated, in the order `list` prints them. */
const struct codec *const *codec_all(void);

#endif
