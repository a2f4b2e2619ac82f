'use strict';
// Tests of doppel-compare.js, the Node helper of doppel's `process` comparator.
//
// Each test starts a check program from checks/ the way doppel does (NODE_PATH set to the
// helpers directory) and plays doppel's side of the JSON-lines protocol: it reads the hello,
// writes judgements, several per write, and reads the answers. No dependencies.
//
//   node --test tests/plugins/middleware/process_comparator/helpers_test.js      # the tests
//   node tests/plugins/middleware/process_comparator/helpers_test.js --bench [N] # judgements/s
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { describe, it, beforeEach, afterEach } = require('node:test');

const HELPERS = path.resolve(__dirname, '..', '..', '..', '..', 'plugins', 'middleware', 'process_comparator', 'helpers');
const CHECKS = path.join(__dirname, 'checks');
const HELLO = { hello: { protocol: 1, body: 'base64', json: false } };
const TIMEOUT_MS = 20000; // to wait for any one answer: generous, CI machines are busy

function start(script) {
  return spawn(process.execPath, [path.join(CHECKS, script)], {
    env: { ...process.env, NODE_PATH: HELPERS, DOPPEL_HELPERS: HELPERS },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** A check program under test, with doppel's ends of its pipes. */
class Program {
  constructor(script) {
    this.proc = start(script);
    this.stderr = '';
    this._lines = []; // stdout lines not yet read, then null at its end
    this._waiting = null; // resolves the pending readLine()
    let partial = '';
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (text) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop();
      for (const line of lines) this._push(line);
    });
    this.proc.stdout.on('end', () => this._push(null));
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (text) => { this.stderr += text; });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
  }

  _push(line) {
    this._lines.push(line);
    if (this._waiting) this._waiting();
  }

  /** The next stdout line, null at its end. */
  async readLine() {
    if (this._lines.length === 0) {
      let timer;
      await Promise.race([
        new Promise((resolve) => { this._waiting = resolve; }),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no stdout line in ${TIMEOUT_MS} ms; stderr:\n${this.stderr}`)), TIMEOUT_MS);
        }),
      ]).finally(() => clearTimeout(timer));
      this._waiting = null;
    }
    return this._lines[0] === null ? null : this._lines.shift();
  }

  /** Writes the lines (objects as JSON, strings and Buffers as they are) in one write, as doppel batches. */
  send(...lines) {
    this.proc.stdin.write(Buffer.concat(lines.map((line) =>
      (typeof line === 'string' || Buffer.isBuffer(line) ? Buffer.from(line) : Buffer.from(`${JSON.stringify(line)}\n`)))));
  }

  /** The next `count` answers by id; every stdout line must be one. */
  async answers(count) {
    const answers = new Map();
    while (answers.size < count) {
      const line = await this.readLine();
      if (line === null) throw new Error(`stdout ended after ${answers.size} of ${count} answers; stderr:\n${this.stderr}`);
      const answer = JSON.parse(line);
      answers.set(answer.id, answer);
    }
    return answers;
  }

  async ask(...judgements) {
    this.send(...judgements);
    const answers = await this.answers(judgements.length);
    return judgements.map((j) => answers.get(j.id));
  }

  /** Closes stdin; the exit code and whatever stdout still said. */
  async finish() {
    this.proc.stdin.end();
    const rest = [];
    for (let line; (line = await this.readLine()) !== null;) rest.push(line);
    return { code: await this.exited, rest };
  }
}

/**
 * A response side with `body` given the way `form` says: 'text' (with "json" when the body is
 * JSON, as doppel sends before it reads the hello), 'base64' or 'file'.
 */
function response(body = Buffer.alloc(0), { form = 'base64', status = 200, headers = [['Content-Type', 'application/json']], ...extra } = {}) {
  body = Buffer.from(body);
  const side = { status, headers, latency_ms: 3.5 };
  if (form === 'text') {
    side.body = body.toString('utf8');
    try {
      side.json = JSON.parse(side.body);
    } catch {
      // not JSON: doppel sends no "json"
    }
  } else if (form === 'file') {
    side.body_file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'doppel-body-')), 'body');
    fs.writeFileSync(side.body_file, body);
  } else {
    side.body_base64 = body.toString('base64');
  }
  return { ...side, ...extra };
}

const REQUEST = {
  method: 'POST', target: '/v2/robot/input_hint?q=a&q=b&empty=', path: '/v2/robot/input_hint',
  headers: [['Host', 'robot'], ['Content-Type', 'application/json']], body: '{"robot_id":"664"}',
};

function judgement(id, comparator = 'inspect', { original, replay, request = REQUEST, ...extra } = {}) {
  return {
    id, exchange: `8f1c${String(id).padStart(20, '0')}`, comparator, endpoint: 'POST /v2/robot/input_hint',
    against: 'replay', request, original: original ?? response('{"a":1}'), replay: replay ?? response('{"a":2}'), ...extra,
  };
}

/** What the inspect check saw, from its answer. */
function seen(answer) {
  assert.equal(answer.ok, false, JSON.stringify(answer));
  return answer.differences[0].original;
}

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');

/** Runs `script` around each test of the suite; tests reach it as program(). */
function withProgram(script) {
  let current;
  beforeEach(async () => {
    current = new Program(script);
    assert.deepEqual(JSON.parse(await current.readLine()), HELLO);
  });
  afterEach(() => {
    if (current.proc.exitCode === null) current.proc.kill();
  });
  return () => current;
}

function tests() {
  describe('exchange', () => {
    const program = withProgram('features.js');

    it('reads the text form with json', async () => {
      const original = response('{"results":{"hint_list":["a"]}}', { form: 'text' });
      const replay = response('{"results":{"hint_list":[]}}', { form: 'text' });
      const s = seen((await program().ask(judgement(7, 'inspect', { original, replay })))[0]);
      assert.deepEqual([s.id, s.comparator, s.endpoint, s.against], [7, 'inspect', 'POST /v2/robot/input_hint', 'replay']);
      assert.equal(s.exchangeId, '8f1c00000000000000000007');
      assert.deepEqual(s.original.json, { results: { hint_list: ['a'] } });
      assert.deepEqual(s.replay.json, { results: { hint_list: [] } });
      assert.equal(s.replay.textStart, '{"results":{"hint_list":[]}}');
      assert.deepEqual([s.replay.status, s.replay.latencyMs], [200, 3.5]);
    });

    it('parses base64 bodies as JSON lazily', async () => {
      const replay = response('{"results": {"intention_list": [1, 2]}}');
      const s = seen((await program().ask(judgement(1, 'inspect', { replay })))[0]);
      assert.deepEqual(s.replay.json, { results: { intention_list: [1, 2] } });
      assert.equal(s.replay.jsonError, false);
    });

    it('gives null json and a jsonError for bodies that are not JSON', async () => {
      for (const body of ['', '<html>', '{"a":NaN}', '{"a":1} trailing', '\ufeff{}']) {
        const s = seen((await program().ask(judgement(1, 'inspect', { replay: response(body) })))[0]);
        assert.equal(s.replay.json, null, body);
        assert.equal(s.replay.jsonError, true, body);
      }
    });

    it('takes JSON null as JSON', async () => {
      const s = seen((await program().ask(judgement(1, 'inspect', { replay: response('null') })))[0]);
      assert.deepEqual([s.replay.json, s.replay.jsonError], [null, false]);
    });

    it('reads body_file', async () => {
      const body = '{"from":"a file"}';
      const replay = response(body, { form: 'file' });
      try {
        const s = seen((await program().ask(judgement(1, 'inspect', { replay })))[0]);
        assert.equal(s.replay.bodySha256, sha256(body));
        assert.deepEqual(s.replay.json, { from: 'a file' });
      } finally {
        fs.rmSync(path.dirname(replay.body_file), { recursive: true });
      }
    });

    it('keeps the bytes of a body that is not UTF-8', async () => {
      const body = Buffer.from([0xff, 0xfe, ...Buffer.from(' not UTF-8 '), 0xc3]);
      const s = seen((await program().ask(judgement(1, 'inspect', { replay: response(body) })))[0]).replay;
      assert.deepEqual([s.bodySize, s.bodySha256], [body.length, sha256(body)]);
      assert.equal(s.textStart, '\ufffd\ufffd not UTF-8 \ufffd');
      assert.equal(s.jsonError, true);
    });

    it('passes body_error on', async () => {
      const replay = response('{"trunc', { body_error: 'gzip: unexpected end of stream' });
      assert.equal(seen((await program().ask(judgement(1, 'inspect', { replay })))[0]).replay.bodyError, 'gzip: unexpected end of stream');
      assert.equal(seen((await program().ask(judgement(2)))[0]).replay.bodyError, null);
    });

    it('reads a megabyte body', async () => {
      const body = Buffer.from('0123456789abcdef'.repeat(65536));
      for (const form of ['base64', 'text']) {
        const s = seen((await program().ask(judgement(1, 'inspect', { replay: response(body, { form }) })))[0]);
        assert.deepEqual([s.replay.bodySize, s.replay.bodySha256], [1 << 20, sha256(body)], form);
      }
    });

    it('reads the request', async () => {
      const r = seen((await program().ask(judgement(1)))[0]).request;
      assert.deepEqual([r.method, r.target, r.path], ['POST', REQUEST.target, '/v2/robot/input_hint']);
      assert.deepEqual(r.query, [['q', 'a'], ['q', 'b'], ['empty', '']]);
      assert.deepEqual(r.json, { robot_id: '664' });
    });

    it('gives a null request when doppel never saw it', async () => {
      assert.equal(seen((await program().ask(judgement(1, 'inspect', { request: null })))[0]).request, null);
    });

    it('reads headers case-insensitively, in wire order', async () => {
      const headers = [['Content-Type', 'text/plain'], ['Set-Cookie', 'a=1'], ['set-cookie', 'b=2']];
      const s = seen((await program().ask(judgement(1, 'inspect', { replay: response('x', { headers }) })))[0]).replay;
      assert.deepEqual(s.headers, headers);
      assert.equal(s.headerCount, 3);
      assert.equal(s.contentType, 'text/plain');
      assert.equal(s.firstCookie, 'a=1');
      assert.deepEqual(s.cookies, ['a=1', 'b=2']);
    });

    it('decodes no body for a check that reads only the status', async () => {
      // Bodies that would fail to decode: a check that reads only .status must not touch them.
      const original = { status: 200, headers: [], body_file: '/nonexistent/doppel-body' };
      const replay = { status: 200, headers: [], body_base64: '!not base64!' };
      assert.deepEqual(await program().ask(judgement(1, 'status_only', { original, replay })), [{ id: 1, ok: true }]);
    });

    it('echoes ids exactly', async () => {
      const ids = [0, Number.MAX_SAFE_INTEGER];
      const answers = await program().ask(...ids.map((id) => judgement(id, 'none')));
      assert.deepEqual(answers.map((a) => a.id), ids);
    });
  });

  describe('verdicts', () => {
    const program = withProgram('features.js');
    const verdict = async (comparator) => (await program().ask(judgement(5, comparator)))[0];

    it('reads true, undefined, null and [] as ok', async () => {
      for (const comparator of ['none', 'null', 'empty_list', 'status_only']) {
        assert.deepEqual(await verdict(comparator), { id: 5, ok: true }, comparator);
      }
    });

    it('reads false as a difference doppel describes', async () => {
      assert.deepEqual(await verdict('false'), { id: 5, ok: false });
    });

    it('reads a string as a message', async () => {
      assert.deepEqual(await verdict('message'), { id: 5, ok: false, differences: [{ message: 'replay differs' }] });
    });

    it('reads a Difference', async () => {
      assert.deepEqual((await verdict('difference')).differences,
        [{ path: 'a.b', kind: 'changed', original: 1, replay: [2], message: 'two' }]);
    });

    it('reads a plain object', async () => {
      assert.deepEqual((await verdict('object')).differences, [{ path: 'x', kind: 'type' }]);
    });

    it('reads an array', async () => {
      assert.deepEqual((await verdict('list')).differences, [{ path: 'a', kind: 'changed' }, { path: 'b' }, { message: 'c' }]);
    });

    it('reads a generator', async () => {
      assert.deepEqual((await verdict('generator')).differences, [{ path: 'g1', kind: 'missing' }, { message: 'g2' }]);
    });

    it('writes a BigInt as text', async () => {
      assert.deepEqual((await verdict('bigint')).differences, [{ path: 'x', kind: 'changed', original: '12345678901234567890' }]);
    });

    it('answers an error for a result of another type', async () => {
      const answer = await verdict('bad_type');
      assert.deepEqual(Object.keys(answer).sort(), ['error', 'id']);
      assert.match(answer.error, /returned number/);
    });

    it('answers an error with the stack for a throw', async () => {
      const answer = await verdict('throws');
      assert.deepEqual(Object.keys(answer).sort(), ['error', 'id']);
      assert.match(answer.error, /^SyntaxError: Unexpected token/);
      assert.match(answer.error, /parseCount .*features\.js/);
      assert.doesNotMatch(answer.error, /doppel-compare\.js/);
      assert.ok(answer.error.length <= 2048);
    });

    it('answers an error for a thrown non-Error', async () => {
      assert.equal((await verdict('throws_string')).error, 'thrown: a string, not an Error');
    });

    it('answers promises when they settle', async () => {
      const answers = await program().ask(...Array.from({ length: 20 }, (_, i) => judgement(i, 'async')));
      for (const answer of answers) {
        assert.deepEqual(answer.differences, [{ path: 'async', kind: 'changed', message: 'POST /v2/robot/input_hint' }]);
      }
    });

    it('answers an error for a rejection', async () => {
      const { error } = await verdict('async_throws');
      assert.match(error, /^RangeError: async boom/);
      assert.match(error, /waitsThenThrows/);
    });

    it('answers out of order when promises settle late', async () => {
      program().send(judgement(1, 'slow'), judgement(2, 'none'));
      assert.equal(JSON.parse(await program().readLine()).id, 2);
      assert.deepEqual(JSON.parse(await program().readLine()), { id: 1, ok: true });
    });

    it('answers a mixed batch', async () => {
      const comparators = Array(10).fill(['none', 'async', 'message', 'throws', 'async_throws', 'false']).flat();
      const answers = await program().ask(...comparators.map((c, i) => judgement(i, c)));
      comparators.forEach((c, i) => assert.equal('error' in answers[i], c.endsWith('throws'), JSON.stringify(answers[i])));
    });

    it('keeps console.log and process.stdout.write off stdout', async () => {
      const answers = await program().ask(...[0, 1, 2].map((i) => judgement(i, 'prints')));
      assert.deepEqual(answers, [0, 1, 2].map((id) => ({ id, ok: true })));
      assert.deepEqual(await program().finish(), { code: 0, rest: [] });
      for (const noise of ['console.log from a check', 'console.info from a check', 'process.stdout.write from a check']) {
        assert.ok(program().stderr.includes(noise), noise);
      }
    });
  });

  describe('dispatch', () => {
    describe('without a catch-all', () => {
      const program = withProgram('features.js');
      it('answers an error for an unknown name', async () => {
        const [answer] = await program().ask(judgement(1, 'nope'));
        assert.match(answer.error, /^no check registered for comparator nope \(registered: .*inspect/);
      });
    });

    describe('with a catch-all', () => {
      const program = withProgram('catch_all.js');
      it('serves names without a check of their own', async () => {
        const answers = await program().ask(judgement(1, 'named'), judgement(2, 'other'));
        assert.deepEqual(answers.map((a) => a.differences[0].message), ['named check', 'catch-all for other']);
      });
    });

    describe('with a single check', () => {
      const program = withProgram('trivial.js');
      it('serves every name', async () => {
        assert.deepEqual(await program().ask(judgement(1, 'anything')), [{ id: 1, ok: true }]);
      });
    });
  });

  describe('stream', () => {
    const program = withProgram('features.js');

    it('skips a garbage line with a message on stderr', async () => {
      program().send('this is not JSON\n', '{"no": "id"}\n', '\n', judgement(1, 'none'));
      assert.deepEqual([...(await program().answers(1)).values()], [{ id: 1, ok: true }]);
      assert.deepEqual(await program().finish(), { code: 0, rest: [] });
      assert.match(program().stderr, /skipped a line that is not JSON .*this is not JSON/);
      assert.match(program().stderr, /skipped a line that is not an object with an id: \{"no": "id"\}/);
    });

    it('joins a line split over writes', async () => {
      const line = `${JSON.stringify(judgement(1, 'none'))}\n`;
      for (const part of [line.slice(0, 10), line.slice(10, -1), line.slice(-1)]) {
        program().send(part);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual([...(await program().answers(1)).values()], [{ id: 1, ok: true }]);
    });

    it('answers many judgements of one write', async () => {
      const answers = await program().ask(...Array.from({ length: 500 }, (_, i) => judgement(i, i % 2 ? 'none' : 'false')));
      assert.deepEqual(answers.map((a) => a.ok), Array.from({ length: 500 }, (_, i) => i % 2 === 1));
    });

    it('answers a last line without its newline', async () => {
      program().send(JSON.stringify(judgement(9, 'none')));
      const { code, rest } = await program().finish();
      assert.deepEqual([code, rest.map((line) => JSON.parse(line))], [0, [{ id: 9, ok: true }]]);
    });

    it('exits 0 at the end of stdin', async () => {
      assert.deepEqual(await program().finish(), { code: 0, rest: [] });
    });

    it('waits for pending promises before exiting', async () => {
      program().send(judgement(1, 'slow'));
      const { code, rest } = await program().finish();
      assert.deepEqual([code, rest.map((line) => JSON.parse(line))], [0, [{ id: 1, ok: true }]]);
    });
  });

  describe('back-pressure', () => {
    const program = withProgram('features.js');

    it('keeps every answer while doppel does not read', async () => {
      // 20 MB of answers while this side reads none: past 16 MB the helper stops reading stdin.
      const count = 20000;
      program().proc.stdout.pause();
      const line = (id) => `{"id":${id},"comparator":"kilobyte","original":{},"replay":{}}\n`;
      for (let from = 0; from < count; from += 1000) {
        program().send(Array.from({ length: 1000 }, (_, i) => line(from + i)).join(''));
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
      program().proc.stdout.resume();
      const answers = await program().answers(count);
      assert.equal(answers.size, count);
      assert.ok([...answers.values()].every((a) => a.differences[0].message.length === 1024));
      assert.deepEqual(await program().finish(), { code: 0, rest: [] });
    });
  });

  it('resolves require("doppel-compare") through NODE_PATH', () => {
    const found = spawnSync(process.execPath, ['-e', 'process.stdout.write(require.resolve("doppel-compare"))'], {
      env: { ...process.env, NODE_PATH: HELPERS }, encoding: 'utf8',
    });
    assert.equal(found.stdout, path.join(HELPERS, 'doppel-compare.js'), found.stderr);
  });
}

/** Judgements per second through the trivial check, lines carrying two ~8 KB bodies in base64. */
async function bench(count) {
  const body = (seed) => Buffer.from(JSON.stringify({
    results: {
      hint_list: Array.from({ length: 200 }, (_, i) => ({ text: `hint ${i} for robot ${seed}`, score: i / 7 })),
      trace_id: seed.toString(16).padStart(32, '0'),
    },
  })).subarray(0, 8192);
  const blockLines = 1000;
  const block = Buffer.from(Array.from({ length: blockLines }, (_, i) =>
    `${JSON.stringify(judgement(i, 'trivial', { original: response(body(i)), replay: response(body(i + 1)) }))}\n`).join(''));
  const blocks = Math.max(1, Math.floor(count / blockLines));
  const proc = start('trivial.js');
  let answers = 0;
  let oks = 0;
  let started;
  const done = new Promise((resolve) => proc.on('exit', resolve));
  proc.stdout.on('data', (chunk) => {
    if (started === undefined) { // the hello: start writing
      started = process.hrtime.bigint();
      chunk = chunk.subarray(chunk.indexOf(10) + 1);
      write(0);
    }
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) answers++;
    for (let at = chunk.indexOf('"ok":true'); at !== -1; at = chunk.indexOf('"ok":true', at + 1)) oks++;
  });
  const write = (sent) => {
    for (; sent < blocks; sent++) {
      if (!proc.stdin.write(block)) {
        proc.stdin.once('drain', () => write(sent + 1));
        return;
      }
    }
    proc.stdin.end();
  };
  const code = await done;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  assert.ok(answers === blocks * blockLines && oks === answers && code === 0, `${answers} answers, ${oks} ok, exit ${code}`);
  console.log(`${answers} judgements of ${Math.round(block.length / blockLines)} bytes in ${seconds.toFixed(2)} s: ` +
    `${Math.round(answers / seconds)} judgements/s`);
}

const benchAt = process.argv.indexOf('--bench');
if (benchAt !== -1) bench(Number(process.argv[benchAt + 1]) || 100000);
else tests();
