#!/usr/bin/env python3
"""Test client: drives several sessions against token_api.py and records them as a .gor file.

  record_sessions.py PORT OUT.gor CLIENTS

Each client (X-Client: cN, its own keep-alive connection) logs in, creates two orders, reads
them back with the token and ids it was given, and asks /me. Clients take turns request by
request, so sessions interleave in the recording. Every request is written as a `1` record and
its response as a `2` record with the same id, as GoReplay records with --input-raw-track-response.
Exits non-zero unless every recorded response is 2xx.
"""
import json
import os
import socket
import sys
import time

# One response reader for the quickstart's recorder and this test: the same framing rules.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "pipelines", "quickstart"))
from record import SEPARATOR as SEP, read_response  # noqa: E402


def request(method, target, client, token=None, body=None):
    headers = f"{method} {target} HTTP/1.1\r\nHost: api.example.com\r\nX-Client: {client}\r\n"
    if token:
        headers += f"Authorization: Bearer {token}\r\n"
    payload = b""
    if body is not None:
        payload = json.dumps(body).encode()
        headers += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    return headers.encode() + b"\r\n" + payload


def session_steps(client):
    """A generator of requests; each yield gets back the parsed JSON response."""
    login = yield request("POST", "/login", client, body={"user": client})
    token = login["token"]
    ids = []
    for item in ("book", "lamp"):
        created = yield request("POST", "/orders", client, token, {"item": item})
        ids.append(created["id"])
    for order in ids:
        yield request("GET", f"/orders/{order}", client, token)
    yield request("GET", "/me", client, token)


def main():
    port, out_path, clients = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    sessions = []
    for n in range(clients):
        sock = socket.create_connection(("127.0.0.1", port))
        steps = session_steps(f"c{n + 1}")
        sessions.append({"sock": sock, "steps": steps, "next": next(steps), "buffer": b""})
    counter = 0
    statuses = []
    with open(out_path, "wb") as out:
        while sessions:
            for s in list(sessions):
                counter += 1
                rid = "%024x" % (0xC0DE0000 + counter)
                started = time.time_ns()
                s["sock"].sendall(s["next"])
                response, s["buffer"] = read_response(s["sock"], s["buffer"])
                latency = time.time_ns() - started
                out.write(f"1 {rid} {started} 0\n".encode() + s["next"] + SEP)
                out.write(f"2 {rid} {started + latency} {latency}\n".encode() + response + SEP)
                status = int(response.split(b" ", 2)[1])
                statuses.append(status)
                body = response.partition(b"\r\n\r\n")[2]
                try:
                    s["next"] = s["steps"].send(json.loads(body))
                except StopIteration:
                    s["sock"].close()
                    sessions.remove(s)
    bad = [s for s in statuses if not 200 <= s < 300]
    print(f"recorded {len(statuses)} exchanges, {len(bad)} not 2xx")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
