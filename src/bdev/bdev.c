/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The bdev registry and per-reactor channels. The registry is touched only by the control thread;
 * a channel only by its reactor (see bdev.h).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bdev/bdev_internal.h"
#include "core/log.h"

static struct vh_bdev *g_bdevs;

int
vh_name_check(const char *name)
{
	size_t len;

	if (name == NULL) {
		return -EINVAL;
	}
	len = strnlen(name, VH_NAME_MAX);
	if (len == 0 || len >= VH_NAME_MAX) {
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.' || c == ':')) {
			return -EINVAL;
		}
	}
	/* "." and ".." would be path components in the socket directory. */
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		return -EINVAL;
	}
	return 0;
}

static void
make_uuid(char out[37])
{
	uint8_t u[16];

	if (getrandom(u, sizeof(u), 0) != sizeof(u)) {
		uint64_t t = vh_now_ns();

		for (size_t i = 0; i < sizeof(u); i++) {
			u[i] = (uint8_t)(t >> ((i % 8) * 8)) ^ (uint8_t)(i * 131);
		}
	}
	u[6] = (u[6] & 0x0f) | 0x40; /* version 4 */
	u[8] = (u[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
	         u[13], u[14], u[15]);
}

int
vh_bdev_register(struct vh_bdev *b)
{
	uint64_t size;
	struct vh_bdev **pp;

	if (vh_name_check(b->name) < 0 || b->module == NULL) {
		return -EINVAL;
	}
	if (!VH_IS_POW2(b->block_size) || b->block_size < 512 || b->block_size > 65536) {
		return -EINVAL;
	}
	if (b->num_blocks == 0 || VH_MUL_OVERFLOW(b->num_blocks, (uint64_t)b->block_size, &size)) {
		return -EINVAL;
	}
	/* A volatile cache nothing can flush: neither FLUSH nor FUA could make a write durable. */
	if (b->write_cache && !(b->io_types & (1u << VH_BDEV_IO_FLUSH))) {
		return -EINVAL;
	}
	if (vh_bdev_find(b->name) != NULL) {
		return -EEXIST;
	}
	if (b->uuid[0] == '\0') {
		make_uuid(b->uuid);
	}
	for (pp = &g_bdevs; *pp; pp = &(*pp)->next) {
	}
	b->next = NULL;
	*pp = b;
	VH_INFO("bdev", "registered %s bdev '%s': %" PRIu64 " blocks of %u bytes", b->module->name,
	        b->name, b->num_blocks, b->block_size);
	return 0;
}

struct vh_bdev *
vh_bdev_find(const char *name)
{
	for (struct vh_bdev *b = g_bdevs; b; b = b->next) {
		if (strcmp(b->name, name) == 0) {
			return b;
		}
	}
	return NULL;
}

int
vh_bdev_foreach(int (*fn)(struct vh_bdev *b, void *arg), void *arg)
{
	for (struct vh_bdev *b = g_bdevs, *next; b; b = next) {
		next = b->next;
		int rc = fn(b, arg);

		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

int
vh_bdev_claim(struct vh_bdev *b, const char *owner)
{
	if (b->claimed_by[0] != '\0') {
		return -EBUSY;
	}
	return vh_strlcpy_checked(b->claimed_by, owner, sizeof(b->claimed_by));
}

void
vh_bdev_release(struct vh_bdev *b)
{
	b->claimed_by[0] = '\0';
}

const char *
vh_bdev_claimed_by(const struct vh_bdev *b)
{
	return b->claimed_by[0] ? b->claimed_by : NULL;
}

static void
bdev_free(struct vh_bdev *b)
{
	if (b->module->destruct) {
		b->module->destruct(b);
	}
	vh_bdev_rstat_free(b);
	vh_bdev_qos_free(b);
	free(b);
}

int
vh_bdev_delete(const char *name, const char *module)
{
	struct vh_bdev **pp;

	for (pp = &g_bdevs; *pp; pp = &(*pp)->next) {
		struct vh_bdev *b = *pp;

		if (strcmp(b->name, name) != 0) {
			continue;
		}
		if (module != NULL && strcmp(b->module->name, module) != 0) {
			return -EINVAL;
		}
		if (b->claimed_by[0] != '\0') {
			return -EBUSY;
		}
		*pp = b->next;
		VH_INFO("bdev", "deleted bdev '%s'", name);
		bdev_free(b);
		return 0;
	}
	return -ENODEV;
}

#define MAX_HOOKS 4

static const struct vh_bdev_global_hooks *g_hooks[MAX_HOOKS];
static unsigned g_nhooks;

/* Guest memory currently registered, replayed to hooks that arrive later. */
struct mem_ent {
	const void *owner;
	void *vaddr;
	size_t len;
	unsigned flags;
};
static struct mem_ent *g_mem;
static size_t g_nmem, g_cap_mem;

static int
hook_mem_reg(const struct vh_bdev_global_hooks *h, const struct mem_ent *m)
{
	if (h->mem_reg_owned != NULL) {
		return h->mem_reg_owned(m->owner, m->vaddr, m->len, m->flags);
	}
	return h->mem_reg != NULL ? h->mem_reg(m->vaddr, m->len, m->flags) : 0;
}

int
vh_bdev_global_hooks_register(const struct vh_bdev_global_hooks *h)
{
	for (unsigned i = 0; i < g_nhooks; i++) {
		if (g_hooks[i] == h) {
			return 0;
		}
	}
	if (g_nhooks >= MAX_HOOKS) {
		return -ENOSPC;
	}
	g_hooks[g_nhooks++] = h;
	for (size_t i = 0; i < g_nmem; i++) {
		hook_mem_reg(h, &g_mem[i]);
	}
	return 0;
}

void
vh_bdev_mem_register_owned(const void *owner, void *vaddr, size_t len, unsigned flags)
{
	struct mem_ent m = {owner, vaddr, len, flags};

	if (g_nmem == g_cap_mem) {
		size_t cap = g_cap_mem ? g_cap_mem * 2 : 16;
		struct mem_ent *n = realloc(g_mem, cap * sizeof(*n));

		if (n == NULL) {
			VH_WARN("bdev", "cannot track guest memory %p: DMA back-ends will bounce",
			        vaddr);
			return;
		}
		g_mem = n;
		g_cap_mem = cap;
	}
	g_mem[g_nmem++] = m;
	for (unsigned i = 0; i < g_nhooks; i++) {
		if (hook_mem_reg(g_hooks[i], &m) < 0) {
			VH_DEBUG("bdev", "guest memory %p+%zu not mapped for DMA: I/O will bounce",
			         vaddr, len);
		}
	}
}

void
vh_bdev_mem_register(void *vaddr, size_t len, unsigned flags)
{
	vh_bdev_mem_register_owned(NULL, vaddr, len, flags);
}

void
vh_bdev_mem_unregister(void *vaddr, size_t len)
{
	for (size_t i = 0; i < g_nmem; i++) {
		if (g_mem[i].vaddr == vaddr && g_mem[i].len == len) {
			g_mem[i] = g_mem[--g_nmem];
			break;
		}
	}
	for (unsigned i = 0; i < g_nhooks; i++) {
		if (g_hooks[i]->mem_unreg) {
			g_hooks[i]->mem_unreg(vaddr, len);
		}
	}
}

void
vh_bdev_fini(void)
{
	/* NVMe controllers own their bdevs: detach them first (queues deleted, device released). */
	for (unsigned i = 0; i < g_nhooks; i++) {
		if (g_hooks[i]->fini) {
			g_hooks[i]->fini();
		}
	}
	g_nhooks = 0;
	free(g_mem);
	g_mem = NULL;
	g_nmem = g_cap_mem = 0;
	while (g_bdevs) {
		struct vh_bdev *b = g_bdevs;

		g_bdevs = b->next;
		bdev_free(b);
	}
}

const char *
vh_bdev_name(const struct vh_bdev *b)
{
	return b->name;
}

const char *
vh_bdev_module_name(const struct vh_bdev *b)
{
	return b->module->name;
}

uint32_t
vh_bdev_block_size(const struct vh_bdev *b)
{
	return b->block_size;
}

uint64_t
vh_bdev_num_blocks(const struct vh_bdev *b)
{
	return __atomic_load_n(&b->num_blocks, __ATOMIC_RELAXED);
}

uint64_t
vh_bdev_size(const struct vh_bdev *b)
{
	return vh_bdev_num_blocks(b) * b->block_size;
}

bool
vh_bdev_io_type_supported(const struct vh_bdev *b, enum vh_bdev_io_type t)
{
	return (b->io_types & (1u << t)) != 0;
}

bool
vh_bdev_has_write_cache(const struct vh_bdev *b)
{
	return b->write_cache;
}

const char *
vh_bdev_uuid(const struct vh_bdev *b)
{
	return b->uuid;
}

int
vh_bdev_set_uuid(struct vh_bdev *b, const char *uuid)
{
	if (!vh_uuid_valid(uuid)) {
		return -EINVAL;
	}
	/* Once a controller holds it, guests and saved configs may already know the old one. */
	if (b->claimed_by[0] != '\0') {
		return -EBUSY;
	}
	for (size_t i = 0; i < sizeof(b->uuid); i++) {
		b->uuid[i] = (char)tolower((unsigned char)uuid[i]);
		if (uuid[i] == '\0') {
			break;
		}
	}
	return 0;
}

/* --- channels (reactor thread) --- */

static int
release_delayed(struct vh_bdev_channel *ch)
{
	struct vh_bdev_io **pp = &ch->delayed, *due = NULL, **due_tail = &due;
	uint64_t now = vh_now_ns();

	while (*pp) {
		struct vh_bdev_io *io = *pp;

		if (io->due_ns <= now) {
			*pp = io->next;
			io->next = NULL;
			*due_tail = io;
			due_tail = &io->next;
		} else {
			pp = &io->next;
		}
	}
	if (due == NULL) {
		return VH_POLL_IDLE;
	}
	while (due) {
		struct vh_bdev_io *next = due->next;

		due->cb = due->user_cb;
		due->cb(due, due->status);
		due = next;
	}
	return VH_POLL_BUSY;
}

static int fua_retry(struct vh_bdev_channel *ch);

static int
channel_poll(void *arg)
{
	struct vh_bdev_channel *ch = arg;
	struct vh_bdev_io *io = ch->done_head;
	int busy = VH_POLL_IDLE;

	if (VH_UNLIKELY(ch->delayed != NULL)) {
		busy = release_delayed(ch);
		io = ch->done_head;
	}
	if (VH_UNLIKELY(ch->fua_head != NULL) && fua_retry(ch) == VH_POLL_BUSY) {
		busy = VH_POLL_BUSY;
		io = ch->done_head;
	}

	/* Detach the list first: callbacks may submit and complete new I/O inline. */
	ch->done_head = NULL;
	ch->done_tail = &ch->done_head;
	ch->poll_now = 0; /* completions of this poll share one timestamp */
	vh_bdev_stat_sync_gen(ch);
	while (io) {
		struct vh_bdev_io *next = io->next;

		vh_bdev_account(ch, io, io->status);
		io->cb(io, io->status);
		io = next;
		busy = VH_POLL_BUSY;
	}
	if (ch->bdev->module->poll && ch->bdev->module->poll(ch->mctx) == VH_POLL_BUSY) {
		busy = VH_POLL_BUSY;
	}
	ch->poll_now = 0;
	if (VH_UNLIKELY(ch->qos_head != NULL) && vh_bdev_qos_dispatch(ch) == VH_POLL_BUSY) {
		busy = VH_POLL_BUSY;
	}
	return busy;
}

static int
channel_arm(void *arg)
{
	struct vh_bdev_channel *ch = arg;

	if (ch->done_head != NULL || ch->delayed != NULL || ch->fua_head != NULL) {
		return 1; /* delayed completions or flushes: keep polling until they are out */
	}
	if (ch->qos_head != NULL && vh_bdev_qos_arm(ch) > 0) {
		return 1; /* a request's turn has come, or there is no timer to wake us */
	}
	if (ch->bdev->module->arm) {
		return ch->bdev->module->arm(ch->mctx);
	}
	return 0;
}

static const struct vh_poller_ops channel_ops = {
        .poll = channel_poll,
        .arm = channel_arm,
};

struct vh_bdev_channel *
vh_bdev_channel_get(struct vh_bdev *b)
{
	struct vh_reactor *r = vh_reactor_self();
	struct vh_bdev_channel *ch;
	unsigned idx;
	int wake_fd = -1;

	if (r == NULL) {
		return NULL;
	}
	idx = vh_reactor_index(r);
	ch = b->channels[idx];
	if (ch != NULL) {
		ch->refs++;
		return ch;
	}
	ch = calloc(1, sizeof(*ch));
	if (ch == NULL) {
		return NULL;
	}
	ch->bdev = b;
	ch->reactor_idx = idx;
	ch->done_tail = &ch->done_head;
	/* Without its block the channel still works; its I/O is just not counted. */
	ch->rs = vh_bdev_rstat_get(b, idx);
	ch->ns_mult = vh_ticks_ns_mult();
	vh_bdev_qos_channel_init(ch);
	ch->fua_tail = &ch->fua_head;
	ch->mctx = b->module->channel_create(b);
	if (ch->mctx == NULL) {
		goto out_free;
	}
	if (b->module->wake_fd) {
		wake_fd = b->module->wake_fd(ch->mctx);
	}
	ch->poller = vh_poller_register(&channel_ops, ch, wake_fd, b->name);
	if (ch->poller == NULL) {
		goto out_destroy;
	}
	ch->refs = 1;
	b->channels[idx] = ch;
	return ch;

out_destroy:
	b->module->channel_destroy(ch->mctx);
out_free:
	free(ch);
	return NULL;
}

void
vh_bdev_channel_put(struct vh_bdev_channel *ch)
{
	if (ch == NULL || --ch->refs > 0) {
		return;
	}
	/* Consumers put their channel only after all their I/O completed. */
	ch->bdev->channels[ch->reactor_idx] = NULL;
	vh_bdev_qos_channel_fini(ch);
	vh_poller_unregister(&ch->poller);
	ch->bdev->module->channel_destroy(ch->mctx);
	free(ch);
}

static void
delayed_cb(struct vh_bdev_io *io, int status)
{
	struct vh_bdev_channel *ch = io->ch;
	uint32_t max = __atomic_load_n(&ch->bdev->test_delay_us, __ATOMIC_RELAXED);

	/* xorshift64: cheap, and good enough to scramble completion order. */
	ch->rng ^= ch->rng << 13;
	ch->rng ^= ch->rng >> 7;
	ch->rng ^= ch->rng << 17;
	io->status = status;
	io->due_ns = vh_now_ns() + (max ? (ch->rng % max) * 1000 : 0);
	io->next = ch->delayed;
	ch->delayed = io;
}

/* Submit to the back-end, through the test delay mode when it is on. */
static int
submit_now(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	/* Relaxed: the control thread may change it under running I/O (bdev_set_test_delay). */
	if (VH_UNLIKELY(__atomic_load_n(&ch->bdev->test_delay_us, __ATOMIC_RELAXED) != 0)) {
		int rc;

		if (ch->rng == 0) {
			ch->rng = vh_now_ns() | 1;
		}
		io->user_cb = io->cb;
		io->cb = delayed_cb;
		rc = ch->bdev->module->submit(ch->mctx, io);
		if (rc < 0) {
			io->cb = io->user_cb;
		}
		return rc;
	}
	return ch->bdev->module->submit(ch->mctx, io);
}

/*
 * FUA emulation for back-ends with a write cache that cannot force unit access themselves:
 * the write, then a FLUSH of the same io (the back-end is done with it), then the consumer's
 * callback with the first error. What the write left in the cache, the FLUSH makes durable.
 */
static void
fua_finish(struct vh_bdev_io *io, int status)
{
	io->type = io->fua_type;
	io->cb = io->fua_cb;
	/* Counted once, as the write it is, with the FLUSH's time in its latency. */
	io->flags &= (uint8_t)~VH_BDEV_IO_F_NOSTAT;
	vh_bdev_account(io->ch, io, status);
	io->cb(io, status);
}

static void
fua_flush_done(struct vh_bdev_io *io, int status)
{
	fua_finish(io, status);
}

/* Submit the FLUSH of a written @io. True unless the back-end asked to retry later. */
static bool
fua_flush(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	int rc;

	io->type = VH_BDEV_IO_FLUSH;
	io->cb = fua_flush_done;
	rc = submit_now(ch, io);
	if (rc == -EAGAIN || rc == -ENOMEM) {
		return false;
	}
	if (rc < 0) {
		fua_finish(io, rc);
	}
	return true;
}

static void
fua_write_done(struct vh_bdev_io *io, int status)
{
	struct vh_bdev_channel *ch = io->ch;

	if (status != 0) {
		fua_finish(io, status);
		return;
	}
	/* Behind FLUSHes already waiting, so completions keep their order. */
	if (ch->fua_head == NULL && fua_flush(ch, io)) {
		return;
	}
	io->next = NULL;
	*ch->fua_tail = io;
	ch->fua_tail = &io->next;
}

/* Poll: submit the FLUSHes the back-end refused with -EAGAIN/-ENOMEM. */
static int
fua_retry(struct vh_bdev_channel *ch)
{
	int busy = VH_POLL_IDLE;

	while (ch->fua_head != NULL) {
		struct vh_bdev_io *io = ch->fua_head;

		ch->fua_head = io->next;
		if (ch->fua_head == NULL) {
			ch->fua_tail = &ch->fua_head;
		}
		if (!fua_flush(ch, io)) {
			io->next = ch->fua_head;
			ch->fua_head = io;
			if (io->next == NULL) {
				ch->fua_tail = &io->next;
			}
			break;
		}
		busy = VH_POLL_BUSY;
	}
	return busy;
}

static int
fua_submit(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	const struct vh_bdev *b = ch->bdev;
	int rc;

	if (!b->write_cache ||
	    (io->type != VH_BDEV_IO_WRITE && io->type != VH_BDEV_IO_WRITE_ZEROES)) {
		io->flags &= (uint8_t)~VH_BDEV_IO_F_FUA; /* durable anyway, or nothing to keep */
		return submit_now(ch, io);
	}
	io->fua_cb = io->cb;
	io->fua_type = io->type;
	io->cb = fua_write_done;
	io->flags |= VH_BDEV_IO_F_NOSTAT; /* its two stages are not counted: fua_finish() counts */
	rc = submit_now(ch, io);
	if (rc < 0) {
		io->cb = io->fua_cb;
		io->flags &= (uint8_t)~VH_BDEV_IO_F_NOSTAT;
	}
	return rc;
}

/* What a request admitted by QoS goes through: FUA emulation, then the back-end. */
static inline int
backend_submit(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	if (VH_UNLIKELY(io->flags & VH_BDEV_IO_F_FUA) && !ch->bdev->fua) {
		return fua_submit(ch, io);
	}
	return submit_now(ch, io);
}

int
vh_bdev_submit(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	io->ch = ch;
	io->next = NULL;
	/* The reactor iteration's timestamp: latency starts when its work started, for free. */
	io->submit_ticks = vh_reactor_now_ticks();
	if (VH_UNLIKELY(__atomic_load_n(&ch->bdev->qos_on, __ATOMIC_RELAXED) ||
	                ch->qos_head != NULL)) {
		int rc = vh_bdev_qos_admit(ch, io);

		if (rc != 0) {
			return rc > 0 ? 0 : rc;
		}
	}
	return backend_submit(ch, io);
}

int
vh_bdev_backend_submit(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	return backend_submit(ch, io);
}

void
vh_bdev_set_test_delay(struct vh_bdev *b, uint32_t max_delay_us)
{
	__atomic_store_n(&b->test_delay_us, max_delay_us, __ATOMIC_RELAXED);
}

uint32_t
vh_bdev_test_delay(const struct vh_bdev *b)
{
	return b->test_delay_us;
}

void
vh_bdev_io_done(struct vh_bdev_io *io, int status)
{
	vh_bdev_account(io->ch, io, status);
	io->cb(io, status);
}

void
vh_bdev_io_complete_deferred(struct vh_bdev_io *io, int status)
{
	struct vh_bdev_channel *ch = io->ch;

	io->status = status;
	io->next = NULL;
	*ch->done_tail = io;
	ch->done_tail = &io->next;
}
