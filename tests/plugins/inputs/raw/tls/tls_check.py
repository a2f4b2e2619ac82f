#!/usr/bin/env python3
"""Checks for live_tls.sh: doppel's decrypted capture against what the clients sent and got.

  tls_check.py exchanges TRANSFERS.tsv OUT.gor ROOT   every transfer once, byte-exact, ids linked,
                                                      TLS fields of the .gor header as negotiated
  tls_check.py same A.gor B.gor                       two captures of one traffic agree
  tls_check.py tshark PCAP KEYLOG PORTS OUT.gor [SKIP_RUN...]
                                                      tshark's HTTP and HTTP/2 dissection of the
                                                      decrypted pcap lists the same (method, path,
                                                      status) multiset as doppel emitted
  tls_check.py resumed PCAP KEYLOG PORTS RUN...       the connections of RUN were resumed (no
                                                      Certificate message in their handshake)
  tls_check.py keyupdates PCAP KEYLOG PORTS RUN CLIENT SERVER
                                                      RUN's connection carried exactly CLIENT
                                                      KeyUpdate messages from the client and
                                                      SERVER from the server
  tls_check.py counters LOG NAME=VALUE...             the exit summary's counters, exactly (a counter
                                                      not printed is 0)

TRANSFERS.tsv, one line per client transfer, written by live_tls.sh:
  run client mode version cipher sni alpn method target upload out trace codes sent received
client: curl or s_client; mode: h1, h2 (sequential, headers checked against the trace) or
h2-parallel (interleaved trace: status and bodies only); "-" for an empty field.
"""
import collections
import hashlib
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "support"))
from gor_records import pairs, split_message  # noqa: E402
from tshark_http2 import http2_streams  # noqa: E402


def curl_trace(path):
    """The transfers of one `curl --trace` file, in order: request head, request body and the
    final (non-1xx) response head, as bytes."""
    blocks = []  # (kind, bytes)
    kind = None
    data = bytearray()
    for line in open(path, encoding="latin-1"):
        if line.startswith(("=>", "<=", "==")):
            if kind:
                blocks.append((kind, bytes(data)))
            kind = line.split(",")[0] if line.startswith(("=>", "<=")) else None
            data = bytearray()
        elif kind and re.match(r"^[0-9a-f]{4}: ", line):
            data += bytes.fromhex(line[6:6 + 48].replace(" ", ""))
    if kind:
        blocks.append((kind, bytes(data)))
    transfers = []
    for kind, data in blocks:
        if kind == "=> Send header":
            transfers.append({"head": data, "body": b"", "responses": []})
        elif kind == "=> Send data":
            transfers[-1]["body"] += data
        elif kind == "<= Recv header":
            if data.startswith(b"HTTP/"):
                transfers[-1]["responses"].append(b"")
            transfers[-1]["responses"][-1] += data
    for t in transfers:
        finals = [r for r in t["responses"] if not re.match(rb"HTTP/\S+ 1\d\d", r)]
        t["response"] = finals[-1] if finals else b""
    return transfers


def codes(path):
    """target -> status, from curl -w '%{url_effective} %{response_code}' lines."""
    out = {}
    for line in open(path):
        url, code = line.split()
        out["/" + url.split("/", 3)[3]] = code
    return out


def read_transfers(path):
    fields = "run client mode version cipher sni alpn method target upload out trace codes sent received".split()
    rows = []
    for line in open(path):
        values = line.rstrip("\n").split("\t")
        rows.append({k: (None if v == "-" else v) for k, v in zip(fields, values)})
    return rows


def check_exchanges(transfers_path, gor, root):
    transfers = read_transfers(transfers_path)
    by_target = {t["target"]: t for t in transfers}
    if len(by_target) != len(transfers):
        return fail(["targets are not unique in " + transfers_path])
    traces = {}
    for t in transfers:
        if t["mode"] in ("h1", "h2") and t["client"] == "curl" and t["trace"] not in traces:
            traces[t["trace"]] = {}
            for item in curl_trace(t["trace"]):
                target = item["head"].split(b" ")[1].decode()
                traces[t["trace"]][target] = item
    errors = []
    seen = collections.Counter()
    sent = collections.defaultdict(list)      # s_client run -> [(index, request bytes)]
    received = collections.defaultdict(list)  # s_client run -> [(index, response bytes)]
    by_id = pairs(gor)
    for mid, kinds in by_id.items():
        if len(kinds["1"]) != 1 or len(kinds["2"]) != 1:
            errors.append("id %s: %d requests, %d responses" % (mid, len(kinds["1"]), len(kinds["2"])))
            continue
        req, resp = kinds["1"][0], kinds["2"][0]
        req_head, req_headers, req_body = split_message(req["payload"])
        resp_head, _, resp_body = split_message(resp["payload"])
        method, target = req_head.split(b" ")[:2]
        target = target.decode()
        seen[target] += 1
        t = by_target.get(target)
        if t is None:
            errors.append("unexpected request %r" % target)
            continue
        where = "%s (%s)" % (target, t["run"])
        # The .gor header: what the handshake chose, on both messages of the exchange.
        want_meta = {"tls": t["version"], "cipher": t["cipher"]}
        if t["sni"]:
            want_meta["sni"] = t["sni"]
        if t["alpn"]:
            want_meta["alpn"] = t["alpn"]
        for r in (req, resp):
            got = {k: v for k, v in r["meta"].items() if k in ("tls", "cipher", "sni", "alpn")}
            if got != want_meta:
                errors.append("%s: .gor TLS fields %r, want %r" % (where, got, want_meta))
            is_h2 = r["meta"].get("proto") == "h2"
            if is_h2 != t["mode"].startswith("h2"):
                errors.append("%s: proto %r in mode %s" % (where, r["meta"].get("proto"), t["mode"]))
        if method.decode() != t["method"]:
            errors.append("%s: method %r" % (where, method))
        upload = open(t["upload"], "rb").read() if t["upload"] else b""
        if req_body != upload:
            errors.append("%s: request body %d bytes, want the %d of %s" % (where, len(req_body), len(upload), t["upload"]))
        if t["client"] == "s_client":
            index = int(re.search(r"[?&]i=(\d+)", target).group(1))
            sent[t["run"]].append((index, req["payload"]))
            received[t["run"]].append((index, resp["payload"]))
            if not resp_head.startswith(b"HTTP/1.1 200 "):
                errors.append("%s: %r" % (where, resp_head[:20]))
            path = target.split("?")[0]
            want_body = upload if path == "/upload" else open(root + path, "rb").read()
            if resp_body != want_body:
                errors.append("%s: response body %d bytes, want %d" % (where, len(resp_body), len(want_body)))
            continue
        got_body = open(t["out"], "rb").read()
        if resp_body != got_body:
            errors.append("%s: response body %d bytes, curl got %d" % (where, len(resp_body), len(got_body)))
        if t["mode"] == "h1":
            item = traces[t["trace"]].get(target)
            if item is None:
                errors.append("%s: not in curl's trace" % where)
                continue
            if req_head + req_body != item["head"] + item["body"]:
                errors.append("%s: request differs from curl's trace" % where)
            if resp_head != item["response"]:
                errors.append("%s: response head differs from curl's trace:\n%r\n%r" % (where, resp_head, item["response"]))
        else:
            if int(req["meta"].get("stream", "0")) % 2 != 1 or req["meta"].get("stream") != resp["meta"].get("stream"):
                errors.append("%s: streams %r / %r" % (where, req["meta"].get("stream"), resp["meta"].get("stream")))
            status = resp_head.split(b" ")[1].decode()
            want_status = codes(t["codes"]).get(target)
            if status != want_status:
                errors.append("%s: status %s, curl got %s" % (where, status, want_status))
            if t["mode"] == "h2":
                item = traces[t["trace"]].get(target)
                # curl traces an HTTP/2 request as an HTTP/1-style head ("GET /p HTTP/2",
                # Host for :authority): each of its fields must be in doppel's HTTP/1.1 form.
                lines = item["head"].split(b"\r\n\r\n")[0].split(b"\r\n")[1:] if item else []
                theirs = [(n.strip().lower().decode(), v.strip().decode()) for n, v in (l.split(b":", 1) for l in lines)]
                missing = [h for h in theirs if h not in req_headers]
                if item is None or missing:
                    errors.append("%s: request fields %r missing (doppel: %r)" % (where, missing, req_headers))
    for run in sent:
        runs = [t for t in transfers if t["run"] == run]
        got_sent = b"".join(p for _, p in sorted(sent[run]))
        got_received = b"".join(p for _, p in sorted(received[run]))
        if got_sent != open(runs[0]["sent"], "rb").read():
            errors.append("%s: the requests differ from what s_client sent" % run)
        if got_received != open(runs[0]["received"], "rb").read():
            errors.append("%s: the responses differ from what s_client received (%d bytes, it got %d)"
                          % (run, len(got_received), len(open(runs[0]["received"], "rb").read())))
    for target in by_target:
        if seen[target] != 1:
            errors.append("%s (%s): emitted %d times" % (target, by_target[target]["run"], seen[target]))
    if errors:
        return fail(errors)
    modes = collections.Counter(t["mode"] for t in transfers)
    print("ok: %d exchanges (%s) from %d client runs, every request and response byte-exact, "
          "ids linked, TLS fields as negotiated" % (len(by_id), ", ".join("%s %d" % kv for kv in sorted(modes.items())),
                                                   len({t["run"] for t in transfers})))
    return 0


def fingerprint(gor):
    out = collections.Counter()
    for kinds in pairs(gor).values():
        key = []
        for kind in ("1", "2"):
            for r in kinds[kind]:
                meta = sorted((k, v) for k, v in r["meta"].items())
                key.append((kind, hashlib.sha256(r["payload"]).hexdigest(), tuple(meta)))
        out[tuple(key)] += 1
    return out


def check_same(a, b):
    fa, fb = fingerprint(a), fingerprint(b)
    if fa != fb:
        return fail(["%s and %s differ: %d exchanges vs %d, %d in common"
                     % (a, b, sum(fa.values()), sum(fb.values()), sum((fa & fb).values()))])
    print("ok: %s gives the same %d exchanges (payloads and header fields) as %s" % (b, sum(fb.values()), a))
    return 0


def tshark(pcap, keylog, ports, *args):
    decode = []
    for port in ports.split(","):
        decode += ["-d", "tcp.port==%s,tls" % port]
    # Out-of-order segments (a loopback capture has them) are reassembled, as doppel does:
    # tshark's default leaves the PDUs they belong to undissected.
    return subprocess.run(["tshark", "-r", pcap, "-o", "tls.keylog_file:" + keylog, "-o", "http.tls.port:" + ports,
                           "-o", "tcp.reassemble_out_of_order:TRUE"]
                          + decode + list(args), check=True, capture_output=True).stdout


def tshark_exchanges(pcap, keylog, ports):
    """(method, path, status) per HTTP/1.x exchange and per HTTP/2 stream, from PDML."""
    xml = tshark(pcap, keylog, ports, "-Y", "http or http2", "-T", "pdml")
    out = collections.Counter()
    root = ET.fromstring(xml)
    for packet in root.iter("packet"):
        for proto in packet.iter("proto"):
            if proto.get("name") == "http":
                fields = {f.get("name"): f.get("show") for f in proto.iter("field")}
                if "http.request.method" in fields:
                    out[("request", fields["http.request.method"], fields["http.request.uri"])] += 1
                if "http.response.code" in fields and not fields["http.response.code"].startswith("1"):
                    uri = fields.get("http.response_for.uri", "")
                    path = "/" + uri.split("/", 3)[3] if uri.count("/") >= 3 else uri
                    out[("response", fields["http.response.code"], path)] += 1
    for s in http2_streams(root).values():
        out[("request", s.get("method"), s.get("path"))] += 1
        out[("response", s.get("status"), s.get("path"))] += 1
    return out


def check_tshark(pcap, keylog, ports, gor, *skip_runs):
    def skipped(path):
        return any(("run=%s&" % run) in path for run in skip_runs)
    theirs = collections.Counter({k: v for k, v in tshark_exchanges(pcap, keylog, ports).items() if not skipped(k[2])})
    ours = collections.Counter()
    for kinds in pairs(gor).values():
        path = None
        if kinds["1"]:
            method, path = kinds["1"][0]["payload"].split(b"\r\n", 1)[0].decode().split(" ")[:2]
            ours[("request", method, path)] += 1
        if kinds["2"]:
            status = kinds["2"][0]["payload"].split(b" ", 2)[1].decode()
            ours[("response", status, path)] += 1
    ours = collections.Counter({k: v for k, v in ours.items() if not skipped(k[2])})
    if theirs != ours:
        lines = ["tshark and doppel differ:"]
        for key in sorted(set(theirs) | set(ours), key=str):
            if theirs[key] != ours[key]:
                lines.append("  %r: tshark %d, doppel %d" % (key, theirs[key], ours[key]))
        return fail(lines[:40])
    print("ok: tshark and doppel agree on %d requests and %d responses (method, path, status)"
          % (sum(v for k, v in ours.items() if k[0] == "request"), sum(v for k, v in ours.items() if k[0] == "response")))
    return 0


def check_resumed(pcap, keylog, ports, *runs):
    # Which TCP stream carried each run (its requests name it), and which streams saw a
    # Certificate handshake message (TLS 1.3's is encrypted: tshark decrypts it with the log).
    rows = tshark(pcap, keylog, ports, "-Y", "http.request or tls.handshake.type == 11", "-T", "fields",
                  "-e", "tcp.stream", "-e", "http.request.uri", "-e", "tls.handshake.type").decode().splitlines()
    stream_of_run, with_certificate = {}, set()
    for row in rows:
        stream, uri, types = (row.split("\t") + ["", ""])[:3]
        if "11" in types.split(","):
            with_certificate.add(stream)
        for run in runs:
            if ("run=%s&" % run) in uri:
                stream_of_run[run] = stream
    errors = []
    for run in runs:
        if run not in stream_of_run:
            errors.append("%s: no request of it in the pcap" % run)
        elif stream_of_run[run] in with_certificate:
            errors.append("%s: a full handshake (Certificate sent), not a resumption" % run)
    if errors:
        return fail(errors)
    print("ok: %s resumed their sessions" % ", ".join(runs))
    return 0


def stream_of_run(pcap, keylog, ports, run):
    rows = tshark(pcap, keylog, ports, "-Y", "http.request", "-T", "fields", "-e", "tcp.stream",
                  "-e", "http.request.uri").decode().splitlines()
    return next((row.split("\t")[0] for row in rows if ("run=%s&" % run) in row), None)


def check_keyupdates(pcap, keylog, ports, run, client, server):
    stream = stream_of_run(pcap, keylog, ports, run)
    if stream is None:
        return fail(["%s: no request of it in the pcap" % run])
    rows = tshark(pcap, keylog, ports, "-Y", "tcp.stream == %s && tls.handshake.type == 24" % stream, "-T", "fields",
                  "-e", "tcp.dstport", "-e", "tls.handshake.type").decode().splitlines()
    server_ports = set(ports.split(","))
    counts = collections.Counter()
    for row in rows:
        port, types = row.split("\t")
        counts["client" if port in server_ports else "server"] += types.split(",").count("24")
    if counts["client"] != int(client) or counts["server"] != int(server):
        return fail(["%s: %d KeyUpdate messages from the client, %d from the server; want %s and %s"
                     % (run, counts["client"], counts["server"], client, server)])
    print("ok: %s updated its keys (%s KeyUpdate messages from the client, %s from the server)" % (run, client, server))
    return 0


def summary_counters(log):
    """name -> value from the last exit summary in LOG ("dropped X" and "failed X" as such)."""
    text = open(log, errors="replace").read()
    start = text.rfind("doppel summary")
    if start < 0:
        raise SystemExit("no exit summary in " + log)
    counters = {}
    for m in re.finditer(r"^\s+((?:dropped |failed )?[a-z0-9_.]+): (\d+)\s*$", text[start:], re.M):
        counters[m.group(1)] = int(m.group(2))
    return counters


def check_counters(log, *expectations):
    counters = summary_counters(log)
    errors = []
    for e in expectations:
        name, want = e.rsplit("=", 1)
        if name.endswith("*"):  # a prefix: all of them together
            got = sum(v for k, v in counters.items() if k.startswith(name[:-1]))
        else:
            got = counters.get(name, 0)
        if got != int(want):
            errors.append("%s: %d, want %s" % (name, got, want))
    if errors:
        return fail(errors + ["(summary of %s: %r)" % (log, counters)])
    print("ok: %s" % ", ".join(expectations))
    return 0


def fail(errors):
    print("\n".join(errors[:40]))
    return 1


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    handlers = {"exchanges": check_exchanges, "same": check_same, "tshark": check_tshark,
                "resumed": check_resumed, "keyupdates": check_keyupdates, "counters": check_counters}
    if mode not in handlers:
        sys.exit("unknown mode " + mode)
    sys.exit(handlers[mode](*args))
