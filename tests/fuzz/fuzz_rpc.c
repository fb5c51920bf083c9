/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz target: the JSON-RPC framer, parser and dispatcher (src/rpc/server.c stream engine,
 * rpc.c, the method tables) against the dry-run bdev/vhost doubles of tests/unit/rpc/stubs.c.
 *
 * Input: byte 0 chooses how the rest is cut into reads (1..256 bytes per feed, so requests
 * arrive split at every possible point, as over a socket); the rest is the byte stream.
 *
 * Checked: no sanitizer report; every reply is a complete JSON line; the stream engine never
 * holds more input than its limit; a fatal framing error stops processing.
 */
#include "fuzz_rpc_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vh_rpc_stream st;
	size_t chunk, off = 1;

	if (size < 1) {
		return -1;
	}
	chunk = (size_t)data[0] + 1;
	stub_reset();
	vh_rpc_stream_init(&st);
	while (off < size && !st.close_after_flush) {
		size_t n = size - off < chunk ? size - off : chunk;

		if (vh_rpc_stream_feed(&st, data + off, n) < 0) {
			vh_rpc_stream_queue_error(&st, VH_RPC_INVALID_REQUEST, "too big");
			break;
		}
		off += n;
		vh_rpc_stream_process(&st);
		if (st.in.len > VH_RPC_MAX_REQUEST + VH_RPC_READ_CHUNK) {
			abort();
		}
		/* The client reads everything we queued. */
		if (vh_rpc_stream_out_pending(&st) > 0) {
			fuzz_check_replies(st.out.data + st.out_off,
			                   vh_rpc_stream_out_pending(&st));
			vh_rpc_stream_out_consume(&st, vh_rpc_stream_out_pending(&st));
		}
	}
	vh_rpc_stream_fini(&st);
	return 0;
}
