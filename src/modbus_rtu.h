/* Modbus RTU framing over TCP (RS485-to-Ethernet adapters): conversion
 * between MBAP and RTU frames, and where an RTU answer ends. Pure functions. */
#ifndef TCPMUX_MODBUS_RTU_H
#define TCPMUX_MODBUS_RTU_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec.h"

#define RTU_MAX_ADU 256 /* unit + 253-byte PDU + CRC */

/* CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF); sent low byte first. */
uint16_t rtu_crc16(const uint8_t *p, size_t n);

/* An MBAP request (7-byte header + PDU, len bytes) as an RTU frame (unit,
 * PDU, CRC) in out (RTU_MAX_ADU bytes). Returns its length, or refuses it
 * as modbus_request_check does: -EBADMSG when the PDU is not exactly as
 * long as its function defines (a device that frames RTU by function code
 * would run trailing bytes as a request of their own), -EOPNOTSUPP for an
 * unknown function (no length to check). */
ssize_t rtu_from_mbap(const uint8_t *mbap, size_t len, uint8_t *out);

/* An RTU answer (CRC checked by the caller's framer) as an MBAP frame with
 * transaction id tid in out (MODBUS_MAX_ADU bytes). Returns its length. */
size_t rtu_to_mbap(const uint8_t *rtu, size_t len, uint16_t tid, uint8_t *out);

/* Frames an RTU answer: its length by function code (exceptions are 5
 * bytes), or, for function codes whose length the answer does not tell,
 * the first length whose CRC matches. Returns > 0 for a whole frame with a
 * good CRC, 0 for more bytes, -EPROTO for a bad CRC or a malformed answer. */
ssize_t rtu_response_frame(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof);

#endif
