/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhostd --metrics: the Prometheus endpoint.
 * - /metrics counts exactly what the front-end did (bdev ops and bytes, the latency histogram's
 *   count and +Inf bucket, the controller's requests), and the page passes `promtool check
 *   metrics` when Debian's prometheus package is installed (that check is skipped otherwise;
 *   the counting checks always run);
 * - other paths are 404, other methods 405;
 * - a malformed --metrics value stops the daemon at start with exit status 1, and so does an
 *   address already in use.
 * The HTTP client here is the test's own, deliberately minimal (HTTP/1.0, read to EOF).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io_engine.h"
#include "vh_test.h"

#define TIMEOUT_MS 20000

static int
free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
		port = ntohs(a.sin_port);
	}
	if (fd >= 0) {
		close(fd);
	}
	return port;
}

/* One HTTP/1.0 request; returns the status code and the body in *body (malloc'ed), or -1. */
static int
http(int port, const char *method, const char *path, char **body)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap + 1), req[256], *p;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), code = -1;

	if (buf == NULL || fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		goto out;
	}
	snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		goto out;
	}
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		ssize_t n;

		if (poll(&pfd, 1, TIMEOUT_MS) != 1 || len == cap) {
			goto out;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0) {
			goto out;
		}
		if (n == 0) {
			break;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1) {
		code = -1;
		goto out;
	}
	p = strstr(buf, "\r\n\r\n");
	*body = strdup(p != NULL ? p + 4 : "");
out:
	free(buf);
	if (fd >= 0) {
		close(fd);
	}
	return code;
}

/* The value of the sample line that starts with @series (name{labels}), or -1. */
static double
sample(const char *page, const char *series)
{
	size_t n = strlen(series);

	for (const char *l = page; l != NULL && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, series, n) == 0 && l[n] == ' ') {
			return strtod(l + n + 1, NULL);
		}
	}
	return -1;
}

static int
sync_req(struct vh_fe *fe, uint32_t type, uint64_t sector, uint64_t gpa, uint32_t len, bool in)
{
	struct vh_fe_iov iov = {gpa, len};
	struct vh_fe_req r = {.type = type,
	                      .sector = sector,
	                      .iov = &iov,
	                      .niov = 1,
	                      .dir = in ? VH_FE_DIR_IN : VH_FE_DIR_OUT};

	T_CHECK(io_sync(fe, 0, &r, TIMEOUT_MS) >= 0 && r.status == VIRTIO_BLK_S_OK, "request");
	return 0;
}

static int
promtool(const char *page)
{
	FILE *p;

	if (access("/usr/bin/promtool", X_OK) != 0) {
		fprintf(stderr,
		        "  promtool not installed (Debian: prometheus): format check skipped\n");
		return 0;
	}
	p = popen("/usr/bin/promtool check metrics", "w");
	T_CHECK(p != NULL, "popen promtool");
	fputs(page, p);
	T_CHECK(pclose(p) == 0, "promtool check metrics refused the page");
	fprintf(stderr, "  promtool check metrics: ok\n");
	return 0;
}

static int
counts(struct vh_target *t, int port)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 1};
	const unsigned nr = 41, nw = 7;
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	char *page = NULL;
	uint64_t buf;
	int rc = -1;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (vh_fe_start(fe, 0, 0) < 0) {
		goto out;
	}
	buf = vh_fe_mem_alloc(mem, 8192, 4096);
	for (unsigned i = 0; i < nr; i++) {
		if (sync_req(fe, VIRTIO_BLK_T_IN, i * 8, buf, 4096, true) < 0) {
			goto out;
		}
	}
	for (unsigned i = 0; i < nw; i++) {
		if (sync_req(fe, VIRTIO_BLK_T_OUT, i * 16, buf, 8192, false) < 0) {
			goto out;
		}
	}
	if (http(port, "GET", "/metrics", &page) != 200) {
		fprintf(stderr, "FAIL: GET /metrics\n");
		goto out;
	}
#define EQ(series, v)                                                                              \
	do {                                                                                       \
		double got_ = sample(page, series);                                                \
		if (got_ != (double)(v)) {                                                         \
			fprintf(stderr, "FAIL: %s = %.0f, front-end did %.0f\n", series, got_,     \
			        (double)(v));                                                      \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)
	EQ("vhostd_build_info{version=\"" VH_VERSION "\"}", 1);
	EQ("vhostd_bdev_read_ops_total{bdev=\"Malloc0\"}", nr);
	EQ("vhostd_bdev_read_bytes_total{bdev=\"Malloc0\"}", nr * 4096);
	EQ("vhostd_bdev_write_ops_total{bdev=\"Malloc0\"}", nw);
	EQ("vhostd_bdev_write_bytes_total{bdev=\"Malloc0\"}", nw * 8192);
	EQ("vhostd_bdev_unmap_ops_total{bdev=\"Malloc0\"}", 0);
	EQ("vhostd_bdev_latency_seconds_count{bdev=\"Malloc0\",op=\"read\"}", nr);
	EQ("vhostd_bdev_latency_seconds_bucket{bdev=\"Malloc0\",op=\"read\",le=\"+Inf\"}", nr);
	EQ("vhostd_controller_requests_total{controller=\"vhost.0\"}", nr + nw);
	EQ("vhostd_controller_errors_total{controller=\"vhost.0\"}", 0);
	EQ("vhostd_bdev_qos_throttled_total{bdev=\"Malloc0\"}", 0);
#undef EQ
	if (sample(page, "vhostd_bdev_latency_seconds_sum{bdev=\"Malloc0\",op=\"read\"}") <= 0 ||
	    sample(page, "vhostd_reactor_busy_seconds_total{reactor=\"0\",core=\"0\"}") < 0) {
		fprintf(stderr, "FAIL: latency sum or reactor time missing\n");
		goto out;
	}
	fprintf(stderr, "  %u reads and %u writes counted exactly\n", nr, nw);
	if (promtool(page) < 0) {
		goto out;
	}
	rc = vh_fe_stop(fe) < 0 ? -1 : 0;
out:
	free(page);
	vh_test_fe_close(mem, fe);
	return rc;
}

static int
http_errors(int port)
{
	char *body = NULL;
	int code;

	code = http(port, "GET", "/", &body);
	free(body);
	T_CHECK(code == 404, "GET / -> %d", code);
	body = NULL;
	code = http(port, "POST", "/metrics", &body);
	free(body);
	T_CHECK(code == 405, "POST /metrics -> %d", code);
	return 0;
}

/* A daemon with this --metrics value must refuse to start (exit 1). */
static int
refused(const char *value)
{
	const char *extra[] = {"--metrics", value, NULL};
	struct vh_daemon d = {.pid = -1};
	int rc = vh_daemon_start(&d, NULL, extra, 10000);

	if (rc == 0) {
		vh_daemon_stop(&d, 5000);
	}
	T_CHECK(rc == -ECHILD, "--metrics %s accepted (rc %d)", value, rc);
	fprintf(stderr, "  --metrics %s: refused\n", value);
	return 0;
}

int
main(void)
{
	struct vh_target t;
	char addr[32];
	const char *extra[] = {"--metrics", addr, NULL};
	int port = free_port(), rc;

	if (vh_test_qsd()) {
		return VH_TEST_SKIP;
	}
	if (getenv("VHOSTD") == NULL) {
		fprintf(stderr, "SKIP: $VHOSTD not set\n");
		return VH_TEST_SKIP;
	}
	memset(&t, 0, sizeof(t));
	snprintf(t.name, sizeof(t.name), "vhost.0");
	snprintf(t.bdev, sizeof(t.bdev), "Malloc0");
	/*
	 * The port was free when we looked; another process on a busy host may take it before
	 * the daemon binds it (vhostd then refuses to start, as it must): try other ports.
	 */
	for (int attempt = 0;; attempt++) {
		T_CHECK(port > 0, "no free port");
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
		rc = vh_daemon_start(&t.d, NULL, extra, 10000);
		if (rc != -ECHILD || attempt == 4) {
			break;
		}
		fprintf(stderr,
		        "vhostd --metrics %s did not start (the port taken meanwhile?): "
		        "another port\n",
		        addr);
		port = free_port();
	}
	if (rc < 0) {
		fprintf(stderr, "FAIL: vhostd --metrics %s: %s\n", addr, strerror(-rc));
		return VH_TEST_FAIL;
	}
	vh_daemon_path(&t.d, t.name, t.sock, sizeof(t.sock));
	rc = vh_target_rpc(&t, "bdev_malloc_create",
	                   json_pack("{s:s, s:i, s:i}", "name", "Malloc0", "num_blocks", 16384,
	                             "block_size", 512),
	                   NULL);
	if (rc == 0) {
		rc = vh_target_rpc(
		        &t, "vhost_create_blk_controller",
		        json_pack("{s:s, s:s}", "ctrlr", "vhost.0", "dev_name", "Malloc0"), NULL);
	}
	if (rc == 0) {
		rc = counts(&t, port);
	}
	if (rc == 0) {
		rc = http_errors(port);
	}
	/* The port is taken by the first daemon: a second one must not start half-working. */
	if (rc == 0) {
		rc = refused(addr);
	}
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	if (rc == 0 && (refused("localhost:9100") < 0 || refused("127.0.0.1") < 0 ||
	                refused("127.0.0.1:99999") < 0)) {
		rc = -1;
	}
	fprintf(stderr, "%s\n", rc == 0 ? "PASS" : "FAIL");
	return rc == 0 ? VH_TEST_PASS : VH_TEST_FAIL;
}
