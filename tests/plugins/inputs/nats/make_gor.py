#!/usr/bin/env python3
"""make_gor.py OUT.gor AGENT N [GAP_MS]: N requests with their original responses, each request
with a unique target /r/AGENT/I so a test can count what reached the replay target."""
import hashlib
import sys

SEP = "\n\U0001F435\U0001F648\U0001F649\n".encode()
out, agent, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
gap_ns = int(float(sys.argv[4]) * 1e6) if len(sys.argv) > 4 else 1_000_000
ts = 1_700_000_000_000_000_000
with open(out, "wb") as f:
    for i in range(n):
        rid = ("%s%016x" % (hashlib.md5(agent.encode()).hexdigest()[:8], i)).encode()
        req = f"GET /r/{agent}/{i} HTTP/1.1\r\nHost: prod.example.com\r\n\r\n".encode()
        body = f"GET /r/{agent}/{i} HTTP/1.1\r\n".encode()
        resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        f.write(b"1 %s %d 0\n" % (rid, ts) + req + SEP)
        f.write(b"2 %s %d 1000000\n" % (rid, ts + 1_000_000) + resp + SEP)
        ts += gap_ns
