"""Checks for helpers_test.py: each comparator name shows one behaviour of doppel_compare.
No catch-all, so an unknown name gets the "no check registered" error."""
import asyncio
import hashlib
import os
import sys

from doppel_compare import Difference, comparator, run


def _side(side):
    if side is None:
        return None
    seen = {
        "body_size": len(side.body),
        "body_sha256": hashlib.sha256(side.body).hexdigest(),
        "text_start": side.text[:40],
        "json": side.json if len(side.body) < 4096 else "(large)",
        "json_error": side.json_error is not None,
        "body_error": side.body_error,
        "headers": [list(pair) for pair in side.headers],
        "header_count": len(side.headers),
        "content_type": side.headers.get("CONTENT-type"),
        "first_cookie": side.headers["set-cookie"] if "Set-Cookie" in side.headers else None,
        "cookies": side.headers.get_all("set-cookie"),
    }
    if hasattr(side, "status"):
        seen.update(status=side.status, latency_ms=side.latency_ms)
    else:
        seen.update(method=side.method, target=side.target, path=side.path, query=side.query)
    return seen


@comparator("inspect")
def inspect(ex):
    """Reports everything it sees, as the `original` of one difference."""
    return Difference("seen", "seen", original={
        "id": ex.id, "exchange_id": ex.exchange_id, "comparator": ex.comparator,
        "endpoint": ex.endpoint, "against": ex.against,
        "request": _side(ex.request), "original": _side(ex.original), "replay": _side(ex.replay),
    })


@comparator("status_only")
def status_only(ex):
    return ex.replay.status == ex.original.status


@comparator("none")
def returns_none(ex):
    return None


@comparator("false")
def returns_false(ex):
    return False


@comparator("message")
def returns_message(ex):
    return "replay differs"


@comparator("difference")
def returns_difference(ex):
    return Difference("a.b", "changed", original=1, replay=[2], message="two")


@comparator("dict")
def returns_dict(ex):
    return {"path": "x", "kind": "type"}


@comparator("list")
def returns_list(ex):
    return [Difference("a"), {"path": "b"}, "c"]


@comparator("generator")
def returns_generator(ex):
    yield Difference("g1", "missing")
    yield "g2"


@comparator("empty_list")
def returns_empty_list(ex):
    return []


@comparator("unserialisable")
def returns_unserialisable(ex):
    return Difference("x", original=b"bytes")


@comparator("bad_type")
def returns_bad_type(ex):
    return 42


def _parse_count(text):
    return int(text)


@comparator("raises")
def raises(ex):
    return _parse_count("not a number")


@comparator("async")
async def waits(ex):
    await asyncio.sleep(0.01)
    return Difference("async", message=ex.endpoint)


@comparator("async_raises")
async def waits_then_raises(ex):
    await asyncio.sleep(0)
    raise RuntimeError("async boom")


@comparator("prints")
def prints(ex):
    print("print() from a check")
    sys.stdout.write("sys.stdout.write from a check\n")
    sys.stdout.flush()
    os.write(1, b"os.write(1) from a check\n")
    return True


if __name__ == "__main__":
    run()
