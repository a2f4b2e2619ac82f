#!/usr/bin/env python3
"""HTTP/1.1 test server for the differential pairing harness.

Every response carries `X-Echo-Id: <the request's X-Req-Id>`. Keep-alive, chunked
responses, 100-continue (http.server answers `Expect: 100-continue` itself), chunked request
bodies, an upload answered early (413 and close before the body is read) and extension
methods (BDELETE, CCM_POST, PROPFIND, QUERY, ...) answered like any other.

usage: py_server.py PORT
"""
import http.server
import socketserver
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "diffpy/1"

    def log_message(self, *args):  # quiet
        pass

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body=b"", chunks=None, close=False, extra=()):
        self.send_response(status)
        self.send_header("X-Echo-Id", self.headers.get("X-Req-Id", ""))
        for k, v in extra:
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        if chunks is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                for c in chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                    self.wfile.flush()
                self.wfile.write(b"0\r\nX-Trailer: done\r\n\r\n")
        else:
            if status not in (204, 304) and not (100 <= status < 200):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and status not in (204, 304):
                self.wfile.write(body)
        self.wfile.flush()

    def handle_expect_100(self):
        # The early answer: refuse the upload before its body is sent, then close.
        if self.path.startswith("/early"):
            self._send(413, b"too large\n", close=True)
            return False
        return super().handle_expect_100()

    def _handle(self):
        path = self.path
        if path.startswith("/early"):
            # No Expect header: answer before reading the body, then close.
            self._send(413, b"too large\n", close=True)
            return
        body = self._read_body()
        if path.startswith("/chunked"):
            parts = [b"part %d of %s\n" % (i, path.encode()) for i in range(3)]
            self._send(200, chunks=parts)
        elif path.startswith("/204"):
            self._send(204)
        elif path.startswith("/304"):
            self._send(304, extra=[("ETag", '"fixed"')])
        elif path.startswith("/big"):
            self._send(200, bytes((i * 7 + 3) % 256 for i in range(70000)))
        else:
            self._send(200, b"%s %s %d\n" % (self.command.encode(), path.encode(), len(body)))

    def __getattr__(self, name):
        # do_GET, do_POST, do_BDELETE, do_CCM_POST, ...: every method is answered.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    srv = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    srv.serve_forever()
