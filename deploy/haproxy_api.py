"""Talk to HAProxy's runtime API (its admin stats socket) without socat.

    python deploy/haproxy_api.py SOCKET "set server replicas/r2 state drain"
    python deploy/haproxy_api.py SOCKET status

`status` prints each replica's state, open sessions (websockets and requests in flight) and
sessions since the start; bench/cluster_bench.py reads the same figures with `server_stats`.
"""

from __future__ import annotations

import csv
import socket
import sys

COLUMNS = ("svname", "status", "scur", "stot", "check_status")


def command(path: str, line: str, timeout: float = 5.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def server_stats(path: str, backend: str = "replicas") -> dict[str, dict[str, str]]:
    """Per server of `backend`: HAProxy's stats row (status UP/DOWN/DRAIN, scur, stot...)."""
    text = command(path, "show stat").lstrip("# ")
    rows = csv.DictReader(text.splitlines())
    return {
        r["svname"]: r
        for r in rows
        if r.get("pxname") == backend and r["svname"] not in ("FRONTEND", "BACKEND")
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    path, line = argv
    if line == "status":
        print(f"{'replica':8} {'state':8} {'open':>5} {'total':>6}  last check")
        for name, r in server_stats(path).items():
            print(f"{name:8} {r['status']:8} {r['scur']:>5} {r['stot']:>6}  {r['check_status']}")
        return 0
    out = command(path, line).strip()
    if out:
        print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
