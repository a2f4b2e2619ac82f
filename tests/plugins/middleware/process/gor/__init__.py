"""A minimal stand-in for PyPI's `gor` package (GoReplay middleware in Python, amyangfei/GorMW),
written for doppel's tests, which cannot install from PyPI. It offers the callback API that
middleware scripts use, with the same behaviour:

- `proxy.on(chan, callback, idx=None, **kwargs)`: chan is 'message', 'request', 'response' or
  'replay'; with idx the callback fires only for that message id. Callbacks are called as
  callback(proxy, msg, **kwargs). Callbacks registered for an id are kept (not removed after
  they fired), as in the package.
- Every message read is written back (so the request goes on to be replayed) unless a callback
  returns another message, which is written back instead.
- `msg.id`, `msg.type` ('1', '2', '3'), `msg.meta` (header fields), `msg.raw_meta`, `msg.http`
  (a str, as in the releases before 2022 that the seed middleware was written for).
- Helpers: http_method, http_path, http_status, http_body, http_header(s), set_http_header.
"""
