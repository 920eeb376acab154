#!/usr/bin/env python3
"""Holds N idle keep-alive connections to a proxy and prints its RSS meanwhile.

    idle-hold.py IP:PORT N PID

Opens N connections to IP:PORT, sends one `GET /` on each and reads its 200 answer
(Content-Length framed; the connection stays open), waits one second for the proxy to settle,
then prints the VmRSS in KiB of PID and its child processes (nginx's workers) and closes them.
"""

import socket
import subprocess
import sys
import time


def rss_kib(pid):
    pids = [pid] + subprocess.run(["pgrep", "-P", pid], capture_output=True, text=True).stdout.split()
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total


def get(sock):
    sock.sendall(b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("connection closed before the answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        sys.exit(f"answer: {head[:60]!r}")
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("connection closed in the body")
        body += chunk


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n, pid = int(sys.argv[2]), sys.argv[3]
    conns = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)), timeout=30)
        get(s)
        conns.append(s)
    time.sleep(1)
    print(rss_kib(pid))
    for s in conns:
        s.close()


if __name__ == "__main__":
    main()
