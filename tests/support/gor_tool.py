#!/usr/bin/env python3
"""Test helper: writes .gor files of varied requests and checks replayed results.

  gor_tool.py generate OUT.gor N [--gap-ms MS]     varied requests (methods, bodies, odd headers)
  gor_tool.py check-echo IN.gor REPLIES.gor BASE HOSTHEADER
      every request's reply must echo the request exactly as the target received it,
      with BASE prefixed to its target and Host rewritten to HOSTHEADER
  gor_tool.py check-errors REPLIES.gor N           N replay records, each with an empty payload
"""
import sys

SEP = "\n\U0001F435\U0001F648\U0001F649\n".encode()


def read_records(path):
    data = open(path, "rb").read()
    out = []
    for rec in data.split(SEP):
        if not rec.strip():
            continue
        head, _, payload = rec.partition(b"\n")
        kind, rid, ts, *rest = head.decode().split(" ")
        out.append((kind, rid, int(ts), payload))
    return out


def generate(path, n, gap_ms=1):
    ts = 1_700_000_000_000_000_000
    with open(path, "wb") as f:
        for i in range(n):
            rid = "%024x" % (0xABC000 + i)
            kind = i % 4
            if kind == 0:
                p = f"GET /items/{i}?q=a%20b&n={i} HTTP/1.1\r\nHost: prod.example.com\r\nAccept: */*\r\nX-Odd:   spaced value\r\nx-lower: yes\r\n\r\n"
            elif kind == 1:
                body = ('{"user":{"id":%d},"text":"caf\u00e9 \\n"}' % i).encode()
                p = (f"POST /v2/robot/query HTTP/1.1\r\nHost: prod.example.com\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            elif kind == 2:
                body = bytes(range(256)) * 3
                p = (f"PUT /blob/{i} HTTP/1.1\r\nHost: prod.example.com\r\nContent-Length: {len(body)}\r\n"
                     f"X-Dup: 1\r\nX-Dup: 2\r\n\r\n").encode() + body
            else:
                p = f"DELETE /items/{i} HTTP/1.1\r\nHost: prod.example.com\r\nCookie: a=1; b=2\r\n\r\n"
            if isinstance(p, str):
                p = p.encode()
            f.write(f"1 {rid} {ts + i * gap_ms * 1_000_000} 0\n".encode() + p + SEP)


def dechunk(body):
    out, pos = b"", 0
    while True:
        nl = body.index(b"\r\n", pos)
        size = int(body[pos:nl].split(b";")[0], 16)
        if size == 0:
            return out
        out += body[nl + 2:nl + 2 + size]
        pos = nl + 2 + size + 2


def expected(payload, base, host):
    head, _, body = payload.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, version = lines[0].split(b" ")
    lines[0] = b" ".join([method, base.encode() + target, version])
    lines = [(b"Host: " + host.encode()) if l.lower().startswith(b"host:") else l for l in lines]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def check_echo(requests_path, replies_path, base, host):
    reqs = {rid: p for k, rid, _, p in read_records(requests_path) if k == "1"}
    reps = {rid: p for k, rid, _, p in read_records(replies_path) if k == "3"}
    bad = 0
    for rid, p in reqs.items():
        r = reps.get(rid)
        if r is None:
            print("no reply for", rid)
            bad += 1
            continue
        head, _, body = r.partition(b"\r\n\r\n")
        if b"Transfer-Encoding: chunked" in head:
            body = dechunk(body)
        want = expected(p, base, host)
        if body != want:
            print("mismatch for", rid, "\n  want", want[:300], "\n  got ", body[:300])
            bad += 1
    print(f"{len(reqs)} requests, {len(reps)} replies, {bad} problems")
    return 1 if bad or len(reqs) != len(reps) else 0


def check_errors(replies_path, n):
    reps = [r for r in read_records(replies_path) if r[0] == "3"]
    nonempty = [r for r in reps if r[3]]
    print(f"{len(reps)} replay records, {len(nonempty)} with a payload")
    return 0 if len(reps) == n and not nonempty else 1


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "generate":
        gap = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--gap-ms" else 1
        generate(sys.argv[2], int(sys.argv[3]), gap)
    elif cmd == "check-echo":
        sys.exit(check_echo(*sys.argv[2:6]))
    elif cmd == "check-errors":
        sys.exit(check_errors(sys.argv[2], int(sys.argv[3])))
    else:
        sys.exit(__doc__)
