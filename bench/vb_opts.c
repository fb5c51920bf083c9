/* SPDX-License-Identifier: BSD-3-Clause */
/* vhost-bench command line, in fio's vocabulary. Every bad value is reported and exits 2. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vb.h"

static const char usage[] =
        "usage: vhost-bench --socket PATH [options]\n"
        "Drive a vhost-user-blk target from the host (it plays QEMU and the guest driver).\n"
        "\n"
        "  --socket PATH       target's vhost-user socket (required)\n"
        "  --rw MODE           read|write|randread|randwrite|randrw (default read)\n"
        "  --rwmixread N       percent of reads with randrw (default 50)\n"
        "  --bs SIZE           I/O size: 512, 4k, 64k, 1m... multiple of 512 (default 4k)\n"
        "  --iodepth N         requests in flight per queue (default 1, max 4096)\n"
        "  --queues N          virtqueues (default 1, max 64)\n"
        "  --runtime SEC       measured time (default 10; 's'/'ms' suffixes accepted)\n"
        "  --ramp SEC          I/O before measuring (default 0; alias --ramp_time)\n"
        "  --size SIZE         bytes of the disk to use, from offset 0 (default: all)\n"
        "  --number_ios N      stop after N I/Os in total (also --number-ios)\n"
        "  --thinktime USEC    wait this long after a completion before reusing its slot\n"
        "  --cpumask MASK      hex mask of CPUs; one pinned thread per CPU (at most one per\n"
        "                      queue). Default: one unpinned thread\n"
        "  --huge              guest RAM on hugetlbfs (/dev/hugepages or any hugetlbfs mount)\n"
        "  --interrupt         sleep on the call eventfds instead of polling the used rings\n"
        "  --no-flush          do not ack VIRTIO_BLK_F_FLUSH or CONFIG_WCE, as SPDK's and\n"
        "                      DPDK's virtio-user: the target must make every write durable\n"
        "  --packed            packed virtqueues (VIRTIO_F_RING_PACKED; the target must offer\n"
        "                      it): the same chains, written into the descriptor ring\n"
        "                      (with --indirect on, one descriptor per request pointing at\n"
        "                      its table, as a Linux guest's virtio_ring does)\n"
        "  --inflight          give the target an inflight region (INFLIGHT_SHMFD), as QEMU\n"
        "                      does: it records every request there (crash recovery)\n"
        "\n"
        "Ring habits (how the driver uses the rings; a --pattern sets them all, the options\n"
        "below override it whatever their order):\n"
        "  --pattern NAME      lean (default: ours, the least initiator work), spdk (SPDK\n"
        "                      v23.05 bdev_virtio_blk: EVENT_IDX, used_event ahead, 3 direct\n"
        "                      descriptors rewritten per request, kick per request, SPDK's\n"
        "                      features: no FLUSH), linux (EVENT_IDX, used_event tracked,\n"
        "                      indirect, kick per batch), dpdk (no EVENT_IDX, indirect, kick\n"
        "                      per batch)\n"
        "  --event-idx on|off  ack VIRTIO_RING_F_EVENT_IDX (if offered)\n"
        "  --used-event MODE   lazy (polling; used_event half a lap behind, rarely rewritten),\n"
        "                      ahead (polling, SPDK: rewritten far ahead at every publish),\n"
        "                      track (interrupt-driven: re-armed after every batch, the\n"
        "                      target signals every completion batch). Without EVENT_IDX:\n"
        "                      track clears VRING_AVAIL_F_NO_INTERRUPT, the others set it\n"
        "  --indirect on|off   each request is one ring descriptor pointing at its chain\n"
        "  --layout L          split (header, data, status: 3 descriptors) or merged\n"
        "                      (header+write data, read data+status: 2, the fewest possible)\n"
        "  --kick K            batch (publish and maybe kick once per batch) or request\n"
        "                      (after every request, as SPDK)\n"
        "  --rewrite on|off    write the descriptors at every submission (real drivers do)\n"
        "  --queue-size N      ring size, a power of two (default: the smallest that fits)\n"
        "  --verify            write blocks with a {LBA, generation, crc32c} header, check\n"
        "                      every read, read back every written block at the end\n"
        "  --seed N            PRNG seed (default 0x5eed)\n"
        "  --idle SEC          after the run, stay connected this long without I/O\n"
        "  --target-pid PID    report that process's CPU use during the run (and --idle)\n"
        "  --timeout SEC       bound on control replies and on the final drain (default 10)\n"
        "  --json              print one JSON object instead of text\n"
        "  --help              this text\n"
        "\n"
        "Exit status: 0 ok, 1 failure (connection, features, I/O errors, verify mismatches),\n"
        "2 bad option.\n";

enum {
	OPT_SOCKET = 256,
	OPT_RW,
	OPT_RWMIX,
	OPT_BS,
	OPT_IODEPTH,
	OPT_QUEUES,
	OPT_RUNTIME,
	OPT_RAMP,
	OPT_SIZE,
	OPT_NUMBER_IOS,
	OPT_THINKTIME,
	OPT_CPUMASK,
	OPT_HUGE,
	OPT_INTERRUPT,
	OPT_NO_FLUSH,
	OPT_PACKED,
	OPT_INFLIGHT,
	OPT_VERIFY,
	OPT_SEED,
	OPT_IDLE,
	OPT_TARGET_PID,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_HELP,
	OPT_PATTERN,
	OPT_EVENT_IDX,
	OPT_USED_EVENT,
	OPT_INDIRECT,
	OPT_LAYOUT,
	OPT_KICK,
	OPT_REWRITE,
	OPT_QUEUE_SIZE,
};

static const struct option long_opts[] = {
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"rw", required_argument, NULL, OPT_RW},
        {"readwrite", required_argument, NULL, OPT_RW},
        {"rwmixread", required_argument, NULL, OPT_RWMIX},
        {"bs", required_argument, NULL, OPT_BS},
        {"iodepth", required_argument, NULL, OPT_IODEPTH},
        {"queues", required_argument, NULL, OPT_QUEUES},
        {"runtime", required_argument, NULL, OPT_RUNTIME},
        {"ramp", required_argument, NULL, OPT_RAMP},
        {"ramp_time", required_argument, NULL, OPT_RAMP},
        {"size", required_argument, NULL, OPT_SIZE},
        {"number_ios", required_argument, NULL, OPT_NUMBER_IOS},
        {"number-ios", required_argument, NULL, OPT_NUMBER_IOS},
        {"thinktime", required_argument, NULL, OPT_THINKTIME},
        {"cpumask", required_argument, NULL, OPT_CPUMASK},
        {"huge", no_argument, NULL, OPT_HUGE},
        {"interrupt", no_argument, NULL, OPT_INTERRUPT},
        {"no-flush", no_argument, NULL, OPT_NO_FLUSH},
        {"packed", no_argument, NULL, OPT_PACKED},
        {"inflight", no_argument, NULL, OPT_INFLIGHT},
        {"verify", no_argument, NULL, OPT_VERIFY},
        {"seed", required_argument, NULL, OPT_SEED},
        {"idle", required_argument, NULL, OPT_IDLE},
        {"target-pid", required_argument, NULL, OPT_TARGET_PID},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},
        {"pattern", required_argument, NULL, OPT_PATTERN},
        {"event-idx", required_argument, NULL, OPT_EVENT_IDX},
        {"used-event", required_argument, NULL, OPT_USED_EVENT},
        {"indirect", required_argument, NULL, OPT_INDIRECT},
        {"layout", required_argument, NULL, OPT_LAYOUT},
        {"kick", required_argument, NULL, OPT_KICK},
        {"rewrite", required_argument, NULL, OPT_REWRITE},
        {"queue-size", required_argument, NULL, OPT_QUEUE_SIZE},
        {NULL, 0, NULL, 0},
};

static const char *const rw_names[] = {
        [VB_RW_READ] = "read",           [VB_RW_WRITE] = "write",   [VB_RW_RANDREAD] = "randread",
        [VB_RW_RANDWRITE] = "randwrite", [VB_RW_RANDRW] = "randrw",
};

const char *
vb_rw_name(enum vb_rw rw)
{
	return rw_names[rw];
}

static const char *const used_event_names[] = {
        [VB_UE_LAZY] = "lazy",
        [VB_UE_AHEAD] = "ahead",
        [VB_UE_TRACK] = "track",
};

const char *
vb_used_event_name(enum vb_used_event m)
{
	return used_event_names[m];
}

int
vb_pattern_preset(const char *name, struct vb_ring_pattern *rp)
{
	static const struct {
		const char *name;
		struct vb_ring_pattern rp;
	} presets[] = {
	        /* Ours: nothing the target does not need; descriptors written once. */
	        {"lean", {.event_idx = true, .used_event = VB_UE_LAZY}},
	        /*
	         * SPDK v23.05 bdev_virtio_blk (lib/virtio/virtio.c, virtqueue_req_flush): a
	         * poll-mode driver that rewrites the header/data/status chain per request and
	         * flushes each request on its own, pushing used_event out of reach at every flush.
	         */
	        {"spdk",
	         {.event_idx = true,
	          .used_event = VB_UE_AHEAD,
	          .kick_per_req = true,
	          .rewrite = true,
	          .spdk_features = true}},
	        /* A Linux guest's virtio_blk: indirect chains, blk-mq batches, interrupts. */
	        {"linux",
	         {.event_idx = true, .used_event = VB_UE_TRACK, .indirect = true, .rewrite = true}},
	        /* DPDK's virtio PMD habits: no EVENT_IDX, indirect, bursts, no interrupts. */
	        {"dpdk",
	         {.event_idx = false, .used_event = VB_UE_LAZY, .indirect = true, .rewrite = true}},
	};

	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
		if (strcmp(name, presets[i].name) == 0) {
			*rp = presets[i].rp;
			return 0;
		}
	}
	return -1;
}

static int
bad(const char *opt, const char *val, const char *why)
{
	fprintf(stderr, "vhost-bench: bad --%s '%s': %s (see --help)\n", opt, val, why);
	return -1;
}

/* Decimal (or 0x hex) unsigned integer, the whole string, in [min, max]. */
static int
parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)s[0])) {
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, s[0] == '0' && (s[1] == 'x' || s[1] == 'X') ? 16 : 10);
	if (errno || *end != '\0' || v < min || v > max) {
		return -1;
	}
	*out = v;
	return 0;
}

int
vb_parse_size(const char *s, uint64_t *out)
{
	static const char sfx[] = "kmgt";
	unsigned long long v;
	const char *p;
	char *end;
	unsigned int shift = 0;

	if (!isdigit((unsigned char)s[0])) {
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno) {
		return -1;
	}
	if (*end != '\0') {
		p = strchr(sfx, tolower((unsigned char)*end));
		if (!p) {
			return -1;
		}
		shift = 10u * (unsigned int)(p - sfx + 1);
		end++;
		/* k, kb, kib (any case): fio's default kb_base is 1024. */
		if (strcasecmp(end, "") != 0 && strcasecmp(end, "b") != 0 &&
		    strcasecmp(end, "ib") != 0) {
			return -1;
		}
	} else if (s[0] == '0' && s[1] != '\0') {
		return -1; /* no octal surprises */
	}
	if (shift && v > (UINT64_MAX >> shift)) {
		return -1;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

/* Seconds: "5", "0.5", "5s", "500ms". */
static int
parse_seconds(const char *s, double min, double *out)
{
	char *end;
	double v;

	if (!isdigit((unsigned char)s[0]) && s[0] != '.') {
		return -1;
	}
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s) {
		return -1;
	}
	if (strcmp(end, "ms") == 0) {
		v /= 1000.0;
	} else if (strcmp(end, "s") != 0 && *end != '\0') {
		return -1;
	}
	if (!isfinite(v) || v < min || v > 1e6) {
		return -1;
	}
	*out = v;
	return 0;
}

static int
parse_cpumask(const char *s, struct vb_opts *o)
{
	const char *p = s, *last;
	cpu_set_t allowed;
	unsigned int bit = 0;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		p += 2;
	}
	if (*p == '\0') {
		return bad("cpumask", s, "expected a hex mask such as 0x1");
	}
	CPU_ZERO(&o->cpus);
	/* Walk hex digits from the least significant end. */
	for (last = p + strlen(p); last > p; last--) {
		char c = last[-1];
		unsigned int d, j;

		if (!isxdigit((unsigned char)c)) {
			return bad("cpumask", s, "expected a hex mask such as 0x1");
		}
		d = (unsigned int)(isdigit((unsigned char)c) ? c - '0' : tolower(c) - 'a' + 10);
		for (j = 0; j < 4; j++, bit++) {
			if (!(d & (1u << j))) {
				continue;
			}
			if (bit >= CPU_SETSIZE) {
				return bad("cpumask", s, "CPU number too large");
			}
			CPU_SET(bit, &o->cpus);
		}
	}
	o->ncpus = (unsigned int)CPU_COUNT(&o->cpus);
	if (o->ncpus == 0) {
		return bad("cpumask", s, "no CPU selected");
	}
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
		for (bit = 0; bit < CPU_SETSIZE; bit++) {
			if (CPU_ISSET(bit, &o->cpus) && !CPU_ISSET(bit, &allowed)) {
				fprintf(stderr,
				        "vhost-bench: bad --cpumask '%s': CPU %u is not available "
				        "to this process\n",
				        s, bit);
				return -1;
			}
		}
	}
	return 0;
}

static int
parse_rw(const char *s, struct vb_opts *o)
{
	unsigned int i;

	for (i = 0; i < sizeof(rw_names) / sizeof(rw_names[0]); i++) {
		if (strcmp(s, rw_names[i]) == 0) {
			o->rw = (enum vb_rw)i;
			return 0;
		}
	}
	return bad("rw", s, "expected read, write, randread, randwrite or randrw");
}

static void
defaults(struct vb_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->rw = VB_RW_READ;
	o->rwmixread = 50;
	o->bs = 4096;
	o->iodepth = 1;
	o->queues = 1;
	o->runtime = 10;
	o->seed = 0x5eed;
	o->timeout_ms = 10000;
	o->pattern_name = "lean";
}

/* "on"/"off" into *v. */
static int
parse_onoff(const char *opt, const char *s, bool *v)
{
	if (strcmp(s, "on") == 0 || strcmp(s, "off") == 0) {
		*v = s[1] == 'n';
		return 0;
	}
	return bad(opt, s, "expected on or off");
}

/* Ring-habit options: recorded with their VB_RP_* bit so the preset does not override them. */
static int
parse_ring(struct vb_opts *o, int c, const char *v)
{
	struct vb_ring_pattern *rp = &o->ring;
	unsigned int i;

	switch (c) {
	case OPT_EVENT_IDX:
		o->ring_set |= VB_RP_EVENT_IDX;
		return parse_onoff("event-idx", v, &rp->event_idx);
	case OPT_USED_EVENT:
		o->ring_set |= VB_RP_USED_EVENT;
		for (i = 0; i < sizeof(used_event_names) / sizeof(used_event_names[0]); i++) {
			if (strcmp(v, used_event_names[i]) == 0) {
				rp->used_event = (enum vb_used_event)i;
				return 0;
			}
		}
		return bad("used-event", v, "expected lazy, ahead or track");
	case OPT_INDIRECT:
		o->ring_set |= VB_RP_INDIRECT;
		return parse_onoff("indirect", v, &rp->indirect);
	case OPT_LAYOUT:
		o->ring_set |= VB_RP_LAYOUT;
		if (strcmp(v, "split") == 0 || strcmp(v, "merged") == 0) {
			rp->merged = v[0] == 'm';
			return 0;
		}
		return bad("layout", v, "expected split or merged");
	case OPT_KICK:
		o->ring_set |= VB_RP_KICK;
		if (strcmp(v, "batch") == 0 || strcmp(v, "request") == 0) {
			rp->kick_per_req = v[0] == 'r';
			return 0;
		}
		return bad("kick", v, "expected batch or request");
	case OPT_REWRITE:
		o->ring_set |= VB_RP_REWRITE;
		return parse_onoff("rewrite", v, &rp->rewrite);
	}
	return -1;
}

/* The preset, then every ring option given on the command line. */
static int
apply_pattern(struct vb_opts *o)
{
	struct vb_ring_pattern set = o->ring;

	if (vb_pattern_preset(o->pattern_name, &o->ring) < 0) {
		return bad("pattern", o->pattern_name, "expected lean, spdk, linux or dpdk");
	}
	if (o->ring_set & VB_RP_EVENT_IDX) {
		o->ring.event_idx = set.event_idx;
	}
	if (o->ring_set & VB_RP_USED_EVENT) {
		o->ring.used_event = set.used_event;
	}
	if (o->ring_set & VB_RP_INDIRECT) {
		o->ring.indirect = set.indirect;
	}
	if (o->ring_set & VB_RP_LAYOUT) {
		o->ring.merged = set.merged;
	}
	if (o->ring_set & VB_RP_KICK) {
		o->ring.kick_per_req = set.kick_per_req;
	}
	if (o->ring_set & VB_RP_REWRITE) {
		o->ring.rewrite = set.rewrite;
	}
	return 0;
}

/* One option with a value. Returns 0 or -1 (printed). */
static int
parse_one(struct vb_opts *o, int c, const char *v)
{
	uint64_t u;
	double d;

	switch (c) {
	case OPT_SOCKET:
		if (*v == '\0') {
			return bad("socket", v, "empty path");
		}
		o->socket = v;
		return 0;
	case OPT_RW:
		return parse_rw(v, o);
	case OPT_RWMIX:
		if (parse_uint(v, 0, 100, &u) < 0) {
			return bad("rwmixread", v, "expected a percentage 0..100");
		}
		o->rwmixread = (unsigned int)u;
		return 0;
	case OPT_BS:
		if (vb_parse_size(v, &u) < 0 || u < 512 || u > VB_MAX_BS || u % 512) {
			return bad("bs", v, "expected a multiple of 512 between 512 and 16m");
		}
		o->bs = (uint32_t)u;
		return 0;
	case OPT_IODEPTH:
		if (parse_uint(v, 1, VB_MAX_IODEPTH, &u) < 0) {
			return bad("iodepth", v, "expected 1..4096");
		}
		o->iodepth = (unsigned int)u;
		return 0;
	case OPT_QUEUES:
		if (parse_uint(v, 1, VB_MAX_QUEUES, &u) < 0) {
			return bad("queues", v, "expected 1..64");
		}
		o->queues = (unsigned int)u;
		return 0;
	case OPT_RUNTIME:
		if (parse_seconds(v, 0.001, &d) < 0) {
			return bad("runtime", v, "expected seconds > 0, e.g. 5 or 500ms");
		}
		o->runtime = d;
		return 0;
	case OPT_RAMP:
		if (parse_seconds(v, 0, &d) < 0) {
			return bad("ramp", v, "expected seconds >= 0");
		}
		o->ramp = d;
		return 0;
	case OPT_IDLE:
		if (parse_seconds(v, 0, &d) < 0) {
			return bad("idle", v, "expected seconds >= 0");
		}
		o->idle = d;
		return 0;
	case OPT_TIMEOUT:
		if (parse_seconds(v, 0.1, &d) < 0 || d > 3600) {
			return bad("timeout", v, "expected 0.1..3600 seconds");
		}
		o->timeout_ms = (int)(d * 1000);
		return 0;
	case OPT_SIZE:
		if (vb_parse_size(v, &u) < 0 || u == 0) {
			return bad("size", v, "expected a size such as 1g");
		}
		o->size = u;
		return 0;
	case OPT_NUMBER_IOS:
		if (parse_uint(v, 1, UINT64_MAX / 2, &u) < 0) {
			return bad("number_ios", v, "expected a count > 0");
		}
		o->number_ios = u;
		return 0;
	case OPT_THINKTIME:
		if (parse_uint(v, 0, 60000000, &u) < 0) {
			return bad("thinktime", v, "expected microseconds 0..60000000");
		}
		o->thinktime_us = u;
		return 0;
	case OPT_CPUMASK:
		return parse_cpumask(v, o);
	case OPT_SEED:
		if (parse_uint(v, 0, UINT64_MAX, &u) < 0) {
			return bad("seed", v, "expected an unsigned integer");
		}
		o->seed = u;
		return 0;
	case OPT_TARGET_PID:
		if (parse_uint(v, 1, 0x7fffffff, &u) < 0) {
			return bad("target-pid", v, "expected a process id");
		}
		o->target_pid = (pid_t)u;
		return 0;
	case OPT_PATTERN:
		o->pattern_name = v;
		return 0;
	case OPT_QUEUE_SIZE:
		if (parse_uint(v, 2, 32768, &u) < 0 || (u & (u - 1)) != 0) {
			return bad("queue-size", v, "expected a power of two 2..32768");
		}
		o->queue_size = (unsigned int)u;
		return 0;
	}
	return parse_ring(o, c, v);
}

/* Checks between options. */
static int
check(struct vb_opts *o)
{
	if (!o->socket) {
		fprintf(stderr, "vhost-bench: --socket PATH is required (see --help)\n");
		return -1;
	}
	if (apply_pattern(o) < 0) {
		return -1;
	}
	if (o->packed && (strcmp(o->pattern_name, "lean") != 0 ||
	                  (o->ring_set & ~(VB_RP_EVENT_IDX | VB_RP_INDIRECT | VB_RP_REWRITE)))) {
		fprintf(stderr, "vhost-bench: --packed drives the lean pattern only (--event-idx, "
		                "--indirect and --rewrite aside, the ring habits are split-ring "
		                "ones)\n");
		return -1;
	}
	if (o->size && o->size < (uint64_t)o->bs * o->queues) {
		fprintf(stderr,
		        "vhost-bench: bad --size: %llu bytes is less than --bs x --queues\n",
		        (unsigned long long)o->size);
		return -1;
	}
	return 0;
}

int
vb_parse_opts(struct vb_opts *o, int argc, char **argv)
{
	int c;

	defaults(o);
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
		if (c == OPT_HELP) {
			fputs(usage, stdout);
			return 1;
		}
		if (c == OPT_HUGE || c == OPT_INTERRUPT || c == OPT_VERIFY || c == OPT_JSON ||
		    c == OPT_NO_FLUSH || c == OPT_PACKED || c == OPT_INFLIGHT) {
			o->huge |= c == OPT_HUGE;
			o->interrupt |= c == OPT_INTERRUPT;
			o->no_flush |= c == OPT_NO_FLUSH;
			o->packed |= c == OPT_PACKED;
			o->inflight |= c == OPT_INFLIGHT;
			o->verify |= c == OPT_VERIFY;
			o->json |= c == OPT_JSON;
			continue;
		}
		if (c == ':') {
			fprintf(stderr, "vhost-bench: option '%s' needs a value (see --help)\n",
			        argv[optind - 1]);
			return -1;
		}
		if (c == '?') {
			fprintf(stderr, "vhost-bench: unknown option '%s' (see --help)\n",
			        argv[optind - 1]);
			return -1;
		}
		if (parse_one(o, c, optarg) < 0) {
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vhost-bench: unexpected argument '%s' (see --help)\n",
		        argv[optind]);
		return -1;
	}
	return check(o);
}
