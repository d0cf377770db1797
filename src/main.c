/* tcp-multiplexer: parse the command line, start the server, wait for
 * signals, stop cleanly. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "codec.h"
#include "log.h"
#include "notify.h"
#include "server.h"

static int run_server(const struct config *cfg)
{
	log_init(cfg->debug ? LOG_LVL_DEBUG : cfg->verbose ? LOG_LVL_INFO : LOG_LVL_NOTICE, cfg->use_syslog);
	/* Until the daemon is up, an error also goes to stderr under --syslog:
	 * without a syslog daemon the reason for a failed start would be lost. */
	log_errors_to_stderr(1);

	/* Every thread inherits this mask, so only sigwait() below sees them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Every client costs a descriptor: use all the hard limit allows. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	static struct server srv;
	int rc = server_start(&srv, cfg);
	if (rc < 0)
		return 1; /* server_start logged why, naming the address that failed */
	log_errors_to_stderr(0);
	notify_send("READY=1");
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGUSR1) {
			server_log_stats(&srv);
			continue;
		}
		/* A stop on request is routine: notice, not a warning. */
		log_notice("received %s, stopping", strsignal(sig));
		break;
	}
	notify_send("STOPPING=1");
	server_stop(&srv);
	log_notice("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	static struct config cfg;
	enum cli_cmd cmd, help_for;
	char err[256];

	int rc = cli_parse(argc, argv, &cfg, &cmd, &help_for, err, sizeof err);
	if (rc != 0) {
		/* Under systemd, <3> files it at err priority, so that
		 * `journalctl -p err` shows why an instance failed with status 2. */
		fprintf(stderr, "%stcp-multiplexer: %s\n", log_stderr_prefix(LOG_LVL_ERROR), err);
		return 2;
	}
	switch (cmd) {
	case CLI_HELP:
		cli_help(stdout, help_for);
		return 0;
	case CLI_VERSION:
		printf("tcp-multiplexer %s\n", PACKAGE_VERSION);
		return 0;
	case CLI_LIST:
		for (const struct codec *const *c = codec_all(); *c != NULL; c++)
			printf("%-8s  %s\n", (*c)->name, (*c)->summary);
		return 0;
	case CLI_SERVER:
		return run_server(&cfg);
	}
	return 2;
}
