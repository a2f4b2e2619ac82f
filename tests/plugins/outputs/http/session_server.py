#!/usr/bin/env python3
"""A loopback HTTP/1.1 server for session-replay tests that logs, for every request, the TCP
connection it came on and the order it arrived in.

usage: session_server.py LOG [--close-each]
Prints the port on stdout, then serves until killed. Each request appends one line to LOG:
    CONN SEQ ARRIVED_NS ANSWERED_NS PIPELINED PATH
CONN numbers accepted connections from 1; SEQ numbers requests from 1 in arrival order;
PIPELINED is 1 when the next request's bytes were already there before this one was answered.
A query parameter `delay=MS` delays the answer; a path starting with /dead closes the
connection without answering; --close-each closes the connection after every response.
"""
import socket
import sys
import threading
import time

log_path = sys.argv[1]
close_each = "--close-each" in sys.argv[2:]
lock = threading.Lock()
counters = {"conn": 0, "seq": 0}
log = open(log_path, "a", buffering=1)


def read_request(sock, buffer):
    """Returns (request head+body, rest of buffer) or (None, buffer) at EOF."""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = buffer[: end + 4]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            total = end + 4 + length
            if len(buffer) >= total:
                return buffer[:total], buffer[total:]
        chunk = sock.recv(65536)
        if not chunk:
            return None, buffer
        buffer += chunk


def serve(sock, conn):
    buffer = b""
    try:
        while True:
            request, buffer = read_request(sock, buffer)
            if request is None:
                return
            arrived = time.time_ns()
            with lock:
                counters["seq"] += 1
                seq = counters["seq"]
            target = request.split(b" ", 2)[1].decode()
            path, _, query = target.partition("?")
            delay = 0
            for pair in query.split("&"):
                key, _, value = pair.partition("=")
                if key == "delay":
                    delay = int(value)
            if path.startswith("/dead"):
                with lock:
                    log.write(f"{conn} {seq} {arrived} 0 0 {target}\n")
                return
            if delay:
                time.sleep(delay / 1000)
            # Pipelined: bytes of another request arrived before this one was answered.
            sock.setblocking(False)
            try:
                more = sock.recv(65536)
                if more:
                    buffer += more
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
            body = f"{conn} {seq}".encode()
            extra = b"Connection: close\r\n" if close_each else b""
            answered = time.time_ns()
            with lock:
                log.write(f"{conn} {seq} {arrived} {answered} {1 if buffer else 0} {target}\n")
            sock.sendall(b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: " + str(len(body)).encode() +
                         b"\r\n\r\n" + body)
            if close_each:
                return
    except OSError:
        pass
    finally:
        sock.close()


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    print(listener.getsockname()[1], flush=True)
    while True:
        sock, _ = listener.accept()
        with lock:
            counters["conn"] += 1
            conn = counters["conn"]
        threading.Thread(target=serve, args=(sock, conn), daemon=True).start()


main()
