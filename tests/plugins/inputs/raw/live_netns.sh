#!/usr/bin/env bash
# Live capture on a veth in network namespaces the test creates: nginx in one namespace,
# curl in the other, doppel capturing the server side's veth.
set -euo pipefail
source "$(dirname "$0")/live_common.sh"
command -v ip >/dev/null || fail "iproute2 is not installed"
work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
ns_srv="doppel-srv-$$" ns_cli="doppel-cli-$$"
nginx_pid="" doppel_pid=""
cleanup() {
  [ -n "$doppel_pid" ] && kill "$doppel_pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  ip netns del "$ns_srv" 2>/dev/null || true
  ip netns del "$ns_cli" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns_srv"
ip netns add "$ns_cli"
ip link add vsrv$$ type veth peer name vcli$$
ip link set vsrv$$ netns "$ns_srv"
ip link set vcli$$ netns "$ns_cli"
ip -n "$ns_srv" addr add 10.77.0.1/24 dev vsrv$$
ip -n "$ns_cli" addr add 10.77.0.2/24 dev vcli$$
ip -n "$ns_srv" link set vsrv$$ up
ip -n "$ns_cli" link set vcli$$ up
ip -n "$ns_srv" link set lo up
ip -n "$ns_cli" link set lo up
port=8080
write_site "$work" 10.77.0.1 "$port"
ip netns exec "$ns_srv" nginx -c "$work/nginx.conf" -p "$work" &
nginx_pid=$!
wait_for_port 10.77.0.1 "$port" "$ns_cli"
write_pipeline "$work/capture.toml" "vsrv$$" "$port" "$work/out.gor"
ip netns exec "$ns_srv" "$DOPPEL" run "$work/capture.toml" > "$work/doppel.out" 2> "$work/doppel.log" &
doppel_pid=$!
wait_for_capture "$work/doppel.log"
ip netns exec "$ns_cli" bash -c "$(declare -f run_clients); run_clients http://10.77.0.1:$port $work"
sleep 0.5
kill -INT "$doppel_pid"
timeout 20 tail --pid="$doppel_pid" -f /dev/null || fail "doppel did not exit after SIGINT"
wait "$doppel_pid" || { cat "$work/doppel.log" >&2; fail "doppel exited with an error"; }
doppel_pid=""
check_capture "$work/out.gor" "$work" || { cat "$work/doppel.log" "$work/doppel.out" >&2; fail "capture differs"; }
