/* Tests for src/serial.c and the serial parts of src/dialect_modbus.c and
 * src/upstream.c: the line's timing maths, opening a tty (a pty here) with
 * its settings, what errors mean, framing an answer among stray bytes,
 * broadcasts, the silence before a request, and the adapter's echo. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "dialect.h"
#include "modbus_rtu.h"
#include "serial.h"
#include "timeutil.h"
#include "upstream.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

/* ---- timing maths ------------------------------------------------------- */

static const struct {
	struct serial_line l;
	int bits;
	int64_t char_us, silence_us;
} timings[] = {
	/* 10 bits at 9600: 1041.7 us a character, 3.5 of them 3645.8 */
	{ { 9600, 8, 'N', 1, 0 }, 10, 1042, 3646 },
	{ { 9600, 8, 'E', 1, 0 }, 11, 1146, 4011 },
	{ { 1200, 8, 'E', 1, 0 }, 11, 9167, 32084 },
	{ { 19200, 8, 'N', 1, 0 }, 10, 521, 1823 },
	{ { 19200, 7, 'O', 2, 0 }, 11, 573, 2006 },
	/* above 19200 the silence is a fixed 1750 us (2.5.1.1) */
	{ { 38400, 8, 'N', 1, 0 }, 10, 261, 1750 },
	{ { 115200, 8, 'N', 2, 0 }, 11, 96, 1750 },
};

START_TEST(test_timing)
{
	const struct serial_line *l = &timings[_i].l;
	ck_assert_int_eq(serial_char_bits(l), timings[_i].bits);
	ck_assert_int_eq(serial_chars_us(l, 1), timings[_i].char_us);
	ck_assert_int_eq(serial_silence_us(l), timings[_i].silence_us);
}
END_TEST

START_TEST(test_frame_time)
{
	/* a read of 10 registers at 9600 8N1: 8 + 25 bytes, 34.4 ms on the wire */
	const struct serial_line l = { 9600, 8, 'N', 1, 0 };
	ck_assert_int_eq(serial_chars_us(&l, 33), 34375);
	ck_assert_int_eq(serial_chars_us(&l, 0), 0);
}
END_TEST

/* ---- opening the port --------------------------------------------------- */

/* A pty pair: the test holds the master, the slave's path is the port. */
struct pty {
	int master;
	char path[64];
};

static void pty_open(struct pty *p)
{
	p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	ck_assert_int_ge(p->master, 0);
	ck_assert_int_eq(grantpt(p->master), 0);
	ck_assert_int_eq(unlockpt(p->master), 0);
	ck_assert_int_eq(ptsname_r(p->master, p->path, sizeof p->path), 0);
}

/* A pty, its terminal end opened with serial_open as l says, and the
 * settings that took in t. Returns the descriptor. */
static int pty_open_line(struct pty *p, const struct serial_line *l, struct termios *t)
{
	pty_open(p);
	int fd = serial_open(p->path, l);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(tcgetattr(fd, t), 0);
	return fd;
}

START_TEST(test_open_settings)
{
	struct pty p;
	const struct serial_line l = { 19200, 8, 'N', 2, 0 };
	struct termios t;
	int fd = pty_open_line(&p, &l, &t);
	ck_assert_uint_eq(cfgetospeed(&t), B19200);
	ck_assert_uint_eq(cfgetispeed(&t), B19200);
	/* (a pty keeps CS8 without parity whatever is asked, and glibc's
	 * tcsetattr then fails when nothing asked took: 8N2 it does keep) */
	ck_assert_uint_eq(t.c_cflag & CSIZE, CS8);
	ck_assert(!(t.c_cflag & PARENB));
	ck_assert(t.c_cflag & CSTOPB);
	ck_assert(t.c_cflag & CLOCAL);
	ck_assert(!(t.c_cflag & CRTSCTS));
	ck_assert(!(t.c_lflag & (ICANON | ECHO | ISIG)));  /* raw: no line discipline */
	ck_assert(!(t.c_oflag & OPOST));
	ck_assert(!(t.c_iflag & (ICRNL | IXON)));
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	ck_assert(fl & O_NONBLOCK);
	ck_assert(fdfl & FD_CLOEXEC);
	/* one program per port: a second open is refused while it is held */
	ck_assert_int_eq(serial_open(p.path, &l), -EBUSY);
	close(fd);
	fd = serial_open(p.path, &l);
	ck_assert_int_ge(fd, 0);
	close(fd);
	close(p.master);
}
END_TEST

START_TEST(test_open_8n1_raw_bytes)
{
	/* 8 bits clean: every byte value passes unchanged both ways */
	struct pty p;
	const struct serial_line l = { 9600, 8, 'N', 1, 0 };
	struct termios t;
	int fd = pty_open_line(&p, &l, &t);
	ck_assert_uint_eq(t.c_cflag & CSIZE, CS8);
	ck_assert(!(t.c_cflag & (PARENB | CSTOPB)));
	uint8_t all[256], got[256];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	ck_assert_int_eq(write(fd, all, sizeof all), (ssize_t)sizeof all);
	size_t n = 0;
	for (int i = 0; i < 100 && n < sizeof got; i++) {
		struct pollfd pfd = { .fd = p.master, .events = POLLIN };
		ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
		ssize_t r = read(p.master, got + n, sizeof got - n);
		ck_assert_int_gt(r, 0);
		n += (size_t)r;
	}
	ck_assert_uint_eq(n, sizeof got);
	ck_assert_int_eq(memcmp(all, got, sizeof all), 0);
	close(fd);
	close(p.master);
}
END_TEST

START_TEST(test_open_errors)
{
	const struct serial_line l = { 9600, 8, 'N', 1, 0 };
	ck_assert_int_eq(serial_open("/nonexistent/ttyUSB9", &l), -ENOENT);
	ck_assert(serial_gone(-ENOENT));
	ck_assert_int_eq(serial_open("/dev/null", &l), -ENOTTY);
	ck_assert(!serial_gone(-ENOTTY));
	/* a pty has no RS-485 mode: said so, not silently ignored */
	struct pty p;
	pty_open(&p);
	const struct serial_line rs = { 9600, 8, 'N', 1, 1 };
	ck_assert_int_eq(serial_open(p.path, &rs), -EOPNOTSUPP);
	const struct serial_line odd = { 12345, 8, 'N', 1, 0 };
	ck_assert_int_eq(serial_open(p.path, &odd), -EINVAL);
	close(p.master);
	ck_assert(serial_gone(-EIO));
	ck_assert_ptr_nonnull(strstr(serial_explain(-EACCES), "dialout"));
	ck_assert_ptr_nonnull(strstr(serial_explain(-EBUSY), "another program"));
	ck_assert_ptr_nonnull(serial_explain(-E2BIG));
}
END_TEST

/* ---- the dialect on a serial line --------------------------------------- */

static void parse_cfg(struct config *cfg, const char *port, const char *speed, const char *map)
{
	char *argv[] = { "tcp-multiplexer", "server", "-p", "modbus", "-t", (char *)port, "--serial-speed",
			 (char *)speed, map ? "--modbus-unit-map" : NULL, (char *)map, NULL };
	int argc = map ? 10 : 8;
	enum cli_cmd cmd, help_for;
	char err[256];
	ck_assert_msg(cli_parse(argc, argv, cfg, &cmd, &help_for, err, sizeof err) == 0, "%s", err);
}

static size_t with_crc(uint8_t *p, size_t n)
{
	uint16_t c = rtu_crc16(p, n);
	p[n] = (uint8_t)c;
	p[n + 1] = (uint8_t)(c >> 8);
	return n + 2;
}

static const uint8_t read10[] = { 0x00, 0x07, 0, 0, 0, 6, 0x01, 0x03, 0x00, 0x10, 0x00, 0x0A };

START_TEST(test_dialect_prepare)
{
	struct config cfg;
	struct dialect d;
	parse_cfg(&cfg, "/dev/ttyUSB0", "9600", NULL);
	dialect_init(&d, &cfg);
	ck_assert_int_eq(d.ids, 0);    /* one bus, lockstep: no ids to match by */
	struct dialect_msg m = { .req = read10, .reqlen = sizeof read10 };
	d.prepare(&d, 5, &m);
	const uint8_t want[] = { 0x01, 0x03, 0x00, 0x10, 0x00, 0x0A, 0xC4, 0x08 };
	ck_assert_uint_eq(m.wirelen, sizeof want);
	ck_assert_int_eq(memcmp(m.wire, want, sizeof want), 0);
	ck_assert_int_eq(m.answerless, 0);
	/* 8 + 25 bytes (34375 us) and two silences (7292 us): 41.7 ms, so 42 + 1 */
	ck_assert_int_eq(m.line_ms, 43);

	/* at 115200 the same exchange is 2.9 ms and two fixed 1750 us silences */
	parse_cfg(&cfg, "/dev/ttyUSB0", "115200", NULL);
	dialect_init(&d, &cfg);
	d.prepare(&d, 6, &m);
	ck_assert_int_eq(m.line_ms, 8);
}
END_TEST

START_TEST(test_dialect_broadcast)
{
	struct config cfg;
	struct dialect d;
	char why[160];
	parse_cfg(&cfg, "/dev/ttyUSB0", "9600", NULL);
	dialect_init(&d, &cfg);
	const uint8_t wr0[] = { 0x12, 0x34, 0, 0, 0, 6, 0x00, 0x06, 0x00, 0x0A, 0x01, 0x02 };
	ck_assert_int_eq(d.check(&d, wr0, sizeof wr0, why, sizeof why), CODEC_ERR_NONE);
	struct dialect_msg m = { .req = wr0, .reqlen = sizeof wr0 };
	d.prepare(&d, 1, &m);
	ck_assert_int_eq(m.answerless, 1);
	ck_assert_int_eq(m.wire[0], 0);
	struct buf out;
	ck_assert_int_eq(buf_init(&out, 64, 300), 0);
	ck_assert_int_eq(d.restore(&d, &m, NULL, 0, &out), 0);
	/* the answer a device gives to function 6: the request itself */
	ck_assert_uint_eq(buf_len(&out), sizeof wr0);
	ck_assert_int_eq(memcmp(buf_head(&out), wr0, sizeof wr0), 0);

	/* function 16: address and quantity come back */
	const uint8_t wr16[] = { 0, 9, 0, 0, 0, 11, 0x00, 0x10, 0x00, 0x20, 0x00, 0x02, 4, 0, 1, 0, 2 };
	struct dialect_msg m16 = { .req = wr16, .reqlen = sizeof wr16 };
	d.prepare(&d, 2, &m16);
	ck_assert_int_eq(d.restore(&d, &m16, NULL, 0, &out), 0);
	const uint8_t want16[] = { 0, 9, 0, 0, 0, 6, 0x00, 0x10, 0x00, 0x20, 0x00, 0x02 };
	ck_assert_uint_eq(buf_len(&out), sizeof want16);
	ck_assert_int_eq(memcmp(buf_head(&out), want16, sizeof want16), 0);

	/* a read cannot be broadcast: refused before it reaches the line */
	const uint8_t rd0[] = { 0, 1, 0, 0, 0, 6, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01 };
	ck_assert_int_eq(d.check(&d, rd0, sizeof rd0, why, sizeof why), CODEC_ERR_POLICY);
	ck_assert_ptr_nonnull(strstr(why, "broadcast"));

	/* with a unit map, client unit 0 may be a real device */
	parse_cfg(&cfg, "/dev/ttyUSB0", "9600", "0=1");
	dialect_init(&d, &cfg);
	ck_assert_int_eq(d.check(&d, rd0, sizeof rd0, why, sizeof why), CODEC_ERR_NONE);
	struct dialect_msg mr = { .req = rd0, .reqlen = sizeof rd0 };
	d.prepare(&d, 3, &mr);
	ck_assert_int_eq(mr.answerless, 0);
	ck_assert_int_eq(mr.wire[0], 1);
	buf_free(&out);
}
END_TEST

/* Feeds bytes to the dialect's framer as the exchange does: frames that
 * are not the awaited answer are dropped. Returns the answer's offset in
 * in (or -1) and sets *len. */
static int find_answer(const struct dialect *d, const struct dialect_msg *m, const uint8_t *in, size_t n,
		       size_t *len)
{
	struct frame_ctx ctx = { .max_frame = 1 << 20 };
	size_t at = 0;
	for (int i = 0; i < 64 && at < n; i++) {
		ssize_t f = d->response(&ctx, in + at, n - at, 0);
		if (f <= 0)
			return -1;
		if (d->awaited(d, m, in + at, (size_t)f)) {
			*len = (size_t)f;
			return (int)at;
		}
		at += (size_t)f;
	}
	return -1;
}

START_TEST(test_dialect_stray_bytes)
{
	struct config cfg;
	struct dialect d;
	parse_cfg(&cfg, "/dev/ttyUSB0", "9600", NULL);
	dialect_init(&d, &cfg);
	const uint8_t rd2[] = { 0, 1, 0, 0, 0, 6, 0x01, 0x03, 0x00, 0x00, 0x00, 0x02 };
	struct dialect_msg m = { .req = rd2, .reqlen = sizeof rd2 };
	d.prepare(&d, 1, &m);

	uint8_t ans[16] = { 0x01, 0x03, 0x04, 0x00, 0x2A, 0x01, 0x00 };
	size_t alen = with_crc(ans, 7);
	/* another unit's answer of the same shape, a frame with a bad CRC,
	 * the request's own echo, and line noise, each before the answer */
	uint8_t other[16] = { 0x02, 0x03, 0x04, 0x00, 0x2A, 0x01, 0x00 };
	size_t olen = with_crc(other, 7);
	uint8_t badcrc[16];
	memcpy(badcrc, ans, alen);
	badcrc[alen - 1] ^= 0x55;
	uint8_t wrongcount[16] = { 0x01, 0x03, 0x02, 0x00, 0x2A };
	size_t wlen = with_crc(wrongcount, 5);
	const uint8_t noise[] = { 0xDE, 0xAD, 0xBE, 0xEF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00 };
	struct { const uint8_t *p; size_t n; } before[] = {
		{ other, olen }, { badcrc, alen }, { m.wire, m.wirelen }, { noise, sizeof noise },
		{ wrongcount, wlen },
	};
	for (size_t i = 0; i < sizeof before / sizeof before[0]; i++) {
		uint8_t line[64];
		memcpy(line, before[i].p, before[i].n);
		memcpy(line + before[i].n, ans, alen);
		size_t len = 0;
		int at = find_answer(&d, &m, line, before[i].n + alen, &len);
		ck_assert_msg(at == (int)before[i].n && len == alen, "case %zu: answer at %d, %zu bytes", i, at,
			      len);
	}
	/* on its own, none of them is ever the answer */
	for (size_t i = 0; i < sizeof before / sizeof before[0]; i++) {
		size_t len;
		ck_assert_int_eq(find_answer(&d, &m, before[i].p, before[i].n, &len), -1);
	}
	/* noise, then the answer split anywhere, even after its first byte:
	 * the noise goes, the answer's start stays */
	for (size_t cut = 1; cut < alen; cut++) {
		uint8_t line[64];
		memcpy(line, noise, sizeof noise);
		memcpy(line + sizeof noise, ans, alen);
		struct frame_ctx c2 = { .max_frame = 1 << 20 };
		size_t at = 0, have = sizeof noise + cut;
		for (int i = 0; i < 16; i++) {
			ssize_t f = d.response(&c2, line + at, have - at, 0);
			ck_assert_int_ge(f, 0);
			if (f == 0 && have < sizeof noise + alen) {
				have = sizeof noise + alen; /* the rest arrives */
				continue;
			}
			ck_assert_int_gt(f, 0);
			if (d.awaited(&d, &m, line + at, (size_t)f)) {
				ck_assert_uint_eq(at, sizeof noise);
				ck_assert_int_eq(f, (ssize_t)alen);
				break;
			}
			at += (size_t)f;
			ck_assert_uint_le(at, sizeof noise);
		}
	}
	/* an answer split anywhere is awaited whole */
	struct frame_ctx ctx = { .max_frame = 1 << 20 };
	for (size_t k = 0; k < alen; k++)
		ck_assert_int_eq(d.response(&ctx, ans, k, 0), 0);
	ck_assert_int_eq(d.response(&ctx, ans, alen, 0), (ssize_t)alen);
	/* an exception from the unit is its answer */
	uint8_t exc[8] = { 0x01, 0x83, 0x02 };
	size_t elen = with_crc(exc, 3);
	size_t len;
	ck_assert_int_eq(find_answer(&d, &m, exc, elen, &len), 0);
	ck_assert_uint_eq(len, elen);
}
END_TEST

/* ---- the upstream on a serial line --------------------------------------- */

START_TEST(test_gap_silence)
{
	/* at 1200 8N1 the silence is 29.2 ms: a request waits it out */
	struct config cfg;
	struct dialect d;
	struct upstream u;
	parse_cfg(&cfg, "/dev/ttyUSB0", "1200", NULL);
	dialect_init(&d, &cfg);
	upstream_init(&u, &cfg, &d);
	struct pool_slot s = { .last_answer_at = time_now_ms() };
	upstream_gap(&u, &s);
	ck_assert_int_ge(time_now_ms() - s.last_answer_at, 29);
	/* long after the last answer there is nothing to wait for */
	s.last_answer_at = time_now_ms() - 1000;
	int64_t t0 = time_now_ms();
	upstream_gap(&u, &s);
	ck_assert_int_le(time_now_ms() - t0, 1);
}
END_TEST

struct device {
	int master;
	uint8_t got[64];
	size_t n;
	const uint8_t *reply;
	size_t replylen;
};

/* A device that echoes the request (as some adapters do), then answers. */
static void *echoing_device(void *arg)
{
	struct device *dv = arg;
	while (dv->n < 8) {
		struct pollfd pfd = { .fd = dv->master, .events = POLLIN };
		if (poll(&pfd, 1, 3000) != 1)
			return NULL;
		ssize_t r = read(dv->master, dv->got + dv->n, sizeof dv->got - dv->n);
		if (r <= 0)
			return NULL;
		dv->n += (size_t)r;
	}
	if (write(dv->master, dv->got, dv->n) != (ssize_t)dv->n)
		return NULL;
	if (write(dv->master, dv->reply, dv->replylen) != (ssize_t)dv->replylen)
		return NULL;
	return NULL;
}

START_TEST(test_echo_and_stale)
{
	struct pty p;
	pty_open(&p);
	struct config cfg;
	struct dialect d;
	struct upstream u;
	parse_cfg(&cfg, p.path, "9600", NULL);
	cfg.serial_echo = 1;
	dialect_init(&d, &cfg);
	upstream_init(&u, &cfg, &d);
	int fd = upstream_connect(&u, time_now_ms() + 1000);
	ck_assert_int_ge(fd, 0);
	struct pool_slot s = { .fd = fd };
	ck_assert_int_eq(buf_init(&s.rbuf, 64, 4096), 0);

	/* bytes that came while idle are dropped, and the port stays usable */
	const uint8_t junk[] = { 0x11, 0x22, 0x33 };
	ck_assert_int_eq(write(p.master, junk, sizeof junk), 3);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
	ck_assert_int_eq(upstream_check_idle(&u, &s), POOL_HEALTHY);
	ck_assert_uint_eq(buf_len(&s.rbuf), 0);

	const uint8_t rd1[] = { 0, 1, 0, 0, 0, 6, 0x01, 0x03, 0x00, 0x00, 0x00, 0x01 };
	struct dialect_msg m = { .req = rd1, .reqlen = sizeof rd1 };
	d.prepare(&d, 1, &m);
	uint8_t ans[8] = { 0x01, 0x03, 0x02, 0x12, 0x34 };
	struct device dv = { .master = p.master, .reply = ans, .replylen = with_crc(ans, 5) };
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, echoing_device, &dv), 0);
	ck_assert_int_eq(upstream_send(&u, &s, &m, time_now_ms() + 3000), 0);
	pthread_join(t, NULL);
	ck_assert_uint_eq(dv.n, m.wirelen);
	ck_assert_int_eq(memcmp(dv.got, m.wire, m.wirelen), 0);
	/* the echo is gone; what follows is the answer */
	struct frame_ctx ctx = { .max_frame = 1 << 20 };
	ssize_t n = buf_read_frame(&s.rbuf, fd, d.response, &ctx, time_now_ms() + 2000, time_now_ms() + 2000);
	ck_assert_int_eq(n, (ssize_t)dv.replylen);
	ck_assert(d.awaited(&d, &m, buf_head(&s.rbuf), (size_t)n));

	/* the port vanishing (the other end closed) breaks the slot */
	buf_consume(&s.rbuf, (size_t)n);
	close(p.master);
	ck_assert_int_eq(upstream_check_idle(&u, &s), POOL_BROKEN);
	buf_free(&s.rbuf);
	close(fd);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("serial");
	TCase *tc = tcase_create("timing");
	tcase_add_loop_test(tc, test_timing, 0, (int)(sizeof timings / sizeof timings[0]));
	tcase_add_test(tc, test_frame_time);
	suite_add_tcase(s, tc);
	tc = tcase_create("open");
	tcase_add_test(tc, test_open_settings);
	tcase_add_test(tc, test_open_8n1_raw_bytes);
	tcase_add_test(tc, test_open_errors);
	suite_add_tcase(s, tc);
	tc = tcase_create("dialect");
	tcase_add_test(tc, test_dialect_prepare);
	tcase_add_test(tc, test_dialect_broadcast);
	tcase_add_test(tc, test_dialect_stray_bytes);
	suite_add_tcase(s, tc);
	tc = tcase_create("upstream");
	tcase_add_test(tc, test_gap_silence);
	tcase_add_test(tc, test_echo_and_stale);
	suite_add_tcase(s, tc);
	return s;
}
