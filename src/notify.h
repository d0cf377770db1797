/* Readiness and stop notices to systemd over $NOTIFY_SOCKET (sd_notify(3)
 * protocol: one datagram of "KEY=VALUE" lines), without libsystemd. */
#ifndef TCPMUX_NOTIFY_H
#define TCPMUX_NOTIFY_H

/* Sends state (e.g. "READY=1") when $NOTIFY_SOCKET is set. Returns 0, or
 * -errno; a daemon not started by systemd gets 0 and nothing is sent. */
int notify_send(const char *state);

#endif
