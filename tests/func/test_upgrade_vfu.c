/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live upgrade with a connected vfio-user NVMe client. QEMU's vfio-user client cannot
 * reconnect, so the session is handed over: the connection, DMA regions, doorbell page,
 * interrupt eventfds, registers, queues and the outstanding Asynchronous Event Request move to
 * the new worker, and the client sees a pause, never a disconnect.
 *
 *   - N upgrades (--cycles, default 20), alternating between two builds ($VHOSTD and
 *     $VHOSTD_ALT when there is one), while verified random I/O (reads, writes, FUA, write
 *     zeroes, deallocate, flush, PRPs and SGLs) runs on 4 I/O queues and two namespaces;
 *     every upgrade must succeed and run the newly installed build;
 *   - three broken candidates (exits at once, crashes after reading the state, hangs after
 *     reading it): each upgrade fails, the old worker serves on, the I/O goes on;
 *   - half-way, the client has sent part of a message (REGION_READ of CAP) when the upgrade
 *     starts and the rest after it: the new worker answers it;
 *   - afterwards: the AER the client left outstanding before the first upgrade completes when a
 *     namespace is added; a DMA_MAP and DMA_UNMAP are answered; every namespace reads back as
 *     the model says.
 * Before the hand-over existed the upgrade was refused while a client was connected.
 * Prints the I/O pause the upgrade reported (max_pause_ms) as p50 / p99 / max; no timing is
 * asserted.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vfu/protocol.h"
#include "vfu_client.h"
#include "vfu_io.h"
#include "vfu_test.h"
#include "vh_test.h"

#define NQ         4
#define MAX_CYCLES 400

struct job {
	const char *rpc_path;
	int rc;
	char msg[512];
	json_t *result;
	int done;
};

static void *
upgrade_thread(void *arg)
{
	struct job *j = arg;
	int code = 0;

	j->rc = vh_rpc_call(j->rpc_path, "vhostd_upgrade", NULL, &j->result, &code, j->msg,
	                    sizeof(j->msg), 60000);
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * Run verified I/O until @j is done (the upgrade returned). *longest (if set) gets the longest
 * batch of 64 commands (submitted and completed, about 16 per queue in flight) took: the client's
 * own bound on the pause it saw, since no batch spans two upgrades.
 */
static int
io_during(struct vio *v, struct job *j, double *longest)
{
	pthread_t th;
	int rc = 0;

	j->done = 0;
	j->result = NULL;
	j->msg[0] = '\0';
	if (longest != NULL) {
		*longest = 0;
	}
	T_CHECK(pthread_create(&th, NULL, upgrade_thread, j) == 0, "pthread_create");
	while (!__atomic_load_n(&j->done, __ATOMIC_ACQUIRE) && rc == 0) {
		double t0 = now_ms();

		rc = vio_run(v, 64, 30000);
		if (longest != NULL && now_ms() - t0 > *longest) {
			*longest = now_ms() - t0;
		}
	}
	pthread_join(th, NULL);
	T_CHECK(rc == 0, "verified I/O failed during an upgrade");
	return 0;
}

/* Replace the installed binary as a package manager does: a new file renamed over the path. */
static int
install(const char *path, const char *from, const char *script)
{
	char tmp[256];

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	unlink(tmp);
	if (script != NULL) {
		FILE *f = fopen(tmp, "w");

		if (f == NULL) {
			return -errno;
		}
		fprintf(f, "#!/bin/sh\n%s\n", script);
		fclose(f);
		if (chmod(tmp, 0755) < 0) {
			return -errno;
		}
	} else if (link(from, tmp) < 0) {
		/* Another filesystem: copy. */
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, tmp);
		if (system(cmd) != 0) {
			return -EIO;
		}
	}
	return rename(tmp, path) < 0 ? -errno : 0;
}

/* How many workers the supervisor has right now. */
static unsigned
nworkers(const struct vh_daemon *d)
{
	char path[64], buf[256];
	unsigned n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)d->pid, (int)d->pid);
	f = fopen(path, "r");
	if (f == NULL) {
		return 0;
	}
	if (fgets(buf, sizeof(buf), f) != NULL) {
		for (char *p = strtok(buf, " \n"); p != NULL; p = strtok(NULL, " \n")) {
			n++;
		}
	}
	fclose(f);
	return n;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct ctx {
	struct vfu_target t;
	char install[256];
	const char *bin[2];
	const char *version[2];
	unsigned cycles;
};

/* A REGION_READ of CAP (8 bytes of BAR0), as bytes on the wire. */
static size_t
cap_read_msg(struct vfu_client *c, uint8_t *buf)
{
	struct vfio_user_header h = {
	        .msg_id = c->next_id++,
	        .cmd = VFIO_USER_REGION_READ,
	        .msg_size = sizeof(h) + sizeof(struct vfio_user_region_access),
	};
	struct vfio_user_region_access a = {.offset = 0, .region = 0, .count = 8};

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &a, sizeof(a));
	return sizeof(h) + sizeof(a);
}

/* The rest of the split message, and its answer from the new worker. */
static int
finish_split(struct vfu_client *c, const uint8_t *msg, size_t len, size_t sent, uint64_t cap)
{
	uint8_t reply[sizeof(struct vfio_user_region_access) + 8];
	size_t rlen = 0;
	uint64_t got;
	int err = 0;

	T_OK(vc_send_raw(c, msg + sent, len - sent, NULL, 0));
	T_OK(vc_recv_reply(c, VFIO_USER_REGION_READ, reply, sizeof(reply), &rlen, &err, NULL));
	T_CHECK(err == 0 && rlen == sizeof(reply), "split REGION_READ: error %d, %zu bytes", err,
	        rlen);
	memcpy(&got, reply + sizeof(struct vfio_user_region_access), 8);
	T_CHECK(got == cap, "split REGION_READ: CAP 0x%llx, expected 0x%llx",
	        (unsigned long long)got, (unsigned long long)cap);
	return 0;
}

static int
upgrades(struct ctx *x, struct vfu_client *c, struct vio *v)
{
	static double pause[MAX_CYCLES], seen[MAX_CYCLES];
	struct job j = {.rpc_path = x->t.d.rpc_path};
	pid_t prev = vh_daemon_child(&x->t.d);
	uint8_t split[64];
	size_t split_len = 0;
	uint64_t cap = 0;

	double base[21];

	/* The same batches with no upgrade, for scale. */
	for (unsigned i = 0; i < 21; i++) {
		double t0 = now_ms();

		T_OK(vio_run(v, 64, 30000));
		base[i] = now_ms() - t0;
	}
	qsort(base, 21, sizeof(base[0]), cmp_double);
	T_OK(vc_region_read(c, 0, 0, &cap, 8));
	for (unsigned i = 0; i < x->cycles; i++) {
		unsigned b = (i + 1) % 2;
		const char *ver;
		pid_t w;

		T_OK(install(x->install, x->bin[b], NULL));
		if (i == x->cycles / 2) {
			/* The header and 4 bytes of the payload: the old worker reads them. */
			split_len = cap_read_msg(c, split);
			T_OK(vc_send_raw(c, split, 20, NULL, 0));
		}
		T_OK(io_during(v, &j, &seen[i]));
		if (split_len != 0) {
			T_OK(finish_split(c, split, split_len, 20, cap));
			split_len = 0;
		}
		if (j.rc != 0) {
			fprintf(stderr, "FAIL upgrade %u: %s (%s)\n", i + 1, strerror(-j.rc),
			        j.msg);
			return -1;
		}
		w = (pid_t)json_integer_value(json_object_get(j.result, "new_pid"));
		ver = json_string_value(json_object_get(j.result, "new_version"));
		pause[i] = json_real_value(json_object_get(j.result, "max_pause_ms"));
		T_CHECK(w > 0 && w != prev, "upgrade %u: new_pid %d, old %d", i + 1, (int)w,
		        (int)prev);
		T_CHECK(ver != NULL && strcmp(ver, x->version[b]) == 0,
		        "upgrade %u: the new worker runs %s, %s was installed", i + 1,
		        ver != NULL ? ver : "?", x->version[b]);
		json_decref(j.result);
		prev = w;
		/*
		 * The old worker exits after answering, about a second later: keep the I/O going
		 * meanwhile. Bounded by time, not by rounds of I/O: under TSan 500 rounds took less
		 * than that second, and the check below failed with both workers alive.
		 */
		for (double t0 = now_ms();
		     now_ms() - t0 < 15000 &&
		     (nworkers(&x->t.d) != 1 || vh_daemon_child(&x->t.d) != w);) {
			T_OK(vio_run(v, 16, 30000));
		}
		T_CHECK(vh_daemon_child(&x->t.d) == w,
		        "upgrade %u: worker %d is not the new one %d", i + 1,
		        (int)vh_daemon_child(&x->t.d), (int)w);
	}
	qsort(pause, x->cycles, sizeof(pause[0]), cmp_double);
	qsort(seen, x->cycles, sizeof(seen[0]), cmp_double);
	printf("vfio-user upgrades: %u under verified I/O on %u queues; pause (max_pause_ms) p50 "
	       "%.2f ms, p99 %.2f ms, max %.2f ms; longest 64-command batch the client saw per "
	       "upgrade p50 %.2f ms, p99 %.2f ms, max %.2f ms (%.2f ms without an upgrade); I/Os "
	       "%llu, errors %llu, mismatches %llu\n",
	       x->cycles, NQ, pause[x->cycles / 2], pause[(x->cycles * 99) / 100],
	       pause[x->cycles - 1], seen[x->cycles / 2], seen[(x->cycles * 99) / 100],
	       seen[x->cycles - 1], base[10], (unsigned long long)v->done,
	       (unsigned long long)v->errors, (unsigned long long)v->mismatches);
	return 0;
}

static int
bad_candidate(struct ctx *x, struct vio *v, const char *what, const char *script)
{
	struct job j = {.rpc_path = x->t.d.rpc_path};
	pid_t old = vh_daemon_child(&x->t.d);
	uint64_t done0;

	T_OK(install(x->install, NULL, script));
	T_OK(io_during(v, &j, NULL));
	json_decref(j.result);
	T_CHECK(j.rc == -EREMOTEIO, "%s: vhostd_upgrade should fail, got %s", what,
	        j.rc == 0 ? "success" : strerror(-j.rc));
	printf("bad candidate (%s): refused: %s\n", what, j.msg);
	/* The refused candidate exits: I/O meanwhile, bounded by time as in upgrades(). */
	for (double t0 = now_ms(); now_ms() - t0 < 15000 && nworkers(&x->t.d) != 1;) {
		T_OK(vio_run(v, 16, 30000));
	}
	T_CHECK(nworkers(&x->t.d) == 1 && vh_daemon_child(&x->t.d) == old,
	        "%s: the old worker is not the only one", what);
	done0 = v->done;
	T_OK(vio_run(v, 500, 30000));
	T_CHECK(v->done > done0, "%s: no I/O after the failed upgrade", what);
	return install(x->install, x->bin[0], NULL);
}

/* One upgrade with no I/O running (the client waits for it). */
static int
idle_upgrade(struct ctx *x, const char *what)
{
	struct job j = {.rpc_path = x->t.d.rpc_path};

	upgrade_thread(&j);
	json_decref(j.result);
	T_CHECK(j.rc == 0, "upgrade %s: %s (%s)", what, strerror(-j.rc), j.msg);
	return 0;
}

static int
admin(struct vfu_client *c, uint8_t opc, uint32_t cdw10, uint32_t cdw11, uint32_t *dw0)
{
	struct vh_nvme_sqe cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = opc;
	cmd.cdw10 = cdw10;
	cmd.cdw11 = cdw11;
	return vc_cmd(c, 0, &cmd, dw0, 5000);
}

static int
run(struct ctx *x)
{
	struct vfu_client c;
	struct vio *v = calloc(1, sizeof(*v));
	struct vh_nvme_sqe aer;
	char crash[600], hang[600];
	uint32_t dw0 = 0;
	int cid, st, mfd;

	T_CHECK(v != NULL, "out of memory");
	T_OK(vfu_target_client(&x->t, &c, 64, NQ, 64));
	T_OK(vio_init(v, &c, 0x5eed));
	T_OK(vio_add_ns(v, 1, 512, 16384));
	T_OK(vio_add_ns(v, 2, 4096, 1024));
	v->depth = 8;
	v->nq = NQ;
	for (unsigned q = 0; q < NQ; q++) {
		v->qids[q] = (uint16_t)(q + 1);
	}
	v->ops = VIO_WRITE | VIO_READ | VIO_WZ | VIO_DSM | VIO_FLUSH | VIO_SGL | VIO_FUA;
	T_OK(vio_run(v, 500, 30000));

	/* An AER outstanding across every upgrade, with namespace notices enabled. */
	T_CHECK(admin(&c, 0x09, 0x0b, 1u << 8, NULL) == 0, "Set Features (AEC)");
	memset(&aer, 0, sizeof(aer));
	aer.opc = 0x0c;
	cid = vc_submit(&c, 0, &aer);
	T_CHECK(cid >= 0, "AER submit");

	T_OK(upgrades(x, &c, v));

	snprintf(crash, sizeof(crash), "VHOSTD_TEST_UPGRADE_FAULT=state:crash exec '%s' \"$@\"",
	         x->bin[1]);
	snprintf(hang, sizeof(hang), "VHOSTD_TEST_UPGRADE_FAULT=state:hang exec '%s' \"$@\"",
	         x->bin[1]);
	T_OK(bad_candidate(x, v, "exits at once", "exit 1"));
	if (x->bin[1] != x->bin[0]) {
		T_OK(bad_candidate(x, v, "crashes after reading the state", crash));
		T_OK(bad_candidate(x, v, "hangs after reading the state", hang));
	}

	/* The first worker's AER completes in this one. */
	T_OK(vfu_target_rpc(
	        &x->t, "bdev_malloc_create",
	        json_pack("{s:s, s:i, s:i}", "name", "M3", "num_blocks", 1024, "block_size", 512),
	        NULL));
	T_OK(vfu_target_rpc(
	        &x->t, "vfu_controller_add_ns",
	        json_pack("{s:s, s:s, s:i}", "ctrlr", "nvme0", "bdev_name", "M3", "nsid", 3),
	        NULL));
	st = vc_wait(&c, 0, (uint16_t)cid, &dw0, 5000);
	T_CHECK(st == 0 && (dw0 & 0x7) == 2 && ((dw0 >> 16) & 0xff) == 4,
	        "the AER sent before the upgrades: status %d dw0 0x%x", st, dw0);

	/* Messages are answered by the new worker: map and unmap more memory. */
	mfd = memfd_create("extra", MFD_CLOEXEC);
	T_CHECK(mfd >= 0 && ftruncate(mfd, 1 << 20) == 0, "memfd");
	T_CHECK(vc_dma_map(&c, 1ull << 40, 1 << 20, 0, mfd, 3) == 0, "DMA_MAP after the upgrades");
	T_CHECK(vc_dma_unmap(&c, 1ull << 40, 1 << 20, 0) == 0, "DMA_UNMAP after the upgrades");
	close(mfd);

	/* A disabled controller (no queue at all) comes across as well; the guest brings it up. */
	T_OK(vc_nvme_disable(&c, 5000));
	T_OK(idle_upgrade(x, "with the controller disabled"));
	T_CHECK(vc_reg32(&c, 0x1c) == 0, "CSTS 0x%x after the upgrade, expected 0",
	        vc_reg32(&c, 0x1c));
	T_OK(vc_nvme_enable(&c, 32, 5000));
	T_CHECK(vc_set_num_queues(&c, NQ, NULL) == 0, "Set Features (Number of Queues)");
	for (unsigned q = 1; q <= NQ; q++) {
		T_CHECK(vc_create_io_queue(&c, (uint16_t)q, 64, (uint16_t)q) == 0,
		        "create I/O queue %u", q);
	}
	T_OK(vio_run(v, 500, 30000));
	T_OK(vio_verify_all(v, 1, 30000));
	T_CHECK(v->errors == 0 && v->mismatches == 0, "%llu errors, %llu mismatches",
	        (unsigned long long)v->errors, (unsigned long long)v->mismatches);
	T_CHECK(!vc_closed_by_server(&c, 0), "the server closed the connection");
	vio_fini(v);
	free(v);
	vc_close(&c);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *bin = getenv("VHOSTD"), *alt = getenv("VHOSTD_ALT");
	struct ctx x;
	char conf[200];
	int rc;

	memset(&x, 0, sizeof(x));
	x.cycles = 20;
	for (int i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "--cycles") == 0) {
			x.cycles = (unsigned)atoi(argv[++i]);
		}
	}
	if (x.cycles < 1 || x.cycles > MAX_CYCLES) {
		fprintf(stderr, "--cycles 1..%d\n", MAX_CYCLES);
		return 2;
	}
	if (bin == NULL || access(bin, X_OK) != 0) {
		fprintf(stderr, "SKIP: no vhostd binary ($VHOSTD)\n");
		return 77;
	}
	x.bin[0] = bin;
	x.version[0] = getenv("VHOSTD_VERSION");
	x.bin[1] = alt != NULL && access(alt, X_OK) == 0 ? alt : bin;
	x.version[1] = x.bin[1] == alt ? getenv("VHOSTD_ALT_VERSION") : x.version[0];
	if (x.version[0] == NULL || x.version[1] == NULL) {
		fprintf(stderr, "SKIP: $VHOSTD_VERSION (and $VHOSTD_ALT_VERSION) not set\n");
		return 77;
	}
	x.t.name = "nvme0";
	if (vh_daemon_mkdir(&x.t.d) < 0) {
		return 1;
	}
	snprintf(conf, sizeof(conf), "%s/vhostd.json", x.t.d.dir);
	snprintf(x.install, sizeof(x.install), "%s/vhostd", x.t.d.dir);
	if (install(x.install, bin, NULL) < 0) {
		fprintf(stderr, "FAIL: cannot install the binary at %s\n", x.install);
		return 1;
	}
	/* Lower every phase's limit: the hanging candidate is given up after seconds. */
	setenv("VHOSTD_UPGRADE_TIMEOUT_MS", "5000", 1);
	{
		const char *argv2[] = {x.install, "--supervise",  "-m", "0x1", "-S", x.t.d.sock_dir,
		                       "-r",      x.t.d.rpc_path, "-c", conf,  "-L", "info",
		                       NULL};

		rc = vh_daemon_spawn(&x.t.d, argv2, "rpc.sock", 10000);
	}
	if (rc < 0) {
		fprintf(stderr, "FAIL: vhostd --supervise did not come up: %s\n", strerror(-rc));
		return 1;
	}
	vh_daemon_path(&x.t.d, x.t.name, x.t.sock, sizeof(x.t.sock));
	rc = vfu_target_rpc(
	        &x.t, "bdev_malloc_create",
	        json_pack("{s:s, s:i, s:i}", "name", "M1", "num_blocks", 16384, "block_size", 512),
	        NULL);
	if (rc == 0) {
		rc = vfu_target_rpc(&x.t, "bdev_malloc_create",
		                    json_pack("{s:s, s:i, s:i}", "name", "M2", "num_blocks", 1024,
		                              "block_size", 4096),
		                    NULL);
	}
	if (rc == 0) {
		rc = vfu_target_rpc(&x.t, "vfu_create_nvme_controller",
		                    json_pack("{s:s, s:i}", "ctrlr", x.t.name, "num_io_queues", NQ),
		                    NULL);
	}
	for (int ns = 1; ns <= 2 && rc == 0; ns++) {
		rc = vfu_target_rpc(&x.t, "vfu_controller_add_ns",
		                    json_pack("{s:s, s:s, s:i}", "ctrlr", x.t.name, "bdev_name",
		                              ns == 1 ? "M1" : "M2", "nsid", ns),
		                    NULL);
	}
	if (rc == 0) {
		rc = run(&x);
	}
	if (vh_daemon_stop(&x.t.d, 10000) != 0 && rc == 0) {
		fprintf(stderr, "FAIL: vhostd did not exit cleanly\n");
		rc = -1;
	}
	printf("test_upgrade_vfu: %s\n", rc == 0 ? "PASS" : "FAIL");
	return rc == 0 ? 0 : 1;
}
