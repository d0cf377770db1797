/* End to end, Modbus read sharing: --coalesce makes 50 identical reads one
 * request at the target; --cache-ttl never hides a write; different units
 * or addresses never share an answer. */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

struct reader {
	int fd;
	uint16_t tid;
	uint8_t unit;
	uint16_t addr;
	pthread_barrier_t *go;
	int rc;
	uint8_t exc;
	uint16_t v;
};

static void *do_read(void *arg)
{
	struct reader *r = arg;
	pthread_barrier_wait(r->go);
	r->rc = tm_modbus_read(r->fd, r->tid, r->unit, 3, r->addr, 1, &r->v, &r->exc);
	return NULL;
}

/* N clients, connected first, send their reads at the same moment. */
static void read_together(int port, int n, struct reader *r, const uint8_t *units, const uint16_t *addrs)
{
	pthread_t th[64];
	pthread_barrier_t go;
	ck_assert_int_le(n, 64);
	pthread_barrier_init(&go, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		r[i] = (struct reader){ .tid = (uint16_t)(0x100 + i), .unit = units[i], .addr = addrs[i], .go = &go };
		r[i].fd = tm_connect(port);
		ck_assert_int_ge(r[i].fd, 0);
	}
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, do_read, &r[i]), 0);
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		close(r[i].fd);
	}
	pthread_barrier_destroy(&go);
}

/* The same, all of them reading one register of one unit. */
static void read_same(int port, int n, struct reader *r, uint8_t unit, uint16_t addr)
{
	uint8_t units[64];
	uint16_t addrs[64];
	ck_assert_int_le(n, 64);
	for (int i = 0; i < n; i++) {
		units[i] = unit;
		addrs[i] = addr;
	}
	read_together(port, n, r, units, addrs);
}

START_TEST(test_coalesce_fifty)
{
	enum { N = 50 };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .delay_ms = 1000 };
	const char *extra[] = { "--coalesce", "--timeout", "10", "--queue-size", "100", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	ck_assert(TM_SIM_WAIT(p.sim, accepted, 1, 5000));

	static struct reader r[N];
	read_same(p.port, N, r, 1, 500);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(r[i].rc, 0); /* tm_modbus_read checked the tid and unit: our own */
		ck_assert_int_eq(r[i].exc, 0);
		ck_assert_uint_eq(r[i].v, sim_modbus_value(3, 500, 1));
	}
	ck_assert_int_eq(TM_SIM_STAT(p.sim, requests), 1);

	char line[1024];
	ck_assert(tm_daemon_stats(p.d, line, sizeof line));
	ck_assert_ptr_nonnull(strstr(line, "coalesced=49"));
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

START_TEST(test_distinct_reads_never_share)
{
	enum { N = 8 };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .delay_ms = 200 };
	const char *extra[] = { "--coalesce", "--cache-ttl", "10s", "--timeout", "10", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	static struct reader r[N];
	/* two units at one address, two addresses at one unit, each asked twice */
	const uint8_t units[N] = { 1, 2, 1, 1, 1, 2, 1, 1 };
	const uint16_t addrs[N] = { 40, 40, 41, 42, 40, 40, 41, 42 };
	read_together(p.port, N, r, units, addrs);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(r[i].rc, 0);
		ck_assert_int_eq(r[i].exc, 0);
		ck_assert_uint_eq(r[i].v, sim_modbus_value(3, addrs[i], units[i]));
	}
	ck_assert_int_eq(TM_SIM_STAT(p.sim, requests), 4); /* one per distinct read */
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

START_TEST(test_cache_never_hides_a_write)
{
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1 };
	const char *extra[] = { "--cache-ttl", "30s", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	int fd = tm_pair_client(&p);
	uint16_t v;
	uint8_t exc = 0xff;
	ck_assert_int_eq(tm_modbus_read(fd, 1, 1, 3, 10, 1, &v, &exc), 0);
	ck_assert_uint_eq(v, sim_modbus_value(3, 10, 1));
	ck_assert_int_eq(tm_modbus_read(fd, 2, 1, 3, 10, 1, &v, &exc), 0);
	ck_assert_uint_eq(v, sim_modbus_value(3, 10, 1));
	ck_assert_int_eq(TM_SIM_STAT(p.sim, requests), 1); /* the second came from the cache */
	for (int i = 0; i < 5; i++) {
		uint16_t nv = (uint16_t)(1000 + i);
		ck_assert_int_eq(tm_modbus_write1(fd, (uint16_t)(10 + i), 1, 10, nv, &exc), 0);
		ck_assert_int_eq(exc, 0);
		ck_assert_int_eq(tm_modbus_read(fd, (uint16_t)(20 + i), 1, 3, 10, 1, &v, &exc), 0);
		ck_assert_int_eq(exc, 0);
		ck_assert_uint_eq(v, nv);
	}
	/* a write to another unit leaves unit 1's answers cached */
	long before = TM_SIM_STAT(p.sim, requests);
	ck_assert_int_eq(tm_modbus_write1(fd, 40, 2, 10, 7, &exc), 0);
	ck_assert_int_eq(tm_modbus_read(fd, 41, 1, 3, 10, 1, &v, &exc), 0);
	ck_assert_uint_eq(v, 1004);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, requests), before + 1); /* only the write went up */
	/* an exception answer is never cached */
	ck_assert_int_eq(tm_modbus_read(fd, 42, 1, 3, 65535, 2, &v, &exc), 0);
	ck_assert_int_ne(exc, 0);
	before = TM_SIM_STAT(p.sim, requests);
	ck_assert_int_eq(tm_modbus_read(fd, 43, 1, 3, 65535, 2, &v, &exc), 0);
	ck_assert_int_ne(exc, 0);
	ck_assert_int_eq(TM_SIM_STAT(p.sim, requests), before + 1);
	close(fd);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

START_TEST(test_followers_share_the_failure)
{
	enum { N = 10 };
	struct sim_opts o = { .proto = SIM_MODBUS, .max_conns = 1, .drop_every = 1 };
	const char *extra[] = { "--coalesce", "--timeout", "700ms", NULL };
	struct tm_pair p;
	ck_assert_int_eq(tm_pair_start(&p, &o, extra), 0);
	ck_assert(TM_SIM_WAIT(p.sim, accepted, 1, 5000));
	static struct reader r[N];
	int64_t t0 = tm_now_ms();
	read_same(p.port, N, r, 3, 9);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(r[i].rc, 0);
		ck_assert_int_eq(r[i].exc, 0x0B);
	}
	ck_assert_int_lt(tm_now_ms() - t0, 5000); /* nobody waited past --timeout much */
	ck_assert_int_eq(TM_SIM_STAT(p.sim, requests), 1);
	ck_assert_int_eq(tm_pair_stop(&p), 0);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_share");
	TM_CASE(s, "share", 60, test_coalesce_fifty, test_distinct_reads_never_share,
		test_cache_never_hides_a_write, test_followers_share_the_failure);
	return s;
}
