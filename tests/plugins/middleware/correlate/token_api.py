#!/usr/bin/env python3
"""Test server: an API with dynamic values, as replays meet them.

  token_api.py PORT_FILE LOG_FILE

Binds 127.0.0.1 on a free port (written to PORT_FILE). POST /login answers {"token": T} with a
fresh random T; every other request needs "Authorization: Bearer T" (401 otherwise). POST
/orders answers {"id": I} with a fresh random order id; GET /orders/I answers the order (404 when
this instance never created I for that token's user). GET /me answers the user. Each request is
logged to LOG_FILE as "METHOD PATH STATUS CLIENT".
"""
import json
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

tokens = {}  # token -> user
orders = {}  # order id -> user
lock = threading.Lock()
log_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with log_lock, open(self.server.log_path, "a") as log:
            log.write(f"{self.command} {self.path} {status} {self.headers.get('X-Client', '-')}\n")

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def user(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        with lock:
            return tokens.get(auth[len("Bearer "):])

    def handle_request(self):
        data = self.body()
        if self.command == "POST" and self.path == "/login":
            token = secrets.token_hex(16)
            with lock:
                tokens[token] = data.get("user", "anonymous")
            return self.answer(200, {"token": token, "user": tokens[token]})
        user = self.user()
        if user is None:
            return self.answer(401, {"error": "unauthorized"})
        if self.command == "GET" and self.path == "/me":
            return self.answer(200, {"user": user})
        if self.command == "POST" and self.path == "/orders":
            order = secrets.token_hex(6)
            with lock:
                orders[order] = user
            return self.answer(201, {"id": order, "item": data.get("item")})
        if self.command == "GET" and self.path.startswith("/orders/"):
            order = self.path[len("/orders/"):]
            with lock:
                owner = orders.get(order)
            if owner != user:
                return self.answer(404, {"error": "no such order"})
            return self.answer(200, {"id": order, "user": user})
        return self.answer(404, {"error": "no route"})

    do_GET = do_POST = handle_request


def main():
    port_file, log_path = sys.argv[1], sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.log_path = log_path
    open(log_path, "w").close()
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
