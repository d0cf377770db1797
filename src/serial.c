/* A serial port as the target: opening and setting up the tty (raw mode,
 * speed, format, RS-485), what its errors mean, and the line's timing.
 * Timing facts from "MODBUS over Serial Line Specification V1.02". */
#include "config.h"
#include "serial.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/serial.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

/* 2.5.1.1: above 19200 baud the silences are fixed (1750 us between
 * frames) so that a receiver's timer load stays bearable. */
#define FIXED_TIMING_ABOVE 19200
#define FIXED_SILENCE_US 1750

void serial_line_of(const struct config *cfg, struct serial_line *l)
{
	l->speed = cfg->serial_speed;
	l->data_bits = cfg->serial_data_bits;
	l->parity = cfg->serial_parity;
	l->stop_bits = cfg->serial_stop_bits;
	l->rs485 = cfg->serial_rs485;
}

int serial_char_bits(const struct serial_line *l)
{
	return 1 + l->data_bits + (l->parity != 'N') + l->stop_bits;
}

int64_t serial_chars_us(const struct serial_line *l, double n)
{
	double us = n * serial_char_bits(l) * 1e6 / l->speed;
	int64_t whole = (int64_t)us;
	return whole < us ? whole + 1 : whole;
}

int64_t serial_silence_us(const struct serial_line *l)
{
	if (l->speed > FIXED_TIMING_ABOVE)
		return FIXED_SILENCE_US;
	return serial_chars_us(l, 3.5);
}

static speed_t speed_constant(int speed)
{
	static const struct {
		int bps;
		speed_t c;
	} rates[] = {
		{ 1200, B1200 },     { 1800, B1800 },	  { 2400, B2400 },     { 4800, B4800 },
		{ 9600, B9600 },     { 19200, B19200 },	  { 38400, B38400 },   { 57600, B57600 },
		{ 115200, B115200 }, { 230400, B230400 }, { 460800, B460800 }, { 921600, B921600 },
	};
	for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
		if (rates[i].bps == speed)
			return rates[i].c;
	return B0;
}

/* Raw 8-bit-clean mode with the line's speed and format, no flow control,
 * and reads that never block (the fd is O_NONBLOCK; poll waits). */
static int set_termios(int fd, const struct serial_line *l)
{
	static const tcflag_t sizes[] = { CS5, CS6, CS7, CS8 };
	speed_t sp = speed_constant(l->speed);
	struct termios t;
	if (sp == B0 || l->data_bits < 5 || l->data_bits > 8)
		return -EINVAL;
	if (tcgetattr(fd, &t) < 0)
		return -errno;
	cfmakeraw(&t);
	t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
	t.c_cflag |= sizes[l->data_bits - 5] | CLOCAL | CREAD;
	if (l->parity != 'N')
		t.c_cflag |= PARENB | (l->parity == 'O' ? PARODD : 0);
	if (l->stop_bits == 2)
		t.c_cflag |= CSTOPB;
	t.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY | INPCK);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (cfsetispeed(&t, sp) < 0 || cfsetospeed(&t, sp) < 0)
		return -EINVAL;
	if (tcsetattr(fd, TCSANOW, &t) < 0)
		return -errno;
	return 0;
}

/* The kernel drives RTS (the transceiver's driver enable) while sending,
 * for adapters without automatic direction control. */
static int set_rs485(int fd)
{
	struct serial_rs485 rs;
	memset(&rs, 0, sizeof rs);
	rs.flags = SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND;
	if (ioctl(fd, TIOCSRS485, &rs) < 0)
		return errno == ENOTTY || errno == EINVAL ? -EOPNOTSUPP : -errno;
	return 0;
}

static int setup(int fd, const struct serial_line *l)
{
	if (!isatty(fd))
		return -ENOTTY;
	/* TIOCEXCL keeps other programs out (but not root); flock also
	 * tells cooperating tools that honour it. */
	if (ioctl(fd, TIOCEXCL) < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	int rc = set_termios(fd, l);
	if (rc == 0 && l->rs485)
		rc = set_rs485(fd);
	if (rc == 0 && tcflush(fd, TCIOFLUSH) < 0)
		rc = -errno;
	return rc;
}

int serial_open(const char *path, const struct serial_line *l)
{
	int fd;
	do
		fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -errno;
	int rc = setup(fd, l);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

const char *serial_explain(int err)
{
	switch (err < 0 ? -err : err) {
	case ENOENT:
	case ENODEV:
	case ENXIO:
		return "the port is not there (adapter unplugged? a stable udev name helps)";
	case EIO:
		return "the port went away (adapter unplugged or its link closed)";
	case EACCES:
	case EPERM:
		return "permission denied (the dialout group, or DeviceAllow= in the unit)";
	case EBUSY:
		return "another program holds the port";
	case ENOTTY:
		return "not a serial port";
	case EOPNOTSUPP:
		return "the port has no kernel RS-485 mode (drop --serial-rs485)";
	case EINVAL:
		return "the port refuses this speed or format";
	default:
		return strerror(err < 0 ? -err : err);
	}
}

int serial_gone(int err)
{
	err = err < 0 ? -err : err;
	return err == EIO || err == ENODEV || err == ENXIO || err == ENOENT || err == EBADF;
}
