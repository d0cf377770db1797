/* Command line: subcommands, options, durations, validation, help text.
 * One table describes every option of `server`: parsing, defaults, getopt's
 * long options and --help all come from it, so they cannot drift apart. */
#include "config.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

/* The options whose value needs code of its own (CLI_SPECIAL rows). */
enum {
	SP_PROTOCOL = 1,
	SP_TARGET,
	SP_LISTEN,
	SP_ALLOW,
	SP_METRICS,
	SP_WRITE_RANGE,
	SP_UNIT_MAP,
	SP_SERIAL_FORMAT,
};

#define OFF(field) offsetof(struct config, field)
#define DUR_MAX ((int64_t)86400000 * 365) /* what cli_parse_duration accepts */
#define SIZE_MAX_OPT ((int64_t)1 << 30)	  /* what cli_parse_size accepts */

static const int upstream_values[] = { 0, 1 };	/* tcp, rtu: cfg->modbus_rtu */
static const int tid_check_values[] = { 1, 0 }; /* strict, off: cfg->modbus_tid_check */
/* The termios rates a serial Modbus line uses (B1200...B921600). */
static const int serial_speeds[] = { 1200,  1800,   2400,   4800,   9600,   19200, 38400,
				     57600, 115200, 230400, 460800, 921600, 0 };

/* one row an option reads better than one field a line */
/* clang-format off */
static const struct cli_opt opts[] = {
	{ .name = "applicationProtocol", .shortopt = 'p', .kind = CLI_SPECIAL, .special = SP_PROTOCOL,
	  .def = "echo", .arg = "PROTO", .group = "Target and clients",
	  .help = "framing: echo, http, iso8583, mpu, modbus" },
	{ .name = "protocol", .kind = CLI_ALIAS, .alias_of = "applicationProtocol" },
	{ .name = "targetServer", .shortopt = 't', .kind = CLI_SPECIAL, .special = SP_TARGET,
	  .def = "127.0.0.1:1234", .arg = "HOST:PORT",
	  .help = "the target server; a path such as /dev/ttyUSB0 is a serial port, for -p modbus" },
	{ .name = "target", .kind = CLI_ALIAS, .alias_of = "targetServer" },
	{ .name = "listen", .shortopt = 'l', .kind = CLI_SPECIAL, .special = SP_LISTEN, .def = "8000",
	  .arg = "[HOST:]PORT",
	  .help = "where clients connect: 8000, 127.0.0.1:5020, [::1]:5020; a bare port listens on every address" },
	{ .name = "allow", .kind = CLI_SPECIAL, .special = SP_ALLOW, .arg = "CIDR",
	  .help = "only clients from this network may connect; repeatable (default: everyone)" },
	{ .name = "max-clients", .kind = CLI_COUNT, .off = OFF(max_clients), .lo = 1, .hi = 1000000,
	  .def = "1000", .arg = "N", .help = "client connections at once; more are closed at accept" },
	{ .name = "idle-timeout", .kind = CLI_DURATION, .off = OFF(idle_timeout_ms), .hi = DUR_MAX,
	  .def = "5m", .arg = "DUR", .help = "close a client silent this long between requests; 0 = never" },
	{ .name = "max-frame", .kind = CLI_SIZE, .off = OFF(max_frame), .lo = 16, .hi = SIZE_MAX_OPT,
	  .def = "1M", .arg = "SIZE", .help = "largest request or answer, e.g. 64k, 1M (HTTP answers stream past it)" },
	{ .name = "max-buffered", .kind = CLI_SIZE, .off = OFF(max_buffered), .lo = 1024,
	  .hi = SIZE_MAX_OPT, .def = "64M", .arg = "SIZE",
	  .help = "bytes buffered for all clients together; a client that needs more is refused" },

	{ .name = "max-connections", .kind = CLI_COUNT, .off = OFF(max_connections), .lo = 1, .hi = 1024,
	  .def = "1", .arg = "N", .group = "Upstream connections",
	  .help = "upstream connections to keep open, used in parallel" },
	{ .name = "timeout", .kind = CLI_DURATION, .off = OFF(timeout_ms), .lo = 1, .hi = DUR_MAX,
	  .def = "60s", .arg = "DUR",
	  .help = "deadline for a request: to arrive once begun, to get an upstream connection and to be answered" },
	{ .name = "answer-timeout", .kind = CLI_DURATION, .off = OFF(answer_timeout_ms), .lo = 1,
	  .hi = DUR_MAX, .def = "5s", .arg = "DUR",
	  .help = "longest wait for the target's answer once a request is sent, within --timeout, so a "
		  "request the target ignores frees its connection" },
	{ .name = "queue-size", .kind = CLI_COUNT, .off = OFF(queue_size), .lo = 0, .hi = 1000000,
	  .def = "0", .arg = "N",
	  .help = "clients that may wait for an upstream connection; one more is refused at once; "
		  "0 = no limit, each waits up to --timeout" },
	{ .name = "delay", .kind = CLI_DURATION, .off = OFF(delay_ms), .hi = DUR_MAX, .def = "0",
	  .arg = "DUR", .help = "pause after connecting to the target before the first request" },
	{ .name = "request-gap", .kind = CLI_DURATION, .off = OFF(request_gap_ms), .hi = DUR_MAX,
	  .def = "0", .arg = "DUR",
	  .help = "pause between an answer and the next request on one upstream connection" },
	{ .name = "reconnect-backoff", .kind = CLI_DURATION, .off = OFF(backoff_ms), .hi = DUR_MAX,
	  .def = "1s", .arg = "DUR", .help = "first wait before reconnecting; doubles per failure up to 30s" },
	{ .name = "health-check-interval", .kind = CLI_DURATION, .off = OFF(health_ms), .hi = DUR_MAX,
	  .def = "30s", .arg = "DUR", .help = "how often idle upstream connections are checked; 0 = never" },
	{ .name = "upstream-max-idle", .kind = CLI_DURATION, .off = OFF(upstream_max_idle_ms),
	  .hi = DUR_MAX, .def = "0", .arg = "DUR",
	  .help = "reopen an upstream connection idle this long, before the device drops it; 0 = never" },
	{ .name = "upstream-max-age", .kind = CLI_DURATION, .off = OFF(upstream_max_age_ms),
	  .hi = DUR_MAX, .def = "0", .arg = "DUR",
	  .help = "reopen an upstream connection open this long; 0 = never" },

	{ .name = "modbus-read-only", .kind = CLI_FLAG, .off = OFF(modbus_policy.read_only),
	  .needs = CLI_NEEDS_MODBUS, .group = "Modbus (with -p modbus)",
	  .help = "refuse every function but reads (1-4, 7, 11, 12, 17, 20, 24, 43/14) with exception 0x01" },
	{ .name = "modbus-allow-write", .kind = CLI_SPECIAL, .special = SP_WRITE_RANGE,
	  .needs = CLI_NEEDS_MODBUS, .arg = "UNIT:[coils:|registers:]ADDR[-ADDR]",
	  .help = "with --modbus-read-only, still let writes (5, 6, 15, 16, 22, 23) to these device addresses through; repeatable" },
	{ .name = "modbus-unit-map", .kind = CLI_SPECIAL, .special = SP_UNIT_MAP,
	  .needs = CLI_NEEDS_MODBUS, .arg = "FROM=TO",
	  .help = "send unit id FROM to the device as TO, and answer as FROM; repeatable" },
	{ .name = "modbus-upstream", .kind = CLI_CHOICE, .off = OFF(modbus_rtu), .values = upstream_values,
	  .def = "tcp", .needs = CLI_NEEDS_MODBUS, .arg = "tcp|rtu",
	  .help = "the target speaks Modbus/TCP, or RTU frames over TCP" },
	{ .name = "modbus-tid-check", .kind = CLI_CHOICE, .off = OFF(modbus_tid_check),
	  .values = tid_check_values, .def = "strict", .needs = CLI_NEEDS_MODBUS, .arg = "strict|off",
	  .help = "match answers by transaction id, or (off) in order for gateways that echo a wrong id" },
	{ .name = "coalesce", .kind = CLI_FLAG, .off = OFF(coalesce), .needs = CLI_NEEDS_MODBUS,
	  .help = "a read identical to one in flight waits for its answer instead of going upstream (default off)" },
	{ .name = "cache-ttl", .kind = CLI_DURATION, .off = OFF(cache_ttl_ms), .hi = DUR_MAX, .def = "0",
	  .needs = CLI_NEEDS_MODBUS, .arg = "DUR",
	  .help = "serve an answer to a read again to identical reads for DUR; writes to the unit drop it; 0 = off" },

	{ .name = "serial-speed", .kind = CLI_COUNT, .off = OFF(serial_speed), .lo = 1, .hi = INT_MAX,
	  .values = serial_speeds, .def = "9600", .needs = CLI_NEEDS_MODBUS | CLI_NEEDS_SERIAL,
	  .arg = "N", .group = "Serial port (with -p modbus -t /dev/...)",
	  .help = "line speed in bits per second: 1200 to 115200, 230400, 460800 or 921600" },
	{ .name = "serial-format", .kind = CLI_SPECIAL, .special = SP_SERIAL_FORMAT, .def = "8N1",
	  .needs = CLI_NEEDS_MODBUS | CLI_NEEDS_SERIAL, .arg = "FMT",
	  .help = "data bits (5-8), parity (N, E, O) and stop bits (1, 2), e.g. 8E1" },
	{ .name = "serial-rs485", .kind = CLI_FLAG, .off = OFF(serial_rs485),
	  .needs = CLI_NEEDS_MODBUS | CLI_NEEDS_SERIAL,
	  .help = "switch the port to the kernel's RS-485 mode (RTS on while sending)" },
	{ .name = "serial-echo", .kind = CLI_FLAG, .off = OFF(serial_echo),
	  .needs = CLI_NEEDS_MODBUS | CLI_NEEDS_SERIAL,
	  .help = "the adapter hears what it sends: skip that echo before reading the answer" },

	{ .name = "metrics-listen", .kind = CLI_SPECIAL, .special = SP_METRICS, .arg = "[HOST:]PORT",
	  .group = "Operation",
	  .help = "serve statistics for Prometheus at http://HOST:PORT/metrics (default off)" },
	{ .name = "syslog", .kind = CLI_FLAG, .off = OFF(use_syslog), .help = "log to syslog instead of stderr" },
	{ .name = "verbose", .shortopt = 'v', .kind = CLI_FLAG, .off = OFF(verbose),
	  .help = "log connections and errors (info level)" },
	{ .name = "debug", .shortopt = 'd', .kind = CLI_FLAG, .off = OFF(debug),
	  .help = "log every frame in hex (debug level)" },
	{ .name = "help", .shortopt = 'h', .kind = CLI_HELPOPT, .help = "show this help and exit" },
	{ .name = NULL },
};
/* clang-format on */

#define N_OPTS (sizeof opts / sizeof opts[0])

/* The commands, for the top-level help and for the error naming them. */
static const struct {
	const char *name;
	enum cli_cmd cmd;
	const char *summary;
} commands[] = {
	{ "server", CLI_SERVER, "run the multiplexer (see 'tcp-multiplexer server --help')" },
	{ "list", CLI_LIST, "print the supported framings" },
	{ "version", CLI_VERSION, "print the version (also --version, -V)" },
	{ "help", CLI_HELP, "show this help (also --help, -h)" },
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

const struct cli_opt *cli_server_options(void)
{
	return opts;
}

int cli_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {
		{ "ms", 1 },
		{ "s", 1000 },
		{ "m", 60000 },
		{ "h", 3600000 },
	};
	double total = 0;
	const char *p = s;
	int parts = 0;

	if (*p == '\0')
		return -EINVAL;
	while (*p != '\0' && parts < 8) {
		char *end;
		if (!((*p >= '0' && *p <= '9') || *p == '.'))
			return -EINVAL;
		errno = 0;
		double v = strtod(p, &end);
		if (end == p || end != p + strspn(p, "0123456789.") || errno != 0 || v < 0)
			return -EINVAL; /* no exponents, signs or hex: strtod takes too much */
		p = end;
		if (*p == '\0' && parts == 0) {
			total = v * 1000; /* bare number: seconds, as the Go tool's --timeout */
			break;
		}
		size_t i;
		for (i = 0; i < sizeof units / sizeof units[0]; i++) {
			size_t ul = strlen(units[i].unit);
			/* "m" must not swallow the "m" of "ms" */
			if (strncmp(p, units[i].unit, ul) == 0 && !(ul == 1 && p[0] == 'm' && p[1] == 's'))
				break;
		}
		if (i == sizeof units / sizeof units[0])
			return -EINVAL;
		total += v * units[i].ms;
		p += strlen(units[i].unit);
		parts++;
	}
	if (*p != '\0' || total > (double)DUR_MAX)
		return -EINVAL;
	*ms = (int64_t)(total + 0.5);
	return 0;
}

int cli_parse_size(const char *s, size_t *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -EINVAL;
	if (*end == 'k' || *end == 'K') {
		v *= 1024;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		v *= 1024 * 1024;
		end++;
	}
	if (*end == 'i' || *end == 'B')
		end += (end[0] == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end != '\0' || v > (unsigned long long)SIZE_MAX_OPT)
		return -EINVAL;
	*out = (size_t)v;
	return 0;
}

static int fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return 2;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static const struct cli_opt *find_opt(const char *name)
{
	for (const struct cli_opt *o = opts; o->name != NULL; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

/* "16 bytes", "64k", "1G": a bound as the user would write it. */
static void format_size(char *out, size_t cap, int64_t v)
{
	static const struct {
		int64_t unit;
		const char *suffix;
	} units[] = {
		{ (int64_t)1 << 30, "G" },
		{ (int64_t)1 << 20, "M" },
		{ 1024, "k" },
	};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (v >= units[i].unit && v % units[i].unit == 0) {
			snprintf(out, cap, "%lld%s", (long long)(v / units[i].unit), units[i].suffix);
			return;
		}
	}
	snprintf(out, cap, "%lld bytes", (long long)v);
}

static int set_duration(struct config *cfg, const struct cli_opt *o, const char *arg, char *err, size_t cap)
{
	int64_t d;
	if (cli_parse_duration(arg, &d) < 0)
		return fail(err, cap, "--%s: invalid duration '%s' (use e.g. 250ms, 5s, 1m30s or seconds)",
			    o->name, arg);
	if (d < o->lo && o->lo == 1)
		return fail(err, cap, "--%s: must be more than 0", o->name);
	if (d < o->lo || d > o->hi)
		return fail(err, cap, "--%s: must be from %lldms to %lldms", o->name, (long long)o->lo,
			    (long long)o->hi);
	*(int64_t *)(void *)((char *)cfg + o->off) = d;
	return 0;
}

static int set_count(struct config *cfg, const struct cli_opt *o, const char *arg, char *err, size_t cap)
{
	int v;
	int ok = parse_int(arg, (long)o->lo, (long)o->hi, &v) == 0;
	if (!ok && o->values == NULL)
		return fail(err, cap, "--%s: '%s' is not a number from %lld to %lld", o->name, arg,
			    (long long)o->lo, (long long)o->hi);
	if (o->values != NULL) {
		size_t i = 0;
		while (ok && o->values[i] != 0 && o->values[i] != v)
			i++;
		if (!ok || o->values[i] == 0) {
			char list[160];
			size_t n = 0;
			list[0] = '\0';
			for (i = 0; o->values[i] != 0 && n < sizeof list; i++)
				n += (size_t)snprintf(list + n, sizeof list - n, "%s%d", i ? ", " : "",
						      o->values[i]);
			return fail(err, cap, "--%s: '%s' is not one of %s", o->name, arg, list);
		}
	}
	*(int *)(void *)((char *)cfg + o->off) = v;
	return 0;
}

static int set_size(struct config *cfg, const struct cli_opt *o, const char *arg, char *err, size_t cap)
{
	size_t v;
	if (cli_parse_size(arg, &v) < 0 || (int64_t)v < o->lo || (int64_t)v > o->hi) {
		char lo[32], hi[32];
		format_size(lo, sizeof lo, o->lo);
		format_size(hi, sizeof hi, o->hi);
		return fail(err, cap, "--%s: '%s' is not a size from %s to %s (e.g. 65536, 64k, 1M)", o->name,
			    arg, lo, hi);
	}
	*(size_t *)(void *)((char *)cfg + o->off) = v;
	return 0;
}

/* CLI_CHOICE: arg is one of the words of o->arg ("tcp|rtu"); stores its value. */
static int set_choice(struct config *cfg, const struct cli_opt *o, const char *arg, char *err, size_t cap)
{
	const char *w = o->arg;
	size_t len = strlen(arg);
	for (int i = 0; *w != '\0'; i++) {
		size_t wl = strcspn(w, "|");
		if (wl == len && strncmp(w, arg, len) == 0) {
			*(int *)(void *)((char *)cfg + o->off) = o->values != NULL ? o->values[i] : i;
			return 0;
		}
		w += wl + (w[wl] == '|');
	}
	const char *bar = strchr(o->arg, '|');
	if (bar != NULL && strchr(bar + 1, '|') == NULL)
		return fail(err, cap, "--%s: '%s' is neither %.*s nor %s", o->name, arg, (int)(bar - o->arg),
			    o->arg, bar + 1);
	return fail(err, cap, "--%s: '%s' is not one of %s", o->name, arg, o->arg);
}

static int known_protocols(char *out, size_t cap)
{
	size_t n = 0;
	out[0] = '\0';
	for (const struct codec *const *c = codec_all(); *c != NULL && n < cap; c++)
		n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", (*c)->name);
	return 0;
}

static int parse_protocol(struct config *cfg, const char *arg, char *err, size_t cap)
{
	char names[128];
	cfg->codec = codec_find(arg);
	if (cfg->codec != NULL)
		return 0;
	known_protocols(names, sizeof names);
	return fail(err, cap, "--applicationProtocol: unknown protocol '%s' (known: %s)", arg, names);
}

/* HOST:PORT, or a path: a serial port (anything starting with '/', as
 * /dev/ttyUSB0 or /dev/serial/by-id/...). */
static int parse_target(struct config *cfg, const char *arg, char *err, size_t cap)
{
	if (arg[0] == '/') {
		if (strlen(arg) >= sizeof cfg->serial_path || strlen(arg) >= sizeof cfg->target)
			return fail(err, cap, "--targetServer: the serial port path '%.40s...' is too long",
				    arg);
		strcpy(cfg->serial_path, arg);
		strcpy(cfg->target, arg);
		cfg->target_host[0] = cfg->target_port[0] = '\0';
		return 0;
	}
	if (net_split_hostport(arg, cfg->target_host, sizeof cfg->target_host, cfg->target_port,
			       sizeof cfg->target_port) < 0 ||
	    cfg->target_host[0] == '\0' || strcmp(cfg->target_port, "0") == 0 ||
	    strlen(arg) >= sizeof cfg->target)
		return fail(err, cap,
			    "--targetServer: '%s' is not HOST:PORT (e.g. 192.0.2.10:502, [fd00::5]:502) "
			    "or a serial port (/dev/ttyUSB0)",
			    arg);
	strcpy(cfg->target, arg);
	cfg->serial_path[0] = '\0';
	return 0;
}

static int parse_listen(struct config *cfg, const char *arg, char *err, size_t cap)
{
	if (net_split_hostport(arg, cfg->listen_host, sizeof cfg->listen_host, cfg->listen_port,
			       sizeof cfg->listen_port) < 0 ||
	    strlen(arg) >= sizeof cfg->listen)
		return fail(err, cap,
			    "--listen: '%s' is not [HOST:]PORT (e.g. 8000, 127.0.0.1:5020, [::1]:5020)", arg);
	strcpy(cfg->listen, arg);
	return 0;
}

static int parse_allow(struct config *cfg, const char *arg, char *err, size_t cap)
{
	if (cfg->nallow >= ACL_MAX)
		return fail(err, cap, "--allow: at most %d networks", ACL_MAX);
	if (acl_parse(arg, &cfg->allow[cfg->nallow]) < 0)
		return fail(err, cap,
			    "--allow: '%s' is not an address or CIDR network (e.g. 192.0.2.0/24, fd00::/8)",
			    arg);
	cfg->nallow++;
	return 0;
}

static int parse_write_range(struct config *cfg, const char *arg, char *err, size_t cap)
{
	struct modbus_policy *mp = &cfg->modbus_policy;
	if (mp->nallow >= MODBUS_MAX_WRITE_RANGES)
		return fail(err, cap, "--modbus-allow-write: at most %d ranges", MODBUS_MAX_WRITE_RANGES);
	if (modbus_parse_write_range(arg, &mp->allow[mp->nallow]) < 0)
		return fail(err, cap,
			    "--modbus-allow-write: '%s' is not UNIT:[coils:|registers:]ADDR[-LAST] (e.g. "
			    "1:40100-40110)",
			    arg);
	mp->nallow++;
	return 0;
}

static int parse_unit_map(struct config *cfg, const char *arg, char *err, size_t cap)
{
	int from, to;
	char a[8], b[8];
	const char *eq = strchr(arg, '=');
	if (eq == NULL || (size_t)(eq - arg) >= sizeof a || strlen(eq + 1) >= sizeof b)
		return fail(err, cap, "--modbus-unit-map: '%s' is not FROM=TO (unit ids 0-255, e.g. 1=0)",
			    arg);
	memcpy(a, arg, (size_t)(eq - arg));
	a[eq - arg] = '\0';
	strcpy(b, eq + 1);
	if (parse_int(a, 0, 255, &from) < 0 || parse_int(b, 0, 255, &to) < 0)
		return fail(err, cap, "--modbus-unit-map: '%s' is not FROM=TO (unit ids 0-255, e.g. 1=0)",
			    arg);
	cfg->unit_map[from] = (uint8_t)to;
	cfg->unit_map_used = 1;
	return 0;
}

/* "8N1", "8E1", "7O2": data bits, parity, stop bits, as serial tools write them. */
static int parse_serial_format(struct config *cfg, const char *arg, char *err, size_t cap)
{
	char parity = arg[0] != '\0' ? arg[1] : '\0';
	if (parity >= 'a' && parity <= 'z')
		parity = (char)(parity - 'a' + 'A');
	if (strlen(arg) != 3 || arg[0] < '5' || arg[0] > '8' || strchr("NEO", parity) == NULL ||
	    parity == '\0' || (arg[2] != '1' && arg[2] != '2'))
		return fail(err, cap,
			    "--serial-format: '%s' is not like 8N1 (data bits 5-8, parity N, E or O, "
			    "stop bits 1 or 2)",
			    arg);
	cfg->serial_data_bits = arg[0] - '0';
	cfg->serial_parity = parity;
	cfg->serial_stop_bits = arg[2] - '0';
	return 0;
}

static int set_special(struct config *cfg, const struct cli_opt *o, const char *arg, char *err, size_t cap)
{
	switch (o->special) {
	case SP_PROTOCOL:
		return parse_protocol(cfg, arg, err, cap);
	case SP_TARGET:
		return parse_target(cfg, arg, err, cap);
	case SP_LISTEN:
		return parse_listen(cfg, arg, err, cap);
	case SP_ALLOW:
		return parse_allow(cfg, arg, err, cap);
	case SP_METRICS:
		if (net_split_hostport(arg, cfg->metrics_host, sizeof cfg->metrics_host, cfg->metrics_port,
				       sizeof cfg->metrics_port) < 0)
			return fail(err, cap,
				    "--metrics-listen: '%s' is not [HOST:]PORT (e.g. 127.0.0.1:9502)", arg);
		return 0;
	case SP_WRITE_RANGE:
		return parse_write_range(cfg, arg, err, cap);
	case SP_UNIT_MAP:
		return parse_unit_map(cfg, arg, err, cap);
	case SP_SERIAL_FORMAT:
		return parse_serial_format(cfg, arg, err, cap);
	}
	return fail(err, cap, "internal: --%s has no parser", o->name);
}

/* Parses arg as option o wants it and stores the result in cfg. */
static int set_option(struct config *cfg, const struct cli_opt *o, const char *arg, char *err, size_t cap)
{
	switch (o->kind) {
	case CLI_DURATION:
		return set_duration(cfg, o, arg, err, cap);
	case CLI_COUNT:
		return set_count(cfg, o, arg, err, cap);
	case CLI_SIZE:
		return set_size(cfg, o, arg, err, cap);
	case CLI_CHOICE:
		return set_choice(cfg, o, arg, err, cap);
	case CLI_SPECIAL:
		return set_special(cfg, o, arg, err, cap);
	case CLI_FLAG:
		*(int *)(void *)((char *)cfg + o->off) = 1;
		return 0;
	case CLI_ALIAS:
	case CLI_HELPOPT:
		break;
	}
	return fail(err, cap, "internal: --%s cannot be set", o->name);
}

/* Every row's default goes through the same parser as the user's value. */
static int apply_defaults(struct config *cfg, char *err, size_t cap)
{
	memset(cfg, 0, sizeof *cfg);
	for (int i = 0; i < 256; i++)
		cfg->unit_map[i] = (uint8_t)i;
	for (const struct cli_opt *o = opts; o->name != NULL; o++) {
		if (o->def == NULL)
			continue;
		int rc = set_option(cfg, o, o->def, err, cap);
		if (rc != 0)
			return rc;
	}
	return 0;
}

void cli_defaults(struct config *cfg)
{
	char err[160];
	(void)apply_defaults(cfg, err, sizeof err); /* cli_parse reports a default that does not parse */
}

/* The row an option returned by getopt_long_only stands for. */
static const struct cli_opt *row_of(int c)
{
	if (c >= 256 && (size_t)(c - 256) < N_OPTS)
		return &opts[c - 256];
	for (const struct cli_opt *o = opts; o->name != NULL; o++)
		if (o->shortopt == c)
			return o;
	return NULL;
}

/* getopt's arrays, from the table: an option returns 256 + its row (an
 * alias the row it stands for); short letters return themselves. */
static void build_getopt(struct option *longopts, char *shortopts)
{
	size_t n = 0, s = 0;
	shortopts[s++] = ':';
	for (size_t i = 0; opts[i].name != NULL; i++) {
		const struct cli_opt *o = opts[i].kind == CLI_ALIAS ? find_opt(opts[i].alias_of) : &opts[i];
		int has_arg = o->kind == CLI_FLAG || o->kind == CLI_HELPOPT ? no_argument : required_argument;
		longopts[n++] = (struct option){ opts[i].name, has_arg, NULL, 256 + (int)(o - opts) };
		if (opts[i].shortopt != 0) {
			shortopts[s++] = opts[i].shortopt;
			if (has_arg == required_argument)
				shortopts[s++] = ':';
		}
	}
	longopts[n] = (struct option){ NULL, 0, NULL, 0 };
	shortopts[s] = '\0';
}

/* The rules between options, checked once all are read. */
static int check_combinations(struct config *cfg, const unsigned char *given, char *err, size_t cap)
{
	int modbus = strcmp(cfg->codec->name, "modbus") == 0;
	if (cfg->modbus_policy.nallow > 0 && !cfg->modbus_policy.read_only)
		return fail(err, cap,
			    "--modbus-allow-write needs --modbus-read-only (without it every write passes)");
	if (cfg->serial_path[0] != '\0' && !modbus)
		return fail(err, cap, "--targetServer %s: a serial port target needs -p modbus",
			    cfg->serial_path);
	for (size_t i = 0; opts[i].name != NULL; i++) {
		if (given[i] && (opts[i].needs & CLI_NEEDS_MODBUS) && !modbus)
			return fail(err, cap, "--%s needs -p modbus", opts[i].name);
		if (given[i] && (opts[i].needs & CLI_NEEDS_SERIAL) && cfg->serial_path[0] == '\0')
			return fail(err, cap, "--%s needs a serial port target (e.g. -t /dev/ttyUSB0)",
				    opts[i].name);
	}
	if (cfg->serial_path[0] != '\0') {
		/* One bus, one master: a serial line cannot carry parallel exchanges. */
		if (given[find_opt("max-connections") - opts] && cfg->max_connections > 1)
			return fail(err, cap, "--max-connections %d: a serial port takes only 1 connection",
				    cfg->max_connections);
		cfg->max_connections = 1;
	}
	return 0;
}

static int parse_server(int argc, char **argv, struct config *cfg, enum cli_cmd *cmd, char *err, size_t cap)
{
	struct option longopts[N_OPTS];
	char shortopts[2 * N_OPTS + 2];
	unsigned char given[N_OPTS] = { 0 };
	build_getopt(longopts, shortopts);

	optind = 1;
	opterr = 0;
	for (;;) {
		int idx = -1;
		/* _only: the Go tool's users write -timeout 5 and -targetServer x */
		int c = getopt_long_only(argc, argv, shortopts, longopts, &idx);
		if (c == -1)
			break;
		if (c == '?') {
			if (optopt != 0 && optopt < 256)
				return fail(err, cap,
					    "unknown option '-%c' (see 'tcp-multiplexer server --help')",
					    optopt);
			return fail(err, cap, "unknown option '%s' (see 'tcp-multiplexer server --help')",
				    argv[optind - 1]);
		}
		if (c == ':')
			return fail(err, cap, "option '%s' needs a value", argv[optind - 1]);
		const struct cli_opt *o = row_of(c);
		if (o == NULL)
			return fail(err, cap, "internal: unhandled option %d", c);
		if (o->kind == CLI_HELPOPT) {
			*cmd = CLI_HELP;
			return 0;
		}
		given[o - opts] = 1;
		int rc = set_option(cfg, o, optarg, err, cap);
		if (rc != 0)
			return rc;
	}
	if (optind < argc)
		return fail(err, cap, "unexpected argument '%s' (see 'tcp-multiplexer server --help')",
			    argv[optind]);
	return check_combinations(cfg, given, err, cap);
}

static void known_commands(char *out, size_t cap)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < N_COMMANDS && n < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "", commands[i].name);
}

static const char *command_name(enum cli_cmd cmd)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (commands[i].cmd == cmd)
			return commands[i].name;
	return "?";
}

static int find_command(const char *name, enum cli_cmd *out)
{
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(commands[i].name, name) == 0) {
			*out = commands[i].cmd;
			return 0;
		}
	}
	return -ENOENT;
}

int cli_parse(int argc, char **argv, struct config *cfg, enum cli_cmd *cmd, enum cli_cmd *help_for, char *err,
	      size_t errcap)
{
	char names[64];
	enum cli_cmd which;

	*help_for = CLI_HELP;
	*cmd = CLI_HELP;
	if (apply_defaults(cfg, err, errcap) != 0)
		return 2;
	known_commands(names, sizeof names);
	if (argc < 2)
		return fail(err, errcap, "no command given (known: %s)", names);
	const char *c = argv[1];
	if (strcmp(c, "-h") == 0 || strcmp(c, "--help") == 0 || strcmp(c, "help") == 0) {
		if (argc > 2 && find_command(argv[2], &which) == 0)
			*help_for = which; /* help server: that command's help */
		return 0;
	}
	if (strcmp(c, "--version") == 0 || strcmp(c, "-V") == 0)
		c = command_name(CLI_VERSION);
	if (find_command(c, &which) < 0)
		return fail(err, errcap, "unknown command '%s' (known: %s)", c, names);

	*cmd = which;
	if (which == CLI_SERVER) {
		int rc = parse_server(argc - 1, argv + 1, cfg, cmd, err, errcap);
		if (*cmd == CLI_HELP)
			*help_for = CLI_SERVER;
		return rc;
	}
	if (argc > 2 && (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)) {
		*cmd = CLI_HELP;
		*help_for = which;
		return 0;
	}
	if (argc > 2)
		return fail(err, errcap, "'%s' takes no arguments", c);
	return 0;
}

/* Prints text indented, broken between words before column width. */
static void wrap(FILE *out, const char *text, int indent, int width)
{
	const char *p = text;
	while (*p) {
		int room = width - indent, n = (int)strlen(p);
		if (n > room) {
			n = room;
			while (n > 0 && p[n] != ' ')
				n--;
			/* keep "(default 5s)" on one line */
			int w = n;
			while (w > 0 && p[w - 1] != ' ')
				w--;
			if (w > 0 && strncmp(p + w, "(default", 8) == 0)
				n = w - 1;
			if (n <= 0)
				n = room;
		}
		fprintf(out, "%*s%.*s\n", indent, "", n, p);
		p += n;
		while (*p == ' ')
			p++;
	}
}

static void server_help(FILE *out)
{
	char text[512];
	fprintf(out, "Usage: tcp-multiplexer server [OPTION]...\n\n"
		     "Accepts many clients and forwards each complete request over a small pool of\n"
		     "connections to one target server; every answer goes back to the client that asked.\n");
	for (const struct cli_opt *o = opts; o->name != NULL; o++) {
		if (o->kind == CLI_ALIAS)
			continue;
		if (o->group != NULL)
			fprintf(out, "\n%s:\n", o->group);
		const char *arg = o->arg != NULL ? o->arg : "";
		if (o->shortopt != 0)
			fprintf(out, "  -%c, --%s%s%s\n", o->shortopt, o->name, arg[0] ? " " : "", arg);
		else
			fprintf(out, "      --%s%s%s\n", o->name, arg[0] ? " " : "", arg);
		if (o->def != NULL)
			snprintf(text, sizeof text, "%s (default %s)", o->help, o->def);
		else
			snprintf(text, sizeof text, "%s", o->help);
		wrap(out, text, 10, 78);
	}
	fprintf(out, "\nAliases:");
	const char *sep = " ";
	for (const struct cli_opt *o = opts; o->name != NULL; o++) {
		const struct cli_opt *to = o->kind == CLI_ALIAS ? find_opt(o->alias_of) : NULL;
		if (to == NULL)
			continue;
		if (to->shortopt != 0)
			fprintf(out, "%s--%s for -%c", sep, o->name, to->shortopt);
		else
			fprintf(out, "%s--%s for --%s", sep, o->name, to->name);
		sep = ", ";
	}
	fprintf(out, ". Options also work with one dash\n"
		     "(-timeout 5), as with the Go tool. DUR is 250ms, 5s, 1m30s, or bare seconds.\n"
		     "Exit status: 0 after a signal-requested stop, 1 runtime failure, 2 usage error.\n");
}

void cli_help(FILE *out, enum cli_cmd which)
{
	switch (which) {
	case CLI_LIST:
		fprintf(out, "Usage: tcp-multiplexer list\n\nPrints the framings the server understands, one "
			     "a line.\n");
		return;
	case CLI_VERSION:
		fprintf(out, "Usage: tcp-multiplexer version (or --version, -V)\n\nPrints the version.\n");
		return;
	case CLI_SERVER:
		server_help(out);
		return;
	case CLI_HELP:
		break;
	}
	fprintf(out,
		"Usage: tcp-multiplexer COMMAND [OPTION]...\n\n"
		"Lets many TCP clients share a few connections to one target server, request by\n"
		"request (e.g. several Modbus/TCP masters and an inverter that takes one connection).\n\n"
		"Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
}
