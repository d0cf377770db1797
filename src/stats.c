/* Statistics: process-wide counters, atomics only, written from every thread. */
#include "config.h"
#include "stats.h"
#include "log.h"

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

void stats_log(int live, int busy, int waiting)
{
	log_warn("stats: clients now=%lu total=%lu rejected=%lu; requests total=%lu ok=%lu timeout=%lu "
		 "no_upstream=%lu queue_full=%lu bad_frame=%lu bad_gateway=%lu policy=%lu; "
		 "upstream connects=%lu failures=%lu live=%d busy=%d waiting=%d; bytes in=%lu out=%lu",
		 STAT_GET(clients_now), STAT_GET(clients_total), STAT_GET(clients_rejected),
		 STAT_GET(requests_total), STAT_GET(requests_ok), STAT_GET(req_timeout),
		 STAT_GET(req_no_upstream), STAT_GET(req_queue_full), STAT_GET(req_bad_frame),
		 STAT_GET(req_bad_gateway), STAT_GET(req_policy), STAT_GET(upstream_connects),
		 STAT_GET(upstream_failures), live, busy, waiting,
		 STAT_GET(bytes_from_clients), STAT_GET(bytes_to_clients));
}
