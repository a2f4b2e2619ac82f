"""HTTP/2 requests and responses as tshark dissected them, for the live capture checks.

http2_streams(pdml_root): {(tcp stream, stream id): {"method", "path", "status"}} from the HEADERS
frames of a PDML document (`tshark -T pdml`), interim (1xx) statuses left out.
"""
import collections


def http2_streams(pdml_root):
    streams = collections.defaultdict(dict)
    for packet in pdml_root.iter("packet"):
        tcp_stream = next((f.get("show") for f in packet.iter("field") if f.get("name") == "tcp.stream"), None)
        for frame in packet.iter("field"):
            if frame.get("name") != "http2.stream":
                continue
            kind = stream_id = None
            headers = {}
            for f in frame:
                if f.get("name") == "http2.type":
                    kind = f.get("show")
                elif f.get("name") == "http2.streamid":
                    stream_id = f.get("show")
                elif f.get("name") == "http2.header":
                    name = next((g.get("show") for g in f if g.get("name") == "http2.header.name"), None)
                    value = next((g.get("show") for g in f if g.get("name") == "http2.header.value"), None)
                    if name is not None:
                        headers[name] = value
            if kind != "1":  # HEADERS
                continue
            s = streams[(tcp_stream, stream_id)]
            if ":method" in headers:
                s["method"], s["path"] = headers[":method"], headers.get(":path")
            elif ":status" in headers and not headers[":status"].startswith("1"):
                s["status"] = headers[":status"]
    return streams
