#!/usr/bin/env bash
# Integration: the file output on a real full filesystem (a 2 MiB tmpfs in a mount namespace of
# this test's own), and where it creates files.
#   1. .gor and .gor.gz filling the disk: records_written in the summary equals the records in
#      the file, the file ends with a complete record (gzip: `gzip -t` passes), the rest is
#      counted as `dropped write_failed`, and the run exits 5 (messages lost).
#   2. Space freed mid-run: writing resumes, later records reach the file, which stays whole.
#   3. A symbolic link planted at the output path: the run does not start (exit 1, the stage and
#      the path named), its target is untouched; an existing file is refused the same way without
#      append/overwrite, yet `doppel validate` still passes (it checks configuration, not what an
#      earlier run left behind); files are created 0600.
#   4. `doppel gor --output-file F --output-file-append` replaces an existing F, as GoReplay does.
set -euo pipefail
DOPPEL=${DOPPEL:?the doppel binary}
BUILD=${DOPPEL_BUILD_DIR:?build directory}
export DOPPEL_PLUGIN_PATH="$BUILD/plugins"

# A private mount namespace: the tmpfs is gone with this process whatever happens, and the host
# never sees it. Without root, a user namespace maps us to root inside it.
if [ -z "${DOPPEL_DISK_FULL_NS:-}" ]; then
  as_root=()
  [ "$(id -u)" = 0 ] || as_root=(--map-root-user)
  exec unshare --mount "${as_root[@]}" env DOPPEL_DISK_FULL_NS=1 bash "$0" "$@"
fi

work=$(mktemp -d)
disk="$work/disk"
mkdir "$disk"
mount -t tmpfs -o size=2m tmpfs "$disk"
doppel_pid=""
cleanup() {
  [ -n "$doppel_pid" ] && kill "$doppel_pid" 2>/dev/null
  umount "$disk" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# gen OUT COUNT BODY_BYTES GAP_MS: requests with random (incompressible) bodies, so that gzip
# output fills the disk as fast as plain output does; ids are 24 hex digits of the index.
gen() {
  python3 - "$@" <<'PY'
import os, sys
out, count, size, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
ts = 1_700_000_000_000_000_000
with open(out, "wb") as f:
    for i in range(count):
        body = os.urandom(size).replace(b"\xf0", b"\x00")  # no separator inside
        head = f"POST /upload/{i} HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\n\r\n".encode()
        f.write(f"1 {i:024x} {ts + i * gap * 1_000_000} 0\n".encode() + head + body + sep)
PY
}

# check FILE: prints "RECORDS LAST_ID" and fails unless every record is whole and the file ends
# right after a separator (gzip: decompressed first).
check() {
  python3 - "$1" <<'PY'
import gzip, sys
path = sys.argv[1]
data = open(path, "rb").read()
if path.endswith(".gz"):
    data = gzip.decompress(data)
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
if data and not data.endswith(sep):
    sys.exit(f"{path} does not end with a complete record: ...{data[-60:]!r}")
records = data.split(sep)[:-1] if data else []
for r in records:
    head, _, payload = r.partition(b"\n")
    kind, rid, ts, latency = head.decode().split(" ")
    size = int(payload.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    if len(payload.split(b"\r\n\r\n", 1)[1]) != size:
        sys.exit(f"{path}: record {rid} is not whole")
print(len(records), records[-1].partition(b" ")[2].partition(b" ")[0].decode() if records else "-")
PY
}

# summary_value LOG NAME: the value of "NAME: N" in the exit summary (0 when absent).
summary_value() {
  local v
  v=$(grep -E "^ +$2: [0-9]+$" "$1" | awk '{print $NF}' | tail -1)
  echo "${v:-0}"
}

gen "$work/in.gor" 4000 1000 0  # about 4 MB: twice the disk

for name in full.gor full.gor.gz; do
  echo "== 1. $name on a full disk"
  cat > "$work/full.toml" <<TOML
[pipeline]
stats_interval = "0s"
[inputs.src]
plugin = "file"
path = "$work/in.gor"
max_speed = true
[outputs.out]
plugin = "file"
from = ["src"]
path = "$disk/$name"
TOML
  set +e
  "$DOPPEL" run "$work/full.toml" 2> "$work/full.log"
  rc=$?
  set -e
  [ "$rc" = 5 ] || { cat "$work/full.log"; fail "exit code $rc, expected 5 (messages lost)"; }
  written=$(summary_value "$work/full.log" records_written)
  lost=$(summary_value "$work/full.log" "dropped write_failed")
  read -r on_disk last_id < <(check "$disk/$name") || fail "$name is damaged"
  echo "records_written $written, dropped write_failed $lost, records in the file $on_disk, file $(stat -c %s "$disk/$name") bytes"
  [ "$written" -gt 0 ] || fail "nothing was written"
  [ "$written" = "$on_disk" ] || fail "records_written says $written, the file holds $on_disk"
  [ "$lost" -gt 0 ] || fail "no write_failed drops counted"
  [ $((written + lost)) = 4000 ] || fail "written $written + lost $lost is not the 4000 sent"
  if [[ $name == *.gz ]]; then gzip -t "$disk/$name" || fail "$name is not a valid gzip stream"; fi
  # The error is logged once per episode, not once per record.
  errors=$(grep -c "records that cannot be written are dropped" "$work/full.log" || true)
  [ "$errors" = 1 ] || fail "the failure was logged $errors times"
  grep -q "No space left on device" "$work/full.log" || fail "the log does not say why"
  grep -q "WARNING: .*dropped at out: write_failed" "$work/full.log" || fail "no loss warning"
  rm -f "$disk/$name"
done

echo "== 2. space freed mid-run: writing resumes"
# 1500 records 4 ms apart: a 6 s replay while the disk is filled, then freed.
gen "$work/slow.gor" 1500 600 4
cat > "$work/resume.toml" <<TOML
[pipeline]
stats_interval = "0s"
[inputs.src]
plugin = "file"
path = "$work/slow.gor"
[outputs.out]
plugin = "file"
from = ["src"]
path = "$disk/resume.gor"
flush_interval = "50ms"
TOML
"$DOPPEL" run "$work/resume.toml" 2> "$work/resume.log" &
doppel_pid=$!
wait_for() {  # wait_for SECONDS COMMAND...: polls COMMAND every 50 ms
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}
wait_for 10 test -s "$disk/resume.gor" || fail "nothing written at the start"
dd if=/dev/zero of="$disk/filler" bs=64k 2>/dev/null || true  # until the disk is full
wait_for 10 grep -q "records that cannot be written are dropped" "$work/resume.log" || fail "no failure seen"
read -r during _ < <(check "$disk/resume.gor") || fail "the file is damaged while the disk is full"
rm -f "$disk/filler"
wait_for 10 grep -q "writing again" "$work/resume.log" || fail "writing did not resume"
set +e
wait "$doppel_pid"
rc=$?
set -e
doppel_pid=""
[ "$rc" = 5 ] || { cat "$work/resume.log"; fail "exit code $rc, expected 5"; }
written=$(summary_value "$work/resume.log" records_written)
lost=$(summary_value "$work/resume.log" "dropped write_failed")
read -r on_disk last_id < <(check "$disk/resume.gor") || fail "resume.gor is damaged"
echo "while full: $during records in the file; at the end: records_written $written, write_failed $lost, in the file $on_disk, last id $last_id"
[ "$written" = "$on_disk" ] || fail "records_written says $written, the file holds $on_disk"
[ "$lost" -gt 0 ] || fail "no write_failed drops counted"
[ "$on_disk" -gt "$during" ] || fail "no record was written after space returned"
[ $((written + lost)) = 1500 ] || fail "written $written + lost $lost is not the 1500 sent"
[ "$last_id" = "$(printf '%024x' 1499)" ] || fail "the last record ($last_id) is not the last one sent"
grep -q "writing again; [0-9]* records were lost" "$work/resume.log" || fail "the recovery does not say what was lost"

echo "== 3. a planted symlink, an existing file, the file mode"
rm -f "$disk"/*
echo "precious" > "$work/victim"
ln -s "$work/victim" "$disk/planted.gor"
gen "$work/few.gor" 5 100 0
cat > "$work/link.toml" <<TOML
[inputs.src]
plugin = "file"
path = "$work/few.gor"
max_speed = true
[outputs.out]
plugin = "file"
from = ["src"]
path = "$disk/planted.gor"
overwrite = true
TOML
set +e
"$DOPPEL" run "$work/link.toml" 2> "$work/link.log"
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$work/link.log"; fail "a symlink at the path: exit $rc, expected 1 (failed to start)"; }
grep -q "pipeline failed to start: output \"out\": $disk/planted.gor is a symbolic link" "$work/link.log" ||
  { cat "$work/link.log"; fail "the error does not name the stage and the path"; }
[ "$(cat "$work/victim")" = "precious" ] || fail "the link's target was written"
[ -L "$disk/planted.gor" ] || fail "the link was replaced"

echo "earlier capture" > "$disk/existing.gor"
sed -e "s|planted.gor|existing.gor|" -e "/overwrite/d" "$work/link.toml" > "$work/existing.toml"
"$DOPPEL" validate "$work/existing.toml" > /dev/null || fail "validate depends on an earlier run's file"
set +e
"$DOPPEL" run "$work/existing.toml" > "$work/existing.log" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$work/existing.log"; fail "an existing file: exit $rc, expected 1 (failed to start)"; }
grep -q "existing.gor already exists; set append = true to add to it, or overwrite = true to replace it" \
  "$work/existing.log" || { cat "$work/existing.log"; fail "the error does not say what to do"; }
[ "$(cat "$disk/existing.gor")" = "earlier capture" ] || fail "the existing file was touched"

sed -e "s|planted.gor|fresh.gor|" -e "/overwrite/d" "$work/link.toml" > "$work/fresh.toml"
(umask 022 && "$DOPPEL" run "$work/fresh.toml" 2>/dev/null) || fail "writing a new file failed"
[ "$(stat -c %a "$disk/fresh.gor")" = 600 ] || fail "a new capture is $(stat -c %a "$disk/fresh.gor"), not 600"

echo "== 4. doppel gor --output-file-append replaces an existing file, as GoReplay does"
echo "earlier capture" > "$disk/gor.gor"
"$DOPPEL" gor --input-file "$work/few.gor" --input-file-max-wait 1ms --output-file "$disk/gor.gor" \
  --output-file-append 2> "$work/gor.log" || { cat "$work/gor.log"; fail "doppel gor failed"; }
read -r gor_records _ < <(check "$disk/gor.gor") || fail "gor.gor is damaged"
[ "$gor_records" = 5 ] || fail "gor.gor holds $gor_records records, not the 5 replayed"
# Without it, chunks start after the highest existing index: nothing is replaced.
"$DOPPEL" gor --input-file "$work/few.gor" --input-file-max-wait 1ms --output-file "$disk/gor.gor" 2>/dev/null
"$DOPPEL" gor --input-file "$work/few.gor" --input-file-max-wait 1ms --output-file "$disk/gor.gor" 2>/dev/null
[ -f "$disk/gor_0.gor" ] && [ -f "$disk/gor_1.gor" ] || fail "chunks: $(ls "$disk")"
echo "ok"
