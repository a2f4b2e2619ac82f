"""Write checks for doppel's `process` comparator as plain Python functions.

    from doppel_compare import comparator, run, Difference

    @comparator("hints_py")          # serves [comparators.hints_py]; @comparator() serves the rest
    def hints(ex):
        if not (ex.replay.json or {}).get("results", {}).get("hint_list"):
            return Difference("results.hint_list", "empty", message="replay has no hints")
        return True

    if __name__ == "__main__":
        run()

A check gets an Exchange and returns its verdict:
  True, None, [] or an empty iterable   the responses agree
  False                                 they differ (doppel reports a generic difference)
  "text"                                one difference with that message
  Difference(...) or a dict             one difference (path, kind, original, replay, message)
  a list, tuple or generator of those   those differences
  an awaitable (async def)              awaited, then read as above
An exception becomes an error answer (type, message, last frames); so does any other value.

Exchange: .id (judgement id), .exchange_id, .comparator, .endpoint, .against ("replay", or
"baseline" when doppel learns noise between two copies of the old service), .request (None when
doppel never saw it), .original, .replay. Every side has .headers (case-insensitive, read-only:
h["content-type"], h.get(name, default), h.get_all(name), iteration over (name, value) pairs in
wire order, len), .body (bytes), .text (str), .json (the parsed body, None when it is not JSON),
.json_error (why not, else None) and .body_error (doppel could not fully decode the body, else
None). Responses add .status (0 when not HTTP) and .latency_ms; the request adds .method,
.target, .path and .query (parse_qs of the query string). Everything is computed on first use,
so a check that reads only .status pays for no decoding.

The protocol (version 1), one JSON object per line each way:
  doppel -> check  {"id": 42, "exchange": "8f1c...", "comparator": "hints_py", "endpoint": "...",
                    "against": "replay", "request": {...} or null, "original": {...}, "replay": {...}}
                   A side holds "headers" ([name, value] pairs) and the body as exactly one of
                   "body" (UTF-8 text), "body_base64" or "body_file" (a temporary file, deleted
                   once answered), maybe "json" (the parsed body) and "body_error".
  check -> doppel  {"hello": {"protocol": 1, "body": "base64", "json": false}}   once, first
                   {"id": 42, "ok": true}
                   {"id": 42, "ok": false, "differences": [{"path": ..., "kind": ..., ...}]}
                   {"id": 42, "error": "text"}
Several judgements are in flight at once and answers may come in any order. run() says hello,
then answers every line of stdin until it ends. doppel counts any other stdout line as garbage,
so run() sends print() and anything else written to stdout to stderr, which doppel logs.

doppel puts this file's directory on PYTHONPATH (and in DOPPEL_HELPERS) for the programs it
starts. Standard library only; Python 3.8+.
"""
import asyncio
import base64
import dataclasses
import inspect
import json
import os
import sys
import traceback
from collections.abc import Iterator
from typing import Any, Optional
from urllib.parse import parse_qs

__all__ = ["comparator", "run", "Difference", "Exchange", "Request", "Response", "Headers"]

HELLO = b'{"hello":{"protocol":1,"body":"base64","json":false}}\n'
ERROR_LIMIT = 2048  # characters of an error answer's text: a message and a few frames
READ_SIZE = 1 << 20  # the most read at once, and the pipe size asked for

_checks = {}  # comparator name -> check
_catch_all = None


def comparator(name=None):
    """Registers the decorated function as the check of [comparators.NAME].

    Without a name (`@comparator()` or bare `@comparator`) it serves every name that has no
    check of its own. A program with a single check serves every name anyway.
    """
    if callable(name):
        return comparator()(name)

    def register(check):
        global _catch_all
        if name is None:
            if _catch_all is not None:
                raise ValueError("two catch-all checks: %s and %s" % (_catch_all.__name__, check.__name__))
            _catch_all = check
        else:
            if name in _checks:
                raise ValueError("two checks for comparator %r: %s and %s" % (name, _checks[name].__name__, check.__name__))
            _checks[name] = check
        return check

    return register


@dataclasses.dataclass
class Difference:
    """One way the responses differ. Fields left None are not sent."""
    path: Optional[str] = None
    kind: str = "changed"
    original: Any = None
    replay: Any = None
    message: Optional[str] = None

    def to_json(self):
        return {k: v for k, v in vars(self).items() if v is not None}


class Headers:
    """Read-only view of [name, value] pairs: lookups ignore case, iteration keeps wire order."""
    __slots__ = ("_pairs", "_by_name")

    def __init__(self, pairs):
        self._pairs = pairs
        self._by_name = None

    def _values(self, name):
        if self._by_name is None:
            self._by_name = {}
            for n, v in self._pairs:
                self._by_name.setdefault(n.lower(), []).append(v)
        return self._by_name.get(name.lower(), ())

    def __getitem__(self, name):
        """The first value of `name`; KeyError when absent."""
        values = self._values(name)
        if not values:
            raise KeyError(name)
        return values[0]

    def get(self, name, default=None):
        values = self._values(name)
        return values[0] if values else default

    def get_all(self, name):
        return list(self._values(name))

    def __contains__(self, name):
        return bool(self._values(name))

    def __iter__(self):
        return (tuple(pair) for pair in self._pairs)

    def __len__(self):
        return len(self._pairs)

    def __repr__(self):
        return "Headers(%r)" % [tuple(pair) for pair in self._pairs]


_UNPARSED = object()


def _reject_constant(name):
    raise ValueError("%s is not JSON" % name)


# doppel's JSON (simdjson) refuses NaN and Infinity; so does .json, so both agree on what is JSON.
_json_decoder = json.JSONDecoder(parse_constant=_reject_constant)


class _Side:
    __slots__ = ("_raw", "_body", "_json", "_json_error", "_headers")

    def __init__(self, raw):
        self._raw = raw
        self._body = None
        self._json = None
        self._json_error = _UNPARSED
        self._headers = None

    @property
    def headers(self):
        if self._headers is None:
            self._headers = Headers(self._raw.get("headers") or [])
        return self._headers

    @property
    def body(self):
        """The body's bytes, de-chunked and gunzipped by doppel."""
        if self._body is None:
            raw = self._raw
            if "body_base64" in raw:
                self._body = base64.b64decode(raw["body_base64"])
            elif "body_file" in raw:
                with open(raw["body_file"], "rb") as f:
                    self._body = f.read()
            else:
                self._body = raw.get("body", "").encode("utf-8", "surrogatepass")
        return self._body

    @property
    def text(self):
        """The body as text (UTF-8; undecodable bytes become U+FFFD)."""
        body = self._raw.get("body")
        return body if body is not None else self.body.decode("utf-8", "replace")

    @property
    def json(self):
        """The body parsed as JSON, None when it is not JSON (see json_error)."""
        if self._json_error is _UNPARSED:
            self._parse_json()
        return self._json

    @property
    def json_error(self):
        """Why the body is not JSON, None when it is."""
        if self._json_error is _UNPARSED:
            self._parse_json()
        return self._json_error

    def _parse_json(self):
        raw = self._raw
        if "json" in raw:
            self._json, self._json_error = raw["json"], None
            return
        try:
            text = raw["body"] if "body" in raw else self.body.decode("utf-8")
            self._json, self._json_error = _json_decoder.decode(text), None
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError alike
            self._json, self._json_error = None, str(e)

    @property
    def body_error(self):
        """Why doppel could not fully decode the body (e.g. corrupt gzip), None when it could."""
        return self._raw.get("body_error")


class Request(_Side):
    __slots__ = ()

    @property
    def method(self):
        return self._raw.get("method", "")

    @property
    def target(self):
        return self._raw.get("target", "")

    @property
    def path(self):
        return self._raw.get("path", "")

    @property
    def query(self):
        """The query string as {name: [values]}."""
        _, _, query = self.target.partition("?")
        return parse_qs(query, keep_blank_values=True)

    def __repr__(self):
        return "<Request %s %s>" % (self.method, self.target)


class Response(_Side):
    __slots__ = ()

    @property
    def status(self):
        return self._raw.get("status", 0)

    @property
    def latency_ms(self):
        return self._raw.get("latency_ms")

    def __repr__(self):
        return "<Response %s>" % self.status


class Exchange:
    """One judgement: a request, the original service's response and the one to judge."""
    __slots__ = ("_raw", "_request", "_original", "_replay")

    def __init__(self, raw):
        self._raw = raw
        self._request = _UNPARSED
        self._original = None
        self._replay = None

    @property
    def id(self):
        return self._raw["id"]

    @property
    def exchange_id(self):
        return self._raw.get("exchange", "")

    @property
    def comparator(self):
        return self._raw.get("comparator", "")

    @property
    def endpoint(self):
        return self._raw.get("endpoint", "")

    @property
    def against(self):
        return self._raw.get("against", "replay")

    @property
    def request(self):
        if self._request is _UNPARSED:
            raw = self._raw.get("request")
            self._request = Request(raw) if raw is not None else None
        return self._request

    @property
    def original(self):
        if self._original is None:
            self._original = Response(self._raw.get("original") or {})
        return self._original

    @property
    def replay(self):
        if self._replay is None:
            self._replay = Response(self._raw.get("replay") or {})
        return self._replay

    def __repr__(self):
        return "<Exchange id=%r comparator=%r endpoint=%r>" % (self.id, self.comparator, self.endpoint)


def _check_for(name):
    check = _checks.get(name) or _catch_all
    if check is None and len(_checks) == 1:
        check = next(iter(_checks.values()))
    return check


def _dumps(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _ok(judgement):
    return '{"id":%d,"ok":true}\n' % judgement if type(judgement) is int else _dumps({"id": judgement, "ok": True}) + "\n"


def _error(judgement, text):
    return _dumps({"id": judgement, "error": text}) + "\n"


def _difference(item):
    if isinstance(item, Difference):
        return item.to_json()
    if isinstance(item, dict):
        return item
    if isinstance(item, str):
        return {"message": item}
    raise TypeError("a difference must be a Difference, a dict or a str, not %s" % type(item).__name__)


def _answer(judgement, result):
    """The answer line for a check's result; raises TypeError for a result it cannot read."""
    if result is True or result is None:
        return _ok(judgement)
    if result is False:
        return _dumps({"id": judgement, "ok": False}) + "\n"
    if isinstance(result, (str, Difference, dict)):
        differences = [_difference(result)]
    elif isinstance(result, (list, tuple, Iterator)):
        differences = [_difference(item) for item in result]
        if not differences:
            return _ok(judgement)
    else:
        raise TypeError("the check returned %s; expected True, False, None, a str, a Difference, "
                        "a dict, or a list of them" % type(result).__name__)
    return _dumps({"id": judgement, "ok": False, "differences": differences}) + "\n"


def _describe(exc):
    """The exception's type and message, then its last frames outside this module."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:ERROR_LIMIT // 2]
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__][-3:]
    if frames:
        text += "\n" + "".join(traceback.format_list(frames)).rstrip()
    return text[:ERROR_LIMIT]


def _judge(record):
    """The answer line for one judgement, or a coroutine that will produce it."""
    judgement = record["id"]
    check = _check_for(record.get("comparator"))
    if check is None:
        return _error(judgement, "no check registered for comparator %s (registered: %s)"
                      % (record.get("comparator"), ", ".join(sorted(_checks)) or "none"))
    try:
        result = check(Exchange(record))
        if inspect.isawaitable(result):
            return _settle(judgement, result)
        return _answer(judgement, result)
    except Exception as e:
        return _error(judgement, _describe(e))


async def _settle(judgement, awaitable):
    try:
        return _answer(judgement, await awaitable)
    except Exception as e:
        return _error(judgement, _describe(e))


async def _gather(awaitables):
    return await asyncio.gather(*awaitables)  # inside the loop, so that it is the loop used


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _warn(message):
    sys.stderr.write("doppel_compare: %s\n" % message)
    sys.stderr.flush()


class _Judge:
    """Turns the lines of one read into their answers; the async checks among them run together."""

    def __init__(self):
        self._loop = None  # made on the first async check, then kept: checks may hold loop-bound state

    def lines(self, lines):
        answers = []
        pending = []
        for line in lines:
            try:
                text = str(line, "utf-8")
                if not text or text.isspace():
                    continue
                record = _json_decoder.decode(text)
                if type(record) is not dict or "id" not in record:
                    raise ValueError("not an object with an id")
            except ValueError as e:  # UnicodeDecodeError and JSONDecodeError alike
                _warn("skipped a line that is not a judgement (%s): %r" % (e, bytes(line[:200])))
                continue
            answer = _judge(record)
            if type(answer) is str:
                answers.append(answer)
            else:
                pending.append(answer)
        if pending:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            answers.extend(self._loop.run_until_complete(_gather(pending)))
        return "".join(answers).encode("utf-8", "surrogatepass")


def _split_lines(buffer, size, tail):
    """The lines that end in buffer[:size], and the new tail: the pieces of the line that does not.

    `tail` holds the pieces of a line begun in earlier reads. A line read whole is a view into
    the buffer, valid until the next read; copying each read out of the buffer would allocate a
    megabyte per read, and fresh megabytes cost page faults that show in the throughput.
    """
    view = memoryview(buffer)
    lines = []
    start = 0
    while True:
        end = buffer.find(b"\n", start, size)
        if end < 0:
            break
        if tail:
            tail.append(view[start:end])
            lines.append(b"".join(tail))
            tail = []
        else:
            lines.append(view[start:end])
        start = end + 1
    if start < size:
        tail.append(bytes(view[start:size]))
    return lines, tail


def _enlarge_pipe(fd):
    """Lets doppel queue up to a megabyte of judgements: the fewer, larger reads and writes
    that follow are worth a third more judgements per second. Linux only; elsewhere a no-op."""
    try:
        import fcntl
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), READ_SIZE)
    except (ImportError, OSError):
        pass  # not a pipe, not Linux, or above /proc/sys/fs/pipe-max-size: the default will do


def run():
    """Says hello, then answers every judgement on stdin; returns at the end of stdin."""
    out = os.dup(1)
    # Only answers may reach doppel's end of stdout: user print()s, C extensions and child
    # processes all write to fd 1 or sys.stdout, so both now lead to stderr.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _enlarge_pipe(0)
    stdin = open(0, "rb", buffering=0, closefd=False)
    buffer = bytearray(READ_SIZE)  # reused for the same reason as in _split_lines
    tail = []
    judge = _Judge()
    try:
        _write_all(out, HELLO)
        while True:
            size = stdin.readinto(buffer)
            if not size:
                break
            lines, tail = _split_lines(buffer, size, tail)
            answers = judge.lines(lines)
            if answers:
                _write_all(out, answers)
        answers = judge.lines([b"".join(tail)])  # a last line without its "\n"
        if answers:
            _write_all(out, answers)
    except BrokenPipeError:
        pass  # doppel is gone: nobody is left to answer
    except KeyboardInterrupt:
        raise SystemExit(130)
