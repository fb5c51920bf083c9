/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private to src/rpc: limits, error helpers, the method table, the parameter decoder, and the
 * socket-free protocol engine (framer + stream) that server.c drives and the unit tests feed.
 *
 * Rules:
 * - Everything here runs on the control thread (the RPC server lives on its epoll loop, and
 *   method handlers call the bdev/vhost registries, which are control-thread only).
 * - Handlers are synchronous: they return the result or fill in an error before returning.
 * - Every value read from a request is untrusted: types and ranges are checked by
 *   vh_rpc_decode_params() before a handler looks at them, and unknown keys are refused.
 */
#ifndef VH_RPC_INTERNAL_H
#define VH_RPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core/util.h"

/* Limits, documented in docs/rpc.md ("Limits"). */
#define VH_RPC_MAX_REQUEST        (1024u * 1024u) /* bytes of one request (or batch) */
#define VH_RPC_MAX_CLIENTS        128             /* connected clients */
#define VH_RPC_MAX_DEPTH          64              /* nesting of arrays/objects in a request */
#define VH_RPC_MAX_ID_LEN         128             /* bytes of a string "id" */
#define VH_RPC_MAX_BATCH          128             /* requests in one batch array */
#define VH_RPC_OUT_HIGH_WATER     (1024u * 1024u) /* queued reply bytes before we stop parsing */
#define VH_RPC_READ_CHUNK         65536u          /* bytes read per readiness event */
#define VH_RPC_REQUEST_TIMEOUT_NS (30ull * 1000000000ull)  /* to finish a started request */
#define VH_RPC_IDLE_TIMEOUT_NS    (600ull * 1000000000ull) /* idle client with nothing pending */
#define VH_RPC_WRITE_TIMEOUT_NS   (30ull * 1000000000ull)  /* client not reading its replies */
#define VH_RPC_SWEEP_NS           (1000000000ull)          /* timeout check period */
#define VH_RPC_MAX_CONFIG_FILE    (64u * 1024u * 1024u)    /* bytes of a config file */

/* JSON-RPC 2.0 error codes (spec section 5.1). */
enum vh_rpc_code {
	VH_RPC_PARSE_ERROR = -32700,
	VH_RPC_INVALID_REQUEST = -32600,
	VH_RPC_METHOD_NOT_FOUND = -32601,
	VH_RPC_INVALID_PARAMS = -32602,
	VH_RPC_INTERNAL_ERROR = -32603,
};

struct vh_rpc_error {
	int code; /* enum vh_rpc_code; 0 = no error */
	char msg[256];
};

/* Fill @err with @code and a printf-style message (truncated to fit). */
void vh_rpc_error_set(struct vh_rpc_error *err, int code, const char *fmt, ...) VH_PRINTF(3, 4);

/*
 * Fill @err for a -errno @rc from a lower layer that the handler did not map more precisely:
 * "<what>: <strerror>". Caller-side mistakes (EINVAL, ENODEV, EEXIST, EBUSY, ENOENT,
 * ENAMETOOLONG, ERANGE, ENOTSUP) become -32602, everything else -32603.
 */
void vh_rpc_error_errno(struct vh_rpc_error *err, int rc, const char *what);

/*
 * A method handler. @params is the request's "params" (an object or array) or NULL when absent.
 * Returns the result (a new reference) or NULL after filling in @err. Control thread.
 */
typedef json_t *(*vh_rpc_handler)(const json_t *params, struct vh_rpc_error *err);

#define VH_RPC_F_ALIAS   0x1u /* deprecated name kept for old scripts; hidden by rpc_get_methods */
#define VH_RPC_F_PERSIST 0x2u /* changes state: the --config file is rewritten after success */

struct vh_rpc_method {
	const char *name;
	vh_rpc_handler handler;
	uint32_t flags; /* VH_RPC_F_* */
};

/* The per-file tables, concatenated by rpc.c in this order. */
extern const struct vh_rpc_method vh_rpc_bdev_methods[];
extern const size_t vh_rpc_bdev_methods_count;
extern const struct vh_rpc_method vh_rpc_iostat_methods[];
extern const size_t vh_rpc_iostat_methods_count;
extern const struct vh_rpc_method vh_rpc_file_methods[];
extern const size_t vh_rpc_file_methods_count;
extern const struct vh_rpc_method vh_rpc_nvme_methods[];
extern const size_t vh_rpc_nvme_methods_count;
/* methods_options.c: SPDK's global tuning methods, accepted for save_config compatibility. */
extern const struct vh_rpc_method vh_rpc_options_methods[];
extern const size_t vh_rpc_options_methods_count;
extern const struct vh_rpc_method vh_rpc_vhost_methods[];
extern const size_t vh_rpc_vhost_methods_count;
extern const struct vh_rpc_method vh_rpc_app_methods[];
extern const size_t vh_rpc_app_methods_count;
extern const struct vh_rpc_method vh_rpc_rbd_methods[];
extern const size_t vh_rpc_rbd_methods_count;
/* methods_rbd.c: append the Ceph cluster registrations to save_config's bdev list (first). */
int vh_rpc_rbd_config(json_t *config);

/*
 * methods_iostat.c: append a bdev_set_qos_limit entry per rate-limited bdev to @config (the
 * bdev subsystem's save_config array), and bdev_get_bdevs' "assigned_rate_limits" of @b.
 * Control thread. Returns 0 or -ENOMEM; the object is a new reference or NULL.
 */
struct vh_bdev;
int vh_rpc_bdev_qos_config(json_t *config);
json_t *vh_rpc_bdev_rate_limits_json(const struct vh_bdev *b);

extern const struct vh_rpc_method vh_rpc_vfu_methods[];
extern const size_t vh_rpc_vfu_methods_count;
/* methods_vfu.c: save_config's "vfio_user" subsystem entries. Returns 0 or -ENOMEM. */
int vh_rpc_vfu_config(json_t *config);

/* persist.c: while suspended (config replay), state changes do not rewrite the config file. */
void vh_rpc_persist_suspend(bool suspend);
/* After a successful VH_RPC_F_PERSIST method: save, or turn *result into an error. */
void vh_rpc_persist_after(const char *method, json_t **result, struct vh_rpc_error *err);
/*
 * Whether the config file at @path, opened and fstat'ed as @st, may be replayed: it must be owned
 * by our effective uid or root and not writable by everyone, and if @path is a symlink, the link
 * must be ours or root's too. Logs one line naming the file and returns -EPERM if not; 0 if so.
 * Control thread.
 */
int vh_rpc_config_trusted(const char *path, const struct stat *st);

/* Look a method up by name. NULL if unknown. */
const struct vh_rpc_method *vh_rpc_method_find(const char *name);

/*
 * Call fn for every method in table order; stops when fn returns non-zero and returns that.
 */
int vh_rpc_method_foreach(int (*fn)(const struct vh_rpc_method *m, void *arg), void *arg);

/*
 * Run @method with @params (may be NULL) as if it came from a client. Returns the result (new
 * reference) or NULL with @err filled in (-32601 for an unknown method). Control thread.
 */
json_t *vh_rpc_call(const char *method, const json_t *params, struct vh_rpc_error *err);

/*
 * Handle one decoded JSON-RPC message: a request object or a batch array. Returns the reply to
 * send (new reference: an object, or an array for a batch), or NULL when nothing is to be sent
 * (notifications only). Never fails: malformed messages get error replies. Never waits.
 */
json_t *vh_rpc_handle(const json_t *msg);

/*
 * Waiting (SPDK's bdev_get_bdevs "timeout": wait for a bdev to appear). Handlers never block;
 * a handler that would wait calls vh_rpc_wait(), and the stream keeps the request and runs it
 * again after other clients' requests and at the deadline.
 *
 * vh_rpc_handle_wait(): like vh_rpc_handle(), for a request first run at @since_ns
 * (vh_now_ns()). When its handler waits, returns NULL with *@waiting true and *@deadline_ns the
 * time to run it again at the latest; the caller keeps @msg. Batches never wait.
 *
 * vh_rpc_wait(): in a handler, ask to be run again within @timeout_ms of the request's first
 * run. Returns true (the handler then returns NULL at once) if the request may still wait, false
 * when it may not (its time is up, or it came from a batch or a config file): then the handler
 * gives its final answer.
 */
json_t *vh_rpc_handle_wait(const json_t *msg, uint64_t since_ns, bool *waiting,
                           uint64_t *deadline_ns);
bool vh_rpc_wait(uint64_t timeout_ms, struct vh_rpc_error *err);
/* When the request being handled first ran (vh_now_ns()), or 0 if it may not wait. */
uint64_t vh_rpc_wait_origin(void);
/* server.c: run every waiting request again now. */
void vh_rpc_server_wake(void);

/* Build {"jsonrpc": "2.0", "id": id|null, "error": {...}}. New reference, NULL on ENOMEM. */
json_t *vh_rpc_error_reply(const json_t *id, const struct vh_rpc_error *err);

/*
 * Parameter decoding. A spec is an array of vh_rpc_param; each names a key, its JSON type and
 * where to store it in the caller's struct (offsetof). Optional keys that are absent leave the
 * caller's default untouched. Strings point into @params and live as long as it does.
 */
enum vh_rpc_type {
	VH_RPC_T_STRING, /* const char * */
	VH_RPC_T_BOOL,   /* bool */
	VH_RPC_T_U64,    /* uint64_t, 0..INT64_MAX (jansson's integer range) */
	VH_RPC_T_U32,    /* uint32_t */
	VH_RPC_T_U16,    /* uint16_t */
	VH_RPC_T_I32,    /* int32_t (SPDK's "-1 = pick one" numbers) */
};

#define VH_RPC_P_REQUIRED 0x1u
/*
 * An SPDK parameter for a feature vhostd does not have. SPDK's clients send some of these with
 * their default value on every call, so the key is accepted when its value is the neutral one
 * (false for booleans, @neutral for integers; no string is neutral) and refused otherwise with
 * "parameter 'K' is not supported: <why> (only <neutral>)". Nothing is stored; @offset is unused.
 */
#define VH_RPC_P_UNSUPPORTED 0x2u

struct vh_rpc_param {
	const char *name;
	enum vh_rpc_type type;
	uint32_t flags;    /* VH_RPC_P_* */
	size_t offset;     /* of the destination in the output struct */
	long long neutral; /* VH_RPC_P_UNSUPPORTED integers: the only accepted value */
	const char *why;   /* VH_RPC_P_UNSUPPORTED: why a non-neutral value cannot be honoured */
};

/* A VH_RPC_P_UNSUPPORTED entry: SPDK's @key, accepted only at its neutral value. */
#define VH_RPC_UNSUP_BOOL(key, reason)                                                             \
	{                                                                                          \
		key, VH_RPC_T_BOOL, VH_RPC_P_UNSUPPORTED, 0, 0, reason                             \
	}
#define VH_RPC_UNSUP_INT(key, neutral_value, reason)                                               \
	{                                                                                          \
		key, VH_RPC_T_U32, VH_RPC_P_UNSUPPORTED, 0, neutral_value, reason                  \
	}
#define VH_RPC_UNSUP_STRING(key, reason)                                                           \
	{                                                                                          \
		key, VH_RPC_T_STRING, VH_RPC_P_UNSUPPORTED, 0, 0, reason                           \
	}

/*
 * Decode @params (NULL, or an object) into @out following @spec[0..n). Fails with -32602 and a
 * message naming the key for: params not an object, a missing required key, an unknown key, a
 * wrong JSON type, an out-of-range integer or an empty string. Returns 0 or -EINVAL (with @err
 * filled in).
 */
int vh_rpc_decode_params(const json_t *params, const struct vh_rpc_param *spec, size_t n, void *out,
                         struct vh_rpc_error *err);

/*
 * Framing: find complete top-level JSON values in a byte stream without parsing them, so a
 * request trickling in one byte at a time costs O(n) overall, and nesting depth is bounded before
 * jansson (which recurses) ever sees the text. Values may be back to back with no delimiter
 * (SPDK's rpc.py) or separated by whitespace/newlines. Only objects and arrays are accepted at top
 * level, which is all JSON-RPC allows.
 */
struct vh_rpc_framer {
	size_t pos;     /* next byte to scan */
	size_t start;   /* first byte of the value being scanned (valid when started) */
	unsigned depth; /* open brackets */
	bool started;
	bool in_str;
	bool esc;
};

void vh_rpc_framer_reset(struct vh_rpc_framer *f);

/*
 * Scan @buf[0..len) (the same bytes as the previous call, possibly with more appended). Returns
 * 1 with [*start, *end) the next complete value, 0 if more bytes are needed, -EBADMSG if the
 * stream cannot be JSON-RPC (a top-level value that is not an object or array, a stray closing
 * bracket), -ERANGE if nesting exceeds VH_RPC_MAX_DEPTH, or -EMSGSIZE if the value exceeds
 * VH_RPC_MAX_REQUEST bytes. After an error the stream cannot be resynchronised.
 */
int vh_rpc_framer_next(struct vh_rpc_framer *f, const char *buf, size_t len, size_t *start,
                       size_t *end);

/* Bytes before the current value (or all scanned bytes when idle) that may be discarded. */
size_t vh_rpc_framer_consumed(const struct vh_rpc_framer *f);

/* Bytes @n were removed from the front of the buffer. */
void vh_rpc_framer_shift(struct vh_rpc_framer *f, size_t n);

/* True while a value has started but not ended. */
bool vh_rpc_framer_partial(const struct vh_rpc_framer *f);

struct vh_rpc_buf {
	char *data;
	size_t len;
	size_t cap;
};

/*
 * One client's protocol state, independent of the socket: bytes in, replies out.
 */
struct vh_rpc_stream {
	struct vh_rpc_buf in;
	struct vh_rpc_buf out;
	size_t out_off; /* bytes of out already sent */
	struct vh_rpc_framer fr;
	bool close_after_flush; /* a fatal framing error: send what is queued, then close */
	uint64_t requests;      /* messages handled (for tests and debug logs) */
	json_t *waiting;        /* a request whose handler waits (vh_rpc_wait), or NULL */
	uint64_t wait_since_ns; /* when it first ran */
	uint64_t wait_until_ns; /* when to run it again at the latest */
};

void vh_rpc_stream_init(struct vh_rpc_stream *s);
void vh_rpc_stream_fini(struct vh_rpc_stream *s);

/*
 * Append received bytes. Returns 0, -ENOMEM, or -EMSGSIZE when the unprocessed input would exceed
 * VH_RPC_MAX_REQUEST + VH_RPC_READ_CHUNK (then the caller should queue an error and close).
 */
int vh_rpc_stream_feed(struct vh_rpc_stream *s, const void *data, size_t len);

/*
 * Handle every complete request in the input, appending replies to the output, until the input
 * runs out, a fatal framing error (which queues an error reply and sets close_after_flush), more
 * than VH_RPC_OUT_HIGH_WATER bytes of replies are waiting, or a request waits (s->waiting; the
 * requests after it wait behind it, so replies stay in order). A waiting request is run again
 * first. Returns the number of messages answered.
 */
unsigned vh_rpc_stream_process(struct vh_rpc_stream *s);

/* Queue an error reply with a null id (used for fatal conditions). Returns 0 or -ENOMEM. */
int vh_rpc_stream_queue_error(struct vh_rpc_stream *s, int code, const char *msg);

/* Bytes of reply waiting to be sent. */
size_t vh_rpc_stream_out_pending(const struct vh_rpc_stream *s);

/* Mark @n bytes of output as sent. */
void vh_rpc_stream_out_consume(struct vh_rpc_stream *s, size_t n);

#endif
