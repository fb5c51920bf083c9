/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * `vhostd --supervise`: the started process becomes a small supervisor that runs the real daemon
 * (the worker) as its child and restarts it when it dies abnormally.
 *
 * It keeps a duplicate of every listening socket the worker creates, and of every RAM disk's
 * memfd (core/handover.h), and passes them to the next worker. So while the worker is down the
 * sockets stay bound: QEMU's reconnect attempts wait in the backlog instead of failing, and RAM
 * disks keep their contents. A worker that was serving is restarted at once; one that dies
 * before it is ready (crash loop, bad config), or a fork() that fails, is retried with an
 * exponential backoff (50 ms doubling to 5 s). Exit status 0 of the worker (a clean SIGTERM
 * shutdown) ends the supervisor too.
 *
 * The supervisor is deliberately simple: no threads, no reactors, one poll loop. Rules it keeps:
 * - It never sleeps outside poll(): a SIGTERM during a backoff ends it at once, and no new
 *   worker is started after it was asked to stop.
 * - It signals only a worker it started and has not reaped (pid > 0): never kill(-1) or kill(0).
 * - No worker outlives it: each worker gets PR_SET_PDEATHSIG, so it shuts down cleanly if the
 *   supervisor dies, even by SIGKILL.
 * - Without --config it keeps the worker's state in a private directory made by mkdtemp (mode
 *   0700, unpredictable name): no other user can plant or replace the file a restarted worker
 *   replays. The directory is removed when the supervisor exits.
 *
 * Live upgrade (docs/design.md, "Live upgrade by hand-over"): SIGHUP, or the worker's
 * "UPGRADE-REQ" (the vhostd_upgrade RPC), starts a candidate worker from the binary installed
 * now at the path we were started from, with one end of a fresh socketpair; the running worker
 * gets the other end ("UPGRADE" + fd) and hands its sessions over directly. The worker reports
 * the end: "UPGRADED <pid>" (the candidate becomes the worker; the old one exits 0 and is
 * reaped quietly) or "UPGRADE-FAILED" (the candidate is killed). Each worker has a channel of
 * its own, so we always know who speaks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vh_config.h"
#if VH_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "app/supervise.h"
#include "core/handover.h"
#include "core/log.h"

#define MAX_KEPT       1024
#define QUICK_CRASH_NS (5ull * 1000000000ull)
#define MIN_BACKOFF_MS 50
#define MAX_BACKOFF_MS 5000

struct kept {
	int fd;
	char key[VH_HANDOVER_KEY_MAX];
};

static struct kept g_kept[MAX_KEPT];

static void
keep(const char *key, int fd)
{
	struct kept *free_slot = NULL;

	for (unsigned i = 0; i < MAX_KEPT; i++) {
		if (g_kept[i].fd >= 0 && strcmp(g_kept[i].key, key) == 0) {
			close(g_kept[i].fd);
			g_kept[i].fd = fd;
			return;
		}
		if (g_kept[i].fd < 0 && free_slot == NULL) {
			free_slot = &g_kept[i];
		}
	}
	if (free_slot == NULL ||
	    vh_strlcpy_checked(free_slot->key, key, sizeof(free_slot->key)) < 0) {
		VH_ERR("supervisor", "cannot keep '%s'; it will not survive a restart", key);
		close(fd);
		return;
	}
	free_slot->fd = fd;
}

static void
drop(const char *key)
{
	for (unsigned i = 0; i < MAX_KEPT; i++) {
		if (g_kept[i].fd >= 0 && strcmp(g_kept[i].key, key) == 0) {
			close(g_kept[i].fd);
			g_kept[i].fd = -1;
		}
	}
}

/* The current worker said READY: it started fine, so a later death is not a crash loop. */
static bool g_worker_ready;

struct sup;
static void upgrade_request(struct sup *s, const char *who);
static void upgrade_failed(struct sup *s);
static void upgrade_done(struct sup *s, pid_t pid);

/* One request from a worker (@from_candidate: the worker being upgraded to). */
static void
handle_request(struct sup *s, int chan, bool from_candidate)
{
	char buf[VH_HANDOVER_KEY_MAX + 16];
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
	struct msghdr mh = {
	        .msg_iov = &iov,
	        .msg_iovlen = 1,
	        .msg_control = cbuf,
	        .msg_controllen = sizeof(cbuf),
	};
	ssize_t n = recvmsg(chan, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	int fd = -1;

	if (n <= 0) {
		return;
	}
	buf[n] = '\0';
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int))) {
			memcpy(&fd, CMSG_DATA(cm), sizeof(int));
		}
	}
	if (strncmp(buf, "KEEP ", 5) == 0 && fd >= 0) {
		keep(buf + 5, fd);
		return;
	}
	if (fd >= 0) {
		close(fd);
	}
	if (strncmp(buf, "DROP ", 5) == 0) {
		drop(buf + 5);
	} else if (strcmp(buf, "READY") == 0) {
		if (from_candidate) {
			return; /* it is not the worker yet: UPGRADED from the old one makes it so
			         */
		}
		g_worker_ready = true;
#if VH_HAVE_SYSTEMD
		sd_notify(0, "READY=1");
#endif
	} else if (from_candidate) {
		return; /* only the worker in charge may ask for the rest */
	} else if (strcmp(buf, "UPGRADE-REQ") == 0) {
		upgrade_request(s, "the worker (vhostd_upgrade)");
	} else if (strcmp(buf, "UPGRADE-FAILED") == 0) {
		upgrade_failed(s);
	} else if (strncmp(buf, "UPGRADED ", 9) == 0) {
		upgrade_done(s, (pid_t)atoi(buf + 9));
	} else if (strcmp(buf, "WATCHDOG") == 0) {
#if VH_HAVE_SYSTEMD
		sd_notify(0, "WATCHDOG=1");
#endif
	}
}

/* "fd:key\n" for every kept fd, for VH_HANDOVER_ENV_FDS. NULL if out of memory. */
static char *
kept_list(void)
{
	size_t cap = 1, off = 0;
	char *list;

	for (unsigned i = 0; i < MAX_KEPT; i++) {
		if (g_kept[i].fd >= 0) {
			cap += strlen(g_kept[i].key) + 16;
		}
	}
	list = malloc(cap);
	if (list == NULL) {
		return NULL;
	}
	list[0] = '\0';
	for (unsigned i = 0; i < MAX_KEPT; i++) {
		if (g_kept[i].fd >= 0) {
			off += (size_t)snprintf(list + off, cap - off, "%d:%s\n", g_kept[i].fd,
			                        g_kept[i].key);
		}
	}
	return list;
}

/* In the child between fork() and exec(): report and exit; the supervisor sees a quick crash. */
static void
child_fail(const char *what)
{
	fprintf(stderr, "vhostd supervisor: worker %s failed: %s\n", what, strerror(errno));
	_exit(127);
}

/*
 * Start a worker running @exe (falling back to our own binary when @fallback and @exe cannot be
 * run), talking to us on @chan; @upgrade_fd >= 0 makes it a live upgrade's candidate. Returns
 * its pid (> 0), or -errno if fork() failed.
 */
static pid_t
spawn(const char *exe, bool fallback, char **argv, int chan, int upgrade_fd)
{
	pid_t parent = getpid(), pid = fork();
	char *list, num[16];
	sigset_t none;

	if (pid < 0) {
		return -errno;
	}
	if (pid > 0) {
		return pid;
	}
	/*
	 * Child. A worker must not outlive the supervisor (nothing would restart or stop it): it
	 * gets SIGTERM, its clean shutdown, when the supervisor dies. The supervisor may already
	 * be gone by the time this runs; then the signal would never come.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) {
		child_fail("prctl(PR_SET_PDEATHSIG)");
	}
	if (getppid() != parent) {
		_exit(127);
	}
	/* Hand over the channel and every kept fd, then become the worker. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	list = kept_list();
	if (list == NULL) {
		child_fail("malloc");
	}
	for (unsigned i = 0; i < MAX_KEPT; i++) {
		if (g_kept[i].fd >= 0 && fcntl(g_kept[i].fd, F_SETFD, 0) < 0) {
			child_fail("fcntl");
		}
	}
	snprintf(num, sizeof(num), "%d", chan);
	if (fcntl(chan, F_SETFD, 0) < 0 || setenv(VH_HANDOVER_ENV_FD, num, 1) < 0 ||
	    setenv(VH_HANDOVER_ENV_FDS, list, 1) < 0) {
		child_fail("setup");
	}
	if (upgrade_fd >= 0) {
		snprintf(num, sizeof(num), "%d", upgrade_fd);
		if (fcntl(upgrade_fd, F_SETFD, 0) < 0 || setenv(VH_UPGRADE_ENV_FD, num, 1) < 0) {
			child_fail("setup");
		}
	} else {
		unsetenv(VH_UPGRADE_ENV_FD);
	}
	execv(exe, argv);
	if (fallback) {
		/* A crash restart must not depend on what is installed now: our own binary. */
		fprintf(stderr, "vhostd supervisor: cannot run %s (%s); running our own binary\n",
		        exe, strerror(errno));
		execv("/proc/self/exe", argv);
	}
	child_fail("exec");
	return -1; /* not reached */
}

static void
describe(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status)) {
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
		         strsignal(WTERMSIG(status)));
	} else {
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	}
}

struct sup {
	char **wargv;  /* the worker's command line (ours minus --supervise) */
	char *exe;     /* the binary to run: the path we were started from, made absolute */
	int chan;      /* our end of the worker's channel, or -1 */
	int sfd;       /* signalfd: SIGTERM, SIGINT, SIGCHLD, SIGHUP */
	pid_t child;   /* the running worker; 0 while none runs (backoff) */
	pid_t cand;    /* a live upgrade's candidate worker, or 0 */
	int cand_chan; /* our end of its channel, or -1 */
	pid_t retired; /* the worker an upgrade replaced, until it is reaped */
	uint64_t cand_deadline; /* when a candidate that never took over is killed */
	uint64_t started;       /* when it was started */
	uint64_t restart_at;    /* while none runs: when to start the next one */
	uint64_t backoff_ms;    /* the last delay; 0 after a worker that served */
	bool stopping;          /* SIGTERM/SIGINT seen: never start another worker */
	char *state_dir;        /* the private directory holding cfg, or NULL */
	char *cfg;              /* the config file we gave the worker (in state_dir), or NULL */
};

/*
 * A restarted worker must come back with the same bdevs and controllers, so it needs a config
 * file even if the operator gave none: one in a fresh directory only we can enter. mkdtemp
 * creates it (mode 0700, an unpredictable name, failing rather than reusing anything that
 * exists), so no other user can create, replace or link the file the next worker replays.
 */
static int
make_state_dir(struct sup *s)
{
	const char *base = getenv("RUNTIME_DIRECTORY");
	size_t blen;

	if (base == NULL || *base == '\0') {
		base = getenv("TMPDIR");
	}
	if (base == NULL || *base == '\0') {
		base = "/tmp";
	}
	/* systemd joins several RuntimeDirectory= entries with ':'; the first will do. */
	blen = strcspn(base, ":");
	if (asprintf(&s->state_dir, "%.*s/vhostd-supervise.XXXXXX", (int)blen, base) < 0) {
		s->state_dir = NULL;
		return -ENOMEM;
	}
	if (mkdtemp(s->state_dir) == NULL) {
		int rc = -errno;

		VH_ERR("supervisor", "cannot create a private state directory %s: %s", s->state_dir,
		       strerror(errno));
		free(s->state_dir);
		s->state_dir = NULL;
		return rc;
	}
	if (asprintf(&s->cfg, "%s/config.json", s->state_dir) < 0) {
		s->cfg = NULL;
		rmdir(s->state_dir);
		free(s->state_dir);
		s->state_dir = NULL;
		return -ENOMEM;
	}
	VH_NOTICE("supervisor", "no --config given: the worker's state is kept in %s", s->cfg);
	return 0;
}

/* Remove the private directory and what the workers left in it (config, stray temp files). */
static void
remove_state_dir(struct sup *s)
{
	struct dirent *de;
	DIR *d;
	int dfd;

	if (s->state_dir == NULL) {
		return;
	}
	dfd = open(s->state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (d == NULL) {
		if (dfd >= 0) {
			close(dfd);
		}
	} else {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
				unlinkat(dirfd(d), de->d_name, 0);
			}
		}
		closedir(d);
	}
	if (rmdir(s->state_dir) < 0) {
		VH_WARN("supervisor", "cannot remove %s: %s", s->state_dir, strerror(errno));
	}
}

/* The worker's argv: ours minus --supervise, plus "-c <private file>" when cfg is set. */
static int
build_wargv(struct sup *s, int argc, char **argv)
{
	int n = 0;

	s->wargv = calloc((size_t)argc + 3, sizeof(char *));
	if (s->wargv == NULL) {
		return -ENOMEM;
	}
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--supervise") != 0) {
			s->wargv[n++] = argv[i];
		}
	}
	if (s->cfg != NULL) {
		s->wargv[n++] = "-c";
		s->wargv[n++] = s->cfg;
	}
	return 0;
}

static void
schedule_retry(struct sup *s)
{
	s->backoff_ms = s->backoff_ms ? VH_MIN(s->backoff_ms * 2, (uint64_t)MAX_BACKOFF_MS)
	                              : MIN_BACKOFF_MS;
	s->restart_at = vh_now_ns() + s->backoff_ms * 1000000ull;
}

/*
 * The binary every worker runs: the path we were started from, as an absolute path (searched in
 * PATH if it has no slash), not /proc/self/exe: an upgrade installs a new file there, and the
 * next worker must run it. NULL if it cannot be found.
 */
static char *
exe_path(const char *argv0)
{
	char *path, *out = NULL, *save = NULL, cwd[4096];

	if (argv0 == NULL || *argv0 == '\0') {
		return NULL;
	}
	if (argv0[0] == '/') {
		return strdup(argv0);
	}
	if (strchr(argv0, '/') != NULL) {
		if (getcwd(cwd, sizeof(cwd)) == NULL || asprintf(&out, "%s/%s", cwd, argv0) < 0) {
			return NULL;
		}
		return out;
	}
	path = strdup(getenv("PATH") != NULL ? getenv("PATH") : "/usr/sbin:/usr/bin:/sbin:/bin");
	for (char *dir = path ? strtok_r(path, ":", &save) : NULL; dir != NULL;
	     dir = strtok_r(NULL, ":", &save)) {
		if (asprintf(&out, "%s/%s", dir, argv0) < 0) {
			out = NULL;
			break;
		}
		if (out[0] == '/' && access(out, X_OK) == 0) {
			break;
		}
		free(out);
		out = NULL;
	}
	free(path);
	return out;
}

/* A channel for a new worker: [0] ours, [1] the worker's. */
static int
new_channel(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		int rc = -errno;

		VH_ERR("supervisor", "socketpair: %s", strerror(errno));
		return rc;
	}
	return 0;
}

static void
start_worker(struct sup *s)
{
	int sv[2];
	pid_t pid;

	if (new_channel(sv) < 0) {
		schedule_retry(s);
		return;
	}
	pid = spawn(s->exe, true, s->wargv, sv[1], -1);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		/* No worker, so nothing to signal or wait for: try again later. */
		schedule_retry(s);
		VH_ERR("supervisor", "cannot start a worker: fork: %s; retrying in %" PRIu64 " ms",
		       strerror((int)-pid), s->backoff_ms);
		return;
	}
	if (s->chan >= 0) {
		close(s->chan);
	}
	s->chan = sv[0];
	s->child = pid;
	s->started = vh_now_ns();
	g_worker_ready = false;
	VH_NOTICE("supervisor", "started worker %d", (int)pid);
}

/* Tell the worker something, with an fd or -1. Never waits (the worker may be stuck). */
static int
tell(int chan, const char *text, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (fd >= 0) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	return sendmsg(chan, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -errno : 0;
}

/* A candidate may take this long from its start to the old worker's UPGRADED. */
#define UPGRADE_DEADLINE_NS (180ull * 1000000000ull)

static void
drop_candidate(struct sup *s)
{
	if (s->cand_chan >= 0) {
		close(s->cand_chan);
		s->cand_chan = -1;
	}
}

/* SIGHUP, or the worker asked (vhostd_upgrade): start a candidate and connect the two. */
static void
upgrade_request(struct sup *s, const char *who)
{
	int sv[2] = {-1, -1}, up[2] = {-1, -1};
	const char *why = NULL;
	pid_t pid;

	if (s->stopping) {
		why = "the supervisor is stopping";
	} else if (s->child <= 0 || !g_worker_ready) {
		why = "no worker is serving";
	} else if (s->cand > 0 || s->retired > 0) {
		why = "an upgrade is already in progress";
	} else if (access(s->exe, X_OK) < 0) {
		why = "the binary is not executable";
	}
	if (why != NULL) {
		char msg[160];

		VH_ERR("supervisor", "upgrade asked by %s refused: %s (%s)", who, why, s->exe);
		snprintf(msg, sizeof(msg), "UPGRADE-REFUSED %s: %s", why, s->exe);
		if (s->chan >= 0) {
			tell(s->chan, msg, -1);
		}
		return;
	}
	if (new_channel(sv) < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, up) < 0) {
		why = "socketpair failed";
		goto fail;
	}
	pid = spawn(s->exe, false, s->wargv, sv[1], up[1]);
	if (pid < 0) {
		why = "fork failed";
		goto fail;
	}
	close(sv[1]);
	close(up[1]);
	s->cand = pid;
	s->cand_chan = sv[0];
	s->cand_deadline = vh_now_ns() + UPGRADE_DEADLINE_NS;
	VH_NOTICE("supervisor", "upgrade asked by %s: started candidate worker %d from %s", who,
	          (int)pid, s->exe);
	if (tell(s->chan, "UPGRADE", up[0]) < 0) {
		VH_ERR("supervisor", "cannot reach worker %d: killing the candidate",
		       (int)s->child);
		kill(pid, SIGKILL);
		drop_candidate(s);
	}
	close(up[0]);
	return;

fail:
	VH_ERR("supervisor", "upgrade asked by %s: %s: %s", who, why, strerror(errno));
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0) {
			close(sv[i]);
		}
		if (up[i] >= 0) {
			close(up[i]);
		}
	}
	if (s->chan >= 0) {
		tell(s->chan, "UPGRADE-REFUSED cannot start a candidate", -1);
	}
}

/* The worker gave up on the upgrade (it serves on): the candidate must go. */
static void
upgrade_failed(struct sup *s)
{
	if (s->cand > 0) {
		VH_NOTICE("supervisor", "upgrade failed: stopping candidate worker %d",
		          (int)s->cand);
		kill(s->cand, SIGKILL);
		drop_candidate(s);
	}
}

/* The candidate took over and serves: it is the worker now; the old one exits by itself. */
static void
upgrade_done(struct sup *s, pid_t pid)
{
	if (s->cand <= 0 || pid != s->cand) {
		VH_ERR("supervisor", "worker reports an upgrade to %d, but the candidate is %d",
		       (int)pid, (int)s->cand);
		return;
	}
	VH_NOTICE("supervisor", "worker %d handed over to worker %d", (int)s->child, (int)s->cand);
	s->retired = s->child;
	s->child = s->cand;
	s->cand = 0;
	close(s->chan);
	s->chan = s->cand_chan;
	s->cand_chan = -1;
	s->started = vh_now_ns();
	s->backoff_ms = 0;
	g_worker_ready = true;
}

/* The worker is gone. Returns true if the supervisor should exit now (*rc set). */
static bool
worker_exited(struct sup *s, int status, int *rc)
{
	char why[96];

	/* Requests the worker sent just before dying still count (a KEEP, a DROP). */
	for (int n = 0; s->chan >= 0 && n < 1024; n++) {
		struct pollfd p = {.fd = s->chan, .events = POLLIN};
		pid_t before = s->child;

		if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) {
			break;
		}
		handle_request(s, s->chan, false);
		if (s->child != before) {
			return false; /* it had handed over (UPGRADED): its exit is not a crash */
		}
	}
	if (s->cand > 0) {
		/* Died in the middle of an upgrade: the candidate cannot take over on its own. */
		VH_ERR("supervisor", "worker died during an upgrade: stopping candidate %d",
		       (int)s->cand);
		kill(s->cand, SIGKILL);
		drop_candidate(s);
	}
	describe(status, why, sizeof(why));
	if (s->stopping || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		VH_NOTICE("supervisor", "worker %d %s; exiting", (int)s->child, why);
		*rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
		s->child = 0;
		return true;
	}
	/*
	 * A worker that never became ready (bad config, crash at start) is crash-looping: back
	 * off. One that was serving and then died is restarted at once, however soon: guests are
	 * waiting for it.
	 */
	if (!g_worker_ready && vh_now_ns() - s->started < QUICK_CRASH_NS) {
		schedule_retry(s);
	} else {
		s->backoff_ms = 0;
		s->restart_at = vh_now_ns();
	}
	VH_ERR("supervisor", "worker %d %s; restarting in %" PRIu64 " ms", (int)s->child, why,
	       s->backoff_ms);
	s->child = 0;
	return false;
}

/* Handle every pending signal. Returns true if the supervisor should exit now (*rc set). */
static bool
handle_signals(struct sup *s, int *rc)
{
	struct signalfd_siginfo si;
	int status;

	while (read(s->sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			upgrade_request(s, "SIGHUP");
			continue;
		}
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			s->stopping = true;
			if (s->cand > 0) {
				kill(s->cand, SIGKILL); /* never half taken over */
			}
			if (s->child <= 0) {
				VH_NOTICE("supervisor", "signal %u while no worker runs; exiting",
				          si.ssi_signo);
				*rc = 0;
				return true;
			}
			VH_NOTICE("supervisor", "signal %u: stopping worker %d", si.ssi_signo,
			          (int)s->child);
			kill(s->child, (int)si.ssi_signo);
			continue;
		}
		/* SIGCHLD: our children are reaped only here. */
		if (s->cand > 0 && waitpid(s->cand, &status, WNOHANG) == s->cand) {
			char why[96];

			describe(status, why, sizeof(why));
			VH_ERR("supervisor", "upgrade candidate %d %s", (int)s->cand, why);
			s->cand = 0;
			drop_candidate(s);
		}
		if (s->retired > 0 && waitpid(s->retired, &status, WNOHANG) == s->retired) {
			char why[96];

			describe(status, why, sizeof(why));
			VH_NOTICE("supervisor", "previous worker %d %s", (int)s->retired, why);
			s->retired = 0;
		}
		if (s->child > 0 && waitpid(s->child, &status, WNOHANG) == s->child) {
			pid_t before = s->child;

			if (worker_exited(s, status, rc)) {
				return true;
			}
			if (s->child != before && s->retired == before) {
				/* It handed over just before exiting: reaped already. */
				VH_NOTICE("supervisor", "previous worker %d exited", (int)before);
				s->retired = 0;
			}
		}
	}
	return false;
}

static int
run(struct sup *s)
{
	int rc = 1;

	for (;;) {
		struct pollfd pfd[3] = {{.fd = s->sfd, .events = POLLIN},
		                        {.fd = s->chan, .events = POLLIN},
		                        {.fd = s->cand_chan, .events = POLLIN}};
		uint64_t now = vh_now_ns();
		int timeout = -1;

		if (s->child <= 0) {
			if (now >= s->restart_at) {
				start_worker(s);
				continue;
			}
			timeout = (int)((s->restart_at - now + 999999) / 1000000);
		}
		if (s->cand > 0) {
			if (now >= s->cand_deadline) {
				VH_ERR("supervisor",
				       "candidate worker %d did not take over in time",
				       (int)s->cand);
				kill(s->cand, SIGKILL);
				s->cand_deadline = UINT64_MAX;
			} else if (s->cand_deadline != UINT64_MAX) {
				int t = (int)((s->cand_deadline - now + 999999) / 1000000);

				timeout = timeout < 0 ? t : VH_MIN(timeout, t);
			}
		}
		if (poll(pfd, 3, timeout) < 0) {
			if (errno != EINTR) {
				VH_ERR("supervisor", "poll: %s", strerror(errno));
			}
			continue;
		}
		if (pfd[1].revents & POLLIN) {
			handle_request(s, s->chan, false);
		}
		if (pfd[2].revents & POLLIN) {
			handle_request(s, s->cand_chan, true);
		}
		if ((pfd[0].revents & POLLIN) && handle_signals(s, &rc)) {
			return rc;
		}
		/* Read to the end, then close: its worker is gone (SIGCHLD says how). */
		if (s->chan >= 0 && s->chan == pfd[1].fd &&
		    (pfd[1].revents & (POLLHUP | POLLERR)) && !(pfd[1].revents & POLLIN)) {
			close(s->chan);
			s->chan = -1;
		}
		if (s->cand_chan >= 0 && s->cand_chan == pfd[2].fd &&
		    (pfd[2].revents & (POLLHUP | POLLERR)) && !(pfd[2].revents & POLLIN)) {
			drop_candidate(s);
		}
	}
}

int
vh_supervise(int argc, char **argv, bool have_config)
{
	struct sup s = {.chan = -1, .cand_chan = -1, .sfd = -1};
	sigset_t set;
	int rc = 1;

	for (unsigned i = 0; i < MAX_KEPT; i++) {
		g_kept[i].fd = -1;
	}
	if (!have_config && make_state_dir(&s) < 0) {
		return 1;
	}
	if (build_wargv(&s, argc, argv) < 0) {
		VH_ERR("supervisor", "out of memory");
		goto out;
	}
	s.exe = exe_path(argv[0]);
	if (s.exe == NULL) {
		VH_ERR("supervisor", "cannot tell where our binary '%s' is", argv[0]);
		goto out;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	/* Without the signalfd we could neither stop nor reap a worker: do not start one. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		VH_ERR("supervisor", "sigprocmask: %s", strerror(errno));
		goto out;
	}
	s.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s.sfd < 0) {
		VH_ERR("supervisor", "signalfd: %s", strerror(errno));
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	rc = run(&s);
out:
	if (s.sfd >= 0) {
		close(s.sfd);
	}
	if (s.cand > 0) {
		kill(s.cand, SIGKILL);
	}
	if (s.chan >= 0) {
		close(s.chan);
	}
	drop_candidate(&s);
	free(s.exe);
	for (unsigned i = 0; i < MAX_KEPT; i++) {
		if (g_kept[i].fd >= 0) {
			close(g_kept[i].fd);
			g_kept[i].fd = -1;
		}
	}
	remove_state_dir(&s);
	free(s.cfg);
	free(s.state_dir);
	free(s.wargv);
	return rc;
}
