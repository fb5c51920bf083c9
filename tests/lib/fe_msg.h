/* SPDX-License-Identifier: BSD-3-Clause */
/* Transport helpers of the test front-end (private to tests/lib). */
#ifndef VH_TESTS_FE_MSG_H
#define VH_TESTS_FE_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "vu_wire.h"

/* CLOCK_MONOTONIC in milliseconds. */
int64_t fe_now_ms(void);
/* Connect, retrying ENOENT/ECONNREFUSED until timeout_ms. Returns the fd or -errno. */
int fe_connect_path(const char *path, int timeout_ms);
int fe_send(int sock, uint32_t request, uint32_t flags, uint32_t size, const void *payload,
            uint32_t payload_len, const int *fds, unsigned int nfds);
/* Same; with empty_cmsg and no fds, an empty SCM_RIGHTS control message rides along (DPDK). */
int fe_send_ex(int sock, uint32_t request, uint32_t flags, uint32_t size, const void *payload,
               uint32_t payload_len, const int *fds, unsigned int nfds, bool empty_cmsg);
/*
 * Receive a reply as SPDK/DPDK do: one recv for the header, one for the payload, -EPROTO if
 * either is short or the payload exceeds cap. Returns the payload size or -errno.
 */
int fe_recv_oneshot(int sock, struct vhost_user_header *hdr, void *payload, uint32_t cap,
                    int timeout_ms);
/* Returns the payload size or -errno; fds received are closed. */
int fe_recv(int sock, struct vhost_user_header *hdr, void *payload, uint32_t cap, int timeout_ms);
/* Same, but the first fd received is kept in *fd (-1 if none; closed again on failure). */
int fe_recv_fd(int sock, struct vhost_user_header *hdr, void *payload, uint32_t cap, int timeout_ms,
               int *fd);
/* Requests that always get a reply, whatever NEED_REPLY says. */
bool fe_request_has_reply(uint32_t request);

#endif
