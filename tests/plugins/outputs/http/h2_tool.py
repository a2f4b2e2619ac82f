#!/usr/bin/python3
"""Test helper for HTTP/2 replay (replay_h2.sh, bench/h2_replay.sh).

  h2_tool.py docroot DIR                        files f0..f7 of varied sizes (random bytes)
  h2_tool.py generate OUT.gor DIR N [--h1]      N requests marked proto=h2 (--h1: unmarked):
                                                GETs of DIR's files and POSTs with bodies
  h2_tool.py mark-h2 IN.gor OUT.gor             the same records, marked proto=h2
  h2_tool.py check IN.gor REPLIES.gor DIR h2|h1 every request answered 200, byte-exact (file or
                                                echoed body), marked proto=h2 with a stream id or not
  h2_tool.py nghttpd-log LOG                    prints "connections=C max_stream=S requests=R"
                                                from `nghttpd -v` output
  h2_tool.py grpc-stubs OUT_DIR                 replay_echo_pb2.py via python3 -m grpc_tools.protoc
  h2_tool.py grpc-serve PORT OUT_DIR            the Echo service on 127.0.0.1:PORT until killed
  h2_tool.py grpc-requests OUT.gor OUT_DIR      h2-form gRPC requests (length prefix + protobuf)
  h2_tool.py grpc-check REPLIES.gor OUT_DIR     statuses, trailers and decoded messages as expected
"""
import os
import random
import re
import struct
import subprocess
import sys

SEP = "\n\U0001F435\U0001F648\U0001F649\n".encode()
HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [0, 1, 100, 1000, 16384, 16385, 100000, 1000000]


def read_records(path):
    out = []
    for rec in open(path, "rb").read().split(SEP):
        if not rec.strip():
            continue
        head, _, payload = rec.partition(b"\n")
        fields = head.decode().split(" ")
        ext = dict(f.split("=", 1) for f in fields[4:] if "=" in f)
        out.append({"kind": fields[0], "id": fields[1], "ext": ext, "payload": payload})
    return out


def write_record(f, kind, rid, ts, payload, h2, stream=1):
    ext = b" proto=h2 stream=%d" % stream if h2 else b""
    f.write(b"%s %s %d 0%s\n" % (kind.encode(), rid.encode(), ts, ext) + payload + SEP)


def docroot(d):
    os.makedirs(d, exist_ok=True)
    rnd = random.Random(7)
    for i, size in enumerate(SIZES):
        with open(os.path.join(d, "f%d" % i), "wb") as f:
            f.write(bytes(rnd.getrandbits(8) for _ in range(size)))


def post_body(i):
    rnd = random.Random(i)
    return bytes(rnd.getrandbits(8) for _ in range(rnd.choice([1, 10, 5000, 70000])))


def generate(out, d, n, h2=True):
    with open(out, "wb") as f:
        for i in range(n):
            if i % 3 == 2:
                body = post_body(i)
                p = (b"POST /upload/%d HTTP/1.1\r\nhost: prod.example.com\r\ncontent-type: application/octet-stream\r\n"
                     b"content-length: %d\r\n\r\n" % (i, len(body))) + body
            else:
                p = b"GET /f%d HTTP/1.1\r\nhost: prod.example.com\r\nuser-agent: replay-test\r\naccept: */*\r\n\r\n" % (i % len(SIZES))
            write_record(f, "1", "%024x" % (0xF00000 + i), 1_700_000_000_000_000_000 + i, p, h2, 2 * i + 1)


def mark_h2(src, dst):
    with open(dst, "wb") as f:
        for i, r in enumerate(read_records(src)):
            write_record(f, r["kind"], r["id"], 1_700_000_000_000_000_000 + i, r["payload"], True, 2 * i + 1)


def parse_response(p):
    head, _, body = p.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:]]
    hmap = {k.lower(): v for k, v in headers}
    trailers = {}
    if hmap.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while True:
            line, _, body = body.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                break
            out += body[:size]
            body = body[size + 2:]
        for l in body.decode("latin-1").split("\r\n"):
            if ":" in l:
                k, v = l.split(":", 1)
                trailers[k.strip().lower()] = v.strip()
        body = out
    elif "content-length" in hmap:
        body = body[: int(hmap["content-length"])]
    return status, hmap, body, trailers


def check(src, replies, d, proto):
    reqs = {r["id"]: r for r in read_records(src)}
    reps = {r["id"]: r for r in read_records(replies) if r["kind"] == "3"}
    bad = []
    for rid, r in reqs.items():
        rep = reps.get(rid)
        if rep is None:
            bad.append("%s: no reply" % rid)
            continue
        if not rep["payload"]:
            bad.append("%s: error reply" % rid)
            continue
        if (rep["ext"].get("proto") == "h2") != (proto == "h2") or (proto == "h2" and int(rep["ext"].get("stream", 0)) <= 0):
            bad.append("%s: reply marked %r, expected %s" % (rid, rep["ext"], proto))
        status, _, body, _ = parse_response(rep["payload"])
        line = r["payload"].split(b"\r\n", 1)[0].decode()
        method, target = line.split(" ")[:2]
        if method == "GET":
            want = open(os.path.join(d, target.lstrip("/")), "rb").read()
        else:
            want = r["payload"].partition(b"\r\n\r\n")[2]
        if status != 200 or body != want:
            bad.append("%s: %s %s -> %d, %d bytes, expected %d" % (rid, method, target, status, len(body), len(want)))
    if bad:
        print("\n".join(bad[:20]))
        sys.exit("%d of %d requests not answered byte-exact" % (len(bad), len(reqs)))
    print("%d replies byte-exact over %s" % (len(reqs), proto))


def nghttpd_log(path):
    conns, max_stream, requests = set(), 0, 0
    for line in open(path, errors="replace"):
        m = re.match(r"\[id=(\d+)\] .*recv HEADERS frame <.*stream_id=(\d+)>", line)
        if m:
            conns.add(m.group(1))
            max_stream = max(max_stream, int(m.group(2)))
            requests += 1
    print("connections=%d max_stream=%d requests=%d" % (len(conns), max_stream, requests))


def grpc_stubs(out):
    os.makedirs(out, exist_ok=True)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", HERE, "--python_out=" + out, "replay_echo.proto"],
                   check=True)


def load(out):
    sys.path.insert(0, out)
    import replay_echo_pb2  # noqa: E402 (generated at test time)
    return replay_echo_pb2


def grpc_serve(port, out):
    from concurrent import futures
    import grpc
    pb = load(out)

    def say(req, ctx):
        return pb.Note(text="said " + req.text, count=req.count + 1)

    def repeat(req, ctx):
        for i in range(req.count):
            yield pb.Note(text="%s #%d" % (req.text, i), count=i)

    def fail(req, ctx):
        ctx.abort(grpc.StatusCode.NOT_FOUND, "no note " + req.text)

    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(say, pb.Note.FromString, pb.Note.SerializeToString),
        "Repeat": grpc.unary_stream_rpc_method_handler(repeat, pb.Note.FromString, pb.Note.SerializeToString),
        "Fail": grpc.unary_unary_rpc_method_handler(fail, pb.Note.FromString, pb.Note.SerializeToString),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("doppel.replaytest.Echo", handlers),))
    server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    print("serving on %d" % port, flush=True)
    server.wait_for_termination()


GRPC_CALLS = [("Say", "hello", 1), ("Repeat", "echo", 3), ("Fail", "missing", 0), ("Say", "x" * 100000, 7)]


def grpc_requests(path, out):
    pb = load(out)
    with open(path, "wb") as f:
        for i, (method, text, count) in enumerate(GRPC_CALLS):
            msg = pb.Note(text=text, count=count).SerializeToString()
            body = struct.pack(">BI", 0, len(msg)) + msg  # gRPC framing: uncompressed, length
            p = (b"POST /doppel.replaytest.Echo/%s HTTP/1.1\r\nhost: grpc.example\r\ncontent-type: application/grpc\r\n"
                 b"te: trailers\r\ngrpc-timeout: 5S\r\ncontent-length: %d\r\n\r\n" % (method.encode(), len(body))) + body
            write_record(f, "1", "%024x" % (0xA00 + i), 1_700_000_000_000_000_000 + i, p, True, 2 * i + 1)


def grpc_messages(body, pb):
    out = []
    while body:
        flag, length = struct.unpack(">BI", body[:5])
        out.append(pb.Note.FromString(body[5:5 + length]))
        body = body[5 + length:]
    return out


def grpc_check(replies, out):
    pb = load(out)
    reps = {r["id"]: r for r in read_records(replies) if r["kind"] == "3"}
    problems = []
    for i, (method, text, count) in enumerate(GRPC_CALLS):
        rep = reps.get("%024x" % (0xA00 + i))
        if rep is None or not rep["payload"]:
            problems.append("%s: no response" % method)
            continue
        if rep["ext"].get("proto") != "h2":
            problems.append("%s: reply not marked proto=h2" % method)
        status, headers, body, trailers = parse_response(rep["payload"])
        # A failing call may answer trailers-only (one HEADERS): grpc-status is then a header.
        grpc = dict(headers)
        grpc.update(trailers)
        msgs = grpc_messages(body, pb)
        if method == "Fail":
            ok = grpc.get("grpc-status") == "5" and grpc.get("grpc-message") == "no note missing" and not msgs
        elif method == "Say":
            ok = ("grpc-status" in trailers and trailers["grpc-status"] == "0" and len(msgs) == 1 and
                  msgs[0].text == "said " + text and msgs[0].count == count + 1)
        else:
            ok = (trailers.get("grpc-status") == "0" and
                  [m.text for m in msgs] == ["%s #%d" % (text, k) for k in range(count)])
        if status != 200 or not ok:
            problems.append("%s: status %d, grpc %r, %d messages" % (method, status,
                            {k: v for k, v in grpc.items() if k.startswith("grpc-")}, len(msgs)))
        else:
            print("%s: grpc-status %s, %d message(s) as expected" % (method, grpc.get("grpc-status"), len(msgs)))
    if problems:
        sys.exit("\n".join(problems))


def main():
    a = sys.argv[1:]
    cmd = a[0]
    if cmd == "docroot":
        docroot(a[1])
    elif cmd == "generate":
        generate(a[1], a[2], int(a[3]), h2="--h1" not in a)
    elif cmd == "mark-h2":
        mark_h2(a[1], a[2])
    elif cmd == "check":
        check(a[1], a[2], a[3], a[4])
    elif cmd == "nghttpd-log":
        nghttpd_log(a[1])
    elif cmd == "grpc-stubs":
        grpc_stubs(a[1])
    elif cmd == "grpc-serve":
        grpc_serve(int(a[1]), a[2])
    elif cmd == "grpc-requests":
        grpc_requests(a[1], a[2])
    elif cmd == "grpc-check":
        grpc_check(a[1], a[2])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
