/* The server: the listener, the acceptor thread and one thread per client. */
#ifndef TCPMUX_SERVER_H
#define TCPMUX_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#include "cli.h"
#include "dialect.h"
#include "exchange.h"
#include "metrics.h"
#include "pool.h"
#include "readshare.h"
#include "supervisor.h"
#include "upstream.h"

struct client;

struct server {
	const struct config *cfg;
	struct pool pool;
	struct supervisor sup;
	struct metrics metrics;
	struct readshare share;
	struct dialect dialect;
	struct upstream upstream;
	struct exchange_env env;
	int metrics_on;
	int lfd;
	pthread_t acceptor;
	pthread_attr_t client_attr; /* detached, small stack */
	atomic_int stopping;
	atomic_uint next_id;
	pthread_mutex_t lock;	/* guards the client list */
	pthread_cond_t drained; /* the last client thread ended */
	struct client *clients;
	int nclients;
};

/* Binds the listener and starts the supervisor and the acceptor. Returns 0
 * or -errno, having logged why (e.g. the listener could not be bound: the
 * caller exits 1). */
int server_start(struct server *srv, const struct config *cfg);
/* Stops accepting, lets exchanges in flight finish (at most --timeout),
 * closes every connection and frees what it can. */
void server_stop(struct server *srv);
/* Logs the statistics (SIGUSR1). */
void server_log_stats(struct server *srv);

#endif
