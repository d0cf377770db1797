/* Modbus read sharing: identical reads in flight wait for one answer
 * (--coalesce), and answers to reads are served again for a while
 * (--cache-ttl). Writes to a unit drop that unit's answers. */
#ifndef TCPMUX_READSHARE_H
#define TCPMUX_READSHARE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "modbus.h"

#define READSHARE_FLIGHTS 64
#define READSHARE_CACHE 256
#define READSHARE_ANSWER_MAX MODBUS_MAX_ADU /* the largest answer shared */

/* What makes two reads identical: the device's unit id (after
 * --modbus-unit-map), the function code, the address and the quantity. */
struct readshare_key {
	uint8_t unit, fc;
	uint16_t addr, qty;
};

struct readshare_flight {
	int used;
	struct readshare_key key;
	unsigned gen;	  /* the unit's write generation when it started */
	int64_t deadline; /* the leader's request deadline */
	int refs;	  /* the leader and its followers */
	int done;
	int result; /* the leader's exchange result */
	size_t len;
	uint8_t answer[MODBUS_MAX_ADU];
};

struct readshare_entry {
	int used;
	struct readshare_key key;
	int64_t stored_at;
	size_t len;
	uint8_t answer[MODBUS_MAX_ADU];
};

struct readshare {
	pthread_mutex_t lock;
	pthread_cond_t done; /* a flight finished */
	int coalesce;
	int64_t ttl_ms;
	unsigned gen[256]; /* per unit: bumped by every write */
	struct readshare_flight flights[READSHARE_FLIGHTS];
	struct readshare_entry cache[READSHARE_CACHE];
};

int readshare_init(struct readshare *rs, int coalesce, int64_t ttl_ms);
void readshare_destroy(struct readshare *rs);

/* The key of a read (function codes 1-4, as modbus_request_check admits
 * them) sent to device unit dev_unit. Returns 1 for such a read, 0 otherwise. */
int readshare_key_of(const uint8_t *adu, size_t len, uint8_t dev_unit, struct readshare_key *k);
/* Whether the request may change what reads return: everything the one
 * classifier (modbus_access_of) does not call a read, i.e. the writes 5, 6,
 * 15, 16, 21, 22, 23, diagnostics (8) and unknown or vendor functions. */
int readshare_is_write(const uint8_t *adu, size_t len);

/* A write to unit is about to be sent: its cached answers go, and reads in
 * flight from before it are no longer joined or cached. */
void readshare_write(struct readshare *rs, uint8_t unit);

/* Copies a cached answer younger than the ttl into out. Returns its length,
 * or 0 on a miss. */
size_t readshare_cache_get(struct readshare *rs, const struct readshare_key *k, int64_t now, uint8_t *out);

/* Joins the flight for k, or starts one with the leader's request deadline.
 * *leader says which. Returns NULL when no flight can be had (table full, or
 * coalescing off): go alone. */
struct readshare_flight *readshare_join(struct readshare *rs, const struct readshare_key *k, int64_t deadline,
					int *leader);
/* Follower: waits until the leader is done, or until the later of deadline
 * and the leader's own deadline (plus READSHARE_PUBLISH_MS) has passed: a
 * follower waits as long as its leader may. Returns the leader's result and
 * copies its answer into out (*len), or -ETIMEDOUT. */
#define READSHARE_PUBLISH_MS 200
int readshare_wait(struct readshare *rs, struct readshare_flight *f, int64_t deadline, uint8_t *out,
		   size_t *len);
/* Leader: publishes its result (and answer when len > 0), caches a good
 * answer when the unit saw no write since the flight began. */
void readshare_finish(struct readshare *rs, struct readshare_flight *f, int result, const uint8_t *answer,
		      size_t len, int cacheable, int64_t now);
/* Caches an answer of a read that went alone (gen from readshare_gen before it was sent). */
void readshare_store(struct readshare *rs, const struct readshare_key *k, unsigned gen, const uint8_t *answer,
		     size_t len, int64_t now);
unsigned readshare_gen(struct readshare *rs, uint8_t unit);
/* Drops a reference taken by readshare_join. */
void readshare_leave(struct readshare *rs, struct readshare_flight *f);

#endif
