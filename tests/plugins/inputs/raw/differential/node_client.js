// Node http client with a keepAlive agent: N requests (several methods, fixed and chunked
// responses), each with a unique X-Req-Id; one JSON line per request to LOG.
// usage: node node_client.js BASE_URL N LOG PREFIX
'use strict';
const http = require('http');
const fs = require('fs');
const crypto = require('crypto');
const [base, nStr, logPath, prefix] = process.argv.slice(2);
const n = Number(nStr);
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
const out = fs.createWriteStream(logPath);
const paths = ['/n/plain', '/chunked/n', '/204', '/n/post'];
let next = 0, done = 0;
function one() {
  if (next >= n) return;
  const i = next++;
  const id = `${prefix}-${i}`;
  const path = `${paths[i % paths.length]}?i=${i}`;
  const method = path.startsWith('/n/post') ? 'POST' : (i % 7 === 3 ? 'PUT' : 'GET');
  const body = method === 'GET' ? null : Buffer.from(`node body ${id}\n`.repeat(1 + (i % 5)));
  const headers = { 'X-Req-Id': id };
  if (body) headers['Content-Length'] = body.length;
  const rec = { id, client: 'node', method, target: path, got: false };
  if (body) rec.body_sha1 = crypto.createHash('sha1').update(body).digest('hex');
  const req = http.request(base + path, { method, agent, headers }, (res) => {
    res.on('data', () => {});
    res.on('end', () => {
      rec.got = res.headers['x-echo-id'] === id;
      rec.status = res.statusCode;
      out.write(JSON.stringify(rec) + '\n');
      if (++done === n) { agent.destroy(); out.end(); } else one();
    });
  });
  req.on('error', (e) => {
    out.write(JSON.stringify(rec) + '\n');
    if (++done === n) { agent.destroy(); out.end(); } else one();
  });
  if (body) req.write(body);
  req.end();
}
for (let k = 0; k < 4; k++) one();
