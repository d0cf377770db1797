/* Tests for src/buf.c: reading whole frames from a socket, with split,
 * pipelined and oversize frames, end of stream and deadlines. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "codec.h"
#include "timeutil.h"
#include "testing.h"

static int sv[2];
static struct buf b;
static struct frame_ctx ctx = { .max_frame = 64 };

static void setup(void)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(buf_init(&b, 4, 64), 0);
}

static void teardown(void)
{
	buf_budget_set(0);
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	buf_free(&b);
}

static void put(const char *s)
{
	ck_assert_int_eq(write(sv[1], s, strlen(s)), (ssize_t)strlen(s));
}

static ssize_t next_line(int64_t wait_ms)
{
	int64_t dl = time_now_ms() + wait_ms;
	return buf_read_frame(&b, sv[0], codec_echo.request, &ctx, dl, dl);
}

START_TEST(test_pipelined)
{
	put("one\ntwo\nthr");
	ssize_t n = next_line(1000);
	ck_assert_int_eq(n, 4);
	ck_assert_int_eq(memcmp(buf_head(&b), "one\n", 4), 0);
	buf_consume(&b, 4);
	n = next_line(1000);
	ck_assert_int_eq(n, 4);
	ck_assert_int_eq(memcmp(buf_head(&b), "two\n", 4), 0);
	buf_consume(&b, 4);
	put("ee\n");
	n = next_line(1000);
	ck_assert_int_eq(n, 6);
	ck_assert_int_eq(memcmp(buf_head(&b), "three\n", 6), 0);
	buf_consume(&b, 6);
	ck_assert_uint_eq(buf_len(&b), 0);
}
END_TEST

START_TEST(test_grows_to_max)
{
	char line[64];
	memset(line, 'x', 63);
	line[63] = '\n';
	ck_assert_int_eq(write(sv[1], line, 64), 64);
	ck_assert_int_eq(next_line(1000), 64); /* exactly max_frame: fine */
	buf_consume(&b, 64);
	ck_assert_int_eq(write(sv[1], line, 63), 63);
	ck_assert_int_eq(write(sv[1], "yy\n", 3), 3);
	ck_assert_int_eq(next_line(1000), -EMSGSIZE);
}
END_TEST

START_TEST(test_eof)
{
	put("last\npart");
	close(sv[1]);
	sv[1] = -1;
	ck_assert_int_eq(next_line(1000), 5);
	buf_consume(&b, 5);
	ck_assert_int_eq(next_line(1000), -ECONNRESET); /* closed inside a frame */
	buf_consume(&b, buf_len(&b));
	ck_assert_int_eq(next_line(1000), 0);           /* closed between frames */
}
END_TEST

START_TEST(test_deadline)
{
	put("no newline yet");
	int64_t t0 = time_now_ms();
	ck_assert_int_eq(next_line(100), -ETIMEDOUT);
	ck_assert_int_ge(time_now_ms() - t0, 99);
	put(" - now\n");
	ck_assert_int_eq(next_line(1000), 21); /* the bytes read before are kept */
}
END_TEST

START_TEST(test_append)
{
	ck_assert_int_eq(buf_append(&b, "0123456789", 10), 0);
	ck_assert_uint_eq(buf_len(&b), 10);
	buf_consume(&b, 8);
	char big[60];
	memset(big, 'a', sizeof big);
	ck_assert_int_eq(buf_append(&b, big, sizeof big), 0); /* moves the 2 left to the front */
	ck_assert_uint_eq(buf_len(&b), 62);
	ck_assert_int_eq(buf_append(&b, big, 3), -EMSGSIZE);
	buf_reset(&b);
	ck_assert_uint_eq(buf_len(&b), 0);
}
END_TEST

/* Growth beyond the initial size is charged; past the budget it fails with
 * -ENOBUFS and the buffer stays as it was. */
START_TEST(test_budget_append)
{
	buf_budget_set(16);
	char x[40];
	memset(x, 'x', sizeof x);
	ck_assert_int_eq(buf_append(&b, x, 16), 0); /* 4 -> 8 -> 16: 12 charged */
	ck_assert_uint_eq(b.cap, 16);
	ck_assert_uint_eq(buf_budget_used(), 12);
	ck_assert_int_eq(buf_append(&b, x, 1), -ENOBUFS); /* 32 would charge 28 */
	ck_assert_uint_eq(buf_budget_used(), 12);
	ck_assert_uint_eq(buf_len(&b), 16);
	ck_assert_int_eq(memcmp(buf_head(&b), x, 16), 0);
	buf_consume(&b, 16);                               /* given back */
	ck_assert_uint_eq(b.cap, 4);
	ck_assert_uint_eq(buf_budget_used(), 0);
	ck_assert_int_eq(buf_append(&b, x, 16), 0);        /* and usable again */
	buf_free(&b);
	ck_assert_uint_eq(buf_budget_used(), 0);
	ck_assert_int_eq(buf_init(&b, 4, 64), 0);
}
END_TEST

/* A frame that needs more than the budget: -ENOBUFS, not a hang or -EMSGSIZE. */
START_TEST(test_budget_read)
{
	buf_budget_set(8);
	put("0123456789abcdefghij\n");
	ck_assert_int_eq(next_line(1000), -ENOBUFS);
	ck_assert_uint_le(buf_budget_used(), 8);
	buf_budget_set(0);
	ck_assert_int_eq(next_line(1000), 21); /* nothing was lost */
	buf_consume(&b, 21);
	ck_assert_uint_eq(buf_budget_used(), 0);
}
END_TEST

/* After a large frame is consumed the buffer is back at its initial size,
 * and bytes that followed the frame are kept. */
START_TEST(test_shrinks_after_large_frame)
{
	char line[40];
	memset(line, 'y', sizeof line);
	line[29] = '\n';
	memcpy(line + 30, "ab", 2);
	ck_assert_int_eq(write(sv[1], line, 32), 32);
	ck_assert_int_eq(next_line(1000), 30);
	ck_assert_uint_eq(b.cap, 32);
	ck_assert_uint_eq(buf_budget_used(), 28);
	buf_consume(&b, 30);
	ck_assert_uint_eq(b.cap, 4);
	ck_assert_uint_eq(buf_budget_used(), 0);
	ck_assert_uint_eq(buf_len(&b), 2);
	put("c\n");
	ck_assert_int_eq(next_line(1000), 4);
	ck_assert_int_eq(memcmp(buf_head(&b), "abc\n", 4), 0);
	buf_consume(&b, 4);
	ck_assert_int_eq(buf_append(&b, line, 20), 0);
	ck_assert_uint_eq(b.cap, 32);
	buf_reset(&b); /* also gives it back */
	ck_assert_uint_eq(b.cap, 4);
	ck_assert_uint_eq(buf_budget_used(), 0);
}
END_TEST

enum { RACERS = 8, ROUNDS = 2000, RACE_BUDGET = 1000 };
static atomic_int over_budget;

static void *racer(void *arg)
{
	(void)arg;
	struct buf mine;
	char x[200];
	memset(x, 'r', sizeof x);
	if (buf_init(&mine, 8, 256) != 0) {
		atomic_fetch_add(&over_budget, 1000);
		return NULL;
	}
	for (int i = 0; i < ROUNDS; i++) {
		int rc = buf_append(&mine, x, (size_t)(i % 200) + 1);
		if (rc != 0 && rc != -ENOBUFS)
			atomic_fetch_add(&over_budget, 1000);
		if (buf_budget_used() > RACE_BUDGET)
			atomic_fetch_add(&over_budget, 1);
		buf_consume(&mine, buf_len(&mine));
	}
	buf_free(&mine);
	return NULL;
}

/* Many threads growing and shrinking at once never pass the ceiling
 * together, and every byte charged is given back. */
START_TEST(test_budget_threads)
{
	buf_budget_set(RACE_BUDGET);
	pthread_t t[RACERS];
	for (int i = 0; i < RACERS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, racer, NULL), 0);
	for (int i = 0; i < RACERS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&over_budget), 0);
	ck_assert_uint_eq(buf_budget_used(), 0);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = TM_CASE(s, "frames", 0, test_pipelined, test_grows_to_max, test_eof,
			    test_deadline, test_append, test_budget_append, test_budget_read,
			    test_shrinks_after_large_frame, test_budget_threads);
	tcase_add_checked_fixture(tc, setup, teardown);
	return s;
}
