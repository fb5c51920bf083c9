/* SPDX-License-Identifier: BSD-3-Clause */
/* Deterministic reactor, event loop and bdev doubles for test_nvme (see nvme_stubs.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/evloop.h"
#include "core/reactor.h"
#include "nvme_stubs.h"

/* ---- messages, pollers, deferred work ---- */

static struct vh_msg_node *g_head, *g_tail;
static struct vh_deferred *g_deferred;

struct vh_poller {
	struct vh_poller_ops ops;
	void *arg;
	bool dead;
};
static struct vh_poller g_pollers[16];
static unsigned g_npollers;

void
vh_msg_node_init(struct vh_msg_node *n, vh_msg_fn fn, void *arg)
{
	n->next = NULL;
	n->fn = fn;
	n->arg = arg;
	n->queued = 0;
}

static void
enqueue(struct vh_msg_node *n)
{
	if (n->queued) {
		return;
	}
	n->queued = 1;
	n->next = NULL;
	if (g_tail != NULL) {
		g_tail->next = n;
	} else {
		g_head = n;
	}
	g_tail = n;
}

void
vh_reactor_post(struct vh_reactor *r, struct vh_msg_node *n)
{
	(void)r;
	enqueue(n);
}

void
vh_control_post(struct vh_msg_node *n)
{
	enqueue(n);
}

void
vh_reactor_defer(struct vh_deferred *d)
{
	if (d->queued) {
		return;
	}
	d->queued = true;
	d->next = g_deferred;
	g_deferred = d;
}

struct vh_poller *
vh_poller_register(const struct vh_poller_ops *ops, void *arg, int wake_fd, const char *name)
{
	struct vh_poller *p;

	if (g_npollers == 16) {
		return NULL;
	}
	p = &g_pollers[g_npollers++];
	p->ops = *ops;
	p->arg = arg;
	p->dead = false;
	return p;
}

void
vh_poller_unregister(struct vh_poller **p)
{
	(*p)->dead = true;
	*p = NULL;
}

static unsigned g_signals[1024];

int
vh_peer_eventfd_signal(int fd)
{
	if (fd >= 0 && fd < 1024) {
		g_signals[fd]++;
	}
	return 0;
}

unsigned
stub_signals(int fd)
{
	return fd >= 0 && fd < 1024 ? g_signals[fd] : 0;
}

/* The event loop: sessions here have no socket, so nothing is ever watched. */
struct vh_evloop *
vh_evloop_main(void)
{
	return NULL;
}

struct vh_evsource *
vh_evloop_add(struct vh_evloop *loop, int fd, uint32_t events, vh_ev_cb cb, void *arg)
{
	errno = ENOSYS;
	return NULL;
}

int
vh_evloop_mod(struct vh_evsource *src, uint32_t events)
{
	return 0;
}

void
vh_evloop_del(struct vh_evsource *src)
{
}

/* ---- bdev ---- */

struct vh_bdev {
	char name[VH_NAME_MAX];
	uint64_t nblocks;
	uint32_t bs;
	unsigned io_types;
	bool wc;
	uint8_t *data;
	char claim[VH_NAME_MAX];
};

static struct vh_bdev_io *g_pend_head, *g_pend_tail;
static unsigned g_npend;
static bool g_hold;
static int g_submit_rc;
static unsigned g_submit_n;
static int g_complete_st;
static unsigned g_complete_n;
static unsigned g_counts[VH_BDEV_IO_NTYPES];
static uint64_t g_disc_off, g_disc_len;
static int g_channels;

struct vh_bdev *
stub_bdev_new(const char *name, uint64_t nblocks, uint32_t bs, unsigned io_types, bool write_cache)
{
	struct vh_bdev *b = calloc(1, sizeof(*b));

	snprintf(b->name, sizeof(b->name), "%s", name);
	b->nblocks = nblocks;
	b->bs = bs;
	b->io_types = io_types;
	b->wc = write_cache;
	b->data = calloc(nblocks, bs);
	return b;
}

void
stub_bdev_free(struct vh_bdev *b)
{
	free(b->data);
	free(b);
}

uint8_t *
stub_bdev_data(struct vh_bdev *b)
{
	return b->data;
}

const char *
vh_bdev_name(const struct vh_bdev *b)
{
	return b->name;
}

uint32_t
vh_bdev_block_size(const struct vh_bdev *b)
{
	return b->bs;
}

uint64_t
vh_bdev_num_blocks(const struct vh_bdev *b)
{
	return b->nblocks;
}

bool
vh_bdev_io_type_supported(const struct vh_bdev *b, enum vh_bdev_io_type t)
{
	return (b->io_types & (1u << t)) != 0;
}

bool
vh_bdev_has_write_cache(const struct vh_bdev *b)
{
	return b->wc;
}

const char *
vh_bdev_uuid(const struct vh_bdev *b)
{
	return "01234567-89ab-cdef-0123-456789abcdef";
}

int
vh_bdev_claim(struct vh_bdev *b, const char *owner)
{
	snprintf(b->claim, sizeof(b->claim), "%s", owner);
	return 0;
}

void
vh_bdev_release(struct vh_bdev *b)
{
	b->claim[0] = '\0';
}

void
vh_bdev_mem_register_owned(const void *owner, void *vaddr, size_t len, unsigned flags)
{
}

void
vh_bdev_mem_unregister(void *vaddr, size_t len)
{
}

struct vh_bdev_channel *
vh_bdev_channel_get(struct vh_bdev *b)
{
	g_channels++;
	return (struct vh_bdev_channel *)b;
}

void
vh_bdev_channel_put(struct vh_bdev_channel *ch)
{
	g_channels--;
}

int
stub_channels(void)
{
	return g_channels;
}

int
vh_bdev_submit(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	if (g_submit_n > 0) {
		g_submit_n--;
		return g_submit_rc;
	}
	io->ch = ch;
	io->next = NULL;
	if (g_pend_tail != NULL) {
		g_pend_tail->next = io;
	} else {
		g_pend_head = io;
	}
	g_pend_tail = io;
	g_npend++;
	return 0;
}

/* Do the I/O on the RAM, then call back (as a back-end's completion would, later). */
static void
complete_one(void)
{
	struct vh_bdev_io *io = g_pend_head;
	struct vh_bdev *b = (struct vh_bdev *)io->ch;
	uint64_t off = io->offset;
	int st = 0;

	g_pend_head = io->next;
	if (g_pend_head == NULL) {
		g_pend_tail = NULL;
	}
	g_npend--;
	g_counts[io->type]++;
	if (g_complete_n > 0) {
		g_complete_n--;
		st = g_complete_st;
	} else {
		switch (io->type) {
		case VH_BDEV_IO_READ:
		case VH_BDEV_IO_WRITE:
			for (int i = 0; i < io->iovcnt; i++) {
				if (io->type == VH_BDEV_IO_READ) {
					memcpy(io->iov[i].iov_base, b->data + off,
					       io->iov[i].iov_len);
				} else {
					memcpy(b->data + off, io->iov[i].iov_base,
					       io->iov[i].iov_len);
				}
				off += io->iov[i].iov_len;
			}
			break;
		case VH_BDEV_IO_DISCARD:
			g_disc_off = io->offset;
			g_disc_len = io->length;
			memset(b->data + io->offset, 0, io->length);
			break;
		case VH_BDEV_IO_WRITE_ZEROES:
			memset(b->data + io->offset, 0, io->length);
			break;
		default:
			break;
		}
	}
	io->cb(io, st);
}

void
stub_hold(bool hold)
{
	g_hold = hold;
}

unsigned
stub_pending(void)
{
	return g_npend;
}

void
stub_release(void)
{
	while (g_pend_head != NULL) {
		complete_one();
	}
}

void
stub_fail_submit(int rc, unsigned n)
{
	g_submit_rc = rc;
	g_submit_n = n;
}

void
stub_fail_complete(int status, unsigned n)
{
	g_complete_st = status;
	g_complete_n = n;
}

unsigned
stub_count(enum vh_bdev_io_type t)
{
	return g_counts[t];
}

void
stub_last_discard(uint64_t *off, uint64_t *len)
{
	*off = g_disc_off;
	*len = g_disc_len;
}

void
stub_reset(void)
{
	memset(g_counts, 0, sizeof(g_counts));
	memset(g_signals, 0, sizeof(g_signals));
	g_hold = false;
	g_submit_n = 0;
	g_complete_n = 0;
	g_head = g_tail = NULL;
	g_deferred = NULL;
	g_npollers = 0;
	g_channels = 0;
}

void
stub_pump(unsigned rounds)
{
	for (unsigned r = 0; r < rounds; r++) {
		bool moved = false;

		while (g_head != NULL) {
			struct vh_msg_node *n = g_head;

			g_head = n->next;
			if (g_head == NULL) {
				g_tail = NULL;
			}
			n->queued = 0;
			n->fn(n->arg);
			moved = true;
		}
		for (unsigned i = 0; i < g_npollers; i++) {
			if (!g_pollers[i].dead &&
			    g_pollers[i].ops.poll(g_pollers[i].arg) == VH_POLL_BUSY) {
				moved = true;
			}
		}
		if (!g_hold && g_pend_head != NULL) {
			stub_release();
			moved = true;
		}
		while (g_deferred != NULL) {
			struct vh_deferred *d = g_deferred;

			g_deferred = d->next;
			d->queued = false;
			d->fn(d);
			moved = true;
		}
		if (!moved && g_head == NULL) {
			return;
		}
	}
}
