/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz target: vhost-user message *sequences* against a real controller and session.
 *
 * The real daemon layers run in-process: the control evloop (pumped by this thread), one real
 * reactor thread, a ram bdev, and a controller created with vh_vhost_blk_create() whose
 * listening socket we connect to, so framing (socket.c), the message table (msg.c), memory
 * tables (mem.c), inflight regions (inflight.c) and ring start/stop (vring.c, session.c) all run
 * as in vhostd. Each input is one connection: a list of records (see enum op) that send
 * messages with real fds attached (memfd guest RAM, eventfds, a socketpair end, a sealed memfd),
 * write guest memory (descriptors, rings), kick, or send raw/truncated bytes. Then we hang up
 * and wait for the session to be freed.
 *
 * Checked after each input:
 * - no sanitizer report;
 * - the session is gone within a deadline (no wedged quiesce) and the controller listens again;
 * - the process fd count is back at its baseline (every fd that came with a message is closed
 *   or released with the session), unless VHFUZZ_ALLOW_FD_LEAK=1;
 * - no mapping of the guest memfd or of an inflight memfd is left (/proc/self/maps);
 * - RSS stays within 1 GiB of its baseline.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bdev/bdev_module.h"
#include "core/evloop.h"
#include "core/log.h"
#include "core/reactor.h"
#include "vhost/device.h"
#include "vhost/session.h"

#define GUEST_SIZE  (256u * 1024)
#define MAX_HFDS    256
#define DEADLINE_NS (5ull * 1000000000ull)

enum op {
	OP_MSG = 0, /* req, flags, size16, nfds, kinds, payload[size] */
	OP_GUEST,   /* off16 (x4), len8, bytes */
	OP_KICK,    /* write every eventfd we sent */
	OP_PUMP,    /* let the loop run */
	OP_TRUNC,   /* header promising more than is sent, then EOF */
	OP_RAW,     /* len8 raw bytes: partial framing */
	OP_COUNT,
};

static struct vh_evloop *g_loop;
static struct vh_vhost_ctrlr *g_c;
static int g_guest_fd = -1;
static uint8_t *g_guest;
static int g_base_fds, g_base_maps;
static long g_base_rss;
static bool g_allow_fd_leak;
static int g_hfds[MAX_HFDS];
static unsigned g_nhfds;
static int g_kick[MAX_HFDS];
static unsigned g_nkick;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (d == NULL) {
		abort();
	}
	while ((de = readdir(d)) != NULL) {
		n += de->d_name[0] != '.';
	}
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* On a leak: what the open fds point at, to tell which object leaked. */
static void
list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	while (d != NULL && (de = readdir(d)) != NULL) {
		char path[64], target[256];
		ssize_t n;

		if (de->d_name[0] == '.') {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "  fd %s -> %s\n", de->d_name, target);
	}
	if (d != NULL) {
		closedir(d);
	}
}

static int
count_maps(void)
{
	static char buf[1 << 16];
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), n = 0;
	ssize_t r;
	size_t carry = 0;

	if (fd < 0) {
		abort();
	}
	while ((r = read(fd, buf + carry, sizeof(buf) - 1 - carry)) > 0) {
		size_t len = carry + (size_t)r;
		char *p = buf, *nl;

		buf[len] = '\0';
		while ((nl = strchr(p, '\n')) != NULL) {
			*nl = '\0';
			n += strstr(p, "vhfuzz") != NULL;
			p = nl + 1;
		}
		carry = len - (size_t)(p - buf);
		memmove(buf, p, carry);
	}
	close(fd);
	return n;
}

static long
rss_kib(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f == NULL) {
		abort();
	}
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
		rss = 0;
	}
	fclose(f);
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void
stop_loop(void *arg)
{
	vh_evloop_stop(g_loop);
}

/* Run one epoll batch of the control loop (and whatever reactor replies arrived). */
static void
pump(void)
{
	if (vh_control_send(stop_loop, NULL) != 0 || vh_evloop_run(g_loop) != 0) {
		abort();
	}
}

static void
drain_replies(int sock)
{
	char buf[4096], cbuf[CMSG_SPACE(8 * sizeof(int))];

	for (;;) {
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct msghdr mh = {.msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = cbuf,
		                    .msg_controllen = sizeof(cbuf)};
		ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n <= 0) {
			return;
		}
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				int nf = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));

				for (int i = 0; i < nf; i++) {
					int fd;

					memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
					close(fd);
				}
			}
		}
	}
}

/* Pump until the session consumed everything we sent and is not waiting for a reactor. */
static void
settle(int sock)
{
	uint64_t deadline = vh_now_ns() + DEADLINE_NS;

	for (;;) {
		struct vh_session *s = g_c->sessions[0];
		int pending = 0;

		pump();
		drain_replies(sock);
		s = g_c->sessions[0];
		if (s == NULL || s->closing) {
			return;
		}
		if (ioctl(s->fd, FIONREAD, &pending) < 0) {
			abort();
		}
		if (!s->paused && pending == 0) {
			return;
		}
		if (vh_now_ns() > deadline) {
			fprintf(stderr,
			        "session still busy (paused %d, %d bytes unread) after 5 s\n",
			        s->paused, pending);
			abort();
		}
	}
}

static bool
ring_busy(const struct vh_vq *vq)
{
	if (!vq->started) {
		return false;
	}
	if (__atomic_load_n(&vq->poller, __ATOMIC_ACQUIRE) == NULL) {
		return true; /* the start message has not run yet */
	}
	return !__atomic_load_n(&vq->broken, __ATOMIC_RELAXED) &&
	       __atomic_load_n(&vq->running, __ATOMIC_RELAXED) &&
	       (__atomic_load_n(&vq->last_avail, __ATOMIC_RELAXED) !=
	                __atomic_load_n(&vq->avail->idx, __ATOMIC_RELAXED) ||
	        __atomic_load_n(&vq->inflight, __ATOMIC_RELAXED) != 0);
}

/* After a kick: give the reactor up to 50 ms to fetch and complete what the ring holds. */
static void
wait_rings(void)
{
	uint64_t deadline = vh_now_ns() + 50000000ull;
	struct vh_session *s = g_c->sessions[0];

	if (s == NULL || s->closing) {
		return;
	}
	for (uint32_t i = 0; i < s->nvqs; i++) {
		while (ring_busy(&s->vqs[i]) && vh_now_ns() < deadline) {
			sched_yield();
		}
	}
}

static int
hfd(int fd)
{
	if (fd < 0 || g_nhfds == MAX_HFDS) {
		abort();
	}
	g_hfds[g_nhfds++] = fd;
	return fd;
}

static int
make_fd(unsigned kind)
{
	int fd, sv[2];

	switch (kind & 3) {
	case 0:
		return g_guest_fd;
	case 1:
		fd = hfd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
		if (g_nkick < MAX_HFDS) {
			g_kick[g_nkick++] = fd;
		}
		return fd;
	case 2:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
			abort();
		}
		hfd(sv[0]);
		return hfd(sv[1]);
	default:
		fd = hfd(memfd_create("vhfuzz-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING));
		if (ftruncate(fd, 2 << 20) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
			abort();
		}
		return fd;
	}
}

/* Send all of buf (with fds on the first byte); false if the peer is gone. */
static bool
send_all(int sock, const uint8_t *buf, size_t len, const int *fds, unsigned nfds)
{
	char cbuf[CMSG_SPACE(16 * sizeof(int))];
	uint64_t deadline = vh_now_ns() + DEADLINE_NS;

	while (len > 0 || nfds > 0) {
		struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n;

		if (nfds > 0) {
			struct cmsghdr *cm;

			memset(cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf;
			mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
			memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
		}
		if (len == 0) {
			return true; /* fds need at least one byte to ride on */
		}
		n = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			if (g_c->sessions[0] == NULL || g_c->sessions[0]->closing ||
			    vh_now_ns() > deadline) {
				return false;
			}
			pump();
			drain_replies(sock);
			continue;
		}
		if (n <= 0) {
			return false;
		}
		buf += n;
		len -= (size_t)n;
		nfds = 0;
	}
	return true;
}

static uint8_t
take(const uint8_t **d, size_t *n)
{
	uint8_t v = 0;

	if (*n > 0) {
		v = **d;
		(*d)++;
		(*n)--;
	}
	return v;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct vh_reactor_opts ro = {.cpumask = 1, .idle_ns = 20000, .pin = false};
	struct vh_vhost_blk_opts co = {.name = "fz", .bdev_name = "ram0", .num_queues = 2};
	static char dir[] = "/tmp/vhfuzz-msg-XXXXXX";
	const char *e = getenv("VHFUZZ_ALLOW_FD_LEAK");

	g_allow_fd_leak = e != NULL && e[0] == '1';
	vh_log_set_level(VH_LOG_DEBUG); /* format every message (fuzz_log.c prints nothing) */
	g_loop = vh_evloop_create();
	if (g_loop == NULL || vh_reactors_start(&ro) != 0 || mkdtemp(dir) == NULL ||
	    vh_vhost_init(dir, (gid_t)-1) != 0 || vh_bdev_ram_create("ram0", 2048, 512) != 0 ||
	    vh_vhost_blk_create(&co) != 0) {
		abort();
	}
	g_c = vh_vhost_find("fz");
	g_guest_fd = memfd_create("vhfuzz-guest", MFD_CLOEXEC);
	if (g_c == NULL || g_guest_fd < 0 || ftruncate(g_guest_fd, GUEST_SIZE) < 0) {
		abort();
	}
	g_guest = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g_guest_fd, 0);
	if (g_guest == MAP_FAILED) {
		abort();
	}
	g_base_fds = count_fds();
	g_base_maps = count_maps();
	g_base_rss = rss_kib();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint64_t deadline;
	int sock, fds, maps;
	bool alive = true;

	memset(g_guest, 0, GUEST_SIZE);
	g_nhfds = 0;
	g_nkick = 0;
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g_c->sock_path);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		abort();
	}
	deadline = vh_now_ns() + DEADLINE_NS;
	while (g_c->sessions[0] == NULL) {
		pump();
		if (vh_now_ns() > deadline) {
			fprintf(stderr, "connection not accepted\n");
			abort();
		}
	}
	while (size > 0 && alive) {
		uint8_t op = take(&data, &size) % OP_COUNT;
		uint8_t buf[12 + 512];
		int mfds[16];

		switch (op) {
		case OP_MSG: {
			uint32_t req = take(&data, &size), fl = take(&data, &size), sz;
			unsigned nf, kinds;

			sz = take(&data, &size);
			sz |= (uint32_t)take(&data, &size) << 8;
			sz %= 300;
			nf = take(&data, &size) % 10;
			kinds = take(&data, &size);
			if (req < 0xc0) {
				req %= VHOST_USER_MAX_REQUEST; /* mostly known codes */
			}
			fl = (fl & 0x80) ? (fl & 0x0f) : (VHOST_USER_VERSION | (fl & 1 ? 8u : 0));
			memcpy(buf, &req, 4);
			memcpy(buf + 4, &fl, 4);
			memcpy(buf + 8, &sz, 4);
			memset(buf + 12, 0, sz);
			for (uint32_t i = 0; i < sz && size > 0; i++) {
				buf[12 + i] = take(&data, &size);
			}
			for (unsigned i = 0; i < nf; i++) {
				mfds[i] = make_fd(kinds >> (2 * (i % 4)));
			}
			alive = send_all(sock, buf, 12 + sz, mfds, nf);
			break;
		}
		case OP_GUEST: {
			uint32_t off = take(&data, &size);
			unsigned len;

			off = (off | (uint32_t)take(&data, &size) << 8) * 4;
			len = take(&data, &size);
			for (unsigned i = 0; i < len && size > 0; i++) {
				g_guest[(off + i) % GUEST_SIZE] = take(&data, &size);
			}
			continue;
		}
		case OP_KICK:
			for (unsigned i = 0; i < g_nkick; i++) {
				uint64_t one = 1;

				if (write(g_kick[i], &one, sizeof(one)) < 0) {
					/* saturated counter */
				}
			}
			wait_rings();
			break;
		case OP_PUMP:
			pump();
			break;
		case OP_TRUNC: {
			uint32_t h[3] = {VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, 8};
			unsigned nf;

			h[0] = take(&data, &size) % VHOST_USER_MAX_REQUEST;
			h[2] = take(&data, &size) % 300;
			nf = take(&data, &size) % 9;
			for (unsigned i = 0; i < nf; i++) {
				mfds[i] = make_fd(1);
			}
			send_all(sock, (const uint8_t *)h, 12, mfds, nf);
			shutdown(sock, SHUT_WR);
			alive = false;
			break;
		}
		case OP_RAW: {
			unsigned len = take(&data, &size);

			for (unsigned i = 0; i < len && size > 0; i++) {
				buf[i] = take(&data, &size);
			}
			alive = send_all(sock, buf, len, NULL, 0);
			break;
		}
		}
		settle(sock);
	}
	close(sock);
	deadline = vh_now_ns() + DEADLINE_NS;
	while (g_c->sessions[0] != NULL || g_c->listen_src == NULL) {
		pump();
		if (vh_now_ns() > deadline) {
			fprintf(stderr, "session not freed 5 s after the front-end hung up\n");
			abort();
		}
	}
	for (unsigned i = 0; i < g_nhfds; i++) {
		close(g_hfds[i]);
	}
	fds = count_fds();
	maps = count_maps();
	if (fds != g_base_fds && !g_allow_fd_leak) {
		fprintf(stderr, "fd count %d, baseline %d: the daemon leaked %d fd(s)\n", fds,
		        g_base_fds, fds - g_base_fds);
		list_fds();
		abort();
	}
	if (maps != g_base_maps) {
		fprintf(stderr, "%d guest/inflight mapping(s) left after the session closed\n",
		        maps - g_base_maps);
		abort();
	}
	if (rss_kib() > g_base_rss + 1024 * 1024) {
		fprintf(stderr, "RSS grew from %ld to %ld KiB\n", g_base_rss, rss_kib());
		abort();
	}
	return 0;
}
