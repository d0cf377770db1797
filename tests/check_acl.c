/* Tests for src/acl.c: parsing networks and matching peers, IPv4, IPv6 and
 * IPv4-mapped IPv6. */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>

#include "acl.h"
#include "testing.h"

static struct sockaddr_storage peer(const char *addr)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else
		ck_abort_msg("bad test address %s", addr);
	return ss;
}

static const struct { const char *net, *addr; int allowed; } cases[] = {
	{ "192.0.2.0/24", "192.0.2.77", 1 },
	{ "192.0.2.0/24", "192.0.3.1", 0 },
	{ "192.0.2.7", "192.0.2.7", 1 },
	{ "192.0.2.7", "192.0.2.8", 0 },
	{ "10.0.0.0/8", "10.255.1.2", 1 },
	{ "10.0.0.0/8", "11.0.0.1", 0 },
	{ "192.0.2.128/25", "192.0.2.127", 0 },
	{ "192.0.2.128/25", "192.0.2.200", 1 },
	{ "192.0.2.99/24", "192.0.2.1", 1 },     /* host bits ignored */
	{ "0.0.0.0/0", "203.0.113.9", 1 },
	{ "0.0.0.0/0", "::1", 0 },               /* an IPv4 rule does not match IPv6 */
	{ "127.0.0.0/8", "::ffff:127.0.0.1", 1 },  /* IPv4-mapped peer on a dual-stack socket */
	{ "2001:db8::/32", "2001:db8:1::5", 1 },
	{ "2001:db8::/32", "2001:db9::5", 0 },
	{ "::1", "::1", 1 },
	{ "::1", "127.0.0.1", 0 },
	{ "fd00::/7", "fdff::1", 1 },
	{ "fd00::/8", "fe80::1", 0 },
	{ "2001:db8::/33", "2001:db8:8000::1", 0 },
	/* v4-mapped forms compare as the IPv4 address they carry, on both sides */
	{ "::ffff:127.0.0.1", "127.0.0.1", 1 },
	{ "::ffff:127.0.0.1", "::ffff:127.0.0.1", 1 },
	{ "::ffff:127.0.0.1", "127.0.0.2", 0 },
	{ "::ffff:192.0.2.0/120", "192.0.2.200", 1 },
	{ "::ffff:192.0.2.0/120", "192.0.3.1", 0 },
	{ "::ffff:0.0.0.0/96", "198.51.100.7", 1 },
	{ "::ffff:0.0.0.0/96", "2001:db8::1", 0 },
	{ "127.0.0.1", "::ffff:127.0.0.1", 1 },
	{ "127.0.0.1", "::ffff:127.0.0.2", 0 },
	{ "192.0.2.0/24", "::ffff:192.0.2.9", 1 },
	{ "0.0.0.0/0", "::ffff:10.1.2.3", 1 },
	{ "0.0.0.0/0", "::", 0 },
	/* an IPv6 rule covering ::ffff:0:0/96 admits IPv4 clients (dual stack) */
	{ "::/0", "127.0.0.1", 1 },
	{ "::/0", "203.0.113.9", 1 },
	{ "::/0", "2001:db8::1", 1 },
	{ "::/0", "::ffff:127.0.0.1", 1 },
	{ "::/80", "192.0.2.1", 1 },
	{ "::/97", "192.0.2.1", 0 },              /* ::/97 is ::0:0/97, not the mapped block */
	{ "2001:db8::/32", "192.0.2.1", 0 },
	{ "::1", "::ffff:0.0.0.1", 0 },
	{ "::ffff:127.0.0.1", "::1", 0 },
};

START_TEST(test_match)
{
	struct acl_entry e;
	ck_assert_int_eq(acl_parse(cases[_i].net, &e), 0);
	struct sockaddr_storage ss = peer(cases[_i].addr);
	ck_assert_msg(acl_allows(&e, 1, &ss) == cases[_i].allowed, "%s vs %s", cases[_i].net, cases[_i].addr);
}
END_TEST

START_TEST(test_bad)
{
	static const char *const bad[] = { "", "/24", "192.0.2.0/33", "::/129", "192.0.2.0/", "192.0.2.0/x",
					   "192.0.2", "host.example", "192.0.2.0/-1", "192.0.2.0/24/1", "1.2.3.4 ",
					   "::ffff:1.2.3.4/129", "10.0.0.0/120" };
	struct acl_entry e;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(acl_parse(bad[i], &e) < 0, "'%s' should be refused", bad[i]);
}
END_TEST

START_TEST(test_lists)
{
	struct acl_entry list[2];
	ck_assert_int_eq(acl_parse("192.0.2.0/24", &list[0]), 0);
	ck_assert_int_eq(acl_parse("2001:db8::/32", &list[1]), 0);
	struct sockaddr_storage a = peer("2001:db8::1"), b = peer("198.51.100.1");
	ck_assert(acl_allows(list, 2, &a));
	ck_assert(!acl_allows(list, 2, &b));
	ck_assert(acl_allows(list, 0, &b)); /* no --allow: everyone */
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("acl");
	TM_LOOPS(s, "cidr", 0, TM_LOOP(test_match, cases), TM_ONCE(test_bad), TM_ONCE(test_lists));
	return s;
}
