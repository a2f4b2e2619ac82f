#!/usr/bin/env python3
"""Checks what doppel extracted from one pcap against what the clients sent.

The oracle is the id the clients put in each request (`X-Req-Id`) and the servers echoed in
each response (`X-Echo-Id`), never positions and never tshark.

  check.py one --label L --gor OUT.gor --summary DOPPEL.stderr --clients DIR --scenario S
               [--damaged] [--tshark TSHARK.tsv] --results RESULTS.jsonl
      judges one .gor file and appends one JSON row to RESULTS.jsonl
  check.py table RESULTS.jsonl
      prints the table of every row; exit status 1 when an invariant failed anywhere

Per record of the .gor:
  request   must carry an X-Req-Id a client sent, with exactly the method, target and body
            the client sent (bytes that were on the wire; BDELETE never becomes DELETE);
            otherwise it counts as `bad_bytes`. The same X-Req-Id twice counts as `dup`.
  response  with its doppel id shared by a request: X-Echo-Id == the request's X-Req-Id is a
            right pair, anything else a WRONG pair; a response whose doppel id has no request
            is an orphan (counted as wrong too).
  request without a response: unpaired (allowed; doppel must count it).
Invariants: wrong == orphans == bad_bytes == dup == 0 everywhere; on an undamaged recording
every exchange the client completed (it got its own X-Echo-Id back) is paired right, except
the scenarios marked lenient (an upload refused early with 413 + close).
"""
import argparse
import glob
import json
import os
import re
import sys
import hashlib

SEP = "\n🐵🙈🙉\n".encode()
WRK_PATHS = ["/s/small.txt", "/s/1k.bin", "/204", "/gz/text.txt", "/chunked", "/s/small.txt", "/s/8k.bin"]


def split_head(payload):
    i = payload.find(b"\r\n\r\n")
    if i < 0:
        return payload, b""
    return payload[:i], payload[i + 4:]


def header(head, name):
    name = name.lower().encode() + b":"
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(name):
            return line[len(name):].strip().decode("latin-1")
    return None


def dechunk(body):
    out = b""
    while True:
        line, _, body = body.partition(b"\r\n")
        try:
            n = int(line.split(b";")[0], 16)
        except ValueError:
            return None
        if n == 0:
            return out
        out += body[:n]
        body = body[n + 2:]


def load_clients(d):
    """Returns (sent: id -> record, got: set of ids completed, lenient: set, sent_count)."""
    sent, got, lenient = {}, set(), set()
    count = 0
    for path in glob.glob(os.path.join(d, "*.jsonl")):
        for line in open(path):
            r = json.loads(line)
            sent[r["id"]] = r
            count += 1
            if r.get("lenient"):
                lenient.add(r["id"])
            elif r.get("got"):
                got.add(r["id"])
    for path in glob.glob(os.path.join(d, "*.got")):
        for line in open(path):
            if line.strip():
                got.add(line.strip())
    for path in glob.glob(os.path.join(d, "wrk*.out")):
        m = re.search(r"wrk_sent (\d+)", open(path).read())
        if m:
            count += int(m.group(1))
    return sent, got, lenient, count


def expected(rid, sent):
    """(method, target, body_sha1 or None) the client sent for this id, or None."""
    if rid in sent:
        r = sent[rid]
        return r["method"], r["target"], r.get("body_sha1")
    m = re.fullmatch(r"w\d+-(\d+)", rid)
    if m:
        return "GET", WRK_PATHS[int(m.group(1)) % len(WRK_PATHS)] + "?w=" + rid, None
    return None


def parse_summary(path):
    """The capture stage's counters from doppel's exit summary."""
    counters, in_capture = {}, False
    for line in open(path, errors="replace"):
        if re.match(r"^  \S", line):
            in_capture = line.split()[0] == "capture"
            continue
        m = re.match(r"^\s{6}(dropped |failed )?(\S+): (\d+)\s*$", line)
        if m and in_capture:
            counters[(m.group(1) or "").strip().replace("dropped", "dropped.").replace("failed", "failed.") +
                     m.group(2)] = int(m.group(3))
    return counters


def tshark_figures(path):
    """tshark's own pairing (informational): responses it paired with a request frame, and how
    many of those carry the X-Req-Id of a request in that frame."""
    if not path or not os.path.exists(path):
        return None
    req_ids, responses = {}, []
    for line in open(path, errors="replace"):
        f = line.rstrip("\n").split("\t")
        if len(f) < 5:
            continue
        frame, request_in, is_req, is_resp, lines = f[0], f[1], f[2], f[3], "\t".join(f[4:])
        if is_req:
            req_ids[frame] = set(re.findall(r"X-Req-Id: ([^\\,\r\n]+?)\\r\\n", lines))
        if is_resp:
            echo = re.findall(r"X-Echo-Id: ([^\\,\r\n]+?)\\r\\n", lines)
            responses.append((request_in, echo))
    paired = right = 0
    for request_in, echo in responses:
        if not request_in:
            continue
        for r in request_in.split(","):
            paired += 1
            if set(echo) & req_ids.get(r, set()):
                right += 1
    return {"tshark_responses": len(responses), "tshark_paired": paired, "tshark_right": right}


def judge(args):
    sent, got, lenient, sent_count = load_clients(args.clients)
    data = open(args.gor, "rb").read() if os.path.exists(args.gor) else b""
    reqs, resps = {}, {}
    for rec in data.split(SEP):
        if not rec.strip():
            continue
        line, _, payload = rec.partition(b"\n")
        parts = line.split(b" ")
        if len(parts) < 2:
            continue
        (reqs if parts[0] == b"1" else resps).setdefault(parts[1], []).append(payload)
    row = dict(label=args.label, scenario=args.scenario, damaged=args.damaged, sent=sent_count,
               completed=len(got), requests=0, responses=0, right=0, wrong=0, orphans=0, unpaired=0,
               bad_bytes=0, dup=0, missed=0, samples=[])

    def sample(kind, text):
        if len(row["samples"]) < 12:
            row["samples"].append("%s: %s" % (kind, text))

    seen_req_ids, right_ids = set(), set()
    for mid, payloads in reqs.items():
        for p in payloads:
            row["requests"] += 1
            head, body = split_head(p)
            first = head.split(b"\r\n", 1)[0].decode("latin-1")
            rid = header(head, "X-Req-Id")
            exp = expected(rid, sent) if rid else None
            if exp is None:
                row["bad_bytes"] += 1
                sample("bad_bytes", "request no client sent: %r" % first[:120])
                continue
            bits = first.split(" ")
            if len(bits) != 3 or bits[0] != exp[0] or bits[1] != exp[1] or not bits[2].startswith("HTTP/1."):
                row["bad_bytes"] += 1
                sample("bad_bytes", "%s sent %s %s, doppel emitted %r" % (rid, exp[0], exp[1], first[:120]))
            elif exp[2]:
                te = (header(head, "Transfer-Encoding") or "").lower()
                b = dechunk(body) if "chunked" in te else body
                if b is None or hashlib.sha1(b).hexdigest() != exp[2]:
                    row["bad_bytes"] += 1
                    sample("bad_bytes", "%s %s %s: body differs (%d bytes)" % (rid, exp[0], exp[1], len(body)))
            if rid in seen_req_ids:
                row["dup"] += 1
                sample("dup", "%s emitted twice" % rid)
            seen_req_ids.add(rid)
    for mid, payloads in resps.items():
        for p in payloads:
            row["responses"] += 1
            head, _ = split_head(p)
            echo = header(head, "X-Echo-Id")
            status = head.split(b"\r\n", 1)[0].decode("latin-1")
            if not status.startswith("HTTP/1."):
                row["bad_bytes"] += 1
                sample("bad_bytes", "response does not start with a status line: %r" % status[:80])
            if mid not in reqs:
                row["orphans"] += 1
                sample("orphan", "response %s (X-Echo-Id %s) has no request" % (mid.decode(), echo))
                continue
            rid = header(split_head(reqs[mid][0])[0], "X-Req-Id")
            if len(reqs[mid]) > 1 or len(payloads) > 1:
                row["wrong"] += 1
                sample("WRONG", "doppel id %s holds %d requests and %d responses" % (mid.decode(), len(reqs[mid]),
                                                                                  len(payloads)))
            elif echo is not None and echo == rid:
                row["right"] += 1
                right_ids.add(rid)
                want = sent.get(rid, {}).get("status")
                if want and not status.startswith("HTTP/1.1 %d " % want):
                    row["bad_bytes"] += 1
                    sample("bad_bytes", "response to %s: the client saw status %d, doppel emitted %r" %
                           (rid, want, status[:40]))
            else:
                row["wrong"] += 1
                sample("WRONG", "request %s paired with the response to %s (%s)" % (rid, echo, status[:40]))
    row["unpaired"] = sum(1 for mid in reqs if mid not in resps)
    missed = [i for i in got if i not in right_ids and i not in lenient]
    row["missed"] = len(missed)
    if not args.damaged:
        for i in sorted(missed)[:5]:
            sample("missed", "%s completed by the client but not paired (%s)" % (i, "request emitted" if i in
                                                                               seen_req_ids else "no request"))
    row["doppel"] = parse_summary(args.summary) if os.path.exists(args.summary) else {}
    row["tshark"] = tshark_figures(args.tshark)
    row["failures"] = []
    for k in ("wrong", "orphans", "bad_bytes", "dup"):
        if row[k]:
            row["failures"].append("%s=%d" % (k, row[k]))
    if not args.damaged and missed:
        row["failures"].append("undamaged but %d completed exchanges not paired right" % len(missed))
    if args.doppel_rc != 0:
        row["failures"].append("doppel exited %d" % args.doppel_rc)
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print_row(row)


COLS = [("pcap", 24), ("sent", 7), ("compl", 7), ("reqs", 7), ("resps", 7), ("right", 7), ("WRONG", 6),
        ("orphan", 6), ("unpair", 6), ("badbyt", 6), ("dup", 4), ("missed", 7), ("d.miss", 6), ("d.drops", 7),
        ("ts.pair", 7), ("ts.right", 8)]


def cells(row):
    d = row.get("doppel", {})
    drops = sum(v for k, v in d.items() if k.startswith("dropped."))
    ts = row.get("tshark") or {}
    return [row["label"], row["sent"], row["completed"], row["requests"], row["responses"], row["right"],
            row["wrong"], row["orphans"], row["unpaired"], row["bad_bytes"], row["dup"], row["missed"],
            d.get("responses.missing", "-"), drops, ts.get("tshark_paired", "-"), ts.get("tshark_right", "-")]


def fmt(values):
    return " ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, (_, w)) in enumerate(zip(values, COLS)))


def print_row(row):
    print(fmt([c for c, _ in COLS]))
    print(fmt(cells(row)))
    d = row.get("doppel", {})
    if d:
        print("  doppel: " + ", ".join("%s=%d" % (k, v) for k, v in sorted(d.items()) if v and (
            k.startswith("dropped.") or k.startswith("responses") or k.startswith("requests") or
            k.startswith("connections.mid") or k.startswith("segments.dup") or k.startswith("bytes.gap"))))
    for s in row["samples"]:
        print("  " + s)
    for f in row["failures"]:
        print("  FAIL " + f)


def table(path):
    rows = [json.loads(l) for l in open(path)]
    print(fmt([c for c, _ in COLS]))
    for r in rows:
        print(fmt(cells(r)) + ("  FAIL" if r["failures"] else ""))
    print("columns: sent/compl = exchanges the clients sent/completed; reqs/resps = records doppel emitted;")
    print("  right/WRONG = pairs judged by X-Req-Id == X-Echo-Id; orphan = response without its request;")
    print("  unpair = request emitted without a response; badbyt = a record not as on the wire; dup = a request")
    print("  emitted twice; missed = completed exchanges not paired right; d.miss = doppel responses.missing;")
    print("  d.drops = sum of doppel dropped.*; ts.* = tshark's own pairing (informational)")
    failed = [r for r in rows if r["failures"]]
    for r in failed:
        print("FAIL %s: %s" % (r["label"], "; ".join(r["failures"])))
    print("differential: %d pcaps, %d failed; %d exchanges sent in the undamaged recordings" %
          (len(rows), len(failed), sum(r["sent"] for r in rows if not r["damaged"])))
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    one = sub.add_parser("one")
    one.add_argument("--label", required=True)
    one.add_argument("--scenario", required=True)
    one.add_argument("--gor", required=True)
    one.add_argument("--summary", required=True)
    one.add_argument("--clients", required=True)
    one.add_argument("--damaged", action="store_true")
    one.add_argument("--tshark")
    one.add_argument("--doppel-rc", type=int, default=0)
    one.add_argument("--results", required=True)
    t = sub.add_parser("table")
    t.add_argument("results")
    args = ap.parse_args()
    if args.cmd == "one":
        judge(args)
    else:
        sys.exit(table(args.results))


if __name__ == "__main__":
    main()
