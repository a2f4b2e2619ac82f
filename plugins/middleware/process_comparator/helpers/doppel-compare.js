'use strict';
/**
 * doppel-compare: write checks for doppel's `process` comparator as plain functions.
 *
 *   const { comparator, run, Difference } = require('doppel-compare');
 *
 *   comparator('hints_js', (ex) => {      // serves [comparators.hints_js]; comparator(fn) serves the rest
 *     const hints = ex.replay.json?.results?.hint_list;
 *     if (!hints?.length) return new Difference('results.hint_list', 'empty', { message: 'replay has no hints' });
 *     return true;
 *   });
 *
 *   run();
 *
 * A check gets an Exchange and returns its verdict:
 *   true, undefined, null, []        the responses agree
 *   false                            they differ (doppel reports a generic difference)
 *   'text'                           one difference with that message
 *   a Difference or a plain object   one difference ({path, kind, original, replay, message})
 *   an array or iterable of those    those differences
 *   a Promise                        settled, then read as above
 * A throw or a rejection becomes an error answer (the stack, cut to 2 KB); so does any other value.
 *
 * Exchange: .id (judgement id), .exchangeId, .comparator, .endpoint, .against ('replay', or
 * 'baseline' when doppel learns noise between two copies of the old service), .request (null
 * when doppel never saw it), .original, .replay. Every side has .headers (read-only, names
 * case-insensitive: get(name), getAll(name), has(name), size, iteration over [name, value] pairs
 * in wire order), .body (a Buffer), .text, .json (the parsed body, null when it is not JSON),
 * .jsonError (why not, else null) and .bodyError (doppel could not fully decode the body, else
 * null). Responses add .status (0 when not HTTP) and .latencyMs; the request adds .method,
 * .target, .path and .query (URLSearchParams). Everything is computed on first use, so a check
 * that reads only .status pays for no decoding.
 *
 * The protocol (version 1), one JSON object per line each way:
 *   doppel -> check  {"id": 42, "exchange": "8f1c...", "comparator": "hints_js", "endpoint": "...",
 *                     "against": "replay", "request": {...} or null, "original": {...}, "replay": {...}}
 *                    A side holds "headers" ([name, value] pairs) and the body as exactly one of
 *                    "body" (UTF-8 text), "body_base64" or "body_file" (a temporary file, deleted
 *                    once answered), maybe "json" (the parsed body) and "body_error".
 *   check -> doppel  {"hello": {"protocol": 1, "body": "base64", "json": false}}   once, first
 *                    {"id": 42, "ok": true}
 *                    {"id": 42, "ok": false, "differences": [{"path": ..., "kind": ..., ...}]}
 *                    {"id": 42, "error": "text"}
 * Several judgements are in flight at once and answers may come in any order. run() says hello,
 * then answers every line of stdin until it ends, then exits. doppel counts any other stdout line
 * as garbage, so run() sends console.log() and process.stdout.write() to stderr, which doppel logs.
 *
 * doppel puts this file's directory on NODE_PATH (and in DOPPEL_HELPERS) for the programs it
 * starts. No dependencies; CommonJS.
 */
const fs = require('node:fs');

const HELLO = '{"hello":{"protocol":1,"body":"base64","json":false}}\n';
const ERROR_LIMIT = 2048; // characters of an error answer's text: a message and a few frames
const PENDING_LIMIT = 16 << 20; // bytes of answers waiting for stdout before stdin is paused

const checks = new Map(); // comparator name -> check
let catchAll = null;

/**
 * Registers `check` as the check of [comparators.NAME]. Without a name (`comparator(check)`) it
 * serves every name that has no check of its own. A program with a single check serves every
 * name anyway.
 */
function comparator(name, check) {
  if (typeof name === 'function') [name, check] = [undefined, name];
  if (typeof check !== 'function') throw new TypeError('comparator(name, check): check must be a function');
  if (name === undefined) {
    if (catchAll) throw new Error(`two catch-all checks: ${catchAll.name} and ${check.name}`);
    catchAll = check;
  } else {
    if (checks.has(name)) throw new Error(`two checks for comparator ${name}: ${checks.get(name).name} and ${check.name}`);
    checks.set(name, check);
  }
  return check;
}

/** One way the responses differ. Fields left undefined or null are not sent. */
class Difference {
  constructor(path, kind = 'changed', { original, replay, message } = {}) {
    this.path = path;
    this.kind = kind;
    this.original = original;
    this.replay = replay;
    this.message = message;
  }

  toJSON() {
    return Object.fromEntries(Object.entries(this).filter(([, v]) => v !== undefined && v !== null));
  }
}

/** Read-only view of [name, value] pairs: lookups ignore case, iteration keeps wire order. */
class Headers {
  constructor(pairs) {
    this._pairs = pairs;
    this._byName = null;
  }

  _values(name) {
    if (!this._byName) {
      this._byName = new Map();
      for (const [n, v] of this._pairs) {
        const key = n.toLowerCase();
        const values = this._byName.get(key);
        if (values) values.push(v);
        else this._byName.set(key, [v]);
      }
    }
    return this._byName.get(String(name).toLowerCase()) || [];
  }

  /** The first value of `name`, undefined when absent. */
  get(name) {
    return this._values(name)[0];
  }

  getAll(name) {
    return [...this._values(name)];
  }

  has(name) {
    return this._values(name).length > 0;
  }

  get size() {
    return this._pairs.length;
  }

  *[Symbol.iterator]() {
    for (const [name, value] of this._pairs) yield [name, value];
  }

  entries() {
    return this[Symbol.iterator]();
  }
}

const UNPARSED = Symbol('unparsed');
// doppel's JSON refuses a byte-order mark; kept in the text, it makes JSON.parse refuse it too.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Side {
  constructor(raw) {
    this._raw = raw;
    this._body = undefined;
    this._json = null;
    this._jsonError = UNPARSED;
    this._headers = null;
  }

  get headers() {
    if (!this._headers) this._headers = new Headers(this._raw.headers || []);
    return this._headers;
  }

  /** The body's bytes, de-chunked and gunzipped by doppel. */
  get body() {
    if (this._body === undefined) {
      const raw = this._raw;
      if (raw.body_base64 !== undefined) this._body = Buffer.from(raw.body_base64, 'base64');
      else if (raw.body_file !== undefined) this._body = fs.readFileSync(raw.body_file);
      else this._body = Buffer.from(raw.body || '', 'utf8');
    }
    return this._body;
  }

  /** The body as text (UTF-8; undecodable bytes become U+FFFD). */
  get text() {
    return typeof this._raw.body === 'string' ? this._raw.body : this.body.toString('utf8');
  }

  /** The body parsed as JSON, null when it is not JSON (see jsonError). */
  get json() {
    if (this._jsonError === UNPARSED) this._parseJson();
    return this._json;
  }

  /** Why the body is not JSON, null when it is. */
  get jsonError() {
    if (this._jsonError === UNPARSED) this._parseJson();
    return this._jsonError;
  }

  _parseJson() {
    const raw = this._raw;
    if ('json' in raw) {
      this._json = raw.json;
      this._jsonError = null;
      return;
    }
    try {
      this._json = JSON.parse(typeof raw.body === 'string' ? raw.body : strictUtf8.decode(this.body));
      this._jsonError = null;
    } catch (err) {
      this._json = null;
      this._jsonError = err.message;
    }
  }

  /** Why doppel could not fully decode the body (e.g. corrupt gzip), null when it could. */
  get bodyError() {
    return this._raw.body_error ?? null;
  }
}

class Request extends Side {
  get method() {
    return this._raw.method ?? '';
  }

  get target() {
    return this._raw.target ?? '';
  }

  get path() {
    return this._raw.path ?? '';
  }

  get query() {
    const at = this.target.indexOf('?');
    return new URLSearchParams(at < 0 ? '' : this.target.slice(at + 1));
  }
}

class Response extends Side {
  get status() {
    return this._raw.status ?? 0;
  }

  get latencyMs() {
    return this._raw.latency_ms ?? null;
  }
}

/** One judgement: a request, the original service's response and the one to judge. */
class Exchange {
  constructor(raw) {
    this._raw = raw;
    this._request = UNPARSED;
    this._original = null;
    this._replay = null;
  }

  get id() {
    return this._raw.id;
  }

  get exchangeId() {
    return this._raw.exchange ?? '';
  }

  get comparator() {
    return this._raw.comparator ?? '';
  }

  get endpoint() {
    return this._raw.endpoint ?? '';
  }

  get against() {
    return this._raw.against ?? 'replay';
  }

  get request() {
    if (this._request === UNPARSED) this._request = this._raw.request ? new Request(this._raw.request) : null;
    return this._request;
  }

  get original() {
    if (!this._original) this._original = new Response(this._raw.original || {});
    return this._original;
  }

  get replay() {
    if (!this._replay) this._replay = new Response(this._raw.replay || {});
    return this._replay;
  }
}

function checkFor(name) {
  const check = checks.get(name) || catchAll;
  if (!check && checks.size === 1) return checks.values().next().value;
  return check;
}

// Values JSON cannot write (BigInt) are written as text, as Python's helper does with str().
function stringify(value) {
  return JSON.stringify(value, (key, v) => (typeof v === 'bigint' ? v.toString() : v));
}

function ok(id) {
  return Number.isSafeInteger(id) ? `{"id":${id},"ok":true}\n` : `${stringify({ id, ok: true })}\n`;
}

function errorAnswer(id, text) {
  return `${stringify({ id, error: text })}\n`;
}

function isPlainObject(value) {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function difference(item) {
  if (typeof item === 'string') return { message: item };
  if (item instanceof Difference || (item !== null && typeof item === 'object' && isPlainObject(item))) return item;
  throw new TypeError(`a difference must be a Difference, a plain object or a string, not ${typeName(item)}`);
}

function typeName(value) {
  if (value === null || typeof value !== 'object') return typeof value;
  return value.constructor?.name || 'object';
}

/** The answer line for a check's result; throws TypeError for a result it cannot read. */
function answer(id, result) {
  if (result === true || result === undefined || result === null) return ok(id);
  if (result === false) return `${stringify({ id, ok: false })}\n`;
  let differences;
  if (typeof result === 'string' || result instanceof Difference || (typeof result === 'object' && isPlainObject(result))) {
    differences = [difference(result)];
  } else if (typeof result === 'object' && typeof result[Symbol.iterator] === 'function') {
    differences = Array.from(result, difference);
    if (differences.length === 0) return ok(id);
  } else {
    throw new TypeError(`the check returned ${typeName(result)}; expected true, false, undefined, a string, ` +
      'a Difference, a plain object, or an array of them');
  }
  return `${stringify({ id, ok: false, differences })}\n`;
}

/** The error's stack (or text) without this module's frames, cut to ERROR_LIMIT. */
function describe(err) {
  const text = err instanceof Error ? (err.stack || `${err.name}: ${err.message}`) : `thrown: ${String(err)}`;
  const own = text.split('\n').filter((line) => !(line.startsWith('    at ') && line.includes(__filename))).join('\n');
  return own.length > ERROR_LIMIT ? own.slice(0, ERROR_LIMIT) : own;
}

function warn(message) {
  process.stderr.write(`doppel-compare: ${message}\n`);
}

/**
 * Writes answers to stdout as fast as it takes them. While stdout is full, answers wait here,
 * joined into one write for when it drains; past PENDING_LIMIT, stdin is paused so that doppel
 * stops sending judgements until the answers flow again.
 */
class Output {
  constructor(stream, write, input, onIdle) {
    this._stream = stream;
    this._write = write;
    this._input = input;
    this._onIdle = onIdle;
    this._waiting = [];
    this._waitingBytes = 0;
    this._full = false;
    this._pausedInput = false;
  }

  get idle() {
    return !this._full;
  }

  send(text) {
    if (this._full) {
      this._waiting.push(text);
      this._waitingBytes += text.length;
      if (!this._pausedInput && this._waitingBytes + this._stream.writableLength > PENDING_LIMIT) {
        this._pausedInput = true;
        this._input.pause();
      }
      return;
    }
    if (!this._write(text)) {
      this._full = true;
      this._stream.once('drain', () => this._drain());
    }
  }

  _drain() {
    this._full = false;
    const text = this._waiting.join('');
    this._waiting = [];
    this._waitingBytes = 0;
    if (text) this.send(text);
    if (this._full) return;
    if (this._pausedInput) {
      this._pausedInput = false;
      this._input.resume();
    }
    this._onIdle();
  }
}

/** Says hello, then answers every judgement on stdin; exits once stdin ends and all is answered. */
function run() {
  const stdout = process.stdout;
  const write = stdout.write.bind(stdout);
  // Only answers may reach doppel's end of stdout: console.log() and direct writes from checks
  // go to stderr instead.
  stdout.write = (...args) => process.stderr.write(...args);
  stdout.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(0); // doppel is gone: nobody is left to answer
    warn(`stdout: ${err.message}`);
    process.exit(1);
  });

  const input = process.stdin;
  let ready = []; // answers not yet handed to output
  let inFlight = 0; // checks whose promise has not settled
  let ended = false;
  let exiting = false;
  const exitIfDone = () => {
    if (exiting || !ended || inFlight > 0 || ready.length > 0 || !output.idle) return;
    exiting = true;
    stdout.end(() => process.exit(0)); // once every answer is out: checks' timers or sockets must not keep us
  };
  const output = new Output(stdout, write, input, exitIfDone);
  // Answers go out once per turn of the event loop: one write for all the chunks read in that
  // turn and all the promises settled in it, as a write costs as much as judging a few lines.
  const flush = () => {
    const text = ready.join('');
    ready = [];
    output.send(text);
    exitIfDone();
  };
  const hand = (text) => {
    if (ready.push(text) === 1) setImmediate(flush);
  };
  const settle = (text) => {
    inFlight--;
    hand(text);
  };

  const judge = (line) => {
    const text = line.toString('utf8');
    if (text.trim() === '') return;
    let record;
    try {
      record = JSON.parse(text);
    } catch (err) {
      warn(`skipped a line that is not JSON (${err.message}): ${text.slice(0, 200)}`);
      return;
    }
    if (record === null || typeof record !== 'object' || !('id' in record)) {
      warn(`skipped a line that is not an object with an id: ${text.slice(0, 200)}`);
      return;
    }
    const id = record.id;
    const check = checkFor(record.comparator);
    if (!check) {
      const registered = [...checks.keys()].sort().join(', ') || 'none';
      hand(errorAnswer(id, `no check registered for comparator ${record.comparator} (registered: ${registered})`));
      return;
    }
    try {
      const result = check(new Exchange(record));
      if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
        inFlight++;
        Promise.resolve(result).then((r) => answer(id, r)).then(settle, (err) => settle(errorAnswer(id, describe(err))));
        return;
      }
      hand(answer(id, result));
    } catch (err) {
      hand(errorAnswer(id, describe(err)));
    }
  };

  let tail = []; // the start of a line not yet complete, over one or more chunks
  input.on('data', (chunk) => {
    let start = 0;
    for (let end; (end = chunk.indexOf(10, start)) !== -1; start = end + 1) {
      if (tail.length) {
        tail.push(chunk.subarray(start, end));
        judge(Buffer.concat(tail));
        tail = [];
      } else {
        judge(chunk.subarray(start, end));
      }
    }
    if (start < chunk.length) tail.push(chunk.subarray(start));
  });
  input.on('end', () => {
    if (tail.length) judge(Buffer.concat(tail)); // a last line without its "\n"
    ended = true;
    exitIfDone();
  });

  output.send(HELLO);
}

module.exports = { comparator, run, Difference, Exchange, Request, Response, Headers };
