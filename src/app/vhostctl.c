/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhostctl: the command-line client for vhostd's JSON-RPC socket, with SPDK rpc.py's argument
 * style. Standalone on purpose (libc + jansson only): it must keep working when the daemon's
 * internals change, and stay small enough to copy onto any host.
 *
 * Exit status: 0 success, 1 the daemon returned an error or could not be reached, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h> /* isfinite(): a macro, no libm needed */
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#ifndef VH_VERSION
#define VH_VERSION "0.0.0"
#endif

#define DEFAULT_SOCK    "/var/tmp/vhostd.sock"
#define DEFAULT_TIMEOUT 60.0
#define MAX_REPLY       (256u * 1024u * 1024u) /* sanity bound on what we buffer */

enum { EXIT_RPC = 1, EXIT_USAGE = 2 };

struct ctl {
	const char *sock;
	double timeout;
	bool verbose;
	int indent;
};

/* Builds the params of one method from its command-line arguments. */
struct cmd {
	const char *name;
	const char *usage;
	const char *help;
	int (*build)(struct ctl *ctl, int argc, char **argv, json_t **params);
};

static const struct cmd g_cmds[];
static const size_t g_ncmds;

static void usage_global(FILE *out);
static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vhostctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	for (size_t i = 0; cmd != NULL && i < g_ncmds; i++) {
		if (strcmp(g_cmds[i].name, cmd) == 0) {
			fprintf(stderr, "usage: vhostctl [global options] %s %s\n", cmd,
			        g_cmds[i].usage);
			return EXIT_USAGE;
		}
	}
	usage_global(stderr);
	return EXIT_USAGE;
}

static int
parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s[0] < '0' || s[0] > '9') {
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0') {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* A size in MiB as rpc.py takes it ("64", "0.5"): returns the byte count, floor. */
static int
parse_mib(const char *s, uint64_t *bytes)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || end == s || !isfinite(v) || v <= 0 ||
	    v * 1048576.0 >= 9.0e18) {
		return -EINVAL;
	}
	*bytes = (uint64_t)(v * 1048576.0); /* truncation is floor for v > 0 */
	return 0;
}

/* Reset getopt for a sub-command's own argv (glibc: optind 0 re-initialises). */
static void
getopt_reset(void)
{
	optind = 0;
	opterr = 1;
}

/* Common tail of the size-taking create commands: num_blocks from MiB and block size. */
static int
add_geometry(const char *cmd, json_t *p, const char *size, const char *bs)
{
	uint64_t bytes, block_size;

	if (parse_mib(size, &bytes) < 0) {
		return usage_error(cmd, "invalid size '%s' (MiB, e.g. 64 or 0.5)", size);
	}
	if (parse_u64(bs, &block_size) < 0 || block_size == 0 || block_size > UINT32_MAX) {
		return usage_error(cmd, "invalid block size '%s'", bs);
	}
	if (bytes / block_size == 0) {
		return usage_error(cmd, "size %s MiB is smaller than one block", size);
	}
	json_object_set_new(p, "num_blocks", json_integer((json_int_t)(bytes / block_size)));
	json_object_set_new(p, "block_size", json_integer((json_int_t)block_size));
	return 0;
}

static int
build_malloc_create(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	static const struct option opts[] = {
	        {"name", required_argument, NULL, 'b'},
	        {"uuid", required_argument, NULL, 'u'},
	        {NULL, 0, NULL, 0},
	};
	json_t *p = json_object();
	int c;

	*params = p;
	getopt_reset();
	while ((c = getopt_long(argc, argv, "b:u:", opts, NULL)) != -1) {
		if (c == 'b') {
			json_object_set_new(p, "name", json_string(optarg));
		} else if (c == 'u') {
			json_object_set_new(p, "uuid", json_string(optarg));
		} else {
			return usage_error(argv[0], "bad option");
		}
	}
	if (argc - optind != 2) {
		return usage_error(argv[0], "expected TOTAL_SIZE_MIB and BLOCK_SIZE");
	}
	return add_geometry(argv[0], p, argv[optind], argv[optind + 1]);
}

/* rpc.py's NAME TOTAL_SIZE_MIB BLOCK_SIZE, plus vhostd's --read-zeroes (zero-fill reads). */
static int
build_null_create(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	static const struct option opts[] = {
	        {"read-zeroes", no_argument, NULL, 'z'},
	        {NULL, 0, NULL, 0},
	};
	json_t *p = json_object();
	int c;

	*params = p;
	getopt_reset();
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'z') {
			json_object_set_new(p, "read_zeroes", json_true());
		} else {
			return usage_error(argv[0], "bad option");
		}
	}
	if (argc - optind != 3) {
		return usage_error(argv[0], "expected NAME TOTAL_SIZE_MIB BLOCK_SIZE");
	}
	json_object_set_new(p, "name", json_string(argv[optind]));
	return add_geometry(argv[0], p, argv[optind + 1], argv[optind + 2]);
}

/*
 * rpc.py's bdev_uring_create / bdev_aio_create: FILENAME NAME [BLOCK_SIZE], plus vhostd's
 * --no-inline (on tmpfs, send reads and writes through the engine instead of copying inline).
 */
static int
build_file_create(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	static const struct option opts[] = {
	        {"no-inline", no_argument, NULL, 'n'},
	        {NULL, 0, NULL, 0},
	};
	const char *cmd = argv[0];
	json_t *p = json_object();
	uint64_t bs;
	int c, n;

	*params = p;
	getopt_reset();
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c != 'n') {
			return usage_error(cmd, "bad option");
		}
		json_object_set_new(p, "inline_io", json_false());
	}
	n = argc - optind;
	argv += optind - 1;
	if (n != 2 && n != 3) {
		return usage_error(cmd, "expected [--no-inline] FILENAME NAME [BLOCK_SIZE]");
	}
	json_object_set_new(p, "filename", json_string(argv[1]));
	json_object_set_new(p, "name", json_string(argv[2]));
	if (n == 3) {
		if (parse_u64(argv[3], &bs) < 0 || bs > UINT32_MAX) {
			return usage_error(cmd, "bad BLOCK_SIZE '%s'", argv[3]);
		}
		json_object_set_new(p, "block_size", json_integer((json_int_t)bs));
	}
	return 0;
}

/* rpc.py's bdev_nvme_attach_controller -b NAME -t PCIe -a TRADDR [--mode vfio|uio] [--force]. */
static int
build_nvme_attach(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	static const struct option opts[] = {
	        {"name", required_argument, NULL, 'b'},   {"trtype", required_argument, NULL, 't'},
	        {"traddr", required_argument, NULL, 'a'}, {"mode", required_argument, NULL, 'm'},
	        {"force", no_argument, NULL, 'f'},        {NULL, 0, NULL, 0},
	};
	json_t *p = json_object();
	int c;

	*params = p;
	getopt_reset();
	while ((c = getopt_long(argc, argv, "b:t:a:m:f", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			json_object_set_new(p, "name", json_string(optarg));
			break;
		case 't':
			json_object_set_new(p, "trtype", json_string(optarg));
			break;
		case 'a':
			json_object_set_new(p, "traddr", json_string(optarg));
			break;
		case 'm':
			json_object_set_new(p, "mode", json_string(optarg));
			break;
		case 'f':
			json_object_set_new(p, "force", json_true());
			break;
		default:
			return usage_error(argv[0], "bad option");
		}
	}
	if (optind != argc || !json_object_get(p, "name") || !json_object_get(p, "traddr")) {
		return usage_error(argv[0], "expected -b NAME -t PCIe -a TRADDR");
	}
	if (!json_object_get(p, "trtype")) {
		json_object_set_new(p, "trtype", json_string("PCIe"));
	}
	return 0;
}

/* vhostd extension: bdev_set_test_delay NAME MAX_DELAY_US. */
static int
build_test_delay(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	uint64_t us;

	if (argc != 3 || parse_u64(argv[2], &us) < 0 || us > UINT32_MAX) {
		return usage_error(argv[0], "expected NAME MAX_DELAY_US");
	}
	*params = json_pack("{s:s, s:I}", "name", argv[1], "max_delay_us", (json_int_t)us);
	return 0;
}

/* Commands whose only argument is one positional string sent as @key. */
static int
build_one_arg(int argc, char **argv, json_t **params, const char *key, const char *what)
{
	if (argc != 2 || argv[1][0] == '-') {
		return usage_error(argv[0], "expected %s", what);
	}
	*params = json_pack("{s:s}", key, argv[1]);
	return 0;
}

static int
build_name(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	return build_one_arg(argc, argv, params, "name", "NAME");
}

static int
build_ctrlr(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	return build_one_arg(argc, argv, params, "ctrlr", "CTRLR");
}

static int
build_level(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	return build_one_arg(argc, argv, params, "level", "LEVEL");
}

/* Commands with one optional "-X VALUE" sent as @key, and no positionals. */
static int
build_opt_name(int argc, char **argv, json_t **params, char letter, const char *longname,
               const char *key)
{
	const struct option opts[] = {
	        {longname, required_argument, NULL, letter},
	        {NULL, 0, NULL, 0},
	};
	char short_opts[3] = {letter, ':', '\0'};
	int c;

	getopt_reset();
	while ((c = getopt_long(argc, argv, short_opts, opts, NULL)) != -1) {
		if (c != letter) {
			return usage_error(argv[0], "bad option");
		}
		json_decref(*params);
		*params = json_pack("{s:s}", key, optarg);
	}
	if (optind != argc) {
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	}
	return 0;
}

static int
build_get_bdevs(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	return build_opt_name(argc, argv, params, 'b', "name", "name");
}

static int
build_nvme_get(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	return build_opt_name(argc, argv, params, 'n', "name", "name");
}

static int
build_get_ctrlrs(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	return build_opt_name(argc, argv, params, 'n', "name", "name");
}

static int
build_create_blk(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	static const struct option opts[] = {
	        {"cpumask", required_argument, NULL, 'm'},
	        {"readonly", no_argument, NULL, 'r'},
	        {"packed_ring", no_argument, NULL, 'p'},
	        {"packed-ring", no_argument, NULL, 'p'},
	        {"packed_ring_recovery", no_argument, NULL, 'l'},
	        {"packed-ring-recovery", no_argument, NULL, 'l'},
	        {NULL, 0, NULL, 0},
	};
	json_t *p = json_object();
	int c;

	*params = p;
	getopt_reset();
	while ((c = getopt_long(argc, argv, "m:rpl", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			json_object_set_new(p, "cpumask", json_string(optarg));
			break;
		case 'r':
			json_object_set_new(p, "readonly", json_true());
			break;
		case 'p':
			json_object_set_new(p, "packed_ring", json_true());
			break;
		case 'l':
			json_object_set_new(p, "packed_ring_recovery", json_true());
			break;
		default:
			return usage_error(argv[0], "bad option");
		}
	}
	if (argc - optind != 2) {
		return usage_error(argv[0], "expected CTRLR and DEV_NAME");
	}
	json_object_set_new(p, "ctrlr", json_string(argv[optind]));
	json_object_set_new(p, "dev_name", json_string(argv[optind + 1]));
	return 0;
}

static int
build_create_scsi(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	static const struct option opts[] = {
	        {"cpumask", required_argument, NULL, 'm'},
	        {NULL, 0, NULL, 0},
	};
	json_t *p = json_object();
	int c;

	*params = p;
	getopt_reset();
	while ((c = getopt_long(argc, argv, "m:", opts, NULL)) != -1) {
		if (c != 'm') {
			return usage_error(argv[0], "bad option");
		}
		json_object_set_new(p, "cpumask", json_string(optarg));
	}
	if (argc - optind != 1) {
		return usage_error(argv[0], "expected CTRLR");
	}
	json_object_set_new(p, "ctrlr", json_string(argv[optind]));
	return 0;
}

/* A target number: 0..255, or -1 (add: the lowest free one), as rpc.py's int argument. */
static int
parse_target(const char *s, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno != 0 || end == s || *end != '\0' || *out < -1 || *out > INT32_MAX ? -1 : 0;
}

static int
build_scsi_add_target(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	long long t;

	if (argc != 4 || parse_target(argv[2], &t) < 0) {
		return usage_error(argv[0], "expected CTRLR SCSI_TARGET_NUM BDEV_NAME");
	}
	*params = json_pack("{s:s, s:I, s:s}", "ctrlr", argv[1], "scsi_target_num", (json_int_t)t,
	                    "bdev_name", argv[3]);
	return 0;
}

static int
build_scsi_remove_target(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	long long t;

	if (argc != 3 || parse_target(argv[2], &t) < 0 || t < 0) {
		return usage_error(argv[0], "expected CTRLR SCSI_TARGET_NUM");
	}
	*params = json_pack("{s:s, s:I}", "ctrlr", argv[1], "scsi_target_num", (json_int_t)t);
	return 0;
}

static int
build_none(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	if (argc != 1) {
		return usage_error(argv[0], "unexpected argument '%s'", argv[1]);
	}
	return 0;
}

static int
build_save_config(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	static const struct option opts[] = {
	        {"indent", required_argument, NULL, 'i'},
	        {NULL, 0, NULL, 0},
	};
	uint64_t indent;
	int c;

	getopt_reset();
	while ((c = getopt_long(argc, argv, "i:", opts, NULL)) != -1) {
		if (c != 'i' || parse_u64(optarg, &indent) < 0 || indent > 31) {
			return usage_error(argv[0], "-i takes an indent of 0 to 31");
		}
		ctl->indent = (int)indent;
	}
	if (optind != argc) {
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	}
	return 0;
}

/* rpc.py's bdev_set_qos_limit: NAME and the limits to change (0 removes one). */
static int
build_qos(struct ctl *ctl, int argc, char **argv, json_t **params)
{
	static const struct option opts[] = {
	        {"rw-ios-per-sec", required_argument, NULL, 0},
	        {"rw-mbytes-per-sec", required_argument, NULL, 1},
	        {"r-mbytes-per-sec", required_argument, NULL, 2},
	        {"w-mbytes-per-sec", required_argument, NULL, 3},
	        {NULL, 0, NULL, 0},
	};
	static const char *const keys[] = {"rw_ios_per_sec", "rw_mbytes_per_sec",
	                                   "r_mbytes_per_sec", "w_mbytes_per_sec"};
	uint64_t v;
	int c;

	*params = json_object();
	getopt_reset();
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c < 0 || c > 3 || parse_u64(optarg, &v) < 0 || v > INT64_MAX) {
			return usage_error(argv[0], "limits are integers (0 removes one)");
		}
		json_object_set_new(*params, keys[c], json_integer((json_int_t)v));
	}
	if (optind + 1 != argc) {
		return usage_error(argv[0], "expected the bdev name");
	}
	json_object_set_new(*params, "name", json_string(argv[optind]));
	return 0;
}

static const struct cmd g_cmds[] = {
        {"bdev_malloc_create", "[-b NAME] [-u UUID] TOTAL_SIZE_MIB BLOCK_SIZE",
         "create a RAM bdev; prints its name", build_malloc_create},
        {"bdev_malloc_delete", "NAME", "delete a RAM bdev", build_name},
        {"bdev_null_create", "[--read-zeroes] NAME TOTAL_SIZE_MIB BLOCK_SIZE",
         "create a null bdev (reads untouched; zero-filled with --read-zeroes)", build_null_create},
        {"bdev_null_delete", "NAME", "delete a null bdev", build_name},
        {"bdev_uring_create", "[--no-inline] FILENAME NAME [BLOCK_SIZE]",
         "create an io_uring bdev on a file or block device", build_file_create},
        {"bdev_uring_delete", "NAME", "delete an io_uring bdev", build_name},
        {"bdev_uring_rescan", "NAME", "pick up a grown file or device; guests are told",
         build_name},
        {"bdev_aio_create", "[--no-inline] FILENAME NAME [BLOCK_SIZE]",
         "create a libaio bdev on a file or block device", build_file_create},
        {"bdev_aio_delete", "NAME", "delete an aio bdev", build_name},
        {"bdev_nvme_attach_controller", "-b NAME -t PCIe -a TRADDR [--mode vfio|uio] [--force]",
         "attach a PCIe NVMe controller with the user-space driver; bdevs are NAMEn<nsid>",
         build_nvme_attach},
        {"bdev_nvme_detach_controller", "NAME", "detach an NVMe controller", build_name},
        {"bdev_nvme_get_controllers", "[-n NAME]", "list NVMe controllers", build_nvme_get},
        {"bdev_set_test_delay", "NAME MAX_DELAY_US",
         "testing: hold completions 0..MAX_DELAY_US (out of order)", build_test_delay},
        {"bdev_get_bdevs", "[-b NAME]", "list bdevs", build_get_bdevs},
        {"bdev_set_qos_limit",
         "[--rw-ios-per-sec N] [--rw-mbytes-per-sec N] [--r-mbytes-per-sec N] "
         "[--w-mbytes-per-sec N] NAME",
         "rate-limit a bdev (0 removes a limit)", build_qos},
        {"bdev_get_iostat", "[-b NAME]", "I/O statistics (latencies in ns)", build_get_bdevs},
        {"bdev_reset_iostat", "[-b NAME]", "start the I/O statistics over", build_get_bdevs},
        {"vhost_create_blk_controller",
         "[--cpumask MASK] [-r|--readonly] [-p|--packed_ring] [-l|--packed_ring_recovery] "
         "CTRLR DEV_NAME",
         "create a vhost-user-blk controller", build_create_blk},
        {"vhost_create_scsi_controller", "[--cpumask MASK] CTRLR",
         "create a vhost-user-scsi controller (no targets yet)", build_create_scsi},
        {"vhost_scsi_controller_add_target", "CTRLR SCSI_TARGET_NUM BDEV_NAME",
         "attach a bdev as LUN 0 of a target (-1: the lowest free number); prints the number",
         build_scsi_add_target},
        {"vhost_scsi_controller_remove_target", "CTRLR SCSI_TARGET_NUM",
         "detach a target (hot-unplug)", build_scsi_remove_target},
        {"vhost_delete_controller", "CTRLR", "delete a controller", build_ctrlr},
        {"vhost_get_controllers", "[-n NAME]", "list controllers", build_get_ctrlrs},
        {"rpc_get_methods", "", "list the methods the daemon serves", build_none},
        {"spdk_get_version", "", "daemon version", build_none},
        {"save_config", "[-i INDENT]", "print the configuration (load it with --config)",
         build_save_config},
        {"log_set_level", "LEVEL", "error, warning, notice, info or debug", build_level},
};
static const size_t g_ncmds = sizeof(g_cmds) / sizeof(g_cmds[0]);

static void
usage_global(FILE *out)
{
	fprintf(out, "usage: vhostctl [-s SOCK] [-t SECONDS] [-v] METHOD [ARGS...]\n"
	             "       vhostctl [options] call METHOD ['{json params}']\n"
	             "\n"
	             "options:\n"
	             "  -s, --server SOCK     daemon socket (default " DEFAULT_SOCK ")\n"
	             "  -t, --timeout SECONDS reply timeout (default 60)\n"
	             "  -v, --verbose         print the request and the raw reply on stderr\n"
	             "  -h, --help            this help\n"
	             "      --version         print the version\n"
	             "\n"
	             "methods:\n");
	for (size_t i = 0; i < g_ncmds; i++) {
		fprintf(out, "  %s%s%s\n      %s\n", g_cmds[i].name, g_cmds[i].usage[0] ? " " : "",
		        g_cmds[i].usage, g_cmds[i].help);
	}
	fprintf(out, "  call METHOD ['{json params}']\n      any method, raw JSON params\n");
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait for @events on @fd until @deadline. Returns 0, or -ETIMEDOUT / -errno. */
static int
wait_fd(int fd, short events, double deadline)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = events};
		double left = deadline - now_s();
		int n;

		if (left <= 0) {
			return -ETIMEDOUT;
		}
		n = poll(&pfd, 1, (int)(left * 1000.0) + 1);
		if (n > 0) {
			return 0;
		}
		if (n < 0 && errno != EINTR) {
			return -errno;
		}
	}
}

static int
connect_sock(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "vhostctl: socket path %s is too long\n", path);
		return -1;
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr, "vhostctl: cannot connect to %s: %s (is vhostd running?)\n", path,
		        strerror(errno));
		if (fd >= 0) {
			close(fd);
		}
		return -1;
	}
	return fd;
}

static int
send_all(int fd, const char *buf, size_t len, double deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			int rc;

			if (errno == EINTR) {
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				return -errno;
			}
			rc = wait_fd(fd, POLLOUT, deadline);
			if (rc < 0) {
				return rc;
			}
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Read until one complete JSON value arrived. The server may not close the connection or end the
 * reply with a newline, so completeness is decided by parsing.
 */
static json_t *
recv_reply(struct ctl *ctl, int fd, double deadline)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);
	json_t *reply = NULL;
	json_error_t jerr;

	while (buf != NULL) {
		ssize_t n;
		int rc;

		if (len == cap) {
			char *nb = cap < MAX_REPLY ? realloc(buf, cap * 2) : NULL;

			if (nb == NULL) {
				fprintf(stderr, "vhostctl: reply too large\n");
				break;
			}
			buf = nb;
			cap *= 2;
		}
		rc = wait_fd(fd, POLLIN, deadline);
		if (rc == -ETIMEDOUT) {
			fprintf(stderr, "vhostctl: no reply from %s within %g s\n", ctl->sock,
			        ctl->timeout);
			break;
		}
		if (rc < 0) {
			fprintf(stderr, "vhostctl: waiting for %s: %s\n", ctl->sock, strerror(-rc));
			break;
		}
		n = recv(fd, buf + len, cap - len, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
			continue;
		}
		if (n <= 0) {
			fprintf(stderr, "vhostctl: %s closed the connection before replying%s%s\n",
			        ctl->sock, n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
			break;
		}
		len += (size_t)n;
		reply = json_loadb(buf, len, JSON_DISABLE_EOF_CHECK, &jerr);
		if (reply != NULL) {
			break;
		}
		if (json_error_code(&jerr) != json_error_premature_end_of_input) {
			fprintf(stderr, "vhostctl: invalid reply from %s: %s\n", ctl->sock,
			        jerr.text);
			break;
		}
	}
	if (ctl->verbose && buf != NULL) {
		fprintf(stderr, "<- %.*s\n", (int)(len < (1u << 20) ? len : (1u << 20)), buf);
	}
	free(buf);
	return reply;
}

static int
print_result(struct ctl *ctl, const json_t *result)
{
	if (json_is_string(result)) {
		/* Names print bare so shells can capture them: name=$(vhostctl bdev_...). */
		printf("%s\n", json_string_value(result));
		return 0;
	}
	if (json_dumpf(result, stdout, JSON_INDENT(ctl->indent) | JSON_ENCODE_ANY) < 0) {
		return -EIO;
	}
	printf("\n");
	return fflush(stdout) == 0 ? 0 : -EIO;
}

/* Check the reply envelope and print. Returns the process exit status. */
static int
handle_reply(struct ctl *ctl, const json_t *reply)
{
	const json_t *error = json_object_get(reply, "error");
	const json_t *result = json_object_get(reply, "result");

	if (json_is_object(error)) {
		const json_t *msg = json_object_get(error, "message");

		fprintf(stderr, "error: %s (code %lld)\n",
		        json_is_string(msg) ? json_string_value(msg) : "(no message)",
		        (long long)json_integer_value(json_object_get(error, "code")));
		return EXIT_RPC;
	}
	if (!json_is_object(reply) || result == NULL) {
		fprintf(stderr, "vhostctl: malformed reply from %s\n", ctl->sock);
		return EXIT_RPC;
	}
	if (print_result(ctl, result) < 0) {
		fprintf(stderr, "vhostctl: cannot write the result: %s\n", strerror(errno));
		return EXIT_RPC;
	}
	return 0;
}

static int
call(struct ctl *ctl, const char *method, json_t *params)
{
	double deadline = now_s() + ctl->timeout;
	json_t *req, *reply;
	char *text;
	int fd, rc;

	req = json_pack("{s:s, s:s, s:i}", "jsonrpc", "2.0", "method", method, "id", 1);
	if (req == NULL) {
		return EXIT_RPC;
	}
	if (params != NULL) {
		json_object_set(req, "params", params);
	}
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (text == NULL) {
		return EXIT_RPC;
	}
	if (ctl->verbose) {
		fprintf(stderr, "-> %s\n", text);
	}
	fd = connect_sock(ctl->sock);
	if (fd < 0) {
		free(text);
		return EXIT_RPC;
	}
	rc = send_all(fd, text, strlen(text), deadline);
	free(text);
	if (rc < 0) {
		fprintf(stderr, "vhostctl: cannot send to %s: %s\n", ctl->sock, strerror(-rc));
		close(fd);
		return EXIT_RPC;
	}
	reply = recv_reply(ctl, fd, deadline);
	close(fd);
	if (reply == NULL) {
		return EXIT_RPC;
	}
	rc = handle_reply(ctl, reply);
	json_decref(reply);
	return rc;
}

static int
run_generic(struct ctl *ctl, int argc, char **argv)
{
	json_error_t jerr;
	json_t *params = NULL;
	int rc;

	if (argc < 2 || argc > 3) {
		return usage_error(NULL, "call takes METHOD and optional JSON params");
	}
	if (argc == 3) {
		params = json_loads(argv[2], JSON_REJECT_DUPLICATES, &jerr);
		if (params == NULL) {
			return usage_error(NULL, "invalid JSON params: %s", jerr.text);
		}
		if (!json_is_object(params) && !json_is_array(params)) {
			json_decref(params);
			return usage_error(NULL, "params must be a JSON object or array");
		}
	}
	rc = call(ctl, argv[1], params);
	json_decref(params);
	return rc;
}

static int
run_cmd(struct ctl *ctl, int argc, char **argv)
{
	json_t *params = NULL;
	int rc;

	if (strcmp(argv[0], "call") == 0) {
		return run_generic(ctl, argc, argv);
	}
	for (size_t i = 0; i < g_ncmds; i++) {
		if (strcmp(g_cmds[i].name, argv[0]) != 0) {
			continue;
		}
		rc = g_cmds[i].build(ctl, argc, argv, &params);
		if (rc == 0) {
			rc = call(ctl, argv[0], params);
		}
		json_decref(params);
		return rc;
	}
	return usage_error(NULL,
	                   "unknown method '%s' (use 'call %s' for methods without a "
	                   "shortcut)",
	                   argv[0], argv[0]);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"server", required_argument, NULL, 's'}, {"timeout", required_argument, NULL, 't'},
	        {"verbose", no_argument, NULL, 'v'},      {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
	};
	struct ctl ctl = {.sock = DEFAULT_SOCK, .timeout = DEFAULT_TIMEOUT, .indent = 2};
	char *end;
	int c;

	/* '+': stop at the method name; what follows belongs to the method. */
	while ((c = getopt_long(argc, argv, "+s:t:vh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			ctl.sock = optarg;
			break;
		case 't':
			ctl.timeout = strtod(optarg, &end);
			if (*end != '\0' || end == optarg || !(ctl.timeout > 0) ||
			    ctl.timeout > 86400.0) {
				return usage_error(NULL, "invalid timeout '%s'", optarg);
			}
			break;
		case 'v':
			ctl.verbose = true;
			break;
		case 'h':
			usage_global(stdout);
			return 0;
		case 'V':
			printf("vhostctl %s\n", VH_VERSION);
			return 0;
		default:
			usage_global(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		return usage_error(NULL, "no method given");
	}
	return run_cmd(&ctl, argc - optind, argv + optind);
}
