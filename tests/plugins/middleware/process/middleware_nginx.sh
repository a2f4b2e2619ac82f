#!/usr/bin/env bash
# Integration: .gor file -> process middleware (Node, npm's goreplay_middleware) -> http
# output -> nginx. The middleware adds X-Mw to every request and drops /items/ DELETEs;
# nginx must see exactly that. Then the same with a plain bash echo loop: everything passes.
set -euo pipefail
: "${DOPPEL:?} ${DOPPEL_SOURCE_DIR:?} ${DOPPEL_BUILD_DIR:?}"
here=$(cd "$(dirname "$0")" && pwd)
http_tests="$DOPPEL_SOURCE_DIR/tests/plugins/outputs/http"
source "$DOPPEL_SOURCE_DIR/tests/support/nginx_echo.sh"
work=$(mktemp -d "${DOPPEL_BUILD_DIR}/it-middleware-XXXXXX")
trap 'stop_echo_nginx "$work"; rm -rf "$work"' EXIT
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"

# goreplay_middleware from npm, installed once into the build tree.
npm_dir="$DOPPEL_BUILD_DIR/npm-cache"
if [ ! -f "$npm_dir/node_modules/goreplay_middleware/middleware.js" ]; then
  mkdir -p "$npm_dir"
  (cd "$npm_dir" && timeout 120 npm install --no-audit --no-fund --cache "$npm_dir/.npm" goreplay_middleware >/dev/null)
fi
node=$(command -v node || ls "$HOME"/.nvm/versions/node/*/bin/node 2>/dev/null | tail -1)
[ -x "$node" ] || { echo "node not found"; exit 1; }

start_echo_nginx "$work"
N=200
python3 "$DOPPEL_SOURCE_DIR/tests/support/gor_tool.py" generate "$work/in.gor" $N

cat > "$work/mw.js" <<'JS'
// Written for GoReplay, unchanged: adds a header, drops DELETE /items/*.
const gor = require("goreplay_middleware");
gor.init();
gor.on("request", function (req) {
  if (gor.httpMethod(req.http) === "DELETE" && gor.httpPath(req.http).startsWith("/items/")) {
    console.error("dropping " + gor.httpPath(req.http));
    return;
  }
  req.http = gor.setHttpHeader(req.http, "X-Mw", "rewritten");
  return req;
});
JS
cat > "$work/echo.sh" <<'SH'
#!/bin/bash
while read line; do echo "$line"; done
SH
chmod +x "$work/echo.sh"

pipeline() {  # pipeline COMMAND
  cat <<TOML
[pipeline]
name = "it-middleware"
[inputs.in]
plugin = "file"
path = "$work/in.gor"
max_speed = true
[middleware.mw]
plugin = "process"
from = ["in"]
command = "$1"
return_timeout = "500ms"
[outputs.target]
plugin = "http"
from = ["mw"]
url = "http://127.0.0.1:$NGINX_PORT"
workers = 4
overflow = "wait"
TOML
}

echo "== Node middleware with goreplay_middleware"
pipeline "$node $work/mw.js" > "$work/node.toml"
NODE_PATH="$npm_dir/node_modules" timeout 60 "$DOPPEL" run "$work/node.toml" > "$work/node.log" 2>&1 || {
  cat "$work/node.log"; exit 1; }
python3 - "$work/access.log" $N <<'PY'
import sys
lines = [l.split() for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
deletes = [l for l in lines if l[3] == "DELETE"]
unmarked = [l for l in lines if l[5] != "rewritten"]
print(f"nginx saw {len(lines)} requests, {len(deletes)} DELETE, {len(unmarked)} without X-Mw")
sys.exit(0 if len(lines) == n - n // 4 and not deletes and not unmarked else 1)
PY
grep -q "dropping /items/" "$work/node.log" || { echo "middleware stderr not in our log"; exit 1; }
grep -Eq "not_returned[^0-9]*$((N / 4))\b" "$work/node.log" || { echo "dropped messages not counted"; cat "$work/node.log"; exit 1; }

echo "== plain bash echo loop"
: > "$work/access.log"
kill -USR1 "$(cat "$work/nginx.pid")"
sleep 0.2
pipeline "$work/echo.sh" > "$work/bash.toml"
timeout 60 "$DOPPEL" run "$work/bash.toml" > "$work/bash.log" 2>&1 || { cat "$work/bash.log"; exit 1; }
count=$(grep -c . "$work/access.log")
echo "nginx saw $count requests"
[ "$count" -eq $N ]
echo "OK"
