#!/usr/bin/env bash
# Middleware round trip: messages/s through the `process` middleware with a `cat`-like echo
# program, next to a raw pipe baseline (the same hex lines through `cat` alone).
#   bench/middleware_roundtrip.sh [BUILD_DIR] [N]   (defaults: build, 200000)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
N=${2:-200000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work/in.gor" "$work/in.hex" "$N" <<'PY'
import sys
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
with open(sys.argv[1], "wb") as g, open(sys.argv[2], "wb") as h:
    for i in range(int(sys.argv[3])):
        rec = b"1 %024x %d 0\nGET /items/%d HTTP/1.1\r\nHost: bench\r\nAccept: */*\r\n\r\n" % (i, 1700000000000000000 + i, i)
        g.write(rec + sep)
        h.write(rec.hex().encode() + b"\n")
PY

start=$(date +%s.%N)
cat "$work/in.hex" | cat > "$work/out.hex"
end=$(date +%s.%N)
pipe_s=$(python3 -c "print($end - $start)")

cat > "$work/mw.toml" <<TOML
[pipeline]
name = "bench-middleware"
[inputs.in]
plugin = "file"
path = "$work/in.gor"
max_speed = true
[middleware.mw]
plugin = "process"
from = ["in"]
command = "cat"
[outputs.out]
plugin = "file"
from = ["mw"]
path = "$work/out.gor"
TOML
start=$(date +%s.%N)
DOPPEL_PLUGIN_PATH="$build/plugins" "$build/bin/doppel" run "$work/mw.toml" > "$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }
end=$(date +%s.%N)
python3 - "$N" "$start" "$end" "$pipe_s" "$work/out.gor" <<'PY'
import sys
n, start, end, pipe_s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
out = open(sys.argv[5], "rb").read().count("\n\U0001F435\U0001F648\U0001F649\n".encode())
mw = n / (end - start)
print(f"raw pipe (cat | cat) : {n / pipe_s:10.0f} lines/s")
print(f"doppel process + cat : {mw:10.0f} messages/s ({out}/{n} written back, file in -> file out, incl. startup)")
print(f"ratio                : {mw / (n / pipe_s) * 100:.1f}% of the raw pipe")
PY
