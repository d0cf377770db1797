/* End to end, stray frames: a target that sends an answer nobody asked
 * for, glued to a real answer (in front of it or behind it, in one write)
 * or on an idle connection, for every framing.
 * A relay between the daemon and a simulator injects the strays (copies of
 * earlier answers, so each is a well-formed, plausible answer); paced
 * clients check every answer against their request. What is detectable is
 * caught: no answer reaches the wrong client, the daemon logs each stray,
 * and the connection is replaced (framings without ids) or kept (Modbus/TCP
 * with ids). A stray that arrives after a request was written is not
 * detectable without ids; the relay sends one only to Modbus/TCP with ids,
 * which drops it by id (see stray_due and from_daemon). */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "modbus_rtu.h"
#include "net.h"
#include "testing.h"

#define CLIENTS 3          /* paced clients sharing the one upstream connection */
#define REQUESTS 24        /* each */
#define PACE_MS 15         /* a client's pause between answer and next request */
#define STRAY_DELAY_MS 4   /* an idle stray goes this long after an answer (< PACE_MS) */
#define GLUE_EVERY 4       /* glued mode: every 4th answer comes with a stray */
#define IDLE_EVERY 2       /* idle mode: a stray after every 2nd answer, when all is quiet */
#define CROSS_EVERY 3      /* crossing mode: a stray after every 3rd request */
#define IO_MS 5000         /* an answer or an error within this, or the client is stuck */
#define SERVED_AGAIN_MS 2000 /* generous: from an error to the next good answer */
#define RELAY_CONNS 128    /* connections the relay serves in one case, at most */
#define ANSWER_MAX 4096    /* the largest answer the relay keeps a copy of */
#define RELAY_POLL_MS 20   /* how often the relay's threads look at their stop flag */

/* glued: with an answer, in one write; idle: on the quiet connection;
 * crossing: just after a request, before its answer (ids only catch it) */
enum stray_mode { STRAY_GLUED, STRAY_IDLE, STRAY_CROSSING };

/* ---- the relay: daemon <-> relay <-> simulator ---------------------------- */

struct relay {
	int lfd, port, target_port;
	frame_fn response;           /* where an answer from the target ends */
	enum stray_mode mode;
	atomic_int stop;
	pthread_t acceptor;
	pthread_t conn[RELAY_CONNS];
	atomic_int nconns;
	/* lock orders the relay's idle strays and the clients' requests: a
	 * stray is only sent while no client has a request outstanding, so it
	 * always reaches the daemon before any request is written upstream */
	pthread_mutex_t lock;
	int inflight;                /* client requests sent and not yet answered */
	int strays_on;
	long answers;                /* answers forwarded */
	long requests;               /* reads of requests from the daemon (crossing mode) */
	long strays;                 /* strays sent */
	uint8_t prev[ANSWER_MAX];    /* the answer before the last one: a stray's copy */
	size_t prevlen;
	uint8_t last[ANSWER_MAX];
	size_t lastlen;
};

struct relay_conn {
	struct relay *r;
	int dfd, tfd;
	uint8_t tbuf[65536];         /* target bytes not yet a whole answer */
	size_t tlen;
	int daemon_spoke;            /* the daemon sent bytes since the last answer */
	int64_t stray_at;            /* an idle stray is due then; 0: none */
};

static int write_all(int fd, const void *p, size_t n)
{
	return net_write_all(fd, p, n, tm_now_ms() + IO_MS);
}

/* Remembers ans as the last answer; r->lock held. */
static void remember(struct relay *r, const uint8_t *ans, size_t n)
{
	memcpy(r->prev, r->last, r->lastlen);
	r->prevlen = r->lastlen;
	r->lastlen = n < ANSWER_MAX ? n : 0;
	memcpy(r->last, ans, r->lastlen);
}

/* Forwards one answer, glued to a copy of an earlier one when due. */
static int forward_answer(struct relay_conn *c, const uint8_t *ans, size_t n)
{
	struct relay *r = c->r;
	uint8_t out[2 * ANSWER_MAX];
	if (n > ANSWER_MAX)
		return -EMSGSIZE;
	pthread_mutex_lock(&r->lock);
	size_t len = 0;
	r->answers++;
	/* one write, so the daemon reads both at once; the stray goes behind
	 * the answer, or (every other time) in front of it: then it is the
	 * first frame the daemon reads after its request */
	int glue = r->strays_on && r->mode == STRAY_GLUED && r->answers % GLUE_EVERY == 0 && r->lastlen > 0;
	if (glue && r->strays % 2 == 1) {
		memcpy(out, r->last, r->lastlen);
		len = r->lastlen;
	}
	memcpy(out + len, ans, n);
	len += n;
	if (glue && r->strays % 2 == 0) {
		memcpy(out + len, r->last, r->lastlen);
		len += r->lastlen;
	}
	r->strays += glue;
	if (r->mode == STRAY_IDLE && r->answers % IDLE_EVERY == 0)
		c->stray_at = tm_now_ms() + STRAY_DELAY_MS;
	remember(r, ans, n);
	c->daemon_spoke = 0;
	int rc = write_all(c->dfd, out, len);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Sends an idle stray if the connection is quiet: nothing from the daemon
 * since the answer, and no client request outstanding (one could be inside
 * the daemon, about to be written upstream: the stray would cross it, the
 * case no framing without ids can detect). Then every later request is
 * written after the stray is in the daemon's socket. */
static int stray_due(struct relay_conn *c)
{
	struct relay *r = c->r;
	int rc = 0;
	c->stray_at = 0;
	pthread_mutex_lock(&r->lock);
	struct pollfd p = { .fd = c->dfd, .events = POLLIN };
	int quiet = poll(&p, 1, 0) == 0 && !c->daemon_spoke && r->inflight == 0;
	if (quiet && r->strays_on && r->prevlen > 0) {
		rc = write_all(c->dfd, r->prev, r->prevlen);
		r->strays++;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Reads what the target sent and forwards each whole answer. */
static int from_target(struct relay_conn *c)
{
	ssize_t n = read(c->tfd, c->tbuf + c->tlen, sizeof c->tbuf - c->tlen);
	if (n <= 0)
		return n == 0 ? -EPIPE : -errno;
	c->tlen += (size_t)n;
	for (int i = 0; i < 64 && c->tlen > 0; i++) {
		struct frame_ctx ctx = { .max_frame = sizeof c->tbuf };
		ssize_t f = c->r->response(&ctx, c->tbuf, c->tlen, 0);
		if (f < 0)
			return (int)f;
		if (f == 0)
			return 0;
		int rc = forward_answer(c, c->tbuf, (size_t)f);
		if (rc < 0)
			return rc;
		memmove(c->tbuf, c->tbuf + f, c->tlen - (size_t)f);
		c->tlen -= (size_t)f;
	}
	return 0;
}

static int from_daemon(struct relay_conn *c)
{
	uint8_t b[8192];
	ssize_t n = read(c->dfd, b, sizeof b);
	if (n <= 0)
		return n == 0 ? -EPIPE : -errno;
	struct relay *r = c->r;
	int rc = 0;
	pthread_mutex_lock(&r->lock);
	c->daemon_spoke = 1;
	/* the request is written: a frame now is read while its answer is awaited */
	if (r->mode == STRAY_CROSSING && r->strays_on && ++r->requests % CROSS_EVERY == 0 && r->lastlen > 0) {
		rc = write_all(c->dfd, r->last, r->lastlen);
		r->strays++;
	}
	pthread_mutex_unlock(&r->lock);
	return rc < 0 ? rc : write_all(c->tfd, b, (size_t)n);
}

static void *relay_conn_main(void *arg)
{
	struct relay_conn *c = arg;
	int rc = 0;
	while (rc == 0 && !atomic_load(&c->r->stop)) {
		struct pollfd p[2] = { { .fd = c->dfd, .events = POLLIN }, { .fd = c->tfd, .events = POLLIN } };
		int wait = RELAY_POLL_MS;
		if (c->stray_at > 0) {
			int64_t left = c->stray_at - tm_now_ms();
			wait = left < 0 ? 0 : left < wait ? (int)left : wait;
		}
		if (poll(p, 2, wait) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			rc = from_target(c);
		if (rc == 0 && p[0].revents)
			rc = from_daemon(c);
		if (rc == 0 && c->stray_at > 0 && tm_now_ms() >= c->stray_at)
			rc = stray_due(c);
	}
	close(c->dfd);
	close(c->tfd);
	free(c);
	return NULL;
}

static void *relay_accept_main(void *arg)
{
	struct relay *r = arg;
	while (!atomic_load(&r->stop) && atomic_load(&r->nconns) < RELAY_CONNS) {
		struct pollfd p = { .fd = r->lfd, .events = POLLIN };
		if (poll(&p, 1, RELAY_POLL_MS) <= 0)
			continue;
		int dfd = accept(r->lfd, NULL, NULL);
		if (dfd < 0)
			continue;
		/* TCP_NODELAY: Nagle would hold a stray back until the daemon's
		 * next request acknowledges the answer, i.e. until too late */
		net_tune(dfd);
		struct relay_conn *c = calloc(1, sizeof *c);
		ck_assert_ptr_nonnull(c);
		*c = (struct relay_conn){ .r = r, .dfd = dfd };
		char port[16];
		snprintf(port, sizeof port, "%d", r->target_port);
		c->tfd = net_connect("127.0.0.1", port, tm_now_ms() + IO_MS);
		if (c->tfd < 0) {
			close(dfd);
			free(c);
			continue;
		}
		int i = atomic_load(&r->nconns);
		if (pthread_create(&r->conn[i], NULL, relay_conn_main, c) != 0) {
			close(dfd);
			close(c->tfd);
			free(c);
			continue;
		}
		atomic_store(&r->nconns, i + 1);
	}
	return NULL;
}

static void relay_start(struct relay *r, int target_port, frame_fn response, enum stray_mode mode)
{
	memset(r, 0, sizeof *r);
	r->target_port = target_port;
	r->response = response;
	r->mode = mode;
	r->strays_on = 1;
	pthread_mutex_init(&r->lock, NULL);
	r->lfd = net_listen("127.0.0.1", "0", 16);
	ck_assert_int_ge(r->lfd, 0);
	r->port = net_local_port(r->lfd);
	ck_assert_int_gt(r->port, 0);
	ck_assert_int_eq(pthread_create(&r->acceptor, NULL, relay_accept_main, r), 0);
}

static void relay_stop(struct relay *r)
{
	atomic_store(&r->stop, 1);
	pthread_join(r->acceptor, NULL);
	for (int i = 0; i < atomic_load(&r->nconns); i++)
		pthread_join(r->conn[i], NULL);
	close(r->lfd);
	pthread_mutex_destroy(&r->lock);
}

/* ---- framings and their clients ------------------------------------------ */

enum ask_kind { ASK_ECHO, ASK_ISO8583, ASK_MPU, ASK_HTTP, ASK_MODBUS };

struct framing {
	const char *name;
	enum sim_proto proto;
	const char *codec;            /* -p, and whose response framer the relay uses */
	int rtu;                      /* --modbus-upstream rtu: the relay frames RTU answers */
	const char *extra[3];         /* more daemon flags */
	enum ask_kind ask;
	int ids;                      /* answers matched by id: strays dropped, connection kept */
};

/* What one request came to. */
enum outcome { ANS_OK, ANS_WRONG, ANS_ERROR, ANS_CLOSED };

struct scase {
	const struct framing *f;
	enum stray_mode mode;
	struct sim *sim;
	struct relay relay;
	struct tm_daemon *d;
	int port;
};

struct client {
	struct scase *sc;
	int index;
	long ok, wrong, errors;
	int64_t worst_recovery_ms;    /* longest time from an error to the next good answer */
	int64_t failed_at;            /* when the current run of errors began; 0: none */
	char first_wrong[160];
};

static enum outcome ask_echo(int fd, const char *tag, char *got, size_t cap)
{
	char req[64];
	snprintf(req, sizeof req, "%s\n", tag);
	if (tm_write_all(fd, req, strlen(req)) < 0 || tm_line_recv(fd, got, cap, IO_MS) <= 0)
		return ANS_CLOSED; /* how echo reports a failed exchange */
	return strcmp(got, req) == 0 ? ANS_OK : ANS_WRONG;
}

/* iso8583 and mpu: the simulator answers the payload reversed. */
static enum outcome ask_lenprefix(int fd, int mpu, const char *tag, char *got, size_t cap)
{
	uint8_t frame[80], want[64], payload[256];
	size_t n = strlen(tag);
	size_t flen = mpu ? tm_mpu_frame(frame, tag, n) : tm_iso8583_frame(frame, tag, n);
	if (tm_write_all(fd, frame, flen) < 0)
		return ANS_CLOSED;
	ssize_t g = mpu ? tm_mpu_recv(fd, payload, sizeof payload - 1, IO_MS)
			: tm_iso8583_recv(fd, payload, sizeof payload - 1, IO_MS);
	if (g <= 0)
		return ANS_CLOSED;
	snprintf(got, cap, "%.*s", (int)g, (const char *)payload);
	sim_reverse((const uint8_t *)tag, want, n);
	return (size_t)g == n && memcmp(payload, want, n) == 0 ? ANS_OK : ANS_WRONG;
}

static enum outcome ask_http(int fd, const char *tag, char *got, size_t cap)
{
	char req[128], resp[4096], want[64];
	snprintf(req, sizeof req, "GET /%s HTTP/1.1\r\nHost: strays\r\n\r\n", tag);
	if (tm_write_all(fd, req, strlen(req)) < 0 || tm_http_recv(fd, resp, sizeof resp, false, IO_MS) <= 0)
		return ANS_CLOSED;
	int status = tm_http_status(resp);
	if (status == 502 || status == 503 || status == 504)
		return ANS_ERROR;
	const char *body = tm_http_body(resp);
	snprintf(got, cap, "%d %s", status, body ? body : "");
	snprintf(want, sizeof want, "GET /%s\n", tag);
	return status == 200 && body && strcmp(body, want) == 0 ? ANS_OK : ANS_WRONG;
}

/* Reads one holding register at an address of this request's own; the
 * value tells whose answer it is. */
static enum outcome ask_modbus(struct scase *sc, int fd, int client, int k, char *got, size_t cap)
{
	uint16_t addr = (uint16_t)(1000 + 100 * client + k), v = 0;
	uint8_t exc = 0;
	int rc = tm_modbus_read(fd, (uint16_t)(k + 1), 1, 3, addr, 1, &v, &exc);
	if (rc == -EPROTO) {
		snprintf(got, cap, "an answer that is not to read %u", addr);
		return ANS_WRONG;
	}
	if (rc < 0)
		return ANS_CLOSED;
	if (exc != 0)
		return ANS_ERROR;
	uint16_t want = sim_modbus_holding(sc->sim, addr, 1);
	snprintf(got, cap, "register %u = %u, not %u", addr, v, want);
	return v == want ? ANS_OK : ANS_WRONG;
}

static enum outcome ask(struct scase *sc, int fd, int client, int k, char *got, size_t cap)
{
	char tag[48];
	snprintf(tag, sizeof tag, "client%d-req%d", client, k);
	switch (sc->f->ask) {
	case ASK_ECHO:
		return ask_echo(fd, tag, got, cap);
	case ASK_ISO8583:
		return ask_lenprefix(fd, 0, tag, got, cap);
	case ASK_MPU:
		return ask_lenprefix(fd, 1, tag, got, cap);
	case ASK_HTTP:
		return ask_http(fd, tag, got, cap);
	default:
		return ask_modbus(sc, fd, client, k, got, cap);
	}
}

/* One request, counted in the relay's inflight while it is outstanding. */
static enum outcome ask_counted(struct scase *sc, int fd, int client, int k, char *got, size_t cap)
{
	struct relay *r = &sc->relay;
	pthread_mutex_lock(&r->lock);
	r->inflight++;
	pthread_mutex_unlock(&r->lock);
	enum outcome o = ask(sc, fd, client, k, got, cap);
	pthread_mutex_lock(&r->lock);
	r->inflight--;
	pthread_mutex_unlock(&r->lock);
	return o;
}

/* Counts one outcome; failed_at is when the current run of errors began. */
static void tally(struct client *c, enum outcome o, const char *got, int k, int64_t *failed_at)
{
	int64_t now = tm_now_ms();
	if (o == ANS_OK) {
		c->ok++;
		if (*failed_at > 0 && now - *failed_at > c->worst_recovery_ms)
			c->worst_recovery_ms = now - *failed_at;
		*failed_at = 0;
		return;
	}
	if (o == ANS_WRONG) {
		if (c->wrong++ == 0)
			snprintf(c->first_wrong, sizeof c->first_wrong, "client%d got '%s' for req%d", c->index,
				 got, k);
		return;
	}
	c->errors++;
	if (*failed_at == 0)
		*failed_at = now;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	int fd = -1;
	for (int k = 0; k < REQUESTS; k++) {
		if (fd < 0)
			fd = tm_connect(c->sc->port);
		char got[160] = "";
		enum outcome o = fd < 0 ? ANS_CLOSED : ask_counted(c->sc, fd, c->index, k, got, sizeof got);
		tally(c, o, got, k, &c->failed_at);
		if (o == ANS_CLOSED && fd >= 0) {
			close(fd);
			fd = -1;
		}
		tm_sleep_ms(PACE_MS); /* the client's own pace */
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* ---- one case: a framing, a kind of stray --------------------------------- */

static void start_case(struct scase *sc, const struct framing *f, enum stray_mode mode)
{
	memset(sc, 0, sizeof *sc);
	sc->f = f;
	sc->mode = mode;
	sc->sim = sim_start(&(struct sim_opts){ .proto = f->proto });
	ck_assert_ptr_nonnull(sc->sim);
	const struct codec *codec = codec_find(f->codec);
	ck_assert_ptr_nonnull(codec);
	relay_start(&sc->relay, sim_port(sc->sim), f->rtu ? rtu_response_frame : codec->response, mode);
	char target[32];
	snprintf(target, sizeof target, "127.0.0.1:%d", sc->relay.port);
	const char *args[16] = { "-p", f->codec, "-t", target, "--max-connections", "1", "--timeout", "5",
				 "--reconnect-backoff", "10ms" };
	size_t n = 10;
	for (size_t i = 0; i < 3 && f->extra[i]; i++)
		args[n++] = f->extra[i];
	args[n] = NULL;
	sc->d = tm_daemon_start(args);
	ck_assert_ptr_nonnull(sc->d);
	sc->port = tm_daemon_port(sc->d);
}

static void stop_case(struct scase *sc)
{
	ck_assert_int_eq(tm_daemon_stop(sc->d, SIGTERM, 0), 0);
	relay_stop(&sc->relay);
	sim_stop(sc->sim);
}

/* Runs the paced clients, then one more request once the strays have
 * stopped, so every stray sent is followed by a request that finds it. */
static void run_clients(struct scase *sc, struct client *all)
{
	pthread_t th[CLIENTS];
	for (int i = 0; i < CLIENTS; i++) {
		all[i] = (struct client){ .sc = sc, .index = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, client_main, &all[i]), 0);
	}
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_lock(&sc->relay.lock);
	sc->relay.strays_on = 0;
	pthread_mutex_unlock(&sc->relay.lock);

	int fd = tm_connect(sc->port);
	ck_assert_int_ge(fd, 0);
	char got[160] = "";
	enum outcome o = ask_counted(sc, fd, CLIENTS, 0, got, sizeof got);
	close(fd);
	ck_assert_msg(o == ANS_OK, "%s: the request after the strays: outcome %d ('%s')", sc->f->name, o, got);
	for (int i = 0; i < CLIENTS; i++) /* a client whose last request failed: served again now */
		if (all[i].failed_at > 0 && tm_now_ms() - all[i].failed_at > all[i].worst_recovery_ms)
			all[i].worst_recovery_ms = tm_now_ms() - all[i].failed_at;
}

/* The daemon's log lines that report a stray. */
static int strays_logged(struct tm_daemon *d)
{
	return tm_daemon_log_count(d, 0, "nobody asked for") + tm_daemon_log_count(d, 0, "beyond the answer") +
	       tm_daemon_log_count(d, 0, "an answer to another request");
}

static void run_case(const struct framing *f, enum stray_mode mode)
{
	static struct scase sc;
	struct client all[CLIENTS];
	start_case(&sc, f, mode);
	run_clients(&sc, all);

	long ok = 0, wrong = 0, errors = 0;
	int64_t worst = 0;
	for (int i = 0; i < CLIENTS; i++) {
		ok += all[i].ok;
		wrong += all[i].wrong;
		errors += all[i].errors;
		if (all[i].worst_recovery_ms > worst)
			worst = all[i].worst_recovery_ms;
		ck_assert_msg(all[i].wrong == 0, "%s: %s", f->name, all[i].first_wrong);
	}
	long strays = sc.relay.strays;
	TM_WAIT_FOR(strays_logged(sc.d) >= strays, IO_MS);
	int logged = strays_logged(sc.d), beyond = tm_daemon_log_count(sc.d, 0, "beyond the answer");
	struct sim_stats st;
	sim_get_stats(sc.sim, &st);
	const char *kind = mode == STRAY_GLUED ? "glued" : mode == STRAY_IDLE ? "idle" : "crossing";
	fprintf(stderr, "%s, %s strays: %ld sent, %d logged (%d beyond an answer); answers %ld ok, %ld wrong, "
		"%ld errors, served again within %lld ms; target accepted %ld connections\n",
		f->name, kind, strays, logged, beyond, ok, wrong, errors, (long long)worst, st.accepted);

	ck_assert_int_lt(atomic_load(&sc.relay.nconns), RELAY_CONNS);
	ck_assert_int_eq(wrong, 0);
	ck_assert_int_eq(ok + errors, CLIENTS * REQUESTS);
	ck_assert_int_ge(strays, 3);
	ck_assert_int_eq(logged, strays);
	ck_assert_int_le(worst, SERVED_AGAIN_MS);
	ck_assert(mode != STRAY_CROSSING || f->ids);
	if (f->ids) {
		/* dropped by id: nobody is refused, the one connection stays */
		ck_assert_int_eq(errors, 0);
		ck_assert_int_eq(beyond, 0);
		ck_assert_int_eq(st.accepted, 1);
	} else {
		/* an idle stray is found before the request is written, and it
		 * goes on a new connection; a glued one costs its own request */
		ck_assert_int_eq(beyond, mode == STRAY_GLUED ? strays : 0);
		ck_assert_int_eq(errors, beyond);
		ck_assert_int_eq(st.accepted, 1 + strays);
	}
	stop_case(&sc);
}

/* ---- the framings --------------------------------------------------------- */

static const struct framing framings[] = {
	{ "echo", SIM_ECHO, "echo", 0, { NULL }, ASK_ECHO, 0 },
	{ "iso8583", SIM_ISO8583, "iso8583", 0, { NULL }, ASK_ISO8583, 0 },
	{ "mpu", SIM_MPU, "mpu", 0, { NULL }, ASK_MPU, 0 },
	{ "http", SIM_HTTP, "http", 0, { NULL }, ASK_HTTP, 0 },
	{ "modbus rtu", SIM_MODBUS_RTU, "modbus", 1, { "--modbus-upstream", "rtu", NULL }, ASK_MODBUS, 0 },
	{ "modbus, tid check off", SIM_MODBUS, "modbus", 0, { "--modbus-tid-check", "off", NULL }, ASK_MODBUS, 0 },
	{ "modbus with ids", SIM_MODBUS, "modbus", 0, { NULL }, ASK_MODBUS, 1 },
};

START_TEST(test_glued)
{
	run_case(&framings[_i], STRAY_GLUED);
}
END_TEST

START_TEST(test_idle)
{
	run_case(&framings[_i], STRAY_IDLE);
}
END_TEST

/* The one case a framing without ids cannot detect, against the one that
 * can: the stray is read while the answer is awaited, and dropped by id. */
START_TEST(test_crossing_with_ids)
{
	run_case(&framings[sizeof framings / sizeof framings[0] - 1], STRAY_CROSSING);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_strays");
	int n = (int)(sizeof framings / sizeof framings[0]);
	TCase *glued = tcase_create("glued");
	tcase_set_timeout(glued, 30);
	tcase_add_loop_test(glued, test_glued, 0, n);
	suite_add_tcase(s, glued);
	TCase *idle = tcase_create("idle");
	tcase_set_timeout(idle, 30);
	tcase_add_loop_test(idle, test_idle, 0, n);
	suite_add_tcase(s, idle);
	TCase *crossing = tcase_create("crossing");
	tcase_set_timeout(crossing, 30);
	tcase_add_test(crossing, test_crossing_with_ids);
	suite_add_tcase(s, crossing);
	return s;
}
