/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhostd: command line, start-up order and shutdown.
 *
 * Start-up: reactors, then the config file is replayed, and only then is the RPC socket created:
 * an operator (or a test) that can reach the RPC socket sees the configured daemon. Shutdown
 * (SIGTERM/SIGINT): stop taking RPCs and connections, let every session's in-flight I/O complete,
 * then stop the reactors and exit 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "vh_config.h"
#if VH_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "app/metrics.h"
#include "app/upgrade.h"
#include "vhost/upgrade.h"
#include "app/supervise.h"
#include "bdev/bdev.h"
#include "core/handover.h"
#include "core/evloop.h"
#include "core/log.h"
#include "core/reactor.h"
#include "core/sigbus.h"
#include "rpc/rpc.h"
#include "vfu/vfu.h"
#include "vhost/vhost.h"

#ifndef VH_VERSION_SUFFIX
#define VH_VERSION_SUFFIX ""
#endif
/* A test build (tests/func/meson.build) adds a suffix, so two builds of one tree differ. */
#define VHOSTD_VERSION VH_VERSION VH_VERSION_SUFFIX

#define DEFAULT_RPC_SOCKET "/var/tmp/vhostd.sock"

struct opts {
	uint64_t cpumask;
	const char *socket_dir;
	const char *rpc_socket;
	const char *config;
	gid_t group;
	gid_t rpc_group; /* --rpc-group; (gid_t)-2 = follow -g */
	uint64_t idle_us;
	uint64_t max_guest_mem;
	const char *metrics; /* ADDR:PORT, or NULL */
};

static void
usage(FILE *f)
{
	fprintf(f,
	        "Usage: vhostd [options]\n"
	        "A poll-mode vhost-user-blk target.\n\n"
	        "  -m, --cpumask MASK       reactor cores, hex (0x3) or list ([0,2-3]); default "
	        "0x1\n"
	        "  -S, --socket-dir DIR     where controller sockets are created (DIR/<ctrlr>);\n"
	        "                           default: the current directory\n"
	        "  -r, --rpc-socket PATH    JSON-RPC socket; default " DEFAULT_RPC_SOCKET "\n"
	        "  -c, --config FILE        JSON config (save_config format) replayed at start\n"
	        "  -L, --log-level LEVEL    error, warn, notice (default), info, debug\n"
	        "  -g, --socket-group GROUP group that may use the sockets (they become 0660)\n"
	        "      --rpc-group GROUP    the RPC socket's group instead of -g's; \"-\" keeps "
	        "it\n"
	        "                           0600 (QEMU may connect to disks, not administer)\n"
	        "      --idle-us N          sleep after N us without work (default 100; 0 = poll "
	        "only)\n"
	        "      --max-guest-mem SIZE guest memory one front-end may map, bytes or with a\n"
	        "                           K/M/G/T suffix (powers of 1024); default 1T\n"
	        "      --metrics ADDR:PORT  serve Prometheus metrics at http://ADDR:PORT/metrics\n"
	        "                           (\":9100\" = loopback; 0.0.0.0:9100 exposes them)\n"
	        "      --supervise          run as a supervisor that restarts the daemon if it "
	        "dies,\n"
	        "                           keeping its sockets bound and RAM disks alive "
	        "meanwhile\n"
	        "  -h, --help               this text\n"
	        "  -v, --version            print the version\n");
}

static int
parse_group(const char *s, gid_t *gid)
{
	struct group *g = getgrnam(s);
	char *end;
	unsigned long v;

	if (g != NULL) {
		*gid = g->gr_gid;
		return 0;
	}
	v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0') {
		return -EINVAL;
	}
	*gid = (gid_t)v;
	return 0;
}

/* "4096", "512M", "1T" (binary multiples): > 0 and no overflow. Returns 0 or -EINVAL. */
static int
parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	const char *u;
	uint64_t v;
	char *end;

	if (*s < '0' || *s > '9') {
		return -EINVAL; /* strtoull would take blanks and a sign */
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno) {
		return -EINVAL;
	}
	if (*end != '\0') {
		u = strchr(units, *end & ~0x20);
		if (u == NULL || *u == '\0' || end[1] != '\0' ||
		    VH_MUL_OVERFLOW(v, 1ull << (10 * (u - units + 1)), &v)) {
			return -EINVAL;
		}
	}
	if (v == 0) {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
	        {"cpumask", required_argument, NULL, 'm'},
	        {"socket-dir", required_argument, NULL, 'S'},
	        {"rpc-socket", required_argument, NULL, 'r'},
	        {"config", required_argument, NULL, 'c'},
	        {"log-level", required_argument, NULL, 'L'},
	        {"socket-group", required_argument, NULL, 'g'},
	        {"idle-us", required_argument, NULL, 'I'},
	        {"max-guest-mem", required_argument, NULL, 'G'},
	        {"metrics", required_argument, NULL, 'M'},
	        {"rpc-group", required_argument, NULL, 'R'},
	        {"supervise", no_argument, NULL, 'U'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'v'},
	        {NULL, 0, NULL, 0},
	};
	int c, lvl;
	char *end;

	while ((c = getopt_long(argc, argv, "m:S:r:c:L:g:hv", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (vh_parse_cpumask(optarg, &o->cpumask) < 0) {
				fprintf(stderr, "vhostd: bad cpumask '%s'\n", optarg);
				return -1;
			}
			break;
		case 'S':
			o->socket_dir = optarg;
			break;
		case 'r':
			o->rpc_socket = optarg;
			break;
		case 'c':
			o->config = optarg;
			break;
		case 'L':
			lvl = vh_log_parse_level(optarg);
			if (lvl < 0) {
				fprintf(stderr, "vhostd: bad log level '%s'\n", optarg);
				return -1;
			}
			vh_log_set_level((enum vh_log_level)lvl);
			break;
		case 'g':
			if (parse_group(optarg, &o->group) < 0) {
				fprintf(stderr, "vhostd: unknown group '%s'\n", optarg);
				return -1;
			}
			break;
		case 'I':
			errno = 0;
			o->idle_us = strtoull(optarg, &end, 10);
			if (errno || *optarg == '\0' || *end != '\0' || o->idle_us > 10000000) {
				fprintf(stderr, "vhostd: bad --idle-us '%s'\n", optarg);
				return -1;
			}
			break;
		case 'G':
			if (parse_size(optarg, &o->max_guest_mem) < 0) {
				fprintf(stderr, "vhostd: bad --max-guest-mem '%s'\n", optarg);
				return -1;
			}
			break;
		case 'M':
			o->metrics = optarg;
			break;
		case 'R':
			if (strcmp(optarg, "-") == 0) {
				o->rpc_group = (gid_t)-1;
			} else if (parse_group(optarg, &o->rpc_group) < 0) {
				fprintf(stderr, "vhostd: unknown group '%s'\n", optarg);
				return -1;
			}
			break;
		case 'U':
			break; /* handled before parsing */
		case 'h':
			usage(stdout);
			exit(0);
		case 'v':
			printf("vhostd %s\n", VHOSTD_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vhostd: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

/*
 * Watchdog: ping systemd (or the supervisor, which relays) only while every reactor makes
 * progress or is asleep by choice. A reactor stuck in a poller stops the pings, and systemd's
 * WatchdogSec restarts us.
 */
struct watchdog {
	uint64_t period_ns;
	uint64_t last[VH_MAX_REACTORS];
	bool systemd;
};

static void
watchdog_tick(void *arg, uint32_t events)
{
	struct watchdog *w = arg;
	bool healthy = true;

	for (unsigned i = 0; i < vh_reactor_count(); i++) {
		const struct vh_reactor *r = vh_reactor_get(i);
		uint64_t hb = vh_reactor_heartbeat(r);

		if (hb == w->last[i] && !vh_reactor_is_sleeping(r)) {
			healthy = false;
			VH_ERR("app", "reactor %u made no progress for %" PRIu64 " ms", i,
			       w->period_ns / 1000000);
		}
		w->last[i] = hb;
	}
	if (healthy) {
#if VH_HAVE_SYSTEMD
		if (w->systemd) {
			sd_notify(0, "WATCHDOG=1");
		}
#endif
		vh_handover_notify("WATCHDOG");
	}
	if (vh_evloop_timer(vh_evloop_main(), w->period_ns, watchdog_tick, w) == NULL) {
		VH_ERR("app", "cannot re-arm the watchdog timer");
	}
}

static void
watchdog_start(struct watchdog *w)
{
	uint64_t usec = 0;

#if VH_HAVE_SYSTEMD
	w->systemd = sd_watchdog_enabled(0, &usec) > 0;
#endif
	if (!w->systemd && !vh_handover_supervised()) {
		return;
	}
	/* Half of systemd's WatchdogSec; 1 s when only the supervisor listens. */
	w->period_ns = usec ? usec * 1000 / 2 : 1000000000ull;
	vh_evloop_timer(vh_evloop_main(), w->period_ns, watchdog_tick, w);
}

/*
 * Every 25 ms, look for a reactor that has been inside one write to a front-end's eventfd since
 * the last look, and interrupt it at the third look in a row (vh_reactors_peer_watchdog()): a
 * hostile front-end can make that write block, and it must cost the other guests on the reactor
 * at most 100 ms, while a reactor merely preempted for less than 75 ms is left alone.
 */
#define PEER_WATCHDOG_NS (25ull * 1000000ull)

static void
peer_watchdog_tick(void *arg, uint32_t events)
{
	vh_reactors_peer_watchdog();
	if (vh_evloop_timer(vh_evloop_main(), PEER_WATCHDOG_NS, peer_watchdog_tick, NULL) == NULL) {
		VH_ERR("app", "cannot re-arm the peer-call watchdog");
	}
}

/* Live upgrade, new worker: vhost-user and vfio-user sessions each report once they run. */
static struct {
	unsigned pending;
	uint64_t stop_ns, start_ns;
} g_upstart;

static void
upgrade_started(void *arg, uint64_t stop_ns, uint64_t start_ns)
{
	if (stop_ns != 0 && (g_upstart.stop_ns == 0 || stop_ns < g_upstart.stop_ns)) {
		g_upstart.stop_ns = stop_ns;
	}
	g_upstart.start_ns = VH_MAX(g_upstart.start_ns, start_ns);
	if (--g_upstart.pending == 0) {
		/* Every adopted queue runs: the pause is from the first stop to the last start. */
		vh_upgrade_new_started(g_upstart.stop_ns, g_upstart.start_ns);
	}
}

/* Live upgrade, new worker: --metrics binds once the old worker released the port. */
static const char *g_metrics_addr;
static uint64_t g_metrics_since;

static void
metrics_retry(void *arg, uint32_t events)
{
	int rc = vh_metrics_start(g_metrics_addr);

	if (g_metrics_since == 0) {
		g_metrics_since = vh_now_ns();
	}
	if (rc == -EADDRINUSE && vh_now_ns() - g_metrics_since < 30000000000ull) {
		vh_evloop_timer(vh_evloop_main(), 50000000ull, metrics_retry, NULL);
		return;
	}
	if (rc < 0) {
		VH_ERR("app", "--metrics %s: %s (metrics unavailable)", g_metrics_addr,
		       strerror(-rc));
	}
}

static void
shutdown_done(void *arg)
{
	vh_evloop_stop(arg);
}

/* vhost-user sessions are down; then the vfio-user ones (each drains its in-flight I/O). */
static void
vhost_down(void *arg)
{
	vh_vfu_shutdown(shutdown_done, arg);
}

static void
on_signal(void *arg, uint32_t events)
{
	int *sfd = arg;
	struct signalfd_siginfo si;
	static bool stopping;
	unsigned signo;

	if (read(*sfd, &si, sizeof(si)) != sizeof(si)) {
		return;
	}
	signo = si.ssi_signo;
	if (stopping) {
		VH_NOTICE("app", "signal %u again: still draining in-flight I/O", signo);
		return;
	}
	stopping = true;
	VH_NOTICE("app", "signal %u: shutting down", signo);
#if VH_HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
	vh_rpc_server_stop();
	vh_vhost_shutdown(vhost_down, vh_evloop_main());
}

/* A SIGBUS hit guest memory (core/sigbus.h): close the sessions it belongs to. */
static void
on_guest_sigbus(void *arg, uint32_t events)
{
	uint64_t n = vh_sigbus_ack();

	(void)arg;
	(void)events;
	if (n > 0) {
		VH_WARN("app",
		        "SIGBUS on guest memory (%" PRIu64 " mapping(s) replaced): closing "
		        "the sessions concerned",
		        n);
		vh_vhost_close_faulted();
		vh_vfu_close_faulted();
	}
}

static int
setup_signals(struct vh_evloop *loop, int *sfd)
{
	sigset_t set;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	/* Block before the reactors start so they inherit the mask and never take these. */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		return -errno;
	}
	*sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (*sfd < 0 || vh_evloop_add(loop, *sfd, EPOLLIN, on_signal, sfd) == NULL) {
		return -errno;
	}
	/* Process-wide, so it covers the reactors started later. */
	rc = vh_sigbus_init();
	if (rc < 0) {
		errno = -rc;
		return rc;
	}
	if (vh_evloop_add(loop, vh_sigbus_eventfd(), EPOLLIN, on_guest_sigbus, NULL) == NULL) {
		return -errno;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o = {
	        .cpumask = 0x1,
	        .socket_dir = ".",
	        .rpc_socket = DEFAULT_RPC_SOCKET,
	        .group = (gid_t)-1,
	        .rpc_group = (gid_t)-2,
	        .idle_us = 100,
	        .max_guest_mem = VH_VHOST_DEFAULT_MAX_GUEST_MEM,
	};
	static struct watchdog wd;
	const char *up_env;
	int upgrade_fd = -1;
	struct vh_reactor_opts ro;
	struct vh_evloop *loop;
	int sfd = -1, rc;

	if (parse_args(argc, argv, &o) < 0) {
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--supervise") == 0) {
			return vh_supervise(argc, argv, o.config != NULL);
		}
	}
	vh_version_set(VHOSTD_VERSION);
	rc = vh_handover_init();
	if (rc < 0) {
		VH_ERR("app", "bad supervisor hand-over: %s", strerror(-rc));
		return 1;
	}
	up_env = getenv(VH_UPGRADE_ENV_FD);
	if (up_env != NULL) {
		upgrade_fd = atoi(up_env);
		unsetenv(VH_UPGRADE_ENV_FD);
		if (upgrade_fd <= 2) {
			VH_ERR("app", "bad %s", VH_UPGRADE_ENV_FD);
			return 1;
		}
	}
	loop = vh_evloop_create();
	if (loop == NULL || setup_signals(loop, &sfd) < 0) {
		VH_ERR("app", "cannot set up the event loop: %s", strerror(errno));
		return 1;
	}
	vh_vhost_set_max_guest_mem(o.max_guest_mem);
	rc = vh_vhost_init(o.socket_dir, o.group);
	if (rc == 0) {
		rc = vh_vfu_init(o.socket_dir, o.group, o.max_guest_mem);
	}
	if (rc < 0) {
		VH_ERR("app", "socket directory '%s': %s", o.socket_dir, strerror(-rc));
		return 1;
	}
	ro.cpumask = o.cpumask;
	ro.idle_ns = o.idle_us * 1000;
	ro.pin = true;
	rc = vh_reactors_start(&ro);
	if (rc < 0) {
		VH_ERR("app", "cannot start reactors on mask 0x%llx: %s",
		       (unsigned long long)o.cpumask, strerror(-rc));
		return 1;
	}
	if (upgrade_fd >= 0) {
		/*
		 * A live upgrade's candidate: until COMMIT nothing here may touch what the running
		 * worker serves, so every failure path below is _exit() (no teardown: that would
		 * unlink its sockets).
		 */
		if (vh_upgrade_new_begin(upgrade_fd) < 0) {
			_exit(1);
		}
		vh_vhost_hold();
		vh_vfu_accept_pause(true); /* the old worker still accepts on the shared sockets */
	}
	if (o.config != NULL) {
		vh_rpc_set_config_path(o.config);
		rc = vh_rpc_load_config(o.config);
		if (rc == -ENOENT) {
			VH_NOTICE("app", "config %s does not exist yet: starting empty", o.config);
		} else if (rc < 0) {
			/* Never run half-configured: the error above named the entry. */
			if (upgrade_fd >= 0) {
				vh_upgrade_new_fail(
				        "the new binary cannot replay the configuration");
				_exit(1);
			}
			vh_reactors_stop();
			return 1;
		}
	}
	if (upgrade_fd >= 0) {
		if (vh_upgrade_new_adopt() < 0) {
			_exit(1);
		}
		g_upstart.pending = 2;
		vh_vfu_commit(upgrade_started, NULL);
		vh_vhost_commit(upgrade_started, NULL);
		vh_vfu_accept_pause(false);
	}
	/*
	 * --metrics before the RPC socket: a daemon that cannot serve its metrics exits before
	 * anyone can reach it, so no client (nor a script waiting for the socket) takes it for a
	 * running one.
	 */
	if (upgrade_fd < 0 && o.metrics != NULL) {
		rc = vh_metrics_start(o.metrics);
		if (rc < 0) {
			VH_ERR("app", "--metrics %s: %s", o.metrics,
			       rc == -EINVAL    ? "expected ADDR:PORT with a numeric address"
			       : rc == -ENOTSUP ? "built without libmicrohttpd"
			                        : strerror(-rc));
			vh_reactors_stop();
			return 1;
		}
	}
	rc = vh_rpc_server_start(o.rpc_socket, o.rpc_group == (gid_t)-2 ? o.group : o.rpc_group);
	if (rc < 0) {
		VH_ERR("app", "RPC socket %s: %s", o.rpc_socket, strerror(-rc));
		if (upgrade_fd >= 0) {
			/* Committed: the old worker is gone. Exit so the supervisor restarts one.
			 */
			_exit(1);
		}
		if (o.metrics != NULL) {
			vh_metrics_stop();
		}
		vh_reactors_stop();
		return 1;
	}
	if (upgrade_fd >= 0 && o.metrics != NULL) {
		/* The old worker holds the port until it exits: bind as soon as it is free. */
		g_metrics_addr = o.metrics;
		metrics_retry(NULL, 0);
	}
	vh_handover_close_unclaimed();
	VH_NOTICE("app", "vhostd %s ready: %u reactor(s), RPC at %s", vh_version(),
	          vh_reactor_count(), o.rpc_socket);
#if VH_HAVE_SYSTEMD
	sd_notify(0, "READY=1");
#endif
	vh_handover_notify("READY");
	if (vh_upgrade_old_init() < 0) {
		VH_WARN("app", "cannot listen to the supervisor: live upgrade unavailable");
	}
	watchdog_start(&wd);
	if (vh_evloop_timer(loop, PEER_WATCHDOG_NS, peer_watchdog_tick, NULL) == NULL) {
		VH_ERR("app", "cannot start the peer-call watchdog: %s", strerror(errno));
		return 1;
	}
	rc = vh_evloop_run(loop);
	vh_metrics_stop();
	vh_rpc_server_stop();
	vh_reactors_stop();
	vh_bdev_fini();
	vh_evloop_destroy(loop);
	vh_sigbus_fini();
	close(sfd);
	VH_NOTICE("app", "exited cleanly");
	return rc < 0 ? 1 : 0;
}
