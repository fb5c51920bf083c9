/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfio-user NVMe controllers: the registry, listening sockets, sessions, namespaces, and the
 * JSON the RPC layer shows and saves.
 *
 * Threat model: the socket is created 0600 (0660 with --group) from the start, so only the
 * owner (normally QEMU as the same user) can connect; one client is served at a time and the
 * listening socket is not polled meanwhile (a second client waits in the backlog). A stale
 * socket left by a crashed instance is replaced; a regular file or a live server at the path
 * is not. RPC parameters arrive checked by the RPC layer; bdev block sizes NVMe cannot express
 * are refused here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include "bdev/bdev.h"
#include "core/evloop.h"
#include "core/handover.h"
#include "core/log.h"
#include "core/util.h"
#include "vfu/nvme.h"
#include "vfu/vfu.h"
#include "vfu/vfu_internal.h"

_Static_assert(VH_VFU_MAX_NS == VFU_NVME_MAX_NS, "namespace limits agree");
_Static_assert(VH_VFU_MAX_IO_QUEUES == VFU_NVME_MAX_IOQ, "queue limits agree");

static struct vh_vfu_ctrlr *g_ctrlrs;
static char g_sock_dir[108] = ".";
static gid_t g_sock_group = (gid_t)-1;
static uint64_t g_max_mem = 1ull << 40;
static uint16_t g_next_cntlid = 1;
static unsigned g_freeing; /* controllers being torn down */
static void (*g_shutdown_done)(void *arg);
static void *g_shutdown_arg;

int
vh_vfu_init(const char *socket_dir, gid_t sock_group, uint64_t max_guest_mem)
{
	if (vh_strlcpy_checked(g_sock_dir, socket_dir, sizeof(g_sock_dir)) < 0) {
		return -ENAMETOOLONG;
	}
	if (access(socket_dir, W_OK | X_OK) < 0) {
		return -errno;
	}
	g_sock_group = sock_group;
	if (max_guest_mem != 0) {
		g_max_mem = max_guest_mem;
	}
	return 0;
}

struct vh_vfu_ctrlr *
vh_vfu_find(const char *name)
{
	for (struct vh_vfu_ctrlr *c = g_ctrlrs; c != NULL; c = c->next) {
		if (strcmp(c->n.name, name) == 0) {
			return c;
		}
	}
	return NULL;
}

int
vh_vfu_foreach(int (*fn)(struct vh_vfu_ctrlr *c, void *arg), void *arg)
{
	for (struct vh_vfu_ctrlr *c = g_ctrlrs, *next; c != NULL; c = next) {
		int rc;

		next = c->next;
		rc = fn(c, arg);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

/* ---- sessions ---- */

static void listen_ready(void *arg, uint32_t events);

/* A live upgrade is under way (app/upgrade.c): no new client, in either process. */
static bool g_accept_paused;

/* A client is connected, or its session is still being torn down. */
static bool
has_client(const struct vh_vfu_ctrlr *c)
{
	return c->n.session != NULL || c->dead != NULL;
}

static void
listen_resume(struct vh_vfu_ctrlr *c)
{
	if (c->listen_src == NULL && c->listen_fd >= 0 && !c->deleting && !g_accept_paused) {
		c->listen_src =
		        vh_evloop_add(vh_evloop_main(), c->listen_fd, EPOLLIN, listen_ready, c);
		if (c->listen_src == NULL) {
			VH_LOG_RL(VH_LOG_ERROR, c->n.name, "cannot poll the listening socket: %s",
			          strerror(errno));
		}
	}
}

static void
listen_pause(struct vh_vfu_ctrlr *c)
{
	if (c->listen_src != NULL) {
		vh_evloop_del(c->listen_src);
		c->listen_src = NULL;
	}
}

static void ctrlr_teardown(struct vh_vfu_ctrlr *c);

/* From a message: the closing code up the stack may still hold the session. */
static void
session_free(void *arg)
{
	struct vh_vfu_ctrlr *c = arg;
	struct vfu_session *s = c->dead;

	c->dead = NULL;
	if (s != NULL) {
		vfu_session_fini(s);
		free(s);
	}
	if (c->deleting) {
		ctrlr_teardown(c);
	} else {
		listen_resume(c);
	}
}

void
vfu_ctrlr_session_closed(struct vfu_session *s)
{
	struct vh_vfu_ctrlr *c = s->owner;

	c->dead = s;
	vh_control_post(&c->session_free_node);
}

static void
listen_ready(void *arg, uint32_t events)
{
	struct vh_vfu_ctrlr *c = arg;
	struct vfu_session *s;
	int fd;

	if (has_client(c) || c->deleting) {
		listen_pause(c);
		return;
	}
	fd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			VH_LOG_RL(VH_LOG_WARN, c->n.name, "accept: %s", strerror(errno));
		}
		return;
	}
	s = malloc(sizeof(*s));
	if (s == NULL || vfu_session_init(s, fd, &vfu_nvme_dev_ops, &c->n, vfu_session_send_sock,
	                                  g_max_mem, c->n.prefix) < 0) {
		VH_LOG_RL(VH_LOG_ERROR, c->n.name, "cannot allocate a session");
		free(s);
		close(fd);
		return;
	}
	s->owner = c;
	s->on_closed = vfu_ctrlr_session_closed;
	if (vfu_session_watch(s) < 0) {
		VH_LOG_RL(VH_LOG_ERROR, c->n.name, "cannot watch the connection: %s",
		          strerror(errno));
		vfu_session_fini(s);
		free(s);
		return;
	}
	c->n.session = s;
	if (c->n.busy) {
		/* An operation (the pollers starting) is under way: messages wait for it. */
		vfu_session_hold(s);
		c->n.op_held = s;
	}
	c->stat_connections++;
	listen_pause(c);
	VH_LOG_RL(VH_LOG_NOTICE, c->n.name, "vfio-user client connected");
}

static int
sock_listen(struct vh_vfu_ctrlr *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char key[VH_HANDOVER_KEY_MAX];
	mode_t old;
	int fd, rc;

	if (strlen(c->sock_path) >= sizeof(sa.sun_path)) {
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, c->sock_path, strlen(c->sock_path) + 1);
	snprintf(key, sizeof(key), "sock:%s", c->sock_path);
	fd = vh_handover_take(key);
	if (fd >= 0) {
		if (vh_fd_set_nonblock(fd) < 0) {
			close(fd);
			return -EBADF;
		}
		goto listening;
	}
	rc = vh_unix_unlink_stale(c->sock_path);
	if (rc < 0) {
		VH_ERR(c->n.name, "%s: %s", c->sock_path,
		       rc == -EADDRINUSE ? "in use: a server is listening there"
		       : rc == -EEXIST   ? "exists and is not a socket"
		                         : strerror(-rc));
		return rc;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	old = umask(0177); /* owner-only from the start: no window for others to connect */
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, 16) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (vh_handover_keep(key, fd) < 0) {
		VH_WARN(c->n.name, "supervisor cannot keep the socket across restarts");
	}
listening:
	c->listen_fd = fd;
	/* A live upgrade's candidate shares the old worker's listening socket: not yet. */
	c->listen_src = g_accept_paused
	                        ? NULL
	                        : vh_evloop_add(vh_evloop_main(), fd, EPOLLIN, listen_ready, c);
	if (c->listen_src == NULL && !g_accept_paused) {
		rc = -errno;
		close(fd);
		unlink(c->sock_path);
		c->listen_fd = -1;
		return rc;
	}
	if (g_sock_group != (gid_t)-1 &&
	    (chown(c->sock_path, (uid_t)-1, g_sock_group) < 0 || chmod(c->sock_path, 0660) < 0)) {
		VH_WARN(c->n.name, "cannot give the socket to group %u: %s", (unsigned)g_sock_group,
		        strerror(errno));
	}
	return 0;
}

static void
sock_close(struct vh_vfu_ctrlr *c)
{
	char key[VH_HANDOVER_KEY_MAX];

	listen_pause(c);
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		c->listen_fd = -1;
		unlink(c->sock_path);
		snprintf(key, sizeof(key), "sock:%s", c->sock_path);
		vh_handover_drop(key);
	}
}

/* ---- the doorbell page ---- */

static int
doorbells_create(struct vfu_nvme *n)
{
	int fd = memfd_create("vhostd-nvme-bar0", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	void *p;

	if (fd < 0) {
		return -errno;
	}
	/*
	 * The client gets this fd to map the doorbells. Sealed, so it cannot shrink the file and
	 * make our own accesses SIGBUS, nor grow it.
	 */
	if (ftruncate(fd, VFU_NVME_BAR0_SIZE) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	p = mmap(NULL, VFU_NVME_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	n->db_fd = fd;
	n->db_page = (uint8_t *)p + VFU_NVME_DB_OFFSET;
	return 0;
}

static void
doorbells_destroy(struct vfu_nvme *n)
{
	if (n->db_page != NULL) {
		munmap(n->db_page - VFU_NVME_DB_OFFSET, VFU_NVME_BAR0_SIZE);
		n->db_page = NULL;
	}
	if (n->db_fd >= 0) {
		close(n->db_fd);
		n->db_fd = -1;
	}
}

int
vfu_doorbells_adopt(struct vfu_nvme *n, int fd)
{
	struct stat st;
	int seals;
	void *p;

	/* The old worker's page, which the client has mapped: same size, same seals, or nothing. */
	seals = fcntl(fd, F_GET_SEALS);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != VFU_NVME_BAR0_SIZE ||
	    seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
		return -EINVAL;
	}
	p = mmap(NULL, VFU_NVME_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		return -errno;
	}
	doorbells_destroy(n);
	n->db_fd = fd;
	n->db_page = (uint8_t *)p + VFU_NVME_DB_OFFSET;
	return 0;
}

uint64_t
vfu_max_guest_mem(void)
{
	return g_max_mem;
}

void
vfu_cntlid_taken(uint16_t cntlid)
{
	if (cntlid >= g_next_cntlid && cntlid < UINT16_MAX) {
		g_next_cntlid = (uint16_t)(cntlid + 1);
	}
}

/* ---- creation and teardown ---- */

static void
ctrlr_free(struct vh_vfu_ctrlr *c)
{
	struct vfu_nvme *n = &c->n;

	for (unsigned i = 1; i <= VFU_NVME_MAX_NS; i++) {
		if (n->ns[i] != NULL) {
			vh_bdev_release(n->ns[i]->bdev);
			free(n->ns[i]);
			n->ns[i] = NULL;
		}
	}
	for (unsigned i = 0; i < n->nrctx; i++) {
		free(n->rctx[i]);
	}
	vfu_nvme_irq_close_all(n);
	doorbells_destroy(n);
	free(n->closing_fds);
	VH_NOTICE("vfu", "controller '%s' removed", n->name);
	free(c);
}

static void
ctrlr_final(struct vfu_nvme *n)
{
	ctrlr_free((struct vh_vfu_ctrlr *)n);
	if (--g_freeing == 0 && g_shutdown_done != NULL) {
		void (*done)(void *) = g_shutdown_done;

		g_shutdown_done = NULL;
		done(g_shutdown_arg);
	}
}

static void
rctx_stopped(struct vfu_nvme *n)
{
	n->final = ctrlr_final; /* op_done() calls it when it no longer needs the controller */
}

static void
teardown_start(struct vfu_nvme *n)
{
	vfu_nvme_op(n, UINT32_MAX, vfu_rctx_stop, rctx_stopped);
}

/* The session is gone: stop the pollers (on their reactors), then free. */
static void
ctrlr_teardown(struct vh_vfu_ctrlr *c)
{
	if (c->freeing) {
		return;
	}
	c->freeing = true;
	if (c->n.busy) {
		c->n.after_op = teardown_start;
	} else {
		teardown_start(&c->n);
	}
}

static int
rctx_create(struct vh_vfu_ctrlr *c, uint64_t mask)
{
	struct vfu_nvme *n = &c->n;

	for (unsigned i = 0; i < vh_reactor_count(); i++) {
		struct vh_reactor *r = vh_reactor_get(i);
		struct vfu_rctx *x;

		if (!(mask & (1ull << vh_reactor_core(r)))) {
			continue;
		}
		x = calloc(1, sizeof(*x));
		if (x == NULL) {
			return -ENOMEM;
		}
		x->n = n;
		x->r = r;
		x->idx = n->nrctx;
		x->timerfd = -1;
		n->rctx[n->nrctx++] = x;
	}
	return n->nrctx > 0 ? 0 : -EINVAL;
}

int
vh_vfu_nvme_create(const struct vh_vfu_nvme_opts *o)
{
	uint64_t mask = o->cpumask ? o->cpumask : vh_reactor_mask();
	struct vh_vfu_ctrlr *c, **pp;
	struct vfu_nvme *n;
	int rc;

	if (vh_name_check(o->name) < 0 || o->num_io_queues > VFU_NVME_MAX_IOQ) {
		return -EINVAL;
	}
	if (mask == 0 || (mask & ~vh_reactor_mask()) != 0) {
		return -EINVAL;
	}
	if (vh_vfu_find(o->name) != NULL) {
		return -EEXIST;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return -ENOMEM;
	}
	n = &c->n;
	snprintf(n->name, sizeof(n->name), "%s", o->name);
	snprintf(n->prefix, sizeof(n->prefix), "[%s]", o->name);
	n->num_ioq = o->num_io_queues ? o->num_io_queues : VFU_NVME_DEFAULT_IOQ;
	n->nvec = (uint16_t)(n->num_ioq + 1);
	n->cntlid = g_next_cntlid++;
	n->db_fd = -1;
	n->err_fd = n->req_fd = -1;
	for (unsigned i = 0; i < VFU_NVME_MAX_VECTORS; i++) {
		n->msix_fd[i] = -1;
	}
	c->cpumask = mask;
	c->listen_fd = -1;
	vh_msg_node_init(&c->session_free_node, session_free, c);
	n->closing_fds = calloc(VFU_NVME_MAX_VECTORS + 2, sizeof(int));
	rc = n->closing_fds != NULL ? rctx_create(c, mask) : -ENOMEM;
	if (rc == 0) {
		rc = doorbells_create(n);
	}
	if (rc < 0) {
		goto out_free;
	}
	vfu_nvme_pci_init(n);
	vfu_nvme_ctrlr_init(n);
	if ((size_t)snprintf(c->sock_path, sizeof(c->sock_path), "%s/%s", g_sock_dir, o->name) >=
	    sizeof(c->sock_path)) {
		rc = -ENAMETOOLONG;
		goto out_free;
	}
	rc = sock_listen(c);
	if (rc < 0) {
		goto out_free;
	}
	for (pp = &g_ctrlrs; *pp != NULL; pp = &(*pp)->next) {
	}
	*pp = c;
	/* Pollers start on their reactors; a client that connects meanwhile is served in order. */
	vfu_nvme_op(n, UINT32_MAX, vfu_rctx_start, NULL);
	VH_NOTICE("vfu", "NVMe controller '%s' listening at %s (%u I/O queues, %u reactor(s))",
	          n->name, c->sock_path, n->num_ioq, n->nrctx);
	return 0;

out_free:
	for (unsigned i = 0; i < n->nrctx; i++) {
		free(n->rctx[i]);
	}
	doorbells_destroy(n);
	free(n->closing_fds);
	free(c);
	return rc;
}

int
vh_vfu_delete(const char *name)
{
	struct vh_vfu_ctrlr **pp, *c = NULL;

	for (pp = &g_ctrlrs; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->n.name, name) == 0) {
			c = *pp;
			*pp = c->next;
			break;
		}
	}
	if (c == NULL) {
		return -ENODEV;
	}
	c->deleting = true;
	g_freeing++;
	sock_close(c);
	if (c->n.session != NULL) {
		/* The client sees its device go once the in-flight I/O completed. */
		vfu_session_close(c->n.session, "controller deleted");
	} else if (c->dead == NULL) {
		ctrlr_teardown(c);
	}
	/* else: session_free() finishes the teardown. */
	return 0;
}

/* ---- namespaces ---- */

static void
parse_uuid(const char *s, uint8_t out[16])
{
	unsigned k = 0;

	memset(out, 0, 16);
	for (const char *p = s; *p != '\0' && k < 32; p++) {
		int v;

		if (*p == '-') {
			continue;
		}
		v = (*p >= '0' && *p <= '9') ? *p - '0' : (*p | 0x20) - 'a' + 10;
		if (v < 0 || v > 15) {
			continue;
		}
		out[k / 2] = (uint8_t)(out[k / 2] | (v << ((k % 2) ? 0 : 4)));
		k++;
	}
}

int
vh_vfu_add_ns(const char *ctrlr, const char *bdev_name, uint32_t nsid, uint32_t *nsid_out)
{
	struct vh_vfu_ctrlr *c = vh_vfu_find(ctrlr);
	struct vh_bdev *b;
	struct vfu_nvme *n;
	struct vfu_ns *ns;
	uint32_t bs;
	int rc;

	if (c == NULL) {
		return -ENODEV;
	}
	n = &c->n;
	b = vh_bdev_find(bdev_name);
	if (b == NULL) {
		return -ENOENT;
	}
	if (vh_bdev_claimed_by(b) != NULL) {
		return -EBUSY;
	}
	bs = vh_bdev_block_size(b);
	if (!VH_IS_POW2(bs) || bs < 512 || bs > 65536) {
		return -EINVAL;
	}
	if (nsid == 0) {
		for (nsid = 1; nsid <= VFU_NVME_MAX_NS && n->ns[nsid] != NULL; nsid++) {
		}
		if (nsid > VFU_NVME_MAX_NS) {
			return -ENOSPC;
		}
	} else if (nsid > VFU_NVME_MAX_NS) {
		return -ERANGE;
	} else if (n->ns[nsid] != NULL) {
		return -EEXIST;
	}
	ns = calloc(1, sizeof(*ns));
	if (ns == NULL) {
		return -ENOMEM;
	}
	rc = vh_bdev_claim(b, n->name);
	if (rc < 0) {
		free(ns);
		return rc;
	}
	ns->nsid = nsid;
	ns->bdev = b;
	ns->block_size = bs;
	ns->lbads = (uint8_t)__builtin_ctz(bs);
	ns->nblocks = vh_bdev_num_blocks(b);
	parse_uuid(vh_bdev_uuid(b), ns->uuid);
	VH_STORE_REL(n->ns[nsid], ns); /* pairs with the reactors' VH_LOAD_ACQ (nvme.h N4) */
	if (n->enabled) {
		vfu_nvme_ns_changed(n, nsid);
	}
	*nsid_out = nsid;
	VH_NOTICE(n->name, "namespace %u: bdev '%s' (%" PRIu64 " blocks of %u bytes)", nsid,
	          bdev_name, ns->nblocks, bs);
	return 0;
}

/* Free every namespace marked removing; reactors hold no channel of them (paused or idle). */
static void
ns_reap(struct vfu_nvme *n)
{
	for (unsigned i = 1; i <= VFU_NVME_MAX_NS; i++) {
		struct vfu_ns *ns = n->ns[i];

		if (ns != NULL && ns->removing) {
			VH_STORE_REL(n->ns[i], NULL);
			vh_bdev_release(ns->bdev);
			free(ns);
			if (n->enabled) {
				vfu_nvme_ns_changed(n, i);
			}
		}
	}
}

static void
ns_paused(struct vfu_nvme *n)
{
	ns_reap(n);
	vfu_nvme_op(n, UINT32_MAX, vfu_rctx_resume, NULL);
}

static void
ns_remove_start(struct vfu_nvme *n)
{
	if (n->nqueues == 0) {
		/* No I/O queue: no reactor holds a channel (they drop them with their last SQ). */
		ns_reap(n);
		return;
	}
	vfu_nvme_op(n, UINT32_MAX, vfu_rctx_pause, ns_paused);
}

int
vh_vfu_remove_ns(const char *ctrlr, uint32_t nsid)
{
	struct vh_vfu_ctrlr *c = vh_vfu_find(ctrlr);
	struct vfu_nvme *n;

	if (c == NULL) {
		return -ENODEV;
	}
	n = &c->n;
	if (nsid == 0 || nsid > VFU_NVME_MAX_NS || n->ns[nsid] == NULL || n->ns[nsid]->removing) {
		return -ENOENT;
	}
	VH_WRITE_ONCE(n->ns[nsid]->removing, true); /* reactors refuse new commands at once */
	VH_NOTICE(n->name, "namespace %u: removing", nsid);
	if (n->busy) {
		n->after_op = ns_remove_start; /* reaps every namespace marked by then */
	} else {
		ns_remove_start(n);
	}
	return 0;
}

/* ---- JSON ---- */

static json_t *
mask_json(uint64_t mask)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%" PRIx64, mask);
	return json_string(buf);
}

json_t *
vh_vfu_ctrlr_info_json(const struct vh_vfu_ctrlr *c)
{
	const struct vfu_nvme *n = &c->n;
	json_t *nss = json_array(), *sess;

	for (unsigned i = 1; nss != NULL && i <= VFU_NVME_MAX_NS; i++) {
		const struct vfu_ns *ns = n->ns[i];

		if (ns != NULL && !ns->removing) {
			json_array_append_new(nss,
			                      json_pack("{s:i, s:s, s:i, s:I}", "nsid", (int)i,
			                                "bdev_name", vh_bdev_name(ns->bdev),
			                                "block_size", (int)ns->block_size,
			                                "num_blocks", (json_int_t)ns->nblocks));
		}
	}
	if (n->session != NULL) {
		sess = json_pack("{s:b, s:b, s:i, s:i, s:I}", "enabled", n->enabled, "fatal",
		                 n->fatal, "io_queues", (int)(n->nqueues / 2), "dma_regions",
		                 (int)n->session->dma.n, "messages",
		                 (json_int_t)n->session->stat_msgs);
	} else {
		sess = json_null();
	}
	return json_pack("{s:s, s:s, s:s, s:o, s:i, s:b, s:I, s:o, s:o}", "ctrlr", n->name,
	                 "transport", "vfio_user_nvme", "socket", c->sock_path, "cpumask",
	                 mask_json(c->cpumask), "num_io_queues", (int)n->num_ioq, "connected",
	                 n->session != NULL, "connections", (json_int_t)c->stat_connections,
	                 "namespaces", nss, "session", sess);
}

int
vh_vfu_ctrlr_config_json(const struct vh_vfu_ctrlr *c, json_t *config)
{
	const struct vfu_nvme *n = &c->n;

	if (json_array_append_new(config, json_pack("{s:s, s:{s:s, s:o, s:i}}", "method",
	                                            "vfu_create_nvme_controller", "params", "ctrlr",
	                                            n->name, "cpumask", mask_json(c->cpumask),
	                                            "num_io_queues", (int)n->num_ioq)) < 0) {
		return -ENOMEM;
	}
	for (unsigned i = 1; i <= VFU_NVME_MAX_NS; i++) {
		const struct vfu_ns *ns = n->ns[i];

		if (ns == NULL || ns->removing) {
			continue;
		}
		if (json_array_append_new(config,
		                          json_pack("{s:s, s:{s:s, s:s, s:i}}", "method",
		                                    "vfu_controller_add_ns", "params", "ctrlr",
		                                    n->name, "bdev_name", vh_bdev_name(ns->bdev),
		                                    "nsid", (int)i)) < 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

/* ---- shutdown and faults ---- */

void
vh_vfu_shutdown(void (*done)(void *arg), void *arg)
{
	g_shutdown_done = done;
	g_shutdown_arg = arg;
	while (g_ctrlrs != NULL) {
		vh_vfu_delete(g_ctrlrs->n.name);
	}
	if (g_freeing == 0) {
		g_shutdown_done = NULL;
		done(arg);
	}
}

void
vh_vfu_close_faulted(void)
{
	for (struct vh_vfu_ctrlr *c = g_ctrlrs; c != NULL; c = c->next) {
		struct vfu_session *s = c->n.session;

		if (s != NULL && !s->closing && vfu_dma_faulted(&s->dma)) {
			vfu_session_close(s, "SIGBUS on guest memory (the client truncated it?)");
		}
	}
}

void
vh_vfu_accept_pause(bool paused)
{
	g_accept_paused = paused;
	for (struct vh_vfu_ctrlr *c = g_ctrlrs; c != NULL; c = c->next) {
		if (paused) {
			listen_pause(c);
		} else if (!has_client(c)) {
			listen_resume(c);
		}
	}
}

int
vh_vfu_upgrade_blocker(char *name, size_t len)
{
	for (struct vh_vfu_ctrlr *c = g_ctrlrs; c != NULL; c = c->next) {
		if (has_client(c)) {
			snprintf(name, len, "%s", c->n.name);
			return -EBUSY;
		}
	}
	return 0;
}
