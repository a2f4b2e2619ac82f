#!/usr/bin/env python3
"""Test helper speaking the NATS text protocol over a plain socket (no client library needed).

  nats_tool.py stream-info HOST:PORT STREAM   prints the JetStream stream info (JSON)
  nats_tool.py leader HOST:PORT STREAM        prints the name of the server leading STREAM
  nats_tool.py consumer-done HOST:PORT STREAM DURABLE  1 when all delivered and acknowledged
  nats_tool.py publish HOST:PORT SUBJECT TEXT publishes TEXT and waits for the stream's ack
"""
import json
import socket
import sys


def request(addr, subject, payload=b"", timeout=5.0):
    host, port = addr.replace("nats://", "").split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    f = s.makefile("rb")
    f.readline()  # INFO
    inbox = "_INBOX.doppeltest"
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\n')
    s.sendall(f"SUB {inbox} 1\r\n".encode())
    s.sendall(f"PUB {subject} {inbox} {len(payload)}\r\n".encode() + payload + b"\r\nPING\r\n")
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("connection closed")
        if line.startswith(b"MSG"):
            size = int(line.split()[-1])
            data = f.read(size + 2)[:size]
            s.close()
            return json.loads(data)
        if line.startswith(b"-ERR"):
            raise SystemExit(line.decode())


def main():
    cmd, addr = sys.argv[1], sys.argv[2]
    if cmd == "stream-info":
        print(json.dumps(request(addr, "$JS.API.STREAM.INFO." + sys.argv[3])))
    elif cmd == "leader":
        info = request(addr, "$JS.API.STREAM.INFO." + sys.argv[3])
        print(info.get("cluster", {}).get("leader", ""))
    elif cmd == "consumer-done":  # "1" when the consumer has nothing pending or unacknowledged
        info = request(addr, "$JS.API.CONSUMER.INFO.%s.%s" % (sys.argv[3], sys.argv[4]))
        print(1 if info.get("num_pending", 1) == 0 and info.get("num_ack_pending", 1) == 0 else 0)
    elif cmd == "publish":
        print(json.dumps(request(addr, sys.argv[3], sys.argv[4].encode())))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
