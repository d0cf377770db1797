/* Modbus/TCP (MBAP) helpers shared by the codec and the exchange, and the
 * one function-code classifier behind the request check, the read-only
 * policy and read sharing. */
#ifndef TCPMUX_MODBUS_H
#define TCPMUX_MODBUS_H

#include <stddef.h>
#include <stdint.h>

#define MODBUS_MBAP_LEN 7  /* tid, pid, length, unit id */
#define MODBUS_MAX_ADU 260 /* 7-byte MBAP + 253-byte PDU */
#define MODBUS_EXC_LEN 9   /* MBAP + function | 0x80 + code */

/* Exception codes (Modbus Application Protocol v1.1b3, section 7). */
#define MODBUS_EXC_ILLEGAL_FUNCTION 0x01
#define MODBUS_EXC_ILLEGAL_VALUE 0x03  /* illegal data value: lengths, counts */
#define MODBUS_EXC_GATEWAY_PATH 0x0A   /* gateway path unavailable */
#define MODBUS_EXC_GATEWAY_TARGET 0x0B /* gateway target failed to respond */

static inline uint16_t modbus_tid(const uint8_t *adu)
{
	return (uint16_t)(adu[0] << 8 | adu[1]);
}
static inline void modbus_set_tid(uint8_t *adu, uint16_t tid)
{
	adu[0] = (uint8_t)(tid >> 8);
	adu[1] = (uint8_t)tid;
}
static inline uint8_t modbus_unit(const uint8_t *adu)
{
	return adu[6];
}
static inline uint8_t modbus_function(const uint8_t *adu)
{
	return adu[7];
}

/* Builds the exception reply to the request req (at least 8 bytes: MBAP and
 * function code) into out (MODBUS_EXC_LEN bytes). Returns MODBUS_EXC_LEN. */
size_t modbus_exception(const uint8_t *req, uint8_t code, uint8_t *out);

/* Upstream transaction ids: each upstream connection numbers its requests
 * itself, so an answer is matched to the request that caused it and a late
 * answer to an abandoned request is recognised. */
struct modbus_ids {
	uint16_t next;
};
/* The id for the next request on this connection. */
uint16_t modbus_ids_take(struct modbus_ids *ids);

/* The request as the device gets it: unit id through map, and our own
 * transaction id when ids are matched (tid >= 0). saved keeps the 7 bytes
 * of MBAP header that modbus_restore_request puts back. */
void modbus_map_request(uint8_t *req, const uint8_t map[256], int tid, uint8_t saved[7]);
void modbus_restore_request(uint8_t *req, const uint8_t saved[7]);
/* Whether ans (n bytes, MBAP) can be the answer to req: the same function,
 * or its exception. */
int modbus_answer_fits(const uint8_t *req, const uint8_t *ans, size_t n);
/* Gives an answer the client's transaction id and unit id. */
void modbus_answer_for(uint8_t *ans, const uint8_t *req);

/* The one function-code classifier (Modbus Application Protocol v1.1b3,
 * section 6): what a request does, and the exact length its PDU must have.
 * The request check, the read-only policy and read sharing all use it. */
enum modbus_access {
	MODBUS_UNKNOWN, /* vendor, reserved, other MEI types: no known layout */
	MODBUS_READ,	/* 1-4, 7, 11, 12, 17, 20, 24, 43/14: reads only */
	MODBUS_WRITE,	/* 5, 6, 15, 16, 21, 22, 23: writes the data model */
	MODBUS_CONTROL, /* 8 (diagnostics): can restart or silence the device */
};

/* The separate address spaces a write lands in (section 4.3). */
enum modbus_space {
	MODBUS_SPACE_NONE,
	MODBUS_SPACE_COILS,	/* 5, 15 */
	MODBUS_SPACE_REGISTERS, /* holding registers: 6, 16, 22, 23's write part */
	MODBUS_SPACE_FILES,	/* 21: file records */
};

struct modbus_class {
	enum modbus_access access;
	enum modbus_space space; /* writes only */
	uint32_t first, last;	 /* coils or registers written, inclusive (last may pass 65535) */
};

/* What the function code (and for 43 its MEI type) of the PDU (len >= 1
 * bytes) does, without looking at the rest. */
enum modbus_access modbus_access_of(const uint8_t *pdu, size_t len);
/* Classifies the PDU (function code first, len bytes) into *out. Returns 0
 * when it has exactly the length its function defines, with byte counts
 * that agree with quantities and quantities within the spec's limits;
 * -EBADMSG when it does not (the answer is exception 0x03); -EOPNOTSUPP
 * for an unknown function (out->access MODBUS_UNKNOWN), whose length
 * nobody can check. */
int modbus_pdu_check(const uint8_t *pdu, size_t len, struct modbus_class *out);
/* The same for a whole MBAP request of len bytes (its length field must
 * agree with len). */
int modbus_request_check(const uint8_t *adu, size_t len);

/* Policy: which requests may reach the device. */
#define MODBUS_MAX_WRITE_RANGES 32

/* The spaces a write range admits: a bit per enum modbus_space. */
#define MODBUS_RANGE_COILS (1u << MODBUS_SPACE_COILS)
#define MODBUS_RANGE_REGISTERS (1u << MODBUS_SPACE_REGISTERS)

struct modbus_write_range {
	uint8_t unit;	      /* the device's unit id (after --modbus-unit-map) */
	uint8_t spaces;	      /* MODBUS_RANGE_*: coils, holding registers or both */
	uint16_t first, last; /* inclusive */
};

struct modbus_policy {
	int read_only; /* only reads pass... */
	int nallow;    /* ...and writes wholly inside one of these */
	struct modbus_write_range allow[MODBUS_MAX_WRITE_RANGES];
};

/* "UNIT:FIRST[-LAST]" (coils and holding registers), "UNIT:coils:FIRST[-LAST]"
 * or "UNIT:registers:FIRST[-LAST]"; numbers decimal, or hex with 0x.
 * Returns 0 or -EINVAL. */
int modbus_parse_write_range(const char *s, struct modbus_write_range *out);

/*
 * Whether the whole MBAP request adu (len bytes) may be sent to the device,
 * checked before anything else happens to it. unit_map (NULL: none) gives
 * the device's unit id, which write ranges name; rtu says the target speaks
 * RTU. Returns 0, or:
 *   -EBADMSG     the PDU does not have the exact length its function defines;
 *   -EPERM       the read-only policy refuses it;
 *   -EOPNOTSUPP  an unknown function over RTU: neither where its request ends
 *                for the device nor where its answer ends can be told.
 * An unknown function over Modbus/TCP passes unless the policy is on.
 */
int modbus_admit(const struct modbus_policy *p, const uint8_t unit_map[256], int rtu, const uint8_t *adu,
		 size_t len);
/* The exception code that answers a refusal from modbus_admit. */
uint8_t modbus_refusal_code(int rc);

#endif
