#!/usr/bin/env bash
# Safety rails (docs/guide/replay.md): an http output that replays to the service a live capture
# feeding it captures is refused at validation, at its `url`, unless allow_replay_to_capture;
# `doppel validate` warns about replaying every method unless a `method` filter or
# replay_writes = true says which.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"
work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
trap 'rm -rf "$work"' EXIT
port=16888

# pipeline URL [RAW-EXTRA] [HTTP-EXTRA] [FILTER]: capture lo:$port, replay to URL.
pipeline() {
  local from=capture
  {
    printf '[pipeline]\nname = "rails"\n[inputs.capture]\nplugin = "raw"\ninterface = "lo"\nport = %s\ntrack_response = true\n%s\n' \
      "$port" "${2:-}"
    if [ -n "${4:-}" ]; then
      printf '[filters.reads]\nplugin = "method"\nfrom = ["capture"]\nallow = ["GET", "HEAD"]\n'
      from=reads
    fi
    printf '[outputs.candidate]\nplugin = "http"\nfrom = ["%s"]\nurl = "%s"\n%s\n' "$from" "$1" "${3:-}"
  } > "$work/p.toml"
}
validate() {  # validate EXPECTED-EXIT: stderr in $work/err
  local rc=0
  "$DOPPEL" validate "$work/p.toml" > "$work/out" 2> "$work/err" || rc=$?
  [ "$rc" = "$1" ] || { cat "$work/p.toml" "$work/err" >&2; fail "validate exited $rc, expected $1"; }
}
refused() {
  validate 78
  grep -q "p.toml:[0-9]*:[0-9]*: replays to .*:$port, the service that \[inputs.capture\] captures" "$work/err" ||
    { cat "$work/err" >&2; fail "no located refusal"; }
  grep -q "allow_replay_to_capture = true" "$work/err" || fail "the refusal does not say how to lift it"
}

# The captured service itself: by name, by loopback address, by this machine's own address.
pipeline "http://localhost:$port"; refused
pipeline "http://127.0.0.1:$port/base"; refused
own=$(hostname -I 2>/dev/null | awk '{print $1}')
if [ -n "$own" ]; then pipeline "http://$own:$port"; refused; fi
# Lifted when intended.
pipeline "http://localhost:$port" "" "allow_replay_to_capture = true"; validate 0
# Another port, or another host than the one the capture is limited to: a candidate.
pipeline "http://127.0.0.1:17555"; validate 0
pipeline "http://127.0.0.1:$port" 'host = "192.0.2.99"'; validate 0
# ... but the host the capture is limited to is production.
pipeline "http://192.0.2.99:$port" 'host = "192.0.2.99"'; refused
# A capture file is no live service: replaying a recording is what it is for.
printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x00\x00\x01\x00\x00\x00' > "$work/empty.pcap"
{
  printf '[pipeline]\nname = "file"\n[inputs.capture]\nplugin = "raw"\nfile = "%s"\nport = %s\n' "$work/empty.pcap" "$port"
  printf '[outputs.candidate]\nplugin = "http"\nfrom = ["capture"]\nurl = "http://127.0.0.1:%s"\nreplay_writes = true\n' "$port"
} > "$work/p.toml"
validate 0

# Writes: a warning without a method filter or replay_writes, none with either.
pipeline "http://127.0.0.1:17555"; validate 0
grep -q "p.toml:[0-9]*:[0-9]*: warning: \[outputs.candidate\] replays every method, POST, PUT, PATCH and DELETE" "$work/err" ||
  { cat "$work/err" >&2; fail "no warning about writes"; }
pipeline "http://127.0.0.1:17555" "" "" method; validate 0
if grep -q "replays every method" "$work/err"; then fail "warned despite a method filter"; fi
pipeline "http://127.0.0.1:17555" "" "replay_writes = true"; validate 0
if grep -q "replays every method" "$work/err"; then fail "warned despite replay_writes"; fi
# `doppel run` refuses the same pipeline before capturing anything.
pipeline "http://localhost:$port"
rc=0; "$DOPPEL" run "$work/p.toml" > /dev/null 2> "$work/err" || rc=$?
[ "$rc" = 78 ] && grep -q "replays to localhost:$port" "$work/err" || { cat "$work/err" >&2; fail "run did not refuse ($rc)"; }
echo "ok: replay rails"
