/* Tests for src/cli.c: durations, sizes, option parsing and its errors. */
#include "config.h"

#include <check.h>
#include <string.h>

#include "cli.h"

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
	ck_assert_int_eq(cfg.queue_size, -1);
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

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("durations");
	tcase_add_loop_test(tc, test_duration, 0, (int)(sizeof durations / sizeof durations[0]));
	tcase_add_test(tc, test_size);
	suite_add_tcase(s, tc);
	tc = tcase_create("options");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_go_names);
	tcase_add_test(tc, test_short_and_aliases);
	tcase_add_test(tc, test_commands);
	suite_add_tcase(s, tc);
	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_bad_values, 0, (int)(sizeof bad / sizeof bad[0]));
	tcase_add_test(tc, test_bad_usage);
	suite_add_tcase(s, tc);
	return s;
}
