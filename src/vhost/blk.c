/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtio-blk device (VIRTIO 1.2 §5.2) behind the device interface (device.h): request
 * semantics, the configuration space, and the vhost_create_blk_controller side of controllers.
 *
 * Threat model: the request header, discard segments and every length come from guest memory.
 * The header and segments are copied out before they are checked (the guest can rewrite them
 * while we look); sector ranges are checked against the capacity with overflow-safe arithmetic.
 * A malformed request fails with IOERR/UNSUPP; only a malformed *ring* closes the session.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/handover.h"
#include "core/log.h"
#include "core/reactor.h"
#include "vhost/blk.h"
#include "vhost/device.h"
#include "vhost/mem.h"
#include "vhost/session.h"
#include "vhost/vring.h"

#define SECTOR_SHIFT        9
#define MAX_DISCARD_SECTORS (1u << 22) /* 2 GiB per segment */
#define MAX_DISCARD_SEG     1u
#define BLK_SEG_MAX         126           /* data segments advertised (seg_max) */
#define BLK_SIZE_MAX        (128u * 1024) /* bytes per segment advertised (size_max) */
/* Header + data + status descriptors, plus room for buffers split at region boundaries. */
#define BLK_MAX_IOV 136

struct blk_req {
	struct vh_req r; /* first: the ring code's part */
	uint8_t *status; /* the status byte in guest memory */
	/* The device-writable data buffers, iov[wdata, wdata + nwdata): logged at completion. */
	int wdata, nwdata;
	struct vh_bdev_io io;
	struct iovec iov[BLK_MAX_IOV];
};

static inline struct vh_blk_ctrlr *
ctrlr_of(const struct vh_vhost_ctrlr *c)
{
	return c->dev;
}

#define WCE_MAGIC 0x45435742u /* "BWCE" */

static struct vh_blk_wce_memory *
wce_memory(struct vh_blk_ctrlr *b)
{
	return b->wce_mem != NULL ? b->wce_mem : &b->wce_local;
}

/* ---- requests (reactor) ---- */

/* Copy @len bytes from the front of iov[0..cnt), consuming them in place. Returns the index of
 * the first iovec left, or -1 if the iovecs hold fewer than @len bytes. */
static int
iov_pull(struct iovec *iov, int cnt, void *dst, size_t len)
{
	uint8_t *d = dst;
	int i = 0;

	while (len > 0) {
		size_t chunk;

		if (i >= cnt) {
			return -1;
		}
		chunk = VH_MIN(len, iov[i].iov_len);
		memcpy(d, iov[i].iov_base, chunk);
		d += chunk;
		len -= chunk;
		iov[i].iov_base = (uint8_t *)iov[i].iov_base + chunk;
		iov[i].iov_len -= chunk;
		if (iov[i].iov_len == 0) {
			i++;
		}
	}
	return i;
}

static uint64_t
iov_total(const struct iovec *iov, int cnt)
{
	uint64_t t = 0;

	for (int i = 0; i < cnt; i++) {
		t += iov[i].iov_len;
	}
	return t;
}

static void
finish(struct vh_vq *vq, struct blk_req *req, uint8_t status)
{
	VH_WRITE_ONCE(*req->status, status);
	/* Live migration: what we (or the back-end) wrote into guest memory is dirty. */
	if (VH_UNLIKELY(vh_vq_logging(vq))) {
		vh_vq_log_iov_slow(vq, &req->iov[req->wdata], req->nwdata);
		vh_vq_log_hva_slow(vq, req->status, 1);
	}
	if (status != VIRTIO_BLK_S_OK) {
		req->r.used_len = 1;
		VH_STAT_ADD(vq->stat_errors, 1);
	}
	vh_vq_push_used(vq, &req->r);
}

static void
io_done(struct vh_bdev_io *io, int rc)
{
	struct blk_req *req = VH_CONTAINER_OF(io, struct blk_req, io);
	struct vh_vq *vq = req->r.vq;

	if (VH_UNLIKELY(rc != 0)) {
		uint32_t suppressed;

		/* Once per burst: a full disk fails every write, and the bdev logs the cause. */
		if (VH_LOG_ERROR <= vh_log_get_level() &&
		    vh_log_burst_allow(&vq->io_errors, vh_now_ns(), &suppressed)) {
			if (suppressed) {
				vh_log(VH_LOG_ERROR, vq->prefix,
				       "%u more failed request(s) since the last report",
				       suppressed);
			}
			vh_log(VH_LOG_ERROR, vq->prefix,
			       "I/O error %d (type %u, offset %" PRIu64 ", length %" PRIu64 ")", rc,
			       io->type, io->offset, io->length);
		}
		finish(vq, req, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (io->type == VH_BDEV_IO_READ || io->type == VH_BDEV_IO_WRITE) {
		VH_STAT_ADD(vq->stat_bytes, io->length);
	}
	finish(vq, req, VIRTIO_BLK_S_OK);
}

static void
submit(struct vh_vq *vq, struct blk_req *req)
{
	int rc = vh_bdev_submit(vq->dq, &req->io);

	if (VH_LIKELY(rc == 0)) {
		return;
	}
	if (rc == -EAGAIN || rc == -ENOMEM) {
		/* Back-pressure, not an error: try again on the next poll, in order. */
		vh_vq_defer_retry(vq, &req->r);
		return;
	}
	VH_LOG_RL(VH_LOG_ERROR, vq->prefix, "submit failed: %d", rc);
	finish(vq, req, VIRTIO_BLK_S_IOERR);
}

static int
blk_resubmit(struct vh_vq *vq, struct vh_req *r)
{
	struct blk_req *req = (struct blk_req *)r;
	int rc = vh_bdev_submit(vq->dq, &req->io);

	if (rc == -EAGAIN || rc == -ENOMEM) {
		return -EAGAIN;
	}
	if (rc < 0) {
		finish(vq, req, VIRTIO_BLK_S_IOERR);
	}
	return 0;
}

/* True if [sector, sector + bytes) is inside the disk and aligned to its block size. */
static bool
range_ok(const struct vh_bdev *b, uint64_t sector, uint64_t bytes, uint64_t *offset)
{
	uint64_t off, end;
	uint32_t bs = vh_bdev_block_size(b);

	if (sector > (UINT64_MAX >> SECTOR_SHIFT)) {
		return false;
	}
	off = sector << SECTOR_SHIFT;
	if (VH_ADD_OVERFLOW(off, bytes, &end) || end > vh_bdev_size(b)) {
		return false;
	}
	if ((off & (bs - 1)) != 0 || (bytes & (bs - 1)) != 0) {
		return false;
	}
	*offset = off;
	return true;
}

/* Writes must be durable at completion: the driver cannot flush, or chose write-through. */
static inline bool
write_through(const struct vh_vq *vq, const struct vh_blk_ctrlr *b)
{
	const struct vh_blk_session *bs = vq->s->dev;

	return __atomic_load_n(&bs->write_through, __ATOMIC_RELAXED) &&
	       vh_bdev_has_write_cache(b->bdev);
}

static uint8_t
prep_rw(struct vh_vq *vq, const struct vh_blk_ctrlr *b, struct blk_req *req,
        const struct virtio_blk_outhdr *hdr, struct iovec *data, int cnt, bool write)
{
	uint64_t len = iov_total(data, cnt), off;

	if (write && b->readonly) {
		return VIRTIO_BLK_S_IOERR;
	}
	if (!range_ok(b->bdev, hdr->sector, len, &off)) {
		VH_LOG_RL(VH_LOG_WARN, vq->prefix,
		          "%s out of range or unaligned: sector %" PRIu64 ", %" PRIu64 " bytes",
		          write ? "write" : "read", hdr->sector, len);
		return VIRTIO_BLK_S_IOERR;
	}
	req->io.type = write ? VH_BDEV_IO_WRITE : VH_BDEV_IO_READ;
	req->io.offset = off;
	req->io.length = len;
	req->io.iov = data;
	req->io.iovcnt = cnt;
	req->r.used_len = write ? 1 : (uint32_t)VH_MIN(len + 1, (uint64_t)UINT32_MAX);
	/* Write-through (vh_blk_cache_mode_update): durable before it completes. */
	if (write && write_through(vq, b)) {
		req->io.flags |= VH_BDEV_IO_F_FUA;
	}
	return 0xff; /* submit */
}

static uint8_t
prep_get_id(struct vh_vq *vq, struct blk_req *req, struct iovec *data, int cnt)
{
	const struct vh_blk_ctrlr *b = ctrlr_of(vq->s->c);
	size_t left = VH_MIN(sizeof(b->serial), (size_t)iov_total(data, cnt));
	const uint8_t *src = (const uint8_t *)b->serial;
	uint32_t copied = 0;

	for (int i = 0; i < cnt && left > 0; i++) {
		size_t chunk = VH_MIN(left, data[i].iov_len);

		memcpy(data[i].iov_base, src, chunk);
		src += chunk;
		left -= chunk;
		copied += (uint32_t)chunk;
	}
	req->r.used_len = copied + 1;
	return VIRTIO_BLK_S_OK;
}

static uint8_t
prep_discard_wz(struct vh_vq *vq, struct blk_req *req, uint32_t type, struct iovec *data, int cnt)
{
	const struct vh_blk_ctrlr *b = ctrlr_of(vq->s->c);
	struct virtio_blk_discard_write_zeroes seg;
	uint64_t len = iov_total(data, cnt), off;
	bool wz = type == VIRTIO_BLK_T_WRITE_ZEROES;
	uint64_t feat = wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD;

	if (!(__atomic_load_n(&vq->s->features, __ATOMIC_RELAXED) & (1ull << feat))) {
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (b->readonly) {
		return VIRTIO_BLK_S_IOERR;
	}
	if (len == 0 || len % sizeof(seg) != 0 || len / sizeof(seg) > MAX_DISCARD_SEG) {
		return VIRTIO_BLK_S_IOERR;
	}
	if (iov_pull(data, cnt, &seg, sizeof(seg)) < 0) {
		return VIRTIO_BLK_S_IOERR;
	}
	/* VIRTIO 1.2 §5.2.6.2: unmap is only defined for write-zeroes; other bits are reserved. */
	if ((!wz && seg.flags != 0) || (wz && (seg.flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))) {
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (seg.num_sectors == 0 || seg.num_sectors > MAX_DISCARD_SECTORS ||
	    !range_ok(b->bdev, seg.sector, (uint64_t)seg.num_sectors << SECTOR_SHIFT, &off)) {
		return VIRTIO_BLK_S_IOERR;
	}
	req->io.type = wz ? VH_BDEV_IO_WRITE_ZEROES : VH_BDEV_IO_DISCARD;
	req->io.flags =
	        (wz && (seg.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)) ? VH_BDEV_IO_F_UNMAP : 0;
	/* Written zeroes are data like any write; a discard promises nothing to make durable. */
	if (wz && write_through(vq, b)) {
		req->io.flags |= VH_BDEV_IO_F_FUA;
	}
	req->io.offset = off;
	req->io.length = (uint64_t)seg.num_sectors << SECTOR_SHIFT;
	req->io.iov = NULL;
	req->io.iovcnt = 0;
	req->r.used_len = 1;
	return 0xff;
}

static void
blk_handle(struct vh_vq *vq, struct vh_req *r)
{
	struct blk_req *req = (struct blk_req *)r;
	const struct vh_blk_ctrlr *b = ctrlr_of(vq->s->c);
	struct virtio_blk_outhdr hdr;
	uint8_t *status;
	int nr, nw, rc, first;
	uint8_t st;

	rc = vh_vq_walk_chain(vq, vq->s->mem, r->head, req->iov, BLK_MAX_IOV, &nr, &nw, &status);
	if (VH_UNLIKELY(rc == -EBADMSG || status == NULL)) {
		vh_vq_drop(vq, r);
		vh_vq_broken(vq, rc == -EBADMSG ? "guest violated the ring protocol: malformed "
		                                  "descriptor chain"
		                                : "guest violated the ring protocol: request "
		                                  "without a device-writable status byte");
		return;
	}
	req->status = status;
	req->wdata = 0;
	req->nwdata = 0;
	r->used_len = 1;
	req->io.cb = io_done;
	req->io.flags = 0;
	if (VH_UNLIKELY(rc < 0)) {
		VH_LOG_RL(VH_LOG_WARN, vq->prefix, "request buffers %s",
		          rc == -EFAULT ? "outside guest memory" : "have too many segments");
		finish(vq, req, VIRTIO_BLK_S_IOERR);
		return;
	}
	/* The status byte is the last writable byte: keep it out of the data buffers. */
	if (--req->iov[nr + nw - 1].iov_len == 0) {
		nw--;
	}
	req->wdata = nr;
	req->nwdata = nw;
	if (VH_LIKELY(nr > 0 && req->iov[0].iov_len >= sizeof(hdr))) {
		/* The common case, a buffer of its own or in front of the data: one fixed copy. */
		memcpy(&hdr, req->iov[0].iov_base, sizeof(hdr));
		req->iov[0].iov_base = (uint8_t *)req->iov[0].iov_base + sizeof(hdr);
		req->iov[0].iov_len -= sizeof(hdr);
		first = req->iov[0].iov_len == 0 ? 1 : 0;
	} else {
		first = iov_pull(req->iov, nr, &hdr, sizeof(hdr));
	}
	if (VH_UNLIKELY(first < 0)) {
		finish(vq, req, VIRTIO_BLK_S_IOERR); /* header missing or in a writable buffer */
		return;
	}
	switch (hdr.type) {
	case VIRTIO_BLK_T_IN:
		st = prep_rw(vq, b, req, &hdr, &req->iov[nr], nw, false);
		break;
	case VIRTIO_BLK_T_OUT:
		st = prep_rw(vq, b, req, &hdr, &req->iov[first], nr - first, true);
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (!vh_bdev_io_type_supported(b->bdev, VH_BDEV_IO_FLUSH)) {
			st = VIRTIO_BLK_S_OK;
			break;
		}
		req->io.type = VH_BDEV_IO_FLUSH;
		req->io.offset = 0;
		req->io.length = 0;
		req->io.iovcnt = 0;
		st = 0xff;
		break;
	case VIRTIO_BLK_T_GET_ID:
		st = prep_get_id(vq, req, &req->iov[nr], nw);
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		st = prep_discard_wz(vq, req, hdr.type, &req->iov[first], nr - first);
		break;
	default:
		st = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (st == 0xff) {
		submit(vq, req);
		return;
	}
	finish(vq, req, st);
}

static int
blk_queue_start(struct vh_vq *vq)
{
	vq->dq = vh_bdev_channel_get(ctrlr_of(vq->s->c)->bdev);
	return vq->dq != NULL ? 0 : -ENOMEM;
}

static void
blk_queue_stop(struct vh_vq *vq)
{
	vh_bdev_channel_put(vq->dq);
	vq->dq = NULL;
}

/* ---- features and configuration space (control) ---- */

static uint64_t
blk_features(const struct vh_vhost_ctrlr *c)
{
	const struct vh_blk_ctrlr *b = ctrlr_of(c);
	uint64_t f = (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
	             (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH) |
	             (1ull << VIRTIO_BLK_F_TOPOLOGY) | (1ull << VIRTIO_BLK_F_CONFIG_WCE) |
	             (1ull << VIRTIO_BLK_F_MQ);

	if (b->readonly) {
		f |= 1ull << VIRTIO_BLK_F_RO;
	}
	/* Packed rings when the controller was created with them (docs/design.md: opt-in). */
	if (b->packed_ring) {
		f |= 1ull << VIRTIO_F_RING_PACKED;
	}
	/* Offer only what the bdev can honour (a RO disk gets no discard/write-zeroes either). */
	if (!b->readonly && vh_bdev_io_type_supported(b->bdev, VH_BDEV_IO_DISCARD)) {
		f |= 1ull << VIRTIO_BLK_F_DISCARD;
	}
	if (!b->readonly && vh_bdev_io_type_supported(b->bdev, VH_BDEV_IO_WRITE_ZEROES)) {
		f |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	}
	return f;
}

static int
blk_session_init(struct vh_session *s)
{
	struct vh_blk_session *bs = calloc(1, sizeof(*bs));
	const struct vh_blk_wce_memory *m;

	if (bs == NULL) {
		return -ENOMEM;
	}
	m = wce_memory(ctrlr_of(s->c));
	/* What the controller's front-ends last saw, or the default a new one will read. */
	bs->wce = m->known ? m->wce : vh_bdev_has_write_cache(ctrlr_of(s->c)->bdev) ? 1 : 0;
	s->dev = bs;
	vh_blk_cache_mode_update(s);
	return 0;
}

/*
 * A front-end that starts without having read the configuration space is reconnecting, and
 * answers its guest from a copy it read from a previous session. When nothing tells us what
 * that copy says (the controller was created anew, by a restart without a supervisor), assume
 * the guest chose write-through: a guest that believes its writes are stable must not be served
 * from a write cache; the cost of a wrong guess the other way is only speed.
 */
static void
blk_features_set(struct vh_session *s)
{
	struct vh_blk_session *bs = s->dev;
	const struct vh_blk_wce_memory *m = wce_memory(ctrlr_of(s->c));

	if (!bs->wce_known && !m->known && (s->features & (1ull << VIRTIO_BLK_F_CONFIG_WCE)) &&
	    (s->features & (1ull << VIRTIO_BLK_F_FLUSH)) && bs->wce != 0) {
		bs->wce = 0;
		VH_LOG_RL(VH_LOG_NOTICE, s->prefix,
		          "front-end reconnected without reading the configuration, and its "
		          "write-cache mode is unknown: serving it write-through");
	}
	vh_blk_cache_mode_update(s);
}

/*
 * VIRTIO 1.2 §5.2.6.2: a completed write must already be stable when FLUSH was not negotiated
 * (the driver has no way to ask later: Linux then assumes no write cache, SPDK's and DPDK's
 * virtio-user never ack FLUSH), or when CONFIG_WCE was and the driver set writeback to 0
 * (write-through, as QEMU's own virtio-blk does it). CONFIG_WCE without FLUSH starts at 0
 * (§5.2.5.2) and stays there: writeback without a flush command could never be made durable.
 * Relaxed store: reactors read it once per write, and a write racing with SET_CONFIG may be
 * either (§5.2.6.2 leaves it undefined).
 */
void
vh_blk_cache_mode_update(struct vh_session *s)
{
	struct vh_blk_session *bs = s->dev;
	bool flush = s->features & (1ull << VIRTIO_BLK_F_FLUSH);
	bool config_wce = s->features & (1ull << VIRTIO_BLK_F_CONFIG_WCE);

	if (config_wce && !flush) {
		bs->wce = 0;
	}
	__atomic_store_n(&bs->write_through, !flush || (config_wce && bs->wce == 0),
	                 __ATOMIC_RELAXED);
}

static void
blk_session_fini(struct vh_session *s)
{
	free(s->dev);
	s->dev = NULL;
}

static void
blk_get_config(const struct vh_session *s, uint8_t *out)
{
	const struct vh_blk_ctrlr *b = ctrlr_of(s->c);
	const struct vh_blk_session *bs = s->dev;
	uint32_t bsz = vh_bdev_block_size(b->bdev);
	struct virtio_blk_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.capacity = vh_bdev_size(b->bdev) >> SECTOR_SHIFT;
	cfg.size_max = BLK_SIZE_MAX;
	cfg.seg_max = BLK_SEG_MAX;
	cfg.blk_size = bsz;
	cfg.physical_block_exp = 0;
	cfg.alignment_offset = 0;
	cfg.min_io_size = 1;
	cfg.opt_io_size = 0;
	cfg.wce = bs->wce;
	cfg.num_queues = s->c->num_queues;
	cfg.max_discard_sectors = MAX_DISCARD_SECTORS;
	cfg.max_discard_seg = MAX_DISCARD_SEG;
	cfg.discard_sector_alignment = bsz >> SECTOR_SHIFT;
	cfg.max_write_zeroes_sectors = MAX_DISCARD_SECTORS;
	cfg.max_write_zeroes_seg = MAX_DISCARD_SEG;
	cfg.write_zeroes_may_unmap = 1;
	memcpy(out, &cfg, sizeof(cfg));
}

/*
 * The front-end now knows the session's writeback byte: it read it (GET_CONFIG; QEMU caches
 * what it reads) or its driver wrote it (SET_CONFIG). Remember it for its reconnects.
 */
static void
blk_config_read(struct vh_session *s)
{
	struct vh_blk_session *bs = s->dev;
	struct vh_blk_wce_memory *m = wce_memory(ctrlr_of(s->c));

	bs->wce_known = true;
	m->wce = bs->wce;
	m->known = 1;
}

static int
blk_set_config(struct vh_session *s, uint32_t offset, const uint8_t *data, uint32_t size)
{
	struct vh_blk_session *bs = s->dev;

	/* Only the writeback byte is writable (VIRTIO 1.2 §5.2.4, with CONFIG_WCE). */
	if (offset != offsetof(struct virtio_blk_config, wce) || size != 1 ||
	    !(s->features & (1ull << VIRTIO_BLK_F_CONFIG_WCE)) || data[0] > 1) {
		VH_LOG_RL(VH_LOG_WARN, s->prefix,
		          "SET_CONFIG of read-only field (offset %u size %u)", offset, size);
		return -EINVAL;
	}
	bs->wce = data[0];
	blk_config_read(s);
	vh_blk_cache_mode_update(s);
	VH_LOG_RL(VH_LOG_INFO, s->prefix, "guest set write cache to %s",
	          bs->wce ? "write back" : "write through");
	return 0;
}

/* Live upgrade: the writeback byte is the only session state the config space does not derive. */
static json_t *
blk_session_save(const struct vh_session *s)
{
	const struct vh_blk_session *bs = s->dev;

	return json_pack("{s:i}", "wce", (int)bs->wce);
}

static int
blk_session_load(struct vh_session *s, const json_t *state)
{
	struct vh_blk_session *bs = s->dev;
	const json_t *wce = json_object_get(state, "wce");

	if (!json_is_integer(wce) || json_integer_value(wce) < 0 || json_integer_value(wce) > 1) {
		return -EINVAL;
	}
	bs->wce = (uint8_t)json_integer_value(wce);
	bs->wce_known = true;
	vh_blk_cache_mode_update(s);
	return 0;
}

/* ---- controllers (control) ---- */

static int
blk_bdev_resized(struct vh_vhost_ctrlr *c, struct vh_bdev *b)
{
	int told = 0;

	if (ctrlr_of(c)->bdev != b) {
		return 0;
	}
	for (unsigned i = 0; i < VH_VHOST_MAX_SESSIONS; i++) {
		if (c->sessions[i] != NULL) {
			told += vh_session_config_changed(c->sessions[i]) == 0;
		}
	}
	return told;
}

static json_t *
blk_info_json(const struct vh_vhost_ctrlr *c)
{
	const struct vh_blk_ctrlr *b = ctrlr_of(c);
	char serial[VIRTIO_BLK_ID_BYTES + 1] = {0};

	memcpy(serial, b->serial, VIRTIO_BLK_ID_BYTES);
	return json_pack("{s:{s:b, s:s, s:s, s:s, s:i, s:b, s:b}}", "block", "readonly",
	                 b->readonly, "bdev", vh_bdev_name(b->bdev), "transport", "vhost_user_blk",
	                 "serial", serial, "num_queues", (int)c->num_queues, "packed_ring",
	                 b->packed_ring, "packed_ring_recovery", c->packed_recovery);
}

static json_t *
blk_config_json(const struct vh_vhost_ctrlr *c)
{
	const struct vh_blk_ctrlr *b = ctrlr_of(c);

	/*
	 * Every creation parameter, so a restart brings back the same device: num_queues above all,
	 * since a front-end started with num-queues=N cannot reconnect to fewer queues. SPDK reads
	 * these params relaxed, so the vhostd-only num_queues does not stop it loading the file.
	 */
	return json_pack("{s:s, s:{s:s, s:s, s:o, s:b, s:s, s:i, s:b, s:b}}", "method",
	                 "vhost_create_blk_controller", "params", "ctrlr", c->name, "dev_name",
	                 vh_bdev_name(b->bdev), "cpumask", vh_vhost_cpumask_json(c->cpumask),
	                 "readonly", b->readonly, "transport", "vhost_user_blk", "num_queues",
	                 (int)c->num_queues, "packed_ring", b->packed_ring, "packed_ring_recovery",
	                 c->packed_recovery);
}

static void
blk_ctrlr_free(struct vh_vhost_ctrlr *c)
{
	struct vh_blk_ctrlr *b = ctrlr_of(c);

	if (b->wce_mem != NULL) {
		char key[VH_HANDOVER_KEY_MAX];

		munmap(b->wce_mem, sizeof(*b->wce_mem));
		snprintf(key, sizeof(key), "blkwce:%s", c->name);
		vh_handover_drop(key);
	}
	vh_bdev_release(b->bdev);
	free(b);
	c->dev = NULL;
}

/*
 * The writeback memory of controller @name: the supervisor's page from a previous worker (a
 * crash or a live upgrade), or a new one it keeps from now on. Without a supervisor the page
 * is ours alone (and a restart starts from nothing, which blk_features_set() handles).
 */
static void
wce_memory_open(struct vh_blk_ctrlr *b, const char *name)
{
	char key[VH_HANDOVER_KEY_MAX];
	struct vh_blk_wce_memory *m = MAP_FAILED;
	struct stat st;
	bool kept = true;
	int fd;

	snprintf(key, sizeof(key), "blkwce:%s", name);
	fd = vh_handover_take(key);
	if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_size != (off_t)sizeof(*m))) {
		VH_WARN("vhost", "'%s': the kept write-cache state is malformed; starting anew",
		        name);
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		kept = false;
		fd = memfd_create("vhostd-blk-wce", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, sizeof(*m)) < 0) {
			goto out_local;
		}
	}
	m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		goto out_local;
	}
	if (kept && (m->magic != WCE_MAGIC || m->known > 1 || m->wce > 1)) {
		VH_WARN("vhost", "'%s': the kept write-cache state is malformed; starting anew",
		        name);
		kept = false;
	}
	if (!kept) {
		memset(m, 0, sizeof(*m));
		m->magic = WCE_MAGIC;
		vh_handover_keep(key, fd);
	} else if (m->known) {
		VH_INFO("vhost", "'%s': front-ends were last told write %s", name,
		        m->wce ? "back" : "through");
	}
	/* The mapping holds the page; the supervisor holds its own descriptor. */
	close(fd);
	b->wce_mem = m;
	return;

out_local:
	/* Still correct, only forgetful across a crash: such reconnects are served write-through.
	 */
	VH_WARN("vhost",
	        "'%s': no memory for the write-cache state (%s): kept in this process only", name,
	        strerror(errno));
	if (fd >= 0) {
		close(fd);
	}
}

const struct vh_dev_ops vh_blk_ops = {
        .name = "blk",
        .features = blk_features,
        .protocol_features = 1ull << VHOST_USER_PROTOCOL_F_CONFIG,
        .session_init = blk_session_init,
        .session_fini = blk_session_fini,
        .features_set = blk_features_set,
        .session_reset = vh_blk_cache_mode_update,
        .session_save = blk_session_save,
        .session_load = blk_session_load,
        .get_config = blk_get_config,
        .config_read = blk_config_read,
        .set_config = blk_set_config,
        .req_size = sizeof(struct blk_req),
        .queue_start = blk_queue_start,
        .queue_stop = blk_queue_stop,
        .handle = blk_handle,
        .resubmit = blk_resubmit,
        .bdev_resized = blk_bdev_resized,
        .info_json = blk_info_json,
        .config_json = blk_config_json,
        .ctrlr_free = blk_ctrlr_free,
};

int
vh_vhost_blk_create(const struct vh_vhost_blk_opts *o)
{
	struct vh_vhost_ctrlr *c;
	struct vh_blk_ctrlr *b;
	struct vh_bdev *bdev;
	int rc;

	if (o->packed_ring_recovery && !o->packed_ring) {
		return -EINVAL;
	}
	if (vh_name_check(o->name) < 0) {
		return -EINVAL;
	}
	if (vh_vhost_find(o->name) != NULL) {
		return -EEXIST;
	}
	bdev = vh_bdev_find(o->bdev_name);
	if (bdev == NULL) {
		return -ENODEV;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		return -ENOMEM;
	}
	b->bdev = bdev;
	b->readonly = o->readonly;
	b->packed_ring = o->packed_ring;
	memcpy(b->serial, o->name, VH_MIN(strlen(o->name), sizeof(b->serial)));
	rc = vh_bdev_claim(bdev, o->name);
	if (rc < 0) {
		goto out_free;
	}
	rc = vh_ctrlr_create(o->name, o->cpumask, o->num_queues, &vh_blk_ops, b, &c);
	if (rc < 0) {
		goto out_release;
	}
	c->packed_recovery = o->packed_ring_recovery;
	wce_memory_open(b, c->name);
	VH_NOTICE("vhost", "controller '%s' on bdev '%s' listening at %s (%u queues%s%s)", c->name,
	          vh_bdev_name(bdev), c->sock_path, c->num_queues, b->readonly ? ", read-only" : "",
	          b->packed_ring ? ", packed rings" : "");
	return 0;

out_release:
	vh_bdev_release(bdev);
out_free:
	free(b);
	return rc;
}
