/* Statistics: process-wide counters, atomics only, written from every thread. */
#ifndef TCPMUX_STATS_H
#define TCPMUX_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define STATS_LATENCY_BUCKETS 16   /* upper bounds 100us, 250us, ... 60s, +Inf */

struct stats {
	atomic_ulong clients_now, clients_total, clients_rejected;
	atomic_ulong requests_total, requests_ok;
	atomic_ulong req_timeout, req_no_upstream, req_queue_full, req_bad_frame, req_bad_gateway, req_policy;
	atomic_ulong upstream_connects, upstream_failures;
	atomic_ulong coalesced, cached;
	atomic_ulong bytes_from_clients, bytes_to_clients;
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
/* The pool's state at one moment, read under its lock. */
struct stats_pool {
	int live, busy, waiting, slots;
};

/* Every counter in the Prometheus text exposition format (version 0.0.4).
 * Returns the length written (cut at cap - 1). */
size_t stats_format_prometheus(char *out, size_t cap, const struct stats_pool *pool);
/* Writes every counter, and the pool's state, to the log at warn level (so it shows by default). */
void stats_log(const struct stats_pool *pool);

#endif
