/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * `vhostd --supervise`: the started process becomes a small supervisor that runs the real daemon
 * (the worker) as its child and restarts it when it dies abnormally.
 *
 * It keeps a duplicate of every listening socket the worker creates, and of every RAM disk's
 * memfd (core/handover.h), and passes them to the next worker. So while the worker is down the
 * sockets stay bound: QEMU's reconnect attempts wait in the backlog instead of failing, and RAM
 * disks keep their contents. A worker that was serving is restarted at once; one that dies
 * before it is ready (crash loop, bad config) is restarted with an exponential backoff (50 ms
 * doubling to 5 s). Exit status 0 of the worker (a
 * clean SIGTERM shutdown) ends the supervisor too.
 *
 * The supervisor is deliberately simple: no threads, no reactors, one poll loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define MAX_KEPT       256
#define QUICK_CRASH_NS (5ull * 1000000000ull)
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

/* One request from the worker. */
static void
handle_request(int chan)
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
		g_worker_ready = true;
#if VH_HAVE_SYSTEMD
		sd_notify(0, "READY=1");
#endif
	} else if (strcmp(buf, "WATCHDOG") == 0) {
#if VH_HAVE_SYSTEMD
		sd_notify(0, "WATCHDOG=1");
#endif
	}
}

static pid_t
spawn(char **argv, int chan)
{
	pid_t pid = fork();

	if (pid != 0) {
		return pid;
	}
	/* Child: hand over the channel and every kept fd, then become the worker. */
	sigset_t all;
	size_t cap = 64;
	char *list = malloc(cap), num[16];

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	list[0] = '\0';
	for (unsigned i = 0; i < MAX_KEPT; i++) {
		size_t need;

		if (g_kept[i].fd < 0) {
			continue;
		}
		fcntl(g_kept[i].fd, F_SETFD, 0);
		need = strlen(list) + strlen(g_kept[i].key) + 16;
		if (need > cap) {
			cap = need * 2;
			list = realloc(list, cap);
		}
		snprintf(list + strlen(list), cap - strlen(list), "%d:%s\n", g_kept[i].fd,
		         g_kept[i].key);
	}
	fcntl(chan, F_SETFD, 0);
	snprintf(num, sizeof(num), "%d", chan);
	setenv(VH_HANDOVER_ENV_FD, num, 1);
	setenv(VH_HANDOVER_ENV_FDS, list, 1);
	execv("/proc/self/exe", argv);
	fprintf(stderr, "vhostd supervisor: exec failed: %s\n", strerror(errno));
	_exit(127);
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

int
vh_supervise(int argc, char **argv)
{
	char **wargv;
	int sp[2], sfd, wargc = 0, status;
	uint64_t started, backoff_ms = 0;
	bool stopping = false;
	sigset_t set;
	pid_t child;

	char *cfg = NULL;
	bool have_cfg = false;

	wargv = calloc((size_t)argc + 3, sizeof(char *));
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--supervise") != 0) {
			wargv[wargc++] = argv[i];
		}
		have_cfg |= strcmp(argv[i], "-c") == 0 || strncmp(argv[i], "--config", 8) == 0 ||
		            (argv[i][0] == '-' && argv[i][1] == 'c' && argv[i][2] != '\0');
	}
	if (!have_cfg) {
		/*
		 * A restarted worker must come back with the same bdevs and controllers, so it
		 * needs a config file even if the operator gave none: a private one, removed when
		 * the supervisor exits.
		 */
		const char *dir = getenv("RUNTIME_DIRECTORY")
		                          ? getenv("RUNTIME_DIRECTORY")
		                          : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");

		if (asprintf(&cfg, "%s/vhostd-supervised-%d.json", dir, (int)getpid()) < 0) {
			return 1;
		}
		unlink(cfg);
		wargv[wargc++] = "-c";
		wargv[wargc++] = cfg;
		VH_NOTICE("supervisor", "no --config given: the worker's state is kept in %s", cfg);
	}
	for (unsigned i = 0; i < MAX_KEPT; i++) {
		g_kept[i].fd = -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		VH_ERR("supervisor", "socketpair: %s", strerror(errno));
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);

	child = spawn(wargv, sp[1]);
	started = vh_now_ns();
	VH_NOTICE("supervisor", "started worker %d", (int)child);
	for (;;) {
		struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN},
		                        {.fd = sp[0], .events = POLLIN}};
		struct signalfd_siginfo si;
		char why[96];

		if (poll(pfd, 2, -1) < 0) {
			continue;
		}
		if (pfd[1].revents & POLLIN) {
			handle_request(sp[0]);
		}
		if (!(pfd[0].revents & POLLIN) || read(sfd, &si, sizeof(si)) != sizeof(si)) {
			continue;
		}
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			VH_NOTICE("supervisor", "signal %u: stopping worker %d", si.ssi_signo,
			          (int)child);
			stopping = true;
			kill(child, (int)si.ssi_signo);
			continue;
		}
		if (waitpid(child, &status, WNOHANG) != child) {
			continue;
		}
		/* Requests the worker sent just before dying still count (a KEEP, a DROP). */
		while (poll(&pfd[1], 1, 0) > 0 && (pfd[1].revents & POLLIN)) {
			handle_request(sp[0]);
		}
		describe(status, why, sizeof(why));
		if (stopping || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			VH_NOTICE("supervisor", "worker %d %s; exiting", (int)child, why);
			if (cfg != NULL) {
				unlink(cfg);
			}
			return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
		}
		/*
		 * A worker that never became ready (bad config, crash at start) is crash-looping:
		 * back off. One that was serving and then died is restarted at once, however soon:
		 * guests are waiting for it.
		 */
		if (!g_worker_ready && vh_now_ns() - started < QUICK_CRASH_NS) {
			backoff_ms =
			        backoff_ms ? VH_MIN(backoff_ms * 2, (uint64_t)MAX_BACKOFF_MS) : 50;
		} else {
			backoff_ms = 0;
		}
		VH_ERR("supervisor", "worker %d %s; restarting in %" PRIu64 " ms", (int)child, why,
		       backoff_ms);
		if (backoff_ms) {
			usleep((useconds_t)(backoff_ms * 1000));
		}
		g_worker_ready = false;
		child = spawn(wargv, sp[1]);
		started = vh_now_ns();
		VH_NOTICE("supervisor", "started worker %d", (int)child);
	}
}
