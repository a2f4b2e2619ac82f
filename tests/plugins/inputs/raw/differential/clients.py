#!/usr/bin/env python3
"""The varied clients of the differential pairing harness (wrk does the bulk separately).

Every request carries a unique `X-Req-Id`; one JSON line per request is written to LOG:
  {"id", "client", "method", "target", "got": the client saw its own X-Echo-Id back,
   "status", "body_sha1" (request body, when one was sent whole), "lenient": the scenario
   may legitimately leave the request without a pairable response (early 413 + close)}

  curl      several transfers per invocation (--next) over one keep-alive connection,
            uploads with Expect: 100-continue, a chunked upload, HEAD, -X extension methods
  httpc     http.client keep-alive connections, every method against every server
  pipeline  raw sockets: several requests in one write, then the responses read in order

usage: clients.py LOG NGINX_PORT PY_PORT NODE_PORT SCALE
  SCALE ~ exchanges per client family / 10 (100 gives ~1,000 curl, ~1,000 http.client and
  ~1,000 pipelined exchanges).
"""
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile

log_path, nginx_port, py_port, node_port, scale = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(
    sys.argv[4]), int(sys.argv[5])
log = open(log_path, "w")
counter = {"n": 0}


def new_id(prefix):
    counter["n"] += 1
    return "%s-%d" % (prefix, counter["n"])


def record(**kw):
    log.write(json.dumps(kw) + "\n")


def sha1(b):
    return hashlib.sha1(b).hexdigest()


tmp = tempfile.mkdtemp(prefix="diffclients")
upload_small = os.path.join(tmp, "small.bin")
upload_large = os.path.join(tmp, "large.bin")
open(upload_small, "wb").write(b"a=1&b=2\n" * 40)
open(upload_large, "wb").write(bytes((i * 13 + 1) % 256 for i in range(300000)))
bodies = {upload_small: open(upload_small, "rb").read(), upload_large: open(upload_large, "rb").read()}

NGINX = "http://127.0.0.1:%d" % nginx_port
PY = "http://127.0.0.1:%d" % py_port
NODE = "http://127.0.0.1:%d" % node_port
IMS = "If-Modified-Since: Tue, 01 Jan 2099 00:00:00 GMT"

# (base, method, target, extra curl args, request body file or None, lenient)
curl_menu = [
    (NGINX, "GET", "/s/small.txt", [], None, False),
    (NGINX, "GET", "/s/1k.bin", [], None, False),
    (NGINX, "GET", "/s/64k.bin", [], None, False),
    (NGINX, "HEAD", "/s/64k.bin", ["-I"], None, False),
    (NGINX, "GET", "/s/small.txt?ims", ["-H", IMS], None, False),  # 304
    (NGINX, "GET", "/204", [], None, False),
    (NGINX, "GET", "/gz/text.txt", ["-H", "Accept-Encoding: gzip"], None, False),
    (NGINX, "GET", "/chunked", [], None, False),
    (NGINX, "POST", "/upload", ["-H", "Expect: 100-continue"], upload_large, False),
    (NGINX, "POST", "/upload?small", [], upload_small, False),
    (NGINX, "PROPFIND", "/s/small.txt", ["-X", "PROPFIND"], None, False),  # 405
    (PY, "GET", "/chunked/c", [], None, False),
    (PY, "BDELETE", "/x", ["-X", "BDELETE"], None, False),
    (PY, "CCM_POST", "/ccm", ["-X", "CCM_POST"], upload_small, False),
    (PY, "PROPFIND", "/dav", ["-X", "PROPFIND"], None, False),
    (PY, "QUERY", "/q", ["-X", "QUERY"], upload_small, False),
    (PY, "POST", "/up", ["-H", "Expect: 100-continue"], upload_large, False),
    (PY, "PUT", "/chunked-up", ["-X", "PUT", "-H", "Transfer-Encoding: chunked"], upload_small, False),
    (PY, "HEAD", "/chunked/head", ["-I"], None, False),
    (PY, "GET", "/304", [], None, False),
    (NODE, "GET", "/chunked/curl", [], None, False),
    (NODE, "DELETE", "/n/del", ["-X", "DELETE"], None, False),
]
# Each of these ends its connection (413 + close), so it is the last transfer of an invocation.
curl_closers = [
    (PY, "POST", "/early/expect", ["-H", "Expect: 100-continue"], upload_large, True),
    (PY, "POST", "/early/noexpect", ["-H", "Expect:"], upload_large, True),
]


def run_curl(transfers):
    args = ["curl", "-sS", "--max-time", "20"]
    for k, (base, method, target, extra, body, _) in enumerate(transfers):
        if k:
            args.append("--next")
        rid = new_id("c")
        transfers[k] = transfers[k] + (rid,)
        args += ["-s", "-o", "/dev/null", "-w", "%{http_code} %header{x-echo-id}\\n", "-H", "X-Req-Id: " + rid]
        args += extra
        if body:
            args += ["--data-binary", "@" + body, "-H", "Content-Type: application/octet-stream"]
        args.append(base + target)
    out = subprocess.run(args, capture_output=True, timeout=60).stdout.decode().splitlines()
    for k, t in enumerate(transfers):
        base, method, target, extra, body, lenient, rid = t
        status, echo = (out[k].split(" ", 1) + [""])[:2] if k < len(out) else ("000", "")
        rec = dict(id=rid, client="curl", method=method, target=target, got=echo.strip() == rid,
                   status=int(status or 0), lenient=lenient)
        if body and not lenient:
            rec["body_sha1"] = sha1(bodies[body])
        record(**rec)


def curl_family(n_invocations):
    for i in range(n_invocations):
        # 4-6 transfers on one connection, rotating through the menu; each invocation talks to
        # one server (so the transfers share one keep-alive connection).
        base = [NGINX, PY, NODE][i % 3]
        menu = [t for t in curl_menu if t[0] == base]
        k = 4 + i % 3
        transfers = [menu[(i * 5 + j) % len(menu)] for j in range(k)]
        if base == PY and i % 4 == 1:
            transfers.append(curl_closers[(i // 4) % 2])
        run_curl(transfers)


# http.client: (method, target, body, extra headers)
httpc_menu = {
    nginx_port: [("GET", "/s/small.txt", None, {}), ("GET", "/s/1k.bin", None, {}), ("HEAD", "/s/1k.bin", None, {}),
                 ("GET", "/204", None, {}), ("GET", "/gz/text.txt", None, {"Accept-Encoding": "gzip"}),
                 ("GET", "/chunked", None, {}), ("POST", "/upload", b"x=1", {}),
                 ("GET", "/s/small.txt", None, {"If-Modified-Since": "Tue, 01 Jan 2099 00:00:00 GMT"}),
                 ("BDELETE", "/s/small.txt", None, {})],
    py_port: [("GET", "/p", None, {}), ("BDELETE", "/p/b", None, {}), ("CCM_POST", "/p/c", b"ccm", {}),
              ("PROPFIND", "/p/d", None, {}), ("QUERY", "/p/q", b"select 1", {}), ("HEAD", "/chunked/h", None, {}),
              ("GET", "/chunked/p", None, {}), ("GET", "/204", None, {}), ("GET", "/304", None, {}),
              ("POST", "/p/post", b"y" * 5000, {}), ("GET", "/big", None, {})],
    node_port: [("GET", "/n/a", None, {}), ("GET", "/chunked/h", None, {}), ("POST", "/n/post", b"z" * 100, {}),
                ("HEAD", "/n/head", None, {}), ("GET", "/204", None, {})],
}


def httpc_family(per_server):
    for port, menu in httpc_menu.items():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        for i in range(per_server):
            method, target, body, extra = menu[i % len(menu)]
            target = "%s%sh=%d" % (target, "&" if "?" in target else "?", i)
            rid = new_id("h")
            headers = dict(extra, **{"X-Req-Id": rid})
            rec = dict(id=rid, client="httpc", method=method, target=target, got=False, status=0, lenient=False)
            if body is not None:
                rec["body_sha1"] = sha1(body)
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                rec["got"] = resp.getheader("X-Echo-Id") == rid
                rec["status"] = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            record(**rec)
            if i % 50 == 49:  # a fresh connection now and then
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.close()


class _Shim:
    """Hands http.client.HTTPResponse one shared buffered reader, so pipelined responses are
    read one after the other from the same stream (closing a response leaves it open)."""

    def __init__(self, fp):
        self.fp = fp

    def makefile(self, *_):
        return self

    def close(self):
        pass

    def __getattr__(self, name):
        return getattr(self.fp, name)


def pipeline_family(batches):
    ports = list(httpc_menu)
    for b in range(batches):
        port = ports[b % len(ports)]
        menu = httpc_menu[port]
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        fp = s.makefile("rb")
        wire, sent = b"", []
        for j in range(3 + b % 6):
            method, target, body, extra = menu[(b * 3 + j) % len(menu)]
            target = "%s%spl=%d.%d" % (target, "&" if "?" in target else "?", b, j)
            rid = new_id("p")
            head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Req-Id: %s\r\n" % (method, target, port, rid)
            for k, v in extra.items():
                head += "%s: %s\r\n" % (k, v)
            if body is not None:
                head += "Content-Length: %d\r\n" % len(body)
            wire += head.encode() + b"\r\n" + (body or b"")
            rec = dict(id=rid, client="pipeline", method=method, target=target, got=False, status=0,
                       lenient=False)
            if body is not None:
                rec["body_sha1"] = sha1(body)
            sent.append(rec)
        s.sendall(wire)  # all requests of the batch in one write
        try:
            for rec in sent:
                resp = http.client.HTTPResponse(_Shim(fp), method=rec["method"])
                resp.begin()
                resp.read()
                rec["got"] = resp.getheader("X-Echo-Id") == rec["id"]
                rec["status"] = resp.status
        except (OSError, http.client.HTTPException):
            pass
        fp.close()
        s.close()
        for rec in sent:
            record(**rec)


curl_family(max(3, scale // 5 * 2))
httpc_family(max(10, scale * 3))
pipeline_family(max(3, scale * 2))
log.close()
for f in bodies:
    os.unlink(f)
os.rmdir(tmp)
