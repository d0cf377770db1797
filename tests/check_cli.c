/* Tests for src/cli.c: durations, sizes, option parsing and its errors. */
#include "config.h"

#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "testing.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static const struct { const char *in; int ok; int64_t ms; } durations[] = {
	{ "250ms", 1, 250 }, { "1s", 1, 1000 }, { "1m30s", 1, 90000 }, { "60", 1, 60000 },
	{ "0", 1, 0 }, { "1.5s", 1, 1500 }, { "2h", 1, 7200000 }, { "1m", 1, 60000 },
	{ "0.25", 1, 250 }, { "1h2m3s4ms", 1, 3723004 },
	{ "", 0, 0 }, { "s", 0, 0 }, { "5x", 0, 0 }, { "-1s", 0, 0 }, { "1s2", 0, 0 },
	{ "ms", 0, 0 }, { " 1s", 0, 0 }, { "1e3s", 0, 0 }, { "99999999h", 0, 0 },
};

START_TEST(test_duration)
{
	int64_t ms = -7;
	int rc = cli_parse_duration(durations[_i].in, &ms);
	if (durations[_i].ok) {
		ck_assert_msg(rc == 0, "'%s' should parse", durations[_i].in);
		ck_assert_int_eq(ms, durations[_i].ms);
	} else {
		ck_assert_msg(rc < 0, "'%s' should be refused", durations[_i].in);
	}
}
END_TEST

START_TEST(test_size)
{
	size_t v;
	ck_assert_int_eq(cli_parse_size("65536", &v), 0);
	ck_assert_uint_eq(v, 65536);
	ck_assert_int_eq(cli_parse_size("64k", &v), 0);
	ck_assert_uint_eq(v, 65536);
	ck_assert_int_eq(cli_parse_size("1M", &v), 0);
	ck_assert_uint_eq(v, 1048576);
	ck_assert_int_eq(cli_parse_size("2MiB", &v), 0);
	ck_assert_uint_eq(v, 2097152);
	ck_assert_int_lt(cli_parse_size("1T", &v), 0);
	ck_assert_int_lt(cli_parse_size("-1", &v), 0);
	ck_assert_int_lt(cli_parse_size("", &v), 0);
	ck_assert_int_lt(cli_parse_size("2G", &v), 0);
}
END_TEST

static int parse(int argc, char **argv, struct config *cfg, enum cli_cmd *cmd, char *err)
{
	enum cli_cmd help_for;
	return cli_parse(argc, argv, cfg, cmd, &help_for, err, 256);
}

START_TEST(test_defaults)
{
	char *argv[] = { "tcp-multiplexer", "server", NULL };
	struct config cfg;
	enum cli_cmd cmd;
	char err[256];
	ck_assert_int_eq(parse(ARGC(argv), argv, &cfg, &cmd, err), 0);
	ck_assert_int_eq(cmd, CLI_SERVER);
	ck_assert_str_eq(cfg.codec->name, "echo");
	ck_assert_str_eq(cfg.target_host, "127.0.0.1");
	ck_assert_str_eq(cfg.target_port, "1234");
	ck_assert_str_eq(cfg.listen_host, "");
	ck_assert_str_eq(cfg.listen_port, "8000");
	ck_assert_int_eq(cfg.timeout_ms, 60000);
	ck_assert_int_eq(cfg.delay_ms, 0);
	ck_assert_int_eq(cfg.max_connections, 1);
	ck_assert_int_eq(cfg.backoff_ms, 1000);
	ck_assert_int_eq(cfg.health_ms, 30000);
	ck_assert_int_eq(cfg.queue_size, 0); /* issue 13.5: waiting is the default (was 32) */
	ck_assert_int_eq(cfg.max_clients, 1000);
	ck_assert_int_eq(cfg.idle_timeout_ms, 300000);
	ck_assert_uint_eq(cfg.max_frame, 1048576);
	ck_assert_int_eq(cfg.verbose, 0);
	ck_assert_int_eq(cfg.debug, 0);
}
END_TEST

START_TEST(test_go_names)
{
	/* A unit file written for the Go tool, with its long names and single dashes. */
	char *argv[] = { "tcp-multiplexer", "server", "--applicationProtocol", "modbus",
			 "-targetServer", "192.0.2.10:502", "--listen=5020", "-timeout", "5",
			 "--delay", "500ms", "-v", "-d", NULL };
	struct config cfg;
	enum cli_cmd cmd;
	char err[256];
	ck_assert_int_eq(parse(ARGC(argv), argv, &cfg, &cmd, err), 0);
	ck_assert_str_eq(cfg.codec->name, "modbus");
	ck_assert_str_eq(cfg.target_host, "192.0.2.10");
	ck_assert_str_eq(cfg.target_port, "502");
	ck_assert_str_eq(cfg.listen_port, "5020");
	ck_assert_int_eq(cfg.timeout_ms, 5000);
	ck_assert_int_eq(cfg.delay_ms, 500);
	ck_assert_int_eq(cfg.verbose, 1);
	ck_assert_int_eq(cfg.debug, 1);
}
END_TEST

START_TEST(test_short_and_aliases)
{
	char *argv[] = { "tcp-multiplexer", "server", "-p", "http", "--target", "[fd00::5]:80",
			 "-l", "[::1]:5020", "--max-connections", "4", "--queue-size", "0",
			 "--reconnect-backoff", "100ms", "--health-check-interval", "0",
			 "--max-clients", "5000", "--idle-timeout", "1m", "--max-frame", "64k",
			 "--protocol", "iso8583", NULL };
	struct config cfg;
	enum cli_cmd cmd;
	char err[256];
	ck_assert_int_eq(parse(ARGC(argv), argv, &cfg, &cmd, err), 0);
	ck_assert_str_eq(cfg.codec->name, "iso8583"); /* the last one wins */
	ck_assert_str_eq(cfg.target_host, "fd00::5");
	ck_assert_str_eq(cfg.target_port, "80");
	ck_assert_str_eq(cfg.listen_host, "::1");
	ck_assert_str_eq(cfg.listen_port, "5020");
	ck_assert_int_eq(cfg.max_connections, 4);
	ck_assert_int_eq(cfg.queue_size, 0);
	ck_assert_int_eq(cfg.backoff_ms, 100);
	ck_assert_int_eq(cfg.health_ms, 0);
	ck_assert_int_eq(cfg.max_clients, 5000);
	ck_assert_int_eq(cfg.idle_timeout_ms, 60000);
	ck_assert_uint_eq(cfg.max_frame, 65536);
}
END_TEST

/* Each bad command line exits 2 with one line naming the flag. */
static const struct { const char *flag, *value, *expect; } bad[] = {
	{ "-p", "foo", "known: echo, http, iso8583, mpu, modbus" },
	{ "--timeout", "soon", "--timeout" },
	{ "--timeout", "0", "--timeout" },
	{ "--delay", "1x", "--delay" },
	{ "--max-connections", "0", "--max-connections" },
	{ "--max-connections", "ten", "--max-connections" },
	{ "--queue-size", "-1", "--queue-size" },
	{ "-t", "nohostport", "--targetServer" },
	{ "-t", "host:99999", "--targetServer" },
	{ "-t", ":502", "--targetServer" },
	{ "-t", "fd00::5:502", "--targetServer" },
	{ "-l", "host:port", "--listen" },
	{ "--max-frame", "huge", "--max-frame" },
	{ "--reconnect-backoff", "", "--reconnect-backoff" },
	{ "--health-check-interval", "-5", "--health-check-interval" },
	{ "--idle-timeout", "forever", "--idle-timeout" },
	{ "--max-clients", "0", "--max-clients" },
};

START_TEST(test_bad_values)
{
	char *argv[] = { "tcp-multiplexer", "server", (char *)bad[_i].flag, (char *)bad[_i].value, NULL };
	struct config cfg;
	enum cli_cmd cmd;
	char err[256] = "";
	ck_assert_int_eq(parse(ARGC(argv), argv, &cfg, &cmd, err), 2);
	ck_assert_msg(strstr(err, bad[_i].expect) != NULL, "'%s %s': message '%s' lacks '%s'",
		      bad[_i].flag, bad[_i].value, err, bad[_i].expect);
	ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

START_TEST(test_bad_usage)
{
	struct config cfg;
	enum cli_cmd cmd;
	char err[256];
	char *unknown[] = { "tcp-multiplexer", "server", "--bogus", NULL };
	ck_assert_int_eq(parse(ARGC(unknown), unknown, &cfg, &cmd, err), 2);
	ck_assert_ptr_nonnull(strstr(err, "--bogus"));
	char *missing[] = { "tcp-multiplexer", "server", "--timeout", NULL };
	ck_assert_int_eq(parse(ARGC(missing), missing, &cfg, &cmd, err), 2);
	ck_assert_ptr_nonnull(strstr(err, "--timeout"));
	char *extra[] = { "tcp-multiplexer", "server", "stray", NULL };
	ck_assert_int_eq(parse(ARGC(extra), extra, &cfg, &cmd, err), 2);
	char *nocmd[] = { "tcp-multiplexer", "serve", NULL };
	ck_assert_int_eq(parse(ARGC(nocmd), nocmd, &cfg, &cmd, err), 2);
	ck_assert_ptr_nonnull(strstr(err, "serve"));
	char *none[] = { "tcp-multiplexer", NULL };
	ck_assert_int_eq(parse(ARGC(none), none, &cfg, &cmd, err), 2);
	char *listargs[] = { "tcp-multiplexer", "list", "x", NULL };
	ck_assert_int_eq(parse(ARGC(listargs), listargs, &cfg, &cmd, err), 2);
}
END_TEST

START_TEST(test_commands)
{
	struct config cfg;
	enum cli_cmd cmd, help_for;
	char err[256];
	char *list[] = { "tcp-multiplexer", "list", NULL };
	ck_assert_int_eq(cli_parse(ARGC(list), list, &cfg, &cmd, &help_for, err, sizeof err), 0);
	ck_assert_int_eq(cmd, CLI_LIST);
	char *ver[] = { "tcp-multiplexer", "version", NULL };
	ck_assert_int_eq(cli_parse(ARGC(ver), ver, &cfg, &cmd, &help_for, err, sizeof err), 0);
	ck_assert_int_eq(cmd, CLI_VERSION);
	char *help[] = { "tcp-multiplexer", "--help", NULL };
	ck_assert_int_eq(cli_parse(ARGC(help), help, &cfg, &cmd, &help_for, err, sizeof err), 0);
	ck_assert_int_eq(cmd, CLI_HELP);
	ck_assert_int_eq(help_for, CLI_HELP);
	char *shelp[] = { "tcp-multiplexer", "server", "-h", NULL };
	ck_assert_int_eq(cli_parse(ARGC(shelp), shelp, &cfg, &cmd, &help_for, err, sizeof err), 0);
	ck_assert_int_eq(cmd, CLI_HELP);
	ck_assert_int_eq(help_for, CLI_SERVER);
	char *lhelp[] = { "tcp-multiplexer", "list", "--help", NULL };
	ck_assert_int_eq(cli_parse(ARGC(lhelp), lhelp, &cfg, &cmd, &help_for, err, sizeof err), 0);
	ck_assert_int_eq(help_for, CLI_LIST);
}
END_TEST

/* The rows added for the limits, the answer deadline and the serial port. */
START_TEST(test_new_defaults)
{
	char *argv[] = { "tcp-multiplexer", "server", NULL };
	struct config cfg;
	enum cli_cmd cmd;
	char err[256];
	ck_assert_int_eq(parse(ARGC(argv), argv, &cfg, &cmd, err), 0);
	ck_assert_int_eq(cfg.answer_timeout_ms, 5000);
	ck_assert_uint_eq(cfg.max_buffered, 64 * 1024 * 1024);
	ck_assert_str_eq(cfg.serial_path, "");
	ck_assert_int_eq(cfg.serial_speed, 9600);
	ck_assert_int_eq(cfg.serial_data_bits, 8);
	ck_assert_int_eq(cfg.serial_parity, 'N');
	ck_assert_int_eq(cfg.serial_stop_bits, 1);
	ck_assert_int_eq(cfg.serial_rs485, 0);
	ck_assert_int_eq(cfg.serial_echo, 0);
	ck_assert_int_eq(cfg.modbus_rtu, 0);
	ck_assert_int_eq(cfg.modbus_tid_check, 1);
	/* cli_defaults, for the suites that build a config by hand, agrees */
	struct config d;
	cli_defaults(&d);
	ck_assert_int_eq(d.timeout_ms, cfg.timeout_ms);
	ck_assert_int_eq(d.answer_timeout_ms, cfg.answer_timeout_ms);
	ck_assert_uint_eq(d.max_buffered, cfg.max_buffered);
	ck_assert_str_eq(d.codec->name, "echo");
	ck_assert_int_eq(d.unit_map[7], 7);
}
END_TEST

#define MAXARGS 12
/* A command line (after "tcp-multiplexer server") and what it must give. */
static const struct {
	const char *args[MAXARGS];
	size_t off;   /* offsetof(struct config, field) */
	char type;    /* 'd' int64_t, 'i' int, 'z' size_t, 'c' char */
	int64_t want;
} good[] = {
	{ { "--answer-timeout", "250ms" }, offsetof(struct config, answer_timeout_ms), 'd', 250 },
	{ { "-answer-timeout", "2" }, offsetof(struct config, answer_timeout_ms), 'd', 2000 },
	{ { "--answer-timeout=1m" }, offsetof(struct config, answer_timeout_ms), 'd', 60000 },
	{ { "--queue-size", "5" }, offsetof(struct config, queue_size), 'i', 5 },
	{ { "--queue-size", "0" }, offsetof(struct config, queue_size), 'i', 0 },
	{ { "--max-buffered", "16M" }, offsetof(struct config, max_buffered), 'z', 16 << 20 },
	{ { "--max-buffered", "1024" }, offsetof(struct config, max_buffered), 'z', 1024 },
	{ { "-max-buffered", "512k" }, offsetof(struct config, max_buffered), 'z', 512 << 10 },
	{ { "-p", "modbus", "-t", "/dev/ttyUSB0" }, offsetof(struct config, max_connections), 'i', 1 },
	{ { "-p", "modbus", "-t", "/dev/ttyUSB0", "--max-connections", "1" },
	  offsetof(struct config, max_connections), 'i', 1 },
	{ { "-p", "modbus", "--targetServer", "/dev/ttyS0", "--serial-speed", "19200" },
	  offsetof(struct config, serial_speed), 'i', 19200 },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-speed", "1200" },
	  offsetof(struct config, serial_speed), 'i', 1200 },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-speed", "115200" },
	  offsetof(struct config, serial_speed), 'i', 115200 },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-speed", "921600" },
	  offsetof(struct config, serial_speed), 'i', 921600 },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-format", "7E2" },
	  offsetof(struct config, serial_data_bits), 'i', 7 },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-format", "7E2" },
	  offsetof(struct config, serial_parity), 'c', 'E' },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-format", "7E2" },
	  offsetof(struct config, serial_stop_bits), 'i', 2 },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-format", "5o1" },
	  offsetof(struct config, serial_parity), 'c', 'O' },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-rs485" }, offsetof(struct config, serial_rs485), 'i', 1 },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-echo" }, offsetof(struct config, serial_echo), 'i', 1 },
	/* the last -t wins: a TCP target after a serial one is a TCP target */
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "-t", "192.0.2.1:502", "--max-connections", "3" },
	  offsetof(struct config, max_connections), 'i', 3 },
	{ { "--modbus-upstream", "rtu", "-p", "modbus" }, offsetof(struct config, modbus_rtu), 'i', 1 },
	{ { "-p", "modbus", "--modbus-tid-check", "off" }, offsetof(struct config, modbus_tid_check), 'i', 0 },
	{ { "-p", "modbus", "--coalesce", "--cache-ttl", "1s" }, offsetof(struct config, cache_ttl_ms), 'd', 1000 },
};

static int64_t field(const struct config *cfg, size_t off, char type)
{
	const char *p = (const char *)cfg + off;
	switch (type) {
	case 'd': return *(const int64_t *)(const void *)p;
	case 'z': return (int64_t)*(const size_t *)(const void *)p;
	case 'c': return *p;
	default: return *(const int *)(const void *)p;
	}
}

static int parse_args(const char *const *args, struct config *cfg, char *err)
{
	char *argv[MAXARGS + 3] = { "tcp-multiplexer", "server" };
	int argc = 2;
	for (int i = 0; i < MAXARGS && args[i] != NULL; i++)
		argv[argc++] = (char *)args[i];
	argv[argc] = NULL;
	enum cli_cmd cmd;
	int rc = parse(argc, argv, cfg, &cmd, err);
	if (rc == 0)
		ck_assert_int_eq(cmd, CLI_SERVER);
	return rc;
}

START_TEST(test_new_rows)
{
	struct config cfg;
	char err[256] = "";
	ck_assert_msg(parse_args(good[_i].args, &cfg, err) == 0, "'%s %s' refused: %s", good[_i].args[0],
		      good[_i].args[1] ? good[_i].args[1] : "", err);
	ck_assert_int_eq(field(&cfg, good[_i].off, good[_i].type), good[_i].want);
}
END_TEST

START_TEST(test_serial_target)
{
	struct config cfg;
	char err[256];
	const char *args[] = { "-p", "modbus", "-t", "/dev/serial/by-id/usb-FTDI-if00-port0", NULL };
	ck_assert_int_eq(parse_args(args, &cfg, err), 0);
	ck_assert_str_eq(cfg.serial_path, "/dev/serial/by-id/usb-FTDI-if00-port0");
	ck_assert_str_eq(cfg.target, "/dev/serial/by-id/usb-FTDI-if00-port0");
	ck_assert_str_eq(cfg.target_host, "");
	const char *tcp[] = { "-p", "modbus", "-t", "/dev/ttyS0", "-t", "[fd00::5]:502", NULL };
	ck_assert_int_eq(parse_args(tcp, &cfg, err), 0);
	ck_assert_str_eq(cfg.serial_path, "");
	ck_assert_str_eq(cfg.target_host, "fd00::5");
}
END_TEST

/* Each bad combination exits 2 with one line that says what to change. */
static const struct { const char *args[MAXARGS]; const char *expect; } bad_new[] = {
	{ { "--answer-timeout", "0" }, "--answer-timeout" },
	{ { "--answer-timeout", "soon" }, "--answer-timeout" },
	{ { "--max-buffered", "2G" }, "--max-buffered" },
	{ { "--max-buffered", "100" }, "--max-buffered" },
	{ { "--max-buffered", "lots" }, "--max-buffered" },
	{ { "--queue-size", "many" }, "--queue-size" },
	{ { "-t", "/dev/ttyUSB0" }, "needs -p modbus" },
	{ { "-p", "http", "-t", "/dev/ttyUSB0" }, "needs -p modbus" },
	{ { "-p", "modbus", "-t", "/dev/ttyUSB0", "--max-connections", "2" }, "--max-connections" },
	{ { "-p", "modbus", "--max-connections", "4", "-t", "/dev/ttyUSB0" }, "--max-connections" },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-speed", "9601" }, "--serial-speed" },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-speed", "300" }, "--serial-speed" },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-speed", "fast" }, "--serial-speed" },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-speed", "0" }, "--serial-speed" },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-format", "9N1" }, "--serial-format" },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-format", "8X1" }, "--serial-format" },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-format", "8N3" }, "--serial-format" },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-format", "8N" }, "--serial-format" },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-format", "8N1x" }, "--serial-format" },
	{ { "-p", "modbus", "-t", "/dev/ttyS0", "--serial-format", "" }, "--serial-format" },
	{ { "-p", "modbus", "--serial-speed", "19200" }, "--serial-speed needs a serial port" },
	{ { "-p", "modbus", "--serial-rs485" }, "--serial-rs485 needs a serial port" },
	{ { "--serial-echo" }, "--serial-echo needs -p modbus" },
	{ { "--serial-format", "8E1" }, "--serial-format needs -p modbus" },
	{ { "--modbus-upstream", "tcp" }, "--modbus-upstream needs -p modbus" },
	{ { "--cache-ttl", "0" }, "--cache-ttl needs -p modbus" },
	{ { "--modbus-unit-map", "1=2" }, "--modbus-unit-map needs -p modbus" },
	{ { "-p", "modbus", "--modbus-upstream", "ascii" }, "neither tcp nor rtu" },
	{ { "-p", "modbus", "--modbus-tid-check", "loose" }, "neither strict nor off" },
};

START_TEST(test_bad_new)
{
	struct config cfg;
	char err[256] = "";
	ck_assert_int_eq(parse_args(bad_new[_i].args, &cfg, err), 2);
	ck_assert_msg(strstr(err, bad_new[_i].expect) != NULL, "'%s %s...': message '%s' lacks '%s'",
		      bad_new[_i].args[0], bad_new[_i].args[1] ? bad_new[_i].args[1] : "", err,
		      bad_new[_i].expect);
	ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

/* Every plain row of the table, given a value of its kind, lands in its own
 * field and nowhere else (catches a wrong or shared offsetof). */
static int64_t row_field(const struct config *cfg, const struct cli_opt *o)
{
	switch (o->kind) {
	case CLI_DURATION: return field(cfg, o->off, 'd');
	case CLI_SIZE: return field(cfg, o->off, 'z');
	default: return field(cfg, o->off, 'i');
	}
}

static int plain(const struct cli_opt *o)
{
	return o->kind == CLI_DURATION || o->kind == CLI_COUNT || o->kind == CLI_SIZE ||
	       o->kind == CLI_FLAG || o->kind == CLI_CHOICE;
}

/* A value of the row's kind other than its default, and what it stores. */
static const char *sample(const struct cli_opt *o, char *buf, size_t cap, int64_t *want)
{
	switch (o->kind) {
	case CLI_DURATION:
		*want = 1234;
		return "1234ms";
	case CLI_SIZE:
		*want = 4096;
		return "4k";
	case CLI_FLAG:
		*want = 1;
		return NULL;
	case CLI_CHOICE: {
		const char *last = strrchr(o->arg, '|') + 1;
		int n = 0;
		for (const char *p = o->arg; *p != '\0'; p++)
			n += *p == '|';
		*want = o->values != NULL ? o->values[n] : n;
		return last;
	}
	default:
		*want = o->values != NULL ? o->values[1] : o->lo + 1;
		snprintf(buf, cap, "%lld", (long long)*want);
		return buf;
	}
}

START_TEST(test_table_rows)
{
	const struct cli_opt *rows = cli_server_options(), *o;
	char name[64], value[32], err[256] = "";
	struct config base, cfg;
	cli_defaults(&base);
	int tried = 0;
	for (o = rows; o->name != NULL; o++) {
		if (!plain(o))
			continue;
		int64_t want;
		const char *v = sample(o, value, sizeof value, &want);
		snprintf(name, sizeof name, "--%s", o->name);
		const char *args[] = { "-p", "modbus", name, v, NULL };
		const char *serial[] = { "-p", "modbus", "-t", "/dev/ttyS0", name, v, NULL };
		ck_assert_msg(parse_args((o->needs & CLI_NEEDS_SERIAL) ? serial : args, &cfg, err) == 0,
			      "%s %s: %s", name, v ? v : "", err);
		ck_assert_msg(row_field(&cfg, o) == want, "%s %s stored %lld", name, v ? v : "",
			      (long long)row_field(&cfg, o));
		for (const struct cli_opt *other = rows; other->name != NULL; other++)
			if (plain(other) && other->off != o->off)
				ck_assert_msg(row_field(&cfg, other) == row_field(&base, other), "%s changed --%s",
					      name, other->name);
		tried++;
	}
	ck_assert_int_ge(tried, 25);
}
END_TEST

static char *capture_help(enum cli_cmd which)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	cli_help(f, which);
	ck_assert_int_eq(fclose(f), 0);
	return text;
}

/* --help is generated from the table: every option, with its default. */
START_TEST(test_help_from_table)
{
	char *help = capture_help(CLI_SERVER), want[128];
	for (const struct cli_opt *o = cli_server_options(); o->name != NULL; o++) {
		snprintf(want, sizeof want, "--%s%s", o->name, o->kind == CLI_ALIAS ? " for " : "");
		ck_assert_msg(strstr(help, want) != NULL, "--help lacks '%s'", want);
		if (o->def == NULL)
			continue;
		snprintf(want, sizeof want, "(default %s)", o->def);
		ck_assert_msg(strstr(help, want) != NULL, "--help lacks '%s' for --%s", want, o->name);
	}
	ck_assert_ptr_nonnull(strstr(help, "(default 60s)"));
	ck_assert_ptr_nonnull(strstr(help, "(default 5s)"));
	free(help);
}
END_TEST

/* Issue 13.8: the top-level help names --version and -V; errors name every command, help too. */
START_TEST(test_commands_listed)
{
	char *help = capture_help(CLI_HELP);
	ck_assert_ptr_nonnull(strstr(help, "--version"));
	ck_assert_ptr_nonnull(strstr(help, "-V"));
	ck_assert_ptr_nonnull(strstr(help, "help "));
	free(help);

	struct config cfg;
	enum cli_cmd cmd, help_for;
	char err[256];
	char *unknown[] = { "tcp-multiplexer", "serve", NULL };
	ck_assert_int_eq(parse(ARGC(unknown), unknown, &cfg, &cmd, err), 2);
	ck_assert_ptr_nonnull(strstr(err, "known: server, list, version, help"));
	char *none[] = { "tcp-multiplexer", NULL };
	ck_assert_int_eq(parse(ARGC(none), none, &cfg, &cmd, err), 2);
	ck_assert_ptr_nonnull(strstr(err, "server, list, version, help"));
	char *dashv[] = { "tcp-multiplexer", "-V", NULL };
	ck_assert_int_eq(parse(ARGC(dashv), dashv, &cfg, &cmd, err), 0);
	ck_assert_int_eq(cmd, CLI_VERSION);
	char *hlist[] = { "tcp-multiplexer", "help", "list", NULL };
	ck_assert_int_eq(cli_parse(ARGC(hlist), hlist, &cfg, &cmd, &help_for, err, sizeof err), 0);
	ck_assert_int_eq(cmd, CLI_HELP);
	ck_assert_int_eq(help_for, CLI_LIST);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("cli");
	TM_LOOPS(s, "durations", 0, TM_LOOP(test_duration, durations), TM_ONCE(test_size));
	TM_LOOPS(s, "options", 0, TM_ONCE(test_defaults), TM_ONCE(test_go_names),
		 TM_ONCE(test_short_and_aliases), TM_ONCE(test_commands), TM_ONCE(test_new_defaults),
		 TM_LOOP(test_new_rows, good), TM_ONCE(test_serial_target), TM_ONCE(test_table_rows),
		 TM_ONCE(test_help_from_table), TM_ONCE(test_commands_listed));
	TM_LOOPS(s, "errors", 0, TM_LOOP(test_bad_values, bad), TM_ONCE(test_bad_usage),
		 TM_LOOP(test_bad_new, bad_new));
	return s;
}
