/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-blk request semantics (VIRTIO 1.2 §5.2) and the device configuration space.
 *
 * Threat model: the request header, discard segments and every length come from guest memory.
 * The header and segments are copied out before they are checked (the guest can rewrite them
 * while we look); sector ranges are checked against the capacity with overflow-safe arithmetic.
 * A malformed request fails with IOERR/UNSUPP; only a malformed *ring* closes the session.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "core/log.h"
#include "vhost/vhost_internal.h"

#define SECTOR_SHIFT        9
#define MAX_DISCARD_SECTORS (1u << 22) /* 2 GiB per segment */
#define MAX_DISCARD_SEG     1u

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
finish(struct vh_vq *vq, struct vh_blk_req *req, uint8_t status)
{
	VH_WRITE_ONCE(*req->status, status);
	if (status != VIRTIO_BLK_S_OK) {
		req->used_len = 1;
	}
	vh_vq_push_used(vq, req);
}

static void
io_done(struct vh_bdev_io *io, int rc)
{
	struct vh_blk_req *req = VH_CONTAINER_OF(io, struct vh_blk_req, io);
	struct vh_vq *vq = req->vq;

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
	finish(vq, req, VIRTIO_BLK_S_OK);
}

static void
submit(struct vh_vq *vq, struct vh_blk_req *req)
{
	int rc = vh_bdev_submit(vq->ch, &req->io);

	if (VH_LIKELY(rc == 0)) {
		return;
	}
	if (rc == -EAGAIN || rc == -ENOMEM) {
		/* Back-pressure, not an error: try again on the next poll, in order. */
		req->next_retry = NULL;
		*vq->retry_tail = req;
		vq->retry_tail = &req->next_retry;
		return;
	}
	VH_LOG_RL(VH_LOG_ERROR, vq->prefix, "submit failed: %d", rc);
	finish(vq, req, VIRTIO_BLK_S_IOERR);
}

void
vh_blk_retry(struct vh_vq *vq)
{
	while (vq->retry_head != NULL) {
		struct vh_blk_req *req = vq->retry_head;
		int rc = vh_bdev_submit(vq->ch, &req->io);

		if (rc == -EAGAIN || rc == -ENOMEM) {
			return;
		}
		vq->retry_head = req->next_retry;
		if (vq->retry_head == NULL) {
			vq->retry_tail = &vq->retry_head;
		}
		if (rc < 0) {
			finish(vq, req, VIRTIO_BLK_S_IOERR);
		}
	}
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

static uint8_t
prep_rw(struct vh_vq *vq, struct vh_blk_req *req, const struct virtio_blk_outhdr *hdr,
        struct iovec *data, int cnt, bool write)
{
	const struct vh_vhost_ctrlr *c = vq->s->c;
	uint64_t len = iov_total(data, cnt), off;

	if (write && c->readonly) {
		return VIRTIO_BLK_S_IOERR;
	}
	if (!range_ok(c->bdev, hdr->sector, len, &off)) {
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
	req->used_len = write ? 1 : (uint32_t)VH_MIN(len + 1, (uint64_t)UINT32_MAX);
	/* Write-through (vh_blk_cache_mode_update): durable before it completes. */
	if (write && __atomic_load_n(&vq->s->write_through, __ATOMIC_RELAXED) &&
	    vh_bdev_has_write_cache(c->bdev)) {
		req->io.flags |= VH_BDEV_IO_F_FUA;
	}
	return 0xff; /* submit */
}

static uint8_t
prep_get_id(struct vh_vq *vq, struct vh_blk_req *req, struct iovec *data, int cnt)
{
	const struct vh_vhost_ctrlr *c = vq->s->c;
	size_t left = VH_MIN(sizeof(c->serial), (size_t)iov_total(data, cnt));
	const uint8_t *src = (const uint8_t *)c->serial;
	uint32_t copied = 0;

	for (int i = 0; i < cnt && left > 0; i++) {
		size_t chunk = VH_MIN(left, data[i].iov_len);

		memcpy(data[i].iov_base, src, chunk);
		src += chunk;
		left -= chunk;
		copied += (uint32_t)chunk;
	}
	req->used_len = copied + 1;
	return VIRTIO_BLK_S_OK;
}

static uint8_t
prep_discard_wz(struct vh_vq *vq, struct vh_blk_req *req, uint32_t type, struct iovec *data,
                int cnt)
{
	const struct vh_vhost_ctrlr *c = vq->s->c;
	struct virtio_blk_discard_write_zeroes seg;
	uint64_t len = iov_total(data, cnt), off;
	bool wz = type == VIRTIO_BLK_T_WRITE_ZEROES;
	uint64_t feat = wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD;

	if (!(vq->s->features & (1ull << feat))) {
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (c->readonly) {
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
	    !range_ok(c->bdev, seg.sector, (uint64_t)seg.num_sectors << SECTOR_SHIFT, &off)) {
		return VIRTIO_BLK_S_IOERR;
	}
	req->io.type = wz ? VH_BDEV_IO_WRITE_ZEROES : VH_BDEV_IO_DISCARD;
	req->io.flags =
	        (wz && (seg.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)) ? VH_BDEV_IO_F_UNMAP : 0;
	/* Written zeroes are data like any write; a discard promises nothing to make durable. */
	if (wz && __atomic_load_n(&vq->s->write_through, __ATOMIC_RELAXED) &&
	    vh_bdev_has_write_cache(c->bdev)) {
		req->io.flags |= VH_BDEV_IO_F_FUA;
	}
	req->io.offset = off;
	req->io.length = (uint64_t)seg.num_sectors << SECTOR_SHIFT;
	req->io.iov = NULL;
	req->io.iovcnt = 0;
	req->used_len = 1;
	return 0xff;
}

void
vh_blk_handle(struct vh_vq *vq, struct vh_blk_req *req)
{
	struct virtio_blk_outhdr hdr;
	uint8_t *status;
	int nr, nw, rc, first;
	uint8_t st;

	rc = vh_vq_walk_chain(vq, vq->s->mem, req->head, req->iov, &nr, &nw, &status);
	if (VH_UNLIKELY(rc == -EBADMSG || status == NULL)) {
		vh_vq_drop(vq, req);
		vh_vq_broken(vq, rc == -EBADMSG ? "guest violated the ring protocol: malformed "
		                                  "descriptor chain"
		                                : "guest violated the ring protocol: request "
		                                  "without a device-writable status byte");
		return;
	}
	req->status = status;
	req->used_len = 1;
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
	first = iov_pull(req->iov, nr, &hdr, sizeof(hdr));
	if (VH_UNLIKELY(first < 0)) {
		finish(vq, req, VIRTIO_BLK_S_IOERR); /* header missing or in a writable buffer */
		return;
	}
	switch (hdr.type) {
	case VIRTIO_BLK_T_IN:
		st = prep_rw(vq, req, &hdr, &req->iov[nr], nw, false);
		break;
	case VIRTIO_BLK_T_OUT:
		st = prep_rw(vq, req, &hdr, &req->iov[first], nr - first, true);
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (!vh_bdev_io_type_supported(vq->s->c->bdev, VH_BDEV_IO_FLUSH)) {
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

uint64_t
vh_blk_features(const struct vh_vhost_ctrlr *c)
{
	uint64_t f = (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
	             (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH) |
	             (1ull << VIRTIO_BLK_F_TOPOLOGY) | (1ull << VIRTIO_BLK_F_CONFIG_WCE) |
	             (1ull << VIRTIO_BLK_F_MQ) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
	             (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_F_VERSION_1) |
	             (1ull << VHOST_USER_F_PROTOCOL_FEATURES);

	if (c->readonly) {
		f |= 1ull << VIRTIO_BLK_F_RO;
	}
	/* Offer only what the bdev can honour (a RO disk gets no discard/write-zeroes either). */
	if (!c->readonly && vh_bdev_io_type_supported(c->bdev, VH_BDEV_IO_DISCARD)) {
		f |= 1ull << VIRTIO_BLK_F_DISCARD;
	}
	if (!c->readonly && vh_bdev_io_type_supported(c->bdev, VH_BDEV_IO_WRITE_ZEROES)) {
		f |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	}
	return f;
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
	bool flush = s->features & (1ull << VIRTIO_BLK_F_FLUSH);
	bool config_wce = s->features & (1ull << VIRTIO_BLK_F_CONFIG_WCE);

	if (config_wce && !flush) {
		s->wce = 0;
	}
	__atomic_store_n(&s->write_through, !flush || (config_wce && s->wce == 0),
	                 __ATOMIC_RELAXED);
}

void
vh_blk_fill_config(const struct vh_session *s, struct virtio_blk_config *cfg)
{
	const struct vh_vhost_ctrlr *c = s->c;
	uint32_t bs = vh_bdev_block_size(c->bdev);

	memset(cfg, 0, sizeof(*cfg));
	cfg->capacity = vh_bdev_size(c->bdev) >> SECTOR_SHIFT;
	cfg->size_max = VH_BLK_SIZE_MAX;
	cfg->seg_max = VH_BLK_SEG_MAX;
	cfg->blk_size = bs;
	cfg->physical_block_exp = 0;
	cfg->alignment_offset = 0;
	cfg->min_io_size = 1;
	cfg->opt_io_size = 0;
	cfg->wce = s->wce;
	cfg->num_queues = c->num_queues;
	cfg->max_discard_sectors = MAX_DISCARD_SECTORS;
	cfg->max_discard_seg = MAX_DISCARD_SEG;
	cfg->discard_sector_alignment = bs >> SECTOR_SHIFT;
	cfg->max_write_zeroes_sectors = MAX_DISCARD_SECTORS;
	cfg->max_write_zeroes_seg = MAX_DISCARD_SEG;
	cfg->write_zeroes_may_unmap = 1;
}
