/* Tests for src/modbus.c: exception replies, upstream ids, the read-only
 * policy and its write allow-list. */
#include "config.h"

#include <check.h>
#include <string.h>

#include "modbus.h"

START_TEST(test_exception)
{
	const uint8_t req[] = { 0xAB, 0xCD, 0, 0, 0, 6, 0x11, 0x03, 0, 0, 0, 2 };
	uint8_t out[MODBUS_EXC_LEN];
	ck_assert_uint_eq(modbus_exception(req, MODBUS_EXC_GATEWAY_TARGET, out), 9);
	const uint8_t want[] = { 0xAB, 0xCD, 0, 0, 0, 3, 0x11, 0x83, 0x0B };
	ck_assert_int_eq(memcmp(out, want, sizeof want), 0);
}
END_TEST

START_TEST(test_ids_wrap)
{
	struct modbus_ids ids = { .next = 65534 };
	ck_assert_uint_eq(modbus_ids_take(&ids), 65534);
	ck_assert_uint_eq(modbus_ids_take(&ids), 65535);
	ck_assert_uint_eq(modbus_ids_take(&ids), 0);
	uint8_t adu[8] = { 0 };
	modbus_set_tid(adu, 0xBEEF);
	ck_assert_uint_eq(modbus_tid(adu), 0xBEEF);
}
END_TEST

static size_t req(uint8_t *out, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t qty_or_value)
{
	const uint8_t r[] = { 0, 1, 0, 0, 0, 6, unit, fc, (uint8_t)(addr >> 8), (uint8_t)addr,
			      (uint8_t)(qty_or_value >> 8), (uint8_t)qty_or_value };
	memcpy(out, r, sizeof r);
	return sizeof r;
}

START_TEST(test_read_only)
{
	struct modbus_policy p = { .read_only = 1 };
	uint8_t a[16];
	for (uint8_t fc = 1; fc <= 4; fc++)
		ck_assert(modbus_policy_allows(&p, a, req(a, 1, fc, 0, 1)));
	static const uint8_t writes[] = { 5, 6, 15, 16, 22, 23, 8, 0x41, 0x64 };
	for (size_t i = 0; i < sizeof writes; i++)
		ck_assert_msg(!modbus_policy_allows(&p, a, req(a, 1, writes[i], 0, 1)), "fc %u", writes[i]);
	const uint8_t devid[] = { 0, 1, 0, 0, 0, 5, 1, 43, 0x0E, 1, 0 };
	ck_assert(modbus_policy_allows(&p, devid, sizeof devid));
	const uint8_t canopen[] = { 0, 1, 0, 0, 0, 5, 1, 43, 0x0D, 1, 0 };
	ck_assert(!modbus_policy_allows(&p, canopen, sizeof canopen));
	struct modbus_policy open = { .read_only = 0 };
	ck_assert(modbus_policy_allows(&open, a, req(a, 1, 16, 0, 1)));
}
END_TEST

START_TEST(test_allow_write)
{
	struct modbus_policy p = { .read_only = 1, .nallow = 1 };
	ck_assert_int_eq(modbus_parse_write_range("3:100-109", &p.allow[0]), 0);
	uint8_t a[16];
	ck_assert(modbus_policy_allows(&p, a, req(a, 3, 6, 100, 7)));
	ck_assert(modbus_policy_allows(&p, a, req(a, 3, 6, 109, 7)));
	ck_assert(!modbus_policy_allows(&p, a, req(a, 3, 6, 110, 7)));
	ck_assert(!modbus_policy_allows(&p, a, req(a, 3, 6, 99, 7)));
	ck_assert(!modbus_policy_allows(&p, a, req(a, 4, 6, 105, 7)));     /* other unit */
	ck_assert(modbus_policy_allows(&p, a, req(a, 3, 16, 100, 10)));    /* 100..109 */
	ck_assert(!modbus_policy_allows(&p, a, req(a, 3, 16, 100, 11)));   /* 100..110: sticks out */
	ck_assert(!modbus_policy_allows(&p, a, req(a, 3, 16, 105, 0)));    /* quantity 0 */
	ck_assert(modbus_policy_allows(&p, a, req(a, 3, 5, 101, 0xFF00))); /* a coil */
	ck_assert(modbus_policy_allows(&p, a, req(a, 3, 15, 108, 2)));
	ck_assert(!modbus_policy_allows(&p, a, req(a, 3, 22, 100, 1)));    /* mask write: not listed */
}
END_TEST

START_TEST(test_parse_range)
{
	struct modbus_write_range r;
	ck_assert_int_eq(modbus_parse_write_range("1:40100", &r), 0);
	ck_assert_uint_eq(r.unit, 1);
	ck_assert_uint_eq(r.first, 40100);
	ck_assert_uint_eq(r.last, 40100);
	ck_assert_int_eq(modbus_parse_write_range("255:0x10-0x1f", &r), 0);
	ck_assert_uint_eq(r.first, 16);
	ck_assert_uint_eq(r.last, 31);
	ck_assert_int_eq(modbus_parse_write_range("1:0100", &r), 0); /* decimal, not octal */
	ck_assert_uint_eq(r.first, 100);
	static const char *const bad[] = { "", "1", "1:", ":5", "256:1", "1:70000", "1:9-3", "x:1", "1:1-",
					   "1:-3", "1:2-3-4", "-1:5" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(modbus_parse_write_range(bad[i], &r) < 0, "'%s' should be refused", bad[i]);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("modbus");
	TCase *tc = tcase_create("mbap");
	tcase_add_test(tc, test_exception);
	tcase_add_test(tc, test_ids_wrap);
	suite_add_tcase(s, tc);
	tc = tcase_create("policy");
	tcase_add_test(tc, test_read_only);
	tcase_add_test(tc, test_allow_write);
	tcase_add_test(tc, test_parse_range);
	suite_add_tcase(s, tc);
	return s;
}
