/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Controllers and sessions (session.c), the vhost-user message table (msg.c) and the transport
 * (socket.c). Control thread only.
 *
 * Ownership (docs/design.md rules 7-11): a session and everything in it belong to the control
 * thread, except a started queue's reactor-owned fields (vring.h). The control thread changes
 * a queue's configuration, and the session's memory table, only while the queue is stopped (it
 * quiesces started queues first).
 */
#ifndef VH_VHOST_SESSION_H
#define VH_VHOST_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/evloop.h"
#include "core/msg.h"
#include "vhost/dirtylog.h"
#include "vhost/inflight.h"
#include "vhost/mem.h"
#include "vhost/protocol.h"
#include "vhost/stats.h"
#include "vhost/vhost.h"
#include "vhost/vring.h"

struct vh_dev_ops;

struct vh_vhost_ctrlr {
	char name[VH_NAME_MAX];
	char sock_path[108];
	const struct vh_dev_ops *ops; /* the device behind the protocol (device.h) */
	void *dev;                    /* its per-controller state, freed by ops->ctrlr_free */
	uint64_t cpumask;
	uint16_t num_queues;
	/*
	 * Packed rings must be recoverable (SPDK's packed_ring_recovery): a front-end whose
	 * inflight region cannot track them fails the ring's start instead of running it
	 * untracked (vring_packed.c). Set by the device when it creates the controller.
	 */
	bool packed_recovery;
	int listen_fd;
	struct vh_evsource *listen_src;
	/*
	 * Front-ends served at once: QEMU's live migration connects the destination while the
	 * source still runs. At VH_VHOST_MAX_SESSIONS the listening socket is not polled, so the
	 * next front-end waits in the backlog (never accepted and dropped: QEMU 7.2 wedges).
	 */
	struct vh_session *sessions[VH_VHOST_MAX_SESSIONS];
	unsigned nsessions;
	bool deleting;
	struct vh_vhost_ctrlr *next;
	uint64_t stat_connections;
	struct vh_vhost_qstats stat_closed; /* vhost/stats.c: sessions that are gone */
};

/* A handler returns 0, -errno, or VH_MSG_PENDING (it finishes later via vh_msg_complete). */
#define VH_MSG_PENDING 1

struct vh_session {
	struct vh_vhost_ctrlr *c;
	unsigned id; /* its slot in c->sessions[] */
	int fd;
	struct vh_evsource *src;
	int backend_fd;             /* BACKEND_REQ channel, or -1 */
	bool protocol_features_set; /* SET_PROTOCOL_FEATURES seen on this connection */
	bool closing;
	bool broken_reported;
	bool start_deferred; /* queue starts wait for a closing sibling session to drain */
	bool wait_sibling;   /* input waits for a closing sibling session to drain */
	uint64_t features;   /* acked virtio features */
	bool features_set;
	uint64_t protocol_features; /* acked protocol features */
	uint8_t status;             /* SET_STATUS */
	/*
	 * Live migration: the dirty log (SET_LOG_BASE; replaced only while no queue runs) and
	 * whether VHOST_F_LOG_ALL is acked (atomic: SET_FEATURES toggles it under running queues).
	 */
	struct vh_dlog log;
	int log_all;
	struct vh_dlog *pending_log; /* SET_LOG_BASE waiting for a quiesce */
	void *dev;                   /* the device's per-session state (ops->session_init) */
	struct vh_mem *mem;
	uint32_t nvqs; /* queues we accept indices for */
	struct vh_vq vqs[VH_VHOST_MAX_QUEUES];

	/* Message input state. */
	struct vhost_user_msg msg;
	uint32_t msg_got; /* bytes of msg received so far */
	int fds[VHOST_USER_MAX_FDS];
	unsigned nfds;
	bool fd_overflow; /* more than VHOST_USER_MAX_FDS arrived */
	bool paused;
	struct vh_mem *pending_mem; /* table waiting for a quiesce to finish */
	struct vh_inflight inflight;

	struct vh_msg_node free_node; /* control -> control: free once every queue stopped */

	/* Asynchronous operation in progress (quiesce for GET_VRING_BASE or memory changes). */
	unsigned pending_stops;
	unsigned pending_syncs;
	void (*op_done)(struct vh_session *s);
	struct vhost_user_msg op_msg;
	char prefix[VH_NAME_MAX + 8];
};

/*
 * msg.c: validate and dispatch the complete message in s->msg. Handlers take the fds they keep
 * (setting s->fds[i] to -1); the caller closes the rest.
 */
void vh_msg_dispatch(struct vh_session *s);
/* Finish a message whose handler returned VH_MSG_PENDING: ack (if asked) with @rc, resume. */
void vh_msg_complete(struct vh_session *s, int rc);
/* Name of a request code for logs. */
const char *vh_msg_name(uint32_t request);

/* socket.c */
int vh_sock_listen(struct vh_vhost_ctrlr *c);
void vh_sock_stop_listening(struct vh_vhost_ctrlr *c);
void vh_sock_resume_listening(struct vh_vhost_ctrlr *c);
/* Send a reply to the current message; @size bytes of payload. 0 or -errno. */
int vh_sock_reply(struct vh_session *s, const struct vhost_user_msg *req, const void *payload,
                  uint32_t size);
/* Same, with one fd attached (GET_INFLIGHT_FD). */
int vh_sock_reply_fd(struct vh_session *s, const struct vhost_user_msg *req, const void *payload,
                     uint32_t size, int fd);
int vh_sock_send_backend(struct vh_session *s, uint32_t request, const void *payload,
                         uint32_t size);
void vh_sock_pause(struct vh_session *s);
/* Start reading the connection (after accept, or at a live upgrade's commit). 0 or -errno. */
int vh_sock_watch(struct vh_session *s);
/* Close fds received with the current (partial) message. */
void vh_sock_close_fds(struct vh_session *s);
void vh_sock_resume(struct vh_session *s);

/* session.c */

/*
 * Create a controller of device @ops with device state @dev and start listening on
 * <socket_dir>/<name>. On success the controller owns @dev (ops->ctrlr_free releases it); on
 * failure the caller still does. @cpumask 0 means every reactor; @num_queues 0 the default.
 * Returns 0, -EINVAL (name, cpumask or queue count), -EEXIST, -ENAMETOOLONG, -EADDRINUSE,
 * or another -errno from socket setup.
 */
int vh_ctrlr_create(const char *name, uint64_t cpumask, uint16_t num_queues,
                    const struct vh_dev_ops *ops, void *dev, struct vh_vhost_ctrlr **out);
struct vh_session *vh_session_new(struct vh_vhost_ctrlr *c, int fd);
/*
 * A front-end was just accepted as @s: close siblings whose front-end already hung up, and
 * hold @s's input while a closing sibling's requests still complete (resumed when it is freed).
 */
void vh_session_accepted(struct vh_session *s);
/* Begin closing: stop rings (async), then free and let the controller listen again. */
void vh_session_close(struct vh_session *s, const char *why);
/* Stop every started queue, then run done(s). Input is paused meanwhile. */
void vh_session_quiesce(struct vh_session *s, void (*done)(struct vh_session *s));
/*
 * Run done(s) once every started queue's reactor (or only @only's) has passed a point after
 * this call: what the control thread changed before is visible to all their later work, and
 * what they did before is visible to done(). Input is paused meanwhile. Used when dirty
 * logging starts: QEMU's bulk RAM copy must not begin before every reactor logs.
 */
void vh_session_sync(struct vh_session *s, struct vh_vq *only, void (*done)(struct vh_session *s));
/* Stop one started queue, then run done(s). Input is paused meanwhile. */
void vh_session_stop_one(struct vh_session *s, struct vh_vq *vq,
                         void (*done)(struct vh_session *s));
/* Start every queue that is fully configured (after a quiesce or a kick). */
int vh_session_start_ready(struct vh_session *s);
/* Start one queue if it is fully configured. 0, or -errno if the start failed. */
int vh_session_try_start(struct vh_session *s, struct vh_vq *vq);
bool vh_session_any_started(const struct vh_session *s);
/*
 * Tell the front-end the device configuration changed (CONFIG_CHANGE_MSG on its back-end
 * channel), never waiting for it. 0, -ENOTCONN (no channel) or -errno (logged, rate limited).
 */
int vh_session_config_changed(struct vh_session *s);
/* "0x3"-style cpumask for JSON (vhost_get_controllers, save_config). New reference. */
json_t *vh_vhost_cpumask_json(uint64_t mask);
/* From a reactor: a queue saw a guest violation. */
void vh_session_report_broken(struct vh_session *s);

#endif
