/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Block device back-end interface: what a back-end (null, ram, uring, nvme) implements.
 *
 * Rules:
 * - create/destruct/info_json/config_json run on the control thread.
 * - channel_create/channel_destroy/submit/poll/arm run on the reactor owning the channel.
 * - submit follows the contract in bdev.h; a back-end that finishes inside submit() must still
 *   call the callback later (use vh_bdev_io_complete_deferred()).
 * - A back-end with a volatile write cache (write_cache) must support FLUSH, and either honour
 *   VH_BDEV_IO_F_FUA itself (set fua) or let the layer emulate it: the write, then a FLUSH,
 *   then the callback. Back-ends without a write cache never see the flag.
 */
#ifndef VH_BDEV_MODULE_H
#define VH_BDEV_MODULE_H

#include <jansson.h>

#include "bdev/bdev.h"
#include "core/reactor.h"

struct vh_bdev_module {
	const char *name;
	/* Reactor: per-reactor state. NULL on failure. */
	void *(*channel_create)(struct vh_bdev *b);
	void (*channel_destroy)(void *ch);
	/* Reactor: start one I/O. 0 or -errno (see bdev.h). */
	int (*submit)(void *ch, struct vh_bdev_io *io);
	/* Reactor: reap completions; VH_POLL_BUSY or VH_POLL_IDLE. Optional. */
	int (*poll)(void *ch);
	/* Reactor: before sleeping; > 0 if completions are pending. Optional. */
	int (*arm)(void *ch);
	/* Reactor: fd that becomes readable when completions arrive, or -1. Optional. */
	int (*wake_fd)(void *ch);
	/* Control: free the back-end's context. */
	void (*destruct)(struct vh_bdev *b);
	/* Control: add "driver_specific" members for bdev_get_bdevs. Optional. */
	void (*info_json)(struct vh_bdev *b, json_t *driver_specific);
	/* Control: the {method, params} object that re-creates this bdev (save_config). */
	json_t *(*config_json)(struct vh_bdev *b);
};

struct vh_bdev {
	char name[VH_NAME_MAX];
	char uuid[37];
	const struct vh_bdev_module *module;
	void *ctx; /* the back-end's */
	uint32_t block_size;
	uint64_t num_blocks;
	uint32_t io_types; /* bit (1 << enum vh_bdev_io_type) per supported type */
	bool write_cache;  /* completed writes may be volatile until FLUSH */
	bool fua;          /* submit() honours VH_BDEV_IO_F_FUA (else the layer emulates it) */

	/* Private to bdev.c. */
	char claimed_by[VH_NAME_MAX];
	uint32_t test_delay_us;
	struct vh_bdev_channel *channels[VH_MAX_REACTORS];
	struct vh_bdev *next;
	/* Private to the statistics and QoS code (bdev_internal.h). */
	struct vh_bdev_rstat *rstat[VH_MAX_REACTORS]; /* per reactor, kept after its channel */
	struct vh_bdev_iostat *stat_base;             /* bdev_reset_iostat's baseline */
	uint32_t stat_gen;                            /* bumped by a min/max reset */
	bool qos_on;                                  /* any QoS limit (reactors read it) */
	struct vh_bdev_qos *qos;                      /* NULL until a limit was first set */
};

/*
 * Register a filled-in bdev (name, module, ctx, block_size, num_blocks, io_types, write_cache,
 * fua). The layer takes ownership of @b (allocated with calloc). Returns 0, -EEXIST for a
 * duplicate name or -EINVAL for a bad name or geometry, or a write cache without FLUSH (nothing
 * could make its writes durable). Control thread.
 */
int vh_bdev_register(struct vh_bdev *b);

/*
 * Complete @io with @status (0 or -errno): calls io->cb now. Back-ends call it from poll(), never
 * from submit(). Reactor thread.
 */
void vh_bdev_io_done(struct vh_bdev_io *io, int status);

/*
 * For back-ends that finish inside submit(): complete @io with @status at the channel's next
 * poll, so the callback still runs "later". Reactor thread.
 */
void vh_bdev_io_complete_deferred(struct vh_bdev_io *io, int status);

/*
 * Process-wide hooks a back-end needs beyond its bdevs: guest memory for DMA mapping, and a
 * shutdown step. Registered once (e.g. at the first NVMe attach); memory already registered is
 * replayed to the new hook so nothing is missed. Control thread. Returns 0 or -ENOSPC.
 * A hook that sets mem_reg_owned gets the registering owner (bdev.h) and mem_reg is not called.
 */
struct vh_bdev_global_hooks {
	int (*mem_reg)(void *vaddr, size_t len, unsigned flags); /* VH_BDEV_MEM_* */
	int (*mem_reg_owned)(const void *owner, void *vaddr, size_t len, unsigned flags);
	int (*mem_unreg)(void *vaddr, size_t len);
	void (*fini)(void);
};
int vh_bdev_global_hooks_register(const struct vh_bdev_global_hooks *h);

/* Built-in back-ends (control thread). Return 0 or -errno. */
int vh_bdev_null_create(const char *name, uint64_t num_blocks, uint32_t block_size);
/*
 * A null bdev's reads: left untouched (the default, as SPDK's null bdev) or zero-filled (@on).
 * Control thread, before any channel is open. Returns 0, -EINVAL (not a null bdev) or -EBUSY (a
 * channel is open).
 */
int vh_bdev_null_set_read_zeroes(struct vh_bdev *b, bool on);
/* True if null bdev @b zero-fills reads. Any thread. */
bool vh_bdev_null_read_zeroes(const struct vh_bdev *b);
int vh_bdev_ram_create(const char *name, uint64_t num_blocks, uint32_t block_size);

#endif
