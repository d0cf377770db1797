/* Upstream dialects: what a framing does beyond framing when it talks to
 * the target. Built once from the options; the generic exchange calls these
 * hooks and never looks at a protocol's bytes itself. */
#ifndef TCPMUX_DIALECT_H
#define TCPMUX_DIALECT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cli.h"
#include "codec.h"
#include "readshare.h"

#define DIALECT_WIRE_MAX 260 /* room for a rewritten request (the largest Modbus ADU) */

/* One request on its way to the target. */
struct dialect_msg {
	const uint8_t *req; /* the client's request, as read */
	size_t reqlen;
	const uint8_t *wire; /* as it goes to the target: req itself, or buf */
	size_t wirelen;
	unsigned tag;	 /* the id its answer must carry (dialects with ids) */
	int answerless;	 /* no answer will come (an RTU broadcast): restore(d, m, NULL, 0, out)
			  * gives the client's */
	int64_t line_ms; /* a serial line's time for the request and its answer, waited on
			  * top of --answer-timeout */
	uint8_t buf[DIALECT_WIRE_MAX];
};

/* What a request means for read sharing. */
enum dialect_share { DIALECT_SHARE_NONE, DIALECT_SHARE_READ, DIALECT_SHARE_WRITE };

struct dialect {
	const char *name;
	const struct config *cfg;
	frame_fn response;     /* where an answer from the target ends */
	int ids;	       /* answers carry our tag: a late one is dropped, the connection kept */
	int half_close_leaves; /* a client that shuts its side while it waits has left */
	int self_evident;      /* without ids, the awaited answer is still known by its content (a
				* serial line): bytes after it belong to no request, the line is kept */
	int64_t min_gap_ms;    /* silence between an answer and the next request */
	/* Whether the request may be sent: CODEC_ERR_NONE, or the error to
	 * answer with (an enum codec_err) after writing why into a log line's why. */
	int (*check)(const struct dialect *d, const uint8_t *req, size_t len, char *why, size_t whycap);
	/* Fills m->wire for the target; tag numbers the request on its
	 * connection. Returns 0, or -errno when it cannot be sent. */
	int (*prepare)(const struct dialect *d, unsigned tag, struct dialect_msg *m);
	/* Whether ans is the awaited answer (1) or an answer to something else,
	 * e.g. a late one (0: dropped). */
	int (*awaited)(const struct dialect *d, const struct dialect_msg *m, const uint8_t *ans, size_t n);
	/* Puts the answer as the client gets it into out: 0, or -EPROTO when it
	 * cannot be the answer to this request. */
	int (*restore)(const struct dialect *d, const struct dialect_msg *m, const uint8_t *ans, size_t n,
		       struct buf *out);
	/* Whether the request may reach the target twice without harm (a
	 * read); NULL: never. */
	int (*idempotent)(const struct dialect *d, const uint8_t *req, size_t len);
	/* Read sharing (NULL: none): the key of a read, or the unit a write touches. */
	enum dialect_share (*share_key)(const struct dialect *d, const uint8_t *req, size_t len,
					struct readshare_key *k);
	/* Whether an answer may be shared or cached (an error answer may not). */
	int (*shareable)(const uint8_t *ans, size_t n);
	/* Gives a shared answer the ids of the request req. */
	void (*readdress)(uint8_t *ans, const uint8_t *req);
	/* Answers that may stream (NULL: an answer is taken whole): the
	 * codec's settled and shift (codec.h). Only for dialects whose restore
	 * is the copy, as streamed bytes reach the client as they came. */
	size_t (*settled)(const struct frame_ctx *ctx, size_t len);
	void (*shift)(struct frame_ctx *ctx, size_t n);
};

/* Sets d up for cfg's framing and options. */
void dialect_init(struct dialect *d, const struct config *cfg);
/* The identity dialect, which the others start from. */
void dialect_identity_init(struct dialect *d, const struct config *cfg);

/* The identity dialect's hooks, for dialects that only change some. */
int dialect_check_none(const struct dialect *d, const uint8_t *req, size_t len, char *why, size_t whycap);
int dialect_prepare_none(const struct dialect *d, unsigned tag, struct dialect_msg *m);
int dialect_awaited_any(const struct dialect *d, const struct dialect_msg *m, const uint8_t *ans, size_t n);
int dialect_restore_copy(const struct dialect *d, const struct dialect_msg *m, const uint8_t *ans, size_t n,
			 struct buf *out);

/* dialect_modbus.c */
void dialect_modbus_init(struct dialect *d, const struct config *cfg);

#endif
