/* Simulated target servers for the tests and the benchmark: threads in the
 * calling process serving real loopback sockets, with faults on demand. */
#ifndef TCPMUX_SIM_H
#define TCPMUX_SIM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * What each simulator answers (framed independently of src/ on purpose, so
 * a framing bug in the daemon is not mirrored by the target):
 *
 * SIM_MODBUS   MBAP frames. Functions 3 and 4 read registers (see
 *              sim_modbus_value), 6 and 16 write holding registers into one
 *              65536-register array per simulator; anything else gets
 *              exception 0x01. The answer carries the request's transaction
 *              id (plus tid_offset) and unit id. A malformed MBAP header
 *              (protocol id != 0, length outside 2..254) closes the connection.
 * SIM_MODBUS_RTU  Modbus RTU frames over TCP (MODBUS over serial line v1.02,
 *              2.5.1): unit id, PDU, CRC-16 low byte first (sim_modbus_crc).
 *              The same registers and answers as SIM_MODBUS, in RTU framing
 *              (tid_offset does not apply). A request is framed by its
 *              function code: 1-6 and 8 are 8 bytes, 7, 11, 12 and 17 are 4,
 *              22 is 10, 15 and 16 are 9 + byte count (byte 6), 23 is 13 +
 *              byte count (byte 10); any other code ends at the first length
 *              >= 4 whose last two bytes are the CRC of the rest (256 bytes
 *              without one close the connection). A request with a bad CRC
 *              gets no answer, as on a serial line; it counts in crc_errors,
 *              not in requests. Unit 0 is answered like any other (no
 *              broadcast semantics).
 * SIM_ECHO     each line, up to and including '\n', is sent back unchanged.
 * SIM_ISO8583  2-byte big-endian length + payload; the answer has the same
 *              framing and the payload reversed (sim_reverse).
 * SIM_MPU      4 ASCII digits length + payload; answered like iso8583. A
 *              non-digit in the length closes the connection.
 * SIM_HTTP     HTTP/1.1 requests (Content-Length or chunked bodies). The
 *              answer is 200 with the body "METHOD TARGET\n" followed by the
 *              request body (decoded). Special targets: "/status/NNN" answers
 *              with status NNN (204 and 304 and 1xx carry no body), "/eof"
 *              answers without a length and closes after the body. HEAD
 *              answers carry Content-Length but no body. A request with
 *              "Connection: close" is answered, then the connection closed.
 *
 * Requests are numbered 1, 2, 3, ... across all connections of one
 * simulator, in the order they are received; the *_every options pick
 * request numbers that are multiples of N. When several apply, the first
 * in this order wins: hangup, reset, drop, half, late.
 *
 * Faults (every protocol; sim_set_faults changes them while running):
 * hangup_every     close the connection (FIN) instead of answering.
 * reset_every      close the connection with SO_LINGER {1, 0} instead of
 *                  answering, so the peer sees a reset (RST), not an answer.
 * drop_every       never answer; the connection stays open and serves the
 *                  next request as usual.
 * half_every       after delay_ms, write the first half of the answer
 *                  (len / 2 bytes, at least 1) and never the rest: the
 *                  connection stays open but stalls for good, as a
 *                  blackholed one (later requests count in ignored). It
 *                  counts in halves, not in answers.
 * late_every       answer after late_ms instead of delay_ms.
 * close_after      close a connection once it has sent that many answers.
 * unsolicited_every_ms  every that many ms (from the accept, then from the
 *                  previous one) send a frame nobody asked for, at the first
 *                  moment the connection is between exchanges (no request
 *                  received in part or being served; possibly right after an
 *                  answer). It is a whole well-formed answer: modbus: function
 *                  3 from unit 247 with one register 0xBAD0 and a transaction
 *                  id 16384..49151 away from the last request's on that
 *                  connection (so it never equals an id a sequential allocator
 *                  is about to use); modbus-rtu: the same in RTU framing;
 *                  echo: "unsolicited\n"; iso8583 and mpu: the payload
 *                  "UNSOLICITED"; http: a 408 with Connection: close. With
 *                  unsolicited_garbage it is instead the 8 bytes DE AD BE EF
 *                  FF FF FF FF, which form no frame in any protocol (modbus:
 *                  protocol id 0xBEEF; echo: no newline). Silent connections
 *                  (blackholed, stalled) send none. They count in unsolicited.
 *
 * Device quirks (modbus and modbus-rtu only, per connection):
 * min_gap_ms       a request that arrives less than min_gap_ms after the
 *                  previous answer on its connection was sent (exceptions
 *                  included) is answered at once with exception 0x06 (server
 *                  device busy) instead of being served; it counts in requests,
 *                  answers and gap_violations and is numbered for *_every
 *                  but never hung up, dropped or delayed.
 * blackhole_idle_ms  a connection that has been idle that long (no request
 *                  received and no answer sent, counted from the accept)
 *                  stops answering for good without closing: no FIN, no RST.
 *                  Whole requests that arrive later count in ignored (not in
 *                  requests); other bytes are discarded. Applies to every
 *                  protocol.
 * rtu_bad_crc_every  modbus-rtu: every Nth answer (counted per simulator)
 *                  goes out with its CRC inverted, as line noise would.
 *
 * A connection counts against max_conns until its thread has seen the
 * close, so a client that closes and reconnects at once can be rejected:
 * wait for the conns counter to drop first (TM_WAIT_FOR in testing.h).
 * sim_kill, sim_revive and sim_stop must not be called concurrently on one
 * simulator; everything else is thread-safe.
 */
enum sim_proto {
	SIM_MODBUS,
	SIM_ECHO,
	SIM_ISO8583,
	SIM_MPU,
	SIM_HTTP,
	SIM_MODBUS_RTU,
};

struct sim_opts {
	enum sim_proto proto;
	int port;           /* 0: the kernel picks one */
	int max_conns;      /* more simultaneous connections are accepted and closed
	                       at once; 0 = unlimited (see the note below) */
	int delay_ms;       /* sleep before each answer */
	int late_every;     /* every Nth request is answered after late_ms instead of delay_ms */
	int late_ms;
	int drop_every;     /* every Nth request gets no answer at all (the connection stays open) */
	int hangup_every;   /* every Nth request: close the connection instead of answering */
	int close_after;    /* close a connection after it sent N answers; 0 = never */
	int tid_offset;     /* modbus: answer with transaction id + this (gateways that answer id+1) */
	int http_chunked;   /* http: answer with Transfer-Encoding: chunked instead of Content-Length */
	int min_gap_ms;     /* modbus: exception 0x06 to a request this soon after an answer */
	int blackhole_idle_ms; /* a connection idle this long stops answering, stays open */
	int rtu_bad_crc_every; /* modbus-rtu: every Nth answer carries a wrong CRC */
	int reset_every;    /* every Nth request: reset the connection (RST) instead of answering */
	int half_every;     /* every Nth request: write half the answer, then stall for good */
	int unsolicited_every_ms; /* send a frame nobody asked for this often, between exchanges */
	int unsolicited_garbage;  /* ... and make it 8 bytes of garbage instead */
};

/* Counters since sim_start (sim_kill and sim_revive keep them). */
struct sim_stats {
	long requests;      /* whole request frames received and served (not those
	                       in crc_errors or ignored) */
	long answers;       /* answers sent (counted just before the write, so a
	                       client that has read an answer sees it counted) */
	long dropped;       /* requests left unanswered (drop_every) */
	long hangups;       /* connections closed instead of answering (hangup_every) */
	long late;          /* requests answered after late_ms */
	long accepted;      /* connections accepted and served */
	long rejected;      /* connections closed at once (over max_conns) */
	long protocol_errors; /* connections closed because of a malformed request */
	long conns;         /* connections open now */
	long conns_max;     /* most connections open at once */
	long inflight;      /* requests received and not yet answered, now */
	long inflight_max;  /* most requests in flight at once, across all connections */
	long crc_errors;    /* modbus-rtu requests with a bad CRC (never answered) */
	long gap_violations; /* requests answered 0x06 because of min_gap_ms */
	long blackholed;    /* connections that went silent (blackhole_idle_ms) */
	long ignored;       /* whole requests received on a blackholed connection */
	long bad_crc_sent;  /* answers sent with a wrong CRC (rtu_bad_crc_every) */
	long resets;        /* connections reset instead of answering (reset_every) */
	long halves;        /* half answers written, connection stalled (half_every) */
	long unsolicited;   /* frames (or garbage) sent that nobody asked for (counted
	                       just before the write, as answers) */
};

struct sim;

/* Binds 127.0.0.1:opts->port and starts serving; the listener is ready when
 * it returns. Returns NULL with errno set on failure. */
struct sim *sim_start(const struct sim_opts *opts);
/* The port it listens on (kept across sim_kill/sim_revive). */
int sim_port(const struct sim *s);
enum sim_proto sim_get_proto(const struct sim *s);
/* Closes the listener and every connection, joins every thread, frees. */
void sim_stop(struct sim *s);
/* Closes the listener and every connection but keeps the object and its
 * counters: the target went away. Returns 0 (also when already down). */
int sim_kill(struct sim *s);
/* Listens again on the same port. Returns 0, -EBUSY when not killed, or
 * -errno from bind (EADDRINUSE is retried for up to 2 s). */
int sim_revive(struct sim *s);

/* A consistent snapshot of the counters. */
void sim_get_stats(struct sim *s, struct sim_stats *out);
/* Resets conns_max and inflight_max to the current values (between phases). */
void sim_reset_max(struct sim *s);
/* Changes delay_ms for the requests received from now on. */
void sim_set_delay(struct sim *s, int delay_ms);
/* Replaces the faults with those of o, for what happens from now on:
 * delay_ms, late_every, late_ms, drop_every, hangup_every, close_after,
 * reset_every, half_every, unsolicited_every_ms and unsolicited_garbage.
 * The other fields of o are ignored (they stay as sim_start set them).
 * Request numbering goes on; a connection waiting between exchanges sees a
 * new unsolicited_every_ms within 200 ms. */
void sim_set_faults(struct sim *s, const struct sim_opts *o);

/* The value the modbus simulator reads at addr for function fc (3 holding,
 * 4 input) and unit, as long as no write touched it (holding registers only;
 * input registers are never written). */
uint16_t sim_modbus_value(uint8_t fc, uint16_t addr, uint8_t unit);
/* The value of a holding register now, written or not (unit as read with). */
uint16_t sim_modbus_holding(struct sim *s, uint16_t addr, uint8_t unit);
/* CRC-16/MODBUS of len bytes (polynomial 0xA001 reflected, initial value
 * 0xFFFF). An RTU frame carries it low byte first. */
uint16_t sim_modbus_crc(const uint8_t *p, size_t len);
/* Appends the CRC to the len bytes at p (unit id + PDU), low byte first;
 * p needs len + 2 bytes. Returns len + 2. */
size_t sim_rtu_seal(uint8_t *p, size_t len);
/* The length of the whole RTU request at the start of p (framed by its
 * function code as described above), 0 when more bytes are needed, or
 * -EPROTO. The CRC is not checked. */
ssize_t sim_rtu_request_len(const uint8_t *p, size_t len);

/* out = in reversed (the iso8583 and mpu answers). in and out may not overlap. */
void sim_reverse(const uint8_t *in, uint8_t *out, size_t len);

/* HTTP/1.1 chunked body decoding (RFC 9112 section 7.1): p holds the bytes
 * after the head. Returns the length of the whole chunked body including the
 * last chunk and the trailers, 0 when more bytes are needed, or -EPROTO.
 * When out is not NULL the chunk data is copied there (it needs len bytes
 * at most) and *outlen set. */
ssize_t sim_http_dechunk(const uint8_t *p, size_t len, uint8_t *out, size_t *outlen);

/* Initialises c for timed waits on CLOCK_MONOTONIC (the simulators' and
 * the harness's deadlines). Returns 0 or an errno value, as pthreads do. */
int sim_cond_init_monotonic(pthread_cond_t *c);

/* "modbus", "echo", ..., "modbus-rtu" <-> enum; sim_proto_parse returns -1 when unknown. */
const char *sim_proto_name(enum sim_proto p);
int sim_proto_parse(const char *name);

#endif
