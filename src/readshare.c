/* Modbus read sharing: identical reads in flight wait for one answer
 * (--coalesce), and answers to reads are served again for a while
 * (--cache-ttl). Writes to a unit drop that unit's answers. */
#include "config.h"
#include "readshare.h"
#include "timeutil.h"

#include <errno.h>
#include <string.h>

int readshare_init(struct readshare *rs, int coalesce, int64_t ttl_ms)
{
	memset(rs, 0, sizeof *rs);
	rs->coalesce = coalesce;
	rs->ttl_ms = ttl_ms;
	pthread_mutex_init(&rs->lock, NULL);
	return time_cond_init(&rs->done);
}

void readshare_destroy(struct readshare *rs)
{
	pthread_mutex_destroy(&rs->lock);
	pthread_cond_destroy(&rs->done);
}

int readshare_key_of(const uint8_t *adu, size_t len, uint8_t dev_unit, struct readshare_key *k)
{
	/* reads 1-4 are shared; their answer depends on nothing but these fields */
	if (modbus_request_check(adu, len) < 0 || modbus_function(adu) < 1 || modbus_function(adu) > 4)
		return 0;
	k->unit = dev_unit;
	k->fc = modbus_function(adu);
	k->addr = (uint16_t)(adu[8] << 8 | adu[9]);
	k->qty = (uint16_t)(adu[10] << 8 | adu[11]);
	return 1;
}

int readshare_is_write(const uint8_t *adu, size_t len)
{
	if (len < MODBUS_MBAP_LEN + 1)
		return 0;
	/* what the classifier cannot vouch for as a read may change what reads return */
	return modbus_access_of(adu + MODBUS_MBAP_LEN, len - MODBUS_MBAP_LEN) != MODBUS_READ;
}

static int same(const struct readshare_key *a, const struct readshare_key *b)
{
	return a->unit == b->unit && a->fc == b->fc && a->addr == b->addr && a->qty == b->qty;
}

void readshare_write(struct readshare *rs, uint8_t unit)
{
	pthread_mutex_lock(&rs->lock);
	rs->gen[unit]++;
	for (int i = 0; i < READSHARE_CACHE; i++)
		if (rs->cache[i].used && rs->cache[i].key.unit == unit)
			rs->cache[i].used = 0;
	pthread_mutex_unlock(&rs->lock);
}

unsigned readshare_gen(struct readshare *rs, uint8_t unit)
{
	pthread_mutex_lock(&rs->lock);
	unsigned g = rs->gen[unit];
	pthread_mutex_unlock(&rs->lock);
	return g;
}

size_t readshare_cache_get(struct readshare *rs, const struct readshare_key *k, int64_t now, uint8_t *out)
{
	size_t len = 0;
	if (rs->ttl_ms <= 0)
		return 0;
	pthread_mutex_lock(&rs->lock);
	for (int i = 0; i < READSHARE_CACHE; i++) {
		struct readshare_entry *e = &rs->cache[i];
		if (e->used && same(&e->key, k)) {
			if (now - e->stored_at < rs->ttl_ms) {
				memcpy(out, e->answer, e->len);
				len = e->len;
			} else {
				e->used = 0;
			}
			break;
		}
	}
	pthread_mutex_unlock(&rs->lock);
	return len;
}

/* With the lock held: replaces k's entry, else takes a free, expired or the oldest one. */
static void store_locked(struct readshare *rs, const struct readshare_key *k, const uint8_t *answer,
			 size_t len, int64_t now)
{
	struct readshare_entry *pick = NULL;
	for (int i = 0; i < READSHARE_CACHE; i++) {
		struct readshare_entry *e = &rs->cache[i];
		if (e->used && same(&e->key, k)) {
			pick = e;
			break;
		}
		if (!e->used || now - e->stored_at >= rs->ttl_ms) {
			if (pick == NULL || pick->used)
				pick = e;
		} else if (pick == NULL || (pick->used && e->stored_at < pick->stored_at)) {
			pick = e;
		}
	}
	pick->used = 1;
	pick->key = *k;
	pick->stored_at = now;
	pick->len = len;
	memcpy(pick->answer, answer, len);
}

void readshare_store(struct readshare *rs, const struct readshare_key *k, unsigned gen, const uint8_t *answer,
		     size_t len, int64_t now)
{
	if (rs->ttl_ms <= 0 || len > MODBUS_MAX_ADU)
		return;
	pthread_mutex_lock(&rs->lock);
	if (rs->gen[k->unit] == gen)
		store_locked(rs, k, answer, len, now);
	pthread_mutex_unlock(&rs->lock);
}

struct readshare_flight *readshare_join(struct readshare *rs, const struct readshare_key *k, int64_t deadline,
					int *leader)
{
	if (!rs->coalesce)
		return NULL;
	struct readshare_flight *f = NULL, *free_slot = NULL;
	pthread_mutex_lock(&rs->lock);
	unsigned gen = rs->gen[k->unit];
	for (int i = 0; i < READSHARE_FLIGHTS; i++) {
		struct readshare_flight *x = &rs->flights[i];
		/* a flight that began before a write to the unit may carry old values */
		if (x->used && !x->done && x->gen == gen && same(&x->key, k)) {
			f = x;
			break;
		}
		if (!x->used && free_slot == NULL)
			free_slot = x;
	}
	if (f != NULL) {
		f->refs++;
		*leader = 0;
	} else if (free_slot != NULL) {
		f = free_slot;
		memset(f, 0, offsetof(struct readshare_flight, answer));
		f->used = 1;
		f->key = *k;
		f->gen = gen;
		f->refs = 1;
		f->deadline = deadline;
		*leader = 1;
	}
	pthread_mutex_unlock(&rs->lock);
	return f;
}

int readshare_wait(struct readshare *rs, struct readshare_flight *f, int64_t deadline, uint8_t *out,
		   size_t *len)
{
	int rc = 0;
	pthread_mutex_lock(&rs->lock);
	/* as long as the leader may take, and a moment for it to publish */
	if (f->deadline + READSHARE_PUBLISH_MS > deadline)
		deadline = f->deadline + READSHARE_PUBLISH_MS;
	struct timespec ts = time_abs(deadline);
	while (!f->done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&rs->done, &rs->lock, &ts);
	int result = -ETIMEDOUT;
	if (f->done) {
		result = f->result;
		*len = f->len;
		memcpy(out, f->answer, f->len);
	}
	pthread_mutex_unlock(&rs->lock);
	return result;
}

void readshare_finish(struct readshare *rs, struct readshare_flight *f, int result, const uint8_t *answer,
		      size_t len, int cacheable, int64_t now)
{
	pthread_mutex_lock(&rs->lock);
	f->result = result;
	f->len = len <= MODBUS_MAX_ADU ? len : 0;
	if (f->len > 0)
		memcpy(f->answer, answer, f->len);
	f->done = 1;
	if (cacheable && rs->ttl_ms > 0 && f->len > 0 && rs->gen[f->key.unit] == f->gen)
		store_locked(rs, &f->key, answer, f->len, now);
	pthread_cond_broadcast(&rs->done);
	pthread_mutex_unlock(&rs->lock);
}

void readshare_leave(struct readshare *rs, struct readshare_flight *f)
{
	pthread_mutex_lock(&rs->lock);
	if (--f->refs == 0)
		f->used = 0;
	pthread_mutex_unlock(&rs->lock);
}
