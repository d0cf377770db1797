/* http: HTTP/1.1 message framing (RFC 9112). The framers only find where a
 * message ends; its bytes are forwarded exactly as they came. */
#include "config.h"
#include "codec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define HTTP_HEAD_MAX (64 * 1024)  /* start line, field lines and the empty line */
#define HTTP_CL_BIG (UINT64_MAX / 10) /* Content-Length saturates here: far over any frame */

enum { METHOD_OTHER, METHOD_HEAD, METHOD_CONNECT };

/* What the framing rules need from one message head. */
struct http_head {
	int minor;           /* HTTP/1.minor */
	int status;          /* responses */
	int method;          /* requests */
	int has_te;          /* Transfer-Encoding present */
	int te_chunked;      /* ...and chunked is its final coding */
	int has_cl;          /* Content-Length present */
	uint64_t cl;
	int conn_close;      /* Connection: close */
	int keep_alive;      /* Connection: keep-alive */
	int upgrade;         /* Upgrade present */
};

struct field {
	const uint8_t *name, *value;
	size_t nlen, vlen;   /* nlen 0: the empty line that ends a section */
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

/* Matches the literal s against the n bytes there are: 1 for a whole
 * match, 0 for a prefix of it (need more), -EPROTO otherwise. */
static int match(const uint8_t *p, size_t n, const char *s)
{
	size_t k = strlen(s);
	if (memcmp(p, s, n < k ? n : k) != 0)
		return -EPROTO;
	return n >= k;
}

/* The framers' verdict when a frame goes on past the bytes there are: a
 * buffer already holding the most a frame may have can never complete it. */
static ssize_t need_more(size_t len, size_t room)
{
	return len >= room ? -EMSGSIZE : 0;
}

/* A frame of known length end. */
static ssize_t known_end(uint64_t end, size_t len, size_t max)
{
	if (end > max)
		return -EMSGSIZE;
	return len >= end ? (ssize_t)end : 0;
}

/* HTTP-version = "HTTP/1." DIGIT. Returns 8, 0 (need more) or -EPROTO. */
static int version(const uint8_t *p, size_t n, int *minor)
{
	int r = match(p, n, "HTTP/1.");
	if (r <= 0)
		return r;
	if (n < 8)
		return 0;
	if (!is_digit(p[7]))
		return -EPROTO;
	*minor = p[7] - '0';
	return 8;
}

/* request-line = method SP request-target SP HTTP-version CRLF (RFC 9112
 * §3). Every byte there is checked, so garbage is refused before a whole
 * head has come. Returns the line length, 0 or -EPROTO. */
static ssize_t request_line(const uint8_t *p, size_t n, struct http_head *h)
{
	size_t i = 0;
	while (i < n && is_tchar(p[i]))
		i++;
	size_t mlen = i;
	if (i == n)
		return 0;
	if (mlen == 0 || p[i] != ' ')
		return -EPROTO;
	size_t target = ++i;
	while (i < n && p[i] > ' ' && p[i] < 0x7f)
		i++;
	if (i == n)
		return 0;
	if (i == target || p[i] != ' ')
		return -EPROTO;
	i++;
	int r = version(p + i, n - i, &h->minor);
	if (r <= 0)
		return r;
	i += (size_t)r;
	r = match(p + i, n - i, "\r\n");
	if (r <= 0)
		return r;
	/* Methods are case-sensitive (RFC 9110 §9.1). */
	if (mlen == 4 && memcmp(p, "HEAD", 4) == 0)
		h->method = METHOD_HEAD;
	else if (mlen == 7 && memcmp(p, "CONNECT", 7) == 0)
		h->method = METHOD_CONNECT;
	return (ssize_t)(i + 2);
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
 * (RFC 9112 §4). A line that stops right after the code is taken too, as
 * clients do. Returns the line length, 0 or -EPROTO. */
static ssize_t status_line(const uint8_t *p, size_t n, struct http_head *h)
{
	int r = version(p, n, &h->minor);
	if (r <= 0)
		return r;
	size_t i = 8;
	r = match(p + i, n - i, " ");
	if (r <= 0)
		return r;
	int status = 0;
	for (i = 9; i < 12; i++) {
		if (i == n)
			return 0;
		if (!is_digit(p[i]))
			return -EPROTO;
		status = status * 10 + (p[i] - '0');
	}
	if (status < 100 || status > 599) /* RFC 9110 §15 */
		return -EPROTO;
	if (i < n && p[i] == ' ')
		while (++i < n && is_text(p[i]))
			;
	r = match(p + i, n - i, "\r\n");
	if (r <= 0)
		return r;
	h->status = status;
	return (ssize_t)(i + 2);
}

/* field-line = field-name ":" OWS field-value OWS CRLF (RFC 9112 §5).
 * Whitespace before the colon and obs-fold are refused (§5.1, §5.2): a
 * peer that read them otherwise would frame the message otherwise.
 * Returns the line length, 0 or -EPROTO. */
static ssize_t field_line(const uint8_t *p, size_t n, struct field *f)
{
	size_t i = 0;
	while (i < n && is_tchar(p[i]))
		i++;
	if (i == n)
		return 0;
	if (i == 0) {
		int r = match(p, n, "\r\n");
		f->nlen = 0;
		return r <= 0 ? r : 2;
	}
	if (p[i] != ':')
		return -EPROTO;
	f->name = p;
	f->nlen = i;
	size_t v = ++i;
	while (i < n && is_text(p[i]))
		i++;
	int r = match(p + i, n - i, "\r\n");
	if (r <= 0)
		return r;
	size_t e = i;
	while (v < e && (p[v] == ' ' || p[v] == '\t'))
		v++;
	while (e > v && (p[e - 1] == ' ' || p[e - 1] == '\t'))
		e--;
	f->value = p + v;
	f->vlen = e - v;
	return (ssize_t)(i + 2);
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
static int content_length(struct http_head *h, const struct field *f)
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
		if (h->has_cl && n != h->cl)
			return -EPROTO;
		h->has_cl = 1;
		h->cl = n;
		seen = 1;
	}
	return seen ? 0 : -EPROTO;
}

/* Transfer-Encoding lists the codings in the order they were applied; the
 * last one frames the message (RFC 9112 §6.1). A later field line goes on
 * with the same list. Quoted parameters could hide a comma, so they are
 * refused rather than guessed at. */
static int transfer_encoding(struct http_head *h, const struct field *f)
{
	const uint8_t *pos = f->value, *el;
	size_t elen;
	h->has_te = 1;
	if (memchr(f->value, '"', f->vlen) != NULL)
		return -EPROTO;
	while (next_element(&pos, f->value + f->vlen, &el, &elen)) {
		size_t k = 0;
		while (k < elen && is_tchar(el[k]))
			k++;
		h->te_chunked = same_ci(el, k, "chunked");
	}
	return 0;
}

static void connection(struct http_head *h, const struct field *f)
{
	const uint8_t *pos = f->value, *el;
	size_t elen;
	while (next_element(&pos, f->value + f->vlen, &el, &elen)) {
		if (same_ci(el, elen, "close"))
			h->conn_close = 1;
		else if (same_ci(el, elen, "keep-alive"))
			h->keep_alive = 1;
	}
}

/* Field names are case-insensitive (RFC 9110 §5.1). */
static int use_field(struct http_head *h, const struct field *f)
{
	if (same_ci(f->name, f->nlen, "content-length"))
		return content_length(h, f);
	if (same_ci(f->name, f->nlen, "transfer-encoding"))
		return transfer_encoding(h, f);
	if (same_ci(f->name, f->nlen, "connection"))
		connection(h, f);
	else if (same_ci(f->name, f->nlen, "upgrade"))
		h->upgrade = 1;
	return 0;
}

/* Reads the head at p (len bytes there, room of which may belong to the
 * frame). Returns the head length, 0 or -EPROTO/-EMSGSIZE. */
static ssize_t parse_head(const uint8_t *p, size_t len, size_t room, int request,
			  struct http_head *h)
{
	size_t cap = room < HTTP_HEAD_MAX ? room : HTTP_HEAD_MAX;
	size_t n = len < cap ? len : cap;
	size_t i = 0;
	ssize_t r;

	memset(h, 0, sizeof(*h));
	/* RFC 9112 §2.2: empty lines before a request line are ignored. They
	 * stay in the frame (the target must cope as well) and count
	 * towards the head cap. */
	while (request && i < n && p[i] == '\r') {
		r = match(p + i, n - i, "\r\n");
		if (r <= 0)
			return r < 0 ? r : need_more(len, cap);
		i += 2;
	}
	r = request ? request_line(p + i, n - i, h) : status_line(p + i, n - i, h);
	while (r > 0) { /* each pass takes a line: bounded by n */
		struct field f;
		i += (size_t)r;
		r = field_line(p + i, n - i, &f);
		if (r > 0 && f.nlen == 0)
			return (ssize_t)(i + 2);
		if (r > 0 && use_field(h, &f) < 0)
			return -EPROTO;
	}
	return r < 0 ? r : need_more(len, cap);
}

/* The trailer section after the last chunk: field lines up to an empty
 * one (RFC 9112 §7.1.2). They never frame, so they are only checked for
 * stray bytes. i is where it starts. Returns the body length, 0 or -errno. */
static ssize_t trailer_section(const uint8_t *p, size_t len, size_t i, size_t room)
{
	size_t n = len < room ? len : room;
	ssize_t r = 0;

	while (i < n) { /* each pass takes a line: bounded by n */
		struct field f;
		r = field_line(p + i, n - i, &f);
		if (r <= 0)
			break;
		i += (size_t)r;
		if (f.nlen == 0)
			return (ssize_t)i;
	}
	return r < 0 ? r : need_more(len, room);
}

/* chunked-body = *chunk last-chunk trailer-section CRLF (RFC 9112 §7.1),
 * with chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF. p is at the
 * first chunk. Returns the body length, 0 or -EPROTO/-EMSGSIZE. */
static ssize_t chunked_body(const uint8_t *p, size_t len, size_t room)
{
	size_t n = len < room ? len : room;
	size_t i = 0;
	ssize_t r = 0;

	while (i < n) { /* each pass takes at least "0\r\n": bounded by n */
		size_t size = 0, k = i;
		int d;
		while (k < n && (d = hex_value(p[k])) >= 0) {
			if (size > (room - i) / 16)
				return -EMSGSIZE; /* this chunk alone overflows the frame */
			size = size * 16 + (size_t)d;
			k++;
		}
		if (k == n)
			break;
		if (k == i)
			return -EPROTO;
		/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ) is
		 * only checked for stray bytes: it never changes the length. */
		while (k < n && (p[k] == ' ' || p[k] == '\t'))
			k++;
		if (k < n && p[k] == ';')
			while (k < n && is_text(p[k]))
				k++;
		r = match(p + k, n - k, "\r\n");
		if (r <= 0)
			break;
		i = k + 2;
		if (size == 0)
			return trailer_section(p, len, i, room);
		if (size > room - i || room - i - size < 2)
			return -EMSGSIZE;
		if (n - i < size + 2) {
			/* the data is not all there; check what there is of its CRLF */
			r = n - i > size ? match(p + i + size, n - i - size, "\r\n") : 0;
			break;
		}
		if (p[i + size] != '\r' || p[i + size + 1] != '\n')
			return -EPROTO;
		i += size + 2;
	}
	return r < 0 ? r : need_more(len, room);
}

/* RFC 9112 §9.3: HTTP/1.1 persists unless told to close; HTTP/1.0 closes
 * unless told to keep alive. */
static int closes(const struct http_head *h)
{
	return h->conn_close || (h->minor == 0 && !h->keep_alive);
}

/* Message body length of a request (RFC 9112 §6.3). A request with both
 * Transfer-Encoding and Content-Length is refused rather than framed by
 * Transfer-Encoding: §6.3 lets an intermediary forward it only after
 * removing Content-Length, and we never change a byte. So is any
 * Transfer-Encoding in HTTP/1.0 (§6.1) or without chunked last (§6.3). */
static ssize_t http_request(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof)
{
	struct http_head h;
	ssize_t end;
	(void)eof;

	ssize_t r = parse_head(buf, len, ctx->max_frame, 1, &h);
	if (r <= 0)
		return r;
	size_t off = (size_t)r;
	if (h.upgrade || h.method == METHOD_CONNECT)
		return -EOPNOTSUPP; /* we never tunnel */
	if (h.has_te) {
		if (!h.te_chunked || h.has_cl || h.minor == 0)
			return -EPROTO;
		r = chunked_body(buf + off, len - off, ctx->max_frame - off);
		end = r > 0 ? (ssize_t)off + r : r;
	} else if (h.has_cl) {
		end = known_end(off + h.cl, len, ctx->max_frame);
	} else {
		end = (ssize_t)off;
	}
	if (end > 0) {
		ctx->req_head = h.method == METHOD_HEAD;
		ctx->req_connect = 0;
		ctx->close_client = closes(&h);
	}
	return end;
}

/* Message body length of a response (RFC 9112 §6.3). Interim 1xx answers
 * come before the final one and travel with it as one frame, so the
 * exchange stays one request, one frame. With both Transfer-Encoding and
 * Content-Length, Transfer-Encoding frames (item 3) and the connection is
 * not reused: its server is not to be trusted with framing. */
static ssize_t http_response(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof)
{
	struct http_head h;
	size_t off = 0;
	ssize_t r, end;

	do { /* each pass takes a head: bounded by len */
		r = parse_head(buf + off, len - off, ctx->max_frame - off, 0, &h);
		if (r <= 0)
			return r;
		if (h.status == 101)
			return -EPROTO; /* Upgrade is never forwarded */
		off += (size_t)r;
	} while (h.status < 200);

	int until_close = 0;
	if (ctx->req_connect && h.status < 300) {
		return -EPROTO; /* a tunnel (item 2): CONNECT is never forwarded */
	} else if (ctx->req_head || h.status == 204 || h.status == 304) {
		end = (ssize_t)off; /* item 1 */
	} else if (h.has_te && h.te_chunked) {
		r = chunked_body(buf + off, len - off, ctx->max_frame - off);
		end = r > 0 ? (ssize_t)off + r : r;
	} else if (!h.has_te && h.has_cl) {
		end = known_end(off + h.cl, len, ctx->max_frame);
	} else {
		/* items 3 and 7: the body runs until the target closes */
		until_close = 1;
		if (len > ctx->max_frame || (!eof && len >= ctx->max_frame))
			return -EMSGSIZE;
		end = eof ? (ssize_t)len : 0;
	}
	if (end > 0 && (until_close || closes(&h) || (h.has_te && (h.has_cl || h.minor == 0))))
		ctx->close_upstream = 1;
	return end;
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
	[CODEC_ERR_UNSUPPORTED] = { 501, "Not Implemented",
				    "Upgrade and CONNECT are not supported", 1 },
	[CODEC_ERR_NO_UPSTREAM] = { 503, "Service Unavailable",
				    "no upstream connection available", 0 },
	[CODEC_ERR_TIMEOUT] = { 504, "Gateway Timeout", "the target did not answer in time", 0 },
	[CODEC_ERR_BAD_GATEWAY] = { 502, "Bad Gateway",
				    "the target closed the connection or answered garbage", 0 },
	[CODEC_ERR_POLICY] = { 403, "Forbidden", "request refused by policy", 1 },
};

static size_t http_error(const struct frame_ctx *ctx, const uint8_t *req, size_t reqlen,
			 enum codec_err err, uint8_t *out, size_t cap)
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
	.initial_buf = 4096,
	.tagged = 0,
};
