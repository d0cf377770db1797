/* modbus: Modbus/TCP, framed by the MBAP header (Modbus Messaging on TCP/IP
 * Implementation Guide v1.0b, section 3.1.3). */
#include "config.h"
#include "codec.h"
#include "modbus.h"

#include <errno.h>

/* Transaction id (2), protocol id (2, always 0), length (2: unit id + PDU,
 * 2..254), unit id (1), PDU. The frame is 6 + length bytes. */
static ssize_t modbus_frame(struct frame_ctx *ctx, const uint8_t *buf, size_t len, int eof)
{
	(void)eof;
	if (len >= 3 && buf[2] != 0)
		return -EPROTO;
	if (len >= 4 && buf[3] != 0)
		return -EPROTO;
	if (len < 6)
		return 0;
	size_t n = (size_t)buf[4] << 8 | buf[5];
	if (n < 2 || n > 254)
		return -EPROTO;
	if (6 + n > ctx->max_frame)
		return -EMSGSIZE;
	return len >= 6 + n ? (ssize_t)(6 + n) : 0;
}

static size_t modbus_error(const struct frame_ctx *ctx, const uint8_t *req, size_t reqlen, enum codec_err err,
			   uint8_t *out, size_t cap)
{
	(void)ctx;
	if (req == NULL || reqlen < 8 || cap < MODBUS_EXC_LEN)
		return 0;
	switch (err) {
	case CODEC_ERR_NO_UPSTREAM:
		return modbus_exception(req, MODBUS_EXC_GATEWAY_PATH, out);
	case CODEC_ERR_TIMEOUT:
	case CODEC_ERR_BAD_GATEWAY:
		return modbus_exception(req, MODBUS_EXC_GATEWAY_TARGET, out);
	case CODEC_ERR_POLICY:
		return modbus_exception(req, MODBUS_EXC_ILLEGAL_FUNCTION, out);
	case CODEC_ERR_BAD_VALUE:
		return modbus_exception(req, MODBUS_EXC_ILLEGAL_VALUE, out);
	default:
		return 0; /* a malformed request gets no answer: the client is closed */
	}
}

const struct codec codec_modbus = {
	.name = "modbus",
	.summary = "Modbus/TCP: MBAP header, answers matched by transaction id",
	.request = modbus_frame,
	.response = modbus_frame,
	.error_reply = modbus_error,
	.initial_buf = MODBUS_MAX_ADU,
	.tagged = 1,
};
