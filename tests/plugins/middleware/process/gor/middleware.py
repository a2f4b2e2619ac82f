"""Stand-in for `gor.middleware`: AsyncioGor (and TornadoGor, same behaviour) read hex lines on
stdin and dispatch them to callbacks one at a time, in the order they arrive."""
import asyncio
import binascii
import sys

_CHANNELS = {"1": "request", "2": "response", "3": "replay"}


class GorMessage:
    def __init__(self, msg_id, msg_type, meta, raw_meta, http):
        self.id = msg_id
        self.type = msg_type
        self.meta = meta
        self.raw_meta = raw_meta
        self.http = http


class Gor:
    def __init__(self, *args, **kwargs):
        self.callbacks = {}

    def on(self, chan, callback, idx=None, **kwargs):
        key = chan if idx is None else "%s#%s" % (chan, idx)
        self.callbacks.setdefault(key, []).append((callback, kwargs))
        return self

    def parse_message(self, line):
        try:
            data = binascii.unhexlify(line.strip())
            header, _, body = data.partition(b"\n")
            meta = header.decode().split(" ")
            return GorMessage(meta[1], meta[0], meta, header.decode(), body.decode("utf-8", "surrogateescape"))
        except Exception as e:  # the package logs and skips what it cannot parse
            sys.stderr.write("cannot parse %r: %s\n" % (line[:80], e))
            return None

    def emit(self, msg):
        out = msg
        chan = _CHANNELS.get(msg.type)
        for key in ("message", chan, "%s#%s" % (chan, msg.id)):
            for callback, kwargs in list(self.callbacks.get(key, ())):
                replaced = callback(self, msg, **kwargs)
                if replaced:
                    out = replaced
        if out:
            self.write(out)

    def write(self, msg):
        body = msg.http.encode("utf-8", "surrogateescape") if isinstance(msg.http, str) else msg.http
        raw_meta = msg.raw_meta.encode() if isinstance(msg.raw_meta, str) else msg.raw_meta
        sys.stdout.write(binascii.hexlify(raw_meta + b"\n" + body).decode() + "\n")
        sys.stdout.flush()

    # HTTP helpers (the status code sits where a request has its path).
    def http_method(self, payload):
        return payload.split(" ", 1)[0]

    def http_path(self, payload):
        return payload.split("\r\n", 1)[0].split(" ")[1]

    def http_status(self, payload):
        return self.http_path(payload)

    def http_body(self, payload):
        head, sep, body = payload.partition("\r\n\r\n")
        return body if sep else ""

    def http_headers(self, payload):
        head = payload.partition("\r\n\r\n")[0]
        headers = {}
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name] = value.strip()
        return headers

    def http_header(self, payload, name):
        for key, value in self.http_headers(payload).items():
            if key.lower() == name.lower():
                return {"name": key.lower(), "value": value}
        return None

    def set_http_header(self, payload, name, value):
        head, sep, body = payload.partition("\r\n\r\n")
        lines = head.split("\r\n")
        lines = [lines[0]] + [l for l in lines[1:] if l.partition(":")[0].lower() != name.lower()]
        lines.insert(1, "%s: %s" % (name, value))
        return "\r\n".join(lines) + sep + body

    def run(self):
        raise NotImplementedError


class AsyncioGor(Gor):
    def run(self):
        asyncio.run(self._run())

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            msg = self.parse_message(line)
            if msg:
                self.emit(msg)


class TornadoGor(AsyncioGor):
    pass
