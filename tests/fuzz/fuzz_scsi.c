/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz target: the virtio-scsi device (src/vhost/scsi.c, scsi_cmd.c) on a guest-controlled
 * ring, single-threaded and deterministic: SCSI commands (request headers, LUN fields, CDBs,
 * UNMAP parameter lists, WRITE SAME blocks) on a request queue, task management and AN
 * requests on the control queue, event buffers on the event queue, while targets are added
 * and removed through the real vhost.h functions.
 *
 * The real vring.c/mem.c/scsi.c/scsi_cmd.c run against the doubles of the reactor and the
 * control loop of fuzz_ring_common.h and, here, two bdevs (1 MiB of 512-byte blocks as target
 * 0, 1 MiB of 4096-byte blocks as target 3). Messages, nodes, completions, the poller and
 * deferred work run in reactor order, so one input is one reproducible run. The "device"
 * touches every byte of every iovec the fake bdevs are given.
 *
 * Guest memory and ring layout are fuzz_vring's (fuzz_ring_common.h): regions A [0x10000,
 * 0x20000) and B [0x20000, 0x30000) adjacent, C [0x100000, 0x101000) after a hole, each mapping
 * surrounded by ASan-poisoned guard pages; descriptors at A+0, avail at A+0x1000, used at
 * A+0x2000, the input's blob from A+0x3000 on (then B, then C).
 *
 * Input: struct hdr (9 bytes), then size*16 bytes of descriptors, size*2 avail entries, blob.
 *
 * Checked after each input:
 * - no ASan/UBSan report;
 * - the run settles within a bounded number of reactor iterations (a TMF waits for commands,
 *   which the fake bdev always completes);
 * - every head handed to the device got exactly one used entry, or (only on a queue marked
 *   broken) was dropped; used->idx moved by exactly the number of used entries;
 * - every bdev I/O is inside its disk, block aligned, and READ/WRITE lengths match the iovecs;
 * - the queue stops cleanly; afterwards no channel is open and no target holds a reference,
 *   and a removed target's bdev was released exactly once.
 */
#define MAX_ITERS 4000

#include "fuzz_ring_common.h"
#include "vhost/scsi.h"

#define F_REMOVE   0x04 /* remove target 0 after the first iteration */
#define F_PLAIN    0x20 /* bdevs without discard, write-zeroes or write cache */
#define F_HOTPLUG  0x40 /* HOTPLUG negotiated; add target 5 after the first iteration */
#define F_DISABLED 0x80

struct hdr {
	uint8_t flags;
	uint8_t qlog;
	uint16_t avail_idx;
	uint16_t base;
	uint16_t used_idx;
	uint8_t queue; /* % 3: control, event, request queue */
} __attribute__((packed));

/* ---- doubles: bdevs, and the control side of targets ---- */

struct vh_bdev_channel {
	int refs;
};
struct vh_bdev {
	char name[8];
	uint32_t bs;
	int claimed;
	int released;
	struct vh_bdev_channel ch;
};

static struct vh_bdev g_bdevs[3];
static struct vh_vhost_ctrlr g_ctrlr;
static bool g_ctrlr_made;

/* Control-side functions scsi.c calls when targets change. */
int
vh_name_check(const char *name)
{
	return 0;
}

struct vh_vhost_ctrlr *
vh_vhost_find(const char *name)
{
	return g_ctrlr_made ? &g_ctrlr : NULL;
}

int
vh_ctrlr_create(const char *name, uint64_t cpumask, uint16_t num_queues,
                const struct vh_dev_ops *ops, void *dev, struct vh_vhost_ctrlr **out)
{
	memset(&g_ctrlr, 0, sizeof(g_ctrlr));
	snprintf(g_ctrlr.name, sizeof(g_ctrlr.name), "%s", name);
	g_ctrlr.ops = ops;
	g_ctrlr.dev = dev;
	g_ctrlr.num_queues = num_queues;
	g_ctrlr.listen_fd = -1;
	g_ctrlr_made = true;
	*out = &g_ctrlr;
	return 0;
}

json_t *
vh_vhost_cpumask_json(uint64_t mask)
{
	abort();
}

struct vh_bdev *
vh_bdev_find(const char *name)
{
	for (unsigned i = 0; i < 3; i++) {
		if (strcmp(g_bdevs[i].name, name) == 0) {
			return &g_bdevs[i];
		}
	}
	return NULL;
}

int
vh_bdev_claim(struct vh_bdev *b, const char *owner)
{
	if (b->claimed) {
		return -EBUSY;
	}
	b->claimed = 1;
	return 0;
}

void
vh_bdev_release(struct vh_bdev *b)
{
	if (!b->claimed || b->ch.refs != 0) {
		abort(); /* released twice, or while a channel is still open */
	}
	b->claimed = 0;
	b->released++;
}

const char *
vh_bdev_name(const struct vh_bdev *b)
{
	return b->name;
}

const char *
vh_bdev_uuid(const struct vh_bdev *b)
{
	return "0a2d7f30-1f59-4bb0-9f3e-0f8e8f4b7a11";
}

uint32_t
vh_bdev_block_size(const struct vh_bdev *b)
{
	return b->bs;
}

uint64_t
vh_bdev_num_blocks(const struct vh_bdev *b)
{
	return DISK_SIZE / b->bs;
}

bool
vh_bdev_io_type_supported(const struct vh_bdev *b, enum vh_bdev_io_type t)
{
	return !(g_flags & F_PLAIN) || t == VH_BDEV_IO_READ || t == VH_BDEV_IO_WRITE;
}

bool
vh_bdev_has_write_cache(const struct vh_bdev *b)
{
	return !(g_flags & F_PLAIN);
}

struct vh_bdev_channel *
vh_bdev_channel_get(struct vh_bdev *b)
{
	if (!b->claimed) {
		abort(); /* a channel to a bdev nobody holds */
	}
	b->ch.refs++;
	return &b->ch;
}

void
vh_bdev_channel_put(struct vh_bdev_channel *ch)
{
	if (ch->refs <= 0) {
		abort();
	}
	ch->refs--;
}

int
vh_bdev_submit(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	struct vh_bdev *b = VH_CONTAINER_OF(ch, struct vh_bdev, ch);

	if (ch->refs <= 0 || !b->claimed) {
		abort();
	}
	return fuzz_bdev_queue(io, b, b->bs, true);
}

/* scsi.c's event queue also takes buffers with vh_vq_fetch_one() (renamed by build.sh). */
struct vh_req *fuzz_hook_fetch_one(struct vh_vq *vq);

struct vh_req *
fuzz_hook_fetch_one(struct vh_vq *vq)
{
	struct vh_req *req = vh_vq_fetch_one(vq);

	if (req != NULL) {
		fuzz_count_fetch(vq, req);
	}
	return req;
}

/* ---- the run ---- */

static struct vh_session *g_s;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	setup_memory();
	fuzz_ops_init(&vh_scsi_ops);
	g_s = calloc(1, sizeof(*g_s));
	if (g_s == NULL) {
		abort();
	}
	return 0;
}

static void
make_controller(void)
{
	struct vh_vhost_scsi_opts o = {.name = "fuzz", .num_queues = 3};

	memset(g_bdevs, 0, sizeof(g_bdevs));
	snprintf(g_bdevs[0].name, sizeof(g_bdevs[0].name), "b0");
	snprintf(g_bdevs[1].name, sizeof(g_bdevs[1].name), "b1");
	snprintf(g_bdevs[2].name, sizeof(g_bdevs[2].name), "b2");
	g_bdevs[0].bs = 512;
	g_bdevs[1].bs = 4096;
	g_bdevs[2].bs = 512;
	g_ctrlr_made = false;
	if (vh_vhost_scsi_create(&o) != 0 || vh_vhost_scsi_add_target("fuzz", 0, "b0") != 0 ||
	    vh_vhost_scsi_add_target("fuzz", 3, "b1") != 3) {
		abort();
	}
	/* The queues get the hooked ops (vq->ops); the controller stays a scsi controller. */
}

/* Between iterations: what the operator does while the guest runs. */
static void
operator_actions(unsigned iter)
{
	if (iter != 1) {
		return;
	}
	if ((g_flags & F_REMOVE) && vh_vhost_scsi_remove_target("fuzz", 0) != 0) {
		abort();
	}
	if ((g_flags & F_HOTPLUG) && vh_vhost_scsi_add_target("fuzz", 5, "b2") != 5) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vh_session *s = g_s;
	struct vh_mem mem;
	struct vring_avail *avail;
	struct vring_used *used;
	struct vh_vq *vq;
	struct hdr h = {0};
	uint16_t qsize;
	unsigned iters = 0;

	if (!fuzz_take_hdr(&h, sizeof(h), &data, &size)) {
		return -1;
	}
	h.queue %= 3;
	qsize = (uint16_t)(1u << (h.qlog % 9));

	fuzz_split_load(qsize, h.avail_idx, h.used_idx, &data, &size, &avail, &used);
	fuzz_mem_load(&mem, &data, &size);

	make_controller();
	memset(s, 0, sizeof(*s));
	s->c = &g_ctrlr;
	s->fd = -1;
	s->backend_fd = -1;
	s->mem = &mem;
	s->nvqs = 3;
	s->features = fuzz_features(h.flags);
	if (h.flags & F_HOTPLUG) {
		s->features |= 1ull << VIRTIO_SCSI_F_HOTPLUG;
	}
	for (unsigned i = 0; i < 3; i++) {
		s->vqs[i].s = s;
		s->vqs[i].ops = &g_ops;
		s->vqs[i].log_all = &s->log_all; /* as vh_session_new() sets it */
		s->vqs[i].idx = (uint16_t)i;
	}
	if (vh_scsi_ops.session_init(s) != 0) {
		abort();
	}
	g_ctrlr.sessions[0] = s;
	vq = &s->vqs[h.queue];
	fuzz_vq_setup(vq, h.queue, qsize, h.flags & F_DISABLED);
	vq->base = h.base;

	vh_vq_init_nodes(vq);
	if (vh_vq_prepare(vq) != 0) {
		abort();
	}
	vh_vq_start(vq);
	for (;;) {
		bool idle;

		reactor_iteration();
		run_queue(g_cmsgs, &g_nc);
		operator_actions(++iters);
		idle = iters > 1 && g_nr == 0 && g_nc == 0 && g_ndone == 0 && g_deferred == NULL &&
		       vq->retry_head == NULL &&
		       (vq->broken || !vq->running || vq->no_fetch || vq->last_avail == avail->idx);
		if (idle) {
			break;
		}
		if (iters > MAX_ITERS) {
			fprintf(stderr, "queue did not settle after %u iterations\n", MAX_ITERS);
			abort();
		}
	}
	if (vq->inflight != 0 || vq->broken != g_broken_reported) {
		fprintf(stderr, "%u in flight on an idle queue, broken %d/%d\n", vq->inflight,
		        vq->broken, g_broken_reported);
		abort();
	}
	if ((uint16_t)(vq->last_avail - h.base) > qsize || (g_dropped > 0 && !vq->broken)) {
		abort();
	}
	fuzz_check_heads(qsize);
	fuzz_check_split_used(vq, used, h.used_idx);
	fuzz_stop_queue(vq);
	run_queue(g_cmsgs, &g_nc);
	if (g_poller != NULL || vq->started || vq->base != vq->last_avail) {
		abort();
	}
	for (unsigned i = 0; i < 3; i++) {
		if (g_bdevs[i].ch.refs != 0) {
			fprintf(stderr, "bdev %u: %d channel(s) left open\n", i,
			        g_bdevs[i].ch.refs);
			abort();
		}
	}
	/* A removal completes once the queue let go: the bdev is back, exactly once. */
	if ((h.flags & F_REMOVE) && (g_bdevs[0].released != 1 || g_bdevs[0].claimed)) {
		fprintf(stderr, "removed target's bdev: released %d, claimed %d\n",
		        g_bdevs[0].released, g_bdevs[0].claimed);
		abort();
	}
	vh_vq_free_reqs(vq);
	vh_scsi_ops.session_fini(s);
	g_ctrlr.sessions[0] = NULL;
	vh_scsi_ops.ctrlr_free(&g_ctrlr);
	return 0;
}
