/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfu-bench: a host-side initiator for vhostd's vfio-user NVMe controller, the counterpart of
 * vhost-bench for the native NVMe front-end. It plays QEMU's vfio-user client (tests/lib's
 * vfu_client: VERSION, DMA_MAP of memfd RAM, region and IRQ setup) and a lean NVMe driver: one
 * pinned thread, every I/O queue created with a fixed set of request slots whose buffers and
 * PRPs are built once; a completion is reaped and its slot resubmitted at once, with one
 * doorbell write per queue per batch. By default the CQs are created without interrupts (like
 * Linux's poll queues, and like vhost-bench's polling mode), so the target writes no eventfd;
 * --interrupt creates them with interrupts on (still polled here, the eventfds are counted).
 *
 *   vfu-bench --socket PATH [--rw randread|randwrite|read|write] [--bs 4k] [--iodepth 32]
 *             [--queues 1] [--runtime 5 | --number_ios N] [--nsid 1] [--cpu 0] [--idle SEC]
 *             [--interrupt] [--json]
 *
 * Exit status: 0 ok, 1 failure (connection, setup, I/O error), 2 bad option.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vfu_client.h"

#define MAX_Q     16
#define MAX_DEPTH 256
#define PAGE      4096u

struct opts {
	const char *sock;
	int rw; /* 0 read, 1 write */
	int rnd;
	uint32_t bs;
	unsigned depth, queues;
	double runtime;
	uint64_t number_ios;
	uint32_t nsid;
	int cpu;
	double idle;
	int interrupt;
	int json;
};

struct slot {
	struct vh_nvme_sqe cmd; /* built once; slba and cid change per submission */
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t g_rng = 88172645463325252ull;

static uint64_t
rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

static int
parse_size(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*end == 'k' || *end == 'K') {
		v *= 1024;
		end++;
	}
	if (*end != '\0' || v == 0 || v % 512 != 0 || v > 128 * 1024) {
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static int
usage(const char *why)
{
	fprintf(stderr,
	        "vfu-bench: %s\nusage: vfu-bench --socket PATH [--rw randread|randwrite|"
	        "read|write] [--bs 4k] [--iodepth N] [--queues N] [--runtime S | "
	        "--number_ios N] [--nsid N] [--cpu N] [--idle S] [--interrupt] [--json]\n",
	        why);
	return 2;
}

static int
parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {{"socket", 1, NULL, 's'},
	                                   {"rw", 1, NULL, 'w'},
	                                   {"bs", 1, NULL, 'b'},
	                                   {"iodepth", 1, NULL, 'q'},
	                                   {"queues", 1, NULL, 'Q'},
	                                   {"runtime", 1, NULL, 't'},
	                                   {"number_ios", 1, NULL, 'n'},
	                                   {"nsid", 1, NULL, 'N'},
	                                   {"cpu", 1, NULL, 'c'},
	                                   {"idle", 1, NULL, 'i'},
	                                   {"interrupt", 0, NULL, 'I'},
	                                   {"json", 0, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	int c;

	*o = (struct opts){
	        .rnd = 1, .bs = 4096, .depth = 32, .queues = 1, .runtime = 5, .nsid = 1, .cpu = -1};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			o->sock = optarg;
			break;
		case 'w':
			o->rnd = strncmp(optarg, "rand", 4) == 0;
			o->rw = strstr(optarg, "write") != NULL;
			if (strcmp(optarg + (o->rnd ? 4 : 0), o->rw ? "write" : "read") != 0) {
				return usage("--rw: randread, randwrite, read or write");
			}
			break;
		case 'b':
			if (parse_size(optarg, &o->bs) < 0) {
				return usage("--bs: a multiple of 512 up to 128k");
			}
			break;
		case 'q':
			o->depth = (unsigned)atoi(optarg);
			if (o->depth < 1 || o->depth > MAX_DEPTH) {
				return usage("--iodepth: 1..256");
			}
			break;
		case 'Q':
			o->queues = (unsigned)atoi(optarg);
			if (o->queues < 1 || o->queues > MAX_Q) {
				return usage("--queues: 1..16");
			}
			break;
		case 't':
			o->runtime = atof(optarg);
			break;
		case 'n':
			o->number_ios = strtoull(optarg, NULL, 0);
			break;
		case 'N':
			o->nsid = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'c':
			o->cpu = atoi(optarg);
			break;
		case 'i':
			o->idle = atof(optarg);
			break;
		case 'I':
			o->interrupt = 1;
			break;
		case 'j':
			o->json = 1;
			break;
		default:
			return usage("unknown option");
		}
	}
	return o->sock == NULL ? usage("--socket is required") : 0;
}

int
main(int argc, char **argv)
{
	static struct slot slots[MAX_Q + 1][MAX_DEPTH];
	struct vfu_client c;
	struct opts o;
	uint8_t idns[4096];
	uint64_t nblocks, nlb, done = 0, errors = 0, issued = 0, seq = 0, irqs = 0;
	uint32_t lbads;
	double t0, t1;
	int rc;

	rc = parse(argc, argv, &o);
	if (rc != 0) {
		return rc;
	}
	if (o.cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(o.cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	rc = vc_connect(&c, o.sock, 256ull << 20, 5000);
	if (rc == 0) {
		rc = vc_setup(&c, o.queues + 1);
	}
	if (rc == 0) {
		rc = vc_nvme_enable(&c, 32, 5000);
	}
	if (rc == 0 && vc_set_num_queues(&c, (uint16_t)o.queues, NULL) != 0) {
		rc = -EIO;
	}
	if (rc == 0 && vc_identify(&c, 0, o.nsid, idns) != 0) {
		rc = -ENODEV;
	}
	if (rc < 0) {
		fprintf(stderr, "vfu-bench: setup of %s failed: %s\n", o.sock, strerror(-rc));
		return 1;
	}
	memcpy(&nblocks, idns, 8);
	lbads = idns[128 + 2];
	if (nblocks == 0 || o.bs % (1u << lbads) != 0) {
		fprintf(stderr, "vfu-bench: namespace %u: %" PRIu64 " blocks of %u bytes\n", o.nsid,
		        nblocks, 1u << lbads);
		return 1;
	}
	nlb = o.bs >> lbads;
	for (unsigned q = 1; q <= o.queues; q++) {
		uint16_t size = (uint16_t)(o.depth + 1 < 32 ? 32 : o.depth + 1);

		if (vc_create_io_queue(&c, (uint16_t)q, size,
		                       o.interrupt ? (uint16_t)q : VC_NO_IRQ) != 0) {
			fprintf(stderr, "vfu-bench: cannot create queue %u\n", q);
			return 1;
		}
		for (unsigned d = 0; d < o.depth; d++) {
			struct vh_nvme_sqe *cmd = &slots[q][d].cmd;
			uint64_t iova = vc_alloc(&c, o.bs, PAGE, NULL);

			memset(cmd, 0, sizeof(*cmd));
			cmd->opc = o.rw ? VH_NVME_OPC_WRITE : VH_NVME_OPC_READ;
			cmd->nsid = o.nsid;
			cmd->cdw12 = (uint32_t)(nlb - 1);
			vc_build_prp(&c, cmd, iova, o.bs);
		}
	}
	if (o.idle > 0) {
		/* Connected, queues created, no I/O: what a target costs while nothing happens. */
		double end = now_s() + o.idle;

		while (now_s() < end) {
			usleep(10000);
		}
		vc_close(&c);
		return 0;
	}
	t0 = now_s();
	for (unsigned q = 1; q <= o.queues; q++) {
		for (unsigned d = 0; d < o.depth; d++) {
			if (o.number_ios && issued >= o.number_ios) {
				break;
			}
			struct vh_nvme_sqe *cmd = &slots[q][d].cmd;
			uint64_t lba =
			        o.rnd ? (rnd() % (nblocks / nlb)) * nlb : (seq++ * nlb) % nblocks;

			cmd->cdw10 = (uint32_t)lba;
			cmd->cdw11 = (uint32_t)(lba >> 32);
			c.q[q].next_cid = (uint16_t)d;
			vc_queue_cmd(&c, (uint16_t)q, cmd);
			issued++;
		}
		vc_ring(&c, (uint16_t)q);
	}
	for (;;) {
		bool stop = o.number_ios ? done >= o.number_ios : now_s() - t0 >= o.runtime;

		if (stop && done == issued) {
			break;
		}
		for (unsigned q = 1; q <= o.queues; q++) {
			struct vh_nvme_cqe e[64];
			int n = vc_reap(&c, (uint16_t)q, e, 64), resub = 0;

			for (int i = 0; i < n; i++) {
				struct vh_nvme_sqe *cmd;
				uint64_t lba;

				done++;
				if (e[i].status >> 1) {
					errors++;
				}
				if (stop || (o.number_ios && issued >= o.number_ios) ||
				    e[i].cid >= o.depth) {
					continue;
				}
				cmd = &slots[q][e[i].cid].cmd;
				lba = o.rnd ? (rnd() % (nblocks / nlb)) * nlb
				            : (seq++ * nlb) % nblocks;
				cmd->cdw10 = (uint32_t)lba;
				cmd->cdw11 = (uint32_t)(lba >> 32);
				c.q[q].next_cid = e[i].cid;
				vc_queue_cmd(&c, (uint16_t)q, cmd);
				issued++;
				resub++;
			}
			if (resub > 0) {
				vc_ring(&c, (uint16_t)q);
			}
		}
	}
	t1 = now_s();
	for (unsigned q = 1; q <= o.queues; q++) {
		irqs += vc_irq_count(&c, q);
	}
	vc_close(&c);
	if (o.json) {
		printf("{\"ios\": %" PRIu64 ", \"errors\": %" PRIu64
		       ", \"seconds\": %.3f, \"iops\": "
		       "%.0f, \"interrupts\": %" PRIu64 "}\n",
		       done, errors, t1 - t0, (double)done / (t1 - t0), irqs);
	} else {
		printf("vfu-bench: %" PRIu64 " I/Os (%" PRIu64 " errors) in %.2f s: %.0f IOPS, "
		       "%.1f MiB/s, %" PRIu64 " interrupts\n",
		       done, errors, t1 - t0, (double)done / (t1 - t0),
		       (double)done * o.bs / (t1 - t0) / 1048576.0, irqs);
	}
	return errors ? 1 : 0;
}
