#!/usr/bin/env python3
"""Checks for live_http2.sh (issue 18, item 1).

  http2_check.py gor OUT.gor DIR EXPECTED.json   every exchange byte-exact, counts exact, ids linked
  http2_check.py same LIVE.gor FILE.gor          the live capture and the pcap read back agree
  http2_check.py tshark PCAP PORT OUT.gor        every request/response tshark's HTTP/2 dissector
                                                 sees, doppel emitted with the same path and status
"""
import collections
import hashlib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

SEP = "\n🐵🙈🙉\n".encode()


def records(path):
    out = []
    for r in open(path, "rb").read().split(SEP):
        if not r.strip():
            continue
        header, payload = r.split(b"\n", 1)
        tokens = header.decode().split(" ")
        meta = dict(t.split("=", 1) for t in tokens[4:] if "=" in t)
        out.append({"kind": tokens[0], "id": tokens[1], "meta": meta, "payload": payload})
    return out


def split_message(payload):
    """(start line, headers dict, body) of an HTTP/1.1-form message, framing undone."""
    head, rest = payload.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, value = line.split(b":", 1)
        headers[name.strip().lower().decode()] = value.strip().decode()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size_line, rest = rest.split(b"\r\n", 1)
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            body += rest[:n]
            rest = rest[n + 2:]
        return lines[0].decode(), headers, body
    length = int(headers.get("content-length", "0"))
    if len(rest) != length:
        raise ValueError("body of %d bytes, content-length %d" % (len(rest), length))
    return lines[0].decode(), headers, rest


def pairs(path):
    """id -> (request, response) records; errors for ids seen other than once each."""
    by_id = collections.defaultdict(lambda: {"1": [], "2": []})
    for r in records(path):
        by_id[r["id"]][r["kind"]].append(r)
    return by_id


def check_gor(gor, root, expected_path):
    expected = json.load(open(expected_path))  # {"path": count} and uploads
    errors = []
    by_id = pairs(gor)
    seen = collections.Counter()
    for mid, kinds in by_id.items():
        if len(kinds["1"]) != 1 or len(kinds["2"]) != 1:
            errors.append("id %s: %d requests, %d responses" % (mid, len(kinds["1"]), len(kinds["2"])))
            continue
        req, resp = kinds["1"][0], kinds["2"][0]
        for r in (req, resp):
            if r["meta"].get("proto") != "h2" or int(r["meta"].get("stream", "0")) % 2 != 1:
                errors.append("id %s: meta %r" % (mid, r["meta"]))
        if req["meta"].get("stream") != resp["meta"].get("stream"):
            errors.append("id %s: request on stream %s, response on %s" % (mid, req["meta"].get("stream"), resp["meta"].get("stream")))
        line, headers, req_body = split_message(req["payload"])
        method, target, version = line.split(" ")
        status_line, _, resp_body = split_message(resp["payload"])
        path = target.split("?")[0]
        seen[method + " " + path] += 1
        if version != "HTTP/1.1" or "host" not in headers:
            errors.append("request %r: %r, host %r" % (target, version, headers.get("host")))
        if not status_line.startswith("HTTP/1.1 200 "):
            errors.append("%s: %r" % (target, status_line))
        if method == "POST":
            upload = open(root + path, "rb").read()
            if req_body != upload or resp_body != upload:  # nghttpd --echo-upload
                errors.append("upload %s: request %d bytes, response %d, want %d" % (path, len(req_body), len(resp_body), len(upload)))
        else:
            want = open(root + path, "rb").read()
            if resp_body != want:
                errors.append("%s: response body %d bytes, want %d" % (path, len(resp_body), len(want)))
    if dict(seen) != expected:
        errors.append("requests by path %r, want %r" % (dict(seen), expected))
    if errors:
        print("\n".join(errors[:30]))
        return 1
    print("ok: %d exchanges, every body byte-exact, every id linking one request and one response" % len(by_id))
    return 0


def fingerprint(gor):
    """What must agree between two captures of the same traffic: ids and times aside."""
    out = collections.Counter()
    by_id = pairs(gor)
    for kinds in by_id.values():
        req = kinds["1"][0]["payload"] if kinds["1"] else b""
        resp = kinds["2"][0]["payload"] if kinds["2"] else b""
        out[(hashlib.sha256(req).hexdigest(), hashlib.sha256(resp).hexdigest())] += 1
    return out


def check_same(live, from_file):
    a, b = fingerprint(live), fingerprint(from_file)
    if a != b:
        print("live capture and pcap differ: %d exchanges vs %d" % (sum(a.values()), sum(b.values())))
        return 1
    print("ok: the pcap read back gives the same %d exchanges as the live capture" % sum(a.values()))
    return 0


def tshark_exchanges(pcap, port):
    """(method, path, status) per stream, from tshark's HTTP/2 dissection (PDML keeps frame order)."""
    xml = subprocess.run(["tshark", "-r", pcap, "-d", "tcp.port==%s,http2" % port, "-Y", "http2", "-T", "pdml"],
                         check=True, capture_output=True).stdout
    streams = collections.defaultdict(dict)
    for packet in ET.fromstring(xml).iter("packet"):
        tcp_stream = None
        for f in packet.iter("field"):
            if f.get("name") == "tcp.stream":
                tcp_stream = f.get("show")
                break
        for frame in packet.iter("field"):
            if frame.get("name") != "http2.stream":
                continue
            kind = stream_id = None
            fields = {}
            for f in frame:
                if f.get("name") == "http2.type":
                    kind = f.get("show")
                elif f.get("name") == "http2.streamid":
                    stream_id = f.get("show")
                elif f.get("name") == "http2.header":
                    name = value = None
                    for g in f:
                        if g.get("name") == "http2.header.name":
                            name = g.get("show")
                        elif g.get("name") == "http2.header.value":
                            value = g.get("show")
                    if name is not None:
                        fields[name] = value
            if kind != "1":
                continue
            s = streams[(tcp_stream, stream_id)]
            if ":method" in fields:
                s["method"], s["path"] = fields[":method"], fields.get(":path")
            elif ":status" in fields and not fields[":status"].startswith("1"):
                s["status"] = fields[":status"]
    return collections.Counter((s.get("method"), s.get("path"), s.get("status")) for s in streams.values())


def check_tshark(pcap, port, gor):
    theirs = tshark_exchanges(pcap, port)
    ours = collections.Counter()
    for kinds in pairs(gor).values():
        method = path = status = None
        if kinds["1"]:
            method, path = kinds["1"][0]["payload"].split(b"\r\n", 1)[0].decode().split(" ")[:2]
        if kinds["2"]:
            status = kinds["2"][0]["payload"].split(b" ", 2)[1].decode()
        ours[(method, path, status)] += 1
    if theirs != ours:
        print("tshark and doppel differ:")
        for key in sorted(set(theirs) | set(ours), key=str):
            if theirs[key] != ours[key]:
                print("  %r: tshark %d, doppel %d" % (key, theirs[key], ours[key]))
        return 1
    print("ok: tshark and doppel agree on %d exchanges (method, path, status)" % sum(ours.values()))
    return 0


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "gor":
        sys.exit(check_gor(*sys.argv[2:5]))
    if mode == "same":
        sys.exit(check_same(*sys.argv[2:4]))
    if mode == "tshark":
        sys.exit(check_tshark(*sys.argv[2:5]))
    sys.exit("unknown mode " + mode)
