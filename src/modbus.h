/* Modbus/TCP (MBAP) helpers shared by the codec and the exchange. */
#ifndef TCPMUX_MODBUS_H
#define TCPMUX_MODBUS_H

#include <stddef.h>
#include <stdint.h>

#define MODBUS_MBAP_LEN 7        /* tid, pid, length, unit id */
#define MODBUS_MAX_ADU 260       /* 7-byte MBAP + 253-byte PDU */
#define MODBUS_EXC_LEN 9         /* MBAP + function | 0x80 + code */

/* Exception codes (Modbus Application Protocol v1.1b3, section 7). */
#define MODBUS_EXC_ILLEGAL_FUNCTION 0x01
#define MODBUS_EXC_ILLEGAL_VALUE 0x03     /* illegal data value: a request of the wrong length */
#define MODBUS_EXC_GATEWAY_PATH 0x0A      /* gateway path unavailable */
#define MODBUS_EXC_GATEWAY_TARGET 0x0B    /* gateway target failed to respond */

static inline uint16_t modbus_tid(const uint8_t *adu) { return (uint16_t)(adu[0] << 8 | adu[1]); }
static inline void modbus_set_tid(uint8_t *adu, uint16_t tid) { adu[0] = (uint8_t)(tid >> 8); adu[1] = (uint8_t)tid; }
static inline uint8_t modbus_unit(const uint8_t *adu) { return adu[6]; }
static inline uint8_t modbus_function(const uint8_t *adu) { return adu[7]; }

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

/* Policy: which requests may reach the device. */
#define MODBUS_MAX_WRITE_RANGES 32

struct modbus_write_range {
	uint8_t unit;
	uint16_t first, last;   /* inclusive */
};

struct modbus_policy {
	int read_only;          /* only function codes 1-4 and 43/14 pass... */
	int nallow;             /* ...and writes wholly inside one of these */
	struct modbus_write_range allow[MODBUS_MAX_WRITE_RANGES];
};

/* "UNIT:ADDR" or "UNIT:FIRST-LAST" (decimal, or hex with 0x). Returns 0 or -EINVAL. */
int modbus_parse_write_range(const char *s, struct modbus_write_range *out);
/* Whether the request adu (a whole MBAP frame of len bytes) may be sent. */
int modbus_policy_allows(const struct modbus_policy *p, const uint8_t *adu, size_t len);

#endif
