/* A serial port as the target: opening and setting up the tty (raw mode,
 * speed, format, RS-485), what its errors mean, and the line's timing. */
#ifndef TCPMUX_SERIAL_H
#define TCPMUX_SERIAL_H

#include <stddef.h>
#include <stdint.h>

/* The line settings, from --serial-speed and --serial-format. */
struct serial_line {
	int speed;     /* bits per second, a termios rate */
	int data_bits; /* 5-8 */
	char parity;   /* 'N', 'E' or 'O' */
	int stop_bits; /* 1 or 2 */
	int rs485;     /* kernel RS-485 mode: RTS on while sending */
};

struct config;
/* The line settings of cfg's serial target. */
void serial_line_of(const struct config *cfg, struct serial_line *l);

/* Bits one character takes on the wire: start, data, parity, stop. */
int serial_char_bits(const struct serial_line *l);
/* Microseconds n characters take on the wire (rounded up). */
int64_t serial_chars_us(const struct serial_line *l, double n);
/* The silence that ends an RTU frame: 3.5 character times, and 1750 us
 * at any speed above 19200 (MODBUS over Serial Line V1.02, 2.5.1.1). */
int64_t serial_silence_us(const struct serial_line *l);

/* Opens path with l's settings: raw mode, O_NOCTTY, O_CLOEXEC, O_NONBLOCK,
 * exclusive (TIOCEXCL and flock), input and output flushed. Returns the fd
 * or -errno (-ENOTTY: not a serial port; -EBUSY: another program has it;
 * -EINVAL: the speed or format is refused). */
int serial_open(const char *path, const struct serial_line *l);
/* What an error from serial_open or from I/O on the port most likely
 * means, in words for a log line (never NULL). */
const char *serial_explain(int err);
/* Whether err says the port went away (adapter unplugged, pty closed):
 * the port must be reopened. */
int serial_gone(int err);

#endif
