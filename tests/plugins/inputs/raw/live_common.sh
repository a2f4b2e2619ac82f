# Shared by the live capture tests: an nginx serving fixed content, a doppel capture into a
# .gor file, the client requests, and a checker that compares every byte. Sourced, not run.
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "live capture tests need root (raw sockets)"
command -v nginx >/dev/null || fail "nginx is not installed (apt-get install nginx-light)"
command -v curl >/dev/null || fail "curl is not installed"
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"

# write_site DIR LISTEN_ADDR PORT: content and config for an nginx in DIR.
write_site() {
  local dir=$1 addr=$2 port=$3
  mkdir -p "$dir/root" "$dir/tmp"
  python3 -c "import sys; sys.stdout.buffer.write(bytes((i*7+3)%256 for i in range(1500000)))" > "$dir/root/large.bin"
  printf 'small body\n' > "$dir/root/small.txt"
  cat > "$dir/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
daemon off;
user root;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 256; }
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  keepalive_requests 1000;
  client_max_body_size 16m;
  server {
    listen $addr:$port;
    root $dir/root;
    location /chunked { echo "first chunk"; echo_flush; echo "second chunk"; }
    location /upload { client_body_buffer_size 16m; echo_read_request_body; echo_request_body; }
  }
}
CONF
}

# write_pipeline FILE INTERFACE PORT OUT: capture INTERFACE:PORT with responses into OUT (.gor).
write_pipeline() {
  cat > "$1" <<TOML
[pipeline]
name = "live-capture-test"

[inputs.capture]
plugin = "raw"
interface = "$2"
port = $3
track_response = true

[outputs.gor]
plugin = "file"
from = ["capture"]
path = "$4"
TOML
}

# run_clients BASE_URL DIR: keep-alive, chunked, 100-continue and large bodies.
run_clients() {
  local url=$1 dir=$2
  head -c 300000 "$dir/root/large.bin" > "$dir/upload.bin"
  # Three requests on one keep-alive connection.
  curl -sS -o /dev/null -o /dev/null -o /dev/null "$url/small.txt" "$url/small.txt?second" "$url/large.bin"
  curl -sS -o /dev/null "$url/chunked"
  # Large upload: curl sends Expect: 100-continue and waits for the interim response.
  curl -sS -o /dev/null -H 'Content-Type: application/octet-stream' --data-binary "@$dir/upload.bin" "$url/upload"
  # A small POST with an explicit Expect header.
  curl -sS -o /dev/null -H 'Expect: 100-continue' --data-binary 'tiny=1' "$url/upload?tiny"
}

# check_capture GOR DIR: every request and response extracted, byte-exact.
check_capture() {
  python3 - "$1" "$2" <<'PY'
import sys
gor, d = sys.argv[1], sys.argv[2]
data = open(gor, 'rb').read()
sep = "\n🐵🙈🙉\n".encode()
records = [r for r in data.split(sep) if r.strip()]
reqs, resps = {}, {}
for r in records:
    header, payload = r.split(b"\n", 1)
    kind, mid = header.split(b" ")[:2]
    (reqs if kind == b"1" else resps)[mid] = payload
def body(p):
    head, b = p.split(b"\r\n\r\n", 1)
    if b"transfer-encoding: chunked" in head.lower():
        out = b""
        while True:
            size_line, b = b.split(b"\r\n", 1)
            n = int(size_line.split(b";")[0], 16)
            if n == 0: break
            out += b[:n]; b = b[n + 2:]
        return head, out
    return head, b
large = open(d + "/root/large.bin", 'rb').read()
upload = open(d + "/upload.bin", 'rb').read()
want = {b"/small.txt": (b"", b"small body\n"), b"/small.txt?second": (b"", b"small body\n"),
        b"/large.bin": (b"", large), b"/chunked": (b"", b"first chunk\nsecond chunk\n"),
        b"/upload": (upload, upload), b"/upload?tiny": (b"tiny=1", b"tiny=1")}
errors = []
seen = set()
for mid, req in reqs.items():
    target = req.split(b" ")[1]
    seen.add(target)
    if target not in want: errors.append("unexpected request %r" % target); continue
    if mid not in resps: errors.append("no response for %r" % target); continue
    _, req_body = body(req)
    head, resp_body = body(resps[mid])
    if req_body != want[target][0]: errors.append("request body of %r differs (%d bytes, want %d)" % (target, len(req_body), len(want[target][0])))
    if not head.startswith(b"HTTP/1.1 200"): errors.append("status of %r: %r" % (target, head[:20]))
    if resp_body != want[target][1]: errors.append("response body of %r differs (%d bytes, want %d)" % (target, len(resp_body), len(want[target][1])))
for t in want:
    if t not in seen: errors.append("request %r not captured" % t)
if len(reqs) != len(want) or len(resps) != len(want): errors.append("%d requests, %d responses, want %d each" % (len(reqs), len(resps), len(want)))
if errors:
    print("\n".join(errors)); sys.exit(1)
print("ok: %d requests and %d responses byte-exact" % (len(reqs), len(resps)))
PY
}

# wait_for_port HOST PORT [NETNS]: nginx is up.
wait_for_port() {
  for _ in $(seq 100); do
    if ${3:+ip netns exec $3} curl -s -o /dev/null "http://$1:$2/small.txt"; then return 0; fi
    sleep 0.1
  done
  fail "nginx did not start on $1:$2"
}

# wait_for_capture LOG: doppel logged that the capture runs.
wait_for_capture() {
  for _ in $(seq 100); do
    grep -q "raw: capturing" "$1" 2>/dev/null && { sleep 0.3; return 0; }
    sleep 0.1
  done
  cat "$1" >&2
  fail "doppel did not start capturing"
}
