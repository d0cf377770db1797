/* Command line: subcommands, options, durations, validation, help text. */
#ifndef TCPMUX_CLI_H
#define TCPMUX_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "acl.h"
#include "codec.h"
#include "modbus.h"

enum cli_cmd { CLI_SERVER, CLI_LIST, CLI_VERSION, CLI_HELP };

/* Read-only once the server starts. Durations are in milliseconds. */
struct config {
	const struct codec *codec;
	char target[300]; /* as given, for messages */
	char target_host[256], target_port[8];
	char listen[300];
	char listen_host[256], listen_port[8];
	char serial_path[256]; /* -t /dev/...: a serial port; "" for a TCP target */
	int64_t timeout_ms;
	int64_t answer_timeout_ms; /* longest wait for an answer once the request is written */
	int64_t delay_ms;
	int64_t backoff_ms;
	int64_t health_ms;
	int64_t idle_timeout_ms;
	int max_connections;
	int queue_size; /* waiters for an upstream connection; 0 = no limit */
	int max_clients;
	size_t max_frame;
	size_t max_buffered; /* bytes buffered across all clients */
	struct acl_entry allow[ACL_MAX];
	int nallow;
	char metrics_host[256], metrics_port[8]; /* port "" = no metrics listener */
	struct modbus_policy modbus_policy;
	int64_t request_gap_ms;	      /* pause between an answer and the next request */
	int64_t upstream_max_idle_ms; /* 0 = off */
	int64_t upstream_max_age_ms;  /* 0 = off */
	uint8_t unit_map[256];	      /* client unit id -> device unit id */
	int unit_map_used;
	int modbus_rtu;	      /* the target speaks RTU framing over TCP */
	int modbus_tid_check; /* match answers by transaction id (else lockstep) */
	int coalesce;	      /* identical reads in flight share one answer */
	int64_t cache_ttl_ms; /* answers to reads served again for this long; 0 = off */
	int serial_speed;     /* bits per second, a standard termios rate */
	int serial_data_bits; /* 5-8 */
	char serial_parity;   /* 'N', 'E' or 'O' */
	int serial_stop_bits; /* 1 or 2 */
	int serial_rs485;     /* kernel RS-485 mode: RTS on while transmitting */
	int serial_echo;      /* the adapter echoes what it sends: skip those bytes */
	int verbose;
	int debug;
	int use_syslog;
};

/* What an option's value is, and so how it is parsed and where it lands. */
enum cli_kind {
	CLI_DURATION, /* int64_t milliseconds: "250ms", "1m30s", bare seconds */
	CLI_COUNT,    /* int */
	CLI_SIZE,     /* size_t bytes: "65536", "64k", "1M" */
	CLI_FLAG,     /* int set to 1, no value */
	CLI_CHOICE,   /* int: one of the words of arg ("tcp|rtu") */
	CLI_SPECIAL,  /* parsed by its own code in cli.c (target, listen, access list...) */
	CLI_ALIAS,    /* another spelling of the option named by alias_of */
	CLI_HELPOPT,  /* -h, --help */
};

#define CLI_NEEDS_MODBUS 1u /* an error without -p modbus */
#define CLI_NEEDS_SERIAL 2u /* an error without a serial target (-t /dev/...) */

/* One option of `server`: a row of the table that drives parsing, the
 * defaults, getopt's long-option array and --help. */
struct cli_opt {
	const char *name; /* long name, without dashes */
	char shortopt;	  /* 0: none */
	enum cli_kind kind;
	int special;	      /* CLI_SPECIAL: which parser (private to cli.c) */
	size_t off;	      /* offsetof(struct config, field) */
	int64_t lo, hi;	      /* bounds: milliseconds, a count or bytes */
	const int *values;    /* CLI_CHOICE: each word's value; CLI_COUNT: the only values allowed, 0-ended */
	const char *def;      /* the default as a user writes it; parsed at start-up, shown in --help */
	unsigned needs;	      /* CLI_NEEDS_* */
	const char *arg;      /* the value's name in --help ("DUR"); CLI_CHOICE: the words */
	const char *help;     /* one sentence; --help adds the default */
	const char *group;    /* starts a group of options in --help */
	const char *alias_of; /* CLI_ALIAS: the option's real name */
};

/* The options of `server`, ended by a row whose name is NULL. */
const struct cli_opt *cli_server_options(void);

/* Defaults, as the Go tool has them where it has the option. */
void cli_defaults(struct config *cfg);

/* Parses argv. Returns 0 and sets *cmd, or returns 2 (usage error) after
 * writing one line naming the problem into err. For CLI_HELP, *help_for
 * says which command's help to print. */
int cli_parse(int argc, char **argv, struct config *cfg, enum cli_cmd *cmd, enum cli_cmd *help_for, char *err,
	      size_t errcap);

/* "250ms", "1.5s", "1m30s", "2h", or bare seconds ("60"). Returns 0 or -EINVAL. */
int cli_parse_duration(const char *s, int64_t *ms);
/* Bytes with an optional k/K or m/M suffix (1024-based). Returns 0 or -EINVAL. */
int cli_parse_size(const char *s, size_t *out);

void cli_help(FILE *out, enum cli_cmd which);

#endif
