/* Modbus/TCP (MBAP) helpers shared by the codec and the exchange, and the
 * one function-code classifier behind the request check, the read-only
 * policy and read sharing (Modbus Application Protocol v1.1b3, section 6). */
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

/* The optional address space between the unit and the range. Returns the
 * MODBUS_RANGE_* bits and moves *s past "coils:" or "registers:". */
static uint8_t parse_space(const char **s)
{
	static const struct {
		const char *name;
		uint8_t bits;
	} spaces[] = {
		{ "coils:", MODBUS_RANGE_COILS },
		{ "registers:", MODBUS_RANGE_REGISTERS },
	};
	for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++) {
		size_t n = strlen(spaces[i].name);
		if (strncmp(*s, spaces[i].name, n) == 0) {
			*s += n;
			return spaces[i].bits;
		}
	}
	/* without one, as before the spaces were told apart: both */
	return MODBUS_RANGE_COILS | MODBUS_RANGE_REGISTERS;
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
	uint8_t spaces = parse_space(&a);
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
	out->spaces = spaces;
	out->first = (uint16_t)first;
	out->last = (uint16_t)last;
	return 0;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

enum modbus_access modbus_access_of(const uint8_t *pdu, size_t len)
{
	switch (pdu[0]) {
	case 1:
	case 2:
	case 3:
	case 4:
	case 7:
	case 11:
	case 12:
	case 17:
	case 20:
	case 24:
		return MODBUS_READ;
	case 5:
	case 6:
	case 15:
	case 16:
	case 21:
	case 22:
	case 23:
		return MODBUS_WRITE;
	case 8:
		return MODBUS_CONTROL;
	case 43:
		/* 6.21: MEI type 0x0E reads the device identification; 0x0D
		 * (CANopen) carries arbitrary requests, writes included */
		return len >= 2 && pdu[1] == 0x0E ? MODBUS_READ : MODBUS_UNKNOWN;
	default:
		return MODBUS_UNKNOWN;
	}
}

/* A write of qty items from the address at pdu + 1 into space. */
static void wrote(struct modbus_class *c, enum modbus_space space, const uint8_t *at, uint32_t qty)
{
	c->space = space;
	c->first = be16(at);
	c->last = c->first + qty - 1;
}

/* 6.1-6.4: address (2), quantity (2) of 1..max. */
static int check_read(const uint8_t *pdu, size_t len, unsigned max)
{
	if (len != 5)
		return -EBADMSG;
	unsigned qty = be16(pdu + 3);
	return qty >= 1 && qty <= max ? 0 : -EBADMSG;
}

/* 6.11, 6.12: address (2), quantity (2) of 1..max, byte count (1) that
 * agrees with the quantity, then exactly that many bytes. */
static int check_write_multi(const uint8_t *pdu, size_t len, struct modbus_class *c)
{
	int coils = pdu[0] == 15;
	if (len < 6)
		return -EBADMSG;
	unsigned qty = be16(pdu + 3), count = pdu[5];
	unsigned max = coils ? 0x7B0 : 0x7B;
	unsigned want = coils ? (qty + 7) / 8 : 2 * qty;
	if (qty < 1 || qty > max || count != want || len != 6 + count)
		return -EBADMSG;
	wrote(c, coils ? MODBUS_SPACE_COILS : MODBUS_SPACE_REGISTERS, pdu + 1, qty);
	return 0;
}

/* 6.17: read address and quantity (1..125), write address and quantity
 * (1..121), write byte count (2 per register), the values. */
static int check_read_write(const uint8_t *pdu, size_t len, struct modbus_class *c)
{
	if (len < 10)
		return -EBADMSG;
	unsigned rq = be16(pdu + 3), wq = be16(pdu + 7), count = pdu[9];
	if (rq < 1 || rq > 0x7D || wq < 1 || wq > 0x79 || count != 2 * wq || len != 10 + count)
		return -EBADMSG;
	wrote(c, MODBUS_SPACE_REGISTERS, pdu + 5, wq);
	return 0;
}

/* 6.14, 6.15: a byte count, then sub-requests of reference type 6, file
 * (2), record (2) and record length (2), plus for writes the record data
 * (2 per register); they must fill the byte count exactly. */
static int check_file(const uint8_t *pdu, size_t len)
{
	int write = pdu[0] == 21;
	if (len < 2)
		return -EBADMSG;
	size_t count = pdu[1];
	if (count < (write ? 0x09u : 0x07u) || count > (write ? 0xFBu : 0xF5u) || len != 2 + count)
		return -EBADMSG;
	/* each sub-request takes at least 7 bytes: at most 36 steps */
	for (size_t at = 2; at < len;) {
		if (len - at < 7 || pdu[at] != 6)
			return -EBADMSG;
		size_t data = write ? 2 * (size_t)be16(pdu + at + 5) : 0;
		if (write && data == 0)
			return -EBADMSG;
		if (data > len - at - 7)
			return -EBADMSG;
		at += 7 + data;
	}
	return 0;
}

/* 6.8: sub-function (2), then data of 2 bytes, or for 0 (return query
 * data, echoed back) any number of 2-byte words. */
static int check_diagnostics(const uint8_t *pdu, size_t len)
{
	if (len < 5)
		return -EBADMSG;
	if (be16(pdu + 1) == 0)
		return (len - 3) % 2 == 0 ? 0 : -EBADMSG;
	return len == 5 ? 0 : -EBADMSG;
}

/* The exact layouts of section 6, function by function. */
static int check_layout(const uint8_t *pdu, size_t len, struct modbus_class *c)
{
	switch (pdu[0]) {
	case 1:
	case 2:
		return check_read(pdu, len, 0x7D0);
	case 3:
	case 4:
		return check_read(pdu, len, 0x7D);
	case 5:
		if (len != 5 || (be16(pdu + 3) != 0x0000 && be16(pdu + 3) != 0xFF00))
			return -EBADMSG; /* 6.5: any other value is illegal */
		wrote(c, MODBUS_SPACE_COILS, pdu + 1, 1);
		return 0;
	case 6:
		if (len != 5)
			return -EBADMSG;
		wrote(c, MODBUS_SPACE_REGISTERS, pdu + 1, 1);
		return 0;
	case 7:
	case 11:
	case 12:
	case 17:
		return len == 1 ? 0 : -EBADMSG; /* the function code alone */
	case 8:
		return check_diagnostics(pdu, len);
	case 15:
	case 16:
		return check_write_multi(pdu, len, c);
	case 20:
	case 21:
		c->space = pdu[0] == 21 ? MODBUS_SPACE_FILES : MODBUS_SPACE_NONE;
		return check_file(pdu, len);
	case 22:
		if (len != 7)
			return -EBADMSG; /* 6.16: address, AND mask, OR mask */
		wrote(c, MODBUS_SPACE_REGISTERS, pdu + 1, 1);
		return 0;
	case 23:
		return check_read_write(pdu, len, c);
	case 24:
		return len == 3 ? 0 : -EBADMSG; /* FIFO pointer address */
	case 43:
		/* 6.21: MEI type 0x0E, read device id code 1..4, object id */
		return len == 4 && pdu[2] >= 1 && pdu[2] <= 4 ? 0 : -EBADMSG;
	default:
		return -EOPNOTSUPP;
	}
}

int modbus_pdu_check(const uint8_t *pdu, size_t len, struct modbus_class *out)
{
	memset(out, 0, sizeof *out);
	if (len < 1)
		return -EBADMSG;
	out->access = modbus_access_of(pdu, len);
	if (out->access == MODBUS_UNKNOWN)
		return -EOPNOTSUPP;
	return check_layout(pdu, len, out);
}

/* The PDU of a whole MBAP request, whose length field must agree with len. */
static int request_class(const uint8_t *adu, size_t len, struct modbus_class *c)
{
	memset(c, 0, sizeof *c);
	if (len < MODBUS_MBAP_LEN + 1 || len > MODBUS_MAX_ADU || (size_t)be16(adu + 4) + 6 != len)
		return -EBADMSG;
	return modbus_pdu_check(adu + MODBUS_MBAP_LEN, len - MODBUS_MBAP_LEN, c);
}

int modbus_request_check(const uint8_t *adu, size_t len)
{
	struct modbus_class c;
	return request_class(adu, len, &c);
}

/* Under --modbus-read-only: a write passes when one range of its device
 * unit and its address space holds all of it. */
static int write_allowed(const struct modbus_policy *p, uint8_t dev_unit, const struct modbus_class *c)
{
	if (c->space != MODBUS_SPACE_COILS && c->space != MODBUS_SPACE_REGISTERS)
		return 0;
	for (int i = 0; i < p->nallow; i++) {
		const struct modbus_write_range *r = &p->allow[i];
		if (r->unit == dev_unit && (r->spaces & (1u << c->space)) && c->first >= r->first &&
		    c->last <= r->last)
			return 1;
	}
	return 0;
}

int modbus_admit(const struct modbus_policy *p, const uint8_t unit_map[256], int rtu, const uint8_t *adu,
		 size_t len)
{
	struct modbus_class c;
	int rc = request_class(adu, len, &c);
	if (rc == -EOPNOTSUPP)
		return p->read_only ? -EPERM : rtu ? -EOPNOTSUPP : 0;
	/* the spec's order (section 7 state diagrams): an unsupported function
	 * (here: one the policy never lets through) before a bad value */
	if (p->read_only && c.access != MODBUS_READ &&
	    (c.access != MODBUS_WRITE || c.space == MODBUS_SPACE_FILES))
		return -EPERM;
	if (rc < 0)
		return rc;
	if (p->read_only && c.access == MODBUS_WRITE) {
		uint8_t dev_unit = unit_map ? unit_map[modbus_unit(adu)] : modbus_unit(adu);
		if (!write_allowed(p, dev_unit, &c))
			return -EPERM;
	}
	return 0;
}

uint8_t modbus_refusal_code(int rc)
{
	return rc == -EBADMSG ? MODBUS_EXC_ILLEGAL_VALUE : MODBUS_EXC_ILLEGAL_FUNCTION;
}
