// HTTP/1.1 test server for the differential pairing harness: keep-alive, fixed-length and
// chunked responses, each with `X-Echo-Id: <the request's X-Req-Id>`.
// usage: node node_server.js PORT
'use strict';
const http = require('http');
const port = Number(process.argv[2]);
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const id = req.headers['x-req-id'] || '';
    res.setHeader('X-Echo-Id', id);
    const len = Buffer.concat(chunks).length;
    if (req.url.startsWith('/chunked')) {
      // No Content-Length: Node sends Transfer-Encoding: chunked.
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write(`node chunk 1 ${req.url}\n`);
      setImmediate(() => { res.write('node chunk 2\n'); res.end('node end\n'); });
    } else if (req.url.startsWith('/204')) {
      res.writeHead(204);
      res.end();
    } else {
      const body = `${req.method} ${req.url} ${len}\n`;
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    }
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1');
