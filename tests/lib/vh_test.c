/* SPDX-License-Identifier: BSD-3-Clause */
/* Functional-test harness: back-end targets (vhostd or qemu-storage-daemon). */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vh_test.h"

#define START_TIMEOUT_MS 10000
#define RPC_TIMEOUT_MS   5000

bool
vh_test_qsd(void)
{
	const char *e = getenv("VH_TEST_QSD");

	return e && *e && strcmp(e, "0") != 0;
}

uint64_t
vh_test_seed(const char *test)
{
	const char *e = getenv("VH_TEST_SEED");
	struct timespec ts;
	uint64_t seed;

	if (e && *e) {
		seed = strtoull(e, NULL, 0);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
	}
	fprintf(stderr, "%s: seed 0x%" PRIx64 " (set VH_TEST_SEED to replay)\n", test, seed);
	return seed;
}

int
vh_target_rpc(struct vh_target *t, const char *method, json_t *params, json_t **result)
{
	char msg[256];
	int code = 0, rc;

	rc = vh_rpc_call(t->d.rpc_path, method, params, result, &code, msg, sizeof(msg),
	                 RPC_TIMEOUT_MS);
	if (rc == -EREMOTEIO) {
		fprintf(stderr, "rpc %s: error %d: %s\n", method, code, msg);
	} else if (rc < 0) {
		fprintf(stderr, "rpc %s: %s\n", method, strerror(-rc));
	}
	return rc;
}

static int
start_qsd(struct vh_target *t, const struct vh_target_opts *o, unsigned int nq)
{
	char bd[256], ex[320], img[160];
	const char *argv[] = {"qemu-storage-daemon", "--blockdev", bd, "--export", ex, NULL};
	int fd, rc;

	rc = vh_daemon_mkdir(&t->d);
	if (rc < 0) {
		return rc;
	}
	snprintf(img, sizeof(img), "%s/disk.img", t->d.dir);
	fd = open(img, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)(t->num_blocks * t->block_size)) < 0) {
		rc = -errno;
		if (fd >= 0) {
			close(fd);
		}
		vh_daemon_stop(&t->d, 0);
		return rc;
	}
	close(fd);
	snprintf(bd, sizeof(bd), "driver=file,node-name=f0,filename=%s", img);
	snprintf(ex, sizeof(ex),
	         "type=vhost-user-blk,id=e0,node-name=f0,writable=%s,num-queues=%u,"
	         "logical-block-size=%u,addr.type=unix,addr.path=@DIR@/%s",
	         o->readonly ? "off" : "on", nq, t->block_size, t->name);
	return vh_daemon_spawn(&t->d, argv, t->name, START_TIMEOUT_MS);
}

int
vh_target_start(struct vh_target *t, const struct vh_target_opts *o)
{
	json_t *p;
	int rc;

	memset(t, 0, sizeof(*t));
	t->d.pid = -1;
	snprintf(t->name, sizeof(t->name), "%s", o->name ? o->name : "vhost.0");
	snprintf(t->bdev, sizeof(t->bdev), "%s", o->null_bdev ? "Null0" : "Malloc0");
	t->num_blocks = o->num_blocks ? o->num_blocks : 16384;
	t->block_size = o->block_size ? o->block_size : 512;
	t->qsd = vh_test_qsd();
	if (t->qsd) {
		rc = start_qsd(t, o, o->qsd_queues ? o->qsd_queues : 4);
	} else {
		rc = vh_daemon_start(&t->d, NULL, o->daemon_args, START_TIMEOUT_MS);
		if (rc == -ENOENT) {
			fprintf(stderr, "SKIP: $VHOSTD not set or not executable\n");
			return VH_TEST_SKIP;
		}
	}
	if (rc < 0) {
		fprintf(stderr, "back-end start: %s\n", strerror(-rc));
		return rc;
	}
	vh_daemon_path(&t->d, t->name, t->sock, sizeof(t->sock));
	if (t->qsd) {
		return 0;
	}
	p = json_pack("{s:s, s:I, s:i}", "name", t->bdev, "num_blocks", (json_int_t)t->num_blocks,
	              "block_size", (int)t->block_size);
	rc = vh_target_rpc(t, o->null_bdev ? "bdev_null_create" : "bdev_malloc_create", p, NULL);
	if (rc == 0) {
		p = json_pack("{s:s, s:s, s:s, s:b, s:b, s:b}", "ctrlr", t->name, "dev_name",
		              t->bdev, "cpumask", "0x1", "readonly", o->readonly, "packed_ring",
		              o->packed_ring, "packed_ring_recovery", o->packed_recovery);
		rc = vh_target_rpc(t, "vhost_create_blk_controller", p, NULL);
	}
	if (rc < 0) {
		vh_daemon_stop(&t->d, 2000);
		return rc;
	}
	return 0;
}

int
vh_target_stop(struct vh_target *t)
{
	bool was_alive = vh_daemon_alive(&t->d);
	int st = vh_daemon_stop(&t->d, 5000);

	if (!was_alive) {
		fprintf(stderr, "FAIL: back-end died during the test (status 0x%x)\n", st);
		return -1;
	}
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "FAIL: back-end did not exit cleanly on SIGTERM (status 0x%x)\n",
		        st);
		return -1;
	}
	return 0;
}

int
vh_test_fe_open(struct vh_target *t, const struct vh_fe_mem_opts *mo, const struct vh_fe_opts *fo,
                struct vh_fe_mem **mem, struct vh_fe **fe)
{
	struct vh_fe_opts o = *fo;
	int rc;

	*mem = NULL;
	*fe = NULL;
	o.path = t->sock;
	rc = vh_fe_mem_create(mem, mo);
	if (rc < 0) {
		fprintf(stderr, "guest RAM: %s\n", strerror(-rc));
		return rc;
	}
	rc = vh_fe_create(fe, *mem, &o);
	if (rc == 0) {
		rc = vh_fe_connect(*fe, 0);
	}
	if (rc == 0) {
		rc = vh_fe_init(*fe, true);
	}
	if (rc < 0) {
		fprintf(stderr, "front-end open %s: %s\n", t->sock, strerror(-rc));
		vh_test_fe_close(*mem, *fe);
		*mem = NULL;
		*fe = NULL;
	}
	return rc;
}

void
vh_test_fe_close(struct vh_fe_mem *mem, struct vh_fe *fe)
{
	vh_fe_destroy(fe);
	vh_fe_mem_destroy(mem);
}
