/* sim-target: one simulated target as a process of its own, for manual tests
 * and the benchmark. Prints "port N", serves until SIGINT/SIGTERM. */
#include "config.h"
#include "sim.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"Usage: sim-target [OPTION]...\n"
	"Serve a simulated target on 127.0.0.1 until SIGINT or SIGTERM.\n"
	"Prints \"port N\" once listening, its counters on SIGUSR1 and at exit.\n"
	"\n"
	"  -p, --proto NAME       modbus (default), modbus-rtu, echo, iso8583, mpu or http\n"
	"  -P, --port N           port to listen on (default 0: the kernel picks)\n"
	"  -m, --max-conns N      close connections beyond N at once (0: no limit)\n"
	"  -d, --delay-ms N       wait N ms before each answer\n"
	"      --late-every N     answer every Nth request after --late-ms instead\n"
	"      --late-ms N\n"
	"      --drop-every N     never answer every Nth request\n"
	"      --hangup-every N   close the connection instead of answering every Nth request\n"
	"      --close-after N    close each connection after N answers\n"
	"      --tid-offset N     modbus: answer with transaction id + N\n"
	"      --http-chunked     http: answer with chunked bodies\n"
	"      --min-gap-ms N     modbus: exception 0x06 to a request less than N ms\n"
	"                         after the connection's previous answer\n"
	"      --blackhole-idle-ms N  a connection idle N ms stops answering (stays open)\n"
	"      --rtu-bad-crc-every N  modbus-rtu: every Nth answer carries a wrong CRC\n"
	"      --reset-every N    reset the connection (RST) instead of answering every Nth request\n"
	"      --half-every N     write half of every Nth answer, then stall that connection\n"
	"      --unsolicited-every-ms N  send a frame nobody asked for every N ms,\n"
	"                         between exchanges\n"
	"      --unsolicited-garbage  ... 8 bytes that form no frame, instead\n"
	"  -h, --help             show this help\n";

enum {
	OPT_LATE_EVERY = 256,
	OPT_LATE_MS,
	OPT_DROP_EVERY,
	OPT_HANGUP_EVERY,
	OPT_CLOSE_AFTER,
	OPT_TID_OFFSET,
	OPT_HTTP_CHUNKED,
	OPT_MIN_GAP_MS,
	OPT_BLACKHOLE_IDLE_MS,
	OPT_RTU_BAD_CRC_EVERY,
	OPT_RESET_EVERY,
	OPT_HALF_EVERY,
	OPT_UNSOLICITED_EVERY_MS,
	OPT_UNSOLICITED_GARBAGE,
};

static const struct option longopts[] = {
	{ "proto", required_argument, NULL, 'p' },
	{ "port", required_argument, NULL, 'P' },
	{ "max-conns", required_argument, NULL, 'm' },
	{ "delay-ms", required_argument, NULL, 'd' },
	{ "late-every", required_argument, NULL, OPT_LATE_EVERY },
	{ "late-ms", required_argument, NULL, OPT_LATE_MS },
	{ "drop-every", required_argument, NULL, OPT_DROP_EVERY },
	{ "hangup-every", required_argument, NULL, OPT_HANGUP_EVERY },
	{ "close-after", required_argument, NULL, OPT_CLOSE_AFTER },
	{ "tid-offset", required_argument, NULL, OPT_TID_OFFSET },
	{ "http-chunked", no_argument, NULL, OPT_HTTP_CHUNKED },
	{ "min-gap-ms", required_argument, NULL, OPT_MIN_GAP_MS },
	{ "blackhole-idle-ms", required_argument, NULL, OPT_BLACKHOLE_IDLE_MS },
	{ "rtu-bad-crc-every", required_argument, NULL, OPT_RTU_BAD_CRC_EVERY },
	{ "reset-every", required_argument, NULL, OPT_RESET_EVERY },
	{ "half-every", required_argument, NULL, OPT_HALF_EVERY },
	{ "unsolicited-every-ms", required_argument, NULL, OPT_UNSOLICITED_EVERY_MS },
	{ "unsolicited-garbage", no_argument, NULL, OPT_UNSOLICITED_GARBAGE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_int(const char *name, const char *s, int lo, int hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "sim-target: --%s wants a number from %d to %d, not \"%s\"\n", name, lo,
			hi, s);
		exit(2);
	}
	return (int)v;
}

static void print_stats(struct sim *s)
{
	struct sim_stats st;
	sim_get_stats(s, &st);
	printf("requests %ld\nanswers %ld\ndropped %ld\nhangups %ld\nlate %ld\n"
	       "accepted %ld\nrejected %ld\nprotocol_errors %ld\nconns %ld\nconns_max %ld\n"
	       "inflight %ld\ninflight_max %ld\ncrc_errors %ld\ngap_violations %ld\n"
	       "blackholed %ld\nignored %ld\nbad_crc_sent %ld\nresets %ld\nhalves %ld\n"
	       "unsolicited %ld\n",
	       st.requests, st.answers, st.dropped, st.hangups, st.late, st.accepted, st.rejected,
	       st.protocol_errors, st.conns, st.conns_max, st.inflight, st.inflight_max,
	       st.crc_errors, st.gap_violations, st.blackholed, st.ignored, st.bad_crc_sent,
	       st.resets, st.halves, st.unsolicited);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct sim_opts o = { .proto = SIM_MODBUS };
	int c;

	while ((c = getopt_long(argc, argv, "p:P:m:d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': {
			int p = sim_proto_parse(optarg);
			if (p < 0) {
				fprintf(stderr, "sim-target: unknown protocol \"%s\"\n", optarg);
				return 2;
			}
			o.proto = (enum sim_proto)p;
			break;
		}
		case 'P':
			o.port = parse_int("port", optarg, 0, 65535);
			break;
		case 'm':
			o.max_conns = parse_int("max-conns", optarg, 0, INT_MAX);
			break;
		case 'd':
			o.delay_ms = parse_int("delay-ms", optarg, 0, INT_MAX);
			break;
		case OPT_LATE_EVERY:
			o.late_every = parse_int("late-every", optarg, 0, INT_MAX);
			break;
		case OPT_LATE_MS:
			o.late_ms = parse_int("late-ms", optarg, 0, INT_MAX);
			break;
		case OPT_DROP_EVERY:
			o.drop_every = parse_int("drop-every", optarg, 0, INT_MAX);
			break;
		case OPT_HANGUP_EVERY:
			o.hangup_every = parse_int("hangup-every", optarg, 0, INT_MAX);
			break;
		case OPT_CLOSE_AFTER:
			o.close_after = parse_int("close-after", optarg, 0, INT_MAX);
			break;
		case OPT_TID_OFFSET:
			o.tid_offset = parse_int("tid-offset", optarg, -65535, 65535);
			break;
		case OPT_HTTP_CHUNKED:
			o.http_chunked = 1;
			break;
		case OPT_MIN_GAP_MS:
			o.min_gap_ms = parse_int("min-gap-ms", optarg, 0, INT_MAX);
			break;
		case OPT_BLACKHOLE_IDLE_MS:
			o.blackhole_idle_ms = parse_int("blackhole-idle-ms", optarg, 0, INT_MAX);
			break;
		case OPT_RTU_BAD_CRC_EVERY:
			o.rtu_bad_crc_every = parse_int("rtu-bad-crc-every", optarg, 0, INT_MAX);
			break;
		case OPT_RESET_EVERY:
			o.reset_every = parse_int("reset-every", optarg, 0, INT_MAX);
			break;
		case OPT_HALF_EVERY:
			o.half_every = parse_int("half-every", optarg, 0, INT_MAX);
			break;
		case OPT_UNSOLICITED_EVERY_MS:
			o.unsolicited_every_ms = parse_int("unsolicited-every-ms", optarg, 0, INT_MAX);
			break;
		case OPT_UNSOLICITED_GARBAGE:
			o.unsolicited_garbage = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sim-target: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}

	/* Blocked before any thread starts, so only sigwait sees them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	struct sim *s = sim_start(&o);
	if (!s) {
		fprintf(stderr, "sim-target: cannot listen on 127.0.0.1:%d: %s\n", o.port, strerror(errno));
		return 1;
	}
	printf("port %d\n", sim_port(s));
	fflush(stdout);

	int sig;
	while (sigwait(&set, &sig) == 0 && sig == SIGUSR1)
		print_stats(s);
	sim_kill(s);
	print_stats(s);
	sim_stop(s);
	return 0;
}
