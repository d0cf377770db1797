/* The identity dialect (echo, http, iso8583, mpu: requests go as they are,
 * the next answer is the awaited one). */
#include "config.h"
#include "dialect.h"

#include <errno.h>
#include <string.h>

int dialect_check_none(const struct dialect *d, const uint8_t *req, size_t len, char *why, size_t whycap)
{
	(void)d, (void)req, (void)len, (void)why, (void)whycap;
	return CODEC_ERR_NONE;
}

int dialect_prepare_none(const struct dialect *d, unsigned tag, struct dialect_msg *m)
{
	(void)d, (void)tag;
	m->wire = m->req;
	m->wirelen = m->reqlen;
	return 0;
}

int dialect_awaited_any(const struct dialect *d, const struct dialect_msg *m, const uint8_t *ans, size_t n)
{
	(void)d, (void)m, (void)ans, (void)n;
	return 1;
}

int dialect_restore_copy(const struct dialect *d, const struct dialect_msg *m, const uint8_t *ans, size_t n,
			 struct buf *out)
{
	(void)d, (void)m;
	buf_reset(out);
	return buf_append(out, ans, n) < 0 ? -EPROTO : 0;
}

void dialect_identity_init(struct dialect *d, const struct config *cfg)
{
	memset(d, 0, sizeof *d);
	d->name = cfg->codec->name;
	d->cfg = cfg;
	d->response = cfg->codec->response;
	d->min_gap_ms = cfg->request_gap_ms;
	d->check = dialect_check_none;
	d->prepare = dialect_prepare_none;
	d->awaited = dialect_awaited_any;
	d->restore = dialect_restore_copy;
	/* RFC 9112 §9.6 lets a client close its sending side only once done;
	 * an HTTP client that does so while waiting has given up (as nginx
	 * also treats it). Raw framings are used with `nc -N`-style clients
	 * that half-close and still wait. */
	d->half_close_leaves = strcmp(cfg->codec->name, "http") == 0;
	/* requests go as they are, answers come back as they are: an answer
	 * may reach the client before it is whole */
	d->settled = cfg->codec->settled;
	d->shift = cfg->codec->shift;
}
