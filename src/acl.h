/* Access control: which client addresses may connect (--allow CIDR). */
#ifndef TCPMUX_ACL_H
#define TCPMUX_ACL_H

#include <stdint.h>
#include <sys/socket.h>

#define ACL_MAX 64

/* Rules and peers are both compared in IPv6 form, IPv4 as ::ffff:a.b.c.d
 * (RFC 4291 §2.5.5.2), so a rule written either way matches a client
 * seen either way: 127.0.0.1 and ::ffff:127.0.0.1 are one address. */
struct acl_entry {
	int family;	  /* as written: AF_INET or AF_INET6 */
	uint8_t addr[16]; /* IPv6 form, network byte order */
	int prefix;	  /* 0..128, over the IPv6 form (IPv4 /24 is /120) */
};

/* "192.0.2.0/24", "192.0.2.7" (a /32), "2001:db8::/32", "::1",
 * "::ffff:192.0.2.0/120". Host bits beyond the prefix are ignored.
 * Returns 0 or -EINVAL. */
int acl_parse(const char *s, struct acl_entry *out);
/* Whether peer lies in any of the n entries. n == 0 allows everyone. An
 * IPv4 peer matches IPv4 rules, IPv4-mapped rules and IPv6 rules that
 * cover ::ffff:0:0/96 (such as ::/0); a native IPv6 peer never matches
 * an IPv4 rule. */
int acl_allows(const struct acl_entry *list, int n, const struct sockaddr_storage *peer);

#endif
