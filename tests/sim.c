/* Simulated targets: an acceptor thread and one thread per connection, each
 * framing requests on its own and answering with a deterministic reply. */
#include "config.h"
#include "sim.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SIM_STACK (256 * 1024)
#define SIM_BUF_START 4096
#define SIM_MODBUS_MAX 260
#define SIM_RTU_MAX 256         /* MODBUS over serial line v1.02, 2.5.1 */
#define SIM_RTU_IN_MAX 300      /* 15/16 with a (bogus) byte count of 255 */
#define SIM_LINE_MAX (64 * 1024)
#define SIM_ISO8583_MAX (2 + 65535)
#define SIM_MPU_MAX (4 + 9999)
#define SIM_HTTP_HEAD_MAX (64 * 1024)
#define SIM_HTTP_BODY_MAX (1024 * 1024)
#define SIM_HTTP_CHUNK_LINE_MAX 1024
#define SIM_REVIVE_MS 2000
#define SIM_FAULT_POLL_MS 200   /* how soon a waiting connection sees sim_set_faults */
#define SIM_UNSOLICITED_UNIT 247
#define SIM_UNSOLICITED_VALUE 0xBAD0

/* A byte buffer that grows up to max. */
struct sim_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t max;
};

struct sim_conn {
	struct sim *sim;
	int fd;                 /* -1 once closed; written by its own thread under sim->lock */
	bool done;              /* the thread has finished; join it */
	pthread_t thread;
	struct sim_conn *next;
	struct sim_buf in;
	struct sim_buf out;
	long answers;
	bool close_now;         /* http: close after this answer */
	bool answered;          /* last_answer_ms is valid */
	int64_t last_answer_ms; /* when the last answer was sent (min_gap_ms) */
	int64_t last_active_ms; /* last request or answer, or the accept */
	bool blackholed;        /* silent for good (blackhole_idle_ms, or stalled by half_every) */
	bool reset;             /* close with a reset (reset_every) */
	uint16_t last_tid;      /* modbus: the last request's transaction id */
	int64_t last_unsolicited_ms; /* the last unsolicited frame, or the accept */
	unsigned seed;          /* rand_r, for unsolicited transaction ids */
};

struct sim {
	struct sim_opts o;
	int port;
	int lfd;                /* -1 while killed */
	bool acceptor_running;
	pthread_t acceptor;

	pthread_mutex_t lock;   /* closing, conns, nconns; shutdown() of fds */
	pthread_cond_t wake;    /* broadcast when closing is set (naps end) */
	bool closing;
	struct sim_conn *conns;
	int nconns;

	pthread_mutex_t slock;  /* st, delay_ms, and the faults in o (sim_set_faults) */
	struct sim_stats st;
	int delay_ms;

	pthread_mutex_t rlock;  /* regs, written */
	uint16_t regs[65536];
	uint8_t written[65536 / 8];
};

/* One framer and one answer builder per protocol. frame returns the length
 * of the whole request at the start of p, 0 when more bytes are needed, or
 * a negative errno for a malformed request. valid (optional) says whether a
 * framed request is intact (the RTU CRC); busy (optional, modbus only)
 * builds the exception 0x06 answer for min_gap_ms; unsolicited builds the
 * frame of unsolicited_every_ms. Each builder appends to c->out. */
struct sim_ops {
	const char *name;
	size_t max_in;
	ssize_t (*frame)(const uint8_t *p, size_t len);
	int (*answer)(struct sim_conn *c, const uint8_t *req, size_t len);
	bool (*valid)(const uint8_t *p, size_t len);
	int (*busy)(struct sim_conn *c, const uint8_t *req, size_t len);
	int (*unsolicited)(struct sim_conn *c);
};

/* ---- buffers ------------------------------------------------------------ */

static int sbuf_reserve(struct sim_buf *b, size_t need)
{
	if (need <= b->cap)
		return 0;
	if (need > b->max)
		return -EMSGSIZE;
	size_t cap = b->cap ? b->cap : SIM_BUF_START;
	while (cap < need)
		cap *= 2;
	if (cap > b->max)
		cap = b->max;
	uint8_t *d = realloc(b->data, cap);
	if (!d)
		return -ENOMEM;
	b->data = d;
	b->cap = cap;
	return 0;
}

static int sbuf_add(struct sim_buf *b, const void *p, size_t n)
{
	int rc = sbuf_reserve(b, b->len + n);
	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

__attribute__((format(printf, 2, 3)))
static int sbuf_printf(struct sim_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -EMSGSIZE;
	return sbuf_add(b, tmp, (size_t)n);
}

static void sbuf_consume(struct sim_buf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

static int sim_send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static int64_t sim_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits ms milliseconds unless the simulator is being killed. Returns 0,
 * or -ECANCELED when it is. */
static int sim_nap(struct sim *s, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	while (!s->closing) {
		if (pthread_cond_timedwait(&s->wake, &s->lock, &ts) == ETIMEDOUT)
			break;
	}
	bool closing = s->closing;
	pthread_mutex_unlock(&s->lock);
	return closing ? -ECANCELED : 0;
}

/* ---- modbus ------------------------------------------------------------- */

uint16_t sim_modbus_value(uint8_t fc, uint16_t addr, uint8_t unit)
{
	if (fc == 4)
		return (uint16_t)((addr * 13u + unit + 0x4000u) & 0xFFFFu);
	return (uint16_t)((addr * 7u + unit) & 0xFFFFu);
}

static uint16_t sim_holding_locked(struct sim *s, uint16_t addr, uint8_t unit)
{
	if (s->written[addr / 8] & (1u << (addr % 8)))
		return s->regs[addr];
	return sim_modbus_value(3, addr, unit);
}

uint16_t sim_modbus_holding(struct sim *s, uint16_t addr, uint8_t unit)
{
	pthread_mutex_lock(&s->rlock);
	uint16_t v = sim_holding_locked(s, addr, unit);
	pthread_mutex_unlock(&s->rlock);
	return v;
}

static void sim_write_locked(struct sim *s, uint16_t addr, uint16_t v)
{
	s->regs[addr] = v;
	s->written[addr / 8] |= (uint8_t)(1u << (addr % 8));
}

/* MBAP (Modbus Messaging on TCP/IP v1.0b, 3.1.3): length counts the unit id
 * and the PDU; the protocol id is always 0. */
static ssize_t sim_modbus_frame(const uint8_t *p, size_t len)
{
	if (len >= 4 && be16(p + 2) != 0)
		return -EPROTO;
	if (len < 6)
		return 0;
	size_t l = be16(p + 4);
	if (l < 2 || l > 254)
		return -EPROTO;
	if (len < 6 + l)
		return 0;
	return (ssize_t)(6 + l);
}

/* Serves one PDU (Modbus Application Protocol v1.1b3, 6.3, 6.4, 6.6,
 * 6.12) and writes the answer PDU to rp (253 bytes at most). exc != 0
 * forces that exception. Returns the answer PDU's length. */
static size_t sim_modbus_pdu(struct sim *s, uint8_t unit, const uint8_t *pdu, size_t pdulen,
			     uint8_t exc, uint8_t *rp)
{
	uint8_t fc = pdu[0];
	size_t rlen = 0;
	unsigned addr = pdulen >= 5 ? be16(pdu + 1) : 0;
	unsigned qty = pdulen >= 5 ? be16(pdu + 3) : 0;

	switch (exc ? -1 : fc) {
	case -1:
		break;
	case 3:
	case 4:
		if (pdulen != 5 || qty < 1 || qty > 125) {
			exc = 0x03;
			break;
		}
		if (addr + qty > 65536) {
			exc = 0x02;
			break;
		}
		rp[0] = fc;
		rp[1] = (uint8_t)(2 * qty);
		pthread_mutex_lock(&s->rlock);
		for (unsigned i = 0; i < qty; i++) {
			uint16_t a = (uint16_t)(addr + i);
			uint16_t v = fc == 3 ? sim_holding_locked(s, a, unit) : sim_modbus_value(4, a, unit);
			put16(rp + 2 + 2 * i, v);
		}
		pthread_mutex_unlock(&s->rlock);
		rlen = 2 + 2 * qty;
		break;
	case 6:
		if (pdulen != 5) {
			exc = 0x03;
			break;
		}
		pthread_mutex_lock(&s->rlock);
		sim_write_locked(s, (uint16_t)addr, (uint16_t)qty);
		pthread_mutex_unlock(&s->rlock);
		memcpy(rp, pdu, 5);
		rlen = 5;
		break;
	case 16:
		if (pdulen < 6 || qty < 1 || qty > 123 || pdu[5] != 2 * qty || pdulen != 6 + 2 * qty) {
			exc = 0x03;
			break;
		}
		if (addr + qty > 65536) {
			exc = 0x02;
			break;
		}
		pthread_mutex_lock(&s->rlock);
		for (unsigned i = 0; i < qty; i++)
			sim_write_locked(s, (uint16_t)(addr + i), be16(pdu + 6 + 2 * i));
		pthread_mutex_unlock(&s->rlock);
		memcpy(rp, pdu, 5);
		rlen = 5;
		break;
	default:
		exc = 0x01;
		break;
	}
	if (exc) {
		rp[0] = (uint8_t)(fc | 0x80);
		rp[1] = exc;
		rlen = 2;
	}
	return rlen;
}

static int sim_mbap_reply(struct sim_conn *c, const uint8_t *req, size_t len, uint8_t exc)
{
	uint8_t r[SIM_MODBUS_MAX];
	size_t rlen = sim_modbus_pdu(c->sim, req[6], req + 7, len - 7, exc, r + 7);
	c->last_tid = be16(req);
	put16(r, (unsigned)(be16(req) + c->sim->o.tid_offset));
	put16(r + 2, 0);
	put16(r + 4, (unsigned)(1 + rlen));
	r[6] = req[6];
	return sbuf_add(&c->out, r, 7 + rlen);
}

static int sim_modbus_answer(struct sim_conn *c, const uint8_t *req, size_t len)
{
	return sim_mbap_reply(c, req, len, 0);
}

static int sim_modbus_busy(struct sim_conn *c, const uint8_t *req, size_t len)
{
	return sim_mbap_reply(c, req, len, 0x06);
}

/* A read answer (function 3, one register) from a unit nobody asked. */
static size_t sim_unsolicited_pdu(uint8_t *p)
{
	p[0] = SIM_UNSOLICITED_UNIT;
	p[1] = 3;
	p[2] = 2;
	put16(p + 3, SIM_UNSOLICITED_VALUE);
	return 5;
}

static int sim_modbus_unsolicited(struct sim_conn *c)
{
	uint8_t r[6 + 5];
	/* Far from the ids in use: 16384..49151 after the last request's. */
	unsigned tid = c->last_tid + 0x4000u + (unsigned)rand_r(&c->seed) % 0x8000u;
	put16(r, tid & 0xFFFFu);
	put16(r + 2, 0);
	put16(r + 4, 5);
	sim_unsolicited_pdu(r + 6);
	return sbuf_add(&c->out, r, sizeof(r));
}

/* ---- modbus rtu ----------------------------------------------------------- */

/* MODBUS over serial line v1.02, 6.2.2: shift right, XOR 0xA001 when the
 * bit shifted out is 1, eight times per byte, from 0xFFFF. */
uint16_t sim_modbus_crc(const uint8_t *p, size_t len)
{
	unsigned crc = 0xFFFF;
	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (crc >> 1) ^ 0xA001u : crc >> 1;
	}
	return (uint16_t)crc;
}

size_t sim_rtu_seal(uint8_t *p, size_t len)
{
	uint16_t crc = sim_modbus_crc(p, len);
	p[len] = (uint8_t)(crc & 0xFF);
	p[len + 1] = (uint8_t)(crc >> 8);
	return len + 2;
}

static bool sim_rtu_valid(const uint8_t *p, size_t len)
{
	return len >= 4 && sim_modbus_crc(p, len - 2) == (uint16_t)(p[len - 2] | p[len - 1] << 8);
}

/* Over TCP there is no 3.5-character silence to end a frame, so the length
 * comes from the function code, as a gateway frames it. */
ssize_t sim_rtu_request_len(const uint8_t *p, size_t len)
{
	size_t need;
	if (len < 2)
		return 0;
	switch (p[1]) {
	case 1: case 2: case 3: case 4: case 5: case 6: case 8:
		need = 8;
		break;
	case 7: case 11: case 12: case 17:
		need = 4;
		break;
	case 22:
		need = 10;
		break;
	case 15: case 16:
		if (len < 7)
			return 0;
		need = 9 + (size_t)p[6];
		break;
	case 23:
		if (len < 11)
			return 0;
		need = 13 + (size_t)p[10];
		break;
	default:
		/* Unknown layout: the shortest prefix that carries its own CRC. */
		for (size_t n = 4; n <= len && n <= SIM_RTU_MAX; n++)
			if (sim_rtu_valid(p, n))
				return (ssize_t)n;
		return len >= SIM_RTU_MAX ? -EPROTO : 0;
	}
	return len < need ? 0 : (ssize_t)need;
}

static int sim_rtu_reply(struct sim_conn *c, const uint8_t *req, size_t len, uint8_t exc)
{
	uint8_t r[1 + 253 + 2];
	size_t rlen = sim_modbus_pdu(c->sim, req[0], req + 1, len - 3, exc, r + 1);
	r[0] = req[0];
	return sbuf_add(&c->out, r, sim_rtu_seal(r, 1 + rlen));
}

static int sim_rtu_answer(struct sim_conn *c, const uint8_t *req, size_t len)
{
	return sim_rtu_reply(c, req, len, 0);
}

static int sim_rtu_busy(struct sim_conn *c, const uint8_t *req, size_t len)
{
	return sim_rtu_reply(c, req, len, 0x06);
}

static int sim_rtu_unsolicited(struct sim_conn *c)
{
	uint8_t r[5 + 2];
	return sbuf_add(&c->out, r, sim_rtu_seal(r, sim_unsolicited_pdu(r)));
}

/* ---- echo, iso8583, mpu ------------------------------------------------- */

void sim_reverse(const uint8_t *in, uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i++)
		out[i] = in[len - 1 - i];
}

static ssize_t sim_echo_frame(const uint8_t *p, size_t len)
{
	const uint8_t *nl = memchr(p, '\n', len);
	return nl ? nl - p + 1 : 0;
}

static int sim_echo_answer(struct sim_conn *c, const uint8_t *req, size_t len)
{
	return sbuf_add(&c->out, req, len);
}

static int sim_echo_unsolicited(struct sim_conn *c)
{
	return sbuf_printf(&c->out, "unsolicited\n");
}

static ssize_t sim_iso8583_frame(const uint8_t *p, size_t len)
{
	if (len < 2)
		return 0;
	size_t l = be16(p);
	return len < 2 + l ? 0 : (ssize_t)(2 + l);
}

/* The length-prefixed framings answer the same header with the payload
 * reversed. */
static int sim_prefixed_answer(struct sim_conn *c, const uint8_t *req, size_t len, size_t hdr)
{
	int rc = sbuf_reserve(&c->out, len);
	if (rc < 0)
		return rc;
	memcpy(c->out.data, req, hdr);
	sim_reverse(req + hdr, c->out.data + hdr, len - hdr);
	c->out.len = len;
	return 0;
}

static int sim_iso8583_answer(struct sim_conn *c, const uint8_t *req, size_t len)
{
	return sim_prefixed_answer(c, req, len, 2);
}

static int sim_iso8583_unsolicited(struct sim_conn *c)
{
	static const uint8_t r[] = "\x00\x0bUNSOLICITED";
	return sbuf_add(&c->out, r, sizeof(r) - 1);
}

static ssize_t sim_mpu_frame(const uint8_t *p, size_t len)
{
	size_t l = 0;
	for (size_t i = 0; i < 4; i++) {
		if (i >= len)
			return 0;
		if (!isdigit(p[i]))
			return -EPROTO;
		l = l * 10 + (size_t)(p[i] - '0');
	}
	return len < 4 + l ? 0 : (ssize_t)(4 + l);
}

static int sim_mpu_answer(struct sim_conn *c, const uint8_t *req, size_t len)
{
	return sim_prefixed_answer(c, req, len, 4);
}

static int sim_mpu_unsolicited(struct sim_conn *c)
{
	return sbuf_printf(&c->out, "0011UNSOLICITED");
}

/* ---- http --------------------------------------------------------------- */

struct sim_http_req {
	char method[16];
	char target[256];
	size_t head_len;
	size_t content_length;
	bool has_length;
	bool chunked;
	bool close;
};

static const uint8_t *sim_crlf(const uint8_t *p, size_t len)
{
	return memmem(p, len, "\r\n", 2);
}

ssize_t sim_http_dechunk(const uint8_t *p, size_t len, uint8_t *out, size_t *outlen)
{
	size_t pos = 0, o = 0;

	/* Every round consumes at least one chunk line, so this ends. */
	while (pos < len) {
		const uint8_t *eol = sim_crlf(p + pos, len - pos);
		if (!eol)
			return len - pos > SIM_HTTP_CHUNK_LINE_MAX ? -EPROTO : 0;
		size_t end = (size_t)(eol - p), size = 0, digits = 0;
		for (size_t i = pos; i < end && p[i] != ';' && p[i] != ' ' && p[i] != '\t'; i++) {
			if (!isxdigit(p[i]) || size > SIM_HTTP_BODY_MAX)
				return -EPROTO;
			size = size * 16 + (size_t)(isdigit(p[i]) ? p[i] - '0' : (tolower(p[i]) - 'a' + 10));
			digits++;
		}
		if (digits == 0 || size > SIM_HTTP_BODY_MAX)
			return -EPROTO;
		pos = end + 2;
		if (size == 0) {
			/* RFC 9112 section 7.1.2: trailer fields, then an empty line. */
			while (pos <= len) {
				eol = sim_crlf(p + pos, len - pos);
				if (!eol)
					return len - pos > SIM_HTTP_HEAD_MAX ? -EPROTO : 0;
				size_t tend = (size_t)(eol - p);
				if (tend == pos) {
					if (outlen)
						*outlen = o;
					return (ssize_t)(pos + 2);
				}
				pos = tend + 2;
			}
			return 0;
		}
		if (len - pos < size + 2)
			return 0;
		if (p[pos + size] != '\r' || p[pos + size + 1] != '\n')
			return -EPROTO;
		if (out)
			memcpy(out + o, p + pos, size);
		o += size;
		pos += size + 2;
	}
	return 0;
}

static bool sim_token_in(const char *v, size_t n, const char *token)
{
	size_t t = strlen(token);
	for (size_t i = 0; i + t <= n; i++)
		if (strncasecmp(v + i, token, t) == 0)
			return true;
	return false;
}

/* Parses the request head p[0..head_len) (it ends with CRLFCRLF). */
static int sim_http_head(const uint8_t *p, size_t head_len, struct sim_http_req *r)
{
	memset(r, 0, sizeof(*r));
	r->head_len = head_len;
	const char *h = (const char *)p;
	const char *eol = (const char *)sim_crlf(p, head_len);
	const char *sp1 = memchr(h, ' ', (size_t)(eol - h));
	if (!sp1 || sp1 == h || (size_t)(sp1 - h) >= sizeof(r->method))
		return -EPROTO;
	const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (!sp2 || sp2 == sp1 + 1 || (size_t)(sp2 - sp1 - 1) >= sizeof(r->target))
		return -EPROTO;
	memcpy(r->method, h, (size_t)(sp1 - h));
	memcpy(r->target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	size_t vlen = (size_t)(eol - sp2 - 1);
	if (vlen != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return -EPROTO;
	bool http10 = sp2[8] == '0', keep_alive = false;

	/* Header lines until the empty one that ends the head. */
	const char *line = eol + 2, *end = h + head_len;
	while (line < end - 2) {
		eol = (const char *)sim_crlf((const uint8_t *)line, (size_t)(end - line));
		const char *colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon || colon == line)
			return -EPROTO;
		size_t nlen = (size_t)(colon - line);
		const char *v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		size_t vl = (size_t)(eol - v);
		if (nlen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
			size_t cl = 0;
			if (vl == 0)
				return -EPROTO;
			for (size_t i = 0; i < vl && v[i] != ' ' && v[i] != '\t'; i++) {
				if (!isdigit((unsigned char)v[i]) || cl > SIM_HTTP_BODY_MAX)
					return -EPROTO;
				cl = cl * 10 + (size_t)(v[i] - '0');
			}
			if (cl > SIM_HTTP_BODY_MAX || (r->has_length && cl != r->content_length))
				return -EPROTO;
			r->content_length = cl;
			r->has_length = true;
		} else if (nlen == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
			if (sim_token_in(v, vl, "chunked"))
				r->chunked = true;
		} else if (nlen == 10 && strncasecmp(line, "Connection", 10) == 0) {
			if (sim_token_in(v, vl, "close"))
				r->close = true;
			if (sim_token_in(v, vl, "keep-alive"))
				keep_alive = true;
		}
		line = eol + 2;
	}
	if (http10 && !keep_alive)
		r->close = true;
	return 0;
}

static ssize_t sim_http_frame(const uint8_t *p, size_t len)
{
	const uint8_t *e = memmem(p, len, "\r\n\r\n", 4);
	if (!e)
		return len > SIM_HTTP_HEAD_MAX ? -EPROTO : 0;
	size_t head_len = (size_t)(e - p) + 4;
	struct sim_http_req r;
	int rc = sim_http_head(p, head_len, &r);
	if (rc < 0)
		return rc;
	if (r.chunked) {
		ssize_t n = sim_http_dechunk(p + head_len, len - head_len, NULL, NULL);
		return n <= 0 ? n : (ssize_t)head_len + n;
	}
	if (len - head_len < r.content_length)
		return 0;
	return (ssize_t)(head_len + r.content_length);
}

static int sim_http_answer(struct sim_conn *c, const uint8_t *req, size_t len)
{
	struct sim_http_req r;
	const uint8_t *e = memmem(req, len, "\r\n\r\n", 4);
	int rc = sim_http_head(req, (size_t)(e - req) + 4, &r);
	if (rc < 0)
		return rc;

	struct sim_buf body = { .max = SIM_HTTP_BODY_MAX + sizeof(r.method) + sizeof(r.target) + 2 };
	rc = sbuf_printf(&body, "%s %s\n", r.method, r.target);
	size_t blen = len - r.head_len;
	if (rc == 0)
		rc = sbuf_reserve(&body, body.len + blen);
	if (rc == 0 && r.chunked) {
		size_t got = 0;
		sim_http_dechunk(req + r.head_len, blen, body.data + body.len, &got);
		body.len += got;
	} else if (rc == 0) {
		memcpy(body.data + body.len, req + r.head_len, blen);
		body.len += blen;
	}
	if (rc < 0)
		goto out;

	int status = 200;
	if (strncmp(r.target, "/status/", 8) == 0) {
		status = atoi(r.target + 8);
		if (status < 100 || status > 599)
			status = 400;
	}
	if (status < 200) {
		/* An interim answer, then the final one, as real servers do. */
		rc = sbuf_printf(&c->out, "HTTP/1.1 %d Informational\r\n\r\n", status);
		status = 200;
	}
	bool head = strcmp(r.method, "HEAD") == 0;
	bool eof = strcmp(r.target, "/eof") == 0;
	bool no_body = head || status == 204 || status == 304;
	c->close_now = r.close || eof;
	if (rc == 0)
		rc = sbuf_printf(&c->out, "HTTP/1.1 %d %s\r\nServer: sim\r\n", status,
				 status == 200 ? "OK" : "Status");
	if (rc == 0 && c->close_now)
		rc = sbuf_printf(&c->out, "Connection: close\r\n");
	if (rc < 0)
		goto out;
	if (eof) {
		rc = sbuf_printf(&c->out, "\r\n");
	} else if (status == 204 || status == 304) {
		rc = sbuf_printf(&c->out, "\r\n");
	} else if (c->sim->o.http_chunked) {
		rc = sbuf_printf(&c->out, "Transfer-Encoding: chunked\r\n\r\n");
		/* Small chunks, so a client's chunk parser gets exercised. */
		for (size_t off = 0; rc == 0 && !no_body && off < body.len; off += 100) {
			size_t n = body.len - off < 100 ? body.len - off : 100;
			rc = sbuf_printf(&c->out, "%zx\r\n", n);
			if (rc == 0)
				rc = sbuf_add(&c->out, body.data + off, n);
			if (rc == 0)
				rc = sbuf_printf(&c->out, "\r\n");
		}
		if (rc == 0 && !no_body)
			rc = sbuf_printf(&c->out, "0\r\n\r\n");
		no_body = true;
	} else {
		rc = sbuf_printf(&c->out, "Content-Length: %zu\r\n\r\n", body.len);
	}
	if (rc == 0 && !no_body)
		rc = sbuf_add(&c->out, body.data, body.len);
out:
	free(body.data);
	return rc;
}

/* RFC 9110 section 15.5.9: a server may send 408 on a connection it is
 * about to close, without a request. */
static int sim_http_unsolicited(struct sim_conn *c)
{
	return sbuf_printf(&c->out, "HTTP/1.1 408 Request Timeout\r\nServer: sim\r\n"
			   "Content-Length: 0\r\nConnection: close\r\n\r\n");
}

static const struct sim_ops sim_ops[] = {
	[SIM_MODBUS] = { "modbus", SIM_MODBUS_MAX, sim_modbus_frame, sim_modbus_answer, NULL,
			 sim_modbus_busy, sim_modbus_unsolicited },
	[SIM_ECHO] = { "echo", SIM_LINE_MAX, sim_echo_frame, sim_echo_answer, NULL, NULL,
		       sim_echo_unsolicited },
	[SIM_ISO8583] = { "iso8583", SIM_ISO8583_MAX, sim_iso8583_frame, sim_iso8583_answer, NULL,
			  NULL, sim_iso8583_unsolicited },
	[SIM_MPU] = { "mpu", SIM_MPU_MAX, sim_mpu_frame, sim_mpu_answer, NULL, NULL,
		      sim_mpu_unsolicited },
	[SIM_HTTP] = { "http", SIM_HTTP_HEAD_MAX + 2 * SIM_HTTP_BODY_MAX, sim_http_frame,
		       sim_http_answer, NULL, NULL, sim_http_unsolicited },
	[SIM_MODBUS_RTU] = { "modbus-rtu", SIM_RTU_IN_MAX, sim_rtu_request_len, sim_rtu_answer,
			     sim_rtu_valid, sim_rtu_busy, sim_rtu_unsolicited },
};

int sim_cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);
	if (rc == 0)
		rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
	return rc;
}

const char *sim_proto_name(enum sim_proto p)
{
	if ((size_t)p >= sizeof(sim_ops) / sizeof(sim_ops[0]))
		return "?";
	return sim_ops[p].name;
}

int sim_proto_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(sim_ops) / sizeof(sim_ops[0]); i++)
		if (strcmp(sim_ops[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* ---- connections -------------------------------------------------------- */

/* Counts one more of a counter under slock. */
static void sim_count(struct sim *s, long *counter)
{
	pthread_mutex_lock(&s->slock);
	(*counter)++;
	pthread_mutex_unlock(&s->slock);
}

/* The faults in force now (sim_set_faults may change them). */
struct sim_faults {
	int delay_ms, late_every, late_ms, drop_every, hangup_every, close_after;
	int reset_every, half_every, unsolicited_every_ms, unsolicited_garbage;
};

static struct sim_faults sim_faults_locked(const struct sim *s)
{
	const struct sim_opts *o = &s->o;
	return (struct sim_faults){
		.delay_ms = s->delay_ms, .late_every = o->late_every, .late_ms = o->late_ms,
		.drop_every = o->drop_every, .hangup_every = o->hangup_every,
		.close_after = o->close_after, .reset_every = o->reset_every,
		.half_every = o->half_every, .unsolicited_every_ms = o->unsolicited_every_ms,
		.unsolicited_garbage = o->unsolicited_garbage,
	};
}

static bool sim_every(int n, long seq)
{
	return n > 0 && seq % n == 0;
}

/* Handles the request of len bytes at the start of c->in. Returns 0 to go
 * on, < 0 to close the connection. */
static int sim_handle(struct sim_conn *c, const struct sim_ops *ops, size_t len)
{
	struct sim *s = c->sim;
	const struct sim_opts *o = &s->o;

	if (c->blackholed) {
		sim_count(s, &s->st.ignored);
		return 0;
	}
	if (ops->valid && !ops->valid(c->in.data, len)) {
		sim_count(s, &s->st.crc_errors);
		return 0;
	}
	int64_t now = sim_now_ms();
	c->last_active_ms = now;
	bool busy = o->min_gap_ms > 0 && ops->busy && c->answered &&
		    now - c->last_answer_ms < o->min_gap_ms;

	pthread_mutex_lock(&s->slock);
	long seq = ++s->st.requests;
	if (++s->st.inflight > s->st.inflight_max)
		s->st.inflight_max = s->st.inflight;
	struct sim_faults f = sim_faults_locked(s);
	pthread_mutex_unlock(&s->slock);

	int ms = f.delay_ms;
	int rc = 0;
	bool half = false;
	long *outcome = NULL;
	if (busy) {
		outcome = &s->st.gap_violations;
		c->out.len = 0;
		rc = ops->busy(c, c->in.data, len);
	} else if (sim_every(f.hangup_every, seq)) {
		outcome = &s->st.hangups;
		rc = -ECONNABORTED;
	} else if (sim_every(f.reset_every, seq)) {
		outcome = &s->st.resets;
		c->reset = true;
		rc = -ECONNRESET;
	} else if (sim_every(f.drop_every, seq)) {
		outcome = &s->st.dropped;
	} else {
		half = sim_every(f.half_every, seq);
		if (!half && sim_every(f.late_every, seq)) {
			ms = f.late_ms;
			outcome = &s->st.late;
		}
		if (ms > 0)
			rc = sim_nap(s, ms);
		c->out.len = 0;
		if (rc == 0)
			rc = ops->answer(c, c->in.data, len);
		if (rc == 0 && half)
			outcome = &s->st.halves;
		else if (rc < 0)
			outcome = NULL;
	}

	bool corrupt = false;
	bool silent = outcome == &s->st.dropped || outcome == &s->st.halves;
	pthread_mutex_lock(&s->slock);
	s->st.inflight--;
	if (outcome)
		(*outcome)++;
	if (rc == 0 && !silent) {
		s->st.answers++;
		if (o->proto == SIM_MODBUS_RTU && o->rtu_bad_crc_every > 0 &&
		    s->st.answers % o->rtu_bad_crc_every == 0) {
			corrupt = true;
			s->st.bad_crc_sent++;
		}
	}
	pthread_mutex_unlock(&s->slock);
	if (rc < 0 || outcome == &s->st.dropped)
		return rc;
	if (half) {
		/* The first half, then nothing: the connection stalls for good. */
		c->blackholed = true;
		size_t n = c->out.len / 2 ? c->out.len / 2 : 1;
		return sim_send_all(c->fd, c->out.data, n < c->out.len ? n : c->out.len);
	}

	if (corrupt && c->out.len >= 2) {
		c->out.data[c->out.len - 2] ^= 0xFF;
		c->out.data[c->out.len - 1] ^= 0xFF;
	}
	rc = sim_send_all(c->fd, c->out.data, c->out.len);
	if (rc < 0)
		return rc;
	c->answers++;
	c->answered = true;
	c->last_answer_ms = c->last_active_ms = sim_now_ms();
	if (c->close_now || (f.close_after > 0 && c->answers >= f.close_after))
		return -ECONNABORTED;
	return 0;
}

/* unsolicited_every_ms: the frame (or garbage) nobody asked for. */
static int sim_send_unsolicited(struct sim_conn *c, const struct sim_ops *ops, bool garbage)
{
	static const uint8_t junk[] = { 0xDE, 0xAD, 0xBE, 0xEF, 0xFF, 0xFF, 0xFF, 0xFF };
	c->out.len = 0;
	int rc = garbage ? sbuf_add(&c->out, junk, sizeof(junk)) : ops->unsolicited(c);
	if (rc < 0)
		return rc;
	/* Counted before the write, as answers are. */
	sim_count(c->sim, &c->sim->st.unsolicited);
	return sim_send_all(c->fd, c->out.data, c->out.len);
}

/* Waits until fd is readable (the caller reads next). Meanwhile a
 * connection idle for blackhole_idle_ms goes silent, and unsolicited frames
 * go out when due. Returns 0, or < 0 when a send failed (close). */
static int sim_wait_readable(struct sim_conn *c, const struct sim_ops *ops)
{
	struct sim *s = c->sim;
	int idle = s->o.blackhole_idle_ms;

	/* Each round finds bytes, or acts on a timer, or waits at most
	 * SIM_FAULT_POLL_MS (so a changed fault is seen); it ends when bytes
	 * come, the peer closes or errs, or a send fails. */
	for (;;) {
		int64_t now = sim_now_ms(), wait = SIM_FAULT_POLL_MS;
		if (idle > 0 && !c->blackholed) {
			int64_t left = c->last_active_ms + idle - now;
			if (left <= 0) {
				c->blackholed = true;
				sim_count(s, &s->st.blackholed);
				continue;
			}
			wait = left < wait ? left : wait;
		}
		pthread_mutex_lock(&s->slock);
		int every = s->o.unsolicited_every_ms;
		bool garbage = s->o.unsolicited_garbage;
		pthread_mutex_unlock(&s->slock);
		if (every > 0 && !c->blackholed && c->in.len == 0) {
			int64_t left = c->last_unsolicited_ms + every - now;
			if (left <= 0) {
				c->last_unsolicited_ms = now;
				int rc = sim_send_unsolicited(c, ops, garbage);
				if (rc < 0)
					return rc;
				continue;
			}
			wait = left < wait ? left : wait;
		}
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int r = poll(&pfd, 1, (int)wait);
		if (r > 0 || (r < 0 && errno != EINTR))
			return 0;
	}
}

static void sim_conn_finish(struct sim_conn *c, bool protocol_error)
{
	struct sim *s = c->sim;
	free(c->in.data);
	free(c->out.data);
	c->in.data = c->out.data = NULL;

	if (c->reset) {
		/* An abortive close: the peer gets RST instead of FIN. */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	pthread_mutex_lock(&s->lock);
	close(c->fd);
	c->fd = -1;
	c->done = true;
	s->nconns--;
	pthread_mutex_lock(&s->slock);
	s->st.conns--;
	if (protocol_error)
		s->st.protocol_errors++;
	pthread_mutex_unlock(&s->slock);
	pthread_mutex_unlock(&s->lock);
	/* c may be freed by the acceptor from here on. */
}

static void *sim_conn_main(void *arg)
{
	struct sim_conn *c = arg;
	const struct sim_ops *ops = &sim_ops[c->sim->o.proto];
	bool bad = false;

	if (sbuf_reserve(&c->in, c->in.max < SIM_BUF_START ? c->in.max : SIM_BUF_START) < 0) {
		sim_conn_finish(c, false);
		return NULL;
	}

	/* Ends at end of stream, an error, a close decided by the options, or
	 * the shutdown() of sim_kill. */
	for (;;) {
		ssize_t n = ops->frame(c->in.data, c->in.len);
		if (c->blackholed && (n < 0 || (n == 0 && c->in.len == c->in.max))) {
			c->in.len = 0; /* silent: nothing closes the connection now */
			continue;
		}
		if (n < 0) {
			bad = true;
			break;
		}
		if (n > 0) {
			if (sim_handle(c, ops, (size_t)n) < 0)
				break;
			sbuf_consume(&c->in, (size_t)n);
			continue;
		}
		if (c->in.len == c->in.max) {
			bad = true;
			break;
		}
		size_t want = c->in.len + SIM_BUF_START;
		if (sbuf_reserve(&c->in, want > c->in.max ? c->in.max : want) < 0)
			break;
		if (sim_wait_readable(c, ops) < 0)
			break;
		ssize_t r = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		c->in.len += (size_t)r;
	}
	sim_conn_finish(c, bad);
	return NULL;
}

static void sim_free_list(struct sim_conn *c)
{
	while (c) {
		struct sim_conn *next = c->next;
		pthread_join(c->thread, NULL);
		free(c);
		c = next;
	}
}

/* Takes over fd. Returns < 0 when the simulator is closing. */
static int sim_admit(struct sim *s, int fd)
{
	struct sim_conn *dead = NULL, **pp;

	pthread_mutex_lock(&s->lock);
	if (s->closing) {
		pthread_mutex_unlock(&s->lock);
		close(fd);
		return -ECANCELED;
	}
	for (pp = &s->conns; *pp;) {
		struct sim_conn *c = *pp;
		if (c->done) {
			*pp = c->next;
			c->next = dead;
			dead = c;
		} else {
			pp = &c->next;
		}
	}
	if (s->o.max_conns > 0 && s->nconns >= s->o.max_conns) {
		pthread_mutex_lock(&s->slock);
		s->st.rejected++;
		pthread_mutex_unlock(&s->slock);
		close(fd);
		goto out;
	}
	struct sim_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		goto out;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->sim = s;
	c->fd = fd;
	c->last_active_ms = c->last_unsolicited_ms = sim_now_ms();
	c->seed = (unsigned)fd ^ (unsigned)c->last_active_ms;
	c->in.max = sim_ops[s->o.proto].max_in;
	c->out.max = SIZE_MAX;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, SIM_STACK);
	s->nconns++;
	pthread_mutex_lock(&s->slock);
	s->st.accepted++;
	if (++s->st.conns > s->st.conns_max)
		s->st.conns_max = s->st.conns;
	pthread_mutex_unlock(&s->slock);
	if (pthread_create(&c->thread, &attr, sim_conn_main, c) != 0) {
		s->nconns--;
		pthread_mutex_lock(&s->slock);
		s->st.accepted--;
		s->st.conns--;
		pthread_mutex_unlock(&s->slock);
		close(fd);
		free(c);
	} else {
		c->next = s->conns;
		s->conns = c;
	}
	pthread_attr_destroy(&attr);
out:
	pthread_mutex_unlock(&s->lock);
	sim_free_list(dead);
	return 0;
}

static void *sim_acceptor(void *arg)
{
	struct sim *s = arg;

	/* Ends when sim_kill shuts the listener down. */
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				if (sim_nap(s, 50) < 0)
					break;
				continue;
			}
			break;
		}
		if (sim_admit(s, fd) < 0)
			break;
	}
	return NULL;
}

/* A listener on 127.0.0.1:port. Returns the fd or -errno; *bound gets the port. */
static int sim_listen(int port, int *bound)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof(a);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	*bound = ntohs(a.sin_port);
	return fd;
}

static int sim_run_acceptor(struct sim *s)
{
	int rc = pthread_create(&s->acceptor, NULL, sim_acceptor, s);
	if (rc != 0)
		return -rc;
	s->acceptor_running = true;
	return 0;
}

/* ---- public ------------------------------------------------------------- */

struct sim *sim_start(const struct sim_opts *opts)
{
	if ((size_t)opts->proto >= sizeof(sim_ops) / sizeof(sim_ops[0]) || opts->port < 0 ||
	    opts->port > 65535) {
		errno = EINVAL;
		return NULL;
	}
	struct sim *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->o = *opts;
	s->delay_ms = opts->delay_ms;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->slock, NULL);
	pthread_mutex_init(&s->rlock, NULL);
	sim_cond_init_monotonic(&s->wake);

	int rc = s->lfd = sim_listen(opts->port, &s->port);
	if (rc >= 0)
		rc = sim_run_acceptor(s);
	if (rc < 0) {
		if (s->lfd >= 0)
			close(s->lfd);
		s->lfd = -1;
		sim_stop(s);
		errno = -rc;
		return NULL;
	}
	return s;
}

int sim_port(const struct sim *s)
{
	return s->port;
}

enum sim_proto sim_get_proto(const struct sim *s)
{
	return s->o.proto;
}

int sim_kill(struct sim *s)
{
	pthread_mutex_lock(&s->lock);
	s->closing = true;
	pthread_cond_broadcast(&s->wake);
	if (s->lfd >= 0)
		shutdown(s->lfd, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);

	if (s->acceptor_running) {
		pthread_join(s->acceptor, NULL);
		s->acceptor_running = false;
	}
	if (s->lfd >= 0) {
		close(s->lfd);
		s->lfd = -1;
	}

	pthread_mutex_lock(&s->lock);
	struct sim_conn *list = s->conns;
	s->conns = NULL;
	for (struct sim_conn *c = list; c; c = c->next)
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
	sim_free_list(list);

	pthread_mutex_lock(&s->lock);
	s->closing = false;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int sim_revive(struct sim *s)
{
	if (s->lfd >= 0)
		return -EBUSY;
	struct timespec t0, now, pause = { 0, 20 * 1000000L };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int fd, port;

	/* The port may be briefly held (e.g. a client's connect that picked it
	 * as its own local port); retry for a bounded time. */
	for (;;) {
		fd = sim_listen(s->port, &port);
		if (fd != -EADDRINUSE)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > SIM_REVIVE_MS)
			break;
		nanosleep(&pause, NULL);
	}
	if (fd < 0)
		return fd;
	s->lfd = fd;
	int rc = sim_run_acceptor(s);
	if (rc < 0) {
		close(s->lfd);
		s->lfd = -1;
	}
	return rc;
}

void sim_stop(struct sim *s)
{
	if (!s)
		return;
	sim_kill(s);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->slock);
	pthread_mutex_destroy(&s->rlock);
	free(s);
}

void sim_get_stats(struct sim *s, struct sim_stats *out)
{
	pthread_mutex_lock(&s->slock);
	*out = s->st;
	pthread_mutex_unlock(&s->slock);
}

void sim_reset_max(struct sim *s)
{
	pthread_mutex_lock(&s->slock);
	s->st.conns_max = s->st.conns;
	s->st.inflight_max = s->st.inflight;
	pthread_mutex_unlock(&s->slock);
}

void sim_set_delay(struct sim *s, int delay_ms)
{
	pthread_mutex_lock(&s->slock);
	s->delay_ms = delay_ms;
	pthread_mutex_unlock(&s->slock);
}

void sim_set_faults(struct sim *s, const struct sim_opts *o)
{
	pthread_mutex_lock(&s->slock);
	s->delay_ms = o->delay_ms;
	s->o.late_every = o->late_every;
	s->o.late_ms = o->late_ms;
	s->o.drop_every = o->drop_every;
	s->o.hangup_every = o->hangup_every;
	s->o.close_after = o->close_after;
	s->o.reset_every = o->reset_every;
	s->o.half_every = o->half_every;
	s->o.unsolicited_every_ms = o->unsolicited_every_ms;
	s->o.unsolicited_garbage = o->unsolicited_garbage;
	pthread_mutex_unlock(&s->slock);
}
