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
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "support"))
import gor_records  # noqa: E402
from gor_records import pairs  # noqa: E402
from tshark_http2 import http2_streams  # noqa: E402


def split_message(payload):
    """(start line, headers dict, body) of an HTTP/1.1-form message, framing undone."""
    head, headers, body = gor_records.split_message(payload)
    return head.split(b"\r\n", 1)[0].decode(), dict(headers), body


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
    # Out-of-order segments are reassembled, as doppel does (tshark's default leaves them out).
    xml = subprocess.run(["tshark", "-r", pcap, "-o", "tcp.reassemble_out_of_order:TRUE", "-d", "tcp.port==%s,http2" % port,
                          "-Y", "http2", "-T", "pdml"], check=True, capture_output=True).stdout
    streams = http2_streams(ET.fromstring(xml))
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
