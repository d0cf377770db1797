/* http: HTTP/1.1 message framing (RFC 9112). The framers only find where a
 * message ends; its bytes are forwarded exactly as they came. */
#include "config.h"
#include "codec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define HTTP_HEAD_MAX (64 * 1024)     /* start line, field lines and the empty line */
#define HTTP_CL_BIG (UINT64_MAX / 10) /* Content-Length saturates here: far over any frame */

/* Kinds of method (scan.code in a request). */
enum { METHOD_OTHER, METHOD_HEAD, METHOD_CONNECT, METHOD_NO_BODY };

/* What the head said (scan.facts). */
enum {
	F_TE = 1 << 0,	      /* Transfer-Encoding present */
	F_CHUNKED = 1 << 1,   /* ...and chunked is its final coding */
	F_CL = 1 << 2,	      /* Content-Length present (scan.length) */
	F_CLOSE = 1 << 3,     /* Connection: close */
	F_KEEPALIVE = 1 << 4, /* Connection: keep-alive */
	F_UPGRADE = 1 << 5,   /* Upgrade present */
	F_EXPECT = 1 << 6,    /* Expect: 100-continue */
	F_TRAILER = 1 << 7,   /* the field lines being read are the trailer section */
};

/* The steps of the parser (scan.step): what the next byte may be. One
 * byte moves it by one step, so it can stop anywhere and resume there. */
enum {
	ST_START,      /* nothing read yet */
	ST_LEADING_LF, /* request: an empty line before the request line, CR read */
	ST_METHOD,
	ST_TARGET0, /* the request-target's first byte */
	ST_TARGET,
	ST_VERSION, /* "HTTP/1.x", from scan.mark */
	ST_LINE_CR, /* request line: its CR */
	ST_STATUS_SP,
	ST_CODE, /* three digits, from scan.mark */
	ST_AFTER_CODE,
	ST_REASON,
	ST_LINE_LF, /* start line: CR read */
	ST_FIELD0,  /* a field line's first byte, or the empty line */
	ST_NAME,
	ST_VALUE,
	ST_FIELD_LF, /* field line: CR read */
	ST_END_LF,   /* the empty line: CR read */
	ST_SIZE0,    /* chunk-size: its first digit */
	ST_SIZE,
	ST_SIZE_WS, /* BWS after the size */
	ST_EXT,	    /* chunk-ext */
	ST_SIZE_LF, /* chunk-size line: CR read */
	ST_DATA,    /* chunk-data: scan.size bytes, skipped at once */
	ST_DATA_CR,
	ST_DATA_LF,
	ST_KNOWN,	/* the frame ends at scan.size */
	ST_UNTIL_CLOSE, /* the frame ends when the target closes */
};

struct field {
	const uint8_t *name, *value;
	size_t nlen, vlen;
};

/* tchar (RFC 9110 §5.6.2); spelled out so no locale is involved. */
static int is_tchar(uint8_t c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field content: HTAB, SP, VCHAR and obs-text; any other control byte,
 * bare CR and LF included, is refused (RFC 9110 §5.5). */
static int is_text(uint8_t c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static int hex_value(uint8_t c)
{
	if (is_digit(c))
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* ASCII case-insensitive comparison with a lower-case literal. */
static int same_ci(const uint8_t *p, size_t n, const char *lower)
{
	if (n != strlen(lower))
		return 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i] >= 'A' && p[i] <= 'Z' ? p[i] | 0x20 : p[i];
		if (c != (uint8_t)lower[i])
			return 0;
	}
	return 1;
}

/* Steps through a comma-separated list, skipping the empty elements that
 * RFC 9110 §5.6.1 tells recipients to accept. Returns 0 at the end. */
static int next_element(const uint8_t **pos, const uint8_t *end, const uint8_t **el, size_t *elen)
{
	const uint8_t *p = *pos;
	while (p < end && (*p == ',' || *p == ' ' || *p == '\t'))
		p++;
	if (p == end)
		return 0;
	const uint8_t *s = p;
	while (p < end && *p != ',')
		p++;
	const uint8_t *e = p;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*el = s;
	*elen = (size_t)(e - s);
	*pos = p;
	return 1;
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6). Repeats, in one field line or
 * several, must all agree: a disagreement is how requests are smuggled. */
static int content_length(struct frame_scan *s, const struct field *f)
{
	const uint8_t *pos = f->value, *el;
	size_t elen;
	int seen = 0;
	while (next_element(&pos, f->value + f->vlen, &el, &elen)) {
		uint64_t n = 0;
		for (size_t i = 0; i < elen; i++) {
			if (!is_digit(el[i]))
				return -EPROTO;
			n = n >= HTTP_CL_BIG ? HTTP_CL_BIG : n * 10 + (uint64_t)(el[i] - '0');
		}
		if ((s->facts & F_CL) && n != s->length)
			return -EPROTO;
		s->facts |= F_CL;
		s->length = n;
		seen = 1;
	}
	return seen ? 0 : -EPROTO;
}

/* Transfer-Encoding lists the codings in the order they were applied; the
 * last one frames the message (RFC 9112 §6.1). A later field line goes on
 * with the same list. Quoted parameters could hide a comma, so they are
 * refused rather than guessed at. */
static int transfer_encoding(struct frame_scan *s, const struct field *f)
{
	const uint8_t *pos = f->value, *el;
	size_t elen;
	s->facts |= F_TE;
	if (memchr(f->value, '"', f->vlen) != NULL)
		return -EPROTO;
	while (next_element(&pos, f->value + f->vlen, &el, &elen)) {
		size_t k = 0;
		while (k < elen && is_tchar(el[k]))
			k++;
		if (same_ci(el, k, "chunked"))
			s->facts |= F_CHUNKED;
		else
			s->facts &= ~(unsigned)F_CHUNKED;
	}
	return 0;
}

static void connection(struct frame_scan *s, const struct field *f)
{
	const uint8_t *pos = f->value, *el;
	size_t elen;
	while (next_element(&pos, f->value + f->vlen, &el, &elen)) {
		if (same_ci(el, elen, "close"))
			s->facts |= F_CLOSE;
		else if (same_ci(el, elen, "keep-alive"))
			s->facts |= F_KEEPALIVE;
	}
}

/* Field names are case-insensitive (RFC 9110 §5.1); so is the 100-continue
 * expectation (§10.1.1). */
static int use_field(struct frame_scan *s, const struct field *f)
{
	if (same_ci(f->name, f->nlen, "content-length"))
		return content_length(s, f);
	if (same_ci(f->name, f->nlen, "transfer-encoding"))
		return transfer_encoding(s, f);
	if (same_ci(f->name, f->nlen, "connection"))
		connection(s, f);
	else if (same_ci(f->name, f->nlen, "upgrade"))
		s->facts |= F_UPGRADE;
	else if (same_ci(f->name, f->nlen, "expect") && same_ci(f->value, f->vlen, "100-continue"))
		s->facts |= F_EXPECT;
	return 0;
}

/* The field line that ends with the LF at i (its CR, if any, at i - 1):
 * name from scan.line to the colon at scan.mark, value after it without
 * the surrounding OWS (RFC 9112 §5). Trailer fields never frame. */
static int field_done(struct frame_ctx *ctx, const uint8_t *p, size_t i)
{
	struct frame_scan *s = &ctx->scan;
	if (s->facts & F_TRAILER) {
		s->step = ST_FIELD0;
		s->line = i + 1;
		return 0;
	}
	size_t v = s->mark + 1, e = p[i - 1] == '\r' ? i - 1 : i;
	while (v < e && (p[v] == ' ' || p[v] == '\t'))
		v++;
	while (e > v && (p[e - 1] == ' ' || p[e - 1] == '\t'))
		e--;
	struct field f = { p + s->line, p + v, s->mark - s->line, e - v };
	s->step = ST_FIELD0;
	s->line = i + 1;
	ctx->scanned += i - f.nlen; /* the line is read once more, here */
	return use_field(s, &f) < 0 ? -EPROTO : 0;
}

/* Methods are case-sensitive (RFC 9110 §9.1). GET, HEAD, DELETE and TRACE
 * have no use for content (§9.3.1, 9.3.2, 9.3.5, 9.3.8). */
static int method_kind(const uint8_t *m, size_t n)
{
	if (n == 4 && memcmp(m, "HEAD", 4) == 0)
		return METHOD_HEAD;
	if (n == 7 && memcmp(m, "CONNECT", 7) == 0)
		return METHOD_CONNECT;
	if ((n == 3 && memcmp(m, "GET", 3) == 0) || (n == 6 && memcmp(m, "DELETE", 6) == 0) ||
	    (n == 5 && memcmp(m, "TRACE", 5) == 0))
		return METHOD_NO_BODY;
	return METHOD_OTHER;
}

/* request-line = method SP request-target SP HTTP-version CRLF (RFC 9112
 * §3), one byte c at i. Every byte is checked as it comes, so garbage is
 * refused before a whole head has come. Returns 0 or -EPROTO. */
static int request_line_byte(struct frame_scan *s, const uint8_t *p, size_t i, uint8_t c)
{
	switch (s->step) {
	case ST_START:
		s->line = i;
		if (c == '\r') {
			/* RFC 9112 §2.2: empty lines before a request line are
			 * ignored. They stay in the frame (the target must cope as
			 * well) and count towards the head cap. */
			s->step = ST_LEADING_LF;
			return 0;
		}
		s->step = ST_METHOD;
		/* fall through */
	case ST_METHOD:
		if (is_tchar(c))
			return 0;
		if (c != ' ' || i == s->line)
			return -EPROTO;
		s->code = method_kind(p + s->line, i - s->line);
		s->step = ST_TARGET0;
		return 0;
	case ST_LEADING_LF:
		s->step = ST_START;
		return c == '\n' ? 0 : -EPROTO;
	case ST_TARGET0:
	case ST_TARGET:
		if (c > ' ' && c < 0x7f) {
			s->step = ST_TARGET;
			return 0;
		}
		if (c != ' ' || s->step == ST_TARGET0)
			return -EPROTO;
		s->step = ST_VERSION;
		s->mark = i + 1;
		return 0;
	default: /* ST_LINE_CR: requests end their lines with CRLF, nothing else */
		s->step = ST_LINE_LF;
		return c == '\r' ? 0 : -EPROTO;
	}
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
 * (RFC 9112 §4), one byte at i. A line that stops right after the code is
 * taken too, as clients do. Returns 0, 1 for a line ended by a bare LF,
 * or -EPROTO. */
static int status_line_byte(struct frame_scan *s, size_t i, uint8_t c)
{
	switch (s->step) {
	case ST_STATUS_SP:
		s->step = ST_CODE;
		s->mark = i + 1;
		s->code = 0;
		return c == ' ' ? 0 : -EPROTO;
	case ST_CODE:
		if (!is_digit(c))
			return -EPROTO;
		s->code = s->code * 10 + (c - '0');
		if (i - s->mark < 2)
			return 0;
		s->step = ST_AFTER_CODE;
		return s->code >= 100 && s->code <= 599 ? 0 : -EPROTO; /* RFC 9110 §15 */
	case ST_AFTER_CODE:
	case ST_REASON:
		if (c == ' ' || (s->step == ST_REASON && is_text(c))) {
			s->step = ST_REASON;
			return 0;
		}
		if (c == '\r') {
			s->step = ST_LINE_LF;
			return 0;
		}
		return c == '\n' ? 1 : -EPROTO;
	default:
		return -EPROTO;
	}
}

/* HTTP-version = "HTTP/1." DIGIT, from scan.mark; c is at i. */
static int version_byte(struct frame_scan *s, size_t i, uint8_t c, int request)
{
	static const char v[] = "HTTP/1.";
	size_t k = i - s->mark;
	if (k < sizeof(v) - 1)
		return c == (uint8_t)v[k] ? 0 : -EPROTO;
	if (!is_digit(c))
		return -EPROTO;
	s->minor = c - '0';
	s->step = request ? ST_LINE_CR : ST_STATUS_SP;
	return 0;
}

/* The field lines and the empty line that ends them (RFC 9112 §5), also
 * for the trailer section (§7.1.2). Whitespace before the colon and
 * obs-fold are refused (§5.1, §5.2): a peer that read them otherwise would
 * frame the message otherwise. Answers may end their lines with a bare LF
 * (§2.2: real servers, e.g. CGI scripts, do); requests may not. Returns 0,
 * 1 when the empty line ends at i, or -EPROTO. */
static int field_byte(struct frame_ctx *ctx, const uint8_t *p, size_t i, int lf_ok)
{
	struct frame_scan *s = &ctx->scan;
	uint8_t c = p[i];
	switch (s->step) {
	case ST_FIELD0:
		if (is_tchar(c)) {
			s->step = ST_NAME;
			return 0;
		}
		if (c == '\r') {
			s->step = ST_END_LF;
			return 0;
		}
		return c == '\n' && lf_ok ? 1 : -EPROTO;
	case ST_NAME:
		if (is_tchar(c))
			return 0;
		s->mark = i;
		s->step = ST_VALUE;
		return c == ':' ? 0 : -EPROTO;
	case ST_VALUE:
		if (is_text(c))
			return 0;
		if (c == '\r') {
			s->step = ST_FIELD_LF;
			return 0;
		}
		return c == '\n' && lf_ok ? field_done(ctx, p, i) : -EPROTO;
	case ST_FIELD_LF:
		return c == '\n' ? field_done(ctx, p, i) : -EPROTO;
	default: /* ST_END_LF */
		return c == '\n' ? 1 : -EPROTO;
	}
}

/* How far a frame may reach: --max-frame, except for the body of an
 * answer that the caller streams (ctx->stream). */
static size_t frame_limit(const struct frame_ctx *ctx, int request)
{
	return !request && ctx->stream ? SIZE_MAX / 2 : ctx->max_frame;
}

/* chunked-body = *chunk last-chunk trailer-section CRLF (RFC 9112 §7.1),
 * chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; one byte at i of
 * the chunk-size line or of the CRLF after the data. The chunk-ext is
 * only checked for stray bytes: it never changes the length. Returns 0 or
 * -EPROTO/-EMSGSIZE. */
static int chunk_byte(struct frame_ctx *ctx, size_t i, uint8_t c, int lf_ok)
{
	struct frame_scan *s = &ctx->scan;
	size_t max = frame_limit(ctx, !lf_ok);
	int d = hex_value(c);

	switch (s->step) {
	case ST_SIZE0:
	case ST_SIZE:
		if (d >= 0) {
			if (s->size > (max - s->line) / 16)
				return -EMSGSIZE; /* this chunk alone overflows the frame */
			s->size = s->size * 16 + (uint64_t)d;
			s->step = ST_SIZE;
			return 0;
		}
		if (s->step == ST_SIZE0)
			return -EPROTO;
		/* fall through */
	case ST_SIZE_WS:
		if (c == ' ' || c == '\t') {
			s->step = ST_SIZE_WS;
			return 0;
		}
		/* fall through */
	case ST_EXT:
		if (c == ';' || (s->step == ST_EXT && is_text(c))) {
			s->step = ST_EXT;
			return 0;
		}
		if (c == '\r') {
			s->step = ST_SIZE_LF;
			return 0;
		}
		if (c != '\n' || !lf_ok)
			return -EPROTO;
		/* fall through */
	case ST_SIZE_LF:
		if (c != '\n')
			return -EPROTO;
		s->line = i + 1;
		if (s->size == 0) {
			s->facts |= F_TRAILER;
			s->step = ST_FIELD0;
		} else if (s->size > max - s->line || max - s->line - s->size < 2) {
			return -EMSGSIZE;
		} else {
			s->step = ST_DATA;
		}
		return 0;
	case ST_DATA_CR:
		if (c == '\r') {
			s->step = ST_DATA_LF;
			return 0;
		}
		if (c != '\n' || !lf_ok)
			return -EPROTO;
		/* fall through */
	default: /* ST_DATA_LF */
		if (c != '\n')
			return -EPROTO;
		s->step = ST_SIZE0;
		s->line = i + 1;
		s->size = 0;
		return 0;
	}
}

/* RFC 9112 §9.3: HTTP/1.1 persists unless told to close; HTTP/1.0 closes
 * unless told to keep alive. */
static int closes(const struct frame_scan *s)
{
	return (s->facts & F_CLOSE) || (s->minor == 0 && !(s->facts & F_KEEPALIVE));
}

/* A body of n bytes after the head that ends at e: the frame ends at e + n. */
static ssize_t body_known(struct frame_ctx *ctx, size_t e, uint64_t n, int request)
{
	if (n > frame_limit(ctx, request) - e)
		return -EMSGSIZE;
	ctx->scan.size = e + n;
	ctx->scan.step = ST_KNOWN;
	return 0;
}

static void body_chunked(struct frame_scan *s, size_t e)
{
	s->step = ST_SIZE0;
	s->line = e;
	s->size = 0;
}

/* Message body length of a request whose head ends at e (RFC 9112 §6.3).
 * A request with both Transfer-Encoding and Content-Length is refused
 * rather than framed by Transfer-Encoding: §6.3 lets an intermediary
 * forward it only after removing Content-Length, and we never change a
 * byte. So is any Transfer-Encoding in HTTP/1.0 (§6.1) or without chunked
 * last (§6.3). Returns 0 (the body follows), the frame length or -errno. */
static ssize_t request_head_done(struct frame_ctx *ctx, size_t e)
{
	struct frame_scan *s = &ctx->scan;
	if ((s->facts & F_UPGRADE) || s->code == METHOD_CONNECT)
		return -EOPNOTSUPP; /* we never tunnel */
	if ((s->facts & F_TE) && (!(s->facts & F_CHUNKED) || (s->facts & F_CL) || s->minor == 0))
		return -EPROTO;
	/* A target that ignores the content of a GET would read it as the
	 * next request on the shared connection, and another client's request
	 * would become part of it: content where it has no meaning is refused
	 * (README, "HTTP"). */
	int content = (s->facts & F_TE) || ((s->facts & F_CL) && s->length > 0);
	if (content && (s->code == METHOD_NO_BODY || s->code == METHOD_HEAD))
		return -EPROTO;
	if (s->facts & F_TE) {
		body_chunked(s, e);
		return 0;
	}
	if (s->facts & F_CL)
		return body_known(ctx, e, s->length, 1);
	return (ssize_t)e;
}

/* Message body length of a response whose head ends at e (RFC 9112 §6.3).
 * Interim 1xx answers come before the final one and travel with it as one
 * frame, so the exchange stays one request, one frame; the leading 100
 * (Continue) ones are counted in scan.interim. With both Transfer-Encoding
 * and Content-Length, Transfer-Encoding frames (item 3). */
static ssize_t response_head_done(struct frame_ctx *ctx, size_t e)
{
	struct frame_scan *s = &ctx->scan;
	if (s->code == 101)
		return -EPROTO; /* Upgrade is never forwarded */
	if (s->code < 200) {
		if (s->code == 100 && s->interim == s->head)
			s->interim = e;
		s->head = e;
		s->step = ST_START;
		s->facts = 0;
		s->length = 0;
		return 0;
	}
	if (ctx->req_connect && s->code < 300)
		return -EPROTO; /* a tunnel (item 2): CONNECT is never forwarded */
	if (ctx->req_head || s->code == 204 || s->code == 304)
		return (ssize_t)e; /* item 1 */
	if ((s->facts & F_TE) && (s->facts & F_CHUNKED)) {
		body_chunked(s, e);
		return 0;
	}
	if (!(s->facts & F_TE) && (s->facts & F_CL))
		return body_known(ctx, e, s->length, 0);
	s->step = ST_UNTIL_CLOSE; /* items 3 and 7: the body runs until the target closes */
	return 0;
}

/* Where the scan must stop: the frame cap and, within a head, the head cap. */
static size_t scan_cap(const struct frame_ctx *ctx, int request)
{
	const struct frame_scan *s = &ctx->scan;
	int in_head = s->step <= ST_END_LF && !(s->facts & F_TRAILER);
	if (in_head && ctx->max_frame - s->head > HTTP_HEAD_MAX)
		return s->head + HTTP_HEAD_MAX;
	return in_head ? ctx->max_frame : frame_limit(ctx, request);
}

/* Takes the byte at scan.pos. Returns 0 to go on, the frame length, or
 * -errno. */
static ssize_t scan_byte(struct frame_ctx *ctx, const uint8_t *p, int request)
{
	struct frame_scan *s = &ctx->scan;
	size_t i = s->pos;
	int r;

	if (s->step == ST_START && !request) {
		s->step = ST_VERSION;
		s->mark = i;
	}
	if (s->step >= ST_SIZE0)
		return chunk_byte(ctx, i, p[i], !request);
	if (s->step >= ST_FIELD0)
		r = field_byte(ctx, p, i, !request);
	else if (s->step == ST_VERSION)
		r = version_byte(s, i, p[i], request);
	else if (s->step == ST_LINE_LF)
		r = p[i] == '\n' ? 2 : -EPROTO;
	else if (request)
		r = request_line_byte(s, p, i, p[i]);
	else if ((r = status_line_byte(s, i, p[i])) == 1)
		r = 2; /* a bare LF ended it */
	if (r == 2) {  /* the start line ended */
		s->step = ST_FIELD0;
		s->line = i + 1;
		return 0;
	}
	if (r <= 0)
		return r;
	/* the empty line ended at i */
	if (s->facts & F_TRAILER)
		return (ssize_t)(i + 1);
	return request ? request_head_done(ctx, i + 1) : response_head_done(ctx, i + 1);
}

/* Resumes the scan at scan.pos. Returns 0 (need more, or a body that the
 * caller measures: ST_KNOWN, ST_UNTIL_CLOSE), the frame length, or -errno. */
static ssize_t scan(struct frame_ctx *ctx, const uint8_t *p, size_t len, int request)
{
	struct frame_scan *s = &ctx->scan;
	if (len < s->pos)
		codec_restart(ctx); /* not the frame it was reading: start over */
	for (;;) {		    /* each pass takes a byte or a run of chunk data: bounded by len */
		size_t cap = scan_cap(ctx, request);
		size_t n = len < cap ? len : cap;
		if (s->step == ST_KNOWN || s->step == ST_UNTIL_CLOSE)
			return 0;
		if (s->pos >= n)
			return len >= cap ? -EMSGSIZE : 0;
		ctx->scanned++;
		if (s->step == ST_DATA) {
			uint64_t k = n - s->pos < s->size ? n - s->pos : s->size;
			s->pos += (size_t)k;
			s->size -= k;
			if (s->size == 0)
				s->step = ST_DATA_CR;
			continue;
		}
		ssize_t r = scan_byte(ctx, p, request);
		if (r != 0)
			return r;
		s->pos++;
	}
}

static ssize_t http_request(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof)
{
	struct frame_scan *s = &ctx->scan;
	(void)eof;

	ssize_t end = scan(ctx, buf, len, 1);
	if (end == 0 && s->step == ST_KNOWN)
		end = len >= s->size ? (ssize_t)s->size : 0;
	if (end > 0) {
		ctx->req_head = s->code == METHOD_HEAD;
		ctx->req_connect = s->code == METHOD_CONNECT; /* refused today: kept as a defence */
		ctx->close_client = closes(s);
	} else if (end == 0 && (s->step >= ST_SIZE0 || (s->facts & F_TRAILER)) && (s->facts & F_EXPECT) &&
		   s->minor >= 1 && ctx->expect == CODEC_EXPECT_NONE) {
		/* RFC 9110 §10.1.1: the client waits for 100 (Continue) before
		 * it sends the content (an HTTP/1.0 one is not to be answered):
		 * the server answers it, as the target only sees the request
		 * once it is whole. */
		ctx->expect = CODEC_EXPECT_WANTED;
	}
	if (end != 0)
		codec_restart(ctx);
	return end;
}

static ssize_t http_response(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof)
{
	struct frame_scan *s = &ctx->scan;

	ssize_t end = scan(ctx, buf, len, 0);
	int until_close = end == 0 && s->step == ST_UNTIL_CLOSE;
	if (end == 0 && s->step == ST_KNOWN)
		end = len >= s->size ? (ssize_t)s->size : 0;
	else if (until_close && !ctx->stream && (len > ctx->max_frame || (!eof && len >= ctx->max_frame)))
		end = -EMSGSIZE;
	else if (until_close)
		end = eof ? (ssize_t)len : 0;
	/* An answer that ends its connection ends the client's too (RFC 9112
	 * §9.6): it is forwarded as it came, Connection field and all, and
	 * one delimited by the close has no other end. A target that sends
	 * both Transfer-Encoding and Content-Length is not to be trusted
	 * with framing: neither connection goes on. */
	if (end > 0 &&
	    (until_close || closes(s) || ((s->facts & F_TE) && ((s->facts & F_CL) || s->minor == 0)))) {
		ctx->close_upstream = 1;
		ctx->close_client = 1;
	}
	/* streaming callers need it as soon as the head is whole */
	if (end > 0 || (end == 0 && (s->step >= ST_SIZE0 || (s->facts & F_TRAILER))))
		ctx->interim_len = s->interim;
	if (end != 0)
		codec_restart(ctx);
	return end;
}

/* Streaming: nothing is settled before the head is whole (the answer may
 * still be refused, and a 502 sent instead); after it, every byte the
 * framer has examined, but the trailer line being read. A body that ends
 * at the close keeps its last byte back: only a call with bytes in the
 * buffer can return the frame's end when the close comes. */
static size_t http_settled(const struct frame_ctx *ctx, size_t len)
{
	const struct frame_scan *s = &ctx->scan;
	size_t n = 0;
	if (s->step == ST_KNOWN)
		n = s->size;
	else if (s->step == ST_UNTIL_CLOSE)
		n = len > 0 ? len - 1 : 0;
	else if (s->facts & F_TRAILER)
		n = s->line;
	else if (s->step >= ST_SIZE0)
		n = s->pos;
	return n < len ? n : len;
}

static size_t minus(size_t a, size_t n)
{
	return a > n ? a - n : 0;
}

static void http_shift(struct frame_ctx *ctx, size_t n)
{
	struct frame_scan *s = &ctx->scan;
	s->pos = minus(s->pos, n);
	s->line = minus(s->line, n);
	s->mark = minus(s->mark, n);
	s->head = minus(s->head, n);
	s->interim = minus(s->interim, n);
	if (s->step == ST_KNOWN)
		s->size = minus((size_t)s->size, n);
}

/* Local answers. 502, 503 and 504 answer a request that was read whole,
 * so the client stream is still in step and the connection may go on;
 * after the others the client is closed. */
static const struct {
	int status;
	const char *reason;
	const char *text;
	int close;
} http_errors[] = {
	[CODEC_ERR_BAD_REQUEST] = { 400, "Bad Request", "malformed request", 1 },
	[CODEC_ERR_TOO_LARGE] = { 413, "Content Too Large", "request too large", 1 },
	[CODEC_ERR_UNSUPPORTED] = { 501, "Not Implemented", "Upgrade and CONNECT are not supported", 1 },
	[CODEC_ERR_NO_UPSTREAM] = { 503, "Service Unavailable", "no upstream connection available", 0 },
	[CODEC_ERR_TIMEOUT] = { 504, "Gateway Timeout", "the target did not answer in time", 0 },
	[CODEC_ERR_BAD_GATEWAY] = { 502, "Bad Gateway",
				    "the target closed the connection or answered garbage", 0 },
	[CODEC_ERR_POLICY] = { 403, "Forbidden", "request refused by policy", 1 },
};

static size_t http_error(const struct frame_ctx *ctx, const uint8_t *req, size_t reqlen, enum codec_err err,
			 uint8_t *out, size_t cap)
{
	char reply[512], body[128];
	(void)req;
	(void)reqlen;

	if ((size_t)err >= sizeof(http_errors) / sizeof(http_errors[0]) || http_errors[err].status == 0)
		return 0;
	int blen = snprintf(body, sizeof(body), "tcp-multiplexer: %s\n", http_errors[err].text);
	/* ctx->req_head belongs to the last whole request, which is the one
	 * answered only when the error is not a 400, 413 or 501; a HEAD
	 * answer carries no body (RFC 9110 §9.3.2). */
	int head = ctx != NULL && ctx->req_head && err != CODEC_ERR_BAD_REQUEST &&
		   err != CODEC_ERR_TOO_LARGE && err != CODEC_ERR_UNSUPPORTED;
	int close = http_errors[err].close || (ctx != NULL && ctx->close_client);
	int n = snprintf(reply, sizeof(reply),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s",
			 http_errors[err].status, http_errors[err].reason, blen,
			 close ? "Connection: close\r\n" : "", head ? "" : body);
	if (n < 0 || (size_t)n >= sizeof(reply) || (size_t)n > cap)
		return 0;
	memcpy(out, reply, (size_t)n);
	return (size_t)n;
}

const struct codec codec_http = {
	.name = "http",
	.summary = "HTTP/1.1 requests and responses (no TLS, no Upgrade, no CONNECT)",
	.request = http_request,
	.response = http_response,
	.error_reply = http_error,
	.settled = http_settled,
	.shift = http_shift,
	/* RFC 9110 §15.2.1 */
	.expect_reply = "HTTP/1.1 100 Continue\r\n\r\n",
	.initial_buf = 4096,
	.tagged = 0,
};
