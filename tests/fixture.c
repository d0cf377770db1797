/* The scaffolding the end-to-end suites share: a simulated target with the
 * daemon in front of it, and a swarm of client threads that tally what
 * they got. */
#include "config.h"
#include "testing.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a simulated target and the daemon in front of it ------------------ */

static int tm_pair_begin(struct tm_pair *p, const struct sim_opts *o, const char *const extra[],
			 bool down)
{
	memset(p, 0, sizeof(*p));
	p->sim = sim_start(o);
	if (!p->sim) {
		int err = errno ? errno : EIO;
		fprintf(stderr, "tm_pair_start: sim_start: %s\n", strerror(err));
		return -err;
	}
	int rc = down ? sim_kill(p->sim) : 0;
	if (rc == 0)
		p->d = tm_daemon_start_sim(p->sim, extra);
	if (!p->d) {
		sim_stop(p->sim);
		p->sim = NULL;
		return rc < 0 ? rc : -EIO; /* tm_daemon_start said why */
	}
	p->port = tm_daemon_port(p->d);
	return 0;
}

int tm_pair_start(struct tm_pair *p, const struct sim_opts *o, const char *const extra[])
{
	return tm_pair_begin(p, o, extra, false);
}

int tm_pair_start_down(struct tm_pair *p, const struct sim_opts *o, const char *const extra[])
{
	return tm_pair_begin(p, o, extra, true);
}

int tm_pair_restart(struct tm_pair *p, const char *const extra[])
{
	int rc = tm_daemon_stop(p->d, SIGTERM, 0);
	p->d = tm_daemon_start_sim(p->sim, extra);
	if (!p->d)
		return -EIO; /* tm_daemon_start said why */
	p->port = tm_daemon_port(p->d);
	return rc;
}

int tm_pair_stop(struct tm_pair *p)
{
	int rc = tm_daemon_stop(p->d, SIGTERM, 0);
	sim_stop(p->sim);
	p->d = NULL;
	p->sim = NULL;
	return rc;
}

/* ---- many clients at once ----------------------------------------------- */

struct tm_swarm {
	int n, min_rounds, max_rounds;
	tm_round_fn fn;
	atomic_int stop;
	pthread_t *th;
	int started;            /* threads created */
	struct tm_client *c;
	struct tm_swarm_ctl {
		struct tm_swarm *w;
		int i;
	} *ctl;
};

enum tm_next tm_client_note(struct tm_client *c, enum tm_outcome outcome)
{
	c->tally[outcome]++;
	return outcome == TM_ERROR ? TM_RECONNECT : TM_GO_ON;
}

long tm_exceptions(const long total[TM_OUTCOMES])
{
	long n = 0;
	for (int code = 1; code < 256; code++)
		n += total[TM_EXC(code)];
	return n;
}

/* Bounded either way: max_rounds, and the stop flag after min_rounds. */
static void *tm_swarm_client_main(void *arg)
{
	struct tm_swarm_ctl *ctl = arg;
	struct tm_swarm *w = ctl->w;
	struct tm_client *c = &w->c[ctl->i];
	c->fd = tm_connect(c->port);
	if (c->fd < 0) {
		c->tally[TM_ERROR]++;
		snprintf(c->why, sizeof(c->why), "cannot connect: %s", strerror(-c->fd));
		return NULL;
	}
	for (int i = 0; i < w->max_rounds && (i < w->min_rounds || !atomic_load(&w->stop)); i++) {
		enum tm_next next = w->fn(c, i);
		if (next == TM_END)
			break;
		if (next == TM_RECONNECT) {
			close(c->fd); /* the daemon dropped us: come back as a new client */
			c->fd = tm_connect(c->port);
			if (c->fd < 0)
				break;
		}
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->own);
	c->own = NULL;
	return NULL;
}

struct tm_swarm *tm_swarm_start(int port, int n, int min_rounds, int max_rounds, tm_round_fn fn,
				void *arg)
{
	struct tm_swarm *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->th = calloc((size_t)n, sizeof(*w->th));
	w->c = calloc((size_t)n, sizeof(*w->c));
	w->ctl = calloc((size_t)n, sizeof(*w->ctl));
	if (!w->th || !w->c || !w->ctl) {
		tm_swarm_free(w);
		errno = ENOMEM;
		return NULL;
	}
	w->n = n;
	w->min_rounds = min_rounds;
	w->max_rounds = max_rounds;
	w->fn = fn;
	atomic_init(&w->stop, 0);
	for (int i = 0; i < n; i++) {
		w->c[i] = (struct tm_client){ .index = i, .port = port, .fd = -1, .arg = arg };
		w->ctl[i] = (struct tm_swarm_ctl){ .w = w, .i = i };
		int rc = pthread_create(&w->th[i], NULL, tm_swarm_client_main, &w->ctl[i]);
		if (rc != 0) {
			tm_swarm_join(w, NULL);
			tm_swarm_free(w);
			errno = rc;
			return NULL;
		}
		w->started++;
	}
	return w;
}

void tm_swarm_join(struct tm_swarm *w, long total[TM_OUTCOMES])
{
	atomic_store(&w->stop, 1);
	if (total)
		memset(total, 0, sizeof(long) * TM_OUTCOMES);
	for (int i = 0; i < w->started; i++) {
		pthread_join(w->th[i], NULL);
		if (w->c[i].why[0])
			fprintf(stderr, "client %d: %s\n", i, w->c[i].why);
		for (int k = 0; total && k < TM_OUTCOMES; k++)
			total[k] += w->c[i].tally[k];
	}
	w->started = 0;
}

const struct tm_client *tm_swarm_client(const struct tm_swarm *w, int i)
{
	return &w->c[i];
}

void tm_swarm_free(struct tm_swarm *w)
{
	if (!w)
		return;
	free(w->th);
	free(w->c);
	free(w->ctl);
	free(w);
}

/* ---- Modbus/TCP --------------------------------------------------------- */

enum tm_outcome tm_modbus_check(int fd, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr,
				uint16_t qty, uint8_t device_unit)
{
	uint16_t v[125];
	uint8_t exc = 0;
	if (qty > 125)
		return TM_ERROR;
	int rc = tm_modbus_read(fd, tid, unit, fc, addr, qty, v, &exc);
	if (rc == -EPROTO)
		return TM_MISMATCH;
	if (rc < 0)
		return TM_ERROR;
	if (exc)
		return TM_EXC(exc);
	for (uint16_t k = 0; k < qty; k++)
		if (v[k] != sim_modbus_value(fc, (uint16_t)(addr + k), device_unit))
			return TM_MISMATCH;
	return TM_OK;
}

bool tm_modbus_served(int port, int timeout_ms)
{
	int64_t deadline = tm_now_ms() + timeout_ms;
	for (int tries = 0; tries < 100000; tries++) {
		int fd = tm_connect(port);
		bool ok = fd >= 0 && tm_modbus_check(fd, 7, 1, 3, 100, 1, 1) == TM_OK;
		if (fd >= 0)
			close(fd);
		if (ok)
			return true;
		if (tm_now_ms() >= deadline)
			return false;
		tm_sleep_ms(20);
	}
	return false;
}
