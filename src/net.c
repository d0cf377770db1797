/* Socket helpers: every read, write and accept with EINTR, short counts and
 * deadlines handled here and nowhere else. */
#include "config.h"
#include "net.h"
#include "timeutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int net_split_hostport(const char *s, char *host, size_t hostcap, char *port, size_t portcap)
{
	const char *h = "", *p = s;
	size_t hlen = 0;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		p = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon != NULL) {
			if (strchr(s, ':') != colon)
				return -EINVAL; /* a bare IPv6 address needs brackets */
			h = s;
			hlen = (size_t)(colon - s);
			p = colon + 1;
		}
	}
	if (hlen >= hostcap || strlen(p) >= portcap || p[0] == '\0')
		return -EINVAL;
	for (const char *c = p; *c; c++)
		if (*c < '0' || *c > '9')
			return -EINVAL;
	long v = strtol(p, NULL, 10);
	if (strlen(p) > 5 || v > 65535)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memcpy(port, p, strlen(p) + 1);
	return 0;
}

static int gai_errno(int rc)
{
	switch (rc) {
	case EAI_NONAME:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
		return -EHOSTUNREACH;
	case EAI_AGAIN:
		return -EAGAIN;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return -errno;
	default:
		return -EINVAL;
	}
}

int net_listen(const char *host, const char *port, int backlog)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0)
		return gai_errno(rc);

	/* With no host, prefer the IPv6 wildcard with V6ONLY off: one socket for both families. */
	int err = -EADDRNOTAVAIL;
	for (int pass = 0; pass < 2; pass++) {
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			if (!host[0] && (pass == 0) != (ai->ai_family == AF_INET6))
				continue;
			if (host[0] && pass == 1)
				continue;
			int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd < 0) {
				err = -errno;
				continue;
			}
			int one = 1, zero = 0;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
			if (ai->ai_family == AF_INET6 && !host[0])
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0) {
				freeaddrinfo(res);
				return fd;
			}
			err = -errno;
			close(fd);
		}
	}
	freeaddrinfo(res);
	return err;
}

void net_tune(int fd)
{
	int one = 1, idle = 60, intvl = 10, cnt = 5;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	for (;;) {
		int rc = poll(&pfd, 1, time_left_ms(deadline));
		if (rc > 0)
			return 0;
		if (rc == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int connect_one(const struct addrinfo *ai, int64_t deadline)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
	if (rc < 0 && errno != EINPROGRESS && errno != EINTR) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (rc < 0) {
		rc = wait_fd(fd, POLLOUT, deadline);
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			rc = -errno;
		else if (rc == 0 && soerr != 0)
			rc = -soerr;
		if (rc < 0) {
			close(fd);
			return rc;
		}
	}
	int flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	net_tune(fd);
	return fd;
}

int net_connect(const char *host, const char *port, int64_t deadline)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0)
		return gai_errno(rc);
	int fd = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		fd = connect_one(ai, deadline);
		if (fd >= 0 || fd == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return fd;
}

int net_accept(int lfd, struct net_addr *peer)
{
	for (;;) {
		peer->len = sizeof peer->ss;
		int fd = accept4(lfd, (struct sockaddr *)&peer->ss, &peer->len, SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != EINTR)
			return -errno;
	}
}

ssize_t net_read(int fd, void *buf, size_t cap, int64_t deadline)
{
	for (;;) {
		int rc = wait_fd(fd, POLLIN, deadline);
		if (rc < 0)
			return rc;
		ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = read(fd, buf, cap); /* a serial port, opened O_NONBLOCK */
		if (n >= 0)
			return n;
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
	}
}

int net_set_recv_timeout(int fd, int64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
	return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ? -errno : 0;
}

ssize_t net_recv_wait(int fd, void *buf, size_t cap)
{
	for (;;) {
		ssize_t n = recv(fd, buf, cap, 0);
		if (n >= 0)
			return n;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int net_write_all(int fd, const void *buf, size_t len, int64_t deadline)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len); /* a serial port, opened O_NONBLOCK */
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int rc = wait_fd(fd, POLLOUT, deadline);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void net_addr_str(const struct net_addr *a, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;
		inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
		port = ntohs(s->sin_port);
		snprintf(out, cap, "%s:%u", host, port);
	} else if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->ss;
		port = ntohs(s->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
			inet_ntop(AF_INET, &s->sin6_addr.s6_addr[12], host, sizeof host);
			snprintf(out, cap, "%s:%u", host, port);
		} else {
			inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
			snprintf(out, cap, "[%s]:%u", host, port);
		}
	} else {
		snprintf(out, cap, "?");
	}
}

int net_peer_state(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };
	int rc;
	do
		rc = poll(&pfd, 1, 0);
	while (rc < 0 && errno == EINTR);
	if (rc <= 0)
		return 0;
	if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
		return NET_PEER_GONE;
	return pfd.revents & POLLRDHUP ? NET_PEER_SHUT : 0;
}

int net_wait_either(int fd, int watch, int shut_counts, int64_t deadline)
{
	for (;;) {
		/* POLLRDHUP only on the watched peer: its next request may
		 * already be there, and that is no reason to stop waiting */
		struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN },
					 { .fd = watch, .events = shut_counts ? POLLRDHUP : 0 } };
		int left = deadline < 0 ? -1 : time_left_ms(deadline);
		int rc = poll(pfd, 2, left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -errno;
		if (rc == 0)
			return -ETIMEDOUT;
		if (pfd[1].revents & (POLLERR | POLLHUP | POLLNVAL | POLLRDHUP))
			return 1;
		if (pfd[0].revents)
			return 0;
	}
}

int net_local_port(int fd)
{
	struct net_addr a = { .len = sizeof a.ss };
	if (getsockname(fd, (struct sockaddr *)&a.ss, &a.len) < 0)
		return -errno;
	if (a.ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&a.ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port);
}
