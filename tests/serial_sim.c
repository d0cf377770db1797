/* A simulated Modbus RTU device on a serial port (a pty pair from socat),
 * with a line's timing and faults on demand. See serial_sim.h. */
#include "config.h"
#include "serial_sim.h"
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define LINK_WAIT_MS 5000
#define DROP_AFTER_US 20000     /* bytes that form no request are dropped after this silence */
#define GAP_TOLERANCE_US 300    /* scheduling slack allowed when judging the master's silence */

/* ---- time ---------------------------------------------------------------- */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until(int64_t at_us)
{
	struct timespec ts = { .tv_sec = at_us / 1000000, .tv_nsec = (long)(at_us % 1000000) * 1000 };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		continue;
}

/* ---- the line ------------------------------------------------------------- */

bool serial_link_available(void)
{
	const char *path = getenv("PATH");
	char dir[4096], file[4200];
	snprintf(dir, sizeof dir, "%s", path ? path : "/usr/bin:/bin");
	for (char *save = NULL, *d = strtok_r(dir, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(file, sizeof file, "%s/socat", d);
		if (access(file, X_OK) == 0)
			return true;
	}
	return false;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

int serial_link_restart(struct serial_link *l)
{
	char a[300], b[300];
	snprintf(a, sizeof a, "pty,link=%s,raw,echo=0", l->port);
	snprintf(b, sizeof b, "pty,link=%s,raw,echo=0", l->dev);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		execlp("socat", "socat", a, b, (char *)NULL);
		_exit(127);
	}
	l->pid = pid;
	for (int i = 0; i < LINK_WAIT_MS / 2; i++) {
		if (exists(l->port) && exists(l->dev))
			return 0;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			l->pid = 0;
			return -ECHILD;
		}
		usleep(2000);
	}
	serial_link_stop(l);
	return -ETIMEDOUT;
}

int serial_link_start(struct serial_link *l, const char *dir)
{
	memset(l, 0, sizeof *l);
	snprintf(l->port, sizeof l->port, "%s/ttyRS485", dir);
	snprintf(l->dev, sizeof l->dev, "%s/device", dir);
	return serial_link_restart(l);
}

void serial_link_stop(struct serial_link *l)
{
	if (l->pid > 0) {
		kill(l->pid, SIGKILL);
		waitpid(l->pid, NULL, 0);
		l->pid = 0;
	}
	unlink(l->port);
	unlink(l->dev);
}

/* ---- the device ----------------------------------------------------------- */

struct serial_sim {
	struct serial_sim_opts o;
	char path[256];
	pthread_t thread;
	atomic_int stop;
	pthread_mutex_t lock;          /* regs, faults, fd writes */
	struct serial_sim_faults faults;
	uint16_t regs[65536];
	int fd;
	int64_t char_us, silence_us;
	int64_t answer_end;            /* when the last answer left the line (us) */
	atomic_long requests, answers, broadcasts, crc_errors, gap_violations, foreign, opens;
};

uint16_t serial_sim_initial(uint16_t addr)
{
	return (uint16_t)(addr * 7u + 3u);
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			poll(&pfd, 1, 100);
		} else if (!(w < 0 && errno == EINTR)) {
			return; /* the line went away: the reader notices */
		}
	}
}

/* The length of the request at b (RTU: by function code), 0: need more. */
static size_t request_len(const uint8_t *b, size_t n)
{
	if (n < 2)
		return 0;
	if (b[1] == 15 || b[1] == 16)
		return n < 7 ? 0 : 9u + b[6];
	return 8;
}

/* Carries out the request (unit, PDU) and builds the answer into ans
 * (without CRC). Returns its length. */
static size_t execute(struct serial_sim *s, const uint8_t *r, size_t n, uint8_t *ans)
{
	uint8_t fc = r[1];
	uint16_t addr = (uint16_t)(r[2] << 8 | r[3]), qty = (uint16_t)(r[4] << 8 | r[5]);
	ans[0] = r[0];
	ans[1] = fc;
	pthread_mutex_lock(&s->lock);
	size_t len;
	if ((fc == 3 || fc == 4) && qty >= 1 && qty <= 125) {
		ans[2] = (uint8_t)(2 * qty);
		for (unsigned i = 0; i < qty; i++) {
			uint16_t v = s->regs[(uint16_t)(addr + i)];
			ans[3 + 2 * i] = (uint8_t)(v >> 8);
			ans[4 + 2 * i] = (uint8_t)v;
		}
		len = 3 + 2u * qty;
	} else if (fc == 6) {
		s->regs[addr] = qty;
		memcpy(ans + 2, r + 2, 4);
		len = 6;
	} else if (fc == 16 && qty >= 1 && qty <= 123 && n >= 9u + 2u * qty) {
		for (unsigned i = 0; i < qty; i++)
			s->regs[(uint16_t)(addr + i)] = (uint16_t)(r[7 + 2 * i] << 8 | r[8 + 2 * i]);
		memcpy(ans + 2, r + 2, 4);
		len = 6;
	} else {
		ans[1] = (uint8_t)(fc | 0x80);
		ans[2] = 0x01;
		len = 3;
	}
	pthread_mutex_unlock(&s->lock);
	return len;
}

/* Writes the answer as the line would carry it: after the request has
 * left the wire and a silence, one character time per byte. */
static void send_answer(struct serial_sim *s, const uint8_t *ans, size_t n, int64_t req_end,
			const struct serial_sim_faults *f)
{
	int64_t at = req_end + s->silence_us + (int64_t)f->slow_ms * 1000;
	sleep_until(at);
	if (f->noise) {
		uint8_t junk[16] = { 0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0xFF };
		uint8_t other[16] = { (uint8_t)(s->o.unit + 1), 0x03, 0x02, 0xBA, 0xD0 };
		write_all(s->fd, junk, 6);
		write_all(s->fd, other, sim_rtu_seal(other, 5));
		at = now_us() + s->silence_us;
		sleep_until(at);
	}
	size_t half = f->split_ms > 0 ? n / 2 : n;
	if (s->char_us == 0) {
		write_all(s->fd, ans, half);
		if (half < n) {
			sleep_until(now_us() + (int64_t)f->split_ms * 1000);
			write_all(s->fd, ans + half, n - half);
		}
	}
	for (size_t i = 0; s->char_us > 0 && i < n; i++) {
		at += s->char_us + (i == half && half < n ? (int64_t)f->split_ms * 1000 : 0);
		sleep_until(at);
		write_all(s->fd, ans + i, 1);
	}
	s->answer_end = s->char_us > 0 ? at : now_us();
	if (f->trailing) {
		const uint8_t stray[] = { 0x07, 0x03, 0x00, 0x00, 0x00 };
		write_all(s->fd, stray, sizeof stray);
	}
	atomic_fetch_add(&s->answers, 1);
}

/* One whole request r (n bytes, CRC included) that began at first_us. */
static void handle(struct serial_sim *s, const uint8_t *r, size_t n, int64_t first_us)
{
	uint16_t crc = sim_modbus_crc(r, n - 2);
	if (r[n - 2] != (uint8_t)crc || r[n - 1] != (uint8_t)(crc >> 8)) {
		atomic_fetch_add(&s->crc_errors, 1);
		return;
	}
	if (s->o.echo)
		write_all(s->fd, r, n);
	if (r[0] != 0 && r[0] != s->o.unit) {
		atomic_fetch_add(&s->foreign, 1);
		return;
	}
	atomic_fetch_add(&s->requests, 1);
	struct serial_sim_faults f;
	pthread_mutex_lock(&s->lock);
	f = s->faults;
	pthread_mutex_unlock(&s->lock);
	if (f.mute)
		return;
	uint8_t ans[300];
	size_t len = execute(s, r, n, ans);
	if (r[0] == 0) {
		atomic_fetch_add(&s->broadcasts, 1);
		return;
	}
	send_answer(s, ans, sim_rtu_seal(ans, len), first_us + (int64_t)n * s->char_us, &f);
}

static int open_port(struct serial_sim *s)
{
	int fd = open(s->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct termios t;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(fd, TCSANOW, &t);
	}
	atomic_fetch_add(&s->opens, 1);
	return fd;
}

/* Reads and serves requests until the port fails or the device stops. */
static void serve_port(struct serial_sim *s)
{
	uint8_t buf[600];
	size_t have = 0;
	int64_t first = 0, last = 0;
	while (!atomic_load(&s->stop)) {
		struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
		int rc = poll(&pfd, 1, 10);
		if (have > 0 && now_us() - last > DROP_AFTER_US)
			have = 0; /* 2.5.1.1: a silence ends what came so far */
		if (rc <= 0)
			continue;
		ssize_t r = read(s->fd, buf + have, sizeof buf - have);
		if (r <= 0 && (r == 0 || errno != EAGAIN))
			return; /* EIO: the line vanished */
		if (r <= 0)
			continue;
		last = now_us();
		if (have == 0) {
			first = last;
			if (s->answer_end > 0 && first < s->answer_end + s->silence_us - GAP_TOLERANCE_US)
				atomic_fetch_add(&s->gap_violations, 1);
		}
		have += (size_t)r;
		for (size_t want; (want = request_len(buf, have)) > 0 && have >= want;) {
			handle(s, buf, want, first);
			memmove(buf, buf + want, have - want);
			have -= want;
			first = now_us();
		}
		if (have == sizeof buf)
			have = 0;
	}
}

static void *device_main(void *arg)
{
	struct serial_sim *s = arg;
	while (!atomic_load(&s->stop)) {
		int fd = open_port(s);
		pthread_mutex_lock(&s->lock);
		s->fd = fd;
		pthread_mutex_unlock(&s->lock);
		if (fd < 0) {
			usleep(2000); /* the line is not there (yet): try again */
			continue;
		}
		serve_port(s);
		pthread_mutex_lock(&s->lock);
		close(s->fd);
		s->fd = -1;
		pthread_mutex_unlock(&s->lock);
		usleep(2000);
	}
	return NULL;
}

struct serial_sim *serial_sim_start(const struct serial_sim_opts *o)
{
	struct serial_sim *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->o = *o;
	snprintf(s->path, sizeof s->path, "%s", o->path);
	s->o.path = s->path;
	s->fd = -1;
	int bits = o->char_bits > 0 ? o->char_bits : 10;
	if (o->baud > 0) {
		s->char_us = (bits * 1000000LL + o->baud - 1) / o->baud;
		s->silence_us = o->baud > 19200 ? 1750 : (35LL * bits * 1000000 / o->baud + 9) / 10;
	}
	for (unsigned a = 0; a < 65536; a++)
		s->regs[a] = serial_sim_initial((uint16_t)a);
	pthread_mutex_init(&s->lock, NULL);
	if (pthread_create(&s->thread, NULL, device_main, s) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

void serial_sim_set_faults(struct serial_sim *s, const struct serial_sim_faults *f)
{
	pthread_mutex_lock(&s->lock);
	s->faults = *f;
	pthread_mutex_unlock(&s->lock);
}

void serial_sim_get_stats(struct serial_sim *s, struct serial_sim_stats *out)
{
	out->requests = atomic_load(&s->requests);
	out->answers = atomic_load(&s->answers);
	out->broadcasts = atomic_load(&s->broadcasts);
	out->crc_errors = atomic_load(&s->crc_errors);
	out->gap_violations = atomic_load(&s->gap_violations);
	out->foreign = atomic_load(&s->foreign);
	out->opens = atomic_load(&s->opens);
}

uint16_t serial_sim_reg(struct serial_sim *s, uint16_t addr)
{
	pthread_mutex_lock(&s->lock);
	uint16_t v = s->regs[addr];
	pthread_mutex_unlock(&s->lock);
	return v;
}

void serial_sim_inject(struct serial_sim *s, const uint8_t *p, size_t n)
{
	pthread_mutex_lock(&s->lock);
	if (s->fd >= 0)
		write_all(s->fd, p, n);
	pthread_mutex_unlock(&s->lock);
}

void serial_sim_stop(struct serial_sim *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	if (s->fd >= 0)
		close(s->fd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
