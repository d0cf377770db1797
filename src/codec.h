/* Framing: each protocol is a pair of pure functions that find where one
 * request (or response) ends in a byte buffer, plus an optional error reply. */
#ifndef TCPMUX_CODEC_H
#define TCPMUX_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Per client connection framing state. The server zeroes the out-flags
 * before each call; a framer sets them only when it returns a whole frame. */
struct frame_ctx {
	size_t max_frame;     /* a frame longer than this is -EMSGSIZE */
	/* set by the request framer, read by the response framer */
	int req_head;         /* http: the request was HEAD (response has no body) */
	int req_connect;      /* http: CONNECT (never forwarded) */
	/* out-flags */
	int close_client;     /* request framer: close the client after answering */
	int close_upstream;   /* response framer: do not reuse the upstream connection */
};

/* Returns > 0: length of the complete frame at the start of buf; 0: need
 * more bytes; < 0: -EPROTO (malformed), -EMSGSIZE (over max_frame) or
 * -EOPNOTSUPP (well-formed but refused, e.g. HTTP Upgrade). eof != 0 means
 * the peer has closed and no more bytes will come (http responses that end
 * at close use it; every other framer treats a partial frame at eof as 0). */
typedef ssize_t (*frame_fn)(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof);

/* What went wrong, for error_reply. */
enum codec_err {
	CODEC_ERR_NONE = -1,    /* no error (a dialect's check lets the request pass) */
	CODEC_ERR_BAD_REQUEST,  /* malformed request (-EPROTO) */
	CODEC_ERR_TOO_LARGE,    /* request over --max-frame (-EMSGSIZE) */
	CODEC_ERR_UNSUPPORTED,  /* refused request (-EOPNOTSUPP) */
	CODEC_ERR_NO_UPSTREAM,  /* no upstream connection in time, or queue full */
	CODEC_ERR_TIMEOUT,      /* the target did not answer in time */
	CODEC_ERR_BAD_GATEWAY,  /* the target closed, failed or sent garbage */
	CODEC_ERR_POLICY,       /* a policy refused the request (modbus read-only) */
	CODEC_ERR_BAD_VALUE,    /* lengths or counts its function forbids (modbus 0x03) */
};

/* Writes a protocol-level error answer for the request req (which may be
 * NULL for errors found before a whole request was read) into out.
 * Returns its length, or 0 when the protocol has none (the server then
 * closes the client). */
typedef size_t (*error_fn)(const struct frame_ctx *ctx, const uint8_t *req, size_t reqlen,
			   enum codec_err err, uint8_t *out, size_t cap);

struct codec {
	const char *name;
	const char *summary;    /* one line for `tcp-multiplexer list` */
	frame_fn request;
	frame_fn response;
	error_fn error_reply;   /* may be NULL */
	size_t initial_buf;     /* a good first size for per-connection buffers */
	int tagged;             /* responses carry the request's id (modbus) */
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
