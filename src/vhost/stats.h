/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-controller and per-queue counters (vhost_get_controllers' "stats", the metrics
 * endpoint's per-controller series).
 *
 * Rules: everything here runs on the control thread, which owns controllers and sessions, so
 * nothing read here can be freed meanwhile. A queue's counters are written by its reactor only
 * (VH_STAT_ADD) and read with relaxed loads: a reader never makes a reactor wait. When a session
 * goes away its counts move into its controller's totals, so the controller's counters only grow.
 */
#ifndef VH_VHOST_STATS_H
#define VH_VHOST_STATS_H

#include <stdint.h>

#include <jansson.h>

struct vh_vhost_ctrlr;
struct vh_session;

struct vh_vhost_qstats {
	uint64_t requests;   /* fetched from the avail ring */
	uint64_t bytes;      /* data read or written by them */
	uint64_t errors;     /* answered with an error status */
	uint64_t kicks;      /* guest notifications that woke the reactor */
	uint64_t interrupts; /* call eventfd signals sent */
	uint64_t inflight;   /* queue depth right now */
};

/* Totals of controller @c (sessions gone plus the live one's queues). Control thread. */
void vh_vhost_ctrlr_stats(const struct vh_vhost_ctrlr *c, struct vh_vhost_qstats *out);
/* vhost_get_controllers' "stats": totals and, while connected, "queues". New reference. */
json_t *vh_vhost_ctrlr_stats_json(const struct vh_vhost_ctrlr *c);
/* Session @s is being freed (its queues stopped): keep its counts in its controller's. */
void vh_vhost_stats_absorb(struct vh_session *s);

#endif
