/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * kill -9 recovery on an rbd bdev, against a real Ceph cluster: `vhostd --supervise` replays a
 * config (cluster, rbd bdev without librbd's cache, controller); the front-end plays QEMU 7.2
 * with INFLIGHT_SHMFD and keeps QD32 random 4 KiB writes in flight on two queues. The worker is
 * killed with SIGKILL while requests are in flight (the back-end's inflight region shows them);
 * the front-end reconnects as QEMU does, and the new worker resubmits them. The new worker must
 * first get the image's exclusive lock, which the dead one still holds until its watch expires
 * on the OSD (osd_client_watch_timeout: 15 s on the test cluster, 30 s by default), so
 * recovery here is measured in seconds, not milliseconds.
 *
 * Pass when every request completed exactly once (none lost, no duplicate used element), with
 * status OK; every block reads back (through vhostd, and through `rbd export`, another librbd
 * client) with its newest completed generation (or the one still in flight at the end); and
 * the new workers logged resubmitting the heads the dead ones left in flight.
 *
 * Usage: test_rbd_crash [--cycles N] [--window-ms MS] [--seed S]. $VHOSTD, $VH_CEPH_CLUSTER;
 * 77 = skip (no Ceph, not root, no binary).
 */
#include <endian.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ceph_env.h"
#include "vh_test.h"

#define BLK        4096u
#define SPB        (BLK / 512u)
#define NBLOCKS    4096u /* 16 MiB image */
#define QD         32u
#define NQ         2u
#define MAGIC      0x3144425243524843ull /* "CHRCRBD1" */
#define REPLY_MS   30000
#define FIRST_MS   90000 /* kill -> first new completion: the dead worker's lock must expire */
#define MAX_CYCLES 16

struct ctx {
	struct vh_fe_req req;
	struct vh_fe_iov iov;
	uint8_t *buf;
	unsigned int q;
	bool busy, read;
	uint64_t lba, gen;
};

static struct {
	unsigned int cycles, window_ms;
	uint64_t seed, rng;
	struct ceph_env ceph;
	struct vh_daemon d;
	char conf[160], log[160], sock[128];
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct ctx ctx[QD];
	uint64_t last_gen[NBLOCKS], done_gen[NBLOCKS];
	uint8_t busy[NBLOCKS];
	uint64_t submitted, completed, bad_status, verify_err, verified, marked_total;
	uint64_t recov_ms[MAX_CYCLES];
} g;

static uint64_t
rnd(void)
{
	g.rng ^= g.rng >> 12;
	g.rng ^= g.rng << 25;
	g.rng ^= g.rng >> 27;
	return g.rng * 0x2545f4914f6cdd1dull;
}

static void
fill_block(uint8_t *b, uint64_t lba, uint64_t gen)
{
	uint64_t h[3] = {htole64(MAGIC), htole64(lba), htole64(gen)};

	memcpy(b, h, sizeof(h));
	for (size_t i = sizeof(h); i < BLK; i += 8) {
		uint64_t v = (lba * 0x9e3779b97f4a7c15ull) ^ (gen << 20) ^ i;

		memcpy(b + i, &v, 8);
	}
}

/* NULL if @b holds a valid block for @lba with an acceptable generation; else why not. */
static const char *
check_block(const uint8_t *b, uint64_t lba, uint64_t *gen_out)
{
	static uint8_t want[BLK];
	uint64_t h[3], gen, done = g.done_gen[lba], last = g.last_gen[lba];

	memcpy(h, b, sizeof(h));
	gen = le64toh(h[2]);
	*gen_out = gen;
	if (le64toh(h[0]) != MAGIC || le64toh(h[1]) != lba) {
		return "no header for this block";
	}
	fill_block(want, lba, gen);
	if (memcmp(want, b, BLK) != 0) {
		return "torn or corrupt block";
	}
	if (gen != done && !(last != done && gen == last)) {
		return gen < done ? "stale generation (a completed write was lost or re-executed)"
		                  : "unexpected generation";
	}
	return NULL;
}

static void
done_cb(struct vh_fe_req *req, void *arg)
{
	struct ctx *c = arg;
	uint64_t gen;
	const char *why;

	c->busy = false;
	g.busy[c->lba] = 0;
	if (req->status != VIRTIO_BLK_S_OK) {
		if (g.bad_status++ < 10) {
			fprintf(stderr, "FAIL: %s lba %" PRIu64 ": status %u\n",
			        c->read ? "read" : "write", c->lba, req->status);
		}
		return;
	}
	if (!c->read) {
		g.completed++;
		g.done_gen[c->lba] = c->gen;
		return;
	}
	g.verified++;
	why = check_block(c->buf, c->lba, &gen);
	if (why != NULL && g.verify_err++ < 10) {
		fprintf(stderr,
		        "FAIL: lba %" PRIu64 ": %s (holds gen %" PRIu64 ", done %" PRIu64
		        ", last %" PRIu64 ")\n",
		        c->lba, why, gen, g.done_gen[c->lba], g.last_gen[c->lba]);
	}
}

static int
queue_req(struct ctx *c, bool read, uint64_t lba)
{
	int rc;

	c->read = read;
	c->lba = lba;
	if (!read) {
		c->gen = g.last_gen[lba] + 1;
		fill_block(c->buf, lba, c->gen);
	}
	c->req.type = read ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
	c->req.sector = lba * SPB;
	rc = vh_fe_req_queue(vh_fe_vq(g.fe, c->q), &c->req);
	if (rc < 0) {
		return rc;
	}
	if (!read) {
		g.last_gen[lba] = c->gen;
		g.submitted++;
	}
	g.busy[lba] = 1;
	c->busy = true;
	return 0;
}

static int
flush_all(void)
{
	for (unsigned int q = 0; q < NQ; q++) {
		T_OK(vh_fe_vq_flush(vh_fe_vq(g.fe, q)));
	}
	return 0;
}

static int
fill(void)
{
	for (unsigned int i = 0; i < QD; i++) {
		uint64_t lba;

		if (g.ctx[i].busy) {
			continue;
		}
		do {
			lba = rnd() % NBLOCKS;
		} while (g.busy[lba]);
		if (queue_req(&g.ctx[i], false, lba) < 0) {
			break; /* ring full: poll first */
		}
	}
	return flush_all();
}

static void
reap(void)
{
	for (unsigned int q = 0; q < NQ; q++) {
		vh_fe_vq_poll(vh_fe_vq(g.fe, q), NULL, 0);
	}
}

static void
wait_calls(int ms)
{
	struct pollfd p[NQ];

	for (unsigned int q = 0; q < NQ; q++) {
		if (vh_fe_vq_arm(vh_fe_vq(g.fe, q))) {
			return;
		}
		p[q] = (struct pollfd){.fd = vh_fe_vq_call_fd(vh_fe_vq(g.fe, q)), .events = POLLIN};
	}
	if (poll(p, NQ, ms) > 0) {
		for (unsigned int q = 0; q < NQ; q++) {
			if (p[q].revents & POLLIN) {
				vh_fe_vq_ack_call(vh_fe_vq(g.fe, q));
			}
		}
	}
}

static unsigned int
busy_count(void)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < QD; i++) {
		n += g.ctx[i].busy;
	}
	return n;
}

/* Heads marked in flight in the back-end's inflight region (split layout, 128-entry queues). */
static unsigned int
marked_now(void)
{
	uint64_t size, stride = (16 + 16 * 128 + 63) & ~63ull;
	const uint8_t *m = vh_fe_inflight_map(g.fe, &size);
	unsigned int n = 0;

	for (unsigned int q = 0; m && q < NQ && (q + 1) * stride <= size; q++) {
		for (unsigned int h = 0; h < 128; h++) {
			n += __atomic_load_n(&m[q * stride + 16 + 16 * h], __ATOMIC_RELAXED) != 0;
		}
	}
	return n;
}

static unsigned int
log_count(const char *needle)
{
	char line[1024];
	unsigned int n = 0;
	FILE *f = fopen(g.log, "r");

	while (f != NULL && fgets(line, sizeof(line), f)) {
		n += strstr(line, needle) != NULL;
	}
	if (f != NULL) {
		fclose(f);
	}
	return n;
}

static void
log_tail(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "tail -n 30 '%s' >&2", g.log);
	fflush(stderr);
	if (system(cmd) != 0) {
		fprintf(stderr, "(no log)\n");
	}
}

static int
write_conf(void)
{
	FILE *f = fopen(g.conf, "w");

	T_CHECK(f != NULL, "%s: %s", g.conf, strerror(errno));
	fprintf(f,
	        "{\"subsystems\": [\n"
	        " {\"subsystem\": \"bdev\", \"config\": [\n"
	        "  {\"method\": \"bdev_rbd_register_cluster\", \"params\": {\"name\": \"ceph\", "
	        "\"config_param\": {\"mon_host\": \"%s\", \"auth_client_required\": \"none\", "
	        "\"rbd_cache\": \"false\"}}},\n"
	        "  {\"method\": \"bdev_rbd_create\", \"params\": {\"name\": \"r0\", \"pool_name\": "
	        "\"%s\", \"rbd_name\": \"cr\", \"block_size\": 512, \"cluster_name\": "
	        "\"ceph\"}}]},\n"
	        " {\"subsystem\": \"vhost_blk\", \"config\": [\n"
	        "  {\"method\": \"vhost_create_blk_controller\", \"params\": {\"ctrlr\": "
	        "\"vhost.0\", \"dev_name\": \"r0\", \"cpumask\": \"0x1\", \"num_queues\": %u}}]}\n"
	        "]}\n",
	        g.ceph.mon_host, g.ceph.pool, NQ);
	T_CHECK(fclose(f) == 0, "write %s", g.conf);
	return 0;
}

static int
start_daemon(const char *bin)
{
	const char *argv[] = {bin,  "--supervise", "-m", "0x1", "-S",   NULL, "-r",
	                      NULL, "-c",          NULL, "-L",  "info", NULL};
	int logfd, saved_err, saved_out, rc;

	T_OK(vh_daemon_mkdir(&g.d));
	argv[5] = g.d.sock_dir;
	argv[7] = g.d.rpc_path;
	argv[9] = g.conf;
	snprintf(g.conf, sizeof(g.conf), "%s/vhostd.json", g.d.dir);
	snprintf(g.log, sizeof(g.log), "%s/vhostd.log", g.d.dir);
	snprintf(g.sock, sizeof(g.sock), "%s/vhost.0", g.d.dir);
	T_OK(write_conf());
	logfd = open(g.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	T_CHECK(logfd >= 0, "%s: %s", g.log, strerror(errno));
	fflush(stderr);
	fflush(stdout);
	saved_err = dup(2);
	saved_out = dup(1);
	dup2(logfd, 2);
	dup2(logfd, 1);
	rc = vh_daemon_spawn(&g.d, argv, "vhost.0", 30000);
	dup2(saved_err, 2);
	dup2(saved_out, 1);
	close(saved_err);
	close(saved_out);
	close(logfd);
	if (rc < 0) {
		log_tail();
	}
	return rc;
}

static int
setup_fe(void)
{
	struct vh_fe_mem_opts mo = {.size = 8u << 20};
	struct vh_fe_opts fo = {.path = g.sock,
	                        .timeout_ms = REPLY_MS,
	                        .num_queues = NQ,
	                        .queue_size = 128,
	                        .inflight = true};

	T_OK(vh_fe_mem_create(&g.mem, &mo));
	T_OK(vh_fe_create(&g.fe, g.mem, &fo));
	T_OK(vh_fe_connect(g.fe, 10000));
	T_OK(vh_fe_init(g.fe, true));
	T_CHECK(vh_fe_cfg_u64(g.fe, VH_BLK_CFG_CAPACITY) == NBLOCKS * SPB, "capacity");
	T_OK(vh_fe_start(g.fe, 0, 0));
	T_CHECK(vh_fe_inflight_fd(g.fe) >= 0, "no inflight buffer");
	for (unsigned int q = 0; q < NQ; q++) {
		vh_fe_vq_set_mode(vh_fe_vq(g.fe, q), VH_FE_INTERRUPT);
	}
	for (unsigned int i = 0; i < QD; i++) {
		struct ctx *c = &g.ctx[i];
		uint64_t gpa = vh_fe_mem_alloc(g.mem, BLK, BLK);

		T_CHECK(gpa != UINT64_MAX, "guest RAM");
		c->q = i % NQ;
		c->buf = vh_fe_gpa_to_ptr(g.mem, gpa, BLK);
		c->iov = (struct vh_fe_iov){gpa, BLK};
		c->req.iov = &c->iov;
		c->req.niov = 1;
		c->req.layout = VH_FE_L_INDIRECT;
		c->req.cb = done_cb;
		c->req.cb_arg = c;
	}
	return 0;
}

/* I/O for @ms, then on until the back-end holds requests (so the kill leaves some in flight). */
static int
io_for(unsigned int ms)
{
	int64_t end = vh_fe_now_ms() + ms;

	while (vh_fe_now_ms() < end || marked_now() == 0) {
		reap();
		T_OK(fill());
		T_CHECK(vh_fe_now_ms() < end + 10000, "the back-end never held a request");
		if (vh_fe_now_ms() < end) {
			wait_calls(1);
		}
	}
	return 0;
}

static int
kill_and_recover(unsigned int cycle)
{
	pid_t worker = vh_daemon_child(&g.d), next;
	uint64_t done0;
	int64_t t_kill;
	unsigned int marked;

	T_CHECK(worker > 0, "no worker under the supervisor");
	T_OK(io_for(g.window_ms));
	t_kill = vh_fe_now_ms();
	T_CHECK(kill(worker, SIGKILL) == 0, "kill: %s", strerror(errno));
	T_CHECK(vh_fe_wait_closed(g.fe, 5000) == 0, "connection not closed after the kill");
	marked = marked_now();
	g.marked_total += marked;
	reap();
	T_OK(fill());
	done0 = g.completed;
	if (vh_fe_reconnect(g.fe, REPLY_MS) < 0) {
		fprintf(stderr, "FAIL cycle %u: reconnect after the kill\n", cycle);
		log_tail();
		return -1;
	}
	next = vh_daemon_child(&g.d);
	T_CHECK(next > 0 && next != worker, "no new worker");
	while (g.completed == done0) {
		reap();
		T_OK(fill());
		if (vh_fe_now_ms() - t_kill > FIRST_MS) {
			fprintf(stderr, "FAIL cycle %u: no completion %d ms after the kill\n",
			        cycle, FIRST_MS);
			log_tail();
			return -1;
		}
		wait_calls(10);
	}
	g.recov_ms[cycle - 1] = (uint64_t)(vh_fe_now_ms() - t_kill);
	fprintf(stderr,
	        "cycle %u: killed worker %d with %u request(s) in its inflight region; first "
	        "completion of worker %d after %" PRIu64 " ms\n",
	        cycle, (int)worker, marked, (int)next, g.recov_ms[cycle - 1]);
	return 0;
}

static int
drain(int ms)
{
	int64_t end = vh_fe_now_ms() + ms;

	while (busy_count() > 0 && vh_fe_now_ms() < end) {
		reap();
		wait_calls(5);
	}
	T_CHECK(busy_count() == 0, "%u requests never completed (lost)", busy_count());
	return 0;
}

static int
check_rings(void)
{
	for (unsigned int q = 0; q < NQ; q++) {
		struct vh_fe_vq *vq = vh_fe_vq(g.fe, q);
		struct vh_fe_vq_stats st;
		uint16_t used = le16toh(__atomic_load_n(&vh_fe_vq_used(vq)->idx, __ATOMIC_ACQUIRE));

		vh_fe_vq_stats(vq, &st);
		T_CHECK(st.bad_used == 0 && used == le16toh(vh_fe_vq_avail(vq)->idx) &&
		                st.submitted == st.completed,
		        "q%u: submitted %" PRIu64 ", completed %" PRIu64 ", bad used %" PRIu64, q,
		        st.submitted, st.completed, st.bad_used);
	}
	return 0;
}

/* Read every written block back through vhostd (checked in done_cb). */
static int
verify_fe(void)
{
	uint64_t lba = 0;
	int64_t end = vh_fe_now_ms() + 60000;

	while (lba < NBLOCKS || busy_count() > 0) {
		for (unsigned int i = 0; i < QD && lba < NBLOCKS; i++) {
			if (g.ctx[i].busy) {
				continue;
			}
			while (lba < NBLOCKS && g.last_gen[lba] == 0) {
				lba++;
			}
			if (lba < NBLOCKS && queue_req(&g.ctx[i], true, lba++) < 0) {
				lba--;
				break;
			}
		}
		T_OK(flush_all());
		reap();
		T_CHECK(vh_fe_now_ms() < end, "read-back did not finish");
		wait_calls(5);
	}
	return 0;
}

/* The same, through another librbd client. */
static int
verify_export(void)
{
	static uint8_t img[NBLOCKS * BLK];
	char name[96];
	uint64_t n = 0, gen;

	snprintf(name, sizeof(name), "%s/cr", g.ceph.pool);
	T_OK(ceph_read_image(&g.ceph, name, 0, img, sizeof(img)));
	for (uint64_t lba = 0; lba < NBLOCKS; lba++) {
		const char *why;

		if (g.last_gen[lba] == 0) {
			continue;
		}
		why = check_block(img + lba * BLK, lba, &gen);
		T_CHECK(why == NULL, "exported lba %" PRIu64 ": %s (gen %" PRIu64 ")", lba, why,
		        gen);
		n++;
	}
	fprintf(stderr, "rbd export: %" PRIu64 " written blocks hold their newest generation\n", n);
	return 0;
}

static int
run(const char *bin)
{
	unsigned int resub;

	T_CHECK(ceph_sh(&g.ceph, "rbd $CEPH create --size 16M %s/cr", g.ceph.pool) == 0,
	        "rbd create");
	T_OK(start_daemon(bin));
	T_OK(setup_fe());
	for (unsigned int c = 1; c <= g.cycles; c++) {
		T_OK(kill_and_recover(c));
	}
	T_OK(io_for(200));
	T_OK(drain(60000));
	T_OK(check_rings());
	T_OK(verify_fe());
	resub = log_count("resubmitting");
	fprintf(stderr,
	        "writes: %" PRIu64 " submitted, %" PRIu64 " completed OK, %" PRIu64
	        " bad status; %" PRIu64 " blocks read back, %" PRIu64 " wrong; heads in flight "
	        "at the kills: %" PRIu64 "; resubmissions logged: %u; restarts: %u\n",
	        g.submitted, g.completed, g.bad_status, g.verified, g.verify_err, g.marked_total,
	        resub, log_count("restarting in"));
	T_CHECK(g.bad_status == 0 && g.verify_err == 0, "bad status or data");
	T_CHECK(g.completed == g.submitted, "%" PRIu64 " writes did not complete",
	        g.submitted - g.completed);
	T_CHECK(g.marked_total > 0 && resub > 0, "no request was left in flight to resubmit");
	T_CHECK(log_count("restarting in") >= g.cycles,
	        "the supervisor did not restart the worker");
	/* The workers' stderr goes to the log, not to us: a sanitizer report there is a failure. */
	T_CHECK(log_count("Sanitizer") == 0, "a sanitizer reported an error (see the log)");
	T_OK(vh_fe_stop(g.fe));
	return verify_export();
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {{"cycles", required_argument, NULL, 'n'},
	                                   {"window-ms", required_argument, NULL, 'w'},
	                                   {"seed", required_argument, NULL, 's'},
	                                   {NULL, 0, NULL, 0}};
	const char *bin = getenv("VHOSTD");
	int opt, rc;

	g.cycles = 2;
	g.window_ms = 1000;
	g.seed = vh_test_seed("test_rbd_crash");
	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 'n':
			g.cycles = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 'w':
			g.window_ms = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 's':
			g.seed = strtoull(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: %s [--cycles N] [--window-ms MS] [--seed S]\n",
			        argv[0]);
			return VH_TEST_FAIL;
		}
	}
	if (g.cycles == 0 || g.cycles > MAX_CYCLES) {
		fprintf(stderr, "--cycles: 1..%d\n", MAX_CYCLES);
		return VH_TEST_FAIL;
	}
	g.rng = g.seed | 1;
	g.d.pid = -1;
	signal(SIGPIPE, SIG_IGN);
	if (bin == NULL || access(bin, X_OK) != 0) {
		fprintf(stderr, "SKIP: $VHOSTD not set\n");
		return VH_TEST_SKIP;
	}
	rc = ceph_env_start(&g.ceph);
	if (rc != 0) {
		return rc == 77 ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	rc = run(bin);
	if (g.fe != NULL) {
		vh_fe_destroy(g.fe);
	}
	if (g.mem != NULL) {
		vh_fe_mem_destroy(g.mem);
	}
	if (g.d.pid > 0) {
		int st = vh_daemon_stop(&g.d, 20000);

		if (rc == 0 && (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
			fprintf(stderr, "FAIL: the supervisor did not exit cleanly (0x%x)\n", st);
			rc = -1;
		}
	}
	ceph_env_stop(&g.ceph);
	fprintf(stderr, "%s\n", rc == 0 ? "PASS" : "FAIL");
	return rc == 0 ? VH_TEST_PASS : VH_TEST_FAIL;
}
