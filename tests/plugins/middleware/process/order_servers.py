#!/usr/bin/env python3
"""Test servers for middleware_order.sh. `serve DELAY_MS PORT_FILE COUNT_FILE`: an HTTP/1.1
server on a free loopback port that answers every POST after DELAY_MS with a JSON body derived
from the request body (so the original and the candidate answer alike), appending one line to
COUNT_FILE per request. `client PORT N`: N keep-alive POSTs to /v2/robot/query, one at a time."""
import http.client
import http.server
import json
import sys
import threading
import time


def serve(delay_ms, port_file, count_file):
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(delay_ms / 1000.0)
            req = json.loads(body or b"{}")
            out = json.dumps({"robot_id": req.get("robot_id"), "results": {"hint_list": ["h%s" % req.get("q")]}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            with lock, open(count_file, "a") as f:
                f.write("1\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


def client(port, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(n):
        body = json.dumps({"robot_id": "664", "q": i})
        conn.request("POST", "/v2/robot/query", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        client(int(sys.argv[2]), int(sys.argv[3]))
