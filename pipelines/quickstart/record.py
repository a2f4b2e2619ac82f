#!/usr/bin/env python3
"""Records real traffic against robot-api v1 into a GoReplay .gor file (request + original
response records), the way `gor --input-raw :PORT --input-raw-track-response --output-file`
would. Used once to make robot-v1.gor; run it again to refresh the recording:

    build/bin/robot-api --version v1 --port 18081 &
    pipelines/quickstart/record.py --target 127.0.0.1:18081 --out pipelines/quickstart/robot-v1.gor
"""
import argparse
import json
import os
import random
import socket
import time

SEPARATOR = "\n\U0001F435\U0001F648\U0001F649\n".encode()


def read_response(sock, pending):
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        pending += chunk
    head, rest = pending.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a body")
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


def traffic(rng, n):
    texts = ["weather today", "play some jazz", "hi there", "hello robot", "ok", "no",
             "what is the weather in Paris tomorrow morning", "play the news", "tell me a joke",
             "how tall is the eiffel tower and who built it", "hi", "set an alarm", "yo"]
    endpoints = ["/v2/robot/query", "/v2/robot/input_hint", "/v1/robot/intention"]
    for i in range(n):
        roll = rng.random()
        if roll < 0.04:
            yield "GET", "/health", None
            continue
        if roll < 0.08:
            yield "POST", "/v2/robot/admin", {"robot_id": "664", "op": "reload"}
            continue
        robot = rng.choice(["664"] * 8 + [664, "665", "999"])  # 664 also as a number, as clients send it
        yield "POST", rng.choice(endpoints), {"robot_id": robot, "text": rng.choice(texts), "seq": i}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="127.0.0.1:18081")
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=16888)
    args = ap.parse_args()
    host, port = args.target.rsplit(":", 1)
    rng = random.Random(args.seed)
    sock = socket.create_connection((host, int(port)))
    pending = b""
    records = []
    for n, (method, path, body) in enumerate(traffic(rng, args.count)):
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        request = (f"{method} {path} HTTP/1.1\r\nHost: robot.example\r\nUser-Agent: robot-client/3.1\r\n"
                   + ("Content-Type: application/json\r\n" if body is not None else "")
                   + f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
        rid = os.urandom(12).hex()  # 24 hex characters, as GoReplay ids
        start = time.time_ns()
        sock.sendall(request)
        response, pending = read_response(sock, pending)
        end = time.time_ns()
        records.append(f"1 {rid} {start} 0\n".encode() + request)
        records.append(f"2 {rid} {end} {end - start}\n".encode() + response)
    sock.close()
    with open(args.out, "wb") as f:
        f.write(b"".join(record + SEPARATOR for record in records))  # GoReplay ends every record so
    print(f"recorded {len(records) // 2} exchanges into {args.out}")


if __name__ == "__main__":
    main()
