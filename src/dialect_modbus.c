/* The Modbus dialect: our own transaction id on every upstream request (a
 * late answer is recognised by it), the unit map, RTU conversion, the
 * read-only policy, and read sharing keys; on a serial line also the
 * line's timing, broadcasts, and bytes that belong to no request. */
#include "config.h"
#include "dialect.h"
#include "modbus.h"
#include "modbus_rtu.h"
#include "serial.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* RTU needs 3.5 character times of silence between frames: 4 ms at 9600 baud. */
#define RTU_MIN_GAP_MS 5

/* Whether the target is a serial line (RTU, one master, no ids). */
static int on_line(const struct config *cfg)
{
	return cfg->serial_path[0] != '\0';
}

static int speaks_rtu(const struct config *cfg)
{
	return cfg->modbus_rtu || on_line(cfg);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Application Protocol V1.1b3 §4.1: unit 0 is the broadcast address on a
 * serial line. Only writes may be broadcast; these answer with the first
 * bytes of the request (6.5, 6.6, 6.11, 6.12, 6.16), so the gateway can
 * give the client the answer a device would have sent. */
static size_t broadcast_answer_pdu(uint8_t fc)
{
	switch (fc) {
	case 5:
	case 6:
	case 15:
	case 16:
		return 5; /* function, address, value or quantity */
	case 22:
		return 7; /* function, address, AND mask, OR mask */
	default:
		return 0;
	}
}

static uint8_t device_unit(const struct dialect *d, const uint8_t *req);

static int modbus_check(const struct dialect *d, const uint8_t *req, size_t len, char *why, size_t whycap)
{
	const struct config *cfg = d->cfg;
	if (on_line(cfg) && device_unit(d, req) == 0 && broadcast_answer_pdu(modbus_function(req)) == 0) {
		snprintf(why, whycap,
			 "refused function %u for unit 0: only writes can be broadcast on a serial line",
			 modbus_function(req));
		return CODEC_ERR_POLICY;
	}
	int rc = modbus_admit(&cfg->modbus_policy, cfg->unit_map, cfg->modbus_rtu || on_line(cfg), req, len);
	if (rc == 0)
		return CODEC_ERR_NONE;
	snprintf(why, whycap, "refused function %u for unit %u: %s", modbus_function(req), modbus_unit(req),
		 rc == -EBADMSG	     ? "its length does not match its function"
		 : rc == -EOPNOTSUPP ? "unknown function, cannot be framed as RTU"
				     : "--modbus-read-only");
	return rc == -EBADMSG ? CODEC_ERR_BAD_VALUE : CODEC_ERR_POLICY;
}

/* The device's unit id for a client's request. */
static uint8_t device_unit(const struct dialect *d, const uint8_t *req)
{
	return d->cfg->unit_map[modbus_unit(req)];
}

/* The longest answer the request req (MBAP) can get, in RTU bytes. */
static size_t answer_bytes(const uint8_t *req, size_t len)
{
	uint16_t qty = len >= 12 ? get16(req + 10) : 0;
	switch (modbus_function(req)) {
	case 1:
	case 2:
		return 5 + (qty + 7u) / 8;
	case 3:
	case 4:
	case 23:
		return 5 + 2u * qty;
	case 5:
	case 6:
	case 8:
	case 11:
	case 15:
	case 16:
		return 8;
	case 7:
		return 5;
	case 22:
		return 10;
	default:
		return RTU_MAX_ADU;
	}
}

/* How long the line is busy with m: the request leaves the adapter after
 * the write returns, the device waits a silence, then its answer takes
 * its own length (MODBUS over Serial Line V1.02, 2.5.1.1). A broadcast
 * gets no answer: the line is busy with the request only. */
static void line_timing(const struct dialect *d, struct dialect_msg *m)
{
	struct serial_line l;
	serial_line_of(d->cfg, &l);
	m->answerless = device_unit(d, m->req) == 0;
	size_t chars = m->wirelen + (m->answerless ? 0 : answer_bytes(m->req, m->reqlen));
	int64_t us = serial_chars_us(&l, (double)chars) + 2 * serial_silence_us(&l);
	m->line_ms = (us + 999) / 1000 + 1;
}

static int modbus_prepare(const struct dialect *d, unsigned tag, struct dialect_msg *m)
{
	uint8_t adu[MODBUS_MAX_ADU], saved[MODBUS_MBAP_LEN];
	memcpy(adu, m->req, m->reqlen);
	modbus_map_request(adu, d->cfg->unit_map, d->ids ? (int)(uint16_t)tag : -1, saved);
	m->tag = (uint16_t)tag;
	m->wire = m->buf;
	if (d->cfg->modbus_rtu || on_line(d->cfg)) {
		/* the check admitted it, so it converts; a refusal is a backstop */
		ssize_t n = rtu_from_mbap(adu, m->reqlen, m->buf);
		if (n < 0)
			return (int)n;
		m->wirelen = (size_t)n;
		if (on_line(d->cfg))
			line_timing(d, m);
	} else {
		memcpy(m->buf, adu, m->reqlen);
		m->wirelen = m->reqlen;
	}
	return 0;
}

/* Whether ans (RTU) is exactly what m asked for: a whole frame whose
 * CRC holds, from the addressed unit, with m's function (or its
 * exception) and, for reads, the byte count the quantity asks. Anything
 * else on the line (noise, another master, an echo) is not an answer. */
static int line_awaited(const struct dialect *d, const struct dialect_msg *m, const uint8_t *ans, size_t n)
{
	struct frame_ctx ctx = { .max_frame = RTU_MAX_ADU };
	uint8_t fc = modbus_function(m->req);
	if (n < 5 || rtu_response_frame(&ctx, ans, n, 0) != (ssize_t)n)
		return 0;
	if (ans[0] != device_unit(d, m->req) || (ans[1] & 0x7F) != fc)
		return 0;
	if (ans[1] & 0x80 || fc < 1 || fc > 4)
		return 1;
	return (size_t)ans[2] + 5 == answer_bytes(m->req, m->reqlen);
}

/* Where an answer ends on a serial line, where bytes that belong to no
 * request may come first: a whole frame with a good CRC at the start;
 * else the bytes before the first place such a frame (or the start of
 * one) begins, returned as a frame of their own for line_awaited to
 * refuse and the exchange to drop. */
static ssize_t line_frame(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof)
{
	ssize_t n = rtu_response_frame(ctx, buf, len, eof);
	if (n > 0)
		return n;
	for (size_t k = 1; k < len; k++) {
		ssize_t at = rtu_response_frame(ctx, buf + k, len - k, eof);
		/* a frame still in the making only counts after noise */
		if (at > 0 || (at == 0 && n < 0))
			return (ssize_t)k;
	}
	return n < 0 ? (ssize_t)len : 0;
}

static int modbus_awaited(const struct dialect *d, const struct dialect_msg *m, const uint8_t *ans, size_t n)
{
	if (on_line(d->cfg))
		return line_awaited(d, m, ans, n);
	return !d->ids || (n >= 2 && modbus_tid(ans) == m->tag);
}

/* What the client gets for a broadcast: the normal answer to its write,
 * because the request went out (README, "Serial devices"). */
static int broadcast_answer(const struct dialect_msg *m, struct buf *out)
{
	size_t pdu = broadcast_answer_pdu(modbus_function(m->req));
	uint8_t ans[MODBUS_MBAP_LEN + 8];
	if (pdu == 0 || m->reqlen < 7 + pdu)
		return -EPROTO;
	memcpy(ans, m->req, 7 + pdu);
	ans[4] = 0;
	ans[5] = (uint8_t)(pdu + 1);
	buf_reset(out);
	return buf_append(out, ans, 7 + pdu) < 0 ? -EPROTO : 0;
}

static int modbus_restore(const struct dialect *d, const struct dialect_msg *m, const uint8_t *ans, size_t n,
			  struct buf *out)
{
	uint8_t mbap[MODBUS_MAX_ADU];
	if (m->answerless)
		return broadcast_answer(m, out);
	if (speaks_rtu(d->cfg)) {
		/* an answer from another unit is not ours (RTU has no other id) */
		if (ans[0] != device_unit(d, m->req))
			return -EPROTO;
		n = rtu_to_mbap(ans, n, 0, mbap);
		ans = mbap;
	}
	if (!modbus_answer_fits(m->req, ans, n))
		return -EPROTO;
	buf_reset(out);
	if (buf_append(out, ans, n) < 0)
		return -EPROTO;
	modbus_answer_for(out->data + out->start, m->req);
	return 0;
}

static enum dialect_share modbus_share_key(const struct dialect *d, const uint8_t *req, size_t len,
					   struct readshare_key *k)
{
	uint8_t unit = device_unit(d, req);
	if (readshare_key_of(req, len, unit, k))
		return DIALECT_SHARE_READ;
	if (readshare_is_write(req, len)) {
		k->unit = unit;
		return DIALECT_SHARE_WRITE;
	}
	return DIALECT_SHARE_NONE;
}

static int modbus_idempotent(const struct dialect *d, const uint8_t *req, size_t len)
{
	(void)d;
	return len > MODBUS_MBAP_LEN &&
	       modbus_access_of(req + MODBUS_MBAP_LEN, len - MODBUS_MBAP_LEN) == MODBUS_READ;
}

static int modbus_shareable(const uint8_t *ans, size_t n)
{
	return n > MODBUS_MBAP_LEN && !(modbus_function(ans) & 0x80); /* exceptions are never shared */
}

void dialect_modbus_init(struct dialect *d, const struct config *cfg)
{
	d->ids = cfg->modbus_tid_check && !speaks_rtu(cfg);
	/* Modbus clients never half-close and wait: a shut side means gone */
	d->half_close_leaves = 1;
	if (on_line(cfg)) {
		/* the silence is timed in microseconds by upstream_gap */
		d->response = line_frame;
		d->self_evident = 1; /* line_awaited checks CRC, unit, function and length */
	} else if (cfg->modbus_rtu) {
		d->response = rtu_response_frame;
		if (d->min_gap_ms < RTU_MIN_GAP_MS)
			d->min_gap_ms = RTU_MIN_GAP_MS;
	}
	d->check = modbus_check;
	d->prepare = modbus_prepare;
	d->awaited = modbus_awaited;
	d->restore = modbus_restore;
	d->idempotent = modbus_idempotent;
	d->share_key = modbus_share_key;
	d->shareable = modbus_shareable;
	d->readdress = modbus_answer_for;
}
