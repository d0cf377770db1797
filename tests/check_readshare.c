/* Tests for src/readshare.c: what makes reads identical, the cache's time
 * to live and its invalidation by writes, and coalescing of reads in flight. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "readshare.h"
#include "timeutil.h"
#include "testing.h"

static size_t read_req(uint8_t *out, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t qty)
{
	const uint8_t r[] = { 0, 9, 0, 0, 0, 6, unit, fc, (uint8_t)(addr >> 8), (uint8_t)addr,
			      (uint8_t)(qty >> 8), (uint8_t)qty };
	memcpy(out, r, sizeof r);
	return sizeof r;
}

START_TEST(test_keys)
{
	uint8_t a[16], b[16];
	struct readshare_key ka, kb;
	ck_assert(readshare_key_of(a, read_req(a, 1, 3, 100, 2), 1, &ka));
	ck_assert(readshare_key_of(b, read_req(b, 1, 3, 100, 2), 1, &kb));
	ck_assert_int_eq(memcmp(&ka, &kb, sizeof ka), 0);
	/* each field tells reads apart */
	ck_assert(readshare_key_of(b, read_req(b, 2, 3, 100, 2), 2, &kb));
	ck_assert_uint_ne(ka.unit, kb.unit);
	ck_assert(readshare_key_of(b, read_req(b, 1, 4, 100, 2), 1, &kb));
	ck_assert_uint_ne(ka.fc, kb.fc);
	ck_assert(readshare_key_of(b, read_req(b, 1, 3, 101, 2), 1, &kb));
	ck_assert_uint_ne(ka.addr, kb.addr);
	ck_assert(readshare_key_of(b, read_req(b, 1, 3, 100, 3), 1, &kb));
	ck_assert_uint_ne(ka.qty, kb.qty);
	/* only reads 1-4 */
	ck_assert(!readshare_key_of(b, read_req(b, 1, 6, 100, 3), 1, &kb));
	ck_assert(!readshare_key_of(b, read_req(b, 1, 23, 100, 3), 1, &kb));
	ck_assert(!readshare_key_of(b, 11, 1, &kb)); /* not a whole 12-byte read */
	/* the key uses the device's unit id */
	ck_assert(readshare_key_of(b, read_req(b, 7, 3, 100, 2), 0, &kb));
	ck_assert_uint_eq(kb.unit, 0);
	/* only reads as the request check admits them */
	ck_assert(!readshare_key_of(b, read_req(b, 1, 3, 100, 0), 1, &kb));   /* quantity 0 */
	ck_assert(!readshare_key_of(b, read_req(b, 1, 3, 100, 126), 1, &kb)); /* over 125 */
	/* what is not a read by the one classifier (modbus_access_of) drops
	 * cached answers: the writes, diagnostics, and unknown functions */
	for (unsigned fc = 0; fc < 256; fc++) {
		read_req(b, 1, (uint8_t)fc, 0, 1);
		int read = (fc >= 1 && fc <= 4) || fc == 7 || fc == 11 || fc == 12 || fc == 17 || fc == 20 ||
			   fc == 24;
		ck_assert_msg(readshare_is_write(b, 12) == !read, "function %u", fc);
	}
	const uint8_t devid[] = { 0, 9, 0, 0, 0, 5, 1, 43, 0x0E, 1, 0 };
	const uint8_t canopen[] = { 0, 9, 0, 0, 0, 5, 1, 43, 0x0D, 1, 0 };
	ck_assert(!readshare_is_write(devid, sizeof devid));
	ck_assert(readshare_is_write(canopen, sizeof canopen));
}
END_TEST

START_TEST(test_cache_ttl_and_writes)
{
	struct readshare rs;
	ck_assert_int_eq(readshare_init(&rs, 0, 1000), 0);
	uint8_t req[16], out[MODBUS_MAX_ADU];
	struct readshare_key k1, k2;
	readshare_key_of(req, read_req(req, 1, 3, 100, 1), 1, &k1);
	readshare_key_of(req, read_req(req, 2, 3, 100, 1), 2, &k2);
	const uint8_t ans[] = { 0, 9, 0, 0, 0, 5, 1, 3, 2, 0x12, 0x34 };
	readshare_store(&rs, &k1, readshare_gen(&rs, 1), ans, sizeof ans, 5000);
	readshare_store(&rs, &k2, readshare_gen(&rs, 2), ans, sizeof ans, 5000);
	ck_assert_uint_eq(readshare_cache_get(&rs, &k1, 5999, out), sizeof ans);
	ck_assert_int_eq(memcmp(out, ans, sizeof ans), 0);
	ck_assert_uint_eq(readshare_cache_get(&rs, &k1, 6000, out), 0); /* ttl over */
	readshare_store(&rs, &k1, readshare_gen(&rs, 1), ans, sizeof ans, 7000);
	readshare_write(&rs, 1);                                        /* a write to unit 1 */
	ck_assert_uint_eq(readshare_cache_get(&rs, &k1, 7001, out), 0);
	ck_assert_uint_eq(readshare_cache_get(&rs, &k2, 5500, out), sizeof ans); /* unit 2 kept */
	/* an answer from before the write is not stored after it */
	unsigned gen = readshare_gen(&rs, 1);
	readshare_write(&rs, 1);
	readshare_store(&rs, &k1, gen, ans, sizeof ans, 8000);
	ck_assert_uint_eq(readshare_cache_get(&rs, &k1, 8001, out), 0);
	readshare_destroy(&rs);
}
END_TEST

START_TEST(test_cache_off)
{
	struct readshare rs;
	ck_assert_int_eq(readshare_init(&rs, 1, 0), 0);
	uint8_t req[16], out[MODBUS_MAX_ADU];
	struct readshare_key k;
	readshare_key_of(req, read_req(req, 1, 3, 100, 1), 1, &k);
	readshare_store(&rs, &k, 0, req, 12, 1);
	ck_assert_uint_eq(readshare_cache_get(&rs, &k, 1, out), 0);
	readshare_destroy(&rs);
}
END_TEST

START_TEST(test_cache_full)
{
	struct readshare rs;
	ck_assert_int_eq(readshare_init(&rs, 0, 100000), 0);
	uint8_t req[16], out[MODBUS_MAX_ADU];
	struct readshare_key k;
	for (int i = 0; i < READSHARE_CACHE * 2; i++) {
		readshare_key_of(req, read_req(req, 1, 3, (uint16_t)i, 1), 1, &k);
		readshare_store(&rs, &k, readshare_gen(&rs, 1), req, 12, 1000 + i);
	}
	/* the newest are kept, the oldest replaced */
	readshare_key_of(req, read_req(req, 1, 3, READSHARE_CACHE * 2 - 1, 1), 1, &k);
	ck_assert_uint_eq(readshare_cache_get(&rs, &k, 5000, out), 12);
	readshare_key_of(req, read_req(req, 1, 3, 0, 1), 1, &k);
	ck_assert_uint_eq(readshare_cache_get(&rs, &k, 5000, out), 0);
	readshare_destroy(&rs);
}
END_TEST

struct follower {
	struct readshare *rs;
	struct readshare_key k;
	int leader, result;
	size_t len;
	uint8_t out[MODBUS_MAX_ADU];
	struct readshare_flight *f;
};

static void *follow(void *arg)
{
	struct follower *fw = arg;
	fw->result = readshare_wait(fw->rs, fw->f, time_now_ms() + 5000, fw->out, &fw->len);
	readshare_leave(fw->rs, fw->f);
	return NULL;
}

START_TEST(test_coalesce)
{
	struct readshare rs;
	ck_assert_int_eq(readshare_init(&rs, 1, 0), 0);
	uint8_t req[16];
	struct readshare_key k, other;
	readshare_key_of(req, read_req(req, 1, 3, 100, 1), 1, &k);
	readshare_key_of(req, read_req(req, 1, 3, 101, 1), 1, &other);
	int leader;
	struct readshare_flight *lf = readshare_join(&rs, &k, 0, &leader);
	ck_assert_ptr_nonnull(lf);
	ck_assert_int_eq(leader, 1);
	enum { N = 5 };
	struct follower fw[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		fw[i] = (struct follower){ .rs = &rs, .k = k };
		fw[i].f = readshare_join(&rs, &k, 0, &fw[i].leader);
		ck_assert_ptr_eq(fw[i].f, lf);
		ck_assert_int_eq(fw[i].leader, 0);
		ck_assert_int_eq(pthread_create(&th[i], NULL, follow, &fw[i]), 0);
	}
	int l2;
	struct readshare_flight *of = readshare_join(&rs, &other, 0, &l2);
	ck_assert_ptr_ne(of, lf);             /* another address: its own flight */
	ck_assert_int_eq(l2, 1);
	readshare_finish(&rs, of, 0, NULL, 0, 0, 0);
	readshare_leave(&rs, of);
	const uint8_t ans[] = { 0, 9, 0, 0, 0, 5, 1, 3, 2, 0xAA, 0xBB };
	readshare_finish(&rs, lf, 0, ans, sizeof ans, 1, time_now_ms());
	readshare_leave(&rs, lf);
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(fw[i].result, 0);
		ck_assert_uint_eq(fw[i].len, sizeof ans);
		ck_assert_int_eq(memcmp(fw[i].out, ans, sizeof ans), 0);
	}
	/* all gone: the next read leads again */
	struct readshare_flight *again = readshare_join(&rs, &k, 0, &leader);
	ck_assert_int_eq(leader, 1);
	readshare_finish(&rs, again, 3, NULL, 0, 0, 0);
	readshare_leave(&rs, again);
	readshare_destroy(&rs);
}
END_TEST

START_TEST(test_no_join_across_a_write)
{
	struct readshare rs;
	ck_assert_int_eq(readshare_init(&rs, 1, 0), 0);
	uint8_t req[16];
	struct readshare_key k;
	readshare_key_of(req, read_req(req, 1, 3, 100, 1), 1, &k);
	int leader;
	struct readshare_flight *a = readshare_join(&rs, &k, 0, &leader);
	ck_assert_int_eq(leader, 1);
	readshare_write(&rs, 1);
	struct readshare_flight *b = readshare_join(&rs, &k, 0, &leader);
	ck_assert_int_eq(leader, 1);    /* begun after the write: its own flight */
	ck_assert_ptr_ne(a, b);
	/* a follower that times out gets -ETIMEDOUT */
	struct readshare_flight *c = readshare_join(&rs, &k, 0, &leader);
	ck_assert_ptr_eq(c, b);
	uint8_t out[MODBUS_MAX_ADU];
	size_t len;
	ck_assert_int_eq(readshare_wait(&rs, c, time_now_ms() + 50, out, &len), -ETIMEDOUT);
	readshare_leave(&rs, c);
	readshare_finish(&rs, a, 2, NULL, 0, 0, 0);
	readshare_leave(&rs, a);
	readshare_finish(&rs, b, 2, NULL, 0, 0, 0);
	readshare_leave(&rs, b);
	readshare_destroy(&rs);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("readshare");
	TM_CASE(s, "keys", 0, test_keys);
	TM_CASE(s, "cache", 0, test_cache_ttl_and_writes, test_cache_off, test_cache_full);
	TM_CASE(s, "coalesce", 0, test_coalesce, test_no_join_across_a_write);
	return s;
}
