/* Command line: subcommands, options, durations, validation, help text.
 * The option table and its help text sit together so they cannot drift. */
#include "config.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

enum {
	OPT_TIMEOUT = 256, OPT_DELAY, OPT_MAX_CONN, OPT_BACKOFF, OPT_HEALTH, OPT_QUEUE,
	OPT_MAX_CLIENTS, OPT_IDLE, OPT_MAX_FRAME, OPT_SYSLOG, OPT_ALLOW, OPT_METRICS, OPT_MB_RO,
	OPT_MB_ALLOW_WRITE, OPT_GAP, OPT_MAX_IDLE, OPT_MAX_AGE, OPT_UNIT_MAP, OPT_MB_UPSTREAM, OPT_TID_CHECK,
	OPT_COALESCE, OPT_CACHE_TTL, OPT_MAX_BUFFERED,
};

struct opt_doc {
	const char *name;
	int has_arg;
	int val;
	const char *arg;    /* NULL: an alias, not listed in --help */
	const char *help;
};

static const struct opt_doc server_opts[] = {
	{ "applicationProtocol", required_argument, 'p', "PROTO", "framing: echo, http, iso8583, mpu, modbus (default echo)" },
	{ "protocol", required_argument, 'p', NULL, NULL },
	{ "targetServer", required_argument, 't', "HOST:PORT", "the target server (default 127.0.0.1:1234)" },
	{ "target", required_argument, 't', NULL, NULL },
	{ "listen", required_argument, 'l', "[HOST:]PORT", "where clients connect: 8000, 127.0.0.1:5020, [::1]:5020 (default 8000, all addresses)" },
	{ "timeout", required_argument, OPT_TIMEOUT, "DUR", "deadline for a frame, for an upstream connection and for the target's answer (default 60s)" },
	{ "delay", required_argument, OPT_DELAY, "DUR", "pause after connecting to the target before the first request (default 0)" },
	{ "max-connections", required_argument, OPT_MAX_CONN, "N", "upstream connections to keep open, used in parallel (default 1)" },
	{ "reconnect-backoff", required_argument, OPT_BACKOFF, "DUR", "first wait before reconnecting; doubles per failure up to 30s (default 1s)" },
	{ "health-check-interval", required_argument, OPT_HEALTH, "DUR", "how often idle upstream connections are checked; 0 = never (default 30s)" },
	{ "queue-size", required_argument, OPT_QUEUE, "N", "clients that may wait for an upstream connection; more are refused (default 32)" },
	{ "max-clients", required_argument, OPT_MAX_CLIENTS, "N", "client connections at once; more are closed at accept (default 1000)" },
	{ "idle-timeout", required_argument, OPT_IDLE, "DUR", "close a client silent this long between requests; 0 = never (default 5m)" },
	{ "max-frame", required_argument, OPT_MAX_FRAME, "SIZE", "largest request or response, e.g. 64k, 1M (default 1M)" },
	/* temporary, unlisted until the options table lands with its own row */
	{ "max-buffered", required_argument, OPT_MAX_BUFFERED, NULL, NULL },
	{ "allow", required_argument, OPT_ALLOW, "CIDR", "only clients from this network may connect; repeatable (default: everyone)" },
	{ "metrics-listen", required_argument, OPT_METRICS, "[HOST:]PORT", "serve statistics for Prometheus at http://HOST:PORT/metrics (default off)" },
	{ "modbus-read-only", no_argument, OPT_MB_RO, "", "modbus: refuse every function but reads (1-4, 43/14) with exception 0x01" },
	{ "modbus-allow-write", required_argument, OPT_MB_ALLOW_WRITE, "UNIT:ADDR[-ADDR]", "with --modbus-read-only, still let writes (5, 6, 15, 16) to these through; repeatable" },
	{ "request-gap", required_argument, OPT_GAP, "DUR", "pause between an answer and the next request on one upstream connection (default 0)" },
	{ "upstream-max-idle", required_argument, OPT_MAX_IDLE, "DUR", "reopen an upstream connection idle this long, before the device drops it; 0 = never (default 0)" },
	{ "upstream-max-age", required_argument, OPT_MAX_AGE, "DUR", "reopen an upstream connection open this long; 0 = never (default 0)" },
	{ "modbus-unit-map", required_argument, OPT_UNIT_MAP, "FROM=TO", "modbus: send unit id FROM to the device as TO, and answer as FROM; repeatable" },
	{ "modbus-upstream", required_argument, OPT_MB_UPSTREAM, "tcp|rtu", "modbus: the target speaks Modbus/TCP, or RTU frames over TCP (default tcp)" },
	{ "modbus-tid-check", required_argument, OPT_TID_CHECK, "strict|off", "modbus: match answers by transaction id, or (off) in order for gateways that echo a wrong id (default strict)" },
	{ "coalesce", no_argument, OPT_COALESCE, "", "modbus: a read identical to one in flight waits for its answer instead of going upstream (default off)" },
	{ "cache-ttl", required_argument, OPT_CACHE_TTL, "DUR", "modbus: serve an answer to a read again to identical reads for DUR; writes to the unit drop it; 0 = off (default 0)" },
	{ "syslog", no_argument, OPT_SYSLOG, "", "log to syslog instead of stderr" },
	{ "verbose", no_argument, 'v', "", "log connections and errors (info level)" },
	{ "debug", no_argument, 'd', "", "log every frame in hex (debug level)" },
	{ "help", no_argument, 'h', "", "show this help and exit" },
	{ NULL, 0, 0, NULL, NULL },
};

#define N_SERVER_OPTS (sizeof server_opts / sizeof server_opts[0])

void cli_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->codec = codec_find("echo");
	strcpy(cfg->target, "127.0.0.1:1234");
	strcpy(cfg->target_host, "127.0.0.1");
	strcpy(cfg->target_port, "1234");
	strcpy(cfg->listen, "8000");
	strcpy(cfg->listen_port, "8000");
	cfg->timeout_ms = 60000;
	cfg->delay_ms = 0;
	cfg->backoff_ms = 1000;
	cfg->health_ms = 30000;
	cfg->idle_timeout_ms = 300000;
	cfg->max_connections = 1;
	cfg->queue_size = 32;
	cfg->max_clients = 1000;
	cfg->max_frame = 1024 * 1024;
	cfg->max_buffered = 64 * 1024 * 1024;
	cfg->modbus_tid_check = 1;
	for (int i = 0; i < 256; i++)
		cfg->unit_map[i] = (uint8_t)i;
}

int cli_parse_duration(const char *s, int64_t *ms)
{
	static const struct { const char *unit; double ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
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
	if (*p != '\0' || total > 86400000.0 * 365)
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
	if (*end != '\0' || v > (unsigned long long)1 << 30)
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

static const char *option_name(int val)
{
	for (size_t i = 0; server_opts[i].name != NULL; i++)
		if (server_opts[i].val == val && server_opts[i].arg != NULL)
			return server_opts[i].name;
	return "?";
}

static int bad_duration(char *err, size_t cap, int val, const char *arg)
{
	return fail(err, cap, "--%s: invalid duration '%s' (use e.g. 250ms, 5s, 1m30s or seconds)",
		    option_name(val), arg);
}

static int known_protocols(char *out, size_t cap)
{
	size_t n = 0;
	out[0] = '\0';
	for (const struct codec *const *c = codec_all(); *c != NULL && n < cap; c++)
		n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", (*c)->name);
	return 0;
}

/* Where a plain duration option (any DUR, 0 allowed) is stored. */
static int64_t *duration_field(struct config *cfg, int opt)
{
	switch (opt) {
	case OPT_DELAY: return &cfg->delay_ms;
	case OPT_BACKOFF: return &cfg->backoff_ms;
	case OPT_HEALTH: return &cfg->health_ms;
	case OPT_IDLE: return &cfg->idle_timeout_ms;
	case OPT_GAP: return &cfg->request_gap_ms;
	case OPT_MAX_IDLE: return &cfg->upstream_max_idle_ms;
	case OPT_MAX_AGE: return &cfg->upstream_max_age_ms;
	default: return &cfg->cache_ttl_ms;
	}
}

static int server_option(struct config *cfg, int c, const char *arg, char *err, size_t cap)
{
	int64_t d;
	char names[128];

	switch (c) {
	case 'p':
		cfg->codec = codec_find(arg);
		if (cfg->codec == NULL) {
			known_protocols(names, sizeof names);
			return fail(err, cap, "--applicationProtocol: unknown protocol '%s' (known: %s)", arg, names);
		}
		return 0;
	case 't':
		if (net_split_hostport(arg, cfg->target_host, sizeof cfg->target_host, cfg->target_port,
				       sizeof cfg->target_port) < 0 || cfg->target_host[0] == '\0' ||
		    strcmp(cfg->target_port, "0") == 0 || strlen(arg) >= sizeof cfg->target)
			return fail(err, cap, "--targetServer: '%s' is not HOST:PORT (e.g. 192.0.2.10:502, [fd00::5]:502)", arg);
		strcpy(cfg->target, arg);
		return 0;
	case 'l':
		if (net_split_hostport(arg, cfg->listen_host, sizeof cfg->listen_host, cfg->listen_port,
				       sizeof cfg->listen_port) < 0 || strlen(arg) >= sizeof cfg->listen)
			return fail(err, cap, "--listen: '%s' is not [HOST:]PORT (e.g. 8000, 127.0.0.1:5020, [::1]:5020)", arg);
		strcpy(cfg->listen, arg);
		return 0;
	case OPT_TIMEOUT:
		if (cli_parse_duration(arg, &d) < 0)
			return bad_duration(err, cap, c, arg);
		if (d < 1)
			return fail(err, cap, "--timeout: must be more than 0");
		cfg->timeout_ms = d;
		return 0;
	case OPT_DELAY:
	case OPT_BACKOFF:
	case OPT_HEALTH:
	case OPT_IDLE:
	case OPT_GAP:
	case OPT_MAX_IDLE:
	case OPT_MAX_AGE:
	case OPT_CACHE_TTL:
		if (cli_parse_duration(arg, &d) < 0)
			return bad_duration(err, cap, c, arg);
		*duration_field(cfg, c) = d;
		return 0;
	case OPT_MAX_CONN:
		if (parse_int(arg, 1, 1024, &cfg->max_connections) < 0)
			return fail(err, cap, "--max-connections: '%s' is not a number from 1 to 1024", arg);
		return 0;
	case OPT_QUEUE:
		if (parse_int(arg, 0, 1000000, &cfg->queue_size) < 0)
			return fail(err, cap, "--queue-size: '%s' is not a number from 0 to 1000000", arg);
		return 0;
	case OPT_MAX_CLIENTS:
		if (parse_int(arg, 1, 1000000, &cfg->max_clients) < 0)
			return fail(err, cap, "--max-clients: '%s' is not a number from 1 to 1000000", arg);
		return 0;
	case OPT_MAX_FRAME:
		if (cli_parse_size(arg, &cfg->max_frame) < 0 || cfg->max_frame < 16)
			return fail(err, cap, "--max-frame: '%s' is not a size from 16 bytes to 1G (e.g. 65536, 64k, 1M)", arg);
		return 0;
	case OPT_MAX_BUFFERED:
		if (cli_parse_size(arg, &cfg->max_buffered) < 0)
			return fail(err, cap, "--max-buffered: '%s' is not a size (e.g. 64M)", arg);
		return 0;
	case OPT_ALLOW:
		if (cfg->nallow >= ACL_MAX)
			return fail(err, cap, "--allow: at most %d networks", ACL_MAX);
		if (acl_parse(arg, &cfg->allow[cfg->nallow]) < 0)
			return fail(err, cap, "--allow: '%s' is not an address or CIDR network (e.g. 192.0.2.0/24, fd00::/8)", arg);
		cfg->nallow++;
		return 0;
	case OPT_METRICS:
		if (net_split_hostport(arg, cfg->metrics_host, sizeof cfg->metrics_host, cfg->metrics_port,
				       sizeof cfg->metrics_port) < 0)
			return fail(err, cap, "--metrics-listen: '%s' is not [HOST:]PORT (e.g. 127.0.0.1:9502)", arg);
		return 0;
	case OPT_MB_RO:
		cfg->modbus_policy.read_only = 1;
		return 0;
	case OPT_MB_ALLOW_WRITE: {
		struct modbus_policy *mp = &cfg->modbus_policy;
		if (mp->nallow >= MODBUS_MAX_WRITE_RANGES)
			return fail(err, cap, "--modbus-allow-write: at most %d ranges", MODBUS_MAX_WRITE_RANGES);
		if (modbus_parse_write_range(arg, &mp->allow[mp->nallow]) < 0)
			return fail(err, cap, "--modbus-allow-write: '%s' is not UNIT:ADDR or UNIT:FIRST-LAST (e.g. 1:40100-40110)", arg);
		mp->nallow++;
		return 0;
	}
	case OPT_UNIT_MAP: {
		int from, to;
		char a[8], b[8];
		const char *eq = strchr(arg, '=');
		if (eq == NULL || (size_t)(eq - arg) >= sizeof a || strlen(eq + 1) >= sizeof b)
			return fail(err, cap, "--modbus-unit-map: '%s' is not FROM=TO (unit ids 0-255, e.g. 1=0)", arg);
		memcpy(a, arg, (size_t)(eq - arg));
		a[eq - arg] = '\0';
		strcpy(b, eq + 1);
		if (parse_int(a, 0, 255, &from) < 0 || parse_int(b, 0, 255, &to) < 0)
			return fail(err, cap, "--modbus-unit-map: '%s' is not FROM=TO (unit ids 0-255, e.g. 1=0)", arg);
		cfg->unit_map[from] = (uint8_t)to;
		cfg->unit_map_used = 1;
		return 0;
	}
	case OPT_MB_UPSTREAM:
		if (strcmp(arg, "tcp") != 0 && strcmp(arg, "rtu") != 0)
			return fail(err, cap, "--modbus-upstream: '%s' is neither tcp nor rtu", arg);
		cfg->modbus_rtu = strcmp(arg, "rtu") == 0;
		return 0;
	case OPT_TID_CHECK:
		if (strcmp(arg, "strict") != 0 && strcmp(arg, "off") != 0)
			return fail(err, cap, "--modbus-tid-check: '%s' is neither strict nor off", arg);
		cfg->modbus_tid_check = strcmp(arg, "strict") == 0;
		return 0;
	case OPT_COALESCE:
		cfg->coalesce = 1;
		return 0;
	case OPT_SYSLOG:
		cfg->use_syslog = 1;
		return 0;
	case 'v':
		cfg->verbose = 1;
		return 0;
	case 'd':
		cfg->debug = 1;
		return 0;
	}
	return fail(err, cap, "internal: unhandled option %d", c);
}

static int parse_server(int argc, char **argv, struct config *cfg, enum cli_cmd *cmd, char *err, size_t cap)
{
	struct option longopts[N_SERVER_OPTS];
	for (size_t i = 0; i < N_SERVER_OPTS; i++)
		longopts[i] = (struct option){ server_opts[i].name, server_opts[i].has_arg, NULL, server_opts[i].val };

	optind = 1;
	opterr = 0;
	for (;;) {
		int idx = -1;
		/* _only: the Go tool's users write -timeout 5 and -targetServer x */
		int c = getopt_long_only(argc, argv, ":p:t:l:vdh", longopts, &idx);
		if (c == -1)
			break;
		if (c == 'h') {
			*cmd = CLI_HELP;
			return 0;
		}
		if (c == '?') {
			if (optopt != 0 && optopt < 256)
				return fail(err, cap, "unknown option '-%c' (see 'tcp-multiplexer server --help')", optopt);
			return fail(err, cap, "unknown option '%s' (see 'tcp-multiplexer server --help')", argv[optind - 1]);
		}
		if (c == ':')
			return fail(err, cap, "option '%s' needs a value", argv[optind - 1]);
		int rc = server_option(cfg, c, optarg, err, cap);
		if (rc != 0)
			return rc;
	}
	if (optind < argc)
		return fail(err, cap, "unexpected argument '%s' (see 'tcp-multiplexer server --help')", argv[optind]);
	if (cfg->modbus_policy.nallow > 0 && !cfg->modbus_policy.read_only)
		return fail(err, cap, "--modbus-allow-write needs --modbus-read-only (without it every write passes)");
	if (strcmp(cfg->codec->name, "modbus") != 0) {
		const char *m = cfg->modbus_policy.read_only ? "--modbus-read-only"
			: cfg->unit_map_used ? "--modbus-unit-map" : cfg->modbus_rtu ? "--modbus-upstream rtu"
			: !cfg->modbus_tid_check ? "--modbus-tid-check off" : cfg->coalesce ? "--coalesce"
			: cfg->cache_ttl_ms > 0 ? "--cache-ttl" : NULL;
		if (m != NULL)
			return fail(err, cap, "%s needs -p modbus", m);
	}
	return 0;
}

int cli_parse(int argc, char **argv, struct config *cfg, enum cli_cmd *cmd, enum cli_cmd *help_for,
	      char *err, size_t errcap)
{
	cli_defaults(cfg);
	*help_for = CLI_HELP;
	if (argc < 2) {
		*cmd = CLI_HELP;
		return fail(err, errcap, "no command given (server, list, version)");
	}
	const char *c = argv[1];
	if (strcmp(c, "-h") == 0 || strcmp(c, "--help") == 0 || strcmp(c, "help") == 0) {
		*cmd = CLI_HELP;
		if (argc > 2 && strcmp(argv[2], "server") == 0)
			*help_for = CLI_SERVER;
		return 0;
	}
	if (strcmp(c, "--version") == 0 || strcmp(c, "-V") == 0)
		c = "version";

	enum cli_cmd which;
	if (strcmp(c, "server") == 0)
		which = CLI_SERVER;
	else if (strcmp(c, "list") == 0)
		which = CLI_LIST;
	else if (strcmp(c, "version") == 0)
		which = CLI_VERSION;
	else
		return fail(err, errcap, "unknown command '%s' (known: server, list, version)", c);

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
			if (n == 0)
				n = room;
		}
		fprintf(out, "%*s%.*s\n", indent, "", n, p);
		p += n;
		while (*p == ' ')
			p++;
	}
}

void cli_help(FILE *out, enum cli_cmd which)
{
	switch (which) {
	case CLI_LIST:
		fprintf(out, "Usage: tcp-multiplexer list\n\nPrints the framings the server understands, one a line.\n");
		return;
	case CLI_VERSION:
		fprintf(out, "Usage: tcp-multiplexer version\n\nPrints the version.\n");
		return;
	case CLI_SERVER:
		fprintf(out, "Usage: tcp-multiplexer server [OPTION]...\n\n"
			     "Accepts many clients and forwards each complete request over a small pool of\n"
			     "connections to one target server; every answer goes back to the client that asked.\n\n"
			     "Options:\n");
		for (size_t i = 0; server_opts[i].name != NULL; i++) {
			const struct opt_doc *o = &server_opts[i];
			if (o->arg == NULL)
				continue;
			if (o->val < 256)
				fprintf(out, "  -%c, --%s%s%s\n", o->val, o->name, o->arg[0] ? " " : "", o->arg);
			else
				fprintf(out, "      --%s%s%s\n", o->name, o->arg[0] ? " " : "", o->arg);
			wrap(out, o->help, 10, 78);
		}
		fprintf(out, "\nAliases: --protocol for -p, --target for -t. Options also work with one dash\n"
			     "(-timeout 5), as with the Go tool. DUR is 250ms, 5s, 1m30s, or bare seconds.\n"
			     "Exit status: 0 after a signal-requested stop, 1 runtime failure, 2 usage error.\n");
		return;
	default:
		fprintf(out, "Usage: tcp-multiplexer COMMAND [OPTION]...\n\n"
			     "Lets many TCP clients share a few connections to one target server, request by\n"
			     "request (e.g. several Modbus/TCP masters and an inverter that takes one connection).\n\n"
			     "Commands:\n"
			     "  server    run the multiplexer (see 'tcp-multiplexer server --help')\n"
			     "  list      print the supported framings\n"
			     "  version   print the version\n"
			     "  help      show this help\n");
		return;
	}
}
