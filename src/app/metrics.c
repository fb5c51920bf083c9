/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Prometheus endpoint (metrics.h). libmicrohttpd parses HTTP and runs its own thread; we
 * only answer GET /metrics. Each scrape is a message to the control thread, which renders the
 * page from the registries and hands the buffer back.
 *
 * Threat model: whoever can connect to ADDR:PORT (loopback by default; docs say how to expose
 * it). Requests carry nothing we parse beyond method and path, connections are limited in
 * number, per address and in time, and a scrape costs one page render.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vh_config.h"
#if VH_HAVE_METRICS
#include <microhttpd.h>
#endif

#include "app/metrics.h"
#include "bdev/bdev.h"
#include "bdev/iostat.h"
#include "core/evloop.h"
#include "core/log.h"
#include "core/reactor.h"
#include "vhost/stats.h"
#include "vhost/vhost.h"

/* ---- rendering (control thread) ---- */

struct out {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void VH_PRINTF(2, 3) put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->oom) {
		return;
	}
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t cap = o->cap * 2 + (size_t)(n > 0 ? n : 0);
		char *b = realloc(o->buf, cap);

		if (n < 0 || b == NULL) {
			o->oom = true;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
}

static void
head(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values are names checked by vh_name_check() ([A-Za-z0-9_.:-]): nothing to escape. */

struct bdev_metric {
	const char *name, *help;
	enum vh_bdev_stat_op op;
	bool bytes;
};

static const struct bdev_metric g_bdev_counters[] = {
        {"vhostd_bdev_read_ops_total", "Reads completed successfully.", VH_BDEV_STAT_READ, false},
        {"vhostd_bdev_write_ops_total", "Writes completed successfully.", VH_BDEV_STAT_WRITE,
         false},
        {"vhostd_bdev_unmap_ops_total", "Discards (unmaps) completed successfully.",
         VH_BDEV_STAT_UNMAP, false},
        {"vhostd_bdev_flush_ops_total", "Flushes completed successfully.", VH_BDEV_STAT_FLUSH,
         false},
        {"vhostd_bdev_write_zeroes_ops_total", "Write-zeroes completed successfully.",
         VH_BDEV_STAT_WRITE_ZEROES, false},
        {"vhostd_bdev_read_bytes_total", "Bytes read by successful reads.", VH_BDEV_STAT_READ,
         true},
        {"vhostd_bdev_write_bytes_total", "Bytes written by successful writes.", VH_BDEV_STAT_WRITE,
         true},
        {"vhostd_bdev_unmap_bytes_total", "Bytes discarded by successful unmaps.",
         VH_BDEV_STAT_UNMAP, true},
};

struct render_ctx {
	struct out *o;
	const struct bdev_metric *m;
	int what;
};

static int
bdev_counter(struct vh_bdev *b, void *arg)
{
	struct render_ctx *c = arg;
	struct vh_bdev_iostat st;
	uint64_t v;

	vh_bdev_get_iostat(b, -1, true, &st);
	switch (c->what) {
	case 0:
		v = c->m->bytes ? st.op[c->m->op].bytes : st.op[c->m->op].ops;
		break;
	case 1:
		v = st.errors;
		break;
	case 2:
		v = st.qos_throttled;
		break;
	default:
		v = st.qos_queued;
		break;
	}
	put(c->o, "%s{bdev=\"%s\"} %" PRIu64 "\n", c->m != NULL ? c->m->name : "", vh_bdev_name(b),
	    v);
	return 0;
}

static int
bdev_limits(struct vh_bdev *b, void *arg)
{
	static const char *const keys[VH_BDEV_QOS_NLIMITS] = {"rw_ios_per_sec", "rw_bytes_per_sec",
	                                                      "r_bytes_per_sec", "w_bytes_per_sec"};
	struct out *o = arg;
	uint64_t l[VH_BDEV_QOS_NLIMITS];

	vh_bdev_qos_get(b, l);
	for (int k = 0; k < VH_BDEV_QOS_NLIMITS; k++) {
		if (l[k] != 0) {
			put(o, "vhostd_bdev_qos_limit{bdev=\"%s\",limit=\"%s\"} %" PRIu64 "\n",
			    vh_bdev_name(b), keys[k], l[k]);
		}
	}
	return 0;
}

/* Cumulative buckets at every power of two of nanoseconds from 2^10 (~1 us) to 2^34 (~17 s). */
#define LE_MIN_SHIFT 10
#define LE_MAX_SHIFT 34

static int
bdev_histograms(struct vh_bdev *b, void *arg)
{
	static uint64_t h[VH_BDEV_HIST_BUCKETS]; /* control thread only */
	struct out *o = arg;
	struct vh_bdev_iostat st;

	vh_bdev_get_iostat(b, -1, true, &st);
	for (int op = 0; op < VH_BDEV_STAT_NOPS; op++) {
		const char *opn = vh_bdev_stat_op_name(op);
		uint64_t cum = 0, total = 0;
		unsigned i = 0;

		memset(h, 0, sizeof(h));
		vh_bdev_get_histogram(b, op, h);
		for (unsigned k = 0; k < VH_BDEV_HIST_BUCKETS; k++) {
			total += h[k];
		}
		for (unsigned s = LE_MIN_SHIFT; s <= LE_MAX_SHIFT; s++) {
			/* Powers of two are bucket boundaries (iostat.h), so these are exact. */
			while (i < VH_BDEV_HIST_BUCKETS &&
			       vh_bdev_hist_bucket_end(i) <= (1ull << s)) {
				cum += h[i++];
			}
			put(o,
			    "vhostd_bdev_latency_seconds_bucket{bdev=\"%s\",op=\"%s\",le=\"%.12g\"}"
			    " "
			    "%" PRIu64 "\n",
			    vh_bdev_name(b), opn, (double)(1ull << s) / 1e9, cum);
		}
		put(o,
		    "vhostd_bdev_latency_seconds_bucket{bdev=\"%s\",op=\"%s\",le=\"+Inf\"} %" PRIu64
		    "\n",
		    vh_bdev_name(b), opn, total);
		put(o, "vhostd_bdev_latency_seconds_sum{bdev=\"%s\",op=\"%s\"} %.9f\n",
		    vh_bdev_name(b), opn, (double)st.op[op].lat_ns / 1e9);
		put(o, "vhostd_bdev_latency_seconds_count{bdev=\"%s\",op=\"%s\"} %" PRIu64 "\n",
		    vh_bdev_name(b), opn, total);
	}
	return 0;
}

static void
render_bdevs(struct out *o)
{
	struct render_ctx c = {.o = o};
	static const struct bdev_metric errors = {"vhostd_bdev_io_errors_total", NULL, 0, false};
	static const struct bdev_metric throttled = {"vhostd_bdev_qos_throttled_total", NULL, 0,
	                                             false};
	static const struct bdev_metric queued = {"vhostd_bdev_qos_queued", NULL, 0, false};

	for (size_t i = 0; i < VH_ARRAY_SIZE(g_bdev_counters); i++) {
		c.m = &g_bdev_counters[i];
		c.what = 0;
		head(o, c.m->name, "counter", c.m->help);
		vh_bdev_foreach(bdev_counter, &c);
	}
	head(o, errors.name, "counter", "I/O completed with an error, any type.");
	c.m = &errors;
	c.what = 1;
	vh_bdev_foreach(bdev_counter, &c);
	head(o, throttled.name, "counter", "Requests that waited for a QoS limit.");
	c.m = &throttled;
	c.what = 2;
	vh_bdev_foreach(bdev_counter, &c);
	head(o, queued.name, "gauge", "Requests waiting for a QoS limit now.");
	c.m = &queued;
	c.what = 3;
	vh_bdev_foreach(bdev_counter, &c);
	head(o, "vhostd_bdev_qos_limit", "gauge",
	     "QoS limits set (bdev_set_qos_limit), in I/Os or bytes per second.");
	vh_bdev_foreach(bdev_limits, o);
	head(o, "vhostd_bdev_latency_seconds", "histogram",
	     "Time from submission to the bdev to completion, QoS waiting included.");
	vh_bdev_foreach(bdev_histograms, o);
}

static const struct {
	const char *name, *type, *help;
	size_t off; /* in struct vh_vhost_qstats */
} g_ctrlr_metrics[] = {
        {"vhostd_controller_requests_total", "counter", "Requests fetched from the guest's rings.",
         offsetof(struct vh_vhost_qstats, requests)},
        {"vhostd_controller_errors_total", "counter", "Requests answered with an error status.",
         offsetof(struct vh_vhost_qstats, errors)},
        {"vhostd_controller_bytes_total", "counter", "Data bytes read or written by requests.",
         offsetof(struct vh_vhost_qstats, bytes)},
        {"vhostd_controller_kicks_total", "counter",
         "Guest notifications that woke a sleeping reactor.",
         offsetof(struct vh_vhost_qstats, kicks)},
        {"vhostd_controller_interrupts_total", "counter", "Interrupts (call eventfd) sent.",
         offsetof(struct vh_vhost_qstats, interrupts)},
        {"vhostd_controller_queue_depth", "gauge", "Requests in flight now.",
         offsetof(struct vh_vhost_qstats, inflight)},
};

struct ctrlr_ctx {
	struct out *o;
	size_t i;
};

static int
ctrlr_metric(struct vh_vhost_ctrlr *c, void *arg)
{
	struct ctrlr_ctx *x = arg;
	struct vh_vhost_qstats q;
	uint64_t v;

	vh_vhost_ctrlr_stats(c, &q);
	memcpy(&v, (const char *)&q + g_ctrlr_metrics[x->i].off, sizeof(v));
	put(x->o, "%s{controller=\"%s\"} %" PRIu64 "\n", g_ctrlr_metrics[x->i].name,
	    vh_vhost_ctrlr_name(c), v);
	return 0;
}

static void
render_ctrlrs(struct out *o)
{
	struct ctrlr_ctx x = {.o = o};

	for (x.i = 0; x.i < VH_ARRAY_SIZE(g_ctrlr_metrics); x.i++) {
		head(o, g_ctrlr_metrics[x.i].name, g_ctrlr_metrics[x.i].type,
		     g_ctrlr_metrics[x.i].help);
		vh_vhost_foreach(ctrlr_metric, &x);
	}
}

static void
render_reactors(struct out *o)
{
	double hz = (double)vh_ticks_hz();
	unsigned n = vh_reactor_count();

	head(o, "vhostd_reactor_busy_seconds_total", "counter",
	     "Time a reactor spent in loop iterations that found work.");
	for (unsigned i = 0; i < n; i++) {
		struct vh_reactor_stats st;
		const struct vh_reactor *r = vh_reactor_get(i);

		vh_reactor_get_stats(r, &st);
		put(o, "vhostd_reactor_busy_seconds_total{reactor=\"%u\",core=\"%u\"} %.6f\n", i,
		    vh_reactor_core(r), (double)st.busy_ticks / hz);
	}
	head(o, "vhostd_reactor_idle_seconds_total", "counter",
	     "Time a reactor spent finding no work, sleeping included.");
	for (unsigned i = 0; i < n; i++) {
		struct vh_reactor_stats st;
		const struct vh_reactor *r = vh_reactor_get(i);

		vh_reactor_get_stats(r, &st);
		put(o, "vhostd_reactor_idle_seconds_total{reactor=\"%u\",core=\"%u\"} %.6f\n", i,
		    vh_reactor_core(r), (double)st.idle_ticks / hz);
	}
	head(o, "vhostd_reactor_sleeps_total", "counter",
	     "Times a reactor went to sleep after --idle-us without work.");
	for (unsigned i = 0; i < n; i++) {
		struct vh_reactor_stats st;
		const struct vh_reactor *r = vh_reactor_get(i);

		vh_reactor_get_stats(r, &st);
		put(o, "vhostd_reactor_sleeps_total{reactor=\"%u\",core=\"%u\"} %" PRIu64 "\n", i,
		    vh_reactor_core(r), st.sleeps);
	}
}

char *
vh_metrics_render(size_t *len)
{
	struct out o = {.cap = 65536};

	o.buf = malloc(o.cap);
	if (o.buf == NULL) {
		return NULL;
	}
	o.buf[0] = '\0';
	head(&o, "vhostd_build_info", "gauge", "vhostd's version (the value is always 1).");
	put(&o, "vhostd_build_info{version=\"%s\"} 1\n", VH_VERSION);
	render_bdevs(&o);
	render_ctrlrs(&o);
	render_reactors(&o);
	if (o.oom) {
		free(o.buf);
		return NULL;
	}
	*len = o.len;
	return o.buf;
}

#if VH_HAVE_METRICS

/* ---- HTTP (libmicrohttpd's thread) ---- */

#define SCRAPE_TIMEOUT_MS 5000

/*
 * One scrape handed to the control thread, with two references: the HTTP side's and the control
 * side's. libmicrohttpd runs one thread, so at most one scrape waits at a time; one lock and one
 * condition variable serve them all, and stopping wakes the waiter.
 */
struct scrape {
	int refs;
	bool done;
	char *page;
	size_t len;
};

static struct MHD_Daemon *g_mhd;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static bool g_stopping; /* under g_lock */

/* Drop a reference; g_lock held. */
static void
scrape_put_locked(struct scrape *s)
{
	if (--s->refs == 0) {
		free(s->page);
		free(s);
	}
}

/* Control thread. */
static void
scrape_msg(void *arg)
{
	struct scrape *s = arg;
	size_t len = 0;
	char *page = vh_metrics_render(&len);

	pthread_mutex_lock(&g_lock);
	s->page = page;
	s->len = len;
	s->done = true;
	pthread_cond_broadcast(&g_cond);
	scrape_put_locked(s);
	pthread_mutex_unlock(&g_lock);
}

/* HTTP thread: ask the control thread for the page; NULL after SCRAPE_TIMEOUT_MS or on error. */
static char *
scrape(size_t *len)
{
	struct scrape *s = calloc(1, sizeof(*s));
	struct timespec dl;
	char *page = NULL;

	if (s == NULL) {
		return NULL;
	}
	s->refs = 2;
	if (vh_control_send(scrape_msg, s) < 0) {
		free(s);
		return NULL;
	}
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += SCRAPE_TIMEOUT_MS / 1000;
	pthread_mutex_lock(&g_lock);
	while (!s->done && !g_stopping) {
		if (pthread_cond_timedwait(&g_cond, &g_lock, &dl) == ETIMEDOUT) {
			break;
		}
	}
	if (s->done) {
		page = s->page;
		*len = s->len;
		s->page = NULL;
	}
	/* Not done: the control thread frees it when (if) the message runs. */
	scrape_put_locked(s);
	pthread_mutex_unlock(&g_lock);
	return page;
}

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned code, const char *text)
{
	struct MHD_Response *r =
	        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc;

	if (r == NULL) {
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	rc = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **ctx)
{
	struct MHD_Response *r;
	enum MHD_Result rc;
	size_t len = 0;
	char *page;

	(void)cls;
	(void)version;
	(void)upload_data;
	if (*upload_data_size != 0) {
		*upload_data_size = 0; /* a body we do not want: drop it */
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") != 0) {
		return reply(conn, MHD_HTTP_NOT_FOUND, "not found: vhostd serves /metrics\n");
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
	}
	(void)ctx;
	page = scrape(&len);
	if (page == NULL) {
		return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
		             "vhostd is busy or shutting down: try again\n");
	}
	r = MHD_create_response_from_buffer(len, page, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(page);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        "text/plain; version=0.0.4; charset=utf-8");
	rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

static void VH_PRINTF(2, 0) mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	VH_LOG_RL(VH_LOG_WARN, "metrics", "%s", msg);
}

/* "ADDR:PORT", "[V6]:PORT" or ":PORT". */
static int
parse_addr(const char *s, struct sockaddr_storage *ss, unsigned *flags)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;
	size_t hl;

	if (colon == NULL || colon[1] == '\0') {
		return -EINVAL;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end != '\0' || port > 65535 || colon[1] < '0' || colon[1] > '9') {
		return -EINVAL;
	}
	hl = (size_t)(colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		s++;
		hl -= 2;
	}
	if (hl >= sizeof(host)) {
		return -EINVAL;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (hl == 0) {
		strcpy(host, "127.0.0.1"); /* loopback unless told otherwise */
	}
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*flags |= MHD_USE_IPv6;
		return inet_pton(AF_INET6, host, &a6->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;

	a4->sin_family = AF_INET;
	a4->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &a4->sin_addr) == 1 ? 0 : -EINVAL;
}

int
vh_metrics_start(const char *addr_port)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	char shown[96];
	int rc;

	rc = parse_addr(addr_port, &ss, &flags);
	if (rc < 0) {
		return rc;
	}
	errno = 0;
	/* The logger first, so that what the other options say goes to our log too. */
	g_mhd = MHD_start_daemon(
	        flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	        MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
	        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)8, MHD_OPTION_CONNECTION_TIMEOUT,
	        (unsigned)10, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
	if (g_mhd == NULL) {
		return errno ? -errno : -EADDRINUSE;
	}
	info = MHD_get_daemon_info(g_mhd, MHD_DAEMON_INFO_BIND_PORT);
	if (ss.ss_family == AF_INET6) {
		char a[INET6_ADDRSTRLEN];

		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a, sizeof(a));
		snprintf(shown, sizeof(shown), "[%s]", a);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, shown, sizeof(shown));
	}
	VH_NOTICE("metrics", "Prometheus metrics at http://%s:%u/metrics", shown,
	          info != NULL ? (unsigned)info->port : 0u);
	return 0;
}

void
vh_metrics_stop(void)
{
	if (g_mhd == NULL) {
		return;
	}
	/* A scrape waiting for the control thread gives up (503) instead of holding the stop. */
	pthread_mutex_lock(&g_lock);
	g_stopping = true;
	pthread_cond_broadcast(&g_cond);
	pthread_mutex_unlock(&g_lock);
	MHD_stop_daemon(g_mhd);
	g_mhd = NULL;
}

#else /* !VH_HAVE_METRICS */

int
vh_metrics_start(const char *addr_port)
{
	(void)addr_port;
	return -ENOTSUP;
}

void
vh_metrics_stop(void)
{
}

#endif
