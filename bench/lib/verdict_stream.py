"""Streams a .gor of request / original response / replayed response triples, for a verdict soak.

    python3 verdict_stream.py OUT COUNT [PROGRESS_FILE]

Writes COUNT exchanges (3 records each) to OUT, typically a named pipe that doppel's `file`
input reads, so that nothing but one record is ever held (10 million exchanges are ~5 GB of
.gor). Every 100,000 exchanges the number written so far goes to PROGRESS_FILE (for
rss_sampler.py). The traffic is meant to reach the compare stage's bounds, not only its hot
path: 20 endpoints with stable JSON bodies; 1% of requests on a templated path with an id
(/api/orders/<n>: distinct endpoints, folded past max_endpoints); replays that differ at a known
field (2%), answer 500 (0.5%), or carry a field named after their exchange (1.5%: distinct
difference paths, past max_paths at a few million exchanges).
"""
import os
import sys

SEPARATOR = "\n🐵🙈🙉\n".encode()
ENDPOINTS = [b"/api/v1/resource%02d" % i for i in range(20)]


def response(status, body):
    reason = b"OK" if status == 200 else b"Internal Server Error"
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" %
            (status, reason, len(body))) + body


def main():
    out, count = sys.argv[1], int(sys.argv[2])
    progress = sys.argv[3] if len(sys.argv) > 3 else None
    t = 1_700_000_000_000_000_000
    with open(out, "wb", buffering=1 << 20) as f:
        for i in range(count):
            rid = b"%024x" % (0x5eed00000000 + i)
            t += 1000
            if i % 100 == 7:
                path = b"/api/orders/%d" % i
            else:
                path = ENDPOINTS[i % len(ENDPOINTS)]
            body = b'{"id":%d,"name":"item %d","price":%d,"tags":["a","b"],"ok":true}' % (i, i % 977, i % 1000)
            status, replay_body = 200, body
            kind = i % 200
            if kind < 4:
                replay_body = b'{"id":%d,"name":"item %d","price":%d,"tags":["a","b"],"ok":true}' % (
                    i, i % 977, i % 1000 + 1)
            elif kind == 4:
                status, replay_body = 500, b'{"error":"boom"}'
            elif kind < 8:
                replay_body = body[:-1] + b',"extra_%d":1}' % i
            f.write(b"1 %s %d 0\nGET %s HTTP/1.1\r\nHost: svc\r\n\r\n" % (rid, t, path) + SEPARATOR)
            f.write(b"2 %s %d 3000000\n" % (rid, t + 1) + response(200, body) + SEPARATOR)
            f.write(b"3 %s %d 4000000\n" % (rid, t + 2) + response(status, replay_body) + SEPARATOR)
            if progress and (i + 1) % 100_000 == 0:
                f.flush()
                with open(progress + ".tmp", "w") as p:
                    p.write(str(i + 1))
                os.replace(progress + ".tmp", progress)
    if progress:
        with open(progress + ".tmp", "w") as p:
            p.write(str(count))
        os.replace(progress + ".tmp", progress)


if __name__ == "__main__":
    main()
