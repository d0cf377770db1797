/* Access control: which client addresses may connect (--allow CIDR). */
#ifndef TCPMUX_ACL_H
#define TCPMUX_ACL_H

#include <stdint.h>
#include <sys/socket.h>

#define ACL_MAX 64

struct acl_entry {
	int family;          /* AF_INET or AF_INET6 */
	uint8_t addr[16];    /* network byte order; 4 bytes used for IPv4 */
	int prefix;          /* 0..32 or 0..128 */
};

/* "192.0.2.0/24", "192.0.2.7" (a /32), "2001:db8::/32", "::1". Host bits
 * beyond the prefix are ignored. Returns 0 or -EINVAL. */
int acl_parse(const char *s, struct acl_entry *out);
/* Whether peer lies in any of the n entries (an IPv4-mapped IPv6 peer is
 * matched as IPv4). n == 0 allows everyone. */
int acl_allows(const struct acl_entry *list, int n, const struct sockaddr_storage *peer);

#endif
