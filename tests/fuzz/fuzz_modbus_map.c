/* libFuzzer target for the Modbus id and unit mapping, the answer checks,
 * the RTU conversion and framer, the function-code classifier, the request
 * check, the read-only policy and the read-sharing keys: the input is a
 * request followed by an answer. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "modbus.h"
#include "modbus_rtu.h"
#include "readshare.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	struct frame_ctx ctx = { .max_frame = MODBUS_MAX_ADU };
	size_t reqlen = data[0] % 64;
	int tid = data[1] % 2 ? (int)data[2] * 257 : -1;
	data += 3;
	size -= 3;
	if (reqlen > size)
		reqlen = size;

	/* a request as the framer accepts it */
	ssize_t n = codec_modbus.request(&ctx, data, reqlen, 0);
	if (n <= 0)
		return 0;
	uint8_t req[MODBUS_MAX_ADU], orig[MODBUS_MAX_ADU], saved[7];
	memcpy(req, data, (size_t)n);
	memcpy(orig, data, (size_t)n);

	uint8_t map[256];
	for (int i = 0; i < 256; i++)
		map[i] = (uint8_t)(i ^ (size & 0xFF));
	modbus_map_request(req, map, tid, saved);
	check(req[6] == map[orig[6]]);
	if (tid >= 0)
		check(modbus_tid(req) == (uint16_t)tid);
	check(memcmp(req + 7, orig + 7, (size_t)n - 7) == 0);

	/* the RTU conversion takes exactly the requests the check admits, and
	 * the round trip keeps unit and PDU */
	uint8_t rtu[RTU_MAX_ADU], back[MODBUS_MAX_ADU];
	int exact = modbus_request_check(req, (size_t)n);
	ssize_t rl = rtu_from_mbap(req, (size_t)n, rtu);
	check(exact < 0 ? rl == exact : rl == n - 6 + 2);
	if (rl > 0) {
		check(rtu_crc16(rtu, (size_t)rl) == 0); /* a frame with its CRC appended checks to zero */
		size_t bl = rtu_to_mbap(rtu, (size_t)rl, 0x1234, back);
		check(bl == (size_t)n && memcmp(back + 6, req + 6, (size_t)n - 6) == 0);
	}

	modbus_restore_request(req, saved);
	check(memcmp(req, orig, (size_t)n) == 0);

	/* the rest is an answer: framed as MBAP and as RTU */
	const uint8_t *ans = data + reqlen;
	size_t alen = size - reqlen;
	ssize_t an = codec_modbus.response(&ctx, ans, alen, 0);
	if (an > 0 && modbus_answer_fits(req, ans, (size_t)an)) {
		uint8_t a[MODBUS_MAX_ADU];
		memcpy(a, ans, (size_t)an);
		modbus_answer_for(a, req);
		check(modbus_tid(a) == modbus_tid(orig) && a[6] == orig[6]);
		check((modbus_function(a) & 0x7F) == modbus_function(orig));
	}
	ssize_t rn = rtu_response_frame(&ctx, ans, alen, 0);
	check(rn <= (ssize_t)alen && rn <= RTU_MAX_ADU);
	if (rn > 0)
		check(rtu_crc16(ans, (size_t)rn) == 0);

	/* the one classifier: the policy, the request check and read sharing agree */
	struct modbus_policy p = { .read_only = 1, .nallow = 1,
				   .allow = { { .unit = map[orig[6]], .spaces = MODBUS_RANGE_REGISTERS,
						.first = 10, .last = 20 } } };
	struct modbus_policy open = { .read_only = 0 };
	struct modbus_class c;
	int rc = modbus_pdu_check(orig + 7, (size_t)n - 7, &c);
	int ro = modbus_admit(&p, map, data[0] & 1, orig, (size_t)n);
	int tcp = modbus_admit(&open, map, 0, orig, (size_t)n);
	check(rc == exact && c.access == modbus_access_of(orig + 7, (size_t)n - 7));
	check(rc == -EOPNOTSUPP ? tcp == 0 : tcp == rc);
	if (ro == 0) /* what passes the policy is exact, a read, or a write inside the range */
		check(rc == 0 && (c.access == MODBUS_READ ||
				  (c.space == MODBUS_SPACE_REGISTERS && c.first >= 10 && c.last <= 20)));
	if (rc == 0 && c.access == MODBUS_READ)
		check(ro == 0 && !readshare_is_write(orig, (size_t)n));
	if (c.access != MODBUS_READ)
		check(ro != 0 || c.access == MODBUS_WRITE);
	if (c.access == MODBUS_WRITE || c.access == MODBUS_CONTROL || c.access == MODBUS_UNKNOWN)
		check(readshare_is_write(orig, (size_t)n));

	struct readshare_key k;
	if (readshare_key_of(orig, (size_t)n, 7, &k))
		check(k.fc >= 1 && k.fc <= 4 && k.unit == 7 && !readshare_is_write(orig, (size_t)n));
	return 0;
}
