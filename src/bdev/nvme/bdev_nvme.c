/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NVMe bdev back-end: controllers, namespace bdevs, per-reactor channels, I/O splitting and the
 * cross-thread reset sequence (see bdev_nvme.h for the rules).
 *
 * Trust: bdev I/O comes from the vhost layer, which validated it against the guest; we still
 * check alignment and range against the namespace because a bad value here becomes a DMA.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bdev/bdev_module.h"
#include "bdev/nvme/bdev_nvme.h"
#include "bdev/nvme/ctrlr.h"
#include "core/evloop.h"
#include "core/log.h"
#include "core/reactor.h"

#define COMP            "nvme"
#define MODULE_NAME     "nvme"
#define POLL_BATCH      64
#define DISCARD_MAX_NLB 0x80000000u /* blocks per DSM range; keeps ranges aligned */

enum slot_state {
	SLOT_IDLE = 0,    /* no channel uses it */
	SLOT_REACTOR = 1, /* reactor idx owns it (refs > 0) */
	SLOT_CONTROL = 2, /* locked by the control thread during a reset */
};

enum reset_step { RESET_HALT = 0, RESET_ABORT, RESET_RESUME, RESET_FAIL };

struct ctrlr_ent;

/* I/O queue pair i of a controller, used by reactor i only. */
struct qp_slot {
	struct ctrlr_ent *ce;
	struct vh_nvme_qpair *qp;
	unsigned idx;
	int state;                  /* enum slot_state; atomic */
	unsigned refs;              /* reactor idx only */
	bool delegated;             /* control, during a reset: steps run on the reactor */
	struct vh_deferred ring;    /* SQ doorbell at the end of the reactor iteration */
	struct vh_bdev_io *pending; /* accepted I/O waiting for command slots (FIFO) */
	struct vh_bdev_io *pending_tail;
};

struct ctrlr_ent {
	char name[VH_NAME_MAX];
	char traddr[16];
	uint64_t id; /* messages carry this, not the pointer */
	enum vh_nvme_access mode;
	bool force;                  /* attach options, for save_config */
	char hugepage_dir[PATH_MAX]; /* "" = the default */
	struct vh_nvme_dev *dev;
	struct vh_nvme_ctrlr *c;
	struct qp_slot *slots;
	unsigned nslots;
	char (*bdev_names)[VH_NAME_MAX];
	unsigned nbdevs;
	bool resetting;
	bool removed;
	/* Live upgrade (see bdev_nvme.h). */
	bool pending;                  /* candidate: created from a promise, no device yet */
	bool released;                 /* old worker: device given up, objects kept */
	bool taken;                    /* candidate: device taken from the old worker */
	struct vh_bdev_nvme_opts opts; /* the attach options, to open the device later */
	enum reset_step step;
	unsigned waiting; /* reactor replies outstanding in this step */
	struct ctrlr_ent *next;
};

struct nvme_bdev {
	struct ctrlr_ent *ce;
	uint32_t nsid;
	uint32_t lba_shift;
	uint64_t nsze;
	bool first; /* the one whose config_json re-creates the controller */
};

struct nvme_chan {
	struct nvme_bdev *nb;
	struct qp_slot *slot;
};

/* Per-I/O state, kept in io->module_ctx (no allocation per I/O). */
struct io_ctx {
	struct vh_bdev_io *next; /* pending list */
	uint64_t done;           /* bytes (or 1 for FLUSH) handed to the device */
	uint32_t outstanding;    /* commands in flight */
	int32_t status;          /* first error */
	struct nvme_chan *chan;
};
_Static_assert(sizeof(struct io_ctx) <= sizeof(((struct vh_bdev_io *)0)->module_ctx),
               "io_ctx fits module_ctx");

static struct ctrlr_ent *ctrlrs;
static uint64_t next_id = 1;
static const struct vh_bdev_module nvme_module;

static struct io_ctx *
ioctx(struct vh_bdev_io *io)
{
	return (struct io_ctx *)io->module_ctx;
}

static struct ctrlr_ent *
find_ctrlr(const char *name)
{
	for (struct ctrlr_ent *ce = ctrlrs; ce != NULL; ce = ce->next) {
		if (strcmp(ce->name, name) == 0) {
			return ce;
		}
	}
	return NULL;
}

static struct ctrlr_ent *
find_ctrlr_id(uint64_t id)
{
	for (struct ctrlr_ent *ce = ctrlrs; ce != NULL; ce = ce->next) {
		if (ce->id == id) {
			return ce;
		}
	}
	return NULL;
}

/* ---- I/O ------------------------------------------------------------------------------------ */

static uint64_t
io_total(const struct vh_bdev_io *io)
{
	return io->type == VH_BDEV_IO_FLUSH ? 1 : io->length;
}

static void
piece_done(void *arg, int status, const struct vh_nvme_cqe *cqe)
{
	struct vh_bdev_io *io = arg;
	struct io_ctx *x = ioctx(io);

	if (status != 0 && x->status == 0) {
		x->status = status;
	}
	if (--x->outstanding == 0 && x->done >= io_total(io)) {
		vh_bdev_io_done(io, x->status);
	}
}

/* Submit the next piece of @io; *len gets how much of it the piece covers. */
static int
submit_piece(struct vh_nvme_qpair *qp, struct vh_bdev_io *io, uint64_t *len)
{
	struct nvme_bdev *nb = ioctx(io)->chan->nb;
	uint64_t off = io->offset + ioctx(io)->done, left = io_total(io) - ioctx(io)->done;
	uint32_t shift = nb->lba_shift;
	/* Every piece of a durable request is FUA: the request completes with its last piece. */
	unsigned fua = io->flags & VH_BDEV_IO_F_FUA ? VH_NVME_CMD_FUA : 0;
	struct vh_nvme_dsm_range r;

	switch (io->type) {
	case VH_BDEV_IO_READ:
	case VH_BDEV_IO_WRITE:
		*len = VH_MIN(left, (uint64_t)vh_nvme_qpair_max_xfer(qp));
		*len &= ~((1ull << shift) - 1);
		return vh_nvme_qpair_rw_opts(
		        qp, io->type == VH_BDEV_IO_WRITE, nb->nsid, off >> shift,
		        (uint32_t)(*len >> shift), io->iov, io->iovcnt, ioctx(io)->done, *len,
		        io->type == VH_BDEV_IO_WRITE ? fua : 0, piece_done, io);
	case VH_BDEV_IO_FLUSH:
		*len = 1;
		return vh_nvme_qpair_flush(qp, nb->nsid, piece_done, io);
	case VH_BDEV_IO_WRITE_ZEROES:
		*len = VH_MIN(left, (uint64_t)VH_NVME_WZ_MAX_NLB << shift);
		return vh_nvme_qpair_write_zeroes(
		        qp, nb->nsid, off >> shift, (uint32_t)(*len >> shift),
		        (io->flags & VH_BDEV_IO_F_UNMAP ? VH_NVME_CMD_DEAC : 0) | fua, piece_done,
		        io);
	case VH_BDEV_IO_DISCARD:
		*len = VH_MIN(left, (uint64_t)DISCARD_MAX_NLB << shift);
		r = (struct vh_nvme_dsm_range){.nlb = (uint32_t)(*len >> shift),
		                               .slba = off >> shift};
		return vh_nvme_qpair_deallocate(qp, nb->nsid, &r, 1, piece_done, io);
	default:
		return -EOPNOTSUPP;
	}
}

/* Submit pieces until all are in flight (0) or one fails (its -errno). */
static int
pump(struct qp_slot *s, struct vh_bdev_io *io)
{
	struct io_ctx *x = ioctx(io);

	while (x->done < io_total(io)) {
		uint64_t len;
		int ret = submit_piece(s->qp, io, &len);

		if (ret < 0) {
			return ret;
		}
		x->outstanding++;
		x->done += len;
	}
	return 0;
}

static void
pending_add(struct qp_slot *s, struct vh_bdev_io *io)
{
	ioctx(io)->next = NULL;
	if (s->pending_tail != NULL) {
		ioctx(s->pending_tail)->next = io;
	} else {
		s->pending = io;
	}
	s->pending_tail = io;
}

/* Stop submitting @io after error @ret; it completes when its last piece does. */
static void
io_abandon(struct vh_bdev_io *io, int ret)
{
	struct io_ctx *x = ioctx(io);

	if (x->status == 0) {
		x->status = ret;
	}
	x->done = io_total(io);
	if (x->outstanding == 0) {
		vh_bdev_io_done(io, x->status);
	}
}

/* Continue the I/O that was accepted but ran out of command slots. Reactor, from poll. */
static bool
drain_pending(struct qp_slot *s)
{
	struct vh_bdev_io *io;
	bool did = false;

	while ((io = s->pending) != NULL) {
		int ret = pump(s, io);

		if (ret == -EAGAIN) {
			break;
		}
		s->pending = ioctx(io)->next;
		if (s->pending == NULL) {
			s->pending_tail = NULL;
		}
		did = true;
		if (ret < 0) {
			io_abandon(io, ret);
		}
	}
	return did;
}

static void
ring_deferred(struct vh_deferred *d)
{
	struct qp_slot *s = VH_CONTAINER_OF(d, struct qp_slot, ring);

	vh_nvme_qpair_ring(s->qp);
}

static int
check_io(const struct nvme_bdev *nb, const struct vh_bdev_io *io)
{
	uint64_t bs_mask = (1ull << nb->lba_shift) - 1, end;

	if (io->type == VH_BDEV_IO_FLUSH) {
		return 0;
	}
	if (io->length == 0 || ((io->offset | io->length) & bs_mask) != 0 ||
	    VH_ADD_OVERFLOW(io->offset, io->length, &end) || end > (nb->nsze << nb->lba_shift)) {
		return -EINVAL;
	}
	return 0;
}

static int
nvme_submit(void *chp, struct vh_bdev_io *io)
{
	struct nvme_chan *ch = chp;
	struct qp_slot *s = ch->slot;
	struct io_ctx *x = ioctx(io);
	int ret;

	ret = check_io(ch->nb, io);
	if (ret < 0) {
		return ret;
	}
	memset(x, 0, sizeof(*x));
	x->chan = ch;
	/* Keep order with I/O already waiting for slots. */
	ret = s->pending != NULL ? -EAGAIN : pump(s, io);
	if (vh_reactor_self() != NULL) {
		vh_reactor_defer(&s->ring);
	}
	if (ret == 0) {
		return 0;
	}
	if (x->outstanding == 0) {
		return ret; /* nothing in flight: the caller retries or fails it, cb never runs */
	}
	if (ret == -EAGAIN) {
		pending_add(s, io);
	} else {
		io_abandon(io, ret);
	}
	return 0;
}

static int
nvme_poll(void *chp)
{
	struct nvme_chan *ch = chp;
	struct qp_slot *s = ch->slot;
	int n;

	n = vh_nvme_qpair_poll(s->qp, POLL_BATCH);
	if (s->pending != NULL && drain_pending(s)) {
		vh_nvme_qpair_ring(s->qp);
		n++;
	}
	return n > 0 ? VH_POLL_BUSY : VH_POLL_IDLE;
}

/* No interrupts: while commands are in flight the reactor must keep polling. */
static int
nvme_arm(void *chp)
{
	struct nvme_chan *ch = chp;

	return vh_nvme_qpair_outstanding(ch->slot->qp) > 0 || ch->slot->pending != NULL;
}

/* ---- channels ------------------------------------------------------------------------------- */

static void *
nvme_channel_create(struct vh_bdev *b)
{
	struct nvme_bdev *nb = b->ctx;
	struct vh_reactor *r = vh_reactor_self();
	unsigned idx = r != NULL ? vh_reactor_index(r) : 0;
	struct nvme_chan *ch;
	struct qp_slot *s;
	int expected = SLOT_IDLE;

	if (idx >= nb->ce->nslots) {
		VH_ERR(COMP, "[%s] no I/O queue for reactor %u (the controller granted %u)",
		       nb->ce->name, idx, nb->ce->nslots);
		return NULL;
	}
	s = &nb->ce->slots[idx];
	if (s->qp == NULL) {
		/* A live upgrade's candidate before it took the device: nothing to submit to. */
		VH_WARN(COMP, "[%s] controller is waiting for the hand-over; channel refused",
		        nb->ce->name);
		return NULL;
	}
	/* Acquire: pairs with the release stores when a reset or the last channel lets go. */
	if (s->refs == 0 && !__atomic_compare_exchange_n(&s->state, &expected, SLOT_REACTOR, false,
	                                                 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		VH_WARN(COMP, "[%s] controller is resetting; channel refused", nb->ce->name);
		return NULL;
	}
	ch = calloc(1, sizeof(*ch));
	if (ch == NULL) {
		if (s->refs == 0) {
			__atomic_store_n(&s->state, SLOT_IDLE, __ATOMIC_RELEASE);
		}
		return NULL;
	}
	ch->nb = nb;
	ch->slot = s;
	s->refs++;
	return ch;
}

static void
nvme_channel_destroy(void *chp)
{
	struct nvme_chan *ch = chp;
	struct qp_slot *s = ch->slot;

	if (--s->refs == 0) {
		/* Release: our last qpair accesses happen before a reset may take the slot. */
		int expected = SLOT_REACTOR;

		__atomic_compare_exchange_n(&s->state, &expected, SLOT_IDLE, false,
		                            __ATOMIC_RELEASE, __ATOMIC_RELAXED);
	}
	free(ch);
}

/* ---- reset (control thread, with messages to the owning reactors) --------------------------- */

static void reset_advance(struct ctrlr_ent *ce);

static void
slot_step(struct qp_slot *s, enum reset_step step)
{
	switch (step) {
	case RESET_HALT:
		vh_nvme_qpair_halt(s->qp);
		break;
	case RESET_ABORT:
		vh_nvme_qpair_abort_all(s->qp);
		break;
	case RESET_RESUME:
		vh_nvme_qpair_resume(s->qp);
		break;
	case RESET_FAIL:
		vh_nvme_qpair_fail_all(s->qp, s->ce->removed ? -ENODEV : -EIO);
		while (s->pending != NULL) {
			struct vh_bdev_io *io = s->pending;

			s->pending = ioctx(io)->next;
			io_abandon(io, -EIO);
		}
		s->pending_tail = NULL;
		break;
	}
}

static void
reply_step(void *arg)
{
	struct qp_slot *s = arg;

	if (--s->ce->waiting == 0) {
		reset_advance(s->ce);
	}
}

/* On the slot's reactor: do this step, then tell the control thread. */
static void
reactor_step(void *arg)
{
	struct qp_slot *s = arg;

	slot_step(s, s->ce->step);
	if (s->ce->step == RESET_RESUME) {
		drain_pending(s);
		vh_nvme_qpair_ring(s->qp);
	}
	if (vh_control_send(reply_step, s) < 0) {
		VH_ERR(COMP, "[%s] reset reply lost: control queue full", s->ce->name);
	}
}

/* Run the current step on every slot; advance when all are done. */
static void
broadcast_step(struct ctrlr_ent *ce)
{
	ce->waiting = 1; /* held until the loop is done, so no reply can advance early */
	for (unsigned i = 0; i < ce->nslots; i++) {
		struct qp_slot *s = &ce->slots[i];
		int expected = SLOT_IDLE;

		if (ce->step == RESET_HALT) {
			s->delegated = !__atomic_compare_exchange_n(
			        &s->state, &expected, SLOT_CONTROL, false, __ATOMIC_ACQUIRE,
			        __ATOMIC_RELAXED);
		}
		if (!s->delegated) {
			slot_step(s, ce->step);
			continue;
		}
		ce->waiting++;
		if (vh_reactor_send(vh_reactor_get(s->idx), reactor_step, s) < 0) {
			VH_ERR(COMP, "[%s] reset step lost: reactor %u queue full", ce->name,
			       s->idx);
			ce->waiting--;
		}
	}
	if (--ce->waiting == 0) {
		reset_advance(ce);
	}
}

static void
reset_finish(struct ctrlr_ent *ce)
{
	for (unsigned i = 0; i < ce->nslots; i++) {
		if (!ce->slots[i].delegated) {
			/* Release: pairs with the acquire in nvme_channel_create(). */
			__atomic_store_n(&ce->slots[i].state, SLOT_IDLE, __ATOMIC_RELEASE);
		}
	}
	ce->resetting = false;
}

static void
reset_advance(struct ctrlr_ent *ce)
{
	int ret;

	switch (ce->step) {
	case RESET_HALT:
		ret = vh_nvme_ctrlr_reset_disable(ce->c);
		ce->removed = ce->removed || ret == -ENODEV;
		ce->step = ret == 0 ? RESET_ABORT : RESET_FAIL;
		break;
	case RESET_ABORT:
		ret = vh_nvme_ctrlr_reset_enable(ce->c);
		ce->step = ret == 0 ? RESET_RESUME : RESET_FAIL;
		break;
	case RESET_RESUME:
	case RESET_FAIL:
		VH_NOTICE(COMP, "[%s] reset %s", ce->name,
		          ce->step == RESET_RESUME ? "complete" : "failed: controller is offline");
		reset_finish(ce);
		return;
	}
	broadcast_step(ce);
}

static void
reset_start(void *arg)
{
	struct ctrlr_ent *ce = find_ctrlr_id((uint64_t)(uintptr_t)arg);

	if (ce == NULL || ce->resetting || ce->removed) {
		return;
	}
	VH_NOTICE(COMP, "[%s] resetting the controller", ce->name);
	ce->resetting = true;
	ce->step = RESET_HALT;
	broadcast_step(ce);
}

static void
mark_removed(void *arg)
{
	struct ctrlr_ent *ce = find_ctrlr_id((uint64_t)(uintptr_t)arg);

	if (ce != NULL && !ce->removed) {
		ce->removed = true;
		VH_ERR(COMP, "[%s] %s was removed; its bdevs fail I/O until detached", ce->name,
		       ce->traddr);
	}
}

/* Any thread (usually a reactor): only post a message. */
static void
on_event(struct vh_nvme_ctrlr *c, enum vh_nvme_event ev, void *arg)
{
	vh_msg_fn fn = ev == VH_NVME_EV_REMOVED ? mark_removed : reset_start;

	if (vh_control_send(fn, arg) < 0) {
		VH_LOG_RL(VH_LOG_ERROR, COMP, "controller event %d lost: control queue full", ev);
	}
}

/* ---- bdev module ---------------------------------------------------------------------------- */

static void
nvme_destruct(struct vh_bdev *b)
{
	free(b->ctx);
}

static void
nvme_info_json(struct vh_bdev *b, json_t *ds)
{
	struct nvme_bdev *nb = b->ctx;

	json_object_set_new(ds, "nvme",
	                    json_pack("{s:s, s:s, s:i, s:s}", "ctrlr", nb->ce->name, "traddr",
	                              nb->ce->traddr, "nsid", (json_int_t)nb->nsid, "mode",
	                              vh_nvme_access_name(nb->ce->mode)));
}

static json_t *
nvme_config_json(struct vh_bdev *b)
{
	struct nvme_bdev *nb = b->ctx;
	json_t *c, *params;

	if (!nb->first) {
		return NULL; /* the controller is re-created once, by its first namespace */
	}
	c = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "method", "bdev_nvme_attach_controller",
	              "params", "name", nb->ce->name, "trtype", "PCIe", "traddr", nb->ce->traddr,
	              "mode", vh_nvme_access_name(nb->ce->mode));
	/* Every attach option, or a restart would attach differently (or not at all). */
	params = json_object_get(c, "params");
	if (params != NULL && nb->ce->force) {
		json_object_set_new(params, "force", json_true());
	}
	if (params != NULL && nb->ce->hugepage_dir[0] != '\0') {
		json_object_set_new(params, "hugepage_dir", json_string(nb->ce->hugepage_dir));
	}
	return c;
}

static const struct vh_bdev_module nvme_module = {
        .name = MODULE_NAME,
        .channel_create = nvme_channel_create,
        .channel_destroy = nvme_channel_destroy,
        .submit = nvme_submit,
        .poll = nvme_poll,
        .arm = nvme_arm,
        .destruct = nvme_destruct,
        .info_json = nvme_info_json,
        .config_json = nvme_config_json,
};

/* ---- attach / detach ------------------------------------------------------------------------ */

int
vh_nvme_access_parse(const char *s, enum vh_nvme_access *out)
{
	if (strcmp(s, "vfio") == 0 || strcmp(s, "vfio-pci") == 0) {
		*out = VH_NVME_ACCESS_VFIO;
	} else if (strcmp(s, "uio") == 0 || strcmp(s, "uio_pci_generic") == 0) {
		*out = VH_NVME_ACCESS_UIO;
	} else {
		return -EINVAL;
	}
	return 0;
}

const char *
vh_nvme_access_name(enum vh_nvme_access mode)
{
	switch (mode) {
	case VH_NVME_ACCESS_VFIO:
		return "vfio";
	case VH_NVME_ACCESS_UIO:
		return "uio";
	default:
		return "mock";
	}
}

enum vh_nvme_access
vh_nvme_access_auto(const char *traddr)
{
	char bdf[16], path[PATH_MAX];

	if (vh_nvme_pci_parse_bdf(traddr, bdf, sizeof(bdf)) < 0 ||
	    access("/dev/vfio/vfio", F_OK) != 0) {
		return VH_NVME_ACCESS_UIO;
	}
	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/iommu_group", vh_nvme_sysfs_root, bdf);
	return access(path, F_OK) == 0 ? VH_NVME_ACCESS_VFIO : VH_NVME_ACCESS_UIO;
}

/* What the bdev takes from its namespace (@nb), whoever describes the controller. */
static void
fill_bdev_ns(struct vh_bdev *b, struct nvme_bdev *nb)
{
	b->module = &nvme_module;
	b->ctx = nb;
	b->block_size = 1u << nb->lba_shift;
	b->num_blocks = nb->nsze;
	b->fua = true; /* the FUA bit of Write and Write Zeroes (mandatory, spec.h) */
}

static void
fill_bdev(struct vh_bdev *b, struct nvme_bdev *nb, const struct vh_nvme_ctrlr *c)
{
	fill_bdev_ns(b, nb);
	b->io_types = (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE) | (1u << VH_BDEV_IO_FLUSH);
	if (c->cdata.oncs & VH_NVME_ONCS_DSM) {
		b->io_types |= 1u << VH_BDEV_IO_DISCARD;
	}
	if (c->cdata.oncs & VH_NVME_ONCS_WRITE_ZEROES) {
		b->io_types |= 1u << VH_BDEV_IO_WRITE_ZEROES;
	}
	b->write_cache = c->cdata.vwc & VH_NVME_VWC_PRESENT;
}

/* The namespace's NGUID (or EUI-64) as the bdev UUID, so it is stable across attaches. */
static void
set_uuid(struct vh_bdev *b, const struct vh_nvme_ns *ns)
{
	static const uint8_t zero[16];
	const uint8_t *g = ns->nguid;
	uint8_t buf[16] = {0};

	if (memcmp(ns->nguid, zero, 16) == 0) {
		if (memcmp(ns->eui64, zero, 8) == 0) {
			return; /* the bdev layer makes one up */
		}
		memcpy(buf, ns->eui64, 8);
		g = buf;
	}
	snprintf(b->uuid, sizeof(b->uuid),
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", g[0], g[1],
	         g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14],
	         g[15]);
}

/*
 * Register the bdev of namespace @ns (from the device), or of @promise (a live upgrade's
 * description of the old worker's bdev: the same geometry, features and UUID, so the vhost
 * configuration space built from it is the one the guest knows).
 */
static int
register_ns(struct ctrlr_ent *ce, const struct vh_nvme_ns *ns, const json_t *promise, bool first)
{
	const uint32_t known_io = (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE) |
	                          (1u << VH_BDEV_IO_FLUSH) | (1u << VH_BDEV_IO_DISCARD) |
	                          (1u << VH_BDEV_IO_WRITE_ZEROES);
	json_int_t nsid = 0, shift = 0, nsze = 0, io_types = 0;
	const char *uuid = "";
	struct nvme_bdev *nb;
	struct vh_bdev *b;
	int wc = 0, ret;

	if (promise != NULL &&
	    (json_unpack((json_t *)promise, "{s:I, s:I, s:I, s:I, s:b, s?s}", "nsid", &nsid,
	                 "lba_shift", &shift, "num_blocks", &nsze, "io_types", &io_types,
	                 "write_cache", &wc, "uuid", &uuid) != 0 ||
	     nsid <= 0 || nsid > UINT32_MAX || shift < 9 || shift > 16 || nsze <= 0 ||
	     (uint64_t)nsze > (UINT64_MAX >> shift) || ((uint64_t)io_types & ~known_io) != 0 ||
	     strlen(uuid) >= sizeof(b->uuid))) {
		VH_ERR(COMP, "[%s] bad namespace in the hand-over description", ce->name);
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	nb = calloc(1, sizeof(*nb));
	if (b == NULL || nb == NULL) {
		free(b);
		free(nb);
		return -ENOMEM;
	}
	if (promise != NULL) {
		*nb = (struct nvme_bdev){ce, (uint32_t)nsid, (uint32_t)shift, (uint64_t)nsze,
		                         first};
	} else {
		*nb = (struct nvme_bdev){ce, ns->nsid, ns->lba_shift, ns->nsze, first};
	}
	if (snprintf(b->name, sizeof(b->name), "%sn%u", ce->name, nb->nsid) >= VH_NAME_MAX) {
		free(b);
		free(nb);
		return -ENAMETOOLONG;
	}
	if (promise != NULL) {
		fill_bdev_ns(b, nb);
		b->io_types = (uint32_t)io_types;
		b->write_cache = wc != 0;
		memcpy(b->uuid, uuid, strlen(uuid) + 1);
	} else {
		fill_bdev(b, nb, ce->c);
		set_uuid(b, ns);
	}
	memcpy(ce->bdev_names[ce->nbdevs], b->name, VH_NAME_MAX);
	ret = vh_bdev_register(b); /* owns @b (and @nb, through destruct) only on success */
	if (ret < 0) {
		VH_ERR(COMP, "[%s] registering bdev %s: %s", ce->name, b->name, strerror(-ret));
		free(nb);
		free(b);
		return ret;
	}
	ce->nbdevs++;
	return 0;
}

static void
delete_bdevs(struct ctrlr_ent *ce)
{
	while (ce->nbdevs > 0) {
		ce->nbdevs--;
		vh_bdev_delete(ce->bdev_names[ce->nbdevs], MODULE_NAME);
	}
}

static void
ctrlr_free(struct ctrlr_ent *ce)
{
	vh_nvme_ctrlr_destroy(ce->c);
	vh_nvme_dev_close(ce->dev);
	free(ce->slots);
	free(ce->bdev_names);
	free(ce);
}

static int
setup_slots(struct ctrlr_ent *ce)
{
	ce->nslots = ce->c->num_io_queues;
	ce->slots = calloc(ce->nslots, sizeof(*ce->slots));
	ce->bdev_names = calloc(VH_MAX(ce->c->num_ns, 1u), sizeof(*ce->bdev_names));
	if (ce->slots == NULL || ce->bdev_names == NULL) {
		return -ENOMEM;
	}
	for (unsigned i = 0; i < ce->nslots; i++) {
		ce->slots[i].ce = ce;
		ce->slots[i].qp = vh_nvme_ctrlr_ioq(ce->c, i);
		ce->slots[i].idx = i;
		ce->slots[i].ring.fn = ring_deferred;
	}
	return 0;
}

/* Open the device and bring the controller up (ce->dev, ce->c); no slots. */
static int
open_device(struct ctrlr_ent *ce, const char *traddr, const struct vh_bdev_nvme_opts *o)
{
	struct vh_nvme_dev_opts dopts = {
	        .mode = ce->mode,
	        .force = o->force,
	        .hugepage_dir = o->hugepage_dir,
	        .mock_ops = o->mock_ops,
	        .mock_ctx = o->mock_ctx,
	};
	struct vh_nvme_ctrlr_opts copts = {
	        .num_io_queues = (uint16_t)VH_MAX(vh_reactor_count(), 1u),
	        .io_queue_depth = o->io_queue_depth,
	        .io_timeout_ms = o->io_timeout_ms ? o->io_timeout_ms : 30000,
	        .max_retries = 3,
	        .bounce_pages = o->bounce_pages,
	        .event_cb = on_event,
	        .event_arg = (void *)(uintptr_t)ce->id,
	};
	int ret;

	ret = vh_nvme_dev_open(traddr, &dopts, &ce->dev);
	if (ret < 0) {
		return ret;
	}
	ret = vh_nvme_ctrlr_init(ce->dev, &copts, &ce->c);
	if (ret < 0) {
		return ret;
	}
	if (ce->c->num_io_queues < copts.num_io_queues) {
		VH_WARN(COMP, "[%s] %u I/O queues for %u reactors: reactors beyond get no channel",
		        ce->name, ce->c->num_io_queues, copts.num_io_queues);
	}
	return 0;
}

static int
open_ctrlr(struct ctrlr_ent *ce, const char *traddr, const struct vh_bdev_nvme_opts *o)
{
	int ret = open_device(ce, traddr, o);

	return ret < 0 ? ret : setup_slots(ce);
}

static bool
traddr_in_use(const char *traddr)
{
	char norm[16];

	if (vh_nvme_pci_parse_bdf(traddr, norm, sizeof(norm)) < 0) {
		return false;
	}
	for (struct ctrlr_ent *ce = ctrlrs; ce != NULL; ce = ce->next) {
		if (strcmp(ce->traddr, norm) == 0) {
			return true;
		}
	}
	return false;
}

static json_t *
bdev_name_array(const struct ctrlr_ent *ce)
{
	json_t *a = json_array();

	for (unsigned i = 0; a != NULL && i < ce->nbdevs; i++) {
		json_array_append_new(a, json_string(ce->bdev_names[i]));
	}
	return a;
}

/* Guest memory for DMA: every kind is mapped (the IOMMU pins it either way). */
static int
nvme_hook_mem_reg(void *vaddr, size_t len, unsigned flags)
{
	(void)flags;
	return vh_nvme_mem_register(vaddr, len);
}

/* ---- live upgrade: the promise (candidate) ------------------------------------------------ */

/* The old worker's description of its controllers (vh_bdev_nvme_upgrade_expect). */
static json_t *g_promises;

/* The entry describing @ce (same name, address and access mode), or NULL. */
static const json_t *
find_promise(const struct ctrlr_ent *ce)
{
	size_t i;
	json_t *p;

	json_array_foreach(g_promises, i, p)
	{
		const char *name = json_string_value(json_object_get(p, "name"));
		const char *traddr = json_string_value(json_object_get(p, "traddr"));
		const char *mode = json_string_value(json_object_get(p, "mode"));

		if (name != NULL && traddr != NULL && mode != NULL && strcmp(name, ce->name) == 0 &&
		    strcmp(traddr, ce->traddr) == 0 &&
		    strcmp(mode, vh_nvme_access_name(ce->mode)) == 0) {
			return p;
		}
	}
	return NULL;
}

/* Create @ce and its bdevs from @promise without touching the device. */
static int
attach_waiting(struct ctrlr_ent *ce, const json_t *promise)
{
	const json_t *nss = json_object_get(promise, "namespaces");
	size_t n = json_array_size(nss);
	int ret;

	if (n == 0 || n > 1024) {
		VH_ERR(COMP, "[%s] bad hand-over description: %zu namespaces", ce->name, n);
		return -EINVAL;
	}
	ce->nslots = VH_MAX(vh_reactor_count(), 1u);
	ce->slots = calloc(ce->nslots, sizeof(*ce->slots));
	ce->bdev_names = calloc(n, sizeof(*ce->bdev_names));
	if (ce->slots == NULL || ce->bdev_names == NULL) {
		return -ENOMEM;
	}
	for (unsigned i = 0; i < ce->nslots; i++) {
		ce->slots[i].ce = ce;
		ce->slots[i].idx = i;
		ce->slots[i].ring.fn = ring_deferred;
	}
	ce->pending = true;
	for (size_t i = 0; i < n; i++) {
		ret = register_ns(ce, NULL, json_array_get(nss, i), i == 0);
		if (ret < 0) {
			return ret;
		}
	}
	return 0;
}

int
vh_bdev_nvme_attach(const char *name, const char *traddr, enum vh_nvme_access mode,
                    const struct vh_bdev_nvme_opts *opts, json_t **bdevs)
{
	static const struct vh_bdev_nvme_opts no_opts;
	static const struct vh_bdev_global_hooks hooks = {
	        .mem_reg = nvme_hook_mem_reg,
	        .mem_unreg = vh_nvme_mem_unregister,
	        .fini = vh_bdev_nvme_fini,
	};
	const json_t *promise;
	struct ctrlr_ent *ce;
	int ret;

	if (vh_name_check(name) < 0 || strlen(name) > VH_NAME_MAX - 12) {
		return -EINVAL;
	}
	if (find_ctrlr(name) != NULL || (mode != VH_NVME_ACCESS_MOCK && traddr_in_use(traddr))) {
		return -EEXIST;
	}
	/* From the first attach on, guest memory is mapped for DMA and shutdown detaches us. */
	if (vh_bdev_global_hooks_register(&hooks) < 0) {
		return -ENOSPC;
	}
	ce = calloc(1, sizeof(*ce));
	if (ce == NULL) {
		return -ENOMEM;
	}
	memcpy(ce->name, name, strlen(name) + 1);
	ce->mode = mode;
	ce->force = opts != NULL && opts->force;
	if (opts != NULL && opts->hugepage_dir != NULL &&
	    vh_strlcpy_checked(ce->hugepage_dir, opts->hugepage_dir, sizeof(ce->hugepage_dir)) <
	            0) {
		ret = -ENAMETOOLONG;
		goto out_free;
	}
	ce->id = next_id++;
	if (mode != VH_NVME_ACCESS_MOCK &&
	    vh_nvme_pci_parse_bdf(traddr, ce->traddr, sizeof(ce->traddr)) < 0) {
		ret = -EINVAL;
		goto out_free;
	}
	ce->opts = opts ? *opts : no_opts;
	ce->opts.hugepage_dir = ce->hugepage_dir[0] ? ce->hugepage_dir : NULL;
	promise = find_promise(ce);
	if (promise != NULL) {
		/* A live upgrade's candidate: the old worker holds the device until the freeze. */
		ret = attach_waiting(ce, promise);
		if (ret < 0) {
			goto out_bdevs;
		}
	} else {
		ret = open_ctrlr(ce, traddr, &ce->opts);
		if (ret < 0) {
			goto out_free;
		}
		for (uint32_t i = 0; i < ce->c->num_ns; i++) {
			ret = register_ns(ce, &ce->c->ns[i], NULL, ce->nbdevs == 0);
			if (ret < 0) {
				goto out_bdevs;
			}
		}
	}
	if (ce->nbdevs == 0) {
		VH_ERR(COMP, "[%s] no usable namespace", name);
		ret = -ENODEV;
		goto out_free;
	}
	ce->next = ctrlrs;
	ctrlrs = ce;
	VH_NOTICE(COMP, "[%s] %s %s (%s): %u bdev(s), %u I/O queue(s)", name,
	          ce->pending ? "waiting for the hand-over of" : "attached", ce->traddr,
	          vh_nvme_access_name(mode), ce->nbdevs, ce->nslots);
	if (bdevs != NULL) {
		*bdevs = bdev_name_array(ce);
	}
	return 0;

out_bdevs:
	delete_bdevs(ce);
out_free:
	ctrlr_free(ce);
	return ret;
}

int
vh_bdev_nvme_detach(const char *name)
{
	struct ctrlr_ent *ce = find_ctrlr(name), **pp;

	if (ce == NULL) {
		return -ENODEV;
	}
	/*
	 * A running reset still uses ce. A reset request still queued is harmless: messages carry
	 * the controller's id, and an id that is gone is ignored.
	 */
	if (ce->resetting) {
		return -EBUSY;
	}
	for (unsigned i = 0; i < ce->nbdevs; i++) {
		struct vh_bdev *b = vh_bdev_find(ce->bdev_names[i]);

		if (b != NULL && vh_bdev_claimed_by(b) != NULL) {
			return -EBUSY;
		}
	}
	delete_bdevs(ce);
	for (pp = &ctrlrs; *pp != ce; pp = &(*pp)->next) {
	}
	*pp = ce->next;
	VH_NOTICE(COMP, "[%s] detached %s", ce->name, ce->traddr);
	ctrlr_free(ce);
	return 0;
}

static const char *
state_name(const struct ctrlr_ent *ce)
{
	if (ce->pending) {
		return "waiting for hand-over";
	}
	if (ce->released) {
		return "released for an upgrade";
	}
	if (ce->removed) {
		return "removed";
	}
	if (ce->resetting) {
		return "resetting";
	}
	return __atomic_load_n(&ce->c->state, __ATOMIC_RELAXED) == VH_NVME_CTRLR_FAILED ? "failed"
	                                                                                : "enabled";
}

static json_t *
ctrlr_json(const struct ctrlr_ent *ce)
{
	const struct vh_nvme_id_ctrl *id;
	json_t *nss = json_array(), *one;

	if (ce->c == NULL) {
		json_decref(nss);
		return json_pack("{s:s, s:[{s:s, s:{s:s, s:s}, s:s}]}", "name", ce->name, "ctrlrs",
		                 "state", state_name(ce), "trid", "trtype", "PCIe", "traddr",
		                 ce->traddr, "mode", vh_nvme_access_name(ce->mode));
	}
	id = &ce->c->cdata;
	for (uint32_t i = 0; nss != NULL && i < ce->c->num_ns; i++) {
		const struct vh_nvme_ns *ns = &ce->c->ns[i];

		json_array_append_new(
		        nss, json_pack("{s:i, s:s, s:I, s:i}", "nsid", (json_int_t)ns->nsid, "bdev",
		                       ce->bdev_names[i], "num_blocks", (json_int_t)ns->nsze,
		                       "block_size", (json_int_t)(1u << ns->lba_shift)));
	}
	one = json_pack("{s:s, s:{s:s, s:s}, s:s, s:i, s:s%, s:s%, s:s%, s:i, s:i, s:I, s:o}",
	                "state", state_name(ce), "trid", "trtype", "PCIe", "traddr", ce->traddr,
	                "mode", vh_nvme_access_name(ce->mode), "cntlid", (json_int_t)id->cntlid,
	                "model_number", id->mn, strnlen(id->mn, sizeof(id->mn)), "serial_number",
	                id->sn, strnlen(id->sn, sizeof(id->sn)), "firmware_revision", id->fr,
	                strnlen(id->fr, sizeof(id->fr)), "io_queues", (json_int_t)ce->nslots,
	                "max_transfer", (json_int_t)ce->c->max_xfer, "resets",
	                (json_int_t)ce->c->resets, "namespaces", nss ? nss : json_array());
	return json_pack("{s:s, s:[o]}", "name", ce->name, "ctrlrs", one ? one : json_object());
}

int
vh_bdev_nvme_get_controllers(const char *name, json_t **out)
{
	json_t *a = json_array();

	if (a == NULL) {
		return -ENOMEM;
	}
	for (struct ctrlr_ent *ce = ctrlrs; ce != NULL; ce = ce->next) {
		if (name == NULL || strcmp(ce->name, name) == 0) {
			json_array_append_new(a, ctrlr_json(ce));
		}
	}
	if (name != NULL && json_array_size(a) == 0) {
		json_decref(a);
		return -ENODEV;
	}
	*out = a;
	return 0;
}

void
vh_bdev_nvme_fini(void)
{
	while (ctrlrs != NULL) {
		struct ctrlr_ent *ce = ctrlrs;

		ctrlrs = ce->next;
		delete_bdevs(ce);
		ctrlr_free(ce);
	}
}

const struct vh_bdev_mem_hooks vh_bdev_nvme_mem_hooks = {
        .reg = vh_nvme_mem_register,
        .unreg = vh_nvme_mem_unregister,
};

/* ---- live upgrade ------------------------------------------------------------------------- */

/* Whether @ce is in no state to be handed over: resetting, gone, failed, or mid-upgrade. */
static bool
ctrlr_unsettled(const struct ctrlr_ent *ce)
{
	return ce->resetting || ce->removed || ce->pending || ce->released || ce->c == NULL ||
	       __atomic_load_n(&ce->c->state, __ATOMIC_RELAXED) != VH_NVME_CTRLR_READY;
}

int
vh_bdev_nvme_upgrade_describe(json_t **out, char *why, size_t whylen)
{
	json_t *a = json_array();

	if (a == NULL) {
		return -ENOMEM;
	}
	for (struct ctrlr_ent *ce = ctrlrs; ce != NULL; ce = ce->next) {
		json_t *nss = json_array(), *one;

		if (ctrlr_unsettled(ce)) {
			snprintf(why, whylen,
			         "NVMe controller '%s' is %s: retry once it is enabled, or "
			         "detach it",
			         ce->name, state_name(ce));
			json_decref(nss);
			json_decref(a);
			return -EBUSY;
		}
		for (unsigned i = 0; nss != NULL && i < ce->nbdevs; i++) {
			struct vh_bdev *b = vh_bdev_find(ce->bdev_names[i]);
			struct nvme_bdev *nb = b != NULL ? b->ctx : NULL;

			if (nb == NULL) {
				continue;
			}
			json_array_append_new(
			        nss,
			        json_pack("{s:s, s:I, s:I, s:I, s:I, s:b, s:s}", "bdev", b->name,
			                  "nsid", (json_int_t)nb->nsid, "lba_shift",
			                  (json_int_t)nb->lba_shift, "num_blocks",
			                  (json_int_t)nb->nsze, "io_types", (json_int_t)b->io_types,
			                  "write_cache", (int)b->write_cache, "uuid", b->uuid));
		}
		one = json_pack("{s:s, s:s, s:s, s:o}", "name", ce->name, "traddr", ce->traddr,
		                "mode", vh_nvme_access_name(ce->mode), "namespaces",
		                nss ? nss : json_array());
		if (one == NULL || json_array_append_new(a, one) < 0) {
			json_decref(a);
			return -ENOMEM;
		}
	}
	*out = a;
	return 0;
}

int
vh_bdev_nvme_upgrade_expect(const json_t *desc)
{
	if (desc != NULL && !json_is_array(desc)) {
		return -EINVAL;
	}
	json_decref(g_promises);
	g_promises = desc != NULL ? json_deep_copy(desc) : NULL;
	return desc != NULL && g_promises == NULL ? -ENOMEM : 0;
}

/* Let go of the slots this release took (control thread owns them). */
static void
slots_give_back(struct ctrlr_ent *ce, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		/* Release: pairs with the acquire in nvme_channel_create(). */
		__atomic_store_n(&ce->slots[i].state, SLOT_IDLE, __ATOMIC_RELEASE);
	}
}

/* Take every slot of @ce for the control thread: no channel may be open. */
static int
slots_take(struct ctrlr_ent *ce, char *why, size_t whylen)
{
	for (unsigned i = 0; i < ce->nslots; i++) {
		int expected = SLOT_IDLE;

		/* Acquire: the reactor's last accesses to the qpair happen before ours. */
		if (!__atomic_compare_exchange_n(&ce->slots[i].state, &expected, SLOT_CONTROL,
		                                 false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			slots_give_back(ce, i);
			snprintf(why, whylen,
			         "NVMe controller '%s' still has an I/O channel on reactor %u",
			         ce->name, i);
			return -EBUSY;
		}
	}
	return 0;
}

bool
vh_bdev_nvme_upgrade_released(void)
{
	for (struct ctrlr_ent *ce = ctrlrs; ce != NULL; ce = ce->next) {
		if (ce->released) {
			return true;
		}
	}
	return false;
}

int
vh_bdev_nvme_upgrade_release(char *why, size_t whylen)
{
	struct ctrlr_ent *ce, *undo;
	int ret;

	for (ce = ctrlrs; ce != NULL; ce = ce->next) {
		if (ctrlr_unsettled(ce)) {
			snprintf(why, whylen, "NVMe controller '%s' is %s", ce->name,
			         state_name(ce));
			ret = -EBUSY;
		} else {
			ret = slots_take(ce, why, whylen);
		}
		if (ret < 0) {
			for (undo = ctrlrs; undo != ce; undo = undo->next) {
				slots_give_back(undo, undo->nslots);
			}
			return ret;
		}
	}
	for (ce = ctrlrs; ce != NULL; ce = ce->next) {
		uint64_t t0 = vh_now_ns();

		for (unsigned i = 0; i < ce->nslots; i++) {
			vh_nvme_qpair_halt(ce->slots[i].qp);
		}
		ce->resetting = true; /* no reset, detach or second release meanwhile */
		ce->released = true;
		ret = vh_nvme_ctrlr_release(ce->c);
		if (ret == 0) {
			ret = vh_nvme_dev_suspend(ce->dev);
		}
		if (ret < 0) {
			snprintf(why, whylen, "cannot release NVMe controller '%s' (%s): %s",
			         ce->name, ce->traddr, strerror(-ret));
			VH_ERR(COMP, "[%s] %s", ce->name, why);
			/* Everything released so far, this one too, comes back. */
			vh_bdev_nvme_upgrade_reclaim();
			for (undo = ce->next; undo != NULL; undo = undo->next) {
				slots_give_back(undo, undo->nslots);
			}
			return ret;
		}
		VH_NOTICE(COMP, "[%s] %s shut down and released for the new worker in %.3f ms",
		          ce->name, ce->traddr, (double)(vh_now_ns() - t0) / 1e6);
	}
	return 0;
}

int
vh_bdev_nvme_upgrade_reclaim(void)
{
	int rc = 0;

	for (struct ctrlr_ent *ce = ctrlrs; ce != NULL; ce = ce->next) {
		int ret;

		if (!ce->released) {
			continue;
		}
		ret = vh_nvme_dev_resume(ce->dev);
		if (ret == -EBUSY) {
			rc = -EBUSY; /* the candidate has not let go yet: the caller retries */
			continue;
		}
		/* The candidate may have left it enabled: disable first, as a reset does. */
		if (ret == 0) {
			ret = vh_nvme_ctrlr_reset_disable(ce->c);
		}
		for (unsigned i = 0; ret == 0 && i < ce->nslots; i++) {
			vh_nvme_qpair_abort_all(ce->slots[i].qp);
		}
		if (ret == 0) {
			ret = vh_nvme_ctrlr_reset_enable(ce->c);
		}
		for (unsigned i = 0; i < ce->nslots; i++) {
			if (ret == 0) {
				vh_nvme_qpair_resume(ce->slots[i].qp);
			} else {
				vh_nvme_qpair_fail_all(ce->slots[i].qp,
				                       ret == -ENODEV ? -ENODEV : -EIO);
			}
		}
		ce->removed = ce->removed || ret == -ENODEV;
		ce->released = false;
		ce->resetting = false;
		slots_give_back(ce, ce->nslots);
		if (ret < 0) {
			VH_ERR(COMP,
			       "[%s] cannot take %s back after the failed upgrade: %s; its bdevs "
			       "fail I/O until it is detached",
			       ce->name, ce->traddr, strerror(-ret));
			if (rc == 0) {
				rc = ret;
			}
		} else {
			VH_NOTICE(COMP, "[%s] took %s back and re-enabled it", ce->name,
			          ce->traddr);
		}
	}
	return rc;
}

/* Close what a failed take opened, so that the old worker can take the device back. */
static void
untake(struct ctrlr_ent *ce)
{
	for (unsigned i = 0; i < ce->nslots; i++) {
		ce->slots[i].qp = NULL;
	}
	vh_nvme_ctrlr_destroy(ce->c);
	vh_nvme_dev_close(ce->dev);
	ce->c = NULL;
	ce->dev = NULL;
	ce->pending = true;
	ce->taken = false;
}

void
vh_bdev_nvme_upgrade_drop(void)
{
	for (struct ctrlr_ent *ce = ctrlrs; ce != NULL; ce = ce->next) {
		if (ce->taken) {
			VH_NOTICE(COMP, "[%s] giving %s back to the old worker", ce->name,
			          ce->traddr);
			untake(ce);
		}
	}
}

/* The namespaces the device reports must be the ones the old worker served. */
static int
check_promise(struct ctrlr_ent *ce, char *why, size_t whylen)
{
	for (unsigned i = 0; i < ce->nbdevs; i++) {
		struct vh_bdev *b = vh_bdev_find(ce->bdev_names[i]), t = {0};
		struct nvme_bdev *nb = b != NULL ? b->ctx : NULL;
		const struct vh_nvme_ns *ns;

		if (nb == NULL) {
			continue;
		}
		ns = vh_nvme_ctrlr_ns(ce->c, nb->nsid);
		if (ns == NULL) {
			snprintf(why, whylen,
			         "NVMe controller '%s': namespace %u (bdev %s) is no longer active",
			         ce->name, nb->nsid, b->name);
			return -ESTALE;
		}
		if (ns->lba_shift != nb->lba_shift || ns->nsze != nb->nsze) {
			snprintf(why, whylen,
			         "NVMe controller '%s': namespace %u has %" PRIu64
			         " blocks of %u bytes, the old worker served %" PRIu64
			         " blocks of %u bytes (bdev %s)",
			         ce->name, nb->nsid, ns->nsze, 1u << ns->lba_shift, nb->nsze,
			         1u << nb->lba_shift, b->name);
			return -ESTALE;
		}
		fill_bdev(&t, nb, ce->c);
		set_uuid(&t, ns);
		if (t.io_types != b->io_types || t.write_cache != b->write_cache) {
			snprintf(why, whylen,
			         "NVMe controller '%s': the controller's features changed "
			         "(write cache %d, was %d; I/O types 0x%x, were 0x%x)",
			         ce->name, t.write_cache, b->write_cache, t.io_types, b->io_types);
			return -ESTALE;
		}
		if (t.uuid[0] != '\0' && strcmp(t.uuid, b->uuid) != 0) {
			snprintf(why, whylen,
			         "NVMe controller '%s': namespace %u is another one "
			         "(NGUID/EUI-64 %s, the old worker served %s)",
			         ce->name, nb->nsid, t.uuid, b->uuid);
			return -ESTALE;
		}
	}
	return 0;
}

int
vh_bdev_nvme_upgrade_take(char *why, size_t whylen)
{
	struct ctrlr_ent *ce, *undo;
	int ret = 0;

	for (ce = ctrlrs; ce != NULL; ce = ce->next) {
		uint64_t t0 = vh_now_ns();

		if (!ce->pending) {
			continue;
		}
		why[0] = '\0';
		ret = open_device(ce, ce->traddr, &ce->opts);
		if (ret == 0) {
			ret = check_promise(ce, why, whylen);
		}
		if (ret < 0) {
			if (why[0] == '\0') {
				snprintf(why, whylen,
				         "cannot take over NVMe controller '%s' (%s): %s", ce->name,
				         ce->traddr,
				         ret == -EBUSY ? "the device is still in use"
				                       : strerror(-ret));
			}
			VH_ERR(COMP, "[%s] %s", ce->name, why);
			untake(ce);
			break;
		}
		ce->nslots = VH_MIN(ce->nslots, (unsigned)ce->c->num_io_queues);
		for (unsigned i = 0; i < ce->nslots; i++) {
			ce->slots[i].qp = vh_nvme_ctrlr_ioq(ce->c, i);
		}
		ce->pending = false;
		ce->taken = true;
		VH_NOTICE(COMP, "[%s] took over %s from the old worker in %.3f ms: %u I/O queue(s)",
		          ce->name, ce->traddr, (double)(vh_now_ns() - t0) / 1e6, ce->nslots);
	}
	if (ret < 0) {
		/* All or nothing: the old worker takes every device back. */
		for (undo = ctrlrs; undo != ce; undo = undo->next) {
			if (undo->taken) {
				untake(undo);
			}
		}
		return ret;
	}
	vh_bdev_nvme_upgrade_expect(NULL);
	return 0;
}

void
vh_bdev_nvme_upgrade_commit(void)
{
	for (struct ctrlr_ent *ce = ctrlrs; ce != NULL; ce = ce->next) {
		ce->taken = false;
	}
}
