/* Statistics: process-wide counters, atomics only, written from every thread. */
#ifndef TCPMUX_STATS_H
#define TCPMUX_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define STATS_LATENCY_BUCKETS 16 /* upper bounds 100us, 250us, ... 60s, +Inf */

/*
 * Every counter and gauge, once: the struct fields, the Prometheus names
 * and help, and the SIGUSR1 log line are all generated from this list.
 * X(src, field, group, key, metric, label, type, help):
 *   src     S: an atomic in struct stats; P: read at the moment into
 *           struct stats_pool
 *   group   the log line's section ("requests"), key its name there ("ok")
 *   metric  tcpmux_<metric>; consecutive rows with one metric share its
 *           HELP and TYPE and differ by label (reason="<label>"), "" for none
 */
#define STATS_LIST(X)                                                                                        \
	X(S, clients_now, "clients", "connected", "clients_connected", "", "gauge",                          \
	  "Client connections open now.")                                                                    \
	X(S, clients_total, "clients", "accepted", "clients_accepted_total", "", "counter",                  \
	  "Client connections accepted.")                                                                    \
	X(S, clients_rejected, "clients", "rejected", "clients_rejected_total", "", "counter",               \
	  "Client connections refused (--allow, --max-clients).")                                            \
	X(S, requests_total, "requests", "total", "requests_total", "", "counter",                           \
	  "Whole requests read from clients.")                                                               \
	X(S, requests_ok, "requests", "ok", "requests_ok_total", "", "counter",                              \
	  "Requests answered by the target.")                                                                \
	X(S, req_timeout, "requests", "timeout", "requests_failed_total", "timeout", "counter",              \
	  "Requests not answered by the target, by reason.")                                                 \
	X(S, req_no_upstream, "requests", "no_upstream", "requests_failed_total", "no_upstream", "counter",  \
	  "")                                                                                                \
	X(S, req_queue_full, "requests", "queue_full", "requests_failed_total", "queue_full", "counter", "") \
	X(S, req_bad_frame, "requests", "bad_frame", "requests_failed_total", "bad_frame", "counter", "")    \
	X(S, req_bad_gateway, "requests", "bad_gateway", "requests_failed_total", "bad_gateway", "counter",  \
	  "")                                                                                                \
	X(S, req_policy, "requests", "policy", "requests_failed_total", "policy", "counter", "")             \
	X(S, req_no_buffer, "requests", "no_buffer", "requests_failed_total", "no_buffer", "counter", "")    \
	X(S, coalesced, "requests", "coalesced", "requests_coalesced_total", "", "counter",                  \
	  "Reads answered with a copy of an identical read in flight.")                                      \
	X(S, cached, "requests", "cached", "requests_cached_total", "", "counter",                           \
	  "Reads answered from the answer cache.")                                                           \
	X(S, upstream_connects, "upstream", "connects", "upstream_connects_total", "", "counter",            \
	  "Connections opened to the target.")                                                               \
	X(S, upstream_failures, "upstream", "failures", "upstream_connect_failures_total", "", "counter",    \
	  "Failed connection attempts to the target.")                                                       \
	X(P, slots, "upstream", "slots", "upstream_slots", "", "gauge",                                      \
	  "Upstream connections configured (--max-connections).")                                            \
	X(P, live, "upstream", "live", "upstream_live", "", "gauge", "Upstream connections open now.")       \
	X(P, busy, "upstream", "busy", "upstream_busy", "", "gauge",                                         \
	  "Upstream connections in an exchange now.")                                                        \
	X(P, waiting, "upstream", "waiting", "clients_waiting", "", "gauge",                                 \
	  "Clients waiting for an upstream connection now.")                                                 \
	X(S, bytes_from_clients, "bytes", "received", "client_bytes_received_total", "", "counter",          \
	  "Bytes of requests read from clients.")                                                            \
	X(S, bytes_to_clients, "bytes", "sent", "client_bytes_sent_total", "", "counter",                    \
	  "Bytes of answers written to clients.")                                                            \
	X(P, buffered, "bytes", "buffered", "buffered_bytes", "", "gauge",                                   \
	  "Bytes of buffer grown beyond their first size, against --max-buffered.")

#define STATS_FIELD_S(f) atomic_ulong f;
#define STATS_FIELD_P(f)
#define STATS_FIELD(src, f, ...) STATS_FIELD_##src(f)

struct stats {
	STATS_LIST(STATS_FIELD)
	atomic_ulong latency[STATS_LATENCY_BUCKETS];
	atomic_ulong latency_sum_us;
};

extern struct stats stats;

#define STAT_INC(f) atomic_fetch_add_explicit(&stats.f, 1, memory_order_relaxed)
#define STAT_DEC(f) atomic_fetch_sub_explicit(&stats.f, 1, memory_order_relaxed)
#define STAT_ADD(f, n) atomic_fetch_add_explicit(&stats.f, (n), memory_order_relaxed)
#define STAT_GET(f) atomic_load_explicit(&stats.f, memory_order_relaxed)

/* Upper bound of latency bucket i in microseconds (UINT64_MAX for the last). */
uint64_t stats_bucket_bound_us(int i);
/* Counts one answered request that took us microseconds. */
void stats_latency(uint64_t us);

/* The P rows at one moment: the pool's state read under its lock, and the
 * bytes buffered (buf.c). */
struct stats_pool {
	int live, busy, waiting, slots;
	size_t buffered;
};

/* Every counter in the Prometheus text exposition format (version 0.0.4).
 * Returns the length written (cut at cap - 1). */
size_t stats_format_prometheus(char *out, size_t cap, const struct stats_pool *pool);
/* Writes every counter, and the gauges, to the log at warn level (so it shows by default). */
void stats_log(const struct stats_pool *pool);

#endif
