#!/usr/bin/env bash
# Least privilege (docs/security.md). Started as root, `doppel run` of a live capture opens it on
# lo and works as [pipeline] user (nobody by default): its uids and gids, and those of every
# thread and of the middleware it starts, are the user's, with no capability left in any set
# (/proc/PID/task/*/status). What it captures after the drop is written whole. A file the user
# cannot write fails the start with a message that says why; `user = "root"` keeps root; an
# unknown user fails validation at its position; a pipeline without a live capture stays root
# and says root is not needed. Started unprivileged with only CAP_NET_RAW (and
# CAP_NET_ADMIN) as ambient capabilities, it captures without root.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "this test starts doppel as root (run the suite as root, as CI does)"
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"
work=$(mktemp -d)
doppel_pid="" server_pid=""
cleanup() {
  [ -n "$doppel_pid" ] && kill "$doppel_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# The pipeline and its outputs live where nobody may read and write, as the docs ask.
out="$work/out"
mkdir -p "$out"
chmod 0755 "$work"
chown nobody:nogroup "$out"
port=$((20000 + $$ % 12000))
/usr/bin/python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done

pipeline() {  # pipeline FILE USER-LINE OUTPUT-PATH
  cat > "$1" <<EOF
[pipeline]
name = "privileges"
stats_interval = "0s"
$2
[inputs.capture]
plugin = "raw"
interface = "lo"
port = $port
track_response = true
[middleware.echo]
plugin = "process"
from = ["capture"]
command = ["cat"]
[outputs.recording]
plugin = "file"
from = ["echo"]
path = "$3"
EOF
}

# Waits until the log says the capture runs (bounded), then sends N requests.
wait_capturing() {
  for _ in $(seq 100); do
    grep -q "raw: capturing lo" "$1" && return 0
    kill -0 "$doppel_pid" 2>/dev/null || { cat "$1" >&2; fail "doppel exited early"; }
    sleep 0.1
  done
  cat "$1" >&2; fail "the capture did not start"
}
requests() {
  for i in $(seq "$1"); do curl -s -o /dev/null "http://127.0.0.1:$port/$2-$i" || fail "curl"; done
}
stop_doppel() {
  kill -INT "$doppel_pid"
  local rc=0
  wait "$doppel_pid" || rc=$?
  doppel_pid=""
  [ "$rc" = 0 ] || { cat "$1" >&2; fail "doppel exited $rc"; }
}
status_field() { awk -v k="$2:" '$1 == k {$1 = ""; print substr($0, 2)}' "$1"; }

# 1. Root -> nobody.
pipeline "$work/p.toml" "" "$out/dropped.gor"
"$DOPPEL" run "$work/p.toml" > /dev/null 2> "$work/log" &
doppel_pid=$!
wait_capturing "$work/log"
requests 5 dropped
sleep 0.5
checked=0
for status in /proc/"$doppel_pid"/task/*/status; do
  [ -r "$status" ] || continue
  cp "$status" "$work/status" 2>/dev/null || continue
  for k in Uid Gid; do
    read -r -a ids <<< "$(status_field "$work/status" $k)"
    [ "${#ids[@]}" = 4 ] || fail "$status: no $k line"
    for id in "${ids[@]}"; do [ "$id" = 65534 ] || fail "$status: $k ${ids[*]}, expected 65534 everywhere"; done
  done
  [ "$(status_field "$work/status" Groups)" = "65534" ] || fail "$status: groups $(status_field "$work/status" Groups)"
  for k in CapInh CapPrm CapEff CapBnd CapAmb; do
    [ "$(status_field "$work/status" $k)" = 0000000000000000 ] ||
      fail "$status: $k $(status_field "$work/status" $k), expected no capability"
  done
  checked=$((checked + 1))
done
[ "$checked" -ge 3 ] || fail "only $checked threads checked"
# The middleware was started after the change of identity: it is nobody too.
child=$(pgrep -P "$doppel_pid" -x cat | head -1)
[ -n "$child" ] || fail "no middleware process"
read -r -a ids <<< "$(status_field /proc/"$child"/status Uid)"
[ "${ids[*]}" = "65534 65534 65534 65534" ] || fail "middleware uids ${ids[*]}"
[ "$(status_field /proc/"$child"/status CapEff)" = 0000000000000000 ] || fail "middleware has capabilities"
stop_doppel "$work/log"
grep -q "working as user nobody" "$work/log" || { cat "$work/log" >&2; fail "the drop is not logged"; }
[ "$(stat -c %U "$out/dropped.gor")" = nobody ] || fail "the recording is not nobody's"
n=$(grep -c "^GET /dropped-" "$out/dropped.gor" || true)
[ "$n" = 5 ] || { cat "$work/log" >&2; fail "$n of 5 requests recorded after the drop"; }
echo "ok: root -> nobody, $checked threads without capabilities, middleware as nobody, 5/5 requests"

# 2. A path nobody cannot write: the start fails and says as whom it tried.
mkdir -p "$work/private"
chmod 0700 "$work/private"
pipeline "$work/p.toml" "" "$work/private/x.gor"
rc=0
"$DOPPEL" run "$work/p.toml" > /dev/null 2> "$work/log" || rc=$?
[ "$rc" != 0 ] || fail "writing where nobody cannot write succeeded"
grep -q "private/x.gor" "$work/log" || { cat "$work/log" >&2; fail "the path is not named"; }
grep -q 'works as user "nobody"' "$work/log" || { cat "$work/log" >&2; fail "the user is not named"; }
echo "ok: unwritable output refused at start (exit $rc)"

# 3. user = "root" keeps root, and says so.
pipeline "$work/p.toml" 'user = "root"' "$work/private/root.gor"
"$DOPPEL" run "$work/p.toml" > /dev/null 2> "$work/log" &
doppel_pid=$!
wait_capturing "$work/log"
read -r -a ids <<< "$(status_field /proc/"$doppel_pid"/status Uid)"
[ "${ids[*]}" = "0 0 0 0" ] || fail "user = root: uids ${ids[*]}"
requests 2 root
sleep 0.5
stop_doppel "$work/log"
grep -q "running as root for the whole run" "$work/log" || fail "no warning about root"
[ "$(grep -c '^GET /root-' "$work/private/root.gor")" = 2 ] || fail "user = root: requests not recorded"
echo "ok: user = root keeps root"

# 4. A pipeline that opens no live capture needs no privilege: started as root it stays root
#    (nothing to open first) and says that root is not needed.
/usr/bin/python3 "$DOPPEL_SOURCE_DIR/tests/support/gor_tool.py" generate "$work/private/in.gor" 3
printf '[pipeline]\nname = "files"\nstats_interval = "0s"\n[inputs.in]\nplugin = "file"\npath = "%s"\nmax_speed = true\n[outputs.out]\nplugin = "file"\nfrom = ["in"]\npath = "%s"\n' \
  "$work/private/in.gor" "$work/private/copy.gor" > "$work/files.toml"
"$DOPPEL" run "$work/files.toml" > /dev/null 2> "$work/log" || { cat "$work/log" >&2; fail "file pipeline as root"; }
grep -q "running as root, which nothing in this pipeline needs" "$work/log" || { cat "$work/log" >&2; fail "no advice"; }
! grep -q "working as user" "$work/log" || fail "a file pipeline changed user"
[ "$(grep -c '^1 [0-9a-f]* ' "$work/private/copy.gor")" = 3 ] || fail "file pipeline: records not copied"
echo "ok: a pipeline without a live capture stays root and says it need not"

# 5. An unknown user: refused where it is written.
pipeline "$work/p.toml" 'user = "no-such-user-doppel"' "$out/x.gor"
rc=0
"$DOPPEL" validate "$work/p.toml" > /dev/null 2> "$work/err" || rc=$?
[ "$rc" = 78 ] || fail "validate exited $rc for an unknown user"
grep -q 'p.toml:4:[0-9]*: .*no user "no-such-user-doppel"' "$work/err" || { cat "$work/err" >&2; fail "no located error"; }
echo "ok: unknown user refused at its position"

# 6. Unprivileged, with CAP_NET_RAW and CAP_NET_ADMIN as ambient capabilities (as the systemd
#    unit starts it): captures without root.
pipeline "$work/p.toml" "" "$out/unprivileged.gor"
chown nobody "$work/p.toml"
setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all,+net_raw,+net_admin \
  --ambient-caps=-all,+net_raw,+net_admin -- "$DOPPEL" run "$work/p.toml" > /dev/null 2> "$work/log" &
doppel_pid=$!
wait_capturing "$work/log"
requests 3 unprivileged
sleep 0.5
stop_doppel "$work/log"
[ "$(grep -c '^GET /unprivileged-' "$out/unprivileged.gor")" = 3 ] || { cat "$work/log" >&2; fail "unprivileged capture"; }
echo "ok: unprivileged with CAP_NET_RAW captures"
