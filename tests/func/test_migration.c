/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live migration as QEMU 7.2 drives it, without a VM: the destination front-end connects to the
 * same controller while the source runs (a second, concurrent session), the source turns dirty
 * logging on (SET_LOG_BASE with a sealed memfd, VHOST_F_LOG_ALL, VHOST_VRING_F_LOG), keeps
 * doing verified I/O while the log is synced, stops its rings (GET_VRING_BASE only once every
 * request completed and was logged), and the destination starts at the returned bases and goes
 * on with the same data. Three migrations in a row, back and forth.
 *
 * The dirty bitmap is checked against what the test knows the device wrote: every page of a
 * read's data buffer, every status byte's page and the used rings must be marked; the data
 * pages of writes (which the device only reads) must not be.
 */
#include <poll.h>
#include <stdlib.h>

#include "io_engine.h"
#include "vh_test.h"

#define NQ     2
#define DEPTH  16
#define NBUF   16
#define PAGE   4096u
#define MEM_SZ (32u << 20)

static bool
bit(const uint8_t *log, uint64_t page)
{
	return (log[page / 8] >> (page % 8)) & 1;
}

static void
set_pages(uint8_t *map, uint64_t gpa, uint64_t len)
{
	for (uint64_t p = gpa / PAGE; p <= (gpa + len - 1) / PAGE; p++) {
		map[p / 8] |= (uint8_t)(1u << (p % 8));
	}
}

static int
sessions_of(struct vh_target *t, int *n)
{
	json_t *res = NULL, *c;

	T_OK(vh_rpc_call(t->d.rpc_path, "vhost_get_controllers",
	                 json_pack("{s:s}", "name", t->name), &res, NULL, NULL, 0, 5000));
	c = json_array_get(res, 0);
	*n = (int)json_array_size(json_object_get(c, "sessions"));
	json_decref(res);
	return 0;
}

/*
 * With logging on and nothing else running: reads into NBUF pages and writes from NBUF other
 * pages; the log must hold exactly the read buffers, the status bytes and used-ring pages.
 */
static int
check_log(struct vh_fe *fe, struct vh_fe_mem *mem)
{
	uint64_t npages = MEM_SZ / PAGE, bytes = npages / 8;
	uint8_t *log = calloc(1, bytes), *must = calloc(1, bytes), *may = calloc(1, bytes);
	struct vh_fe_req req[2 * NBUF];
	struct vh_fe_iov iov[2 * NBUF];
	unsigned marked = 0;
	int rc = -1;

	T_CHECK(log && must && may, "calloc");
	vh_fe_log_sync(fe, log, bytes); /* start clean */
	memset(log, 0, bytes);
	for (unsigned i = 0; i < 2 * NBUF; i++) {
		bool rd = i < NBUF;

		iov[i].gpa = vh_fe_mem_alloc(mem, PAGE, PAGE);
		iov[i].len = PAGE;
		T_CHECK(iov[i].gpa != UINT64_MAX, "guest RAM exhausted");
		memset(&req[i], 0, sizeof(req[i]));
		/* Each write puts back what the read of the same blocks returned: data unchanged.
		 */
		if (!rd) {
			memcpy(vh_fe_gpa_to_ptr(mem, iov[i].gpa, PAGE),
			       vh_fe_gpa_to_ptr(mem, iov[i - NBUF].gpa, PAGE), PAGE);
		}
		req[i].type = rd ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
		req[i].sector = (uint64_t)(i % NBUF) * 8;
		req[i].iov = &iov[i];
		req[i].niov = 1;
		if (io_sync(fe, i % NQ, &req[i], 5000) < 0 || req[i].status != VIRTIO_BLK_S_OK) {
			fprintf(stderr, "FAIL: request %u: status %u\n", i, req[i].status);
			goto out;
		}
		if (rd) {
			set_pages(must, iov[i].gpa, PAGE);
		}
		set_pages(must, vh_fe_ptr_to_gpa(mem, req[i].status_ptr), 1);
	}
	for (unsigned q = 0; q < NQ; q++) {
		struct vh_fe_vq *vq = vh_fe_vq(fe, q);
		uint64_t used = vh_fe_ptr_to_gpa(mem, vh_fe_vq_used(vq));

		set_pages(may, used, 6 + 8u * vh_fe_vq_size(vq));
	}
	vh_fe_log_sync(fe, log, bytes);
	for (uint64_t p = 0; p < npages; p++) {
		marked += bit(log, p);
		if (bit(must, p) && !bit(log, p)) {
			fprintf(stderr,
			        "FAIL: page 0x%llx was written by the device but not logged\n",
			        (unsigned long long)p * PAGE);
			for (uint64_t b = 0; b < bytes; b++) {
				if (log[b]) {
					fprintf(stderr, "  log byte %llu = 0x%x\n",
					        (unsigned long long)b, log[b]);
				}
			}
			for (unsigned i = 0; i < 2 * NBUF; i++) {
				fprintf(stderr, "  req %u: data 0x%llx status 0x%llx\n", i,
				        (unsigned long long)iov[i].gpa,
				        (unsigned long long)vh_fe_ptr_to_gpa(mem,
				                                             req[i].status_ptr));
			}
			goto out;
		}
		if (bit(log, p) && !bit(must, p) && !bit(may, p)) {
			fprintf(stderr,
			        "FAIL: page 0x%llx logged but never written by the device\n",
			        (unsigned long long)p * PAGE);
			goto out;
		}
	}
	for (unsigned i = NBUF; i < 2 * NBUF; i++) {
		T_CHECK(!bit(log, iov[i].gpa / PAGE) || bit(must, iov[i].gpa / PAGE),
		        "a write's data page was logged");
	}
	fprintf(stderr, "dirty log: %u pages marked, every device write covered\n", marked);
	rc = 0;
out:
	free(log);
	free(must);
	free(may);
	return rc;
}

static int
migrate_once(struct vh_target *t, struct vh_fe *fe, struct vh_fe_mem *mem, struct io_engine *e,
             unsigned round)
{
	uint64_t bytes = MEM_SZ / PAGE / 8;
	uint8_t *scratch = malloc(bytes);
	int64_t t0;
	int n;

	T_CHECK(scratch != NULL, "malloc");
	/* The destination realizes its device while the source keeps going. */
	T_OK(vh_fe_migrate_prepare(fe, 5000));
	T_OK(sessions_of(t, &n));
	T_CHECK(n == 2, "round %u: %d sessions while the destination waits (want 2)", round, n);
	/* The first time, with nothing else in flight, so the log holds only what we know of. */
	T_OK(io_engine_run(e, 500, round == 0, 10000));
	T_OK(vh_fe_log_start(fe));
	if (round == 0 && check_log(fe, mem) < 0) {
		return -1;
	}
	/* Pre-copy iterations: I/O goes on while the log is read and cleared. */
	for (int i = 0; i < 4; i++) {
		T_OK(io_engine_run(e, 500, false, 10000));
		vh_fe_log_sync(fe, scratch, bytes);
	}
	/* Stop and copy: GET_VRING_BASE answers once every request completed and was logged. */
	T_OK(io_engine_submit(e, NQ * DEPTH));
	t0 = vh_fe_now_ms();
	T_OK(vh_fe_stop(fe));
	for (unsigned q = 0; q < NQ; q++) {
		struct vh_fe_vq *vq = vh_fe_vq(fe, q);
		uint16_t used = le16toh(__atomic_load_n(&vh_fe_vq_used(vq)->idx, __ATOMIC_ACQUIRE));

		/* Everything fetched is answered; what is left after the base is the destination's.
		 */
		T_CHECK(used == vh_fe_vq_base(vq),
		        "round %u: q%u: GET_VRING_BASE %u but used->idx %u", round, q,
		        vh_fe_vq_base(vq), used);
	}
	T_OK(io_engine_reap(e));
	vh_fe_log_sync(fe, scratch, bytes);
	T_OK(vh_fe_migrate_finish(fe));
	fprintf(stderr, "migration %u: stop-to-destination-start %lld ms\n", round,
	        (long long)(vh_fe_now_ms() - t0));
	free(scratch);
	/* The source's session goes away; the destination goes on with verified I/O. */
	for (int64_t dl = vh_fe_now_ms() + 5000;;) {
		T_OK(sessions_of(t, &n));
		if (n == 1) {
			break;
		}
		T_CHECK(vh_fe_now_ms() < dl, "round %u: source session still open", round);
		poll(NULL, 0, 5); /* re-check interval, bounded by the deadline */
	}
	T_OK(io_engine_run(e, 1000, false, 10000));
	return 0;
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 32768};
	struct vh_fe_mem_opts mo = {.size = MEM_SZ, .nregions = 2};
	struct vh_fe_opts fo = {.num_queues = NQ, .log = true, .inflight = true};
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	struct io_engine e;
	struct vh_target t;
	int rc;

	if (vh_test_qsd()) {
		fprintf(stderr, "SKIP: vhostd-only (qemu-storage-daemon serves one front-end)\n");
		return VH_TEST_SKIP;
	}
	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	rc = VH_TEST_FAIL;
	if (vh_test_fe_open(&t, &mo, &fo, &mem, &fe) < 0 || vh_fe_start(fe, 0, 0) < 0 ||
	    io_engine_init(&e, fe, mem, NQ, DEPTH, vh_test_seed("migration")) < 0) {
		goto out;
	}
	if (!vh_fe_has(vh_fe_info(fe)->backend_features, 26) ||
	    !vh_fe_has(vh_fe_info(fe)->protocol, VHOST_USER_PROTOCOL_F_LOG_SHMFD)) {
		fprintf(stderr,
		        "FAIL: the back-end offers no VHOST_F_LOG_ALL / LOG_SHMFD: QEMU would "
		        "block migration\n");
		goto out_engine;
	}
	if (io_engine_run(&e, 2000, false, 10000) < 0) {
		goto out_engine;
	}
	for (unsigned round = 0; round < 3; round++) {
		if (migrate_once(&t, fe, mem, &e, round) < 0) {
			fprintf(stderr, "FAIL: migration %u\n", round);
			goto out_engine;
		}
	}
	if (io_engine_run(&e, 0, true, 10000) < 0) {
		goto out_engine;
	}
	fprintf(stderr, "3 migrations: %llu verified requests, 0 errors\n",
	        (unsigned long long)e.done);
	rc = VH_TEST_PASS;
out_engine:
	io_engine_fini(&e);
out:
	vh_test_fe_close(mem, fe);
	if (vh_target_stop(&t) < 0) {
		rc = VH_TEST_FAIL;
	}
	return rc;
}
