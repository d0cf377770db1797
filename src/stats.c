/* Statistics: process-wide counters, atomics only, written from every thread. */
#include "config.h"
#include "stats.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct stats stats;

static const uint64_t bounds_us[STATS_LATENCY_BUCKETS - 1] = {
	100,   250,    500,    1000,   2500,	5000,	  10000,    25000,
	50000, 100000, 250000, 500000, 1000000, 10000000, 60000000,
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

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
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

#define STATS_GET_S(f) STAT_GET(f)
#define STATS_GET_P(f) ((unsigned long)pool->f)

struct row {
	const char *group, *key, *metric, *label, *type, *help;
};

#define STATS_ROW(src, f, group, key, metric, label, type, help) { group, key, metric, label, type, help },
static const struct row rows[] = { STATS_LIST(STATS_ROW) };
#define NROWS (sizeof rows / sizeof rows[0])

/* The values in the order of rows[]. */
static void values(unsigned long *v, const struct stats_pool *pool)
{
	size_t i = 0;
#define STATS_VALUE(src, f, ...) v[i++] = STATS_GET_##src(f);
	STATS_LIST(STATS_VALUE)
#undef STATS_VALUE
}

size_t stats_format_prometheus(char *buf, size_t cap, const struct stats_pool *pool)
{
	struct out o = { buf, cap, 0 };
	if (cap > 0)
		buf[0] = '\0';
	unsigned long v[NROWS];
	values(v, pool);
	for (size_t i = 0; i < NROWS; i++) {
		const struct row *r = &rows[i];
		if (i == 0 || strcmp(r->metric, rows[i - 1].metric) != 0)
			put(&o, "# HELP tcpmux_%s %s\n# TYPE tcpmux_%s %s\n", r->metric, r->help, r->metric,
			    r->type);
		if (r->label[0])
			put(&o, "tcpmux_%s{reason=\"%s\"} %lu\n", r->metric, r->label, v[i]);
		else
			put(&o, "tcpmux_%s %lu\n", r->metric, v[i]);
	}

	put(&o, "# HELP tcpmux_request_duration_seconds Time from a whole request to its answer.\n"
		"# TYPE tcpmux_request_duration_seconds histogram\n");
	unsigned long cum = 0;
	for (int i = 0; i < STATS_LATENCY_BUCKETS; i++) {
		cum += STAT_GET(latency[i]);
		if (i < STATS_LATENCY_BUCKETS - 1)
			put(&o, "tcpmux_request_duration_seconds_bucket{le=\"%g\"} %lu\n",
			    (double)bounds_us[i] / 1e6, cum);
		else
			put(&o, "tcpmux_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n", cum);
	}
	put(&o, "tcpmux_request_duration_seconds_sum %.6f\n", (double)STAT_GET(latency_sum_us) / 1e6);
	put(&o, "tcpmux_request_duration_seconds_count %lu\n", cum);
	return o.len;
}

/* One line: "stats: clients connected=1 accepted=2 ...; requests total=...". */
void stats_log(const struct stats_pool *pool)
{
	char line[1024];
	struct out o = { line, sizeof line, 0 };
	unsigned long v[NROWS];
	values(v, pool);
	for (size_t i = 0; i < NROWS; i++) {
		if (i == 0 || strcmp(rows[i].group, rows[i - 1].group) != 0)
			put(&o, "%s%s", i == 0 ? "" : "; ", rows[i].group);
		put(&o, " %s=%lu", rows[i].key, v[i]);
	}
	log_warn("stats: %s", line);
}
