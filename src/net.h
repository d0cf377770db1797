/* Socket helpers: every read, write and accept with EINTR, short counts and
 * deadlines handled here and nowhere else. Deadlines are absolute
 * time_now_ms() values; -1 means wait forever. */
#ifndef TCPMUX_NET_H
#define TCPMUX_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct net_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Splits "HOST:PORT", "[V6]:PORT" or "PORT" (host then empty). host/port get
 * NUL-terminated copies. Returns 0 or -EINVAL. */
int net_split_hostport(const char *s, char *host, size_t hostcap, char *port, size_t portcap);

/* Binds and listens on host:port (host "" = all addresses). Returns fd or -errno. */
int net_listen(const char *host, const char *port, int backlog);
/* Connects to host:port within deadline, with TCP_NODELAY and keepalive set.
 * Returns fd or -errno (-ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH, ...). */
int net_connect(const char *host, const char *port, int64_t deadline);
/* accept4 with SOCK_CLOEXEC, retrying EINTR. Returns fd or -errno. */
int net_accept(int lfd, struct net_addr *peer);
/* TCP_NODELAY and keepalive (idle 60 s, 10 s interval, 5 probes). */
void net_tune(int fd);

/* Reads at most cap bytes once data is there. Returns > 0 bytes read, 0 at
 * end of stream, -ETIMEDOUT at the deadline, or -errno. */
ssize_t net_read(int fd, void *buf, size_t cap, int64_t deadline);
/* Sets how long a blocking read (net_recv_wait) waits: 0 = for ever. A
 * timeout set once per socket spares a poll() before every read. */
int net_set_recv_timeout(int fd, int64_t ms);
/* One blocking read, bounded by the socket's receive timeout. Returns > 0
 * bytes read, 0 at end of stream, -ETIMEDOUT, or -errno. */
ssize_t net_recv_wait(int fd, void *buf, size_t cap);
/* Writes all len bytes before the deadline. Returns 0 or -errno. */
int net_write_all(int fd, const void *buf, size_t len, int64_t deadline);

/* Whether a connected peer has gone, without reading: NET_PEER_SHUT when it
 * shut its sending side (it may still read), NET_PEER_GONE when it reset or
 * both sides are closed. 0 when it is there. */
#define NET_PEER_SHUT 1
#define NET_PEER_GONE 2
int net_peer_state(int fd);
/* Waits until fd is readable (returns 0) or the peer on watch has gone
 * (returns 1; a half-close counts when shut_counts), or the deadline passes
 * (-ETIMEDOUT). */
int net_wait_either(int fd, int watch, int shut_counts, int64_t deadline);

/* "192.0.2.5:50812" or "[2001:db8::1]:50812". */
void net_addr_str(const struct net_addr *a, char *out, size_t cap);
/* The port a bound socket got (for port 0). */
int net_local_port(int fd);

#endif
