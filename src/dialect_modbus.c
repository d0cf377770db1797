/* The Modbus dialect: our own transaction id on every upstream request (a
 * late answer is recognised by it), the unit map, RTU conversion, the
 * read-only policy, and read sharing keys. */
#include "config.h"
#include "dialect.h"
#include "modbus.h"
#include "modbus_rtu.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* RTU needs 3.5 character times of silence between frames: 4 ms at 9600 baud. */
#define RTU_MIN_GAP_MS 5

static int modbus_check(const struct dialect *d, const uint8_t *req, size_t len, char *why, size_t whycap)
{
	const struct config *cfg = d->cfg;
	int rc = modbus_admit(&cfg->modbus_policy, cfg->unit_map, cfg->modbus_rtu, req, len);
	if (rc == 0)
		return CODEC_ERR_NONE;
	snprintf(why, whycap, "refused function %u for unit %u: %s", modbus_function(req), modbus_unit(req),
		 rc == -EBADMSG ? "its length does not match its function"
		 : rc == -EOPNOTSUPP ? "unknown function, cannot be framed as RTU" : "--modbus-read-only");
	return rc == -EBADMSG ? CODEC_ERR_BAD_VALUE : CODEC_ERR_POLICY;
}

/* The device's unit id for a client's request. */
static uint8_t device_unit(const struct dialect *d, const uint8_t *req)
{
	return d->cfg->unit_map[modbus_unit(req)];
}

static int modbus_prepare(const struct dialect *d, unsigned tag, struct dialect_msg *m)
{
	uint8_t adu[MODBUS_MAX_ADU], saved[MODBUS_MBAP_LEN];
	memcpy(adu, m->req, m->reqlen);
	modbus_map_request(adu, d->cfg->unit_map, d->ids ? (int)(uint16_t)tag : -1, saved);
	m->tag = (uint16_t)tag;
	m->wire = m->buf;
	if (d->cfg->modbus_rtu) {
		/* the check admitted it, so it converts; a refusal is a backstop */
		ssize_t n = rtu_from_mbap(adu, m->reqlen, m->buf);
		if (n < 0)
			return (int)n;
		m->wirelen = (size_t)n;
	} else {
		memcpy(m->buf, adu, m->reqlen);
		m->wirelen = m->reqlen;
	}
	return 0;
}

static int modbus_awaited(const struct dialect *d, const struct dialect_msg *m, const uint8_t *ans, size_t n)
{
	return !d->ids || (n >= 2 && modbus_tid(ans) == m->tag);
}

static int modbus_restore(const struct dialect *d, const struct dialect_msg *m, const uint8_t *ans, size_t n,
			  struct buf *out)
{
	uint8_t mbap[MODBUS_MAX_ADU];
	if (d->cfg->modbus_rtu) {
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
	return len > MODBUS_MBAP_LEN && modbus_access_of(req + MODBUS_MBAP_LEN, len - MODBUS_MBAP_LEN) == MODBUS_READ;
}

static int modbus_shareable(const uint8_t *ans, size_t n)
{
	return n > MODBUS_MBAP_LEN && !(modbus_function(ans) & 0x80); /* exceptions are never shared */
}

void dialect_modbus_init(struct dialect *d, const struct config *cfg)
{
	d->ids = cfg->modbus_tid_check && !cfg->modbus_rtu;
	/* Modbus clients never half-close and wait: a shut side means gone */
	d->half_close_leaves = 1;
	if (cfg->modbus_rtu) {
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
