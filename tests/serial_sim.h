/* A simulated Modbus RTU device on a serial port, for the serial end-to-end
 * suites and the benchmark: a pty pair made by socat stands for the RS-485
 * line, the device paces its answers as a real line would, and faults come
 * on demand. Framed independently of src/, so a framing bug in the daemon
 * is not mirrored here. */
#ifndef TCPMUX_SERIAL_SIM_H
#define TCPMUX_SERIAL_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- the line: a pty pair from socat ------------------------------------ */

struct serial_link {
	pid_t pid;           /* socat */
	char port[256];      /* the daemon's end (the "adapter") */
	char dev[256];       /* the device's end */
};

/* Whether socat is installed (the suites skip without it). */
bool serial_link_available(void);
/* Starts `socat pty,link=DIR/port,raw,echo=0 pty,link=DIR/dev,raw,echo=0`
 * (killed when the calling thread ends) and waits up to 5 s for both
 * links. Returns 0 or -errno. */
int serial_link_start(struct serial_link *l, const char *dir);
/* Restarts it on the same link names (a USB adapter plugged in again). */
int serial_link_restart(struct serial_link *l);
/* Kills socat (SIGKILL: the port vanishes as an unplugged adapter does)
 * and removes the links. */
void serial_link_stop(struct serial_link *l);

/* ---- the device --------------------------------------------------------- */

/*
 * The device answers requests to its unit id, RTU framing (MODBUS over
 * Serial Line V1.02, 2.5.1): functions 3 and 4 read and 6 and 16 write one
 * array of 65536 holding registers (register a starts as
 * serial_sim_initial(a)); any other function gets exception 0x01. A
 * request to unit 0 (broadcast) is carried out and never answered;
 * requests to other units are ignored (they count in foreign). A request
 * with a bad CRC gets no answer (crc_errors); bytes that form no request
 * are dropped after 20 ms of silence.
 *
 * Timing: with baud > 0 the device behaves as if on a line at that speed
 * with char_bits bits a character: it waits until the request would have
 * left the wire, then 3.5 character times of silence, then writes its
 * answer byte by byte at the line's pace. A request whose first byte
 * comes less than 3.5 character times after the end of the previous
 * answer counts in gap_violations.
 */
struct serial_sim_opts {
	const char *path;    /* the device's end of the line */
	int baud;            /* 0: no pacing */
	int char_bits;       /* 10 for 8N1 (0 means 10) */
	uint8_t unit;
	bool echo;           /* send each request back first, as a two-wire adapter does */
};

/* Faults, changed while it runs (serial_sim_set_faults). */
struct serial_sim_faults {
	int slow_ms;         /* answer this much later */
	int split_ms;        /* pause this long halfway through each answer */
	bool noise;          /* before each answer: 6 bytes of garbage and another unit's whole frame */
	bool mute;           /* never answer (requests still counted, writes not done) */
	bool trailing;       /* right after each answer: 5 bytes of another master's traffic */
};

struct serial_sim_stats {
	long requests, answers, broadcasts, crc_errors, gap_violations, foreign, opens;
};

struct serial_sim;

uint16_t serial_sim_initial(uint16_t addr);
/* Starts the device's thread; it opens the port (and reopens it whenever
 * it vanishes). NULL on failure. */
struct serial_sim *serial_sim_start(const struct serial_sim_opts *o);
void serial_sim_set_faults(struct serial_sim *s, const struct serial_sim_faults *f);
void serial_sim_get_stats(struct serial_sim *s, struct serial_sim_stats *out);
uint16_t serial_sim_reg(struct serial_sim *s, uint16_t addr);
/* Sends bytes on the line now, unasked (noise between exchanges). */
void serial_sim_inject(struct serial_sim *s, const uint8_t *p, size_t n);
void serial_sim_stop(struct serial_sim *s);

#endif
