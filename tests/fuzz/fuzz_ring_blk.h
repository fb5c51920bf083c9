/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The blk half of the ring fuzz targets (fuzz_vring.c, fuzz_vring_packed.c), on top of
 * fuzz_ring_common.h: one 1 MiB bdev of 512-byte blocks with a single channel whose submit
 * checks what blk.c promises (inside the disk, block aligned, READ/WRITE lengths matching the
 * iovecs), abort()ing doubles of the control-side code blk.c links but never runs here, and the
 * blk controller and session one input runs on (fuzz_blk_session()).
 *
 * Only one harness includes this file per fuzz target.
 */
#ifndef VH_FUZZ_RING_BLK_H
#define VH_FUZZ_RING_BLK_H

#include "fuzz_ring_common.h"
#include "vhost/blk.h"

#define F_READONLY 0x04
#define F_DISCARD  0x20
#define F_DISABLED 0x40

/* ---- doubles: bdev ---- */

struct vh_bdev_channel {
	int unused;
};

static struct vh_bdev_channel g_ch;
static int g_channels;

uint32_t
vh_bdev_block_size(const struct vh_bdev *b)
{
	return 512;
}

uint64_t
vh_bdev_size(const struct vh_bdev *b)
{
	return DISK_SIZE;
}

bool
vh_bdev_io_type_supported(const struct vh_bdev *b, enum vh_bdev_io_type t)
{
	return t < VH_BDEV_IO_NTYPES;
}

/* A cached bdev: write-through sessions then flag their writes (VH_BDEV_IO_F_FUA) too. */
bool
vh_bdev_has_write_cache(const struct vh_bdev *b)
{
	return true;
}

struct vh_bdev_channel *
vh_bdev_channel_get(struct vh_bdev *b)
{
	g_channels++;
	return &g_ch;
}

void
vh_bdev_channel_put(struct vh_bdev_channel *ch)
{
	if (ch != &g_ch || g_channels <= 0) {
		abort();
	}
	g_channels--;
}

/*
 * blk.c's control-side code (controller creation, JSON, resize notices) is linked but never
 * runs here: these doubles only satisfy the linker, and abort if anything calls them.
 */
struct vh_bdev *
vh_bdev_find(const char *name)
{
	abort();
}

int
vh_bdev_claim(struct vh_bdev *b, const char *owner)
{
	abort();
}

void
vh_bdev_release(struct vh_bdev *b)
{
	abort();
}

const char *
vh_bdev_name(const struct vh_bdev *b)
{
	abort();
}

int
vh_name_check(const char *name)
{
	abort();
}

struct vh_vhost_ctrlr *
vh_vhost_find(const char *name)
{
	abort();
}

int
vh_ctrlr_create(const char *name, uint64_t cpumask, uint16_t num_queues,
                const struct vh_dev_ops *ops, void *dev, struct vh_vhost_ctrlr **out)
{
	abort();
}

int
vh_session_config_changed(struct vh_session *s)
{
	abort();
}

json_t *
vh_vhost_cpumask_json(uint64_t mask)
{
	abort();
}

int
vh_bdev_submit(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	if (ch != &g_ch) {
		abort();
	}
	return fuzz_bdev_queue(io, (const struct vh_bdev *)&g_ch, 512, false);
}

/* ---- the controller and session ---- */

static struct vh_session *g_s;
static struct vh_vhost_ctrlr *g_c_ctrlr;
static struct vh_blk_ctrlr g_blk;
static struct vh_blk_session g_blk_session;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	setup_memory();
	fuzz_ops_init(&vh_blk_ops);
	g_s = calloc(1, sizeof(*g_s));
	g_c_ctrlr = calloc(1, sizeof(*g_c_ctrlr));
	if (g_s == NULL || g_c_ctrlr == NULL) {
		abort();
	}
	return 0;
}

/*
 * A blk controller with one queue on the fake bdev (read-only with F_READONLY), and a session
 * on guest memory MEM with the features FLAGS ask for (discard and write-zeroes with F_DISCARD)
 * plus EXTRA_FEATURES; queue 0 set up (fuzz_vq_setup) with SIZE entries. Keeps g_s->inflight.
 * Returns queue 0.
 */
static struct vh_vq *
fuzz_blk_session(struct vh_mem *mem, uint8_t flags, uint16_t size, uint64_t extra_features)
{
	struct vh_vhost_ctrlr *c = g_c_ctrlr;
	struct vh_session *s = g_s;
	struct vh_inflight keep = s->inflight;
	struct vh_vq *vq;

	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "fuzz");
	memset(&g_blk, 0, sizeof(g_blk));
	memcpy(g_blk.serial, "fuzz-serial-0123456789", VIRTIO_BLK_ID_BYTES);
	g_blk.bdev = (struct vh_bdev *)&g_ch; /* opaque to vring/blk: only passed to the doubles */
	g_blk.readonly = (flags & F_READONLY) != 0;
	c->dev = &g_blk;
	c->ops = &g_ops;
	c->num_queues = 1;
	c->listen_fd = -1;

	memset(s, 0, sizeof(*s));
	s->inflight = keep;
	s->c = c;
	s->fd = -1;
	s->backend_fd = -1;
	s->mem = mem;
	s->nvqs = 1;
	g_blk_session.wce = 1;
	s->dev = &g_blk_session;
	s->features = fuzz_features(flags) | extra_features;
	if (flags & F_DISCARD) {
		s->features |= (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	}
	vq = &s->vqs[0];
	vq->s = s;
	vq->ops = &g_ops;
	vq->log_all = &s->log_all;
	fuzz_vq_setup(vq, 0, size, flags & F_DISABLED);
	return vq;
}

#endif
