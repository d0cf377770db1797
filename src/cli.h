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
	char target[300];              /* as given, for messages */
	char target_host[256], target_port[8];
	char listen[300];
	char listen_host[256], listen_port[8];
	int64_t timeout_ms;
	int64_t delay_ms;
	int64_t backoff_ms;
	int64_t health_ms;
	int64_t idle_timeout_ms;
	int max_connections;
	int queue_size;
	int max_clients;
	size_t max_frame;
	size_t max_buffered;   /* bytes all buffers may grow beyond their first size */
	struct acl_entry allow[ACL_MAX];
	int nallow;
	char metrics_host[256], metrics_port[8];   /* port "" = no metrics listener */
	struct modbus_policy modbus_policy;
	int64_t request_gap_ms;        /* pause between an answer and the next request */
	int64_t upstream_max_idle_ms;  /* 0 = off */
	int64_t upstream_max_age_ms;   /* 0 = off */
	uint8_t unit_map[256];         /* client unit id -> device unit id */
	int unit_map_used;
	int modbus_rtu;                /* the target speaks RTU framing over TCP */
	int modbus_tid_check;          /* match answers by transaction id (else lockstep) */
	int coalesce;                  /* identical reads in flight share one answer */
	int64_t cache_ttl_ms;          /* answers to reads served again for this long; 0 = off */
	int verbose;
	int debug;
	int use_syslog;
};

/* Defaults, as the Go tool has them where it has the option. */
void cli_defaults(struct config *cfg);

/* Parses argv. Returns 0 and sets *cmd, or returns 2 (usage error) after
 * writing one line naming the problem into err. For CLI_HELP, *help_for
 * says which command's help to print. */
int cli_parse(int argc, char **argv, struct config *cfg, enum cli_cmd *cmd, enum cli_cmd *help_for,
	      char *err, size_t errcap);

/* "250ms", "1.5s", "1m30s", "2h", or bare seconds ("60"). Returns 0 or -EINVAL. */
int cli_parse_duration(const char *s, int64_t *ms);
/* Bytes with an optional k/K or m/M suffix (1024-based). Returns 0 or -EINVAL. */
int cli_parse_size(const char *s, size_t *out);

void cli_help(FILE *out, enum cli_cmd which);

#endif
