/* Modbus RTU framing over TCP (RS485-to-Ethernet adapters): conversion
 * between MBAP and RTU frames, and where an RTU answer ends. Pure functions.
 * Facts from "MODBUS over Serial Line Specification V1.02" (CRC, 2.5.1.2)
 * and "MODBUS Application Protocol V1.1b3" (answer layouts, section 6). */
#include "config.h"
#include "modbus_rtu.h"
#include "modbus.h"

#include <errno.h>
#include <string.h>

uint16_t rtu_crc16(const uint8_t *p, size_t n)
{
	uint16_t crc = 0xFFFF;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
	}
	return crc;
}

ssize_t rtu_from_mbap(const uint8_t *mbap, size_t len, uint8_t *out)
{
	int rc = modbus_request_check(mbap, len);
	if (rc < 0)
		return rc;
	size_t n = len - 6; /* unit id + PDU */
	memcpy(out, mbap + 6, n);
	uint16_t crc = rtu_crc16(out, n);
	out[n] = (uint8_t)crc;
	out[n + 1] = (uint8_t)(crc >> 8);
	return (ssize_t)(n + 2);
}

size_t rtu_to_mbap(const uint8_t *rtu, size_t len, uint16_t tid, uint8_t *out)
{
	size_t n = len - 2; /* without the CRC */
	out[0] = (uint8_t)(tid >> 8);
	out[1] = (uint8_t)tid;
	out[2] = 0;
	out[3] = 0;
	out[4] = (uint8_t)(n >> 8);
	out[5] = (uint8_t)n;
	memcpy(out + 6, rtu, n);
	return n + 6;
}

static int crc_ok(const uint8_t *buf, size_t n)
{
	uint16_t crc = rtu_crc16(buf, n - 2);
	return buf[n - 2] == (uint8_t)crc && buf[n - 1] == (uint8_t)(crc >> 8);
}

/* The length of an answer to function fc, or 0 when more bytes are needed
 * to tell, or -1 when the answer does not say (scan for the CRC). */
static ssize_t answer_length(uint8_t fc, const uint8_t *buf, size_t len)
{
	if (fc & 0x80)
		return 5; /* unit, fc, exception code, CRC */
	switch (fc) {
	case 1:
	case 2:
	case 3:
	case 4: /* reads: byte count */
	case 12:
	case 17:
	case 20:
	case 21:
	case 23:
		return len < 3 ? 0 : 3 + buf[2] + 2;
	case 8: /* 6.8: sub-function 0 echoes data of any length */
		return len < 4 ? 0 : (buf[2] == 0 && buf[3] == 0) ? -1 : 8;
	case 5:
	case 6:
	case 11:
	case 15:
	case 16:
		return 8; /* echo of address and value/quantity */
	case 7:
		return 5; /* one status byte */
	case 22:
		return 10; /* mask write: address, AND, OR */
	case 24:	   /* FIFO queue: 2-byte byte count */
		return len < 4 ? 0 : 4 + ((size_t)buf[2] << 8 | buf[3]) + 2;
	default:
		return -1; /* 43 and vendor codes */
	}
}

ssize_t rtu_response_frame(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof)
{
	(void)eof;
	if (len < 2)
		return 0;
	size_t max = ctx->max_frame < RTU_MAX_ADU ? ctx->max_frame : RTU_MAX_ADU;
	ssize_t n = answer_length(buf[1], buf, len);
	if (n == 0)
		return 0;
	if (n > 0) {
		if ((size_t)n > max)
			return -EPROTO;
		if (len < (size_t)n)
			return 0;
		return crc_ok(buf, (size_t)n) ? n : -EPROTO;
	}
	/* The answer does not tell its length: the shortest CRC match ends it. */
	size_t look = len < max ? len : max;
	for (size_t k = 4; k <= look; k++)
		if (crc_ok(buf, k))
			return (ssize_t)k;
	return len >= max ? -EPROTO : 0;
}
