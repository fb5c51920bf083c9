/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Crash soak, native (no VM): `vhostd --supervise` serves a RAM disk whose completions are held
 * for a random 0..max_delay_us (so they complete out of order). The front-end library plays
 * QEMU 7.2 with INFLIGHT_SHMFD and a guest keeping QD128 random 4 KiB writes in flight over two
 * queues. At a random moment (uniform 0..window ms of I/O after the previous recovery, then
 * until the back-end's inflight region shows a request in flight, at most 100 ms more) the
 * worker is killed with SIGKILL; the front-end then does what QEMU 7.2 does (reference §1.9 E):
 * waits for the disconnect, restores each ring's base to used->idx, reconnects, replays the
 * handshake, hands back the same inflight fd (SET_INFLIGHT_FD) and restarts the rings.
 *
 * Every write carries a header (magic, LBA, generation, request sequence) and a checksum. At
 * most one write per block is in flight, so generations of a block complete in order.
 *
 * Pass when, after all cycles:
 * - every submitted request completed exactly once: none still in flight after a final drain
 *   (lost), no used element for a head that is not in flight (duplicate, the library's
 *   bad_used), and per queue used->idx == avail->idx == requests submitted;
 * - every completion has status OK and used length 1;
 * - every block ever written reads back checksum-valid with its LBA and the newest generation
 *   whose write completed (or, if its last write never completed, that write's generation);
 * - completions really were out of order after every restart (the test delay is in effect);
 * - the supervisor restarted the worker once per kill.
 *
 * Recovery time = from kill(2) to the first completion of the new worker; p50/p99/max printed
 * (and as JSON on stdout with --json, for bench/crash-soak.sh).
 *
 * --upgrade: the same I/O, but each cycle is a live upgrade instead of a kill (docs/design.md,
 * "Live upgrade by hand-over"): the supervisor runs the binary installed at <dir>/bin/vhostd,
 * and every cycle installs the other of two builds there ($VHOSTD and $VHOSTD_ALT, which
 * reports a "+alt" version) and upgrades to it: by SIGHUP to the supervisor on even cycles, by
 * the vhostd_upgrade RPC (from a thread, while the I/O goes on) on odd ones. Pass when, on top
 * of the checks above: the front-end's connection never closes (the same socket serves all
 * along, no reconnect), every cycle ends with one new worker running the file just installed
 * and reporting its version, no session was closed and no worker restarted. Three bad
 * candidates are tried half-way (--bad-binaries): one that exits at once, one that crashes
 * after reading the state, one that hangs; each upgrade must fail and the old worker must go
 * on serving. The I/O pause per upgrade (the longest gap between two completions while it
 * ran) is printed as p50/p99/max, with vhostd's own figure (the RPC's max_pause_ms).
 *
 * Usage: test_crash_soak [--cycles N] [--window-ms MS] [--max-delay-us US] [--qd N]
 *                        [--queues N] [--blocks N] [--seed S] [--json] [--verbose]
 *                        [--keep-log FILE]   (copy of the daemon's log, kept after the run)
 *                        [--log-level LEVEL] (vhostd -L, default info)
 *                        [--no-inflight]     negative control: the front-end does not
 *                                            negotiate INFLIGHT_SHMFD; the run must FAIL
 *                        [--upgrade] [--bad-binaries]  (needs $VHOSTD_ALT)
 *                        [--packed]          packed rings (packed_ring + packed_ring_recovery
 *                                            controller, VIRTIO_F_RING_PACKED acked): QEMU
 *                                            7.2 keeps a packed ring's stale base on
 *                                            reconnect, so only the inflight region (packed
 *                                            layout) can say where each ring resumes
 * $VHOSTD names the binary (77 = skip when missing). VH_TEST_SEED replays a seed.
 */
#include <endian.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vh_test.h"

#define BLK          4096u
#define SECT_PER_BLK (BLK / 512u)
#define MAGIC        0x314b414f53485243ull /* "CRHSOAK1" */
#define CSUM_OFF     (BLK - 8u)
#define MAX_QUEUES   8
#define REPLY_MS     15000 /* > the supervisor's largest restart backoff (5 s) */
#define FIRST_MS     15000 /* kill -> first new completion, at most */

struct soak;

struct ctx {
	struct vh_fe_req req;
	struct vh_fe_iov iov;
	struct soak *s;
	uint8_t *buf;
	unsigned int q;
	bool busy;
	bool read;
	uint64_t lba, gen, seq;
};

struct lat {
	uint64_t *ns;
	unsigned int n;
};

struct soak {
	/* options */
	unsigned int cycles, window_ms, max_delay_us, qd, nq;
	uint64_t nblocks, seed;
	bool json, verbose;
	const char *keep_log;
	bool no_inflight; /* negative control: a front-end without INFLIGHT_SHMFD must fail */
	bool packed;      /* packed rings and the packed inflight layout */
	const char *log_level;
	bool upgrade;            /* live upgrades instead of kills */
	bool bad_binaries;       /* with --upgrade: three broken candidates half-way */
	const char *builds[2];   /* $VHOSTD, $VHOSTD_ALT */
	char install[160];       /* <dir>/bin/vhostd: what the supervisor runs */
	char build_copy[2][160]; /* <dir>/bin/build-{0,1}: copies we link into place */
	const char *versions[2]; /* what each build reports */
	unsigned int installed;  /* which build is installed now */
	int fe_sock;             /* the front-end's socket at the start (must never change) */
	bool in_upgrade;         /* an upgrade runs: completion times are recorded */
	uint64_t *tl;            /* completion times during this upgrade */
	size_t ntl, tl_cap;
	unsigned int closed_before_end; /* "closing session" lines before our final disconnect */
	unsigned int bad_done;          /* bad candidates refused as they should be */
	struct lat pause, vh_pause;

	struct vh_daemon d;
	char conf[128], log[128], sock[128];
	char *conf_text;
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct ctx *ctx; /* qd of them; ctx i runs on queue i % nq */
	uint64_t rng;

	/* per block */
	uint64_t *last_gen; /* newest generation submitted */
	uint64_t *done_gen; /* newest generation completed */
	uint8_t *blk_busy;

	/* counters */
	uint64_t seq, submitted, completed, reads_done;
	uint64_t bad_status, bad_len, bad_cb, bad_used, lost, verify_err, verified;
	uint64_t ooo, cyc_ooo, cyc_done, cycles_no_ooo, resubmitted_seen;
	uint64_t last_done_ns; /* time of the most recent completion */
	uint64_t marked_total; /* heads marked in flight in the region, summed over kills */
	unsigned int marked_min;
	unsigned int cycles_done;
	struct lat recov, hs, eof;
	struct lat recov_order; /* recovery per kill, in kill order (recov gets sorted) */
};

/* ---------------------------------------------------------------------------------------- */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t
rnd(uint64_t *r)
{
	*r ^= *r >> 12;
	*r ^= *r << 25;
	*r ^= *r >> 27;
	return *r * 0x2545f4914f6cdd1dull;
}

static uint64_t
csum(const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull, w;

	for (size_t i = 0; i < len; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h;
}

static void
fill_block(uint8_t *b, uint64_t lba, uint64_t gen, uint64_t seq)
{
	uint64_t hdr[4] = {htole64(MAGIC), htole64(lba), htole64(gen), htole64(seq)};
	uint64_t r = (lba * 0x9e3779b97f4a7c15ull) ^ (gen << 17) ^ 0x1234567ull, c;

	memcpy(b, hdr, sizeof(hdr));
	for (size_t i = sizeof(hdr); i < CSUM_OFF; i += 8) {
		uint64_t v = rnd(&r);

		memcpy(b + i, &v, 8);
	}
	c = htole64(csum(b, CSUM_OFF));
	memcpy(b + CSUM_OFF, &c, 8);
}

static void
record(struct lat *l, uint64_t ns)
{
	l->ns[l->n++] = ns;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile in ms (sorts l). */
static double
pct_ms(struct lat *l, double p)
{
	unsigned int k;

	if (l->n == 0) {
		return 0;
	}
	qsort(l->ns, l->n, sizeof(l->ns[0]), cmp_u64);
	k = (unsigned int)(p / 100.0 * l->n + 0.999999);
	k = k ? k - 1 : 0;
	if (k >= l->n) {
		k = l->n - 1;
	}
	return (double)l->ns[k] / 1e6;
}

static double
mean_ms(const struct lat *l)
{
	double sum = 0;

	for (unsigned int i = 0; i < l->n; i++) {
		sum += (double)l->ns[i];
	}
	return l->n ? sum / l->n / 1e6 : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Daemon: config file, spawn with a log file, worker pid                                    */
/* ---------------------------------------------------------------------------------------- */

/* Atomically (re)write the config the next worker replays (the daemon's save drops the delay). */
static int
write_conf(struct soak *s)
{
	char tmp[160];
	size_t len = strlen(s->conf_text);
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.soak-tmp", s->conf);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		return -errno;
	}
	if (write(fd, s->conf_text, len) != (ssize_t)len) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return rename(tmp, s->conf) < 0 ? -errno : 0;
}

/*
 * The inflight region's layout (spec "Inflight I/O tracking"), per queue, 64-aligned. Split: a
 * 16-byte header {features u64, version u16, desc_num u16, last_batch_head u16, used_idx u16}
 * and desc_num 16-byte {inflight u8, pad[5], next u16, counter u64}. Packed: a 32-byte header
 * {features u64, version u16, desc_num u16, free_head u16, old_free_head u16, used_idx u16,
 * old_used_idx u16, used_wrap u8, old_used_wrap u8, pad[7]} and desc_num 32-byte entries
 * starting with the inflight byte.
 */
static uint64_t
region_hdr(const struct soak *s)
{
	return s->packed ? 32 : 16;
}

static uint64_t
region_entry(const struct soak *s)
{
	return s->packed ? 32 : 16;
}

static uint64_t
region_stride(const struct soak *s)
{
	return (region_hdr(s) + region_entry(s) * 128 + 63) & ~63ull;
}

/* The inflight region as the dead worker left it. */
static unsigned int
count_marked(struct soak *s, unsigned int cycle)
{
	uint64_t size;
	uint8_t *m = vh_fe_inflight_map(s->fe, &size);
	uint64_t stride = region_stride(s);
	unsigned int total = 0;

	if (!m) {
		return 0;
	}
	for (unsigned int q = 0; q < s->nq && (q + 1) * stride <= size; q++) {
		uint8_t *r = m + q * stride;
		uint16_t ver, num, f12, f14;
		struct vh_fe_vq *vq = vh_fe_vq(s->fe, q);
		unsigned int marked = 0;

		memcpy(&ver, r + 8, 2);
		memcpy(&num, r + 10, 2);
		memcpy(&f12, r + 12, 2);
		memcpy(&f14, r + 14, 2);
		for (unsigned int h = 0; h < num && h < 128; h++) {
			marked += r[region_hdr(s) + region_entry(s) * h] != 0;
		}
		total += marked;
		if (!s->verbose) {
			continue;
		}
		if (s->packed) {
			fprintf(stderr,
			        "cycle %u q%u after kill: driver at avail %u used %u; region: "
			        "version %u desc_num %u free_head %u old_free_head %u, %u chains "
			        "marked in flight\n",
			        cycle, q, vh_fe_vq_next_avail(vq), vh_fe_vq_next_used(vq), ver, num,
			        f12, f14, marked);
			continue;
		}
		fprintf(stderr,
		        "cycle %u q%u after kill: avail->idx %u used->idx %u; region: version %u "
		        "desc_num %u used_idx %u last_batch_head %u, %u heads marked in flight\n",
		        cycle, q, le16toh(vh_fe_vq_avail(vq)->idx),
		        le16toh(__atomic_load_n(&vh_fe_vq_used(vq)->idx, __ATOMIC_ACQUIRE)), ver,
		        num, f14, f12, marked);
	}
	return total;
}

/* Count lines of the daemon log containing `needle`. */
static unsigned int
log_count(const struct soak *s, const char *needle)
{
	char line[1024];
	unsigned int n = 0;
	FILE *f = fopen(s->log, "r");

	if (!f) {
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		n += strstr(line, needle) != NULL;
	}
	fclose(f);
	return n;
}

/*
 * Recovery minus the supervisor's deliberate restart delay: the i-th "restarting in N ms" line
 * belongs to the i-th kill. Shows what the restart path itself costs.
 */
static void
net_of_backoff(const struct soak *s, struct lat *net)
{
	char line[1024];
	unsigned int i = 0;
	FILE *f = fopen(s->log, "r");

	net->n = 0;
	if (!f) {
		return;
	}
	while (fgets(line, sizeof(line), f) && i < s->recov_order.n) {
		const char *p = strstr(line, "restarting in ");
		uint64_t ms, r;

		if (!p) {
			continue;
		}
		ms = strtoull(p + 14, NULL, 10);
		r = s->recov_order.ns[i++];
		net->ns[net->n++] = r > ms * 1000000ull ? r - ms * 1000000ull : 0;
	}
	fclose(f);
}

static void
log_tail(const struct soak *s, unsigned int lines)
{
	char cmd[256];

	fprintf(stderr, "---- last %u lines of %s ----\n", lines, s->log);
	fflush(stderr);
	snprintf(cmd, sizeof(cmd), "tail -n %u '%s' >&2", lines, s->log);
	if (system(cmd) != 0) {
		fprintf(stderr, "(tail failed)\n");
	}
	fprintf(stderr, "----\n");
}

static int
start_daemon(struct soak *s, const char *bin)
{
	char mask[16];
	const char *argv[] = {bin,           "--supervise", "-m",          "0x1", "-S",
	                      s->d.sock_dir, "-r",          s->d.rpc_path, "-c",  s->conf,
	                      "-L",          "info",        NULL};
	int rc, logfd, saved, saved_out;

	snprintf(mask, sizeof(mask), "0x1");
	rc = vh_daemon_mkdir(&s->d);
	if (rc < 0) {
		return rc;
	}
	argv[5] = s->d.sock_dir;
	argv[7] = s->d.rpc_path;
	argv[11] = s->log_level;
	if (s->upgrade) {
		/* The supervisor runs <dir>/bin/vhostd, which each upgrade replaces. */
		char dir[128];

		snprintf(dir, sizeof(dir), "%s/bin", s->d.dir);
		if (mkdir(dir, 0700) < 0) {
			return -errno;
		}
		for (int i = 0; i < 2; i++) {
			char cmd[512];

			snprintf(s->build_copy[i], sizeof(s->build_copy[i]), "%s/build-%d", dir, i);
			snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", s->builds[i], s->build_copy[i]);
			if (system(cmd) != 0) {
				return -EIO;
			}
		}
		snprintf(s->install, sizeof(s->install), "%s/vhostd", dir);
		if (link(s->build_copy[0], s->install) < 0) {
			return -errno;
		}
		s->installed = 0;
		argv[0] = s->install;
		/* Bad candidates must fail fast: phases wait 3 s instead of up to 2 min. */
		setenv("VHOSTD_UPGRADE_TIMEOUT_MS", "3000", 1);
	}
	snprintf(s->conf, sizeof(s->conf), "%s/vhostd.json", s->d.dir);
	snprintf(s->log, sizeof(s->log), "%s/vhostd.log", s->d.dir);
	snprintf(s->sock, sizeof(s->sock), "%s/vhost.0", s->d.dir);
	if (asprintf(&s->conf_text,
	             "{\"subsystems\": [\n"
	             " {\"subsystem\": \"bdev\", \"config\": [\n"
	             "  {\"method\": \"bdev_malloc_create\", \"params\": {\"name\": \"Malloc0\", "
	             "\"num_blocks\": %" PRIu64 ", \"block_size\": 512}},\n"
	             "  {\"method\": \"bdev_set_test_delay\", \"params\": {\"name\": \"Malloc0\", "
	             "\"max_delay_us\": %u}}]},\n"
	             " {\"subsystem\": \"vhost_blk\", \"config\": [\n"
	             "  {\"method\": \"vhost_create_blk_controller\", \"params\": {\"ctrlr\": "
	             "\"vhost.0\", \"dev_name\": \"Malloc0\", \"cpumask\": \"%s\", "
	             "\"packed_ring\": %s, \"packed_ring_recovery\": %s}}]}\n"
	             "]}\n",
	             s->nblocks * SECT_PER_BLK, s->max_delay_us, mask, s->packed ? "true" : "false",
	             s->packed ? "true" : "false") < 0) {
		return -ENOMEM;
	}
	rc = write_conf(s);
	if (rc < 0) {
		return rc;
	}
	/* The daemon inherits our stderr: point it at the log file for the spawn only. */
	logfd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0) {
		return -errno;
	}
	fflush(stderr);
	fflush(stdout);
	saved = dup(2);
	saved_out = dup(1);
	dup2(logfd, 2);
	dup2(logfd, 1);
	rc = vh_daemon_spawn(&s->d, argv, "vhost.0", 10000);
	dup2(saved, 2);
	dup2(saved_out, 1);
	close(saved);
	close(saved_out);
	close(logfd);
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* I/O                                                                                       */
/* ---------------------------------------------------------------------------------------- */

static void
done_cb(struct vh_fe_req *req, void *arg)
{
	struct ctx *c = arg;
	struct soak *s = c->s;

	if (!c->busy) {
		s->bad_cb++;
		fprintf(stderr, "FAIL: completion for idle request slot %u (seq %" PRIu64 ")\n",
		        (unsigned int)(c - s->ctx), c->seq);
		return;
	}
	c->busy = false;
	s->last_done_ns = now_ns();
	if (s->in_upgrade) {
		if (s->ntl == s->tl_cap) {
			size_t cap = s->tl_cap ? s->tl_cap * 2 : 65536;
			uint64_t *tl = realloc(s->tl, cap * sizeof(*tl));

			if (tl != NULL) {
				s->tl = tl;
				s->tl_cap = cap;
			}
		}
		if (s->ntl < s->tl_cap) {
			s->tl[s->ntl++] = s->last_done_ns;
		}
	}
	/* Out of order: an older request of the same queue is still in flight. */
	for (unsigned int i = c->q; i < s->qd; i += s->nq) {
		if (s->ctx[i].busy && s->ctx[i].seq < c->seq) {
			s->ooo++;
			s->cyc_ooo++;
			break;
		}
	}
	s->cyc_done++;
	if (req->status != VIRTIO_BLK_S_OK) {
		if (s->bad_status++ < 10) {
			fprintf(stderr, "FAIL: %s lba %" PRIu64 " gen %" PRIu64 ": status %u\n",
			        c->read ? "read" : "write", c->lba, c->gen, req->status);
		}
	}
	if (!c->read) {
		s->completed++;
		if (req->used_len != 1 && s->bad_len++ < 10) {
			fprintf(stderr, "FAIL: write lba %" PRIu64 ": used len %u, expected 1\n",
			        c->lba, req->used_len);
		}
		if (req->status == VIRTIO_BLK_S_OK) {
			s->done_gen[c->lba] = c->gen;
		}
		s->blk_busy[c->lba] = 0;
		return;
	}
	/* Read-back verification. */
	s->reads_done++;
	s->blk_busy[c->lba] = 0;
	if (req->status != VIRTIO_BLK_S_OK) {
		s->verify_err++;
		return;
	}
	{
		uint64_t hdr[4], sum, want_sum;
		uint64_t lba = c->lba, done = s->done_gen[lba], last = s->last_gen[lba];
		const char *why = NULL;
		uint64_t gen;

		memcpy(hdr, c->buf, sizeof(hdr));
		memcpy(&sum, c->buf + CSUM_OFF, 8);
		want_sum = csum(c->buf, CSUM_OFF);
		gen = le64toh(hdr[2]);
		if (le64toh(hdr[0]) != MAGIC) {
			why = "no header (block never written or overwritten with garbage)";
		} else if (le64toh(sum) != want_sum) {
			why = "checksum mismatch (torn or corrupt block)";
		} else if (le64toh(hdr[1]) != lba) {
			why = "block holds another LBA's data (misdirected write)";
		} else if (gen != done && !(last != done && gen == last)) {
			why = gen < done ? "stale generation (an older write landed after a newer "
			                   "one completed: re-executed after completion?)"
			                 : "unexpected generation";
		}
		s->verified++;
		if (why) {
			if (s->verify_err++ < 20) {
				fprintf(stderr,
				        "FAIL verify lba %" PRIu64 ": %s: holds gen %" PRIu64
				        " (seq %" PRIu64 "), newest completed gen %" PRIu64
				        ", newest submitted %" PRIu64 "\n",
				        lba, why, gen, le64toh(hdr[3]), done, last);
			}
		}
	}
}

/* Pick a block with no write in flight. */
static uint64_t
pick_block(struct soak *s)
{
	for (;;) {
		uint64_t lba = rnd(&s->rng) % s->nblocks;

		if (!s->blk_busy[lba]) {
			return lba;
		}
	}
}

static int
queue_write(struct soak *s, struct ctx *c)
{
	struct vh_fe_vq *vq = vh_fe_vq(s->fe, c->q);
	int rc;

	c->read = false;
	c->lba = pick_block(s);
	c->gen = s->last_gen[c->lba] + 1;
	c->seq = ++s->seq;
	fill_block(c->buf, c->lba, c->gen, c->seq);
	c->req.type = VIRTIO_BLK_T_OUT;
	c->req.sector = c->lba * SECT_PER_BLK;
	c->req.dir = VH_FE_DIR_AUTO;
	rc = vh_fe_req_queue(vq, &c->req);
	if (rc < 0) {
		return rc;
	}
	s->last_gen[c->lba] = c->gen;
	s->blk_busy[c->lba] = 1;
	c->busy = true;
	s->submitted++;
	return 0;
}

static int
queue_read(struct soak *s, struct ctx *c, uint64_t lba)
{
	int rc;

	c->read = true;
	c->lba = lba;
	c->gen = 0;
	c->seq = ++s->seq;
	memset(c->buf, 0xa5, BLK);
	c->req.type = VIRTIO_BLK_T_IN;
	c->req.sector = lba * SECT_PER_BLK;
	rc = vh_fe_req_queue(vh_fe_vq(s->fe, c->q), &c->req);
	if (rc < 0) {
		return rc;
	}
	s->blk_busy[lba] = 1;
	c->busy = true;
	return 0;
}

static int
flush_all(struct soak *s)
{
	for (unsigned int q = 0; q < s->nq; q++) {
		int rc = vh_fe_vq_flush(vh_fe_vq(s->fe, q));

		if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

/* Keep every slot busy with a write. */
static int
fill(struct soak *s)
{
	for (unsigned int i = 0; i < s->qd; i++) {
		if (!s->ctx[i].busy) {
			int rc = queue_write(s, &s->ctx[i]);

			if (rc < 0 && rc != -ENOSPC) {
				fprintf(stderr, "FAIL: queue write: %s\n", strerror(-rc));
				return rc;
			}
		}
	}
	return flush_all(s);
}

static int
reap(struct soak *s)
{
	int n = 0;

	for (unsigned int q = 0; q < s->nq; q++) {
		struct vh_fe_vq *vq = vh_fe_vq(s->fe, q);
		struct vh_fe_vq_stats st;
		int rc = vh_fe_vq_poll(vq, NULL, 0);

		if (rc < 0) {
			vh_fe_vq_stats(vq, &st);
			fprintf(stderr,
			        "FAIL: q%u: used ring holds an id that is not in flight (duplicate "
			        "or "
			        "bogus completion); bad_used now %" PRIu64 "\n",
			        q, st.bad_used);
			continue;
		}
		n += rc;
	}
	return n;
}

/* Interrupt mode: sleep on the call eventfds until something completes or timeout_ms. */
static void
wait_calls(struct soak *s, int timeout_ms)
{
	struct pollfd p[MAX_QUEUES];

	for (unsigned int q = 0; q < s->nq; q++) {
		if (vh_fe_vq_arm(vh_fe_vq(s->fe, q))) {
			return;
		}
		p[q] = (struct pollfd){.fd = vh_fe_vq_call_fd(vh_fe_vq(s->fe, q)),
		                       .events = POLLIN};
	}
	if (poll(p, s->nq, timeout_ms) > 0) {
		for (unsigned int q = 0; q < s->nq; q++) {
			if (p[q].revents & POLLIN) {
				vh_fe_vq_ack_call(vh_fe_vq(s->fe, q));
			}
		}
	}
}

static unsigned int
busy_count(const struct soak *s)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < s->qd; i++) {
		n += s->ctx[i].busy;
	}
	return n;
}

/* Heads marked in flight in the inflight region right now (what a kill would leave). */
static unsigned int
marked_now(struct soak *s)
{
	uint64_t size, stride = region_stride(s);
	const uint8_t *m = vh_fe_inflight_map(s->fe, &size);
	unsigned int n = 0;

	for (unsigned int q = 0; m && q < s->nq && (q + 1) * stride <= size; q++) {
		for (unsigned int h = 0; h < 128; h++) {
			n += __atomic_load_n(&m[q * stride + region_hdr(s) + region_entry(s) * h],
			                     __ATOMIC_RELAXED) != 0;
		}
	}
	return n;
}

/* Run QD-deep writes for `ms`. */
static int
io_for(struct soak *s, uint64_t ms)
{
	uint64_t end = now_ns() + ms * 1000000ull;

	for (;;) {
		reap(s);
		if (fill(s) < 0) {
			return -1;
		}
		if (now_ns() >= end) {
			break;
		}
		wait_calls(s, 1);
	}
	/*
	 * Land the kill while the back-end holds requests (at least one head marked in its
	 * inflight region), or the kill tests nothing but an idle restart. On a loaded machine the
	 * front-end and the back-end tend to run in lock step (all completed, all refilled, not
	 * fetched yet); keep the I/O going, at most 100 ms more, until that is not the case.
	 */
	end = now_ns() + (s->no_inflight ? 0 : 100000000ull);
	while (marked_now(s) == 0 && now_ns() < end) {
		struct timespec ts = {0, (long)(rnd(&s->rng) % 200000)};

		nanosleep(&ts, NULL);
		reap(s);
		if (fill(s) < 0) {
			return -1;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Kill and reconnect                                                                        */
/* ---------------------------------------------------------------------------------------- */

static int
kill_and_recover(struct soak *s, unsigned int cycle, uint64_t ms)
{
	uint64_t t_kill, t_eof, t_hs, t_first, deadline, done0;
	unsigned int marked;
	pid_t worker, next;
	int rc;

	/* Prepared before the I/O window, so nothing but I/O runs between it and the kill. */
	worker = vh_daemon_child(&s->d);
	T_CHECK(worker > 0, "cycle %u: no worker process under supervisor %d", cycle,
	        (int)s->d.pid);
	/* The worker's save_config dropped the delay: the replayed file must have it again. */
	T_OK(write_conf(s));
	if (io_for(s, ms) < 0) {
		return -1;
	}
	/*
	 * The delay must still hold completions out of order after the restarts (it is not in
	 * save_config; we re-write the file before each kill). Judged on the completions since
	 * the previous recovery began (or since the start).
	 */
	if (s->cyc_done >= 64 && s->cyc_ooo == 0) {
		s->cycles_no_ooo++;
		fprintf(stderr,
		        "FAIL cycle %u: %" PRIu64 " completions, none out of order: is the "
		        "test delay still in effect?\n",
		        cycle, s->cyc_done);
	}
	t_kill = now_ns();
	T_CHECK(kill(worker, SIGKILL) == 0, "kill %d: %s", (int)worker, strerror(errno));

	/* QEMU notices the dead back-end by the socket closing (CHR_EVENT_CLOSED). */
	rc = vh_fe_wait_closed(s->fe, 5000);
	T_CHECK(rc == 0, "cycle %u: connection not closed 5 s after killing worker %d: %s", cycle,
	        (int)worker, strerror(-rc));
	t_eof = now_ns();
	marked = count_marked(s, cycle);
	s->marked_total += marked;
	s->marked_min = cycle == 1 || marked < s->marked_min ? marked : s->marked_min;
	/* What the dead worker published is final: the guest reaps it (old completions). */
	reap(s);
	/* The guest keeps submitting into the rings while the device is away. */
	if (fill(s) < 0) {
		return -1;
	}
	done0 = s->completed;
	rc = vh_fe_reconnect(s->fe, REPLY_MS);
	if (rc < 0) {
		fprintf(stderr,
		        "FAIL cycle %u: reconnect (connect, handshake A, SET_INFLIGHT_FD, ring "
		        "start B) "
		        "after killing worker %d: %s\n",
		        cycle, (int)worker, strerror(-rc));
		log_tail(s, 30);
		return -1;
	}
	t_hs = now_ns();
	next = vh_daemon_child(&s->d);
	T_CHECK(next > 0 && next != worker, "cycle %u: worker after restart is %d (killed %d)",
	        cycle, (int)next, (int)worker);
	T_CHECK(s->no_inflight || vh_fe_inflight_fd(s->fe) >= 0,
	        "no inflight buffer: INFLIGHT_SHMFD not negotiated?");

	/* Recovery: kill -> the first completion of the new worker. */
	deadline = t_kill + FIRST_MS * 1000000ull;
	s->cyc_ooo = s->cyc_done = 0;
	while (s->completed == done0) {
		if (fill(s) < 0) {
			return -1;
		}
		reap(s);
		if (s->completed != done0) {
			break;
		}
		if (now_ns() > deadline) {
			fprintf(stderr,
			        "FAIL cycle %u: no completion %d ms after the kill (%u requests in "
			        "flight; new worker %d)\n",
			        cycle, FIRST_MS, busy_count(s), (int)next);
			log_tail(s, 30);
			return -1;
		}
		wait_calls(s, 1);
	}
	t_first = s->last_done_ns;
	record(&s->recov, t_first - t_kill);
	record(&s->recov_order, t_first - t_kill);
	record(&s->eof, t_eof - t_kill);
	record(&s->hs, t_hs - t_kill);
	if (s->verbose) {
		fprintf(stderr,
		        "cycle %u: killed %d -> EOF %.2f ms, handshake done %.2f ms, first "
		        "completion "
		        "%.2f ms (worker %d)\n",
		        cycle, (int)worker, (t_eof - t_kill) / 1e6, (t_hs - t_kill) / 1e6,
		        (t_first - t_kill) / 1e6, (int)next);
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Live upgrade                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* Replace the installed binary as a package manager does: a new file renamed over the path. */
static int
install(struct soak *s, const char *from)
{
	char tmp[200];

	snprintf(tmp, sizeof(tmp), "%s.new", s->install);
	unlink(tmp);
	if (link(from, tmp) < 0 || rename(tmp, s->install) < 0) {
		return -errno;
	}
	return 0;
}

/* Install a shell script as the binary (a bad candidate). */
static int
install_script(struct soak *s, const char *body)
{
	char tmp[200];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.new", s->install);
	unlink(tmp);
	f = fopen(tmp, "w");
	if (f == NULL) {
		return -errno;
	}
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	if (chmod(tmp, 0755) < 0 || rename(tmp, s->install) < 0) {
		return -errno;
	}
	return 0;
}

/* The supervisor's children right now (at most @max). */
static unsigned int
children(const struct soak *s, pid_t *out, unsigned int max)
{
	char path[64], buf[256];
	unsigned int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)s->d.pid, (int)s->d.pid);
	f = fopen(path, "r");
	if (f == NULL) {
		return 0;
	}
	if (fgets(buf, sizeof(buf), f) != NULL) {
		char *p = buf, *end;

		for (long v = strtol(p, &end, 10); end != p && n < max; v = strtol(p, &end, 10)) {
			out[n++] = (pid_t)v;
			p = end;
		}
	}
	fclose(f);
	return n;
}

/* Does @pid run the file installed now (same inode as <dir>/bin/vhostd)? */
static bool
runs_installed(const struct soak *s, pid_t pid)
{
	char exe[64];
	struct stat a, b;

	snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)pid);
	return stat(exe, &a) == 0 && stat(s->install, &b) == 0 && a.st_ino == b.st_ino &&
	       a.st_dev == b.st_dev;
}

struct rpc_job {
	struct soak *s;
	int rc;
	json_t *result;
	char msg[256];
	int done; /* atomic */
};

static void *
rpc_thread(void *arg)
{
	struct rpc_job *j = arg;
	int code = 0;

	j->rc = vh_rpc_call(j->s->d.rpc_path, "vhostd_upgrade", NULL, &j->result, &code, j->msg,
	                    sizeof(j->msg), 60000);
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Keep the I/O going until @job is done (or, without one, @until_ns). */
static int
io_until(struct soak *s, struct rpc_job *job, uint64_t until_ns)
{
	while (job != NULL ? !__atomic_load_n(&job->done, __ATOMIC_ACQUIRE) : now_ns() < until_ns) {
		reap(s);
		if (fill(s) < 0) {
			return -1;
		}
		wait_calls(s, 1);
	}
	return 0;
}

/* The front-end's connection must be the one it opened, and open. */
static int
check_connected(struct soak *s, unsigned int cycle)
{
	struct pollfd p = {.fd = vh_fe_sock(s->fe), .events = POLLIN};
	char b;

	T_CHECK(vh_fe_sock(s->fe) == s->fe_sock, "cycle %u: the front-end reconnected", cycle);
	if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLIN))) {
		T_CHECK(recv(p.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) != 0,
		        "cycle %u: the front-end saw its connection close", cycle);
	}
	/*
	 * And the worker reads it: a message after the switch gets its answer. (The new worker
	 * once left the adopted connection paused after its start-up sync: I/O flowed, but QEMU's
	 * next message, the GET_VRING_BASE of a guest shutdown, waited forever.)
	 */
	{
		uint64_t features = 0;
		int rc = vh_fe_call(s->fe, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0,
		                    NULL, 0, &features, sizeof(features));

		T_CHECK(rc == (int)sizeof(features) && features != 0,
		        "cycle %u: GET_FEATURES on the connection after the switch: %s", cycle,
		        rc < 0 ? strerror(-rc) : "bad reply");
	}
	return 0;
}

/* One upgrade to the other build, under I/O. */
static int
upgrade_cycle(struct soak *s, unsigned int cycle, uint64_t ms)
{
	unsigned int next = s->installed ^ 1;
	struct rpc_job job = {.s = s};
	pid_t old, kids[4], now_kid = 0;
	uint64_t t0, deadline;
	pthread_t th;
	bool by_rpc = cycle % 2 == 1;
	unsigned int n;

	T_CHECK(children(s, kids, 4) == 1, "cycle %u: not exactly one worker before", cycle);
	old = kids[0];
	T_OK(write_conf(s));
	if (io_for(s, ms) < 0) {
		return -1;
	}
	T_OK(install(s, s->build_copy[next]));
	s->ntl = 0;
	s->in_upgrade = true;
	t0 = now_ns();
	if (by_rpc) {
		T_CHECK(pthread_create(&th, NULL, rpc_thread, &job) == 0, "pthread_create");
		if (io_until(s, &job, 0) < 0) {
			pthread_join(th, NULL);
			return -1;
		}
		pthread_join(th, NULL);
		if (job.rc < 0) {
			fprintf(stderr, "FAIL cycle %u: vhostd_upgrade: %s (%s)\n", cycle,
			        strerror(-job.rc), job.msg);
			log_tail(s, 30);
			return -1;
		}
	} else {
		T_CHECK(kill(s->d.pid, SIGHUP) == 0, "SIGHUP: %s", strerror(errno));
	}
	/* Done when the old worker is gone and one new worker runs. */
	deadline = t0 + 30000000000ull;
	for (;;) {
		n = children(s, kids, 4);
		if (n == 1 && kids[0] != old) {
			now_kid = kids[0];
			break;
		}
		if (now_ns() > deadline) {
			fprintf(stderr, "FAIL cycle %u: after 30 s the supervisor's children are",
			        cycle);
			for (unsigned int i = 0; i < n; i++) {
				fprintf(stderr, " %d", (int)kids[i]);
			}
			fprintf(stderr, " (old worker %d)\n", (int)old);
			log_tail(s, 30);
			json_decref(job.result);
			return -1;
		}
		if (io_until(s, NULL, now_ns() + 2000000ull) < 0) {
			json_decref(job.result);
			return -1;
		}
	}
	/*
	 * The I/O pause: from the last completion before the new worker's queues ran to the
	 * first after (the new worker reports when that was, on the same CLOCK_MONOTONIC).
	 */
	{
		json_t *info = NULL;
		const json_t *st;
		uint64_t start_ns, before = 0, after = 0, until;

		T_OK(vh_rpc_call(s->d.rpc_path, "vhostd_get_upgrade_info", NULL, &info, NULL, NULL,
		                 0, 10000));
		st = json_object_get(info, "start_ns");
		T_CHECK(json_is_integer(st) &&
		                json_is_object(json_object_get(info, "upgraded_from")),
		        "cycle %u: the new worker does not say it was upgraded", cycle);
		start_ns = (uint64_t)json_integer_value(st);
		json_decref(info);
		/*
		 * I/O until the new worker's first completions are in: a few ms on a quiet host,
		 * longer when the host is loaded; 10 s without one is a failure below.
		 */
		until = now_ns() + 10000000000ull;
		while (now_ns() < until && (s->ntl == 0 || s->tl[s->ntl - 1] <= start_ns)) {
			if (io_until(s, NULL, now_ns() + 10000000ull) < 0) {
				json_decref(job.result);
				return -1;
			}
		}
		s->in_upgrade = false;
		for (size_t i = 0; i < s->ntl; i++) {
			if (s->tl[i] <= start_ns && s->tl[i] > before) {
				before = s->tl[i];
			}
			if (s->tl[i] > start_ns && (after == 0 || s->tl[i] < after)) {
				after = s->tl[i];
			}
		}
		T_CHECK(before != 0 && after != 0,
		        "cycle %u: no completions on both sides of the switch (%zu recorded)",
		        cycle, s->ntl);
		record(&s->pause, after - before);
		if (s->verbose) {
			fprintf(stderr, "cycle %u: I/O pause %.2f ms\n", cycle,
			        (after - before) / 1e6);
		}
	}
	T_CHECK(runs_installed(s, now_kid),
	        "cycle %u: worker %d does not run the binary installed at %s", cycle, (int)now_kid,
	        s->install);
	if (by_rpc) {
		const json_t *v = json_object_get(job.result, "new_version");
		const json_t *p = json_object_get(job.result, "max_pause_ms");
		const json_t *np = json_object_get(job.result, "new_pid");

		T_CHECK(json_is_string(v) && strcmp(json_string_value(v), s->versions[next]) == 0,
		        "cycle %u: new version %s, expected %s", cycle,
		        json_is_string(v) ? json_string_value(v) : "?", s->versions[next]);
		T_CHECK(json_is_integer(np) && json_integer_value(np) == now_kid,
		        "cycle %u: RPC says new pid %d, the worker is %d", cycle,
		        (int)json_integer_value(np), (int)now_kid);
		if (json_is_number(p)) {
			record(&s->vh_pause, (uint64_t)(json_number_value(p) * 1e6));
		}
		json_decref(job.result);
	} else {
		json_t *r = NULL;
		const char *v;

		T_OK(vh_rpc_call(s->d.rpc_path, "spdk_get_version", NULL, &r, NULL, NULL, 0,
		                 10000));
		v = json_string_value(json_object_get(r, "version"));
		T_CHECK(v != NULL && strncmp(v, "vhostd ", 7) == 0 &&
		                strcmp(v + 7, s->versions[next]) == 0,
		        "cycle %u: the new worker reports %s, expected vhostd %s", cycle,
		        v != NULL ? v : "?", s->versions[next]);
		json_decref(r);
	}
	s->installed = next;
	if (check_connected(s, cycle) < 0) {
		return -1;
	}
	if (s->verbose) {
		fprintf(stderr, "cycle %u: %s upgrade %d -> %d (%s)\n", cycle,
		        by_rpc ? "RPC" : "SIGHUP", (int)old, (int)now_kid, s->versions[next]);
	}
	return 0;
}

/* A broken candidate: the upgrade fails, the same worker serves on, I/O goes on. */
static int
bad_candidate(struct soak *s, const char *what, const char *script)
{
	struct rpc_job job = {.s = s};
	pid_t kids[4], old;
	uint64_t done0;
	pthread_t th;

	T_CHECK(children(s, kids, 4) == 1, "%s: not exactly one worker before", what);
	old = kids[0];
	T_OK(write_conf(s));
	T_OK(install_script(s, script));
	T_CHECK(pthread_create(&th, NULL, rpc_thread, &job) == 0, "pthread_create");
	if (io_until(s, &job, 0) < 0) {
		pthread_join(th, NULL);
		return -1;
	}
	pthread_join(th, NULL);
	json_decref(job.result);
	T_CHECK(job.rc == -EREMOTEIO, "%s: vhostd_upgrade should fail, got %s", what,
	        job.rc == 0 ? "success" : strerror(-job.rc));
	fprintf(stderr, "  bad candidate (%s): refused: %s\n", what, job.msg);
	/* The candidate is killed; the old worker alone serves on, and the I/O continues. */
	for (uint64_t end = now_ns() + 10000000000ull;;) {
		if (children(s, kids, 4) == 1 && kids[0] == old) {
			break;
		}
		T_CHECK(now_ns() < end, "%s: the candidate is still around 10 s later", what);
		if (io_until(s, NULL, now_ns() + 2000000ull) < 0) {
			return -1;
		}
	}
	done0 = s->completed;
	if (io_until(s, NULL, now_ns() + 200000000ull) < 0) {
		return -1;
	}
	T_CHECK(s->completed > done0, "%s: no I/O completed after the failed upgrade", what);
	T_OK(check_connected(s, 0));
	/* Put a good binary back for the next cycle. */
	T_OK(install(s, s->build_copy[s->installed]));
	s->bad_done++;
	return 0;
}

/*
 * A live migration in progress (dirty logging on) refuses an upgrade with a clear error, before
 * anything is frozen: the worker serves on, and upgrades work again once logging is off.
 */
static int
migration_refused(struct soak *s)
{
	struct rpc_job job = {.s = s};
	pid_t kids[4], old;
	uint64_t done0;
	pthread_t th;

	T_CHECK(children(s, kids, 4) == 1, "migration: not exactly one worker before");
	old = kids[0];
	T_OK(write_conf(s));
	T_OK(vh_fe_log_start(s->fe));
	T_CHECK(pthread_create(&th, NULL, rpc_thread, &job) == 0, "pthread_create");
	if (io_until(s, &job, 0) < 0) {
		pthread_join(th, NULL);
		return -1;
	}
	pthread_join(th, NULL);
	json_decref(job.result);
	T_CHECK(job.rc == -EREMOTEIO && strstr(job.msg, "live migration") != NULL,
	        "migration: vhostd_upgrade should be refused (live migration), got %s (%s)",
	        job.rc == 0 ? "success" : strerror(-job.rc), job.msg);
	fprintf(stderr, "  during a live migration: refused: %s\n", job.msg);
	for (uint64_t end = now_ns() + 10000000000ull;;) {
		if (children(s, kids, 4) == 1 && kids[0] == old) {
			break;
		}
		T_CHECK(now_ns() < end, "migration: the candidate is still around 10 s later");
		if (io_until(s, NULL, now_ns() + 2000000ull) < 0) {
			return -1;
		}
	}
	T_OK(vh_fe_log_stop(s->fe));
	done0 = s->completed;
	if (io_until(s, NULL, now_ns() + 200000000ull) < 0) {
		return -1;
	}
	T_CHECK(s->completed > done0, "migration: no I/O completed after the refused upgrade");
	return check_connected(s, 0);
}

static int
bad_binaries(struct soak *s)
{
	char crash[512], hang[512];

	snprintf(crash, sizeof(crash), "VHOSTD_TEST_UPGRADE_FAULT=state:crash exec '%s' \"$@\"",
	         s->build_copy[1]);
	snprintf(hang, sizeof(hang), "VHOSTD_TEST_UPGRADE_FAULT=state:hang exec '%s' \"$@\"",
	         s->build_copy[1]);
	if (bad_candidate(s, "exits at once", "exit 1") < 0 ||
	    bad_candidate(s, "crashes after reading the state", crash) < 0 ||
	    bad_candidate(s, "hangs after reading the state", hang) < 0 ||
	    migration_refused(s) < 0) {
		return -1;
	}
	return 0;
}

/* After the cycles: everything in flight must complete, exactly once. */
static int
drain(struct soak *s, int timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000ull;

	while (busy_count(s) && now_ns() < end) {
		reap(s);
		wait_calls(s, 5);
	}
	return busy_count(s) ? -1 : 0;
}

static unsigned int
reads_busy(const struct soak *s)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < s->qd; i++) {
		n += s->ctx[i].busy && s->ctx[i].read;
	}
	return n;
}

/* Read back every block ever written (QD-deep) and check it (done_cb). */
static int
verify_all(struct soak *s)
{
	uint64_t lba = 0, end = now_ns() + 30ull * 1000000000ull;

	for (;;) {
		for (unsigned int i = 0; i < s->qd && lba < s->nblocks; i++) {
			if (s->ctx[i].busy) {
				continue;
			}
			while (lba < s->nblocks && s->last_gen[lba] == 0) {
				lba++;
			}
			if (lba == s->nblocks) {
				break;
			}
			if (queue_read(s, &s->ctx[i], lba) < 0) {
				break;
			}
			lba++;
		}
		T_OK(flush_all(s));
		reap(s);
		if (lba == s->nblocks && reads_busy(s) == 0) {
			return 0;
		}
		T_CHECK(now_ns() < end, "read-back did not finish in 30 s (%u reads in flight)",
		        reads_busy(s));
		wait_calls(s, 5);
	}
}

/* ---------------------------------------------------------------------------------------- */

static int
setup_fe(struct soak *s)
{
	struct vh_fe_mem_opts mo = {.size = (uint64_t)(s->qd + 64) * BLK * 2 + (8u << 20)};
	struct vh_fe_opts fo = {
	        .path = s->sock,
	        .timeout_ms = REPLY_MS,
	        .num_queues = s->nq,
	        .queue_size = 128,
	        .inflight = !s->no_inflight,
	        .driver_features =
	                VH_FE_LINUX_FEATURES | (s->packed ? 1ull << VIRTIO_F_RING_PACKED : 0),
	        .log = s->upgrade, /* migration_refused() turns dirty logging on */
	};
	uint64_t cap;

	T_OK(vh_fe_mem_create(&s->mem, &mo));
	T_OK(vh_fe_create(&s->fe, s->mem, &fo));
	T_OK(vh_fe_connect(s->fe, 10000));
	T_OK(vh_fe_init(s->fe, true));
	T_CHECK(s->no_inflight || vh_fe_has(vh_fe_info(s->fe)->protocol,
	                                    VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD),
	        "back-end does not offer INFLIGHT_SHMFD (protocol features 0x%" PRIx64 ")",
	        vh_fe_info(s->fe)->backend_protocol);
	cap = vh_fe_cfg_u64(s->fe, VH_BLK_CFG_CAPACITY);
	T_CHECK(cap == s->nblocks * SECT_PER_BLK, "capacity %" PRIu64 " sectors, expected %" PRIu64,
	        cap, s->nblocks * SECT_PER_BLK);
	T_OK(vh_fe_start(s->fe, 0, 0));
	T_CHECK(s->no_inflight || vh_fe_inflight_fd(s->fe) >= 0, "GET_INFLIGHT_FD gave no buffer");
	T_CHECK(vh_fe_vq_is_packed(vh_fe_vq(s->fe, 0)) == s->packed, "rings are %s, expected %s",
	        vh_fe_vq_is_packed(vh_fe_vq(s->fe, 0)) ? "packed" : "split",
	        s->packed ? "packed" : "split");
	for (unsigned int q = 0; q < s->nq; q++) {
		struct vh_fe_vq *vq = vh_fe_vq(s->fe, q);

		vh_fe_vq_set_mode(vq, VH_FE_INTERRUPT);
		vh_fe_vq_seed(vq, s->seed + q);
	}
	s->ctx = calloc(s->qd, sizeof(*s->ctx));
	T_CHECK(s->ctx != NULL, "calloc");
	for (unsigned int i = 0; i < s->qd; i++) {
		struct ctx *c = &s->ctx[i];
		uint64_t gpa = vh_fe_mem_alloc(s->mem, BLK, BLK);

		T_CHECK(gpa != UINT64_MAX, "guest RAM exhausted");
		c->s = s;
		c->q = i % s->nq;
		c->buf = vh_fe_gpa_to_ptr(s->mem, gpa, BLK);
		c->iov = (struct vh_fe_iov){gpa, BLK};
		c->req.iov = &c->iov;
		c->req.niov = 1;
		/* Linux uses indirect tables: QD64 of 3-descriptor chains needs them on 128 slots.
		 */
		c->req.layout = VH_FE_L_INDIRECT;
		c->req.cb = done_cb;
		c->req.cb_arg = c;
	}
	return 0;
}

static int
check_rings(struct soak *s)
{
	int fails = 0;

	for (unsigned int q = 0; q < s->nq; q++) {
		struct vh_fe_vq *vq = vh_fe_vq(s->fe, q);
		struct vh_fe_vq_stats st;
		uint16_t used, avail;

		vh_fe_vq_stats(vq, &st);
		if (s->packed) {
			/* Every descriptor made available came back in a used descriptor, once. */
			used = vh_fe_vq_next_used(vq);
			avail = vh_fe_vq_next_avail(vq);
			if (st.bad_used || used != avail || st.submitted != st.completed) {
				fprintf(stderr,
				        "FAIL q%u: submitted %" PRIu64 ", completed %" PRIu64
				        ", bad/duplicate used descriptors %" PRIu64
				        ", driver at used %u, avail %u\n",
				        q, st.submitted, st.completed, st.bad_used, used, avail);
				fails++;
			}
			s->bad_used += st.bad_used;
			continue;
		}
		used = le16toh(__atomic_load_n(&vh_fe_vq_used(vq)->idx, __ATOMIC_ACQUIRE));
		avail = le16toh(vh_fe_vq_avail(vq)->idx);
		s->bad_used += st.bad_used;
		if (st.bad_used || used != avail || (uint16_t)st.submitted != used ||
		    st.submitted != st.completed) {
			fprintf(stderr,
			        "FAIL q%u: submitted %" PRIu64 ", completed %" PRIu64
			        ", bad/duplicate used elements %" PRIu64
			        ", used->idx %u, avail->idx %u\n",
			        q, st.submitted, st.completed, st.bad_used, used, avail);
			fails++;
		}
	}
	return fails ? -1 : 0;
}

static void
report(struct soak *s, bool pass, unsigned int restarts, unsigned int resub)
{
	double r50 = pct_ms(&s->recov, 50), r99 = pct_ms(&s->recov, 99),
	       rmax = pct_ms(&s->recov, 100);
	double h50 = pct_ms(&s->hs, 50), h99 = pct_ms(&s->hs, 99);
	double e50 = pct_ms(&s->eof, 50);
	struct lat net = {.ns = calloc(s->cycles, sizeof(uint64_t))};
	double n50, n99, nmax;

	if (net.ns) {
		net_of_backoff(s, &net);
	}
	n50 = pct_ms(&net, 50);
	n99 = pct_ms(&net, 99);
	nmax = pct_ms(&net, 100);

	fprintf(stderr,
	        "crash soak: %s\n"
	        "  kills survived: %u/%u (supervisor restarts logged: %u; queue resubmissions "
	        "logged: %u)\n"
	        "  writes: %" PRIu64 " submitted, %" PRIu64 " completed, %" PRIu64 " lost, %" PRIu64
	        " duplicate/bogus used, %" PRIu64 " double callbacks, %" PRIu64
	        " bad status, %" PRIu64 " bad used len\n"
	        "  in flight in the back-end at the kill (inflight region): mean %.1f, min %u\n"
	        "  out-of-order completions: %" PRIu64 " (cycles without any: %" PRIu64 ")\n"
	        "  verify: %" PRIu64 " blocks read back, %" PRIu64 " errors\n"
	        "  recovery (kill -> first new completion): p50 %.1f ms, p99 %.1f ms, max %.1f ms, "
	        "mean %.1f ms, min %.1f ms\n"
	        "  (kill -> EOF p50 %.2f ms; kill -> handshake+start done p50 %.1f ms, p99 %.1f "
	        "ms)\n"
	        "  recovery minus the supervisor's restart backoff: p50 %.1f ms, p99 %.1f ms, max "
	        "%.1f ms\n",
	        pass ? "PASS" : "FAIL", s->cycles_done, s->cycles, restarts, resub, s->submitted,
	        s->completed, s->lost, s->bad_used, s->bad_cb, s->bad_status, s->bad_len,
	        s->cycles_done ? (double)s->marked_total / s->cycles_done : 0.0, s->marked_min,
	        s->ooo, s->cycles_no_ooo, s->verified, s->verify_err, r50, r99, rmax,
	        mean_ms(&s->recov), pct_ms(&s->recov, 0), e50, h50, h99, n50, n99, nmax);
	if (s->json) {
		printf("{\"test\": \"crash_soak\", \"rings\": \"%s\", \"pass\": %s, \"seed\": "
		       "%" PRIu64 ", \"cycles\": %u, \"kills_survived\": %u, \"restarts\": %u, "
		       "\"resubmissions\": %u"
		       ", \"qd\": %u, \"queues\": %u, \"window_ms\": %u, \"max_delay_us\": %u"
		       ", \"writes_submitted\": %" PRIu64 ", \"writes_completed\": %" PRIu64
		       ", \"lost\": %" PRIu64 ", \"duplicates\": %" PRIu64
		       ", \"bad_status\": %" PRIu64
		       ", \"inflight_at_kill_mean\": %.1f, \"inflight_at_kill_min\": %u"
		       ", \"out_of_order\": %" PRIu64 ", \"blocks_verified\": %" PRIu64
		       ", \"verify_errors\": %" PRIu64 ", \"errors\": %" PRIu64
		       ", \"recovery_ms\": {\"p50\": %.2f, \"p99\": %.2f, \"max\": %.2f, \"mean\": "
		       "%.2f"
		       ", \"min\": %.2f}, \"handshake_ms\": {\"p50\": %.2f, \"p99\": %.2f}"
		       ", \"recovery_minus_backoff_ms\": {\"p50\": %.2f, \"p99\": %.2f, \"max\": "
		       "%.2f}}\n",
		       s->packed ? "packed" : "split", pass ? "true" : "false", s->seed, s->cycles,
		       s->cycles_done, restarts, resub, s->qd, s->nq, s->window_ms, s->max_delay_us,
		       s->submitted, s->completed, s->lost, s->bad_used + s->bad_cb, s->bad_status,
		       s->cycles_done ? (double)s->marked_total / s->cycles_done : 0.0,
		       s->marked_min, s->ooo, s->verified, s->verify_err,
		       s->lost + s->bad_used + s->bad_cb + s->bad_status + s->bad_len +
		               s->verify_err,
		       r50, r99, rmax, mean_ms(&s->recov), pct_ms(&s->recov, 0), h50, h99, n50, n99,
		       nmax);
		fflush(stdout);
	}
	free(net.ns);
}

static void
usage(void)
{
	fprintf(stderr, "usage: test_crash_soak [--cycles N] [--window-ms MS] [--max-delay-us US] "
	                "[--qd N] [--queues N] [--blocks N] [--seed S] [--json] [--verbose] "
	                "[--keep-log FILE] [--log-level LEVEL] [--no-inflight] [--packed]\n");
}

static int
parse(struct soak *s, int argc, char **argv)
{
	static const struct option lo[] = {
	        {"cycles", required_argument, NULL, 'n'},
	        {"window-ms", required_argument, NULL, 'w'},
	        {"max-delay-us", required_argument, NULL, 'd'},
	        {"qd", required_argument, NULL, 'q'},
	        {"queues", required_argument, NULL, 'Q'},
	        {"blocks", required_argument, NULL, 'b'},
	        {"seed", required_argument, NULL, 's'},
	        {"json", no_argument, NULL, 'j'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"keep-log", required_argument, NULL, 'k'},
	        {"no-inflight", no_argument, NULL, 'N'},
	        {"packed", no_argument, NULL, 'P'},
	        {"log-level", required_argument, NULL, 'L'},
	        {"upgrade", no_argument, NULL, 'U'},
	        {"bad-binaries", no_argument, NULL, 'B'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int o;

	s->cycles = 20;
	s->window_ms = 200;
	s->max_delay_us = 500;
	s->qd = 128;
	s->nq = 2;
	s->nblocks = 16384; /* 64 MiB */
	s->log_level = "info";
	while ((o = getopt_long(argc, argv, "n:w:d:q:Q:b:s:jvh", lo, NULL)) != -1) {
		switch (o) {
		case 'n':
			s->cycles = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 'w':
			s->window_ms = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 'd':
			s->max_delay_us = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 'q':
			s->qd = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 'Q':
			s->nq = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 'b':
			s->nblocks = strtoull(optarg, NULL, 0);
			break;
		case 's':
			s->seed = strtoull(optarg, NULL, 0);
			break;
		case 'j':
			s->json = true;
			break;
		case 'v':
			s->verbose = true;
			break;
		case 'k':
			s->keep_log = optarg;
			break;
		case 'N':
			s->no_inflight = true;
			break;
		case 'P':
			s->packed = true;
			break;
		case 'L':
			s->log_level = optarg;
			break;
		case 'U':
			s->upgrade = true;
			break;
		case 'B':
			s->bad_binaries = true;
			break;
		default:
			usage();
			return -1;
		}
	}
	if (s->nq == 0 || s->nq > MAX_QUEUES || s->qd < s->nq || s->qd / s->nq > 128 ||
	    s->nblocks < 2ull * s->qd || s->cycles == 0) {
		fprintf(stderr,
		        "bad options: queues 1..%u, qd >= queues, qd/queues <= 128, "
		        "blocks >= 2*qd, cycles >= 1\n",
		        MAX_QUEUES);
		return -1;
	}
	if (!s->seed) {
		s->seed = vh_test_seed("test_crash_soak");
	} else {
		fprintf(stderr, "test_crash_soak: seed 0x%" PRIx64 "\n", s->seed);
	}
	return 0;
}

static int
soak(struct soak *s)
{
	for (unsigned int c = 1; c <= s->cycles; c++) {
		uint64_t ms = rnd(&s->rng) % (s->window_ms + 1);

		if (s->upgrade ? upgrade_cycle(s, c, ms) < 0 : kill_and_recover(s, c, ms) < 0) {
			return -1;
		}
		s->cycles_done = c;
		if (!s->verbose && (c % 20 == 0 || c == s->cycles)) {
			fprintf(stderr, "  %u/%u %s, %" PRIu64 " writes completed\n", c, s->cycles,
			        s->upgrade ? "upgrades" : "kills", s->completed);
		}
		if (s->upgrade && s->bad_binaries && c == (s->cycles + 1) / 2 &&
		    bad_binaries(s) < 0) {
			return -1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct soak s = {0};
	const char *bin = getenv("VHOSTD");
	unsigned int restarts, resub;
	bool pass;
	int rc, st;

	signal(SIGPIPE, SIG_IGN);
	if (parse(&s, argc, argv) < 0) {
		return 2;
	}
	if (!bin || access(bin, X_OK) != 0) {
		fprintf(stderr, "SKIP: $VHOSTD not set or not executable\n");
		return VH_TEST_SKIP;
	}
	if (s.upgrade) {
		s.builds[0] = bin;
		s.builds[1] = getenv("VHOSTD_ALT");
		if (s.builds[1] == NULL || access(s.builds[1], X_OK) != 0) {
			fprintf(stderr, "SKIP: --upgrade needs $VHOSTD_ALT (the +alt build)\n");
			return VH_TEST_SKIP;
		}
		s.versions[0] = getenv("VHOSTD_VERSION") ?: "0.1.0";
		s.versions[1] = getenv("VHOSTD_ALT_VERSION") ?: "0.1.0+alt";
		s.pause.ns = calloc(s.cycles, sizeof(uint64_t));
		s.vh_pause.ns = calloc(s.cycles, sizeof(uint64_t));
		if (!s.pause.ns || !s.vh_pause.ns) {
			return VH_TEST_FAIL;
		}
	}
	s.rng = s.seed | 1;
	s.last_gen = calloc(s.nblocks, sizeof(uint64_t));
	s.done_gen = calloc(s.nblocks, sizeof(uint64_t));
	s.blk_busy = calloc(s.nblocks, 1);
	s.recov.ns = calloc(s.cycles, sizeof(uint64_t));
	s.hs.ns = calloc(s.cycles, sizeof(uint64_t));
	s.eof.ns = calloc(s.cycles, sizeof(uint64_t));
	s.recov_order.ns = calloc(s.cycles, sizeof(uint64_t));
	if (!s.last_gen || !s.done_gen || !s.blk_busy || !s.recov.ns || !s.hs.ns || !s.eof.ns ||
	    !s.recov_order.ns) {
		return VH_TEST_FAIL;
	}
	rc = start_daemon(&s, bin);
	if (rc < 0) {
		fprintf(stderr, "FAIL: vhostd --supervise did not come up: %s\n", strerror(-rc));
		if (s.log[0]) {
			log_tail(&s, 30);
		}
		vh_daemon_stop(&s.d, 2000);
		return VH_TEST_FAIL;
	}
	fprintf(stderr,
	        "crash soak: %u %s, QD%u random 4 KiB writes over %u %s queues, %" PRIu64
	        " blocks, completions delayed 0..%u us, %s after 0..%u ms of I/O\n",
	        s.cycles, s.upgrade ? "live upgrades" : "kills", s.qd, s.nq,
	        s.packed ? "packed" : "split", s.nblocks, s.max_delay_us,
	        s.upgrade ? "upgrade" : "kill", s.window_ms);
	rc = setup_fe(&s);
	s.fe_sock = s.fe ? vh_fe_sock(s.fe) : -1;
	if (rc == 0) {
		rc = soak(&s);
	}
	if (rc == 0) {
		/* Let the newest worker finish, then everything must have completed exactly once.
		 */
		if (drain(&s, 15000) < 0) {
			s.lost = busy_count(&s);
			fprintf(stderr, "FAIL: %" PRIu64 " requests never completed (lost)\n",
			        s.lost);
			for (unsigned int i = 0, shown = 0; i < s.qd && shown < 10; i++) {
				if (s.ctx[i].busy) {
					fprintf(stderr,
					        "  lost: q%u head %u lba %" PRIu64 " gen %" PRIu64
					        " seq %" PRIu64 "\n",
					        s.ctx[i].q, s.ctx[i].req.head, s.ctx[i].lba,
					        s.ctx[i].gen, s.ctx[i].seq);
					shown++;
				}
			}
			rc = -1;
		}
		if (check_rings(&s) < 0) {
			rc = -1;
		}
		/* Blocks whose last write was lost may hold the old or the new generation. */
		if (verify_all(&s) < 0) {
			rc = -1;
		}
	}
	s.closed_before_end = log_count(&s, "closing session");
	if (s.fe) {
		vh_fe_disconnect(s.fe);
	}
	restarts = log_count(&s, "restarting in");
	resub = log_count(&s, "resubmitting");
	if (s.upgrade) {
		unsigned int handed = log_count(&s, "handed over to worker");
		unsigned int closed = s.closed_before_end;

		pass = rc == 0 && s.lost == 0 && s.bad_used == 0 && s.bad_cb == 0 &&
		       s.bad_status == 0 && s.bad_len == 0 && s.verify_err == 0 &&
		       s.cycles_no_ooo == 0 && s.cycles_done == s.cycles && restarts == 0 &&
		       handed == s.cycles && closed == 0 && resub == 0 &&
		       s.bad_done == (s.bad_binaries ? 3u : 0u);
		if (rc == 0 && (restarts != 0 || handed != s.cycles || closed != 0 || resub != 0)) {
			fprintf(stderr,
			        "FAIL: %u upgrades: the supervisor logged %u hand-overs and %u "
			        "restarts; %u sessions closed, %u resubmissions\n",
			        s.cycles, handed, restarts, closed, resub);
		}
		if (!pass) {
			log_tail(&s, 40);
		}
		fprintf(stderr,
		        "live upgrade soak: %s\n"
		        "  upgrades: %u/%u (builds alternating %s / %s), bad candidates refused: "
		        "%u\n"
		        "  writes: %" PRIu64 " submitted, %" PRIu64 " completed, %" PRIu64
		        " lost, %" PRIu64 " duplicate/bogus used, %" PRIu64 " bad status\n"
		        "  verify: %" PRIu64 " blocks read back, %" PRIu64 " errors; out-of-order "
		        "completions %" PRIu64 "\n"
		        "  I/O pause per upgrade (front-end: last completion before the new worker "
		        "ran "
		        "to the first after): p50 "
		        "%.2f ms, p99 %.2f ms, max %.2f ms\n"
		        "  vhostd's own figure (RPC cycles, longest queue stop->start): p50 %.2f "
		        "ms, p99 %.2f ms, max %.2f ms\n",
		        pass ? "PASS" : "FAIL", s.cycles_done, s.cycles, s.versions[0],
		        s.versions[1], s.bad_done, s.submitted, s.completed, s.lost,
		        s.bad_used + s.bad_cb, s.bad_status, s.verified, s.verify_err, s.ooo,
		        pct_ms(&s.pause, 50), pct_ms(&s.pause, 99), pct_ms(&s.pause, 100),
		        pct_ms(&s.vh_pause, 50), pct_ms(&s.vh_pause, 99), pct_ms(&s.vh_pause, 100));
		if (s.json) {
			printf("{\"test\": \"upgrade_soak\", \"pass\": %s, \"seed\": %" PRIu64
			       ", \"upgrades\": %u, \"bad_candidates_refused\": %u, \"qd\": %u, "
			       "\"queues\": %u, \"writes_completed\": %" PRIu64
			       ", \"lost\": %" PRIu64 ", \"duplicates\": %" PRIu64
			       ", \"verify_errors\": %" PRIu64
			       ", \"pause_ms\": {\"p50\": %.2f, \"p99\": %.2f, \"max\": %.2f}"
			       ", \"vhostd_pause_ms\": {\"p50\": %.2f, \"p99\": %.2f, \"max\": "
			       "%.2f}}\n",
			       pass ? "true" : "false", s.seed, s.cycles_done, s.bad_done, s.qd,
			       s.nq, s.completed, s.lost, s.bad_used + s.bad_cb, s.verify_err,
			       pct_ms(&s.pause, 50), pct_ms(&s.pause, 99), pct_ms(&s.pause, 100),
			       pct_ms(&s.vh_pause, 50), pct_ms(&s.vh_pause, 99),
			       pct_ms(&s.vh_pause, 100));
			fflush(stdout);
		}
	} else {
		pass = rc == 0 && s.lost == 0 && s.bad_used == 0 && s.bad_cb == 0 &&
		       s.bad_status == 0 && s.bad_len == 0 && s.verify_err == 0 &&
		       s.cycles_no_ooo == 0 && s.cycles_done == s.cycles && restarts == s.cycles;
		if (rc == 0 && restarts != s.cycles) {
			fprintf(stderr, "FAIL: %u kills but the supervisor logged %u restarts\n",
			        s.cycles, restarts);
		}
		if (!pass) {
			log_tail(&s, 40);
		}
		report(&s, pass, restarts, resub);
	}
	vh_fe_destroy(s.fe);
	vh_fe_mem_destroy(s.mem);
	if (s.keep_log) {
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", s.log, s.keep_log);
		if (system(cmd) != 0) {
			fprintf(stderr, "could not copy the daemon log to %s\n", s.keep_log);
		}
	}
	st = vh_daemon_stop(&s.d, 5000);
	if (st != 0) {
		fprintf(stderr, "note: supervisor exit status 0x%x after SIGTERM\n", st);
	}
	/* Freed so LeakSanitizer in the CI build reports only real leaks. */
	free(s.ctx);
	free(s.last_gen);
	free(s.done_gen);
	free(s.blk_busy);
	free(s.recov.ns);
	free(s.hs.ns);
	free(s.eof.ns);
	free(s.recov_order.ns);
	free(s.pause.ns);
	free(s.tl);
	free(s.vh_pause.ns);
	free(s.conf_text);
	return pass ? VH_TEST_PASS : VH_TEST_FAIL;
}
