/* Access control: which client addresses may connect (--allow CIDR). */
#include "config.h"
#include "acl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* The first 12 bytes of an IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2). */
static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int acl_parse(const char *s, struct acl_entry *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	if (hlen == 0 || hlen >= sizeof host)
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';

	memset(out, 0, sizeof *out);
	int bits;
	if (inet_pton(AF_INET, host, out->addr + 12) == 1) {
		memcpy(out->addr, v4_mapped, sizeof v4_mapped);
		out->family = AF_INET;
		bits = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		bits = 128;
	} else {
		return -EINVAL;
	}
	long v = bits;
	if (slash) {
		const char *p = slash + 1;
		char *end;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = strtol(p, &end, 10);
		if (*end != '\0' || v < 0 || v > bits)
			return -EINVAL;
	}
	out->prefix = (int)v + 128 - bits;
	return 0;
}

static int prefix_match(const uint8_t *a, const uint8_t *net, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;
	if (memcmp(a, net, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (net[full] & mask);
}

int acl_allows(const struct acl_entry *list, int n, const struct sockaddr_storage *peer)
{
	if (n == 0)
		return 1;
	uint8_t addr[16];
	if (peer->ss_family == AF_INET) {
		memcpy(addr, v4_mapped, sizeof v4_mapped);
		memcpy(addr + 12, &((const struct sockaddr_in *)peer)->sin_addr, 4);
	} else if (peer->ss_family == AF_INET6) {
		memcpy(addr, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
	} else {
		return 0;
	}
	for (int i = 0; i < n; i++)
		if (prefix_match(addr, list[i].addr, list[i].prefix))
			return 1;
	return 0;
}
