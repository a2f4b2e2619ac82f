"""Reading doppel's .gor output in the live capture checks (http2_check.py, tls/tls_check.py).

records(): every record as {"kind", "id", "meta" (doppel's key=value header fields), "payload"};
pairs(): id -> {"1": requests, "2": responses}; split_message(): an HTTP/1.1-form message's
head, headers and body with its framing undone (chunked or content-length, checked).
"""
import collections

SEP = "\n\U0001F435\U0001F648\U0001F649\n".encode()


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


def pairs(path):
    """id -> {"1": [requests], "2": [responses]}: a well-paired capture has one of each."""
    by_id = collections.defaultdict(lambda: {"1": [], "2": []})
    for r in records(path):
        by_id[r["id"]][r["kind"]].append(r)
    return by_id


def split_message(payload):
    """(head bytes including the blank line, [(lowercase name, value)], body with its framing undone)."""
    head, rest = payload.split(b"\r\n\r\n", 1)
    headers = []
    for line in head.split(b"\r\n")[1:]:
        name, value = line.split(b":", 1)
        headers.append((name.strip().lower().decode(), value.strip().decode()))
    names = dict(headers)
    if names.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size_line, rest = rest.split(b"\r\n", 1)
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            body += rest[:n]
            if rest[n:n + 2] != b"\r\n":
                raise ValueError("chunk of %d bytes not followed by CRLF" % n)
            rest = rest[n + 2:]
        return head + b"\r\n\r\n", headers, body
    length = int(names.get("content-length", "0"))
    if len(rest) != length:
        raise ValueError("body of %d bytes, content-length %d" % (len(rest), length))
    return head + b"\r\n\r\n", headers, rest
