#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write the seed corpora of the fuzz targets to tests/fuzz/corpus/<target>/.

The seeds are small, valid (or nearly valid) inputs in each harness's input format, so the
fuzzer starts from requests that reach deep into the code. Re-run after changing a format:
    tests/fuzz/make-corpus.py [OUTDIR]
"""
import json
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")

NEXT, WRITE, INDIRECT = 1, 2, 4


def save(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- fuzz_vring: hdr, desc[size], avail[size], blob at gpa 0x13000 ------------------------
A, BLOB = 0x10000, 0x13000
HDR, DATA, STATUS, ITAB, SEG = 0x13000, 0x14000, 0x15000, 0x16000, 0x17000


def desc(addr, ln, flags, nxt=0):
    return struct.pack("<QIHH", addr, ln, flags, nxt)


def vring(flags, qlog, descs, heads, blob_parts, base=0, used=0):
    size = 1 << qlog
    table = b"".join(descs).ljust(16 * size, b"\0")
    ring = b"".join(struct.pack("<H", h) for h in heads).ljust(2 * size, b"\0")
    blob = bytearray(0x5000)
    for gpa, data in blob_parts:
        blob[gpa - BLOB:gpa - BLOB + len(data)] = data
    hdr = struct.pack("<BBHHH", flags, qlog, (base + len(heads)) & 0xffff, base, used)
    return hdr + table + ring + bytes(blob).rstrip(b"\0")


def outhdr(t, sector=0):
    return struct.pack("<IIQ", t, 0, sector)


rd = [desc(HDR, 16, NEXT, 1), desc(DATA, 512, WRITE | NEXT, 2), desc(STATUS, 1, WRITE)]
wr = [desc(HDR, 16, NEXT, 1), desc(DATA, 4096, NEXT, 2), desc(STATUS, 1, WRITE)]
save("fuzz_vring", "read", vring(0, 4, rd, [0], [(HDR, outhdr(0, 8))]))
save("fuzz_vring", "write", vring(0, 4, wr, [0], [(HDR, outhdr(1, 16))]))
save("fuzz_vring", "write-ro", vring(0x04, 4, wr, [0], [(HDR, outhdr(1, 16))]))
save("fuzz_vring", "flush", vring(0, 3, [desc(HDR, 16, NEXT, 1), desc(STATUS, 1, WRITE)], [0],
                                  [(HDR, outhdr(4))]))
save("fuzz_vring", "get-id", vring(0, 3, [desc(HDR, 16, NEXT, 1), desc(DATA, 20, WRITE | NEXT, 2),
                                          desc(STATUS, 1, WRITE)], [0], [(HDR, outhdr(8))]))
seg = struct.pack("<QII", 8, 8, 0)
save("fuzz_vring", "discard", vring(0x20, 3, [desc(HDR, 16, NEXT, 1), desc(SEG, 16, NEXT, 2),
                                             desc(STATUS, 1, WRITE)], [0],
                                    [(HDR, outhdr(11)), (SEG, seg)]))
save("fuzz_vring", "write-zeroes", vring(0x20, 3, [desc(HDR, 16, NEXT, 1), desc(SEG, 16, NEXT, 2),
                                                  desc(STATUS, 1, WRITE)], [0],
                                         [(HDR, outhdr(13)), (SEG, struct.pack("<QII", 0, 8, 1))]))
itab = desc(HDR, 16, NEXT, 1) + desc(DATA, 1024, WRITE | NEXT, 2) + desc(STATUS, 1, WRITE)
save("fuzz_vring", "indirect", vring(0x01, 4, [desc(ITAB, 48, INDIRECT)], [0],
                                     [(HDR, outhdr(0)), (ITAB, itab)]))
# A data buffer straddling regions A and B (GPA-adjacent), and one in region C.
save("fuzz_vring", "straddle", vring(0, 4, [desc(HDR, 16, NEXT, 1), desc(0x1ff00, 0x200, WRITE | NEXT, 2),
                                            desc(0x100000, 1, WRITE)], [0], [(HDR, outhdr(0))]))
batch = [desc(HDR, 16, NEXT, 1), desc(DATA, 512, WRITE | NEXT, 2), desc(STATUS, 1, WRITE),
         desc(HDR + 16, 16, NEXT, 4), desc(DATA + 512, 512, NEXT, 5), desc(STATUS + 1, 1, WRITE),
         desc(HDR + 32, 16, NEXT, 7), desc(STATUS + 2, 1, WRITE)]
save("fuzz_vring", "batch-evidx", vring(0x02 | 0x08, 4, batch, [0, 3, 6],
                                        [(HDR, outhdr(0) + outhdr(1, 2) + outhdr(4))], base=65534,
                                        used=65534))
save("fuzz_vring", "loop", vring(0, 2, [desc(HDR, 16, NEXT, 1), desc(DATA, 16, NEXT, 0)], [0], []))

# ---- fuzz_scsi: hdr (9 bytes: fuzz_vring's + queue), desc[size], avail[size], blob --------
S_REQ, S_RESP, S_DATA, S_OUT = 0x13000, 0x13100, 0x14000, 0x16000
F_IND, F_EVIDX, F_REMOVE, F_EAGAIN, F_EIO, F_PLAIN, F_HOTPLUG = 1, 2, 4, 8, 16, 32, 64


def scsi(flags, qlog, queue, descs, heads, parts, base=0, used=0):
    size = 1 << qlog
    table = b"".join(descs).ljust(16 * size, b"\0")
    ring = b"".join(struct.pack("<H", h) for h in heads).ljust(2 * size, b"\0")
    blob = bytearray(0x5000)
    for gpa, data in parts:
        blob[gpa - BLOB:gpa - BLOB + len(data)] = data
    hdr = struct.pack("<BBHHHB", flags, qlog, (base + len(heads)) & 0xffff, base, used, queue)
    return hdr + table + ring + bytes(blob).rstrip(b"\0")


def cmdreq(target, cdb, lun=0):
    lunf = bytes([1, target, 0x40 | (lun >> 8), lun & 0xff, 0, 0, 0, 0])
    return lunf + struct.pack("<QBBB", 7, 0, 0, 0) + bytes(cdb).ljust(32, b"\0")


def data_in(n):
    return [desc(S_REQ, 51, NEXT, 1), desc(S_RESP, 108, WRITE | NEXT, 2),
            desc(S_DATA, n, WRITE)]


def data_out(n):
    return [desc(S_REQ, 51, NEXT, 1), desc(S_OUT, n, NEXT, 2), desc(S_RESP, 108, WRITE)]


def rq(name, target, cdb, descs, flags=0, extra=(), lun=0):
    save("fuzz_scsi", name, scsi(flags, 3, 2, descs, [0], [(S_REQ, cmdreq(target, cdb, lun))]
                                 + list(extra)))


rq("inquiry", 0, [0x12, 0, 0, 0, 255, 0], data_in(255))
rq("vpd-83", 3, [0x12, 1, 0x83, 0, 255, 0], data_in(255))
rq("mode-sense-all", 0, [0x5a, 0x10, 0x3f, 0, 0, 0, 0, 1, 0, 0], data_in(256))
rq("read-cap-16", 3, [0x9e, 0x10] + [0] * 11 + [32, 0, 0], data_in(32))
rq("report-luns", 0, [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], data_in(256))
rq("read-6", 0, [0x08, 0, 0, 8, 0, 0], data_in(0x2000))  # 0 = 256 blocks: an overrun
rq("read-10", 0, [0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0], data_in(4096))
rq("write-16-fua", 3, [0x8a, 0x08] + [0] * 7 + [4, 0, 0, 0, 1, 0, 0], data_out(4096))
rq("read-removed", 0, [0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0], data_in(4096), flags=F_REMOVE | F_EAGAIN)
rq("missing-target", 1, [0x00] * 6, data_in(16))
rq("missing-lun", 0, [0x00] * 6, data_in(16), lun=9)
unmap = struct.pack(">HH4xQI4x", 22, 16, 8, 16)
rq("unmap", 0, [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], data_out(24), extra=[(S_OUT, unmap)])
rq("write-same-pattern", 0, [0x41, 0, 0, 0, 0, 16, 0, 0, 40, 0], data_out(512),
   extra=[(S_OUT, bytes(range(256)) * 2)])
rq("write-same-unmap", 0, [0x93, 0x08] + [0] * 7 + [16, 0, 0, 0, 8, 0, 0], data_out(512))
rq("write-same-plain", 0, [0x93, 0x01] + [0] * 7 + [16, 0, 0, 0, 200, 0, 0], data_in(1),
   flags=F_PLAIN)
tmf = struct.pack("<II", 0, 5) + bytes([1, 0, 0x40, 0, 0, 0, 0, 0]) + struct.pack("<Q", 0)
save("fuzz_scsi", "tmf-lun-reset", scsi(0, 2, 0, [desc(S_REQ, 24, NEXT, 1),
                                                  desc(S_RESP, 1, WRITE)], [0], [(S_REQ, tmf)]))
an = struct.pack("<I", 1) + bytes([1, 0, 0x40, 0, 0, 0, 0, 0]) + struct.pack("<I", 0xff)
save("fuzz_scsi", "an-query", scsi(0, 2, 0, [desc(S_REQ, 16, NEXT, 1), desc(S_RESP, 5, WRITE)],
                                   [0], [(S_REQ, an)]))
evts = [desc(S_DATA + 16 * i, 16, WRITE) for i in range(4)]
save("fuzz_scsi", "events", scsi(F_HOTPLUG | F_REMOVE | F_EVIDX, 3, 1, evts, [0, 1, 2, 3], []))


# ---- fuzz_vring_packed: hdr (8 bytes), ring[size], driver event (4), [region], blob ------------
P_AVAIL, P_USED = 1 << 7, 1 << 15
F_PK_INFLIGHT = 0x80


def pdesc(addr, ln, flags, pid, wrap=True):
    return struct.pack("<QIHH", addr, ln, pid, flags | (P_AVAIL if wrap else P_USED))


def pk_region(size, chains=()):
    """A packed inflight region: version 1, chains [(entries, id, counter, descs)] in flight."""
    held = {e for entries, _, _, _ in chains for e in entries}
    free = [e for e in range(size) if e not in held]
    nxt = list(range(1, size + 1))
    for a, b in zip(free, free[1:]):
        nxt[a] = b
    if free:
        nxt[free[-1]] = size
    ent = [[0, 0, 0, 0, 0, 0, 0, 0] for _ in range(size)]  # inflight next last num counter id flags len/addr
    for entries, pid, counter, descs in chains:
        for i, e in enumerate(entries):
            if i + 1 < len(entries):
                nxt[e] = entries[i + 1]
        h = entries[0]
        ent[h][0], ent[h][2], ent[h][3], ent[h][4] = 1, entries[-1], len(entries), counter
        for e, (addr, ln, flags) in zip(entries, descs):
            ent[e][5], ent[e][6], ent[e][7] = (pid if e == entries[-1] else 0), flags, (ln, addr)
    head = free[0] if free else size
    hdr = struct.pack("<QHHHHHHBB10x", 0, 1, size, head, head, 0, 0, 1, 1)
    body = b"".join(struct.pack("<BxHHHQHHIQ", e[0], nxt[i], e[2], e[3], e[4], e[5], e[6],
                                e[7][0] if e[7] else 0, e[7][1] if e[7] else 0)
                    for i, e in enumerate(ent))
    stride = (32 + 32 * size + 63) & ~63
    return (hdr + body).ljust(stride, b"\0")


def pvring(flags, qlog, ring, blob_parts, base=0, crash=0, recovery=0, region=None,
           driver=b"\1\0\0\0"):
    size = 1 << qlog
    r = bytearray(16 * size)
    for idx, d in ring:
        r[16 * idx:16 * idx + 16] = d
    blob = bytearray(0x5000)
    for gpa, data in blob_parts:
        blob[gpa - BLOB:gpa - BLOB + len(data)] = data
    out = struct.pack("<BBHBBH", flags, qlog, base, crash, recovery, 0) + bytes(r) + driver
    if flags & F_PK_INFLIGHT:
        out += region if region is not None else bytes((32 + 32 * size + 63) & ~63)
    return out + bytes(blob).rstrip(b"\0")


def pchain(start, size, parts, pid, wrap=True):
    """Descriptors of one chain from ring index start: [(idx, desc)], wrapping at the end."""
    out = []
    for i, (addr, ln, flags) in enumerate(parts):
        idx, w = (start + i) % size, wrap if start + i < size else not wrap
        nxt = NEXT if i + 1 < len(parts) else 0
        out.append((idx, pdesc(addr, ln, flags | nxt, pid, w)))
    return out


prd = [(HDR, 16, 0), (DATA, 512, WRITE), (STATUS, 1, WRITE)]
pwr = [(HDR, 16, 0), (DATA, 4096, 0), (STATUS, 1, WRITE)]
save("fuzz_vring_packed", "read", pvring(0, 4, pchain(0, 16, prd, 0), [(HDR, outhdr(0, 8))]))
save("fuzz_vring_packed", "write", pvring(0, 4, pchain(0, 16, pwr, 3), [(HDR, outhdr(1, 16))]))
save("fuzz_vring_packed", "flush", pvring(0, 3, pchain(0, 8, [(HDR, 16, 0), (STATUS, 1, WRITE)], 1),
                                          [(HDR, outhdr(4))]))
save("fuzz_vring_packed", "discard",
     pvring(0x20, 3, pchain(0, 8, [(HDR, 16, 0), (SEG, 16, 0), (STATUS, 1, WRITE)], 2),
            [(HDR, outhdr(11)), (SEG, struct.pack("<QII", 8, 8, 0))]))
pitab = (struct.pack("<QIHH", HDR, 16, 0, 0) + struct.pack("<QIHH", DATA, 1024, 0, WRITE) +
         struct.pack("<QIHH", STATUS, 1, 0, WRITE))
save("fuzz_vring_packed", "indirect", pvring(0x01, 4, [(0, pdesc(ITAB, 48, INDIRECT, 5))],
                                             [(HDR, outhdr(0)), (ITAB, pitab)]))
# A chain across the end of the ring: base at index 7 of an 8-entry ring, wrap 1.
save("fuzz_vring_packed", "across-wrap", pvring(0, 3, pchain(7, 8, prd, 4), [(HDR, outhdr(0))],
                                                base=0x8007))
# Three requests, EVENT_IDX, the driver asking for a call at descriptor 3 (DESC), EAGAIN once.
pbatch = (pchain(0, 16, prd, 0) + pchain(3, 16, [(HDR + 16, 16, 0), (STATUS + 1, 1, WRITE)], 1) +
          pchain(5, 16, [(HDR + 32, 16, 0), (DATA + 512, 512, 0), (STATUS + 2, 1, WRITE)], 2))
save("fuzz_vring_packed", "batch-evidx",
     pvring(0x02 | 0x08, 4, pbatch, [(HDR, outhdr(0) + outhdr(4) + outhdr(1, 2))],
            driver=struct.pack("<HH", 0x8003, 2)))
# Inflight: a fresh region, crash after the first iteration (requests still in flight).
save("fuzz_vring_packed", "inflight-crash",
     pvring(F_PK_INFLIGHT | 0x08, 4, pbatch, [(HDR, outhdr(0) + outhdr(4) + outhdr(1, 2))],
            crash=1))
# Inflight: a 2-entry ring from index 1, wrap 0; a flush answered, then a crash (or, the
# second, a clean stop and restart). The queue's count passed 2 * size; the restart resumes at
# the same slot and wrap counter from a count below it (CI's fuzz_vring_packed failure on
# 3e51be7: the harness compared the raw counts).
save("fuzz_vring_packed", "inflight-crash-lap",
     pvring(F_PK_INFLIGHT, 1, pchain(1, 2, [(HDR, 16, 0), (STATUS, 1, WRITE)], 1, wrap=False),
            [(HDR, outhdr(4))], base=0x0001, crash=2))
save("fuzz_vring_packed", "inflight-stop-lap",
     pvring(F_PK_INFLIGHT, 1, pchain(1, 2, [(HDR, 16, 0), (STATUS, 1, WRITE)], 1, wrap=False),
            [(HDR, outhdr(4))], base=0x0001))
# Inflight: a region with a chain left in flight by a previous instance (resubmitted).
save("fuzz_vring_packed", "inflight-resubmit",
     pvring(F_PK_INFLIGHT, 4, [], [(HDR, outhdr(0, 8))], recovery=1,
            region=pk_region(16, [([0, 1, 2], 9, 5, prd)])))
# Hostile: NEXT on every descriptor; an id past the ring (SPDK #3860).
save("fuzz_vring_packed", "all-next",
     pvring(0, 2, [(i, pdesc(DATA, 16, NEXT, 0)) for i in range(4)], []))
save("fuzz_vring_packed", "id-range", pvring(0, 4, [(0, pdesc(DATA, 16, WRITE, 16))], []))

# ---- fuzz_inflight: hdr (24 bytes), then one queue's region ------------------------------


def inflight(flags, qlog, used_idx, mx, entries, version=1, last_batch=0, ifl_used=None,
             nq=1, qs=16, file_size=0, mmap_size=0, mmap_off=0):
    size = 1 << qlog
    h = struct.pack("<BBHHHHIII", flags, qlog, used_idx, mx, nq, qs, file_size, mmap_size,
                    mmap_off)
    q = struct.pack("<QHHHH", 0, version, size, last_batch,
                    used_idx if ifl_used is None else ifl_used)
    d = bytearray(16 * size)
    for i, (fl, nxt, ctr) in entries.items():
        d[16 * i:16 * i + 16] = struct.pack("<B5xHQ", fl, nxt, ctr)
    return h + q + bytes(d)


save("fuzz_inflight", "fresh", inflight(0, 4, 0, 16, {}, version=0))
save("fuzz_inflight", "three", inflight(0, 4, 5, 16, {1: (1, 0, 7), 4: (1, 0, 3), 9: (1, 0, 5)}))
save("fuzz_inflight", "batch", inflight(0, 4, 7, 16, {2: (1, 5, 1), 5: (1, 0, 2), 6: (1, 0, 3)},
                                        last_batch=2, ifl_used=5))
stride = (16 + 16 * 16 + 63) & ~63
save("fuzz_inflight", "map", inflight(0x03, 4, 0, 16, {}, version=0, nq=2, qs=16,
                                      file_size=2 * stride, mmap_size=2 * stride))
save("fuzz_inflight", "map-unsealed", inflight(0x01, 4, 0, 16, {}, version=0, nq=1, qs=16,
                                               file_size=stride, mmap_size=stride))

# ---- fuzz_vhost_msg: records ---------------------------------------------------------------
OP_MSG, OP_GUEST, OP_KICK, OP_PUMP, OP_TRUNC, OP_RAW = range(6)
K_GUEST, K_EVENT, K_SOCK, K_SEALED = range(4)
QVA = 0x7f0000000000
GUEST = 256 * 1024


def msg(req, payload=b"", fds=(), need_reply=False, size=None):
    kinds = 0
    for i, k in enumerate(fds):
        kinds |= k << (2 * i)
    sz = len(payload) if size is None else size
    return bytes([OP_MSG, req, 1 if need_reply else 0, sz & 0xff, sz >> 8, len(fds), kinds]) + payload


def u64(v):
    return struct.pack("<Q", v)


def state(i, n):
    return struct.pack("<II", i, n)


def guest(off, data):
    out = b""
    while data:
        chunk, data = data[:255], data[255:]
        out += bytes([OP_GUEST, (off // 4) & 0xff, (off // 4) >> 8, len(chunk)]) + chunk
        off += len(chunk)
    return out


FEAT = (1 << 32) | (1 << 30) | (1 << 28) | (1 << 29) | (1 << 9) | (1 << 6)
PROTO = (1 << 0) | (1 << 3) | (1 << 5) | (1 << 9) | (1 << 12) | (1 << 13) | (1 << 15) | (1 << 16)
region = struct.pack("<QQQQ", 0, GUEST, QVA, 0)
hello = (msg(1) + msg(15) + msg(16, u64(PROTO)) + msg(17) + msg(36) + msg(21, fds=[K_SOCK]) +
         msg(3) + msg(13, u64(0), fds=[K_EVENT]) + msg(13, u64(1), fds=[K_EVENT]) +
         msg(24, struct.pack("<III", 0, 57, 0) + bytes(57)))
start = (msg(5, struct.pack("<II", 1, 0) + region, fds=[K_GUEST], need_reply=True) +
         msg(2, u64(FEAT)) + msg(8, state(0, 16)) +
         msg(9, struct.pack("<IIQQQQ", 0, 0, QVA, QVA + 0x2000, QVA + 0x1000, 0)) +
         msg(10, state(0, 0)) + msg(12, u64(0), fds=[K_EVENT]) + msg(18, state(0, 1)))
ring = (guest(0x0, desc(0x3000, 16, NEXT, 1) + desc(0x4000, 512, WRITE | NEXT, 2) +
              desc(0x5000, 1, WRITE)) +
        guest(0x3000, outhdr(0, 0)) + guest(0x1000, struct.pack("<HHH", 0, 1, 0)))
save("fuzz_vhost_msg", "handshake", hello)
save("fuzz_vhost_msg", "start-io-stop", hello + start + ring + bytes([OP_KICK, OP_PUMP]) +
     msg(11, state(0, 0)))
save("fuzz_vhost_msg", "add-rem-mem", hello + msg(37, u64(0) + region, fds=[K_GUEST], need_reply=True) +
     start[len(msg(5, struct.pack("<II", 1, 0) + region, fds=[K_GUEST], need_reply=True)):] + ring +
     bytes([OP_KICK]) + msg(38, u64(0) + region, need_reply=True))
save("fuzz_vhost_msg", "inflight", hello + msg(31, struct.pack("<QQHH4x", 0, 0, 2, 16)) +
     msg(32, struct.pack("<QQHH4x", 2 * stride, 0, 2, 16), fds=[K_SEALED]) + start + ring +
     bytes([OP_KICK, OP_PUMP]) + msg(34))
save("fuzz_vhost_msg", "truncated", hello + bytes([OP_TRUNC, 2, 8, 1]))
save("fuzz_vhost_msg", "raw-partial", bytes([OP_RAW, 6]) + b"\x01\0\0\0\x01\0")
save("fuzz_vhost_msg", "call-flood", hello + msg(5, struct.pack("<II", 1, 0) + region, fds=[K_GUEST])
     + b"".join(msg(13, u64(0), fds=[K_EVENT]) for _ in range(20)))

# ---- fuzz_rpc: chunk byte, then the byte stream -------------------------------------------


def rpc(method, params=None, id_=1):
    r = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        r["params"] = params
    return json.dumps(r).encode()


save("fuzz_rpc", "create-all", b"\x07" + rpc("bdev_malloc_create", {"name": "Malloc0", "num_blocks": 16,
                                                                  "block_size": 512}) +
     rpc("vhost_create_blk_controller", {"ctrlr": "vhost.0", "dev_name": "Malloc0"}, 2) +
     rpc("vhost_get_controllers", None, 3) + rpc("bdev_get_bdevs", {}, 4) + rpc("save_config", None, 5) +
     rpc("vhost_delete_controller", {"ctrlr": "vhost.0"}, 6) + rpc("bdev_malloc_delete", {"name": "Malloc0"}, 7))
save("fuzz_rpc", "batch", b"\xff" + b"[" + rpc("rpc_get_methods") + b"," + rpc("spdk_get_version", None, "x")
     + b", {\"jsonrpc\":\"2.0\",\"method\":\"log_get_level\"}]")
save("fuzz_rpc", "errors", b"\x00" + b'{"jsonrpc":"2.0","method":"nope","id":null}\n{"a":[[[[]]]]}\n' +
     rpc("bdev_null_create", {"name": "../x", "num_blocks": -1, "block_size": "512"}) + b"\n{]")
save("fuzz_rpc", "config", b"\x10" + rpc("framework_get_config", {"name": "vhost_blk"}) +
     rpc("log_set_level", {"level": "debug"}) + rpc("bdev_set_test_delay", {"name": "x", "max_delay_us": 1}) +
     rpc("bdev_uring_create", {"name": "u", "filename": "/nonexistent"}))

# ---- fuzz_config: a save_config document ---------------------------------------------------
cfg = {"subsystems": [
    {"subsystem": "bdev", "config": [
        {"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 32, "block_size": 512}},
        {"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 32, "block_size": 4096}}]},
    {"subsystem": "vhost_blk", "config": [
        [{"method": "vhost_create_blk_controller", "params": {"ctrlr": "vhost.0", "dev_name": "Malloc0",
                                                              "cpumask": "0x1", "readonly": False}}]]},
    {"subsystem": "scsi", "config": None}]}
save("fuzz_config", "full", json.dumps(cfg, indent=1).encode())
save("fuzz_config", "empty", b'{"subsystems": []}')
save("fuzz_config", "bad-entry", b'{"subsystems": [{"subsystem": "bdev", "config": [{"method": 1}]}]}')

# ---- fuzz_vfu_msg: records after VERSION + DMA_MAP (see the harness's header) --------------
V_MSG, V_GUEST, V_DB, V_ENABLE, V_ADMIN, V_IO, V_HOLD, V_PUMP = range(8)
V_MEM = 0x100000


def v_msg(cmd, payload=b"", flags=0, kinds=0):
    return bytes([V_MSG, cmd, flags]) + struct.pack("<H", len(payload)) + bytes([kinds]) + payload


def v_sqe(opc, nsid=0, prp1=0, prp2=0, cdw10=0, cdw11=0, cdw12=0, psdt=0):
    return struct.pack("<BBHIIIQQQIIIIII", opc, psdt << 6, 0, nsid, 0, 0, 0, prp1, prp2, cdw10, cdw11,
                       cdw12, 0, 0, 0)


def v_admin(sqe, fix=0):
    return bytes([V_ADMIN]) + sqe + bytes([fix])


def v_io(q, sqe, fix=1):
    return bytes([V_IO, q]) + sqe + bytes([fix])


def v_region(rw, region, off, data=b"", count=None):
    hdr = struct.pack("<QII", off, region, len(data) if count is None else count)
    return v_msg(10 if rw else 9, hdr + data)


v_setup = (bytes([V_ENABLE]) + v_admin(v_sqe(0x09, cdw10=0x07, cdw11=0x00030003)) +
           b"".join(v_admin(v_sqe(0x05, cdw10=(31 << 16) | q, cdw11=(q << 16) | 3), fix=4) +
                    v_admin(v_sqe(0x01, cdw10=(31 << 16) | q, cdw11=(q << 16) | 1), fix=4)
                    for q in (1, 2)))
save("fuzz_vfu_msg", "identify", bytes([V_ENABLE]) +
     b"".join(v_admin(v_sqe(0x06, nsid=n, prp1=V_MEM + 0x40000, cdw10=c)) for c, n in
              ((1, 0), (0, 1), (2, 0), (3, 1), (6, 0), (0x1f, 0))) + bytes([V_PUMP]))
save("fuzz_vfu_msg", "io", v_setup +
     v_io(1, v_sqe(0x01, nsid=1, prp1=V_MEM + 0x80000, cdw12=7)) +
     v_io(2, v_sqe(0x02, nsid=2, prp1=V_MEM + 0x81000, prp2=V_MEM + 0x90000, cdw12=3)) +
     v_io(1, v_sqe(0x08, nsid=1, cdw10=8, cdw12=15 | (1 << 25)), fix=0) +
     v_io(2, v_sqe(0x09, nsid=1, prp1=V_MEM + 0x82000, cdw11=4), fix=1) +
     v_io(1, v_sqe(0x00, nsid=1), fix=0) + bytes([V_PUMP]))
save("fuzz_vfu_msg", "sgl", v_setup +
     bytes([V_GUEST]) + struct.pack("<HB", 0x8300 // 16, 32) +
     struct.pack("<QIxxxB", V_MEM + 0x84000, 1024, 0) + struct.pack("<QIxxxB", V_MEM + 0x86000, 1024, 0) +
     v_io(1, v_sqe(0x02, nsid=1, prp1=V_MEM + 0x8300, prp2=(0x30 << 56) | 32, cdw12=3, psdt=1), fix=0))
save("fuzz_vfu_msg", "reset-held", v_setup + bytes([V_HOLD, 1]) +
     v_io(1, v_sqe(0x01, nsid=1, prp1=V_MEM + 0x80000)) + v_io(2, v_sqe(0x02, nsid=1, prp1=V_MEM + 0x80000)) +
     v_region(1, 0, 0x14, struct.pack("<I", 0)) + bytes([V_HOLD, 0, V_PUMP]))
save("fuzz_vfu_msg", "messages",
     v_msg(4, struct.pack("<IIII", 16, 0, 0, 0)) + v_msg(5, struct.pack("<IIIIQQ", 32, 0, 0, 0, 0, 0)) +
     v_msg(7, struct.pack("<IIII", 16, 0, 2, 0)) + v_region(0, 7, 0, count=64) +
     v_msg(8, struct.pack("<IIIII", 20, 0x24, 2, 0, 2), kinds=0x85) +
     v_msg(3, struct.pack("<IIQQ", 24, 0, V_MEM, 0x100000)) +
     v_msg(2, struct.pack("<IIQQQ", 32, 3, 0, 0x400000, 0x1000), kinds=0x40) + v_msg(13))
save("fuzz_vfu_msg", "doorbells", v_setup + bytes([V_DB, 1, 0]) + struct.pack("<H", 500) +
     bytes([V_ENABLE, V_DB, 0, 1]) + struct.pack("<H", 99))
print("corpus written to", OUT)
