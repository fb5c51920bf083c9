/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The NVMe bdev back-end against the mock controller, with the bdev registry, reactors and the
 * control queue replaced by stubs in this file: attach/detach, bdev properties, I/O splitting,
 * back-pressure, durable writes (the FUA bit), and the message-driven reset with a channel owned
 * by a (simulated) reactor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bdev/bdev_module.h"
#include "bdev/nvme/bdev_nvme.h"
#include "core/evloop.h"
#include "nvme_test.h"

/* ---- stubs: bdev registry ------------------------------------------------------------------- */

static struct vh_bdev *registry[8];

int
vh_name_check(const char *name)
{
	return name[0] != '\0' && strlen(name) < VH_NAME_MAX ? 0 : -EINVAL;
}

int
vh_bdev_global_hooks_register(const struct vh_bdev_global_hooks *h)
{
	(void)h;
	return 0;
}

int
vh_bdev_register(struct vh_bdev *b)
{
	for (unsigned i = 0; i < 8; i++) {
		if (registry[i] == NULL) {
			registry[i] = b;
			return 0;
		}
	}
	return -ENOSPC;
}

struct vh_bdev *
vh_bdev_find(const char *name)
{
	for (unsigned i = 0; i < 8; i++) {
		if (registry[i] != NULL && strcmp(registry[i]->name, name) == 0) {
			return registry[i];
		}
	}
	return NULL;
}

const char *
vh_bdev_claimed_by(const struct vh_bdev *b)
{
	return b->claimed_by[0] ? b->claimed_by : NULL;
}

int
vh_bdev_delete(const char *name, const char *module)
{
	for (unsigned i = 0; i < 8; i++) {
		if (registry[i] != NULL && strcmp(registry[i]->name, name) == 0) {
			registry[i]->module->destruct(registry[i]);
			free(registry[i]);
			registry[i] = NULL;
			return 0;
		}
	}
	return -ENODEV;
}

void
vh_bdev_io_done(struct vh_bdev_io *io, int status)
{
	io->cb(io, status);
}

/* ---- stubs: threads. One "reactor" (index 0) and the control queue, drained by the test. ---- */

struct msg {
	vh_msg_fn fn;
	void *arg;
};
static struct msg control_q[64], reactor_q[64];
static unsigned control_n, reactor_n;
static bool on_reactor;

int
vh_control_send(vh_msg_fn fn, void *arg)
{
	control_q[control_n++] = (struct msg){fn, arg};
	return 0;
}

int
vh_reactor_send(struct vh_reactor *r, vh_msg_fn fn, void *arg)
{
	reactor_q[reactor_n++] = (struct msg){fn, arg};
	return 0;
}

struct vh_reactor *
vh_reactor_self(void)
{
	return on_reactor ? (struct vh_reactor *)&on_reactor : NULL;
}

struct vh_reactor *
vh_reactor_get(unsigned i)
{
	return (struct vh_reactor *)&on_reactor;
}

unsigned
vh_reactor_index(const struct vh_reactor *r)
{
	return 0;
}

unsigned
vh_reactor_count(void)
{
	return 1;
}

void
vh_reactor_defer(struct vh_deferred *d)
{
	d->fn(d); /* good enough: ring at once */
}

/* Run queued messages on their "threads" until both queues are empty. */
static void
drain_msgs(void)
{
	while (control_n + reactor_n > 0) {
		struct msg m;

		if (control_n > 0) {
			m = control_q[0];
			memmove(control_q, control_q + 1, --control_n * sizeof(m));
			on_reactor = false;
		} else {
			m = reactor_q[0];
			memmove(reactor_q, reactor_q + 1, --reactor_n * sizeof(m));
			on_reactor = true;
		}
		m.fn(m.arg);
	}
	on_reactor = true;
}

/* ---- helpers -------------------------------------------------------------------------------- */

struct tio {
	struct vh_bdev_io io;
	unsigned calls;
	int status;
};

static void
tio_cb(struct vh_bdev_io *io, int status)
{
	struct tio *t = VH_CONTAINER_OF(io, struct tio, io);

	t->calls++;
	t->status = status;
}

static struct mock_ctrlr *
attach(const char *name, uint16_t depth)
{
	struct mock_ctrlr *m = mock_create();
	struct vh_bdev_nvme_opts o = {.mock_ops = &mock_ops, .io_queue_depth = depth};
	json_t *names = NULL;

	mock_add_ns(m, 1, 8192, 9);
	mock_add_ns(m, 3, 300000, 9);
	o.mock_ctx = m;
	on_reactor = false;
	assert_int_equal(vh_bdev_nvme_attach(name, "mock", VH_NVME_ACCESS_MOCK, &o, &names), 0);
	assert_int_equal(json_array_size(names), 2);
	json_decref(names);
	on_reactor = true;
	return m;
}

static void
detach(const char *name, struct mock_ctrlr *m)
{
	on_reactor = false;
	assert_int_equal(vh_bdev_nvme_detach(name), 0);
	mock_destroy(m);
	on_reactor = true;
}

static void
run(void *ch, const struct vh_bdev_module *mod, struct tio *t)
{
	for (unsigned i = 0; i < 100000 && t->calls == 0; i++) {
		mod->poll(ch);
	}
	assert_int_equal(t->calls, 1);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void
test_attach_detach(void **state)
{
	struct mock_ctrlr *m = attach("Nvme0", 0);
	struct vh_bdev *b1 = vh_bdev_find("Nvme0n1"), *b3 = vh_bdev_find("Nvme0n3");
	json_t *cfg, *list;

	assert_non_null(b1);
	assert_non_null(b3);
	assert_null(vh_bdev_find("Nvme0n2"));
	assert_int_equal(b1->block_size, 512);
	assert_int_equal(b1->num_blocks, 8192);
	assert_true(b1->io_types & (1u << VH_BDEV_IO_DISCARD));
	assert_true(b1->io_types & (1u << VH_BDEV_IO_WRITE_ZEROES));
	assert_true(b1->write_cache);
	assert_string_equal(b1->uuid, "01000000-0000-0000-0000-000000000000");
	/* The controller is re-created once, by its first namespace. */
	cfg = b1->module->config_json(b1);
	assert_non_null(cfg);
	assert_string_equal(json_string_value(json_object_get(cfg, "method")),
	                    "bdev_nvme_attach_controller");
	json_decref(cfg);
	assert_null(b3->module->config_json(b3));
	/* get_controllers */
	on_reactor = false;
	assert_int_equal(vh_bdev_nvme_get_controllers(NULL, &list), 0);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")),
	                    "Nvme0");
	json_decref(list);
	assert_int_equal(vh_bdev_nvme_get_controllers("Nope", &list), -ENODEV);
	/* Duplicate name; a claimed bdev blocks detach. */
	assert_int_equal(vh_bdev_nvme_attach("Nvme0", "mock", VH_NVME_ACCESS_MOCK, NULL, NULL),
	                 -EEXIST);
	strcpy(b3->claimed_by, "vhost0");
	assert_int_equal(vh_bdev_nvme_detach("Nvme0"), -EBUSY);
	b3->claimed_by[0] = '\0';
	assert_int_equal(vh_bdev_nvme_detach("Nope"), -ENODEV);
	detach("Nvme0", m);
	assert_null(vh_bdev_find("Nvme0n1"));
}

/* save_config keeps the attach options, so a restart attaches the same way. */
static void
test_config_keeps_options(void **state)
{
	struct mock_ctrlr *m = mock_create();
	struct vh_bdev_nvme_opts o = {
	        .mock_ops = &mock_ops, .force = true, .hugepage_dir = "/mnt/huge"};
	json_t *cfg, *params;
	struct vh_bdev *b;

	mock_add_ns(m, 1, 8192, 9);
	o.mock_ctx = m;
	on_reactor = false;
	assert_int_equal(vh_bdev_nvme_attach("Nvme5", "mock", VH_NVME_ACCESS_MOCK, &o, NULL), 0);
	b = vh_bdev_find("Nvme5n1");
	assert_non_null(b);
	cfg = b->module->config_json(b);
	params = json_object_get(cfg, "params");
	assert_true(json_is_true(json_object_get(params, "force")));
	assert_string_equal(json_string_value(json_object_get(params, "hugepage_dir")),
	                    "/mnt/huge");
	json_decref(cfg);
	on_reactor = true;
	detach("Nvme5", m);
}

static void
test_split_and_pressure(void **state)
{
	/* Depth 4: three commands at a time; 128 KiB per command (MDTS 5). */
	struct mock_ctrlr *m = attach("Nvme1", 4);
	struct vh_bdev *b = vh_bdev_find("Nvme1n3");
	const struct vh_bdev_module *mod = b->module;
	size_t len = 1024 * 1024;
	uint8_t *src = aligned_alloc(4096, len), *dst = aligned_alloc(4096, len);
	struct iovec wiov = {src, len}, riov = {dst, len};
	struct tio w = {0}, r = {0}, z = {0}, d = {0}, f = {0};
	void *ch = mod->channel_create(b);

	assert_non_null(ch);
	for (size_t i = 0; i < len; i++) {
		src[i] = (uint8_t)(i * 13 + (i >> 12));
	}
	/* 1 MiB = 8 commands through 3 slots: accepted, the rest continues from poll. */
	w.io = (struct vh_bdev_io){.type = VH_BDEV_IO_WRITE,
	                           .offset = 4096,
	                           .length = len,
	                           .iov = &wiov,
	                           .iovcnt = 1,
	                           .cb = tio_cb};
	assert_int_equal(mod->submit(ch, &w.io), 0);
	/* Later I/O queues behind it (order), and nothing is in flight for it: -EAGAIN. */
	r.io = (struct vh_bdev_io){.type = VH_BDEV_IO_READ,
	                           .offset = 4096,
	                           .length = len,
	                           .iov = &riov,
	                           .iovcnt = 1,
	                           .cb = tio_cb};
	assert_int_equal(mod->submit(ch, &r.io), -EAGAIN);
	run(ch, mod, &w);
	assert_int_equal(w.status, 0);
	assert_int_equal(m->opc_count[1][VH_NVME_OPC_WRITE], 8);
	assert_memory_equal(mock_ns_data(m, 3, 4096), src, len);
	assert_int_equal(mod->submit(ch, &r.io), 0);
	run(ch, mod, &r);
	assert_int_equal(r.status, 0);
	assert_memory_equal(dst, src, len);
	/* Write Zeroes of 70000 blocks: two commands (65536 + 4464). */
	z.io = (struct vh_bdev_io){.type = VH_BDEV_IO_WRITE_ZEROES,
	                           .offset = 0,
	                           .length = 70000ull * 512,
	                           .cb = tio_cb};
	assert_int_equal(mod->submit(ch, &z.io), 0);
	run(ch, mod, &z);
	assert_int_equal(z.status, 0);
	assert_int_equal(m->opc_count[1][VH_NVME_OPC_WRITE_ZEROES], 2);
	assert_int_equal(*mock_ns_data(m, 3, 4096 + 100), 0);
	d.io = (struct vh_bdev_io){
	        .type = VH_BDEV_IO_DISCARD, .offset = 512, .length = 1024, .cb = tio_cb};
	assert_int_equal(mod->submit(ch, &d.io), 0);
	run(ch, mod, &d);
	f.io = (struct vh_bdev_io){.type = VH_BDEV_IO_FLUSH, .cb = tio_cb};
	assert_int_equal(mod->submit(ch, &f.io), 0);
	run(ch, mod, &f);
	assert_int_equal(m->opc_count[1][VH_NVME_OPC_FLUSH], 1);
	/* Misaligned or out of range: refused before anything reaches the device. */
	d.io.offset = 100;
	assert_int_equal(mod->submit(ch, &d.io), -EINVAL);
	d.io.offset = 300000ull * 512;
	assert_int_equal(mod->submit(ch, &d.io), -EINVAL);
	mod->channel_destroy(ch);
	detach("Nvme1", m);
	free(src);
	free(dst);
}

/* What the device saw: CDW12 of every I/O Write and Write Zeroes, in order. */
static uint32_t g_cdw12[16];
static uint8_t g_opc[16];
static unsigned g_ncmd;

static enum mock_verdict
record_hook(struct mock_ctrlr *m, uint16_t qid, const struct vh_nvme_sqe *sqe, uint16_t *status)
{
	(void)m;
	(void)status;
	if (qid != 0 && g_ncmd < 16 &&
	    (sqe->opc == VH_NVME_OPC_WRITE || sqe->opc == VH_NVME_OPC_WRITE_ZEROES)) {
		g_opc[g_ncmd] = sqe->opc;
		g_cdw12[g_ncmd++] = sqe->cdw12;
	}
	return MOCK_EXEC;
}

/*
 * VH_BDEV_IO_F_FUA sets the FUA bit of every command of a write or write zeroes (no FLUSH: the
 * bdev says it does FUA itself); without the flag no command has it.
 */
static void
test_fua(void **state)
{
	struct mock_ctrlr *m = attach("Nvme3", 0);
	struct vh_bdev *b = vh_bdev_find("Nvme3n3");
	const struct vh_bdev_module *mod = b->module;
	size_t len = 256 * 1024; /* two commands (MDTS 128 KiB) */
	uint8_t *buf = aligned_alloc(4096, len);
	struct iovec iov = {buf, len};
	struct tio t;
	void *ch = mod->channel_create(b);

	assert_true(b->fua);
	assert_true(b->write_cache);
	memset(buf, 0x5c, len);
	m->hook = record_hook;
	g_ncmd = 0;
	t = (struct tio){.io = {.type = VH_BDEV_IO_WRITE,
	                        .flags = VH_BDEV_IO_F_FUA,
	                        .offset = 8192,
	                        .length = len,
	                        .iov = &iov,
	                        .iovcnt = 1,
	                        .cb = tio_cb}};
	assert_int_equal(mod->submit(ch, &t.io), 0);
	run(ch, mod, &t);
	assert_int_equal(t.status, 0);
	t = (struct tio){.io = {.type = VH_BDEV_IO_WRITE,
	                        .offset = 8192,
	                        .length = 4096,
	                        .iov = &iov,
	                        .iovcnt = 1,
	                        .cb = tio_cb}};
	assert_int_equal(mod->submit(ch, &t.io), 0);
	run(ch, mod, &t);
	t = (struct tio){.io = {.type = VH_BDEV_IO_WRITE_ZEROES,
	                        .flags = VH_BDEV_IO_F_FUA | VH_BDEV_IO_F_UNMAP,
	                        .offset = 0,
	                        .length = 4096,
	                        .cb = tio_cb}};
	assert_int_equal(mod->submit(ch, &t.io), 0);
	run(ch, mod, &t);
	t = (struct tio){.io = {.type = VH_BDEV_IO_WRITE_ZEROES,
	                        .flags = VH_BDEV_IO_F_FUA,
	                        .offset = 0,
	                        .length = 4096,
	                        .cb = tio_cb}};
	assert_int_equal(mod->submit(ch, &t.io), 0);
	run(ch, mod, &t);
	t = (struct tio){
	        .io = {.type = VH_BDEV_IO_WRITE_ZEROES, .offset = 0, .length = 4096, .cb = tio_cb}};
	assert_int_equal(mod->submit(ch, &t.io), 0);
	run(ch, mod, &t);
	m->hook = NULL;

	assert_int_equal(g_ncmd, 6);
	assert_int_equal(g_opc[0], VH_NVME_OPC_WRITE);
	assert_int_equal(g_cdw12[0], VH_NVME_RW_FUA | 255); /* 128 KiB of 512-byte blocks */
	assert_int_equal(g_cdw12[1], VH_NVME_RW_FUA | 255);
	assert_int_equal(g_cdw12[2], 7);
	assert_int_equal(g_opc[3], VH_NVME_OPC_WRITE_ZEROES);
	assert_int_equal(g_cdw12[3], VH_NVME_RW_FUA | VH_NVME_WZ_DEAC | 7);
	assert_int_equal(g_cdw12[4], VH_NVME_RW_FUA | 7);
	assert_int_equal(g_cdw12[5], 7);
	assert_int_equal(m->opc_count[1][VH_NVME_OPC_FLUSH], 0);
	assert_memory_equal(mock_ns_data(m, 3, 8192 + 4096), buf, len - 4096);
	mod->channel_destroy(ch);
	detach("Nvme3", m);
	free(buf);
}

static void
test_reset_via_messages(void **state)
{
	struct mock_ctrlr *m = attach("Nvme2", 16);
	struct vh_bdev *b = vh_bdev_find("Nvme2n1");
	const struct vh_bdev_module *mod = b->module;
	uint8_t *buf = aligned_alloc(4096, 8 * 4096);
	struct iovec iov[8];
	struct tio t[8];
	void *ch = mod->channel_create(b);

	memset(t, 0, sizeof(t));
	memset(buf, 0x77, 8 * 4096);
	m->auto_process = false;
	for (unsigned i = 0; i < 8; i++) {
		iov[i] = (struct iovec){buf + i * 4096, 4096};
		t[i].io = (struct vh_bdev_io){.type = VH_BDEV_IO_WRITE,
		                              .offset = i * 4096ull,
		                              .length = 4096,
		                              .iov = &iov[i],
		                              .iovcnt = 1,
		                              .cb = tio_cb};
		assert_int_equal(mod->submit(ch, &t[i].io), 0);
	}
	mock_process(m, 1, 3);
	mock_set_fatal(m);
	m->auto_process = true;
	/* The reactor notices CFS and tells the control thread; the reset runs by messages. */
	mod->poll(ch);
	assert_int_equal(control_n, 1);
	drain_msgs();
	assert_int_equal(m->disables, 1);
	assert_int_equal(m->enables, 2);
	for (unsigned i = 0; i < 100 && mod->arm(ch) > 0; i++) {
		mod->poll(ch);
	}
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(t[i].calls, 1);
		assert_int_equal(t[i].status, 0);
	}
	assert_int_equal(m->opc_count[1][VH_NVME_OPC_WRITE], 8);
	assert_memory_equal(mock_ns_data(m, 1, 0), buf, 8 * 4096);
	mod->channel_destroy(ch);
	detach("Nvme2", m);
	free(buf);
}

/* Write @gen-patterned blocks 0..7 of @b (or check them when @check) through a new channel. */
static void
io_pattern(struct vh_bdev *b, uint8_t gen, bool check)
{
	const struct vh_bdev_module *mod = b->module;
	uint8_t *buf = aligned_alloc(4096, 4096), *want = malloc(4096);
	struct iovec iov = {buf, 4096};
	struct tio t = {0};
	void *ch = mod->channel_create(b);

	assert_non_null(ch);
	memset(want, gen, 4096);
	memcpy(buf, want, 4096);
	if (check) {
		memset(buf, 0, 4096);
	}
	t.io = (struct vh_bdev_io){.type = check ? VH_BDEV_IO_READ : VH_BDEV_IO_WRITE,
	                           .offset = 0,
	                           .length = 4096,
	                           .iov = &iov,
	                           .iovcnt = 1,
	                           .cb = tio_cb};
	assert_int_equal(mod->submit(ch, &t.io), 0);
	run(ch, mod, &t);
	assert_int_equal(t.status, 0);
	assert_memory_equal(buf, want, 4096);
	mod->channel_destroy(ch);
	free(buf);
	free(want);
}

/*
 * Live upgrade, old worker: release shuts the controller down and gives the device up but
 * keeps the controller and its bdevs; it refuses while a channel is open; reclaim (the rollback
 * of a failed upgrade) re-enables the controller and I/O goes on with the data intact.
 */
static void
test_upgrade_release_reclaim(void **state)
{
	struct mock_ctrlr *m = attach("Nvme6", 16);
	struct vh_bdev *b = vh_bdev_find("Nvme6n1");
	const struct vh_bdev_module *mod = b->module;
	json_t *desc = NULL, *ns, *list = NULL;
	char why[256] = "", *text;
	void *ch;

	io_pattern(b, 0x5a, false);
	on_reactor = false;
	assert_int_equal(vh_bdev_nvme_upgrade_describe(&desc, why, sizeof(why)), 0);
	assert_int_equal(json_array_size(desc), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(desc, 0), "name")),
	                    "Nvme6");
	ns = json_array_get(json_object_get(json_array_get(desc, 0), "namespaces"), 1);
	assert_int_equal(json_integer_value(json_object_get(ns, "nsid")), 3);
	assert_int_equal(json_integer_value(json_object_get(ns, "num_blocks")), 300000);
	assert_int_equal(json_integer_value(json_object_get(ns, "lba_shift")), 9);
	json_decref(desc);

	/* A channel still open: refused, nothing touched. */
	on_reactor = true;
	ch = mod->channel_create(b);
	on_reactor = false;
	assert_int_equal(vh_bdev_nvme_upgrade_release(why, sizeof(why)), -EBUSY);
	assert_non_null(strstr(why, "I/O channel"));
	assert_int_equal(m->shutdowns, 0);
	assert_false(vh_bdev_nvme_upgrade_released());
	mod->channel_destroy(ch);

	assert_int_equal(vh_bdev_nvme_upgrade_release(why, sizeof(why)), 0);
	assert_true(vh_bdev_nvme_upgrade_released());
	assert_int_equal(m->shutdowns, 1);
	assert_false(m->cc & VH_NVME_CC_EN);
	/* The bdevs stay; no channel while the device is away; a second upgrade is refused. */
	assert_non_null(vh_bdev_find("Nvme6n1"));
	assert_non_null(vh_bdev_find("Nvme6n3"));
	on_reactor = true;
	assert_null(mod->channel_create(b));
	on_reactor = false;
	assert_int_equal(vh_bdev_nvme_upgrade_describe(&desc, why, sizeof(why)), -EBUSY);
	assert_int_equal(vh_bdev_nvme_get_controllers("Nvme6", &list), 0);
	text = json_dumps(list, 0);
	assert_non_null(strstr(text, "released for an upgrade"));
	free(text);
	json_decref(list);
	assert_int_equal(vh_bdev_nvme_detach("Nvme6"), -EBUSY);

	/* Rollback: the controller comes back and serves the same data. */
	assert_int_equal(vh_bdev_nvme_upgrade_reclaim(), 0);
	assert_false(vh_bdev_nvme_upgrade_released());
	assert_true(m->cc & VH_NVME_CC_EN);
	on_reactor = true;
	io_pattern(b, 0x5a, true);
	io_pattern(vh_bdev_find("Nvme6n3"), 0x33, false);
	io_pattern(vh_bdev_find("Nvme6n3"), 0x33, true);
	detach("Nvme6", m);
}

/* The old worker's description, renamed to @name (both "workers" live in this process). */
static json_t *
describe_as(const char *name)
{
	json_t *desc = NULL;
	char why[256];

	assert_int_equal(vh_bdev_nvme_upgrade_describe(&desc, why, sizeof(why)), 0);
	assert_int_equal(json_array_size(desc), 1);
	json_object_set_new(json_array_get(desc, 0), "name", json_string(name));
	return desc;
}

/*
 * Live upgrade, candidate: an attach that the old worker described creates the controller and
 * its bdevs with the promised geometry without touching the device (no channel yet); take()
 * after the old worker's release brings it up and I/O sees the old worker's data. Then a
 * candidate promised another geometry: take() fails with the reason, closes the device, and
 * the old worker takes it back.
 */
static void
test_upgrade_take_and_mismatch(void **state)
{
	struct mock_ctrlr *m = attach("Nvme7", 16);
	struct vh_bdev_nvme_opts o = {.mock_ops = &mock_ops, .mock_ctx = m};
	unsigned enables;
	json_t *desc, *names = NULL, *list = NULL;
	struct vh_bdev *b;
	char why[256] = "", *text;

	io_pattern(vh_bdev_find("Nvme7n1"), 0x71, false);
	on_reactor = false;
	/* In one process the old controller must be released before the candidate's exists. */
	desc = describe_as("Nvme8");
	assert_int_equal(vh_bdev_nvme_upgrade_expect(desc), 0);
	json_decref(desc);
	assert_int_equal(vh_bdev_nvme_upgrade_release(why, sizeof(why)), 0);
	enables = m->enables;
	assert_int_equal(vh_bdev_nvme_attach("Nvme8", "mock", VH_NVME_ACCESS_MOCK, &o, &names), 0);
	assert_int_equal(json_array_size(names), 2);
	json_decref(names);
	assert_int_equal(m->enables, enables); /* the device was not touched */
	b = vh_bdev_find("Nvme8n3");
	assert_non_null(b);
	assert_int_equal(b->num_blocks, 300000);
	assert_int_equal(b->block_size, 512);
	assert_string_equal(b->uuid, vh_bdev_find("Nvme7n3")->uuid);
	assert_int_equal(b->io_types, vh_bdev_find("Nvme7n3")->io_types);
	assert_int_equal(b->write_cache, vh_bdev_find("Nvme7n3")->write_cache);
	assert_int_equal(vh_bdev_nvme_get_controllers("Nvme8", &list), 0);
	text = json_dumps(list, 0);
	assert_non_null(strstr(text, "waiting for hand-over"));
	free(text);
	json_decref(list);
	on_reactor = true;
	assert_null(b->module->channel_create(b));
	on_reactor = false;

	/* A candidate that fails after taking the device gives it back before it says so. */
	assert_int_equal(vh_bdev_nvme_upgrade_take(why, sizeof(why)), 0);
	assert_true(m->cc & VH_NVME_CC_EN);
	vh_bdev_nvme_upgrade_drop();
	assert_false(m->cc & VH_NVME_CC_EN);
	assert_int_equal(vh_bdev_nvme_get_controllers("Nvme8", &list), 0);
	text = json_dumps(list, 0);
	assert_non_null(strstr(text, "waiting for hand-over"));
	free(text);
	json_decref(list);
	assert_non_null(vh_bdev_find("Nvme8n1"));

	/* The candidate takes the device the old worker released; the old data is there. */
	assert_int_equal(vh_bdev_nvme_upgrade_take(why, sizeof(why)), 0);
	vh_bdev_nvme_upgrade_commit();
	vh_bdev_nvme_upgrade_drop(); /* no effect after COMMIT */
	assert_true(m->cc & VH_NVME_CC_EN);
	assert_int_equal(m->enables, enables + 2);
	on_reactor = true;
	io_pattern(vh_bdev_find("Nvme8n1"), 0x71, true);
	io_pattern(vh_bdev_find("Nvme8n1"), 0x72, false);
	on_reactor = false;
	assert_int_equal(vh_bdev_nvme_detach("Nvme8"), 0);

	/* Say the upgrade failed after all: the old worker takes the device back. */
	assert_int_equal(vh_bdev_nvme_upgrade_reclaim(), 0);
	on_reactor = true;
	io_pattern(vh_bdev_find("Nvme7n1"), 0x72, true);

	/* A candidate promised another geometry than the device has. */
	on_reactor = false;
	desc = describe_as("Nvme9");
	json_object_set_new(
	        json_array_get(json_object_get(json_array_get(desc, 0), "namespaces"), 0),
	        "num_blocks", json_integer(4096));
	assert_int_equal(vh_bdev_nvme_upgrade_expect(desc), 0);
	json_decref(desc);
	assert_int_equal(vh_bdev_nvme_upgrade_release(why, sizeof(why)), 0);
	assert_int_equal(vh_bdev_nvme_attach("Nvme9", "mock", VH_NVME_ACCESS_MOCK, &o, NULL), 0);
	assert_int_equal(vh_bdev_find("Nvme9n1")->num_blocks, 4096);
	/* While a candidate's controller waits, nothing can be released or described. */
	assert_int_equal(vh_bdev_nvme_upgrade_describe(&desc, why, sizeof(why)), -EBUSY);
	assert_int_equal(vh_bdev_nvme_upgrade_take(why, sizeof(why)), -ESTALE);
	assert_non_null(strstr(why, "namespace 1 has 8192 blocks of 512 bytes"));
	assert_non_null(strstr(why, "4096 blocks"));
	assert_false(m->cc & VH_NVME_CC_EN); /* the candidate let go of it again */
	assert_int_equal(vh_bdev_nvme_detach("Nvme9"), 0);
	vh_bdev_nvme_upgrade_expect(NULL);
	/* Rollback: the old worker re-enables it; its data is intact. */
	assert_int_equal(vh_bdev_nvme_upgrade_reclaim(), 0);
	assert_true(m->cc & VH_NVME_CC_EN);
	on_reactor = true;
	io_pattern(vh_bdev_find("Nvme7n1"), 0x72, true);
	detach("Nvme7", m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_attach_detach),
	        cmocka_unit_test(test_config_keeps_options),
	        cmocka_unit_test(test_split_and_pressure),
	        cmocka_unit_test(test_fua),
	        cmocka_unit_test(test_reset_via_messages),
	        cmocka_unit_test(test_upgrade_release_reclaim),
	        cmocka_unit_test(test_upgrade_take_and_mismatch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
