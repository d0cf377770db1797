/* Statistics: process-wide counters, atomics only, written from every thread. */
#include "config.h"
#include "stats.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

struct stats stats;

static const uint64_t bounds_us[STATS_LATENCY_BUCKETS - 1] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 10000000, 60000000,
};

uint64_t stats_bucket_bound_us(int i)
{
	return i < STATS_LATENCY_BUCKETS - 1 ? bounds_us[i] : UINT64_MAX;
}

void stats_latency(uint64_t us)
{
	int i = 0;
	while (i < STATS_LATENCY_BUCKETS - 1 && us > bounds_us[i])
		i++;
	STAT_INC(latency[i]);
	STAT_ADD(latency_sum_us, us);
}

struct out {
	char *p;
	size_t cap, len;
};

__attribute__((format(printf, 2, 3)))
static void put(struct out *o, const char *fmt, ...)
{
	if (o->len + 1 >= o->cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len = o->len + (size_t)n < o->cap ? o->len + (size_t)n : o->cap - 1;
}

static void metric(struct out *o, const char *name, const char *type, const char *help, unsigned long v)
{
	put(o, "# HELP tcpmux_%s %s\n# TYPE tcpmux_%s %s\ntcpmux_%s %lu\n", name, help, name, type, name, v);
}

size_t stats_format_prometheus(char *buf, size_t cap, const struct stats_pool *pool)
{
	struct out o = { buf, cap, 0 };
	if (cap > 0)
		buf[0] = '\0';
	metric(&o, "clients_connected", "gauge", "Client connections open now.", STAT_GET(clients_now));
	metric(&o, "clients_accepted_total", "counter", "Client connections accepted.", STAT_GET(clients_total));
	metric(&o, "clients_rejected_total", "counter", "Client connections refused (--allow, --max-clients).",
	       STAT_GET(clients_rejected));
	metric(&o, "requests_total", "counter", "Whole requests read from clients.", STAT_GET(requests_total));
	metric(&o, "requests_ok_total", "counter", "Requests answered by the target.", STAT_GET(requests_ok));
	put(&o, "# HELP tcpmux_requests_failed_total Requests not answered by the target, by reason.\n"
		"# TYPE tcpmux_requests_failed_total counter\n");
	static const char *const reasons[] = { "timeout", "no_upstream", "queue_full", "bad_frame",
					       "bad_gateway", "policy" };
	unsigned long counts[] = { STAT_GET(req_timeout), STAT_GET(req_no_upstream), STAT_GET(req_queue_full),
				   STAT_GET(req_bad_frame), STAT_GET(req_bad_gateway), STAT_GET(req_policy) };
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
		put(&o, "tcpmux_requests_failed_total{reason=\"%s\"} %lu\n", reasons[i], counts[i]);
	metric(&o, "requests_coalesced_total", "counter", "Reads answered with a copy of an identical read in flight.",
	       STAT_GET(coalesced));
	metric(&o, "requests_cached_total", "counter", "Reads answered from the answer cache.", STAT_GET(cached));
	metric(&o, "upstream_connects_total", "counter", "Connections opened to the target.",
	       STAT_GET(upstream_connects));
	metric(&o, "upstream_connect_failures_total", "counter", "Failed connection attempts to the target.",
	       STAT_GET(upstream_failures));
	metric(&o, "upstream_slots", "gauge", "Upstream connections configured (--max-connections).",
	       (unsigned long)pool->slots);
	metric(&o, "upstream_live", "gauge", "Upstream connections open now.", (unsigned long)pool->live);
	metric(&o, "upstream_busy", "gauge", "Upstream connections in an exchange now.", (unsigned long)pool->busy);
	metric(&o, "clients_waiting", "gauge", "Clients waiting for an upstream connection now.",
	       (unsigned long)pool->waiting);
	metric(&o, "client_bytes_received_total", "counter", "Bytes of requests read from clients.",
	       STAT_GET(bytes_from_clients));
	metric(&o, "client_bytes_sent_total", "counter", "Bytes of answers written to clients.",
	       STAT_GET(bytes_to_clients));

	put(&o, "# HELP tcpmux_request_duration_seconds Time from a whole request to its answer.\n"
		"# TYPE tcpmux_request_duration_seconds histogram\n");
	unsigned long cum = 0;
	for (int i = 0; i < STATS_LATENCY_BUCKETS; i++) {
		cum += STAT_GET(latency[i]);
		if (i < STATS_LATENCY_BUCKETS - 1)
			put(&o, "tcpmux_request_duration_seconds_bucket{le=\"%g\"} %lu\n", (double)bounds_us[i] / 1e6, cum);
		else
			put(&o, "tcpmux_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n", cum);
	}
	put(&o, "tcpmux_request_duration_seconds_sum %.6f\n", (double)STAT_GET(latency_sum_us) / 1e6);
	put(&o, "tcpmux_request_duration_seconds_count %lu\n", cum);
	return o.len;
}

void stats_log(const struct stats_pool *pool)
{
	log_warn("stats: clients connected=%lu accepted=%lu rejected=%lu; requests total=%lu ok=%lu "
		 "timeout=%lu no_upstream=%lu queue_full=%lu bad_frame=%lu bad_gateway=%lu policy=%lu "
		 "coalesced=%lu cached=%lu; upstream connects=%lu failures=%lu live=%d busy=%d waiting=%d; "
		 "bytes received=%lu sent=%lu",
		 STAT_GET(clients_now), STAT_GET(clients_total), STAT_GET(clients_rejected),
		 STAT_GET(requests_total), STAT_GET(requests_ok), STAT_GET(req_timeout),
		 STAT_GET(req_no_upstream), STAT_GET(req_queue_full), STAT_GET(req_bad_frame),
		 STAT_GET(req_bad_gateway), STAT_GET(req_policy), STAT_GET(coalesced), STAT_GET(cached),
		 STAT_GET(upstream_connects), STAT_GET(upstream_failures), pool->live, pool->busy,
		 pool->waiting, STAT_GET(bytes_from_clients), STAT_GET(bytes_to_clients));
}
