/* Modbus/TCP (MBAP) helpers shared by the codec and the exchange. */
#include "config.h"
#include "modbus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t modbus_exception(const uint8_t *req, uint8_t code, uint8_t *out)
{
	out[0] = req[0];
	out[1] = req[1];
	out[2] = 0;
	out[3] = 0;
	out[4] = 0;
	out[5] = 3; /* unit id, function, exception code */
	out[6] = req[6];
	out[7] = (uint8_t)(req[7] | 0x80);
	out[8] = code;
	return MODBUS_EXC_LEN;
}

uint16_t modbus_ids_take(struct modbus_ids *ids)
{
	return ids->next++;
}

void modbus_map_request(uint8_t *req, const uint8_t map[256], int tid, uint8_t saved[7])
{
	memcpy(saved, req, 7);
	req[6] = map[req[6]];
	if (tid >= 0)
		modbus_set_tid(req, (uint16_t)tid);
}

void modbus_restore_request(uint8_t *req, const uint8_t saved[7])
{
	memcpy(req, saved, 7);
}

int modbus_answer_fits(const uint8_t *req, const uint8_t *ans, size_t n)
{
	/* an answer to another function is another request's answer: never deliver it */
	return n >= 8 && (modbus_function(ans) & 0x7F) == modbus_function(req);
}

void modbus_answer_for(uint8_t *ans, const uint8_t *req)
{
	ans[0] = req[0];
	ans[1] = req[1];
	ans[6] = req[6];
}

static int parse_u16(const char *s, const char *end, unsigned long max, unsigned long *out)
{
	char *e;
	if (s == end || *s < '0' || *s > '9')
		return -EINVAL;
	/* decimal, or hex with 0x: a leading zero is not octal here */
	int base = (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10;
	errno = 0;
	unsigned long v = strtoul(s, &e, base);
	if (errno != 0 || e != end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int modbus_parse_write_range(const char *s, struct modbus_write_range *out)
{
	const char *colon = s, *dash;
	while (*colon && *colon != ':')
		colon++;
	if (*colon != ':')
		return -EINVAL;
	unsigned long unit, first, last;
	if (parse_u16(s, colon, 255, &unit) < 0)
		return -EINVAL;
	const char *a = colon + 1;
	for (dash = a; *dash && *dash != '-'; dash++)
		;
	if (parse_u16(a, dash, 65535, &first) < 0)
		return -EINVAL;
	last = first;
	if (*dash == '-') {
		const char *b = dash + 1, *end = b;
		while (*end)
			end++;
		if (parse_u16(b, end, 65535, &last) < 0 || last < first)
			return -EINVAL;
	}
	out->unit = (uint8_t)unit;
	out->first = (uint16_t)first;
	out->last = (uint16_t)last;
	return 0;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The register or coil range a write touches: functions 5, 6 (one), 15,
 * 16 (a quantity). Returns 0, or -EINVAL for anything else. */
static int write_range(const uint8_t *adu, size_t len, uint32_t *first, uint32_t *last)
{
	uint8_t fc = modbus_function(adu);
	if ((fc == 5 || fc == 6) && len >= 12) {
		*first = *last = be16(adu + 8);
		return 0;
	}
	if ((fc == 15 || fc == 16) && len >= 12) {
		uint32_t qty = be16(adu + 10);
		if (qty == 0)
			return -EINVAL;
		*first = be16(adu + 8);
		*last = *first + qty - 1;
		return 0;
	}
	return -EINVAL;
}

int modbus_policy_allows(const struct modbus_policy *p, const uint8_t *adu, size_t len)
{
	if (!p->read_only)
		return 1;
	if (len < 8)
		return 0;
	uint8_t fc = modbus_function(adu);
	if (fc >= 1 && fc <= 4)
		return 1;
	/* 43/14: Read Device Identification (MEI type 0x0E); other MEI types can write */
	if (fc == 43)
		return len >= 9 && adu[8] == 0x0E;
	uint32_t first, last;
	if (write_range(adu, len, &first, &last) < 0)
		return 0;
	for (int i = 0; i < p->nallow; i++) {
		const struct modbus_write_range *r = &p->allow[i];
		if (r->unit == modbus_unit(adu) && first >= r->first && last <= r->last)
			return 1;
	}
	return 0;
}
