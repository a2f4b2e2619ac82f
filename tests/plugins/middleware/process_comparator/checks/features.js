// Checks for helpers_test.js: each comparator name shows one behaviour of doppel-compare.
// No catch-all, so an unknown name gets the "no check registered" error.
const crypto = require('node:crypto');
const { comparator, run, Difference } = require('doppel-compare');

function side(s) {
  if (s === null) return null;
  const seen = {
    bodySize: s.body.length,
    bodySha256: crypto.createHash('sha256').update(s.body).digest('hex'),
    textStart: s.text.slice(0, 40),
    json: s.body.length < 4096 ? s.json : '(large)',
    jsonError: s.jsonError !== null,
    bodyError: s.bodyError,
    headers: [...s.headers],
    headerCount: s.headers.size,
    contentType: s.headers.get('CONTENT-type'),
    firstCookie: s.headers.has('Set-Cookie') ? s.headers.get('set-cookie') : null,
    cookies: s.headers.getAll('set-cookie'),
  };
  if ('status' in s) return { ...seen, status: s.status, latencyMs: s.latencyMs };
  return { ...seen, method: s.method, target: s.target, path: s.path, query: [...s.query] };
}

// Reports everything it sees, as the `original` of one difference.
comparator('inspect', (ex) => new Difference('seen', 'seen', {
  original: {
    id: ex.id, exchangeId: ex.exchangeId, comparator: ex.comparator, endpoint: ex.endpoint, against: ex.against,
    request: side(ex.request), original: side(ex.original), replay: side(ex.replay),
  },
}));

comparator('status_only', (ex) => ex.replay.status === ex.original.status);
comparator('none', () => undefined);
comparator('null', () => null);
comparator('false', () => false);
comparator('message', () => 'replay differs');
comparator('difference', () => new Difference('a.b', 'changed', { original: 1, replay: [2], message: 'two' }));
comparator('object', () => ({ path: 'x', kind: 'type' }));
comparator('list', () => [new Difference('a'), { path: 'b' }, 'c']);
comparator('generator', function* generator() {
  yield new Difference('g1', 'missing');
  yield 'g2';
});
comparator('empty_list', () => []);
comparator('bigint', () => new Difference('x', 'changed', { original: 12345678901234567890n }));
comparator('bad_type', () => 42);
comparator('kilobyte', () => 'x'.repeat(1024));

function parseCount(text) {
  const count = JSON.parse(text);
  return count;
}
comparator('throws', () => parseCount('not a number'));
comparator('throws_string', () => {
  throw 'a string, not an Error'; // eslint-disable-line no-throw-literal
});

comparator('async', async (ex) => {
  await new Promise((resolve) => setTimeout(resolve, 10));
  return new Difference('async', 'changed', { message: ex.endpoint });
});
comparator('async_throws', async function waitsThenThrows() {
  await null;
  throw new RangeError('async boom');
});
// Settles after the next judgements' answers are out: answers come back out of order.
comparator('slow', () => new Promise((resolve) => setTimeout(() => resolve(true), 200)));

comparator('prints', () => {
  console.log('console.log from a check');
  console.info('console.info from a check');
  process.stdout.write('process.stdout.write from a check\n');
  return true;
});

run();
