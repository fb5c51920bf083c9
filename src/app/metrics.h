/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * `vhostd --metrics ADDR:PORT`: /metrics over HTTP in the Prometheus text format (0.0.4),
 * served by libmicrohttpd from its own thread.
 *
 * Rules:
 * - The HTTP thread never reads daemon state itself: for each scrape it asks the control thread
 *   (which owns the bdev and controller registries) to render the page, and waits for the
 *   answer with a deadline. The control thread reads the reactors' counters with relaxed loads,
 *   so no reactor ever waits for a scrape, and a wedged control thread costs a 503, not a hang.
 * - Start and stop run on the control thread.
 */
#ifndef VH_APP_METRICS_H
#define VH_APP_METRICS_H

#include <stddef.h>

/*
 * Parse "ADDR:PORT" ("127.0.0.1:9100", "[::1]:9100", or ":9100" for loopback) and start
 * serving. Port 0 picks a free one (logged). Returns 0, -EINVAL (bad address), -ENOTSUP (built
 * without libmicrohttpd) or -EADDRINUSE / another -errno when the socket cannot be bound.
 */
int vh_metrics_start(const char *addr_port);

/* Stop serving (scrapes in progress are answered 503). Safe if never started. */
void vh_metrics_stop(void);

/*
 * Render the whole page into a malloc'ed, NUL-terminated buffer (*len bytes). Control thread.
 * Returns NULL on ENOMEM. Used by the HTTP thread through a message, and by tests.
 */
char *vh_metrics_render(size_t *len);

#endif
