/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-controller and per-queue counters (stats.h). The queues count on their reactors
 * (vring.c, blk.c); this file only reads, sums and formats, on the control thread.
 */
#include "core/util.h"
#include "vhost/session.h"
#include "vhost/stats.h"
#include "vhost/vring.h"

static void
queue_stats(const struct vh_vq *vq, struct vh_vhost_qstats *q)
{
	q->requests = VH_STAT_GET(vq->stat_requests);
	q->bytes = VH_STAT_GET(vq->stat_bytes);
	q->errors = VH_STAT_GET(vq->stat_errors);
	q->kicks = VH_STAT_GET(vq->stat_kicks_recv);
	q->interrupts = VH_STAT_GET(vq->stat_kicks_sent);
	q->inflight = VH_STAT_GET(vq->inflight);
}

static void
add(struct vh_vhost_qstats *to, const struct vh_vhost_qstats *q)
{
	to->requests += q->requests;
	to->bytes += q->bytes;
	to->errors += q->errors;
	to->kicks += q->kicks;
	to->interrupts += q->interrupts;
	to->inflight += q->inflight;
}

void
vh_vhost_ctrlr_stats(const struct vh_vhost_ctrlr *c, struct vh_vhost_qstats *out)
{
	*out = c->stat_closed;
	out->inflight = 0;
	/* Every live session: during a live migration the source and the destination. */
	for (unsigned k = 0; k < VH_VHOST_MAX_SESSIONS; k++) {
		const struct vh_session *s = c->sessions[k];

		for (uint32_t i = 0; s != NULL && i < s->nvqs; i++) {
			struct vh_vhost_qstats q;

			queue_stats(&s->vqs[i], &q);
			add(out, &q);
		}
	}
}

static json_t *
qstats_json(const struct vh_vhost_qstats *q)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "requests", (json_int_t)q->requests,
	                 "bytes", (json_int_t)q->bytes, "errors", (json_int_t)q->errors, "kicks",
	                 (json_int_t)q->kicks, "interrupts", (json_int_t)q->interrupts,
	                 "queue_depth", (json_int_t)q->inflight);
}

/* Append session @s's queues that were ever set up (a size was given) to @queues. */
static void
queues_json(const struct vh_session *s, json_t *queues)
{
	for (uint32_t i = 0; i < s->nvqs; i++) {
		const struct vh_vq *vq = &s->vqs[i];
		struct vh_vhost_qstats q;
		json_t *e;

		if (vq->size == 0 && VH_STAT_GET(vq->stat_requests) == 0) {
			continue;
		}
		queue_stats(vq, &q);
		e = qstats_json(&q);
		if (e == NULL) {
			continue;
		}
		json_object_set_new(e, "session", json_integer(s->id));
		json_object_set_new(e, "index", json_integer(i));
		json_object_set_new(e, "started", json_boolean(vq->started));
		if (vq->reactor != NULL) {
			json_object_set_new(e, "reactor",
			                    json_integer(vh_reactor_index(vq->reactor)));
		}
		json_array_append_new(queues, e);
	}
}

json_t *
vh_vhost_ctrlr_stats_json(const struct vh_vhost_ctrlr *c)
{
	struct vh_vhost_qstats tot;
	json_t *o, *queues;

	vh_vhost_ctrlr_stats(c, &tot);
	o = qstats_json(&tot);
	queues = json_array();
	if (o == NULL || queues == NULL) {
		json_decref(o);
		json_decref(queues);
		return NULL;
	}
	/* The live sessions' queues that were ever set up (a size was given). */
	for (unsigned k = 0; k < VH_VHOST_MAX_SESSIONS; k++) {
		if (c->sessions[k] != NULL) {
			queues_json(c->sessions[k], queues);
		}
	}
	json_object_set_new(o, "queues", queues);
	return o;
}

void
vh_vhost_stats_absorb(struct vh_session *s)
{
	struct vh_vhost_ctrlr *c = s->c;

	for (uint32_t i = 0; i < VH_VHOST_MAX_QUEUES; i++) {
		struct vh_vhost_qstats q;

		queue_stats(&s->vqs[i], &q);
		q.inflight = 0;
		add(&c->stat_closed, &q);
	}
}
