/* SPDX-License-Identifier: BSD-3-Clause */
/* Shared by fuzz_rpc.c and fuzz_config.c: the RPC layer over tests/unit/rpc/stubs.c. */
#ifndef VH_FUZZ_RPC_COMMON_H
#define VH_FUZZ_RPC_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"
#include "../unit/rpc/stubs.h"

/* Every reply line the server queued must be one complete JSON-RPC 2.0 response. */
static inline void
fuzz_check_replies(const char *out, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(out + pos, '\n', len - pos);
		json_error_t jerr;
		json_t *r;

		if (nl == NULL) {
			fprintf(stderr, "reply not terminated by a newline\n");
			abort();
		}
		r = json_loadb(out + pos, (size_t)(nl - (out + pos)), 0, &jerr);
		if (r == NULL || (!json_is_object(r) && !json_is_array(r))) {
			fprintf(stderr, "reply is not a JSON object or array: %s\n", jerr.text);
			abort();
		}
		if (json_is_object(r) && !json_is_string(json_object_get(r, "jsonrpc")) &&
		    json_object_get(r, "id") == NULL) {
			abort();
		}
		json_decref(r);
		pos = (size_t)(nl - out) + 1;
	}
}

#endif
