/* Tests for src/codec_http.c: HTTP/1.1 request and response framing (RFC
 * 9112) and the local error answers. */
#include "config.h"
#include "codec_test.h"

#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

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

static const struct ct_bad bad_requests[] = {
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
	ct_check_bad(REQ, &bad_requests[_i]);
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
	/* an answer that ends its connection ends the client's (RFC 9112 §9.6) */
	ck_assert_msg(c.close_client == responses[_i].close, "%s: close_client", responses[_i].name);
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


/* ---- resuming where the framer stopped ------------------------------- */

/* Feeds msg to one ctx a step of bytes at a time, as the buffer does, and
 * checks each call gives what a fresh ctx gives for the same bytes, with
 * the same flags; stops at the first frame or error. */
static void resumed_is_fresh(frame_fn fn, const struct frame_ctx *base, const uint8_t *msg, size_t n,
			     size_t step, int eof, const char *what)
{
	struct frame_ctx c = *base;
	for (size_t k = step < n ? step : n;; k = k + step < n ? k + step : n) {
		struct frame_ctx fresh = *base;
		ssize_t want = ct_call(fn, &fresh, msg, k, eof && k == n);
		ssize_t got = ct_call(fn, &c, msg, k, eof && k == n);
		ck_assert_msg(got == want, "%s: %zu of %zu bytes by %zu: resumed %zd, fresh %zd", what, k,
			      n, step, got, want);
		if (got != 0) {
			ck_assert_msg(ct_same_ctx(&c, &fresh), "%s: resumed flags differ", what);
			ck_assert_uint_eq(c.interim_len, fresh.interim_len);
			return;
		}
		if (k == n)
			return;
	}
}

static const size_t steps[] = { 1, 2, 3, 7, 120 };

START_TEST(test_resume_requests)
{
	for (int s = 0; s < CT_COUNT(steps); s++) {
		struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
		for (int i = 0; i < CT_COUNT(requests); i++)
			resumed_is_fresh(REQ, &base, requests[i].msg, requests[i].len, steps[s], 0,
					 requests[i].name);
		for (int i = 0; i < CT_COUNT(bad_requests); i++) {
			base = ct_ctx(bad_requests[i].max);
			resumed_is_fresh(REQ, &base, bad_requests[i].msg, bad_requests[i].len, steps[s],
					 0, bad_requests[i].name);
		}
	}
}
END_TEST

START_TEST(test_resume_responses)
{
	for (int s = 0; s < CT_COUNT(steps); s++) {
		for (int i = 0; i < CT_COUNT(responses); i++) {
			struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
			base.req_head = responses[i].req_head;
			base.req_connect = responses[i].req_connect;
			resumed_is_fresh(RESP, &base, responses[i].msg, responses[i].len, steps[s], 0,
					 responses[i].name);
		}
		for (int i = 0; i < CT_COUNT(bad_responses); i++) {
			struct frame_ctx base = ct_ctx(bad_responses[i].max);
			base.req_connect = bad_responses[i].req_connect;
			resumed_is_fresh(RESP, &base, bad_responses[i].msg, bad_responses[i].len,
					 steps[s], 0, bad_responses[i].name);
		}
		for (int i = 0; i < CT_COUNT(until_close); i++) {
			struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
			resumed_is_fresh(RESP, &base, until_close[i].msg, until_close[i].len, steps[s],
					 1, until_close[i].name);
		}
	}
}
END_TEST

/* A frame returned, or an error, leaves nothing behind: the next frame
 * (a shorter one here) is framed from its start. */
START_TEST(test_resume_reset)
{
	static const uint8_t post[] = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
	static const uint8_t get[] = "GET / HTTP/1.1\r\n\r\n";
	static const uint8_t bad[] = "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n";
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	ck_assert_int_eq(ct_call(REQ, &c, post, 30, 0), 0);
	ck_assert_int_eq(ct_call(REQ, &c, post, sizeof(post) - 1, 0), (ssize_t)sizeof(post) - 1);
	ck_assert_int_eq(ct_call(REQ, &c, get, 10, 0), 0);
	ck_assert_int_eq(ct_call(REQ, &c, get, sizeof(get) - 1, 0), (ssize_t)sizeof(get) - 1);
	ck_assert_int_eq(ct_call(REQ, &c, bad, sizeof(bad) - 1, 0), -EPROTO);
	ck_assert_int_eq(ct_call(REQ, &c, get, sizeof(get) - 1, 0), (ssize_t)sizeof(get) - 1);
	/* a caller that gave a frame up restarts the framer */
	ck_assert_int_eq(ct_call(REQ, &c, post, 30, 0), 0);
	codec_restart(&c);
	ck_assert_int_eq(ct_call(REQ, &c, get, sizeof(get) - 1, 0), (ssize_t)sizeof(get) - 1);
}
END_TEST

/* A chunked message of 1-byte chunks, about n bytes long (head
 * included; *len gets the length), in a fresh mapping of whole pages;
 * *map_len gets the mapping's size. */
static uint8_t *one_byte_chunks(const char *head, size_t n, size_t *len, size_t *map_len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	*map_len = (n + page - 1) / page * page;
	uint8_t *p = mmap(NULL, *map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	size_t k = strlen(head);
	memcpy(p, head, k);
	while (k + 6 + 5 <= n) {
		memcpy(p + k, "1\r\nx\r\n", 6);
		k += 6;
	}
	memcpy(p + k, "0\r\n\r\n", 5);
	*len = k + 5;
	return p;
}

/* Issue 14, point 5: one client sending 120-byte segments of 1-byte
 * chunks. The buffer calls the framer with all the bytes so far each
 * time; resuming, the framer examines each byte about once. */
START_TEST(test_linear_count)
{
	static const char *const starts[] = {
		"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	};
	for (int side = 0; side < 2; side++) {
		size_t n, map_len;
		uint8_t *p = one_byte_chunks(starts[side], 600000, &n, &map_len);
		struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
		ssize_t r = 0;
		size_t k = 0, calls = 0;
		while (r == 0 && k < n) { /* bounded by n / 120 passes */
			k = k + 120 < n ? k + 120 : n;
			r = (side ? RESP : REQ)(&c, p, k, 0);
			calls++;
		}
		ck_assert_int_eq(r, (ssize_t)n);
		/* each byte once (chunk data a step per run), plus one step per call */
		ck_assert_msg(c.scanned >= n / 2 && c.scanned <= n + calls, "%s: %llu bytes examined for %zu", side ? "response" : "request",
			      (unsigned long long)c.scanned, n);
		munmap(p, map_len);
	}
}
END_TEST

/* The same proof without the framer's own count: every page the framer
 * has examined (but the last one) is made unreadable before the next
 * call, so a framer that rescans from the start faults. */
START_TEST(test_linear_no_rescan)
{
	size_t n, map_len, page = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t *p = one_byte_chunks("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
				     200000, &n, &map_len);
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	ssize_t r = 0;
	size_t k = 0;
	while (r == 0 && k < n) { /* bounded by n / 120 passes */
		size_t seen = k > page ? (k - page) / page * page : 0;
		if (seen > 0)
			ck_assert_int_eq(mprotect(p, seen, PROT_NONE), 0);
		k = k + 120 < n ? k + 120 : n;
		r = REQ(&c, p, k, 0);
	}
	ck_assert_int_eq(r, (ssize_t)n);
	munmap(p, map_len);
}
END_TEST

/* ---- lenient answers: bare LF (RFC 9112 §2.2) --------------------------- */

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
	int close;  /* want close_upstream and close_client */
} lf_responses[] = {
	{ "all bare LF", CT_BYTES("HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok"), 0 },
	{ "no reason, bare LF", CT_BYTES("HTTP/1.1 204\n\n"), 0 },
	{ "empty line CRLF after LF fields", CT_BYTES("HTTP/1.1 200 OK\nContent-Length: 1\n\r\nx"), 0 },
	/* what python3 -m http.server --cgi sends for a script using print() */
	{ "CGI output",
	  CT_BYTES("HTTP/1.0 200 Script output follows\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\n"
		   "Date: Tue, 01 Dec 2026 00:00:00 GMT\r\nContent-Type: text/plain\nContent-Length: 3\n\nhi\n"),
	  1 },
	{ "chunked, bare LF", CT_BYTES("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"
				       "3\nabc\n2;x=y\nde\r\n0\nX-T: 1\n\n"), 0 },
	{ "100 with bare LF, then 200",
	  CT_BYTES("HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\nContent-Length: 0\n\n"), 0 },
};

START_TEST(test_response_bare_lf)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	struct frame_ctx c = ct_splits(RESP, &base, lf_responses[_i].msg, lf_responses[_i].len,
				       lf_responses[_i].name);
	ck_assert_int_eq(c.close_upstream, lf_responses[_i].close);
	ck_assert_int_eq(c.close_client, lf_responses[_i].close);
	for (int s = 0; s < CT_COUNT(steps); s++)
		resumed_is_fresh(RESP, &base, lf_responses[_i].msg, lf_responses[_i].len, steps[s], 0,
				 lf_responses[_i].name);
}
END_TEST

/* A bare CR is still no line end, in answers either; requests stay
 * strict (bad_requests has their bare LF cases). */
static const struct ct_msg cr_responses[] = {
	{ "bare CR ends the status line", CT_BYTES("HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n") },
	{ "bare CR in a value", CT_BYTES("HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n") },
	{ "bare CR ends the head", CT_BYTES("HTTP/1.1 200 OK\nContent-Length: 0\n\rX") },
	{ "bare CR after a chunk size",
	  CT_BYTES("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n1\rx\n0\n\n") },
	{ "bare CR after chunk data",
	  CT_BYTES("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n1\nx\r0\n\n") },
	{ "obs-fold with LF", CT_BYTES("HTTP/1.1 200 OK\nX-A: a\n b\nContent-Length: 0\n\n") },
};

START_TEST(test_response_bare_cr)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	ct_error(RESP, &base, cr_responses[_i].msg, cr_responses[_i].len, -EPROTO,
		 cr_responses[_i].name);
}
END_TEST

/* ---- content where it has no meaning (issue 14, point 6) --------------- */

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
	ssize_t want;  /* the frame length, or the error */
	size_t head;   /* refused once this many bytes are there */
} body_methods[] = {
	{ "GET with a body",
	  CT_BYTES("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n"
		   "GET /admin HTTP/1.1\r\nX-Ignore: 12345\r\n\r\n"), -EPROTO, 47 },
	{ "HEAD with a body", CT_BYTES("HEAD / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"), -EPROTO, 38 },
	{ "DELETE with a body", CT_BYTES("DELETE /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"), -EPROTO, 41 },
	{ "TRACE with a body", CT_BYTES("TRACE / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"), -EPROTO, 39 },
	{ "GET, chunked", CT_BYTES("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), -EPROTO, 46 },
	{ "GET with Content-Length 0", CT_BYTES("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 37, 0 },
	{ "POST with a body", CT_BYTES("POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"), 39, 0 },
	{ "OPTIONS with a body", CT_BYTES("OPTIONS * HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"), 42, 0 },
	/* methods are case-sensitive: "get" is some other method */
	{ "get with a body", CT_BYTES("get / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"), 38, 0 },
};

START_TEST(test_body_without_meaning)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	const uint8_t *msg = body_methods[_i].msg;
	size_t n = body_methods[_i].len;
	if (body_methods[_i].want > 0) {
		ck_assert_uint_eq((size_t)body_methods[_i].want, n);
		ct_splits(REQ, &base, msg, n, body_methods[_i].name);
		return;
	}
	ct_error(REQ, &base, msg, n, body_methods[_i].want, body_methods[_i].name);
	/* refused with its head, before any of the body is there */
	ck_assert_uint_eq(ct_refused_at(REQ, &base, msg, n), body_methods[_i].head);
}
END_TEST

/* ---- Expect: 100-continue and interim answers (issue 14, point 3) ------ */

static const uint8_t expect_req[] = "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
				    "Content-Length: 4\r\n\r\ndata";
#define EXPECT_HEAD (sizeof(expect_req) - 1 - 4)

START_TEST(test_expect_wanted)
{
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	for (size_t k = 1; k < EXPECT_HEAD; k++) {
		ck_assert_int_eq(REQ(&c, expect_req, k, 0), 0);
		ck_assert_int_eq(c.expect, CODEC_EXPECT_NONE);
	}
	/* the head is whole, the body is not: answer now */
	ck_assert_int_eq(REQ(&c, expect_req, EXPECT_HEAD, 0), 0);
	ck_assert_int_eq(c.expect, CODEC_EXPECT_WANTED);
	c.expect = CODEC_EXPECT_ANSWERED;
	ck_assert_int_eq(REQ(&c, expect_req, EXPECT_HEAD + 2, 0), 0);
	ck_assert_int_eq(c.expect, CODEC_EXPECT_ANSWERED);
	ck_assert_int_eq(REQ(&c, expect_req, EXPECT_HEAD + 4, 0), (ssize_t)EXPECT_HEAD + 4);
	ck_assert_int_eq(c.expect, CODEC_EXPECT_ANSWERED);

	/* asked once: the framer does not ask again while the server has not answered */
	c = ct_ctx(CT_MAX_FRAME);
	ck_assert_int_eq(REQ(&c, expect_req, EXPECT_HEAD + 1, 0), 0);
	ck_assert_int_eq(c.expect, CODEC_EXPECT_WANTED);
}
END_TEST

static const struct ct_msg no_expect[] = {
	{ "body already there", CT_BYTES("PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx") },
	{ "no body", CT_BYTES("PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n") },
	{ "HTTP/1.0", CT_BYTES("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx") },
	{ "no expectation", CT_BYTES("PUT / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx") },
	{ "other expectation", CT_BYTES("PUT / HTTP/1.1\r\nExpect: 100-continue-later\r\nContent-Length: 1\r\n\r\nx") },
};

START_TEST(test_expect_not_wanted)
{
	const uint8_t *msg = no_expect[_i].msg;
	size_t n = no_expect[_i].len;
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	ck_assert_int_eq(REQ(&c, msg, n, 0), (ssize_t)n);
	ck_assert_int_eq(c.expect, CODEC_EXPECT_NONE);
	if (msg[n - 1] == 'x' && memcmp(msg + n - 5, "\r\n\r\n", 4) == 0) {
		c = ct_ctx(CT_MAX_FRAME);
		ck_assert_int_eq(REQ(&c, msg, n - 1, 0), 0);
		int wanted = _i == 0;
		ck_assert_int_eq(c.expect, wanted ? CODEC_EXPECT_WANTED : CODEC_EXPECT_NONE);
	}
}
END_TEST

/* Chunked content: the head is enough too. */
START_TEST(test_expect_chunked)
{
	static const uint8_t req[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
				     "Expect: 100-continue\r\n\r\n1\r\nx\r\n0\r\n\r\n";
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	ck_assert_int_eq(REQ(&c, req, sizeof(req) - 1 - 11, 0), 0);
	ck_assert_int_eq(c.expect, CODEC_EXPECT_WANTED);
}
END_TEST

static const struct {
	const char *name;
	const uint8_t *msg;
	size_t len;
	size_t interim;
} interims[] = {
	{ "100, then 200",
	  CT_BYTES("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 25 },
	{ "two 100s, then 204",
	  CT_BYTES("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\nX: y\r\n\r\n"
		   "HTTP/1.1 204 No Content\r\n\r\n"), 56 },
	{ "100 with bare LF", CT_BYTES("HTTP/1.1 100 Continue\n\nHTTP/1.1 204 No Content\n\n"), 23 },
	{ "103 first", CT_BYTES("HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
				"HTTP/1.1 204 No Content\r\n\r\n"), 0 },
	{ "100, then 103", CT_BYTES("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n"
				    "HTTP/1.1 204 No Content\r\n\r\n"), 25 },
	{ "no interim", CT_BYTES("HTTP/1.1 204 No Content\r\n\r\n"), 0 },
};

START_TEST(test_interim_len)
{
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	struct frame_ctx c = ct_splits(RESP, &base, interims[_i].msg, interims[_i].len, interims[_i].name);
	ck_assert_uint_eq(c.interim_len, interims[_i].interim);
	if (interims[_i].interim > 0)
		ck_assert_uint_eq(interims[_i].msg[c.interim_len - 1], '\n');
	ck_assert_mem_eq(interims[_i].msg + c.interim_len, "HTTP/1.1 ", 9);
}
END_TEST

START_TEST(test_expect_reply)
{
	ck_assert_ptr_nonnull(codec_http.expect_reply);
	size_t n = strlen(codec_http.expect_reply);
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	/* our own 100 is one interim answer that the framer can read */
	char both[128];
	snprintf(both, sizeof both, "%sHTTP/1.1 204 No Content\r\n\r\n", codec_http.expect_reply);
	ck_assert_int_eq(RESP(&c, (const uint8_t *)both, strlen(both), 0), (ssize_t)strlen(both));
	ck_assert_uint_eq(c.interim_len, n);
}
END_TEST


/* ---- streaming answers larger than the buffer (issue 14, point 4) ------ */

#define WINDOW 4096 /* the caller's buffer, and --max-frame */

/* An answer with a body of n bytes, framed as kind says; *len gets its
 * length. */
static uint8_t *big_answer(int kind, size_t n, size_t *len)
{
	uint8_t *p = malloc(n * 2 + 1024);
	ck_assert_ptr_nonnull(p);
	size_t k = 0;
	if (kind == 0)
		k = (size_t)sprintf((char *)p, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
	else if (kind == 1)
		k = (size_t)sprintf((char *)p, "HTTP/1.1 100 Continue\r\n\r\n"
					       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	else
		k = (size_t)sprintf((char *)p, "HTTP/1.0 200 OK\r\n\r\n");
	for (size_t done = 0, c = 1; done < n; done += c, c = c * 3 % 7001 + 1) {
		if (c > n - done)
			c = n - done;
		if (kind == 1)
			k += (size_t)sprintf((char *)p + k, "%zx\r\n", c);
		for (size_t i = 0; i < c; i++)
			p[k++] = (uint8_t)(done + i);
		if (kind == 1)
			k += (size_t)sprintf((char *)p + k, "\r\n");
	}
	if (kind == 1)
		k += (size_t)sprintf((char *)p + k, "0\r\nX-T: 1\r\n\r\n");
	*len = k;
	return p;
}

/* Feeds msg through a WINDOW-byte buffer the way a streaming caller would:
 * frame, forward what is settled, drop it, read more. Returns what the
 * framer finally said, with the bytes forwarded in *fwd (checked to be
 * msg's own, in order). */
static ssize_t stream_through(const uint8_t *msg, size_t n, size_t *fwd)
{
	uint8_t buf[WINDOW];
	size_t have = 0, read = 0;
	struct frame_ctx c = ct_ctx(WINDOW);
	c.stream = 1;
	*fwd = 0;
	for (int pass = 0; pass < 1000000; pass++) { /* each pass moves bytes, or ends */
		size_t k = WINDOW - have < n - read ? WINDOW - have : n - read;
		memcpy(buf + have, msg + read, k);
		have += k;
		read += k;
		ssize_t r = RESP(&c, buf, have, read == n);
		if (r != 0)
			return r > 0 ? (ssize_t)(*fwd += (size_t)r) : r;
		size_t settled = codec_http.settled(&c, have);
		/* the leading 100 is known with the head, before any is forwarded */
		ck_assert_uint_eq(c.interim_len, settled > 0 && *fwd == 0 && msg[9] == '1' ? 25 : 0);
		if (settled == 0 && k == 0)
			return 0; /* stuck: nothing more to read, nothing to forward */
		ck_assert(memcmp(buf, msg + *fwd, settled) == 0);
		*fwd += settled;
		memmove(buf, buf + settled, have - settled);
		have -= settled;
		codec_http.shift(&c, settled);
	}
	return 0;
}

START_TEST(test_stream_big_answers)
{
	for (int kind = 0; kind < 3; kind++) {
		size_t n, fwd;
		uint8_t *msg = big_answer(kind, 3 * 1024 * 1024 + 17, &n);
		ck_assert_int_eq(stream_through(msg, n, &fwd), (ssize_t)fwd);
		ck_assert_uint_eq(fwd, n);
		/* the same without streaming is over --max-frame */
		struct frame_ctx c = ct_ctx(WINDOW);
		ck_assert_int_eq(RESP(&c, msg, WINDOW, 0), -EMSGSIZE);
		free(msg);
	}
}
END_TEST

/* The head is never settled (it may still be refused), and stays capped;
 * a bad chunk in the middle of a streamed body is still an error. */
START_TEST(test_stream_limits)
{
	static const uint8_t head[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
	struct frame_ctx c = ct_ctx(WINDOW);
	c.stream = 1;
	ck_assert_int_eq(RESP(&c, head, sizeof(head) - 2, 0), 0);
	ck_assert_uint_eq(codec_http.settled(&c, sizeof(head) - 2), 0);
	ck_assert_int_eq(RESP(&c, head, sizeof(head) - 1, 0), 0);
	ck_assert_uint_eq(codec_http.settled(&c, sizeof(head) - 1), sizeof(head) - 1);

	size_t n, fwd;
	uint8_t *msg = big_answer(1, 100000, &n);
	uint8_t *bad = memmem(msg + 50000, n - 50000, "\r\n", 2);
	ck_assert_ptr_nonnull(bad);
	bad[0] = 'X';
	ck_assert_int_eq(stream_through(msg, n, &fwd), -EPROTO);
	ck_assert_uint_lt(fwd, n);
	free(msg);

	uint8_t *p = long_head("HTTP/1.1 200 OK\r\n", HEAD_MAX + 1, 1);
	c = ct_ctx(CT_MAX_FRAME);
	c.stream = 1;
	ck_assert_int_eq(RESP(&c, p, HEAD_MAX + 1, 0), -EMSGSIZE);
	free(p);
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

/* Issue 14: resuming, lenient answers, content without meaning,
 * 100-continue, streaming. */
static void add_issue14_cases(Suite *s)
{
	TM_LOOPS(s, "resuming where it stopped", 0, TM_ONCE(test_resume_requests),
		 TM_ONCE(test_resume_responses), TM_ONCE(test_resume_reset),
		 TM_ONCE(test_linear_count), TM_ONCE(test_linear_no_rescan));
	TM_LOOPS(s, "answers with bare LF", 0, TM_LOOP(test_response_bare_lf, lf_responses),
		 TM_LOOP(test_response_bare_cr, cr_responses));
	TM_LOOPS(s, "content where it has no meaning", 0,
		 TM_LOOP(test_body_without_meaning, body_methods));
	TM_LOOPS(s, "100-continue", 0, TM_ONCE(test_expect_wanted),
		 TM_LOOP(test_expect_not_wanted, no_expect), TM_ONCE(test_expect_chunked),
		 TM_LOOP(test_interim_len, interims), TM_ONCE(test_expect_reply));
	TM_CASE(s, "streaming answers", 0, test_stream_big_answers, test_stream_limits);
}

Suite *make_suite(void)
{
	Suite *s = suite_create("codec_http");
	TM_CASE(s, "registered", 0, test_registered);
	TM_LOOPS(s, "requests at every split point", 0, TM_LOOP(test_request_splits, requests));
	TM_LOOPS(s, "pipelined requests", 0, TM_LOOP(test_request_pipelined, requests));
	TM_LOOPS(s, "field name case and order", 0, TM_LOOP(test_request_case_and_order, variants));
	TM_LOOPS(s, "bad and refused requests", 0, TM_LOOP(test_request_bad, bad_requests));
	TM_CASE(s, "truncated requests at eof", 0, test_request_truncated_at_eof);
	TM_LOOPS(s, "64 KiB head cap", 0, TM_LOOP(test_head_cap, heads));
	TM_LOOPS(s, "responses at every split point", 0, TM_LOOP(test_response_splits, responses));
	TM_CASE(s, "HEAD, then its answer", 0, test_head_then_response);
	TM_LOOPS(s, "pipelined responses", 0, TM_LOOP(test_response_pipelined, response_pairs));
	TM_LOOPS(s, "responses ending at close", 0, TM_LOOP(test_response_until_close, until_close));
	TM_LOOPS(s, "bad responses", 0, TM_LOOP(test_response_bad, bad_responses));
	TM_CASE(s, "truncated responses at eof", 0, test_response_truncated_at_eof);
	add_issue14_cases(s);
	TM_LOOPS(s, "error replies", 0, TM_LOOP(test_error_reply, replies),
		 TM_LOOP(test_error_reply_head, replies), TM_ONCE(test_error_reply_close_client));
	return s;
}
