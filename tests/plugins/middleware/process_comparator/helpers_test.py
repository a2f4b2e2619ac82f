#!/usr/bin/env python3
"""Tests of doppel_compare.py, the Python helper of doppel's `process` comparator.

Each test starts a check program from checks/ the way doppel does (PYTHONPATH set to the helpers
directory) and plays doppel's side of the JSON-lines protocol: it reads the hello, writes
judgements, several per write, and reads the answers. Standard library only.

    python3 tests/plugins/middleware/process_comparator/helpers_test.py            # the tests
    python3 tests/plugins/middleware/process_comparator/helpers_test.py --bench [N] # judgements/s
"""
import base64
import hashlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
HELPERS = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "plugins", "middleware",
                                        "process_comparator", "helpers"))
CHECKS = os.path.join(HERE, "checks")
EXAMPLE_CHECKS = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "pipelines", "examples",
                                              "robot-python-checks", "checks.py"))
HELLO = {"hello": {"protocol": 1, "body": "base64", "json": False}}
TIMEOUT = 20  # seconds to wait for any one answer: generous, CI machines are busy


def start(script):
    # No __pycache__ beside the helper in the source tree.
    env = dict(os.environ, PYTHONPATH=HELPERS, DOPPEL_HELPERS=HELPERS, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.Popen([sys.executable, os.path.join(CHECKS, script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


class Program:
    """A check program under test, with doppel's ends of its pipes."""

    def __init__(self, script):
        self.proc = start(script)
        self._lines = queue.Queue()  # stdout lines, then None at its end
        self._stderr = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read_stderr(self):
        for line in self.proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace"))

    @property
    def stderr(self):
        return "".join(self._stderr)

    def read_line(self):
        """The next stdout line as raw bytes, None at its end."""
        return self._lines.get(timeout=TIMEOUT)

    def send(self, *lines):
        """Writes the lines (dicts as JSON, bytes as they are) in one write, as doppel batches."""
        data = b"".join(line if isinstance(line, bytes) else json.dumps(line).encode() + b"\n" for line in lines)
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def answers(self, count):
        """The next `count` answers by id; every stdout line must be one."""
        answers = {}
        while len(answers) < count:
            line = self.read_line()
            if line is None:
                raise AssertionError("stdout ended after %d of %d answers; stderr:\n%s" % (len(answers), count, self.stderr))
            answer = json.loads(line)
            answers[answer["id"]] = answer
        return answers

    def ask(self, *judgements):
        self.send(*judgements)
        answers = self.answers(len(judgements))
        return [answers[j["id"]] for j in judgements]

    def finish(self):
        """Closes stdin; returns the exit code and whatever stdout still said."""
        self.proc.stdin.close()
        rest = []
        for line in iter(self.read_line, None):
            rest.append(line)
        return self.proc.wait(timeout=TIMEOUT), rest


def response(body=b"", form="base64", status=200, headers=(("Content-Type", "application/json"),), **extra):
    """A response side with `body` given the way `form` says: "text" (with "json" when the body is
    JSON, as doppel sends before it reads the hello), "base64" or "file"."""
    side = {"status": status, "headers": [list(h) for h in headers], "latency_ms": 3.5}
    side.update(body_side(body, form))
    side.update(extra)
    return side


def body_side(body, form):
    if form == "text":
        side = {"body": body.decode("utf-8")}
        try:
            side["json"] = json.loads(body)
        except ValueError:
            pass
        return side
    if form == "file":
        with tempfile.NamedTemporaryFile(prefix="doppel-body-", delete=False) as f:
            f.write(body)
        return {"body_file": f.name}
    return {"body_base64": base64.b64encode(body).decode("ascii")}


REQUEST = {"method": "POST", "target": "/v2/robot/input_hint?q=a&q=b&empty=", "path": "/v2/robot/input_hint",
           "headers": [["Host", "robot"], ["Content-Type", "application/json"]], "body": '{"robot_id":"664"}'}


def judgement(id, comparator="inspect", original=None, replay=None, request=REQUEST, **extra):
    line = {"id": id, "exchange": "8f1c%020d" % id, "comparator": comparator,
            "endpoint": "POST /v2/robot/input_hint", "against": "replay", "request": request,
            "original": original if original is not None else response(b'{"a":1}'),
            "replay": replay if replay is not None else response(b'{"a":2}')}
    line.update(extra)
    return line


def seen(answer):
    """What the inspect check saw, from its answer."""
    assert answer.get("ok") is False, answer
    return answer["differences"][0]["original"]


class ProgramTest(unittest.TestCase):
    script = "features.py"

    def setUp(self):
        self.program = Program(self.script)
        self.assertEqual(json.loads(self.program.read_line()), HELLO)

    def tearDown(self):
        if self.program.proc.poll() is None:
            self.program.proc.kill()
            self.program.proc.wait()
        for stream in (self.program.proc.stdin, self.program.proc.stdout, self.program.proc.stderr):
            stream.close()


class ExchangeTest(ProgramTest):
    def test_text_form_with_json(self):
        original = response(b'{"results":{"hint_list":["a"]}}', form="text")
        replay = response(b'{"results":{"hint_list":[]}}', form="text")
        [answer] = self.program.ask(judgement(7, original=original, replay=replay))
        s = seen(answer)
        self.assertEqual((s["id"], s["comparator"], s["endpoint"], s["against"]),
                         (7, "inspect", "POST /v2/robot/input_hint", "replay"))
        self.assertEqual(s["exchange_id"], "8f1c%020d" % 7)
        self.assertEqual(s["original"]["json"], {"results": {"hint_list": ["a"]}})
        self.assertEqual(s["replay"]["json"], {"results": {"hint_list": []}})
        self.assertEqual(s["replay"]["text_start"], '{"results":{"hint_list":[]}}')
        self.assertEqual((s["replay"]["status"], s["replay"]["latency_ms"]), (200, 3.5))

    def test_base64_form_parses_json_lazily(self):
        replay = response(b'{"results": {"intention_list": [1, 2]}}')
        [answer] = self.program.ask(judgement(1, replay=replay))
        self.assertEqual(seen(answer)["replay"]["json"], {"results": {"intention_list": [1, 2]}})
        self.assertFalse(seen(answer)["replay"]["json_error"])

    def test_not_json(self):
        for body in (b"", b"<html>", b'{"a":NaN}', b'{"a":1} trailing'):
            with self.subTest(body=body):
                [answer] = self.program.ask(judgement(1, replay=response(body)))
                self.assertIsNone(seen(answer)["replay"]["json"])
                self.assertTrue(seen(answer)["replay"]["json_error"])

    def test_json_null_is_json(self):
        [answer] = self.program.ask(judgement(1, replay=response(b"null")))
        self.assertIsNone(seen(answer)["replay"]["json"])
        self.assertFalse(seen(answer)["replay"]["json_error"])

    def test_body_file(self):
        body = b'{"from":"a file"}'
        replay = response(body, form="file")
        try:
            [answer] = self.program.ask(judgement(1, replay=replay))
        finally:
            os.unlink(replay["body_file"])
        self.assertEqual(seen(answer)["replay"]["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(seen(answer)["replay"]["json"], {"from": "a file"})

    def test_invalid_utf8_body(self):
        body = b"\xff\xfe not UTF-8 \xc3"
        [answer] = self.program.ask(judgement(1, replay=response(body)))
        s = seen(answer)["replay"]
        self.assertEqual((s["body_size"], s["body_sha256"]), (len(body), hashlib.sha256(body).hexdigest()))
        self.assertEqual(s["text_start"], "\ufffd\ufffd not UTF-8 \ufffd")
        self.assertTrue(s["json_error"])

    def test_body_error(self):
        replay = response(b'{"trunc', body_error="gzip: unexpected end of stream")
        [answer] = self.program.ask(judgement(1, replay=replay))
        self.assertEqual(seen(answer)["replay"]["body_error"], "gzip: unexpected end of stream")
        [answer] = self.program.ask(judgement(2))
        self.assertIsNone(seen(answer)["replay"]["body_error"])

    def test_megabyte_body(self):
        body = (b"0123456789abcdef" * 65536)[:1 << 20]
        for form in ("base64", "text"):
            with self.subTest(form=form):
                [answer] = self.program.ask(judgement(1, replay=response(body, form=form)))
                self.assertEqual(seen(answer)["replay"]["body_size"], 1 << 20)
                self.assertEqual(seen(answer)["replay"]["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_request(self):
        [answer] = self.program.ask(judgement(1))
        r = seen(answer)["request"]
        self.assertEqual((r["method"], r["target"], r["path"]), ("POST", REQUEST["target"], "/v2/robot/input_hint"))
        self.assertEqual(r["query"], {"q": ["a", "b"], "empty": [""]})
        self.assertEqual(r["json"], {"robot_id": "664"})

    def test_request_null(self):
        [answer] = self.program.ask(judgement(1, request=None))
        self.assertIsNone(seen(answer)["request"])

    def test_headers(self):
        headers = [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")]
        [answer] = self.program.ask(judgement(1, replay=response(b"x", headers=headers)))
        s = seen(answer)["replay"]
        self.assertEqual(s["headers"], [list(h) for h in headers])
        self.assertEqual(s["header_count"], 3)
        self.assertEqual(s["content_type"], "text/plain")
        self.assertEqual(s["first_cookie"], "a=1")
        self.assertEqual(s["cookies"], ["a=1", "b=2"])

    def test_status_only_decodes_no_body(self):
        # Bodies that would fail to decode: a check that reads only .status must not touch them.
        original = {"status": 200, "headers": [], "body_file": "/nonexistent/doppel-body"}
        replay = {"status": 200, "headers": [], "body_base64": "!not base64!"}
        [answer] = self.program.ask(judgement(1, "status_only", original=original, replay=replay))
        self.assertEqual(answer, {"id": 1, "ok": True})

    def test_id_echoed_exactly(self):
        ids = [0, 2 ** 53 + 1, 10 ** 30]
        answers = self.program.ask(*[judgement(i, "none") for i in ids])
        self.assertEqual([a["id"] for a in answers], ids)


class VerdictTest(ProgramTest):
    def verdict(self, comparator):
        [answer] = self.program.ask(judgement(5, comparator))
        return answer

    def test_ok(self):
        for comparator in ("none", "empty_list", "status_only"):
            with self.subTest(comparator=comparator):
                self.assertEqual(self.verdict(comparator), {"id": 5, "ok": True})

    def test_false(self):
        self.assertEqual(self.verdict("false"), {"id": 5, "ok": False})

    def test_message(self):
        self.assertEqual(self.verdict("message"), {"id": 5, "ok": False, "differences": [{"message": "replay differs"}]})

    def test_difference(self):
        self.assertEqual(self.verdict("difference")["differences"],
                         [{"path": "a.b", "kind": "changed", "original": 1, "replay": [2], "message": "two"}])

    def test_dict(self):
        self.assertEqual(self.verdict("dict")["differences"], [{"path": "x", "kind": "type"}])

    def test_list(self):
        self.assertEqual(self.verdict("list")["differences"],
                         [{"path": "a", "kind": "changed"}, {"path": "b"}, {"message": "c"}])

    def test_generator(self):
        self.assertEqual(self.verdict("generator")["differences"],
                         [{"path": "g1", "kind": "missing"}, {"message": "g2"}])

    def test_unserialisable_value_becomes_text(self):
        self.assertEqual(self.verdict("unserialisable")["differences"],
                         [{"path": "x", "kind": "changed", "original": "b'bytes'"}])

    def test_bad_type_is_an_error(self):
        answer = self.verdict("bad_type")
        self.assertEqual(set(answer), {"id", "error"})
        self.assertIn("returned int", answer["error"])

    def test_exception_is_an_error_with_its_frames(self):
        answer = self.verdict("raises")
        self.assertEqual(set(answer), {"id", "error"})
        error = answer["error"]
        self.assertTrue(error.startswith("ValueError: invalid literal for int()"), error)
        self.assertIn("features.py", error)
        self.assertIn("in raises", error)
        self.assertIn("in _parse_count", error)
        self.assertNotIn("doppel_compare.py", error)
        self.assertLessEqual(len(error), 2048)

    def test_async(self):
        answers = self.program.ask(*[judgement(i, "async") for i in range(20)])
        for answer in answers:
            self.assertEqual(answer["differences"], [{"path": "async", "kind": "changed", "message": "POST /v2/robot/input_hint"}])

    def test_async_exception(self):
        error = self.verdict("async_raises")["error"]
        self.assertTrue(error.startswith("RuntimeError: async boom"), error)
        self.assertIn("waits_then_raises", error)

    def test_mixed_batch(self):
        comparators = ["none", "async", "message", "raises", "async_raises", "false"] * 10
        answers = self.program.ask(*[judgement(i, c) for i, c in enumerate(comparators)])
        for c, answer in zip(comparators, answers):
            self.assertEqual("error" in answer, c.endswith("raises"), answer)

    def test_print_does_not_reach_stdout(self):
        answers = self.program.ask(*[judgement(i, "prints") for i in range(3)])
        self.assertEqual(answers, [{"id": i, "ok": True} for i in range(3)])
        code, rest = self.program.finish()
        self.assertEqual((code, rest), (0, []))
        for noise in ("print() from a check", "sys.stdout.write from a check", "os.write(1) from a check"):
            self.assertIn(noise, self.program.stderr)


class DispatchTest(ProgramTest):
    def test_unknown_name_without_catch_all(self):
        [answer] = self.program.ask(judgement(1, "nope"))
        self.assertTrue(answer["error"].startswith("no check registered for comparator nope (registered: "), answer)
        self.assertIn("inspect", answer["error"])


class CatchAllTest(ProgramTest):
    script = "catch_all.py"

    def test_named_then_catch_all(self):
        answers = self.program.ask(judgement(1, "named"), judgement(2, "other"))
        self.assertEqual([a["differences"][0]["message"] for a in answers], ["named check", "catch-all for other"])


class SingleCheckTest(ProgramTest):
    script = "trivial.py"

    def test_single_check_serves_every_name(self):
        self.assertEqual(self.program.ask(judgement(1, "anything")), [{"id": 1, "ok": True}])


class StreamTest(ProgramTest):
    def test_garbage_line_is_skipped(self):
        self.program.send(b"this is not JSON\n", b'{"no": "id"}\n', b"\n", judgement(1, "none"))
        self.assertEqual(self.program.answers(1), {1: {"id": 1, "ok": True}})
        code, rest = self.program.finish()
        self.assertEqual((code, rest), (0, []))
        self.assertIn("skipped a line that is not a judgement", self.program.stderr)
        self.assertIn("this is not JSON", self.program.stderr)
        self.assertIn('{"no": "id"}', self.program.stderr)

    def test_line_split_over_writes(self):
        line = json.dumps(judgement(1, "none")).encode() + b"\n"
        for part in (line[:10], line[10:-1], line[-1:]):
            self.program.send(part)
            time.sleep(0.05)
        self.assertEqual(self.program.answers(1), {1: {"id": 1, "ok": True}})

    def test_many_in_one_write(self):
        answers = self.program.ask(*[judgement(i, "none" if i % 2 else "false") for i in range(500)])
        self.assertEqual([a["ok"] for a in answers], [i % 2 == 1 for i in range(500)])

    def test_last_line_without_newline(self):
        self.program.send(json.dumps(judgement(9, "none")).encode())
        code, rest = self.program.finish()
        self.assertEqual((code, [json.loads(line) for line in rest]), (0, [{"id": 9, "ok": True}]))

    def test_eof_exits_zero(self):
        self.assertEqual(self.program.finish(), (0, []))


class ExampleTest(ProgramTest):
    """The example's checks judge as the `nonempty` comparator (nonempty_comparator.cpp) does."""
    script = EXAMPLE_CHECKS

    def differences(self, replay, original=b'{"results":{"hint_list":["a"]}}', comparator="hints_py", **extra):
        [answer] = self.program.ask(judgement(1, comparator, original=response(original), replay=response(replay, **extra)))
        return answer.get("differences", [])

    def test_nonempty_values_pass(self):
        for value in (b'["x"]', b'"x"', b'{"k":1}', b"0", b"false"):
            with self.subTest(value=value):
                self.assertEqual(self.differences(b'{"results":{"hint_list":%s}}' % value), [])

    def test_empty_values_fail(self):
        for value in (b"[]", b"null", b'""', b"{}"):
            with self.subTest(value=value):
                self.assertEqual(self.differences(b'{"results":{"hint_list":%s}}' % value),
                                 [{"path": "results.hint_list", "kind": "empty", "original": '["a"]', "replay": value.decode()}])

    def test_missing_fails(self):
        for replay in (b'{"results":{}}', b'{"results":[]}', b'{"code":1}', b"null", b"[1]"):
            with self.subTest(replay=replay):
                self.assertEqual(self.differences(replay),
                                 [{"path": "results.hint_list", "kind": "missing", "original": '["a"]'}])

    def test_original_value_shown(self):
        self.assertEqual(self.differences(b"{}", original=b"{}")[0]["original"], "(absent)")
        self.assertNotIn("original", self.differences(b"{}", original=b"<html>")[0])

    def test_invalid_json_fails(self):
        [difference] = self.differences(b"<html>")
        self.assertEqual((difference["path"], difference["kind"]), ("$", "invalid_json"))
        self.assertTrue(difference["replay"].startswith("(invalid JSON: ") and difference["replay"].endswith(") <html>"))
        [difference] = self.differences(b'{"results":{"hint_list":["x"]}}', body_error="corrupt gzip")
        self.assertEqual((difference["path"], difference["kind"]), ("$", "invalid_json"))
        self.assertIn("undecodable body: corrupt gzip", difference["replay"])

    def test_intentions(self):
        self.assertEqual(self.differences(b'{"results":{"intention_list":["chitchat"]}}', comparator="intentions_py"), [])
        self.assertEqual(self.differences(b'{"results":{"intention_list":[]}}', original=b"{}", comparator="intentions_py"),
                         [{"path": "results.intention_list", "kind": "empty", "original": "(absent)", "replay": "[]"}])


def bench(count):
    """Judgements per second through the trivial check, lines carrying two ~8 KB bodies in base64."""
    def body(seed):
        hints = [{"text": "hint %d for robot %d" % (i, seed), "score": i / 7} for i in range(200)]
        return json.dumps({"results": {"hint_list": hints, "trace_id": "%032x" % seed}}).encode()[:8192]

    block_lines = 1000
    block = b"".join(json.dumps(judgement(i, "trivial", original=response(body(i)), replay=response(body(i + 1))),
                                separators=(",", ":")).encode() + b"\n" for i in range(block_lines))
    blocks = max(1, count // block_lines)
    proc = start("trivial.py")
    assert json.loads(proc.stdout.readline()) == HELLO

    def write():
        for _ in range(blocks):
            proc.stdin.write(block)
        proc.stdin.close()

    started = time.perf_counter()
    threading.Thread(target=write, daemon=True).start()
    answers = oks = 0
    for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
        answers += chunk.count(b"\n")
        oks += chunk.count(b'"ok":true')
    elapsed = time.perf_counter() - started
    _, status, usage = os.wait4(proc.pid, 0)
    cpu = usage.ru_utime + usage.ru_stime
    assert answers == oks == blocks * block_lines and status == 0, (answers, oks, status)
    print("%d judgements of %d bytes in %.2f s: %.0f judgements/s (%.0f per CPU-second of the check program)"
          % (answers, len(block) // block_lines, elapsed, answers / elapsed, answers / cpu))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bench":
        bench(int(sys.argv[2]) if len(sys.argv) > 2 else 100000)
    else:
        unittest.main()
