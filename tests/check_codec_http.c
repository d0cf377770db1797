/* Tests for src/codec_http.c: HTTP/1.1 request and response framing (RFC
 * 9112) and the local error answers. */
#include "config.h"
#include "codec_test.h"

#include <errno.h>
#include <stdio.h>

#define REQ (codec_http.request)
#define RESP (codec_http.response)
#define HEAD_MAX (64 * 1024)

/* ---- requests -------------------------------------------------------- */

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
	int head;  /* want req_head */
	int close; /* want close_client */
} requests[] = {
	{ "GET, no body",
	  CT_BYTES("GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"), 0, 0 },
	{ "POST with Content-Length",
	  CT_BYTES("POST /form HTTP/1.1\r\nHost: example.com\r\n"
		   "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\n\r\n"
		   "name=a&age=42"), 0, 0 },
	{ "body that looks like a head end",
	  CT_BYTES("POST /x HTTP/1.1\r\nContent-Length: 8\r\n\r\n\r\n\r\nGET "), 0, 0 },
	{ "HEAD", CT_BYTES("HEAD /big.iso HTTP/1.1\r\nHost: a\r\n\r\n"), 1, 0 },
	/* methods are case-sensitive: this is not HEAD */
	{ "lower-case head", CT_BYTES("head / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 0 },
	{ "OPTIONS *", CT_BYTES("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 0 },
	{ "Content-Length 0", CT_BYTES("PUT /empty HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 0, 0 },
	{ "same Content-Length twice",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), 0, 0 },
	{ "same Content-Length in a list",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length: 3, 003\r\n\r\nabc"), 0, 0 },
	{ "OWS and obs-text in values",
	  CT_BYTES("POST / HTTP/1.1\r\nX-Name: \t caf\xc3\xa9 \t\r\nContent-Length:7\r\n\r\n"
		   "abcdefg"), 0, 0 },
	{ "Expect: 100-continue",
	  CT_BYTES("PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata"), 0, 0 },
	{ "chunked with extensions and trailers",
	  CT_BYTES("POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		   "Trailer: Expires\r\n\r\n"
		   "5;name=value\r\nhello\r\n"
		   "6 ; q=\"a;b\" ; flag\r\n world\r\n"
		   "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
		   "4\r\n\r\n\r\n\r\n"
		   "0;last\r\nExpires: never\r\nX-Sum: 42\r\n\r\n"), 0, 0 },
	{ "chunked, no trailers",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), 0, 0 },
	{ "chunk sizes zero-padded, upper case",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "000A\r\n0123456789\r\n00\r\n\r\n"), 0, 0 },
	{ "gzip, then chunked",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
		   "2\r\n\x1f\x8b\r\n0\r\n\r\n"), 0, 0 },
	{ "Transfer-Encoding over two lines",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "1\r\nx\r\n0\r\n\r\n"), 0, 0 },
	/* RFC 9112 §2.2: empty lines before the request line are ignored */
	{ "leading empty lines", CT_BYTES("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 0 },
	{ "Connection: close", CT_BYTES("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), 0, 1 },
	{ "close in a token list",
	  CT_BYTES("GET / HTTP/1.1\r\nConnection: TE, ,Close \r\nTE: trailers\r\n\r\n"), 0, 1 },
	{ "close-ish token", CT_BYTES("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n"), 0, 0 },
	{ "HTTP/1.0", CT_BYTES("GET / HTTP/1.0\r\n\r\n"), 0, 1 },
	{ "HTTP/1.0 keep-alive", CT_BYTES("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0, 0 },
	{ "HEAD, HTTP/1.0", CT_BYTES("HEAD / HTTP/1.0\r\n\r\n"), 1, 1 },
};

START_TEST(test_request_splits)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	/* req_head is not an out-flag: a whole request must clear it too */
	base.req_head = 1;
	struct frame_ctx c = ct_splits(REQ, &base, requests[_i].msg, requests[_i].len,
				       requests[_i].name);
	ck_assert_msg(c.req_head == requests[_i].head, "%s: req_head", requests[_i].name);
	ck_assert_msg(c.close_client == requests[_i].close, "%s: close_client", requests[_i].name);
	ck_assert_int_eq(c.req_connect, 0);
	ck_assert_int_eq(c.close_upstream, 0);
}
END_TEST

START_TEST(test_request_pipelined)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	int j = (_i + 1) % CT_COUNT(requests);
	ct_pair(REQ, &base, requests[_i].msg, requests[_i].len, requests[j].msg, requests[j].len,
		requests[_i].name);
}
END_TEST

/* The same request with its field names in other cases and other orders:
 * the framing and the flags do not change. */
static const struct {
	const uint8_t *msg;
	size_t len;
} variants[] = {
	{ CT_BYTES("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
		   "hello") },
	{ CT_BYTES("POST / HTTP/1.1\r\nconnection: CLOSE\r\nCONTENT-LENGTH: 5\r\nhost: a\r\n\r\n"
		   "hello") },
	{ CT_BYTES("POST / HTTP/1.1\r\ncOnTeNt-LeNgTh: 5\r\nHOST: a\r\nConnection: Close\r\n\r\n"
		   "hello") },
	{ CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
		   "5\r\nhello\r\n0\r\n\r\n") },
	{ CT_BYTES("POST / HTTP/1.1\r\nCONNECTION: close\r\ntransfer-encoding: Chunked\r\n\r\n"
		   "5\r\nhello\r\n0\r\n\r\n") },
};

START_TEST(test_request_case_and_order)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	struct frame_ctx c = ct_splits(REQ, &base, variants[_i].msg, variants[_i].len, "variant");
	ck_assert_int_eq(c.close_client, 1);
	ck_assert_int_eq(c.req_head, 0);
}
END_TEST

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
	size_t max;
	ssize_t err;
	size_t refused_at; /* 0, or the prefix length at which it must be refused */
} bad_requests[] = {
	{ "Content-Length lines disagree",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
	  CT_MAX_FRAME, -EPROTO, 0 },
	{ "Content-Length list disagrees",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabcd"), CT_MAX_FRAME, -EPROTO, 0 },
	{ "Content-Length not a number",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length: 3a\r\n\r\nabc"), CT_MAX_FRAME, -EPROTO, 0 },
	{ "Content-Length negative",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 0 },
	{ "Content-Length signed",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc"), CT_MAX_FRAME, -EPROTO, 0 },
	{ "Content-Length hex",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length: 0x3\r\n\r\nabc"), CT_MAX_FRAME, -EPROTO, 0 },
	{ "Content-Length empty",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n"), CT_MAX_FRAME, -EPROTO, 0 },
	/* RFC 9112 §6.3 would frame it by chunked, but only after removing
	 * Content-Length, and we forward bytes untouched */
	{ "chunked and Content-Length",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "3\r\nabc\r\n0\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 0 },
	{ "Transfer-Encoding without chunked",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc"), CT_MAX_FRAME, -EPROTO, 0 },
	{ "chunked not last",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
	  CT_MAX_FRAME, -EPROTO, 0 },
	{ "Transfer-Encoding in HTTP/1.0",
	  CT_BYTES("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), CT_MAX_FRAME,
	  -EPROTO, 0 },
	{ "quoted Transfer-Encoding parameter",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: x;p=\"a,chunked\"\r\n\r\n0\r\n\r\n"),
	  CT_MAX_FRAME, -EPROTO, 0 },
	{ "Upgrade: websocket",
	  CT_BYTES("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		   "Sec-WebSocket-Version: 13\r\n\r\n"), CT_MAX_FRAME, -EOPNOTSUPP, 0 },
	{ "Upgrade: h2c", CT_BYTES("GET / HTTP/1.1\r\nupgrade: h2c\r\n\r\n"), CT_MAX_FRAME,
	  -EOPNOTSUPP, 0 },
	{ "CONNECT",
	  CT_BYTES("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
	  CT_MAX_FRAME, -EOPNOTSUPP, 0 },
	{ "HTTP/2 preface", CT_BYTES("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 12 },
	{ "TLS ClientHello", CT_BYTES("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), CT_MAX_FRAME,
	  -EPROTO, 1 },
	{ "Modbus request", CT_BYTES("\x00\x01\x00\x00\x00\x06\x11\x03\x00\x6b\x00\x03"),
	  CT_MAX_FRAME, -EPROTO, 1 },
	{ "lower-case version", CT_BYTES("GET / http/1.1\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 7 },
	{ "HTTP/0.9 request line", CT_BYTES("GET /\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 6 },
	{ "no target", CT_BYTES("GET  HTTP/1.1\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 5 },
	{ "two spaces", CT_BYTES("GET /  HTTP/1.1\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 7 },
	{ "tab separator", CT_BYTES("GET\t/ HTTP/1.1\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 4 },
	{ "junk after the version", CT_BYTES("GET / HTTP/1.1 x\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 15 },
	{ "space before the colon",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello"), CT_MAX_FRAME, -EPROTO, 32 },
	{ "obs-fold", CT_BYTES("GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 25 },
	{ "field without colon", CT_BYTES("GET / HTTP/1.1\r\nHost\r\n\r\n"), CT_MAX_FRAME, -EPROTO,
	  21 },
	{ "empty field name", CT_BYTES("GET / HTTP/1.1\r\n: x\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 17 },
	{ "bare LF line ends", CT_BYTES("GET / HTTP/1.1\nHost: a\n\n"), CT_MAX_FRAME, -EPROTO, 15 },
	{ "bare CR in a value", CT_BYTES("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n"), CT_MAX_FRAME,
	  -EPROTO, 24 },
	{ "NUL in a value", CT_BYTES("GET / HTTP/1.1\r\nX-A: a\x00\r\n\r\n"), CT_MAX_FRAME,
	  -EPROTO, 23 },
	{ "leading bare LF", CT_BYTES("\nGET / HTTP/1.1\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 1 },
	{ "leading CR alone", CT_BYTES("\r GET / HTTP/1.1\r\n\r\n"), CT_MAX_FRAME, -EPROTO, 2 },
	{ "chunk size not hex",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), CT_MAX_FRAME,
	  -EPROTO, 48 },
	{ "chunk without a size",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n;x\r\n0\r\n\r\n"),
	  CT_MAX_FRAME, -EPROTO, 48 },
	{ "space inside a chunk size",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 0\r\n"), CT_MAX_FRAME,
	  -EPROTO, 50 },
	{ "chunk longer than its size",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n"),
	  CT_MAX_FRAME, -EPROTO, 54 },
	/* with the CRLF check skipped, "0\r\n\r\n" would end the body */
	{ "chunk data not followed by CRLF",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n"),
	  CT_MAX_FRAME, -EPROTO, 54 },
	{ "bare LF after a chunk size",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"),
	  CT_MAX_FRAME, -EPROTO, 49 },
	{ "bad trailer field",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n"),
	  CT_MAX_FRAME, -EPROTO, 53 },
	{ "body over max_frame",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n"), 64, -EMSGSIZE, 0 },
	{ "Content-Length of 30 digits",
	  CT_BYTES("POST / HTTP/1.1\r\nContent-Length: 123456789012345678901234567890\r\n\r\n"),
	  CT_MAX_FRAME, -EMSGSIZE, 0 },
	{ "chunk over max_frame",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n"), 100, -EMSGSIZE,
	  0 },
	{ "chunk size of 24 digits",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\n"),
	  CT_MAX_FRAME, -EMSGSIZE, 0 },
	/* 2^64 + 3: a size that wrapped around would take 3 bytes of data */
	{ "chunk size that wraps around",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\n"
		   "abc\r\n0\r\n\r\n"), CT_MAX_FRAME, -EMSGSIZE, 0 },
	{ "chunks add up over max_frame",
	  CT_BYTES("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "8\r\n01234567\r\n8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n"), 80, -EMSGSIZE, 0 },
	{ "head over max_frame",
	  CT_BYTES("GET /a/long/path HTTP/1.1\r\nHost: example.com\r\n\r\n"), 32, -EMSGSIZE, 32 },
};

START_TEST(test_request_bad)
{
	struct frame_ctx base = ct_ctx(bad_requests[_i].max);
	ct_error(REQ, &base, bad_requests[_i].msg, bad_requests[_i].len, bad_requests[_i].err,
		 bad_requests[_i].name);
	if (bad_requests[_i].refused_at != 0) {
		size_t at = ct_refused_at(REQ, &base, bad_requests[_i].msg, bad_requests[_i].len);
		ck_assert_msg(at == bad_requests[_i].refused_at, "%s: refused at %zu, want %zu",
			      bad_requests[_i].name, at, bad_requests[_i].refused_at);
	}
}
END_TEST

/* A request head of exactly total bytes: a request line, one long field
 * and the empty line; with terminate 0 the final empty line is missing
 * (and total is the bytes there are). */
static uint8_t *long_head(const char *start, size_t total, int terminate)
{
	uint8_t *p = malloc(total);
	ck_assert_ptr_nonnull(p);
	size_t n = strlen(start);
	memcpy(p, start, n);
	memcpy(p + n, "X-Pad: ", 7);
	memset(p + n + 7, 'a', total - n - 7);
	if (terminate)
		memcpy(p + total - 4, "\r\n\r\n", 4);
	return p;
}

static const struct {
	const char *name;
	const char *start;
	int response; /* frame it with the response framer */
	size_t total;
	int terminate;
	ssize_t want; /* 0: the total itself */
} heads[] = {
	{ "request head of 64 KiB", "GET / HTTP/1.1\r\n", 0, HEAD_MAX, 1, 0 },
	{ "request head over 64 KiB", "GET / HTTP/1.1\r\n", 0, HEAD_MAX + 1, 1, -EMSGSIZE },
	{ "64 KiB of head, unfinished", "GET / HTTP/1.1\r\n", 0, HEAD_MAX, 0, -EMSGSIZE },
	{ "just under 64 KiB, unfinished", "GET / HTTP/1.1\r\n", 0, HEAD_MAX - 1, 0, 0 },
	{ "response head of 64 KiB", "HTTP/1.1 204 No Content\r\n", 1, HEAD_MAX, 1, 0 },
	{ "response head over 64 KiB", "HTTP/1.1 204 No Content\r\n", 1, HEAD_MAX + 1, 1,
	  -EMSGSIZE },
};

START_TEST(test_head_cap)
{
	uint8_t *p = long_head(heads[_i].start, heads[_i].total, heads[_i].terminate);
	ssize_t want = heads[_i].want;
	if (want == 0 && heads[_i].terminate)
		want = (ssize_t)heads[_i].total;
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	ssize_t r = ct_call(heads[_i].response ? RESP : REQ, &c, p, heads[_i].total, 0);
	ck_assert_msg(r == want, "%s: gave %zd, want %zd", heads[_i].name, r, want);
	free(p);
}
END_TEST

START_TEST(test_request_truncated_at_eof)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	for (int i = 0; i < CT_COUNT(requests); i++) {
		struct frame_ctx c = base;
		ck_assert_int_eq(ct_call(REQ, &c, requests[i].msg, requests[i].len - 1, 1), 0);
		ck_assert(ct_same_ctx(&c, &base));
	}
}
END_TEST

/* ---- responses ------------------------------------------------------- */

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
	int req_head;    /* the request was HEAD */
	int req_connect; /* the request was CONNECT */
	int close;       /* want close_upstream */
} responses[] = {
	{ "200 with Content-Length",
	  CT_BYTES("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"),
	  0, 0, 0 },
	{ "404 with a body", CT_BYTES("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"),
	  0, 0, 0 },
	/* RFC 9112 §6.3: the fields describe the GET answer, no body follows */
	{ "answer to HEAD", CT_BYTES("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"), 1, 0, 0 },
	{ "chunked answer to HEAD", CT_BYTES("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
	  1, 0, 0 },
	{ "204", CT_BYTES("HTTP/1.1 204 No Content\r\nDate: today\r\n\r\n"), 0, 0, 0 },
	{ "304 with Content-Length",
	  CT_BYTES("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n"), 0, 0,
	  0 },
	{ "100 Continue, then 200",
	  CT_BYTES("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 0,
	  0, 0 },
	{ "103 and 100, then 204",
	  CT_BYTES("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
		   "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"), 0, 0, 0 },
	{ "chunked",
	  CT_BYTES("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "3\r\nabc\r\n10;x=y\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n"), 0, 0, 0 },
	{ "100 Continue, then chunked",
	  CT_BYTES("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
		   "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"), 0, 0, 0 },
	{ "Connection: close",
	  CT_BYTES("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"), 0, 0, 1 },
	{ "HTTP/1.0", CT_BYTES("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"), 0, 0, 1 },
	{ "HTTP/1.0 keep-alive",
	  CT_BYTES("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"), 0, 0,
	  0 },
	{ "no reason phrase", CT_BYTES("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), 0, 0, 0 },
	{ "empty reason phrase", CT_BYTES("HTTP/1.1 500 \r\nContent-Length: 0\r\n\r\n"), 0, 0, 0 },
	/* RFC 9112 §6.3: Transfer-Encoding wins; such a target is not reused */
	{ "chunked and Content-Length",
	  CT_BYTES("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "2\r\nok\r\n0\r\n\r\n"), 0, 0, 1 },
	{ "refused CONNECT",
	  CT_BYTES("HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"), 0, 1, 0 },
};

START_TEST(test_response_splits)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	base.req_head = responses[_i].req_head;
	base.req_connect = responses[_i].req_connect;
	struct frame_ctx c = ct_splits(RESP, &base, responses[_i].msg, responses[_i].len,
				       responses[_i].name);
	ck_assert_msg(c.close_upstream == responses[_i].close, "%s: close_upstream",
		      responses[_i].name);
	ck_assert_int_eq(c.close_client, 0);
}
END_TEST

/* The request framer tells the response framer about HEAD through ctx:
 * the answer's Content-Length then describes a body that never comes. */
START_TEST(test_head_then_response)
{
	static const uint8_t head[] = "HEAD /f HTTP/1.1\r\nHost: a\r\n\r\n";
	static const uint8_t get[] = "GET /f HTTP/1.1\r\nHost: a\r\n\r\n";
	static const uint8_t answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
	struct frame_ctx ctx = ct_ctx(CT_MAX_FRAME);
	ck_assert_int_eq(ct_call(REQ, &ctx, head, sizeof(head) - 1, 0), (ssize_t)sizeof(head) - 1);
	ck_assert_int_eq(ctx.req_head, 1);
	ck_assert_int_eq(ct_call(RESP, &ctx, answer, sizeof(answer) - 1, 0),
			 (ssize_t)sizeof(answer) - 1);

	/* the next request is a GET: the same answer now waits for its body */
	ck_assert_int_eq(ct_call(REQ, &ctx, get, sizeof(get) - 1, 0), (ssize_t)sizeof(get) - 1);
	ck_assert_int_eq(ctx.req_head, 0);
	ck_assert_int_eq(ct_call(RESP, &ctx, answer, sizeof(answer) - 1, 0), 0);
}
END_TEST

static const struct {
	const char *name;
	const uint8_t *a;
	size_t na;
	const uint8_t *b;
	size_t nb;
	int req_head;
} response_pairs[] = {
	{ "two with Content-Length", CT_BYTES("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"),
	  CT_BYTES("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"), 0 },
	{ "100 and 200, then 204",
	  CT_BYTES("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
	  CT_BYTES("HTTP/1.1 204 No Content\r\n\r\n"), 0 },
	{ "chunked, then 304",
	  CT_BYTES("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"),
	  CT_BYTES("HTTP/1.1 304 Not Modified\r\n\r\n"), 0 },
	{ "two answers to HEAD", CT_BYTES("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
	  CT_BYTES("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n"), 1 },
};

START_TEST(test_response_pipelined)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	base.req_head = response_pairs[_i].req_head;
	ct_pair(RESP, &base, response_pairs[_i].a, response_pairs[_i].na, response_pairs[_i].b,
		response_pairs[_i].nb, response_pairs[_i].name);
}
END_TEST

/* Bodies that run until the target closes (RFC 9112 §6.3 items 3 and 7). */
static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
	size_t head; /* where the (last) head ends */
} until_close[] = {
#define UNTIL_CLOSE(name, head, body) { name, CT_BYTES(head body), sizeof(head) - 1 }
	UNTIL_CLOSE("no length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
		    "streamed until the end"),
	UNTIL_CLOSE("HTTP/1.0, no length", "HTTP/1.0 200 OK\r\n\r\n", "old server"),
	UNTIL_CLOSE("gzip without chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		    "\x1f\x8b\x08"),
	UNTIL_CLOSE("chunked not last", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
		    "3\r\nabc\r\n0\r\n\r\n"),
	UNTIL_CLOSE("after 100 Continue", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
		    "data"),
	UNTIL_CLOSE("empty body", "HTTP/1.1 200 OK\r\n\r\n", ""),
#undef UNTIL_CLOSE
};

START_TEST(test_response_until_close)
{
	const uint8_t *msg = until_close[_i].msg;
	size_t n = until_close[_i].len;
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME), c;

	for (size_t k = 0; k <= n; k++) {
		c = base;
		ck_assert_int_eq(ct_call(RESP, &c, msg, k, 0), 0);
		ck_assert(ct_same_ctx(&c, &base));
		c = base;
		ssize_t r = ct_call(RESP, &c, msg, k, 1);
		if (k < until_close[_i].head) {
			ck_assert_int_eq(r, 0); /* a broken head stays broken */
			ck_assert(ct_same_ctx(&c, &base));
		} else {
			ck_assert_int_eq(r, (ssize_t)k);
			ck_assert_int_eq(c.close_upstream, 1);
		}
	}
	/* exactly max_frame is a frame; one byte over is not */
	c = ct_ctx(n);
	ck_assert_int_eq(ct_call(RESP, &c, msg, n, 1), (ssize_t)n);
	c = ct_ctx(n - 1);
	ck_assert_int_eq(ct_call(RESP, &c, msg, n, 1), -EMSGSIZE);
	c = ct_ctx(n - 1);
	ck_assert_int_eq(ct_call(RESP, &c, msg, n - 1, 0), -EMSGSIZE);
}
END_TEST

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
	size_t max;
	int req_connect;
	ssize_t err;
} bad_responses[] = {
	{ "101 Switching Protocols",
	  CT_BYTES("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		   "Connection: Upgrade\r\n\r\n"), CT_MAX_FRAME, 0, -EPROTO },
	{ "101 after 100",
	  CT_BYTES("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n"),
	  CT_MAX_FRAME, 0, -EPROTO },
	{ "2xx to CONNECT", CT_BYTES("HTTP/1.1 200 Connection established\r\n\r\n"), CT_MAX_FRAME, 1,
	  -EPROTO },
	{ "two-digit status", CT_BYTES("HTTP/1.1 20 OK\r\n\r\n"), CT_MAX_FRAME, 0, -EPROTO },
	{ "four-digit status", CT_BYTES("HTTP/1.1 2000 OK\r\n\r\n"), CT_MAX_FRAME, 0, -EPROTO },
	{ "status 099", CT_BYTES("HTTP/1.1 099 Low\r\n\r\n"), CT_MAX_FRAME, 0, -EPROTO },
	{ "status 600", CT_BYTES("HTTP/1.1 600 High\r\n\r\n"), CT_MAX_FRAME, 0, -EPROTO },
	{ "HTTP/2", CT_BYTES("HTTP/2 200\r\n\r\n"), CT_MAX_FRAME, 0, -EPROTO },
	{ "ICY", CT_BYTES("ICY 200 OK\r\n\r\n"), CT_MAX_FRAME, 0, -EPROTO },
	{ "leading empty line", CT_BYTES("\r\nHTTP/1.1 204 No Content\r\n\r\n"), CT_MAX_FRAME, 0,
	  -EPROTO },
	{ "Modbus answer", CT_BYTES("\x00\x01\x00\x00\x00\x03\x11\x83\x02"), CT_MAX_FRAME, 0,
	  -EPROTO },
	{ "Content-Length lines disagree",
	  CT_BYTES("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"),
	  CT_MAX_FRAME, 0, -EPROTO },
	{ "obs-fold", CT_BYTES("HTTP/1.1 200 OK\r\nX-A: a\r\n\tb\r\nContent-Length: 0\r\n\r\n"),
	  CT_MAX_FRAME, 0, -EPROTO },
	{ "bad chunk",
	  CT_BYTES("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"),
	  CT_MAX_FRAME, 0, -EPROTO },
	{ "body over max_frame", CT_BYTES("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), 64, 0,
	  -EMSGSIZE },
	{ "interim and final over max_frame",
	  CT_BYTES("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
	  40, 0, -EMSGSIZE },
	{ "chunks over max_frame",
	  CT_BYTES("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n"), 64, 0, -EMSGSIZE },
};

START_TEST(test_response_bad)
{
	struct frame_ctx base = ct_ctx(bad_responses[_i].max);
	base.req_connect = bad_responses[_i].req_connect;
	ct_error(RESP, &base, bad_responses[_i].msg, bad_responses[_i].len, bad_responses[_i].err,
		 bad_responses[_i].name);
}
END_TEST

START_TEST(test_response_truncated_at_eof)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	for (int i = 0; i < CT_COUNT(responses); i++) {
		struct frame_ctx c = base;
		c.req_head = responses[i].req_head;
		ck_assert_int_eq(ct_call(RESP, &c, responses[i].msg, responses[i].len - 1, 1), 0);
		ck_assert_int_eq(c.close_upstream, 0);
	}
}
END_TEST

/* ---- error replies --------------------------------------------------- */

static const struct {
	enum codec_err err;
	int status;
	int close; /* carries Connection: close */
} replies[] = {
	{ CODEC_ERR_BAD_REQUEST, 400, 1 },  { CODEC_ERR_TOO_LARGE, 413, 1 },
	{ CODEC_ERR_UNSUPPORTED, 501, 1 },  { CODEC_ERR_POLICY, 403, 1 },
	{ CODEC_ERR_NO_UPSTREAM, 503, 0 },  { CODEC_ERR_TIMEOUT, 504, 0 },
	{ CODEC_ERR_BAD_GATEWAY, 502, 0 },
};

static const uint8_t get_req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/* Checks out[0..n) is one whole HTTP response with that status, framed as
 * the answer to a HEAD request or not; returns where its body starts. */
static size_t check_reply(const uint8_t *out, size_t n, int status, int req_head, int close)
{
	char line[32];
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	c.req_head = req_head;
	ck_assert_int_eq(ct_call(RESP, &c, out, n, 0), (ssize_t)n);
	ck_assert_int_eq(c.close_upstream, close); /* Connection: close, as the framer reads it */
	int k = snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
	ck_assert_mem_eq(out, line, (size_t)k);
	const uint8_t *end = memmem(out, n, "\r\n\r\n", 4);
	ck_assert_ptr_nonnull(end);
	return (size_t)(end + 4 - out);
}

START_TEST(test_error_reply)
{
	struct frame_ctx ctx = ct_ctx(CT_MAX_FRAME);
	uint8_t out[512];
	error_fn fn = codec_http.error_reply;
	size_t n = fn(&ctx, get_req, sizeof(get_req) - 1, replies[_i].err, out, sizeof(out));
	ck_assert_uint_gt(n, 0);
	size_t body = check_reply(out, n, replies[_i].status, 0, replies[_i].close);
	const char who[] = "tcp-multiplexer: ";
	ck_assert_uint_gt(n - body, sizeof(who));
	ck_assert_mem_eq(out + body, who, sizeof(who) - 1);
	ck_assert_uint_eq(out[n - 1], '\n');

	/* the same without a request (an error found before one was whole) */
	uint8_t again[512];
	ck_assert_uint_eq(fn(&ctx, NULL, 0, replies[_i].err, again, sizeof(again)), n);
	ck_assert_mem_eq(again, out, n);

	/* the room it needs, and not a byte less */
	ck_assert_uint_eq(fn(&ctx, get_req, sizeof(get_req) - 1, replies[_i].err, again, n), n);
	ck_assert_uint_eq(fn(&ctx, get_req, sizeof(get_req) - 1, replies[_i].err, again, n - 1), 0);
}
END_TEST

/* An answer to HEAD has no body; 400, 413 and 501 answer a request that
 * was never whole, so a HEAD before it must not take their body away. */
START_TEST(test_error_reply_head)
{
	static const uint8_t head_req[] = "HEAD / HTTP/1.1\r\n\r\n";
	struct frame_ctx ctx = ct_ctx(CT_MAX_FRAME);
	uint8_t out[512];
	ctx.req_head = 1;
	size_t n = codec_http.error_reply(&ctx, head_req, sizeof(head_req) - 1, replies[_i].err,
					  out, sizeof(out));
	int answers_head = replies[_i].status >= 502 || replies[_i].status == 403;
	size_t body = check_reply(out, n, replies[_i].status, answers_head, replies[_i].close);
	ck_assert_uint_eq(body == n, answers_head);
}
END_TEST

START_TEST(test_error_reply_close_client)
{
	struct frame_ctx ctx = ct_ctx(CT_MAX_FRAME);
	uint8_t out[512];
	ctx.close_client = 1; /* the client asked to close: say so */
	size_t n = codec_http.error_reply(&ctx, get_req, sizeof(get_req) - 1, CODEC_ERR_NO_UPSTREAM,
					  out, sizeof(out));
	check_reply(out, n, 503, 0, 1);
	ck_assert_uint_eq(codec_http.error_reply(&ctx, NULL, 0, (enum codec_err)77, out, sizeof(out)),
			  0);
}
END_TEST

START_TEST(test_registered)
{
	ck_assert_ptr_eq(codec_find("http"), &codec_http);
	ck_assert_ptr_nonnull(codec_http.error_reply);
	ck_assert_int_eq(codec_http.tagged, 0);
	ck_assert_uint_eq(codec_http.initial_buf, 4096);
	ck_assert_ptr_null(strchr(codec_http.summary, '\n'));
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("codec_http");
	TCase *tc;

	tc = tcase_create("registered");
	tcase_add_test(tc, test_registered);
	suite_add_tcase(s, tc);

	tc = tcase_create("requests at every split point");
	tcase_add_loop_test(tc, test_request_splits, 0, CT_COUNT(requests));
	suite_add_tcase(s, tc);

	tc = tcase_create("pipelined requests");
	tcase_add_loop_test(tc, test_request_pipelined, 0, CT_COUNT(requests));
	suite_add_tcase(s, tc);

	tc = tcase_create("field name case and order");
	tcase_add_loop_test(tc, test_request_case_and_order, 0, CT_COUNT(variants));
	suite_add_tcase(s, tc);

	tc = tcase_create("bad and refused requests");
	tcase_add_loop_test(tc, test_request_bad, 0, CT_COUNT(bad_requests));
	suite_add_tcase(s, tc);

	tc = tcase_create("truncated requests at eof");
	tcase_add_test(tc, test_request_truncated_at_eof);
	suite_add_tcase(s, tc);

	tc = tcase_create("64 KiB head cap");
	tcase_add_loop_test(tc, test_head_cap, 0, CT_COUNT(heads));
	suite_add_tcase(s, tc);

	tc = tcase_create("responses at every split point");
	tcase_add_loop_test(tc, test_response_splits, 0, CT_COUNT(responses));
	suite_add_tcase(s, tc);

	tc = tcase_create("HEAD, then its answer");
	tcase_add_test(tc, test_head_then_response);
	suite_add_tcase(s, tc);

	tc = tcase_create("pipelined responses");
	tcase_add_loop_test(tc, test_response_pipelined, 0, CT_COUNT(response_pairs));
	suite_add_tcase(s, tc);

	tc = tcase_create("responses ending at close");
	tcase_add_loop_test(tc, test_response_until_close, 0, CT_COUNT(until_close));
	suite_add_tcase(s, tc);

	tc = tcase_create("bad responses");
	tcase_add_loop_test(tc, test_response_bad, 0, CT_COUNT(bad_responses));
	suite_add_tcase(s, tc);

	tc = tcase_create("truncated responses at eof");
	tcase_add_test(tc, test_response_truncated_at_eof);
	suite_add_tcase(s, tc);

	tc = tcase_create("error replies");
	tcase_add_loop_test(tc, test_error_reply, 0, CT_COUNT(replies));
	tcase_add_loop_test(tc, test_error_reply_head, 0, CT_COUNT(replies));
	tcase_add_test(tc, test_error_reply_close_client);
	suite_add_tcase(s, tc);
	return s;
}
