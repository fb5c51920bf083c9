/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live upgrade by hand-over (see upgrade.h and docs/design.md, "Live upgrade by hand-over").
 *
 * The channel is a SOCK_SEQPACKET socketpair the supervisor made: one end in the candidate's
 * environment (VHOSTD_UPGRADE_FD), the other sent to the running worker. Each datagram is one
 * frame: a 16-byte header {magic, type, payload length, fd count}, a payload (JSON, or a chunk
 * of the session description) and up to UP_MAX_FDS fds.
 *
 *   new -> old  HELLO {format, version, pid}
 *   old -> new  ACCEPT {format, version, pid, nvme}  the old process refuses state changes (RPC)
 *   new -> old  PREPARED                         config replayed, controllers held
 *   old -> new  STATE chunks + fds, STATE_END    all sessions frozen and described, NVMe
 *                                                devices released
 *   new -> old  READY                            NVMe devices taken, sessions adopted, nothing
 *                                                started
 *   old -> new  COMMIT                           the old process will never touch them again
 *   new -> old  STARTED {pause_ns}               every adopted queue runs
 *   either      ABORT {why}
 *
 * Until COMMIT the new process has only prepared; any failure (a frame missing, a timeout, a
 * crash of the candidate, which the channel reports as EOF) makes the old process thaw and
 * serve on, and the supervisor kills the candidate.
 *
 * NVMe controllers of the user-space driver are detached and re-attached inside the freeze (a
 * VFIO device has one opener, and our DMA addresses are the old process's virtual addresses):
 * ACCEPT's "nvme" describes them, so that the candidate's config replay creates them and their
 * bdevs without opening the device; once every queue is drained the old process shuts each one
 * down and closes its device (vh_bdev_nvme_upgrade_release), then sends STATE; the candidate
 * opens and brings them up and checks the namespaces before READY. A failure after that takes
 * the devices back (waiting for a dying candidate to let go) before the sessions thaw. After COMMIT
 * the old process only waits for STARTED, reports, and exits without any teardown (its sockets,
 * files and devices belong to the new process now).
 *
 * Threat model: the candidate is our own binary, but possibly a broken one: everything it sends
 * is checked, and the old process bounds every wait on it.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app/upgrade.h"
#include "bdev/nvme/bdev_nvme.h"
#include "core/evloop.h"
#include "core/handover.h"
#include "core/log.h"
#include "core/util.h"
#include "rpc/rpc.h"
#include "vfu/vfu.h"
#include "vhost/upgrade.h"

#define UP_MAGIC     0x50554856u /* "VHUP" */
#define UP_CHUNK     32768u
#define UP_MAX_FDS   128u
#define UP_MAX_STATE (64u * 1024u * 1024u)

enum frame_type {
	F_HELLO = 1,
	F_ACCEPT,
	F_PREPARED,
	F_STATE,
	F_STATE_END,
	F_READY,
	F_COMMIT,
	F_STARTED,
	F_ABORT,
};

static const char *const frame_names[] = {
        "?",         "HELLO", "ACCEPT", "PREPARED", "STATE",
        "STATE_END", "READY", "COMMIT", "STARTED",  "ABORT",
};

struct frame_hdr {
	uint32_t magic;
	uint32_t type;
	uint32_t len;
	uint32_t nfds;
};

struct frame {
	uint32_t type;
	uint32_t len;
	char data[UP_CHUNK + 1]; /* NUL-terminated copy of the payload */
	int fds[UP_MAX_FDS];
	unsigned nfds;
};

static const char *
frame_name(uint32_t t)
{
	return t < VH_ARRAY_SIZE(frame_names) ? frame_names[t] : "?";
}

/*
 * Send one frame. With @wait_ms 0 it never waits (the old process); otherwise it waits up to
 * that long for room. 0 or -errno.
 */
static int
send_frame(int fd, uint32_t type, const void *data, uint32_t len, const int *fds, unsigned nfds,
           int wait_ms)
{
	struct frame_hdr h = {UP_MAGIC, type, len, nfds};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)data, len}};
	char cbuf[CMSG_SPACE(UP_MAX_FDS * sizeof(int))] = {0};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	uint64_t deadline = vh_now_ns() + (uint64_t)wait_ms * 1000000ull;

	if (len > UP_CHUNK || nfds > UP_MAX_FDS) {
		return -EINVAL;
	}
	if (nfds > 0) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	for (;;) {
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		uint64_t now;
		struct pollfd p = {.fd = fd, .events = POLLOUT};

		if (n >= 0) {
			return (size_t)n == sizeof(h) + len ? 0 : -EIO;
		}
		if (errno == EINTR) {
			continue;
		}
		now = vh_now_ns();
		if (errno != EAGAIN || now >= deadline) {
			return -errno;
		}
		poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
	}
}

static int
send_json(int fd, uint32_t type, json_t *j, int wait_ms)
{
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	int rc;

	json_decref(j);
	if (j != NULL && text == NULL) {
		return -ENOMEM;
	}
	rc = send_frame(fd, type, text, text ? (uint32_t)strlen(text) : 0, NULL, 0, wait_ms);
	free(text);
	return rc;
}

/*
 * Receive one frame. @wait_ms < 0: do not wait (-EAGAIN if none). Returns 0, -ECONNRESET at
 * EOF, -ETIMEDOUT, -EPROTO for a malformed frame (its fds are closed), or -errno.
 */
static int
recv_frame(int fd, struct frame *f, int wait_ms)
{
	struct frame_hdr h;
	char cbuf[CMSG_SPACE(UP_MAX_FDS * sizeof(int))];
	struct iovec iov[2] = {{&h, sizeof(h)}, {f->data, UP_CHUNK}};
	struct msghdr mh = {.msg_iov = iov,
	                    .msg_iovlen = 2,
	                    .msg_control = cbuf,
	                    .msg_controllen = sizeof(cbuf)};
	ssize_t n;

	f->nfds = 0;
	if (wait_ms >= 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int rc;

		do {
			rc = poll(&p, 1, wait_ms);
		} while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			return -ETIMEDOUT;
		}
	}
	do {
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return -errno;
	}
	if (n == 0) {
		return -ECONNRESET;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			unsigned k = (unsigned)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			for (unsigned i = 0; i < k; i++) {
				int x;

				memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (f->nfds < UP_MAX_FDS) {
					f->fds[f->nfds++] = x;
				} else {
					close(x);
				}
			}
		}
	}
	if ((size_t)n < sizeof(h) || h.magic != UP_MAGIC || h.len != (size_t)n - sizeof(h) ||
	    h.nfds != f->nfds || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		for (unsigned i = 0; i < f->nfds; i++) {
			close(f->fds[i]);
		}
		f->nfds = 0;
		return -EPROTO;
	}
	f->type = h.type;
	f->len = h.len;
	f->data[h.len] = '\0';
	return 0;
}

static void
close_frame_fds(struct frame *f)
{
	for (unsigned i = 0; i < f->nfds; i++) {
		if (f->fds[i] >= 0) {
			close(f->fds[i]);
		}
	}
	f->nfds = 0;
}

/* ---- old side ---- */

/* What vhostd_get_upgrade_info reports in a worker that was started by an upgrade. */
static struct {
	bool upgraded;
	int from_pid;
	char from_version[64];
	uint64_t stop_ns;
	uint64_t start_ns;
} g_info;

enum phase {
	P_IDLE,
	P_ASKED,   /* we asked the supervisor for a candidate */
	P_HELLO,   /* waiting for the candidate's HELLO */
	P_PREPARE, /* config frozen; the candidate replays it */
	P_FREEZE,  /* sessions settling */
	P_READY,   /* state sent; the candidate adopts it */
	P_STARTED, /* COMMIT sent: no way back */
};

static const char *const phase_names[] = {
        "idle",
        "a candidate from the supervisor",
        "the candidate's HELLO",
        "the candidate's config replay",
        "the sessions to settle",
        "the candidate's adoption",
        "the candidate to start the queues",
};

/* How long each phase may take (the candidate execs, starts reactors, replays the config). */
static const uint64_t phase_timeout_ms[] = {0, 10000, 60000, 120000, 15000, 30000, 30000};

static struct {
	enum phase phase;
	bool rpc;      /* started by vhostd_upgrade: its request waits for the result */
	bool finished; /* result/why describe the last upgrade, not yet collected */
	int rc;
	json_t *result;
	char why[256];
	int fd;
	struct vh_evsource *src;
	struct vh_evsource *timer;
	pid_t new_pid;
	char new_version[64];
	uint64_t t_start;
	struct frame frame;
	/* A failed upgrade taking its NVMe devices back (old_reclaim). */
	struct vh_evsource *reclaim_timer;
	uint64_t reclaim_deadline;
	int fail_rc;
	enum phase fail_was;
	/* The freeze: vhost-user and vfio-user sessions each report once (old_part_frozen). */
	unsigned frozen_parts;
	/* The candidate takes vfio-user sessions over (its HELLO says so). */
	bool new_takes_vfu;
} g_old = {.fd = -1};

static void old_input(void *arg, uint32_t events);
static void old_timeout(void *arg, uint32_t events);
static void old_fail_end(void);
static void old_reclaim(void);

/* How long a failed upgrade waits for its candidate to let go of an NVMe device. */
#define RECLAIM_WAIT_NS  (30ull * 1000000000ull)
#define RECLAIM_RETRY_NS (20ull * 1000000ull)
#define RECLAIM_LATE_NS  (1000ull * 1000000ull)

/* VHOSTD_UPGRADE_TIMEOUT_MS caps every phase's wait (tests use short ones). */
static uint64_t
phase_ms(enum phase p)
{
	const char *cap = getenv("VHOSTD_UPGRADE_TIMEOUT_MS");
	uint64_t ms = phase_timeout_ms[p];

	if (cap != NULL && strtoull(cap, NULL, 10) >= 1000 && strtoull(cap, NULL, 10) < ms) {
		ms = strtoull(cap, NULL, 10);
	}
	return ms;
}

static void
old_arm(enum phase p)
{
	g_old.phase = p;
	if (g_old.timer != NULL) {
		vh_evloop_del(g_old.timer);
		g_old.timer = NULL;
	}
	if (phase_timeout_ms[p] > 0) {
		g_old.timer = vh_evloop_timer(vh_evloop_main(), phase_ms(p) * 1000000ull,
		                              old_timeout, NULL);
	}
}

static void
old_close_channel(void)
{
	if (g_old.src != NULL) {
		vh_evloop_del(g_old.src);
		g_old.src = NULL;
	}
	if (g_old.fd >= 0) {
		close(g_old.fd);
		g_old.fd = -1;
	}
	if (g_old.timer != NULL) {
		vh_evloop_del(g_old.timer);
		g_old.timer = NULL;
	}
}

static void
old_finish(int rc)
{
	g_old.rc = rc;
	g_old.finished = g_old.rpc;
	g_old.rpc = false;
	g_old.phase = P_IDLE;
	vh_rpc_wake();
}

/* Before COMMIT: give up, serve on as before. */
static void VH_PRINTF(2, 3) old_fail(int rc, const char *fmt, ...)
{
	enum phase was = g_old.phase;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g_old.why, sizeof(g_old.why), fmt, ap);
	va_end(ap);
	if (was == P_STARTED) {
		/*
		 * The candidate may already serve, or may have died half-way: we cannot take the
		 * sessions back. Exit; the supervisor restarts a worker (the crash path).
		 */
		VH_ERR("upgrade",
		       "the new worker failed after taking over: %s; exiting so that "
		       "the supervisor restarts one",
		       g_old.why);
		vh_handover_notify("UPGRADE-FAILED");
		fflush(NULL);
		_exit(1);
	}
	if (g_old.fd >= 0) {
		json_t *j = json_pack("{s:s}", "why", g_old.why);

		send_json(g_old.fd, F_ABORT, j, 0);
	}
	old_close_channel();
	/* First: the supervisor kills the candidate, which lets go of any NVMe device it took. */
	if (was >= P_HELLO || was == P_ASKED) {
		vh_handover_notify("UPGRADE-FAILED");
	}
	g_old.fail_rc = rc;
	g_old.fail_was = was;
	if (vh_bdev_nvme_upgrade_released()) {
		g_old.reclaim_deadline = vh_now_ns() + RECLAIM_WAIT_NS;
		old_reclaim();
		return;
	}
	old_fail_end();
}

/* The upgrade failed and the NVMe devices are ours again (or never left): serve on. */
static void
old_fail_end(void)
{
	if (g_old.fail_was >= P_FREEZE) {
		vh_vhost_thaw();
		vh_vfu_thaw();
	}
	vh_rpc_freeze(false);
	vh_vfu_accept_pause(false);
	VH_ERR("upgrade", "upgrade failed, vhostd %s serves on: %s", vh_version(), g_old.why);
	old_finish(g_old.fail_rc);
}

static void
reclaim_retry(void *arg, uint32_t events)
{
	g_old.reclaim_timer = NULL;
	old_reclaim();
}

/* After RECLAIM_WAIT_NS: the sessions serve on; keep trying for the NVMe devices. */
static void
reclaim_late(void *arg, uint32_t events)
{
	if (vh_bdev_nvme_upgrade_reclaim() == -EBUSY) {
		vh_evloop_timer(vh_evloop_main(), RECLAIM_LATE_NS, reclaim_late, NULL);
		return;
	}
	VH_NOTICE("upgrade", "the NVMe devices of the failed upgrade are back");
}

/*
 * Take the released NVMe devices back and re-enable their controllers before the sessions
 * thaw (their queues would find no I/O channel). A candidate that is dying may still hold a
 * device for a moment: retry until RECLAIM_WAIT_NS.
 */
static void
old_reclaim(void)
{
	uint64_t t0 = vh_now_ns();
	int rc = vh_bdev_nvme_upgrade_reclaim();

	if (rc == -EBUSY && t0 < g_old.reclaim_deadline) {
		g_old.reclaim_timer =
		        vh_evloop_timer(vh_evloop_main(), RECLAIM_RETRY_NS, reclaim_retry, NULL);
		if (g_old.reclaim_timer != NULL) {
			return;
		}
	}
	if (rc == -EBUSY) {
		/* Its bdevs refuse I/O channels meanwhile: sessions on them do not restart. */
		VH_ERR("upgrade",
		       "an NVMe device is still held by the failed candidate after %llu "
		       "s: its bdevs stay offline until it lets go (retrying every second)",
		       RECLAIM_WAIT_NS / 1000000000ull);
		vh_evloop_timer(vh_evloop_main(), RECLAIM_LATE_NS, reclaim_late, NULL);
	} else if (rc < 0) {
		VH_ERR("upgrade", "an NVMe controller could not be re-enabled: %s", strerror(-rc));
	} else {
		VH_NOTICE("upgrade", "NVMe devices taken back %.3f ms after the failure",
		          (double)(vh_now_ns() - (g_old.reclaim_deadline - RECLAIM_WAIT_NS)) / 1e6);
	}
	old_fail_end();
}

static void
old_timeout(void *arg, uint32_t events)
{
	g_old.timer = NULL;
	old_fail(-ETIMEDOUT, "timed out waiting for %s", phase_names[g_old.phase]);
}

static void
old_frozen(void *arg, int rc)
{
	struct vh_fdvec fds = {0};
	char why[256] = "";
	json_t *state;
	char *text;
	size_t len, off = 0;
	unsigned fi = 0;
	int err = 0;

	if (g_old.phase != P_FREEZE) {
		return;
	}
	if (rc < 0) {
		old_fail(rc, "%s",
		         rc == -EBUSY ? "a live migration is in progress (dirty logging)"
		                      : "sessions did not settle in time");
		return;
	}
	/* Every queue is drained: give the NVMe devices up; the candidate opens them at STATE. */
	rc = vh_bdev_nvme_upgrade_release(why, sizeof(why));
	if (rc < 0) {
		old_fail(rc, "%s", why);
		return;
	}
	state = vh_vhost_save_sessions(&fds, &err);
	if (state != NULL) {
		json_t *vfu = vh_vfu_save_sessions(&fds, &err);

		if (vfu == NULL || json_object_set_new(state, "vfu", vfu) < 0) {
			json_decref(state);
			state = NULL;
		}
	}
	if (state == NULL) {
		vh_fdvec_free(&fds);
		old_fail(err, "%s",
		         err == -EBUSY ? "a live migration is in progress (dirty logging)"
		                       : "cannot describe the sessions");
		return;
	}
	text = json_dumps(state, JSON_COMPACT);
	json_decref(state);
	if (text == NULL) {
		vh_fdvec_free(&fds);
		old_fail(-ENOMEM, "cannot describe the sessions");
		return;
	}
	len = strlen(text);
	/* Chunks of text, with the fds spread over them in order (the receiver appends both). */
	while (off < len || fi < fds.n) {
		uint32_t n = (uint32_t)VH_MIN(len - off, (size_t)UP_CHUNK);
		unsigned nf = VH_MIN(fds.n - fi, UP_MAX_FDS);

		rc = send_frame(g_old.fd, F_STATE, text + off, n, fds.fds + fi, nf, 2000);
		if (rc < 0) {
			break;
		}
		off += n;
		fi += nf;
	}
	if (rc == 0) {
		rc = send_frame(g_old.fd, F_STATE_END, NULL, 0, NULL, 0, 2000);
	}
	VH_INFO("upgrade", "sent %zu bytes of session state and %u fds", len, fds.n);
	free(text);
	vh_fdvec_free(&fds); /* the fds stay ours until we exit */
	if (rc < 0) {
		old_fail(rc, "cannot send the session state: %s", strerror(-rc));
		return;
	}
	old_arm(P_READY);
}

/* One half of the freeze (vhost-user or vfio-user sessions) finished: both make it whole. */
static void
old_part_frozen(void *arg, int rc)
{
	if (g_old.phase != P_FREEZE) {
		return;
	}
	if (rc < 0 || ++g_old.frozen_parts == 2) {
		old_frozen(arg, rc);
	}
}

static void
old_started(const json_t *j)
{
	const json_t *pause = json_object_get(j, "pause_ns");
	uint64_t pause_ns = json_is_integer(pause) ? (uint64_t)json_integer_value(pause) : 0;
	char msg[64];

	json_decref(g_old.result);
	g_old.result = json_pack(
	        "{s:i, s:i, s:s, s:s, s:f, s:f, s:O?, s:O?}", "old_pid", (int)getpid(), "new_pid",
	        (int)g_old.new_pid, "old_version", vh_version(), "new_version", g_old.new_version,
	        "max_pause_ms", (double)pause_ns / 1e6, "duration_ms",
	        (double)(vh_now_ns() - g_old.t_start) / 1e6, "stop_ns",
	        json_object_get(j, "stop_ns"), "start_ns", json_object_get(j, "start_ns"));
	VH_NOTICE("upgrade",
	          "vhostd %s (pid %d) handed over to vhostd %s (pid %d): longest queue "
	          "pause %.3f ms",
	          vh_version(), (int)getpid(), g_old.new_version, (int)g_old.new_pid,
	          (double)pause_ns / 1e6);
	snprintf(msg, sizeof(msg), "UPGRADED %d", (int)g_old.new_pid);
	vh_handover_notify(msg);
	old_close_channel();
	old_finish(0);
	/*
	 * The reply went out in vh_rpc_wake(). Everything we hold is the new worker's now: no
	 * teardown (it would unlink sockets and drop the supervisor's copies), just go.
	 */
	fflush(NULL);
	_exit(0);
}

static void
old_frame(struct frame *f)
{
	json_t *j = f->len ? json_loads(f->data, 0, NULL) : NULL;
	char busy[64], why[256] = "";
	json_t *nvme;
	const char *s;

	if (f->nfds > 0) {
		close_frame_fds(f);
		json_decref(j);
		old_fail(-EPROTO, "the candidate sent fds with %s", frame_name(f->type));
		return;
	}
	switch (f->type) {
	case F_HELLO:
		if (g_old.phase != P_HELLO) {
			break;
		}
		s = json_string_value(json_object_get(j, "version"));
		if (!json_is_integer(json_object_get(j, "format")) ||
		    json_integer_value(json_object_get(j, "format")) != VH_UPGRADE_FORMAT ||
		    s == NULL) {
			json_int_t fmt = json_integer_value(json_object_get(j, "format"));

			json_decref(j);
			old_fail(-EPROTO,
			         "the new binary speaks hand-over format %" JSON_INTEGER_FORMAT
			         ", this one %d: upgrade in two steps, or restart",
			         fmt, VH_UPGRADE_FORMAT);
			return;
		}
		snprintf(g_old.new_version, sizeof(g_old.new_version), "%s", s);
		g_old.new_pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
		/* Binaries from before the vfio-user hand-over would drop those sessions. */
		g_old.new_takes_vfu = json_is_true(json_object_get(j, "vfu_sessions"));
		json_decref(j);
		if (!g_old.new_takes_vfu && vh_vfu_upgrade_blocker(busy, sizeof(busy)) < 0) {
			old_fail(-EBUSY,
			         "vfio-user controller '%s' has a connected client and the new "
			         "binary cannot take vfio-user sessions over (QEMU's vfio-user "
			         "client does not reconnect)",
			         busy);
			return;
		}
		nvme = NULL;
		if (vh_bdev_nvme_upgrade_describe(&nvme, why, sizeof(why)) < 0) {
			old_fail(-EBUSY, "%s",
			         why[0] ? why : "cannot describe the NVMe controllers");
			return;
		}
		/* No new vfio-user client until the end, in this process or the new one. */
		vh_vfu_accept_pause(true);
		VH_NOTICE("upgrade", "upgrading vhostd %s to vhostd %s (pid %d)", vh_version(),
		          g_old.new_version, (int)g_old.new_pid);
		/* From here until the end the config file stays as the candidate replays it. */
		vh_rpc_freeze(true);
		if (send_json(g_old.fd, F_ACCEPT,
		              json_pack("{s:i, s:s, s:i, s:o}", "format", VH_UPGRADE_FORMAT,
		                        "version", vh_version(), "pid", (int)getpid(), "nvme",
		                        nvme),
		              0) < 0) {
			old_fail(-EIO, "cannot answer the candidate");
			return;
		}
		old_arm(P_PREPARE);
		return;
	case F_PREPARED:
		if (g_old.phase != P_PREPARE) {
			break;
		}
		json_decref(j);
		old_arm(P_FREEZE);
		g_old.frozen_parts = 0;
		if (vh_vhost_freeze(phase_ms(P_FREEZE) - 500, old_part_frozen, NULL) < 0) {
			old_fail(-EBUSY, "a live migration is in progress (dirty logging)");
			return;
		}
		if (g_old.phase == P_FREEZE &&
		    vh_vfu_freeze(phase_ms(P_FREEZE) - 500, old_part_frozen, NULL) < 0) {
			old_fail(-ENOMEM, "cannot freeze the vfio-user sessions");
		}
		return;
	case F_READY:
		if (g_old.phase != P_READY) {
			break;
		}
		json_decref(j);
		/* The point of no return: the candidate starts when it reads this. */
		if (send_frame(g_old.fd, F_COMMIT, NULL, 0, NULL, 0, 2000) < 0) {
			old_fail(-EIO, "cannot send COMMIT to the candidate");
			return;
		}
		vh_rpc_server_pause_accept();
		old_arm(P_STARTED);
		return;
	case F_STARTED:
		if (g_old.phase != P_STARTED) {
			break;
		}
		old_started(j);
		json_decref(j);
		return;
	case F_ABORT:
		s = json_string_value(json_object_get(j, "why"));
		old_fail(-ECANCELED, "the new worker gave up: %s", s != NULL ? s : "(no reason)");
		json_decref(j);
		return;
	default:
		break;
	}
	json_decref(j);
	old_fail(-EPROTO, "unexpected %s from the candidate while waiting for %s",
	         frame_name(f->type), phase_names[g_old.phase]);
}

static void
old_input(void *arg, uint32_t events)
{
	for (int i = 0; i < 8 && g_old.fd >= 0; i++) {
		int rc = recv_frame(g_old.fd, &g_old.frame, -1);

		if (rc == -EAGAIN) {
			return;
		}
		if (rc < 0) {
			old_fail(rc, "%s",
			         rc == -ECONNRESET ? "the new worker exited or crashed"
			                           : "bad frame from the new worker");
			return;
		}
		old_frame(&g_old.frame);
	}
}

/* The supervisor speaks: a candidate's channel, or a refusal. */
static void
on_supervisor(const char *text, int fd)
{
	if (strcmp(text, "UPGRADE") == 0 && fd >= 0) {
		if (g_old.phase != P_IDLE && g_old.phase != P_ASKED) {
			VH_ERR("upgrade", "the supervisor offers a candidate during an upgrade");
			close(fd);
			return;
		}
		if (g_old.phase == P_IDLE) {
			/* SIGHUP to the supervisor: nobody waits for the result. */
			g_old.finished = false;
			g_old.t_start = vh_now_ns();
		}
		g_old.why[0] = '\0';
		g_old.fd = fd;
		vh_fd_set_nonblock(fd);
		g_old.src = vh_evloop_add(vh_evloop_main(), fd, EPOLLIN, old_input, NULL);
		if (g_old.src == NULL) {
			old_fail(-errno, "cannot watch the candidate's channel");
			return;
		}
		old_arm(P_HELLO);
		return;
	}
	if (fd >= 0) {
		close(fd);
	}
	if (strncmp(text, "UPGRADE-REFUSED", 15) == 0 && g_old.phase == P_ASKED) {
		old_fail(-EAGAIN, "%s", text[15] == ' ' ? text + 16 : "refused by the supervisor");
	}
}

static int
rpc_start(void)
{
	if (!vh_handover_supervised()) {
		return -ENOTSUP;
	}
	if (g_old.phase != P_IDLE) {
		return -EALREADY;
	}
	g_old.rpc = true;
	g_old.finished = false;
	g_old.t_start = vh_now_ns();
	old_arm(P_ASKED);
	vh_handover_notify("UPGRADE-REQ");
	return 0;
}

static int
rpc_poll(json_t **result, char *why, size_t whylen)
{
	if (!g_old.finished) {
		return 1;
	}
	g_old.finished = false;
	if (g_old.rc < 0) {
		snprintf(why, whylen, "%s", g_old.why);
		return g_old.rc;
	}
	*result = json_incref(g_old.result);
	return 0;
}

static json_t *
rpc_info(void)
{
	if (!g_info.upgraded) {
		return json_pack("{s:n, s:s, s:i}", "upgraded_from", "version", vh_version(), "pid",
		                 (int)getpid());
	}
	return json_pack("{s:{s:i, s:s}, s:s, s:i, s:I, s:I, s:f}", "upgraded_from", "pid",
	                 g_info.from_pid, "version", g_info.from_version, "version", vh_version(),
	                 "pid", (int)getpid(), "stop_ns", (json_int_t)g_info.stop_ns, "start_ns",
	                 (json_int_t)g_info.start_ns, "max_pause_ms",
	                 g_info.stop_ns != 0 ? (double)(g_info.start_ns - g_info.stop_ns) / 1e6
	                                     : 0.0);
}

static const struct vh_rpc_upgrade_ops rpc_ops = {
        .start = rpc_start,
        .poll = rpc_poll,
        .info = rpc_info,
};

int
vh_upgrade_old_init(void)
{
	vh_rpc_set_upgrade_ops(&rpc_ops);
	return vh_handover_watch(on_supervisor);
}

/* ---- new side ---- */

#define NEW_WAIT_MS 60000

static int g_new_fd = -1;

static int
new_expect(struct frame *f, uint32_t type, int wait_ms)
{
	int rc = recv_frame(g_new_fd, f, wait_ms);

	if (rc < 0) {
		VH_ERR("upgrade", "waiting for %s from the old worker: %s", frame_name(type),
		       rc == -ECONNRESET ? "it closed the channel" : strerror(-rc));
		return rc;
	}
	if (f->type == F_ABORT) {
		VH_ERR("upgrade", "the old worker aborted the upgrade: %s", f->data);
		close_frame_fds(f);
		return -ECANCELED;
	}
	if (f->type != type) {
		VH_ERR("upgrade", "expected %s from the old worker, got %s", frame_name(type),
		       frame_name(f->type));
		close_frame_fds(f);
		return -EPROTO;
	}
	return 0;
}

#if VH_TEST_HOOKS
/* Test builds only: misbehave at @where as VHOSTD_TEST_UPGRADE_FAULT says. */
static void
test_fault(const char *where)
{
	const char *f = getenv("VHOSTD_TEST_UPGRADE_FAULT");

	if (f == NULL || strncmp(f, where, strlen(where)) != 0) {
		return;
	}
	if (strcmp(f + strlen(where), ":crash") == 0) {
		VH_ERR("upgrade", "test fault: crashing at %s", where);
		abort();
	}
	if (strcmp(f + strlen(where), ":hang") == 0) {
		VH_ERR("upgrade", "test fault: hanging at %s", where);
		for (;;) {
			pause();
		}
	}
}
#else
static void
test_fault(const char *where)
{
	(void)where;
}
#endif

int
vh_upgrade_new_begin(int fd)
{
	struct frame *f = malloc(sizeof(*f));
	json_t *j;
	int rc;

	if (f == NULL) {
		return -ENOMEM;
	}
	g_new_fd = fd;
	vh_fd_set_cloexec(fd);
	test_fault("hello");
	rc = send_json(fd, F_HELLO,
	               json_pack("{s:i, s:s, s:i, s:b}", "format", VH_UPGRADE_FORMAT, "version",
	                         vh_version(), "pid", (int)getpid(), "vfu_sessions", 1),
	               NEW_WAIT_MS);
	if (rc == 0) {
		rc = new_expect(f, F_ACCEPT, NEW_WAIT_MS);
	}
	if (rc == 0) {
		j = json_loads(f->data, 0, NULL);
		VH_NOTICE("upgrade", "taking over from vhostd %s (pid %" JSON_INTEGER_FORMAT ")",
		          json_string_value(json_object_get(j, "version")) ?: "?",
		          json_integer_value(json_object_get(j, "pid")));
		g_info.upgraded = true;
		g_info.from_pid = (int)json_integer_value(json_object_get(j, "pid"));
		snprintf(g_info.from_version, sizeof(g_info.from_version), "%s",
		         json_string_value(json_object_get(j, "version")) ?: "?");
		/* The old worker's NVMe controllers: the config replay creates them waiting. */
		if (json_object_get(j, "nvme") != NULL &&
		    vh_bdev_nvme_upgrade_expect(json_object_get(j, "nvme")) < 0) {
			VH_ERR("upgrade", "bad NVMe description from the old worker");
			rc = -EPROTO;
		}
		json_decref(j);
	}
	free(f);
	return rc;
}

int
vh_upgrade_new_adopt(void)
{
	struct frame *f = malloc(sizeof(*f));
	struct vh_fdvec fds = {0};
	char *text = NULL, why[256];
	size_t len = 0;
	json_t *state = NULL;
	json_error_t jerr;
	int rc;

	if (f == NULL) {
		return -ENOMEM;
	}
	test_fault("prepared");
	rc = send_frame(g_new_fd, F_PREPARED, NULL, 0, NULL, 0, NEW_WAIT_MS);
	while (rc == 0) {
		rc = recv_frame(g_new_fd, f, NEW_WAIT_MS);
		if (rc < 0) {
			VH_ERR("upgrade", "receiving the session state: %s",
			       rc == -ECONNRESET ? "the old worker closed the channel"
			                         : strerror(-rc));
			break;
		}
		if (f->type == F_STATE_END) {
			break;
		}
		if (f->type != F_STATE || len + f->len > UP_MAX_STATE) {
			VH_ERR("upgrade", "bad session state (%s)", frame_name(f->type));
			close_frame_fds(f);
			rc = -EPROTO;
			break;
		}
		char *t = realloc(text, len + f->len + 1);

		if (t == NULL) {
			close_frame_fds(f);
			rc = -ENOMEM;
			break;
		}
		text = t;
		memcpy(text + len, f->data, f->len);
		len += f->len;
		text[len] = '\0';
		for (unsigned i = 0; i < f->nfds && rc == 0; i++) {
			if (vh_fdvec_push(&fds, f->fds[i]) < 0) {
				close(f->fds[i]);
				rc = -ENOMEM;
			}
		}
	}
	if (rc == 0) {
		test_fault("state");
		state = text != NULL ? json_loads(text, 0, &jerr) : NULL;
		if (state == NULL) {
			VH_ERR("upgrade", "bad session state: %s", text ? jerr.text : "empty");
			rc = -EPROTO;
		}
	}
	if (rc == 0) {
		/* The old worker released its NVMe devices before STATE: bring them up here. */
		rc = vh_bdev_nvme_upgrade_take(why, sizeof(why));
		if (rc < 0) {
			vh_upgrade_new_fail(why);
		}
	}
	if (rc == 0) {
		test_fault("nvme");
		rc = vh_vhost_load_sessions(state, fds.fds, fds.n, why, sizeof(why));
		if (rc == 0) {
			rc = vh_vfu_load_sessions(json_object_get(state, "vfu"), fds.fds, fds.n,
			                          why, sizeof(why));
		}
		if (rc < 0) {
			VH_ERR("upgrade", "cannot adopt the sessions: %s", why);
			vh_bdev_nvme_upgrade_drop(); /* first: the old worker takes them back */
			vh_upgrade_new_fail(why);
		}
	}
	json_decref(state);
	free(text);
	for (unsigned i = 0; i < fds.n; i++) {
		if (fds.fds[i] >= 0) {
			close(fds.fds[i]);
		}
	}
	vh_fdvec_free(&fds);
	if (rc == 0) {
		test_fault("ready");
		rc = send_frame(g_new_fd, F_READY, NULL, 0, NULL, 0, NEW_WAIT_MS);
	}
	if (rc == 0) {
		rc = new_expect(f, F_COMMIT, NEW_WAIT_MS);
	}
	if (rc == 0) {
		vh_bdev_nvme_upgrade_commit();
	} else {
		/* Before COMMIT the NVMe devices are still the old worker's to take back. */
		vh_bdev_nvme_upgrade_drop();
	}
	free(f);
	return rc;
}

void
vh_upgrade_new_fail(const char *why)
{
	if (g_new_fd >= 0) {
		send_json(g_new_fd, F_ABORT, json_pack("{s:s}", "why", why), 1000);
	}
}

void
vh_upgrade_new_started(uint64_t stop_ns, uint64_t start_ns)
{
	uint64_t pause_ns = stop_ns != 0 && start_ns > stop_ns ? start_ns - stop_ns : 0;

	if (g_new_fd < 0) {
		return;
	}
	g_info.stop_ns = stop_ns;
	g_info.start_ns = start_ns;
	send_json(g_new_fd, F_STARTED,
	          json_pack("{s:I, s:I, s:I, s:s}", "pause_ns", (json_int_t)pause_ns, "stop_ns",
	                    (json_int_t)stop_ns, "start_ns", (json_int_t)start_ns, "version",
	                    vh_version()),
	          5000);
	VH_NOTICE("upgrade", "serving every session; longest queue pause %.3f ms",
	          (double)pause_ns / 1e6);
	close(g_new_fd);
	g_new_fd = -1;
}
