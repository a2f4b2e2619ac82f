#!/usr/bin/env bash
# .gor throughput: a `file` input at max_speed -> `file` output through `doppel run`, next to
# `cat FILE > /dev/null` on the same file (page cache warm for both). Prints MB/s and
# messages/s for each and the ratio, and checks the copy is byte-exact. A third line, `dd` copying
# the file with fdatasync, shows what writing the copy alone costs on this disk (doppel's file
# output also fdatasyncs at the end of a run).
#
#   bench/gor_throughput.sh [BUILD_DIR] [MESSAGES]      (defaults: build, 300000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
messages=${2:-300000}
doppel=$build/bin/doppel
[ -x "$doppel" ] || { echo "no doppel binary at $doppel (build first)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DOPPEL_PLUGIN_PATH=$build/plugins

# Requests and responses like real API traffic: headers, JSON bodies of 100 B .. 4 KiB.
python3 - "$work/traffic.gor" "$messages" <<'PY'
import os, random, sys
path, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
sep = "\n🐵🙈🙉\n".encode()
t = 1_700_000_000_000_000_000
with open(path, "wb", buffering=1 << 20) as f:
    for i in range(count):
        rid = "%024x" % (i // 2 + 0x8e0f00000000)
        t += rng.randint(10_000, 2_000_000)
        body = ('{"robot_id":"%d","query":"%s"}' % (rng.randint(1, 999), "x" * rng.randint(60, 2000))).encode()
        if i % 2 == 0:
            head = ("POST /v2/robot/query?id=%d HTTP/1.1\r\nHost: api.example\r\nUser-Agent: bench\r\n"
                    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (i, len(body))).encode()
            f.write(b"1 %s %d 0\n" % (rid.encode(), t) + head + body + sep)
        else:
            head = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)).encode()
            f.write(b"2 %s %d %d\n" % (rid.encode(), t, rng.randint(1_000_000, 9_000_000)) + head + body + sep)
PY
bytes=$(stat -c %s "$work/traffic.gor")

cat > "$work/copy.toml" <<TOML
[pipeline]
name = "gor-throughput"

[inputs.src]
plugin = "file"
path = "$work/traffic.gor"
max_speed = true

[outputs.out]
plugin = "file"
from = ["src"]
path = "$work/copy.gor"
TOML

now() { date +%s.%N; }
cat "$work/traffic.gor" > /dev/null  # warm the page cache
start=$(now); cat "$work/traffic.gor" > /dev/null; end=$(now)
cat_s=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
start=$(now); "$doppel" run "$work/copy.toml" 2> "$work/run.log"; end=$(now)
doppel_s=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
start=$(now); dd if="$work/traffic.gor" of="$work/dd.gor" bs=1M conv=fdatasync status=none; end=$(now)
dd_s=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
rm -f "$work/dd.gor"
cmp -s "$work/traffic.gor" "$work/copy.gor" || { echo "copy differs from the input"; tail "$work/run.log"; exit 1; }

awk -v bytes="$bytes" -v n="$messages" -v c="$cat_s" -v d="$doppel_s" -v w="$dd_s" 'BEGIN {
  mb = bytes / 1e6
  printf "file: %d messages, %.1f MB\n", n, mb
  printf "%-28s %8.3f s %9.1f MB/s %12.0f msg/s\n", "cat FILE > /dev/null", c, mb / c, n / c
  printf "%-28s %8.3f s %9.1f MB/s %12.0f msg/s\n", "dd copy + fdatasync", w, mb / w, n / w
  printf "%-28s %8.3f s %9.1f MB/s %12.0f msg/s\n", "doppel run: file -> file", d, mb / d, n / d
  printf "ratio doppel/cat throughput: %.3f (doppel parses, queues and writes every byte; cat only reads)\n", c / d
  printf "ratio doppel/dd-copy throughput: %.3f\n", w / d
}'
