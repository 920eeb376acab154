#!/usr/bin/env python3
"""Idle keep-alive clients against a meshd listener, with meshd's memory read from /proc.

    idle-clients.py MESHD_PID LISTENER ADMIN N ROUNDS SETTLE LABEL [BODY]

Each round opens N connections to LISTENER, one GET / on each (http.client, keep-alive), or with
BODY > 0 one POST /?echo=1 of BODY bytes (the upstream echoes it), leaves them idle, then closes
them all. meshd's VmRSS and VmHWM (/proc/PID/status) are read before the
first round, with the N clients connected, once meshd has closed every connection
(http.*.downstream_cx_active back to 0 on ADMIN) and SETTLE seconds later. Prints one table row
per round (KiB; "per cx" is (connected - before) / N in bytes).
"""

import http.client
import sys
import time
import urllib.request


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def active(admin):
    url = f"http://{admin}/stats?filter=downstream_cx_active"
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read().decode()
    return sum(int(line.split(": ")[1]) for line in body.splitlines() if ": " in line)


def wait_active(admin, want, bound=120.0):
    deadline = time.monotonic() + bound
    while active(admin) != want:
        if time.monotonic() > deadline:
            sys.exit(f"downstream_cx_active did not reach {want} in {bound}s")
        time.sleep(0.1)


def main():
    pid, listener, admin = sys.argv[1], sys.argv[2], sys.argv[3]
    n, rounds, settle, label = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
    body = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    payload = b"x" * body
    host, port = listener.rsplit(":", 1)
    before = status(pid)["VmRSS"]
    for rnd in range(1, rounds + 1):
        conns = []
        for _ in range(n):
            c = http.client.HTTPConnection(host, int(port), timeout=30)
            if body:
                c.request("POST", "/?echo=1", body=payload)
            else:
                c.request("GET", "/")
            r = c.getresponse()
            got = r.read()
            if body and len(got) != body:
                sys.exit(f"echo: {len(got)} bytes back, sent {body}")
            if r.status != 200:
                sys.exit(f"GET / through meshd: {r.status}")
            conns.append(c)
        wait_active(admin, n)
        connected = status(pid)["VmRSS"]
        for c in conns:
            c.close()
        conns = None
        wait_active(admin, 0)
        closed = status(pid)["VmRSS"]
        time.sleep(settle)
        s = status(pid)
        per_cx = (connected - before) * 1024 // n
        print(f"{label:<10} {rnd:>5} {before:>8} {connected:>10} {per_cx:>7} {closed:>8} "
              f"{s['VmRSS']:>8} {s['VmHWM']:>8}", flush=True)


if __name__ == "__main__":
    main()
