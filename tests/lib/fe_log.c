/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Dirty logging for live migration, played as QEMU 7.2 does it (hw/virtio/vhost.c
 * vhost_migration_log(), vhost-user.c vhost_user_set_log_base()): the log is a sealed memfd,
 * one bit per 4 KiB guest page, synchronised by atomically taking and clearing its words.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fe_internal.h"
#include "fe_msg.h"

#define LOG_PAGE 4096u

void
fe_log_free(struct vh_fe *fe)
{
	if (fe->log_map != NULL) {
		munmap(fe->log_map, fe->log_bytes);
	}
	if (fe->log_fd >= 0) {
		close(fe->log_fd);
	}
	fe->log_map = NULL;
	fe->log_fd = -1;
	fe->log_bytes = 0;
}

static int
log_alloc(struct vh_fe *fe)
{
	/* Guest RAM's GPAs are its file offsets: the log covers the whole file. */
	uint64_t pages = (fe->mem->size + LOG_PAGE - 1) / LOG_PAGE;
	uint64_t bytes = (pages + 7) / 8;
	int fd;

	bytes = (bytes + 4095) & ~4095ull;
	fd = memfd_create("vhost-log", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		return -errno;
	}
	if (ftruncate(fd, (off_t)bytes) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	fe->log_map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (fe->log_map == MAP_FAILED) {
		int rc = -errno;

		fe->log_map = NULL;
		close(fd);
		return rc;
	}
	fe->log_fd = fd;
	fe->log_bytes = bytes;
	return 0;
}

/* SET_VRING_ADDR again for every started queue, with or without used-ring logging. */
static int
set_addrs(struct vh_fe *fe, bool log)
{
	for (unsigned int q = 0; q < fe->opts.num_queues; q++) {
		struct vh_fe_vq *vq = &fe->vqs[q];
		struct vhost_vring_addr a = {
		        .index = vq->idx,
		        .flags = log ? 1u /* VHOST_VRING_F_LOG */ : 0,
		        .desc_user_addr = (uint64_t)(uintptr_t)vq->desc,
		        .used_user_addr = (uint64_t)(uintptr_t)vq->used,
		        .avail_user_addr = (uint64_t)(uintptr_t)vq->avail,
		        .log_guest_addr = vq->used_gpa,
		};
		int rc;

		if (!vq->started) {
			continue;
		}
		/* QEMU waits for the back-end to log before it goes on (vhost_user_set_vring_addr).
		 */
		rc = fe_msg(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, log);
		if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

int
vh_fe_log_start(struct vh_fe *fe)
{
	uint64_t payload[2], reply = 0;
	int rc;

	if (!fe->opts.log || !fe_proto(fe, VHOST_USER_PROTOCOL_F_LOG_SHMFD) ||
	    !fe_has(fe->info.backend_features, 26 /* VHOST_F_LOG_ALL */)) {
		return -ENOTSUP;
	}
	if (fe->log_fd < 0) {
		rc = log_alloc(fe);
		if (rc < 0) {
			return rc;
		}
	}
	payload[0] = fe->log_bytes;
	payload[1] = 0;
	rc = vh_fe_call(fe, VHOST_USER_SET_LOG_BASE, VHOST_USER_VERSION, payload, sizeof(payload),
	                &fe->log_fd, 1, &reply, sizeof(reply));
	if (rc < 0) {
		return rc;
	}
	fe->info.features |= 1ull << 26;
	/* With LOG_ALL QEMU waits for the reply: logging is on when it starts copying RAM. */
	rc = fe_set_u64(fe, VHOST_USER_SET_FEATURES, fe->info.features, true);
	if (rc == 0) {
		rc = set_addrs(fe, true);
	}
	return rc;
}

int
vh_fe_log_stop(struct vh_fe *fe)
{
	int rc;

	fe->info.features &= ~(1ull << 26);
	rc = fe_set_u64(fe, VHOST_USER_SET_FEATURES, fe->info.features, false);
	if (rc == 0) {
		rc = set_addrs(fe, false);
	}
	return rc;
}

uint64_t
vh_fe_log_sync(struct vh_fe *fe, uint8_t *out, uint64_t cap)
{
	uint64_t *w = (uint64_t *)fe->log_map;

	for (uint64_t i = 0; fe->log_map != NULL && i < fe->log_bytes / 8; i++) {
		uint64_t v = __atomic_exchange_n(&w[i], 0, __ATOMIC_SEQ_CST);

		if ((i + 1) * 8 <= cap) {
			memcpy(out + i * 8, &v, 8);
		}
	}
	return fe->log_bytes;
}

/*
 * ---- a live migration between two front-ends of one device ----
 *
 * QEMU's destination connects while the source still runs and realizes its device (sequence
 * A: features, config, ...); once the source stopped its rings (GET_VRING_BASE), RAM and the
 * device state (the ring bases) reach the destination, which starts the rings where the
 * source stopped (sequence B), and the source disconnects. Here both ends share this object's
 * rings and guest RAM (as with x-ignore-shared, or RAM already copied): the destination is a
 * second connection, opened by vh_fe_migrate_prepare() and taken over by vh_fe_migrate_finish().
 */
int
vh_fe_migrate_prepare(struct vh_fe *fe, int timeout_ms)
{
	int src_sock = fe->sock, src_backend = fe->backend_fd, rc;
	struct vh_fe_info src_info = fe->info;
	bool src_mem_sent = fe->mem_sent;

	if (fe->next_sock >= 0) {
		return -EBUSY;
	}
	fe->next_sock =
	        fe_connect_path(fe->opts.path, timeout_ms ? timeout_ms : fe->opts.timeout_ms);
	if (fe->next_sock < 0) {
		rc = fe->next_sock;
		fe->next_sock = -1;
		return rc;
	}
	/* Sequence A on the destination's connection, with the source's untouched. */
	fe->sock = fe->next_sock;
	fe->backend_fd = -1;
	rc = vh_fe_init(fe, true);
	fe->next_backend = fe->backend_fd;
	fe->next_info = fe->info;
	fe->sock = src_sock;
	fe->backend_fd = src_backend;
	fe->info = src_info;
	fe->mem_sent = src_mem_sent;
	return rc;
}

int
vh_fe_migrate_finish(struct vh_fe *fe)
{
	uint64_t features = fe->info.features & ~(1ull << 26); /* the destination does not log */
	unsigned int nstarted = fe->nstarted;

	if (fe->next_sock < 0) {
		return -EINVAL;
	}
	/* The source is gone (its QEMU exits); the destination has its own inflight region. */
	vh_fe_disconnect(fe);
	vh_fe_inflight_free(fe);
	fe->sock = fe->next_sock;
	fe->backend_fd = fe->next_backend;
	fe->info = fe->next_info;
	fe->next_sock = fe->next_backend = -1;
	fe->mem_sent = false;
	fe->running = false;
	for (unsigned int q = 0; q < fe->opts.num_queues; q++) {
		fe->vqs[q].started =
		        false; /* their bases are the source's GET_VRING_BASE answers */
	}
	return vh_fe_start(fe, features, nstarted);
}
