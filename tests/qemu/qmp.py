#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Minimal QMP client for the guest tests (no dependencies beyond the standard library).

  qmp.py SOCK CMD [ARGS-JSON]          run one command, print its "return" as JSON
  qmp.py SOCK --wait-event NAME [--timeout S]   wait for an event, print it as JSON
  qmp.py SOCK --wait-ready [--timeout S]        wait until the socket accepts QMP

Examples:
  qmp.py $qmp query-status
  qmp.py $qmp block_resize '{"node-name": "x", "size": 1073741824}'
  qmp.py $qmp human-monitor-command '{"command-line": "info chardev"}'
Exit status: 0 ok, 1 QMP error or timeout, 2 usage.
"""
import json
import socket
import sys
import time


def connect(path, timeout):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


class Qmp:
    def __init__(self, path, timeout):
        self.sock = connect(path, timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        greeting = self.read()
        if "QMP" not in greeting:
            raise RuntimeError("no QMP greeting: %r" % greeting)
        self.cmd("qmp_capabilities")

    def read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, args=None):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self.read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError("%s: %s" % (name, r["error"].get("desc", r["error"])))
            # events are skipped

    def wait_event(self, name, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                r = self.read()
            except socket.timeout:
                break
            if r.get("event") == name:
                return r
        raise RuntimeError("timeout waiting for event %s" % name)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, what = argv[1], argv[2]
    rest = argv[3:]
    timeout = 30.0
    if "--timeout" in rest:
        i = rest.index("--timeout")
        timeout = float(rest[i + 1])
        del rest[i:i + 2]
    try:
        q = Qmp(path, timeout)
        if what == "--wait-ready":
            out = {}
        elif what == "--wait-event":
            out = q.wait_event(rest[0], timeout)
        else:
            args = json.loads(rest[0]) if rest else None
            out = q.cmd(what, args)
    except Exception as e:  # noqa: BLE001 - report any failure as exit 1
        print("qmp.py: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
