#!/usr/bin/env bash
# Integration, one nats-server with JetStream on loopback:
#  - agent: .gor file -> nats output creates the stream; published again -> de-duplicated;
#  - a message that is not a record on the subject -> counted skip, not redelivered;
#  - worker: nats input -> http (nginx echo) -> compare -> report: every request exactly once,
#    every verdict written;
#  - an existing stream with other settings -> clear error, exit != 0;
#  - servers down when the agent starts -> it buffers, reconnects, publishes everything.
set -euo pipefail
work=$(mktemp -d)
source "$(dirname "$0")/nats_common.sh"
trap cleanup EXIT

N=300
python3 "$HERE/make_gor.py" "$work/a.gor" a $N
uris "$work/a.gor" > "$work/want.txt.in"
nats_start_single "$work/nats"
NGINX_DIR="$work/nginx"
start_echo_nginx "$NGINX_DIR"

# --- agent, twice: the second run's copies are dropped by the stream (same Nats-Msg-Id)
agent_toml "$work/agent.toml" "$work/a.gor" "\"$NATS_URL\"" 'create_stream = true'
"$DOPPEL" validate "$work/agent.toml"
"$DOPPEL" run "$work/agent.toml" > "$work/agent1.out" 2>&1 || { cat "$work/agent1.out"; fail "agent run"; }
[ "$(counter "$work/agent1.out" bus published)" = $N ] || { cat "$work/agent1.out"; fail "published != $N"; }
[ "$(counter "$work/agent1.out" bus paired)" = $N ] || fail "requests not paired with their responses"
[ "$(stream_messages "$NATS_URL")" = $N ] || fail "stream does not hold $N messages"
"$DOPPEL" run "$work/agent.toml" > "$work/agent2.out" 2>&1 || { cat "$work/agent2.out"; fail "agent rerun"; }
[ "$(counter "$work/agent2.out" bus duplicates)" = $N ] || { cat "$work/agent2.out"; fail "re-publish not de-duplicated"; }
[ "$(stream_messages "$NATS_URL")" = $N ] || fail "duplicates stored"

# --- garbage on the subject
python3 "$NATS_TOOL" publish "$NATS_URL" doppel.capture "this is not a gor record" > /dev/null

# --- worker
worker_toml "$work/worker.toml" "\"$NATS_URL\"" "$NGINX_PORT" "$work/verdicts.jsonl" 'ack_wait = "5s"' 'max_speed = true'
"$DOPPEL" validate "$work/worker.toml"
"$DOPPEL" run "$work/worker.toml" > "$work/worker.out" 2>&1 &
pid=$!
BG_PIDS+=("$pid")
wait_for_requests "$NGINX_DIR/access.log" $N 30 || { cat "$work/worker.out"; fail "worker did not replay everything"; }
sleep 1
stop_doppel "$pid" || { cat "$work/worker.out"; fail "worker exit code"; }
check_exactly_once "$NGINX_DIR/access.log" "$work/want.txt.in"
[ "$(grep -c " /r/" "$NGINX_DIR/access.log")" = $N ] || fail "some request replayed more than once"
grep -q "dropped.invalid_record: 1" "$work/worker.out" || { cat "$work/worker.out"; fail "invalid record not counted"; }
[ "$(counter "$work/worker.out" bus acked)" = $N ] || { cat "$work/worker.out"; fail "acked != $N"; }
[ "$(wc -l < "$work/verdicts.jsonl")" = $N ] || fail "verdicts: $(wc -l < "$work/verdicts.jsonl") of $N"
[ "$(grep -c '"verdict":"match"' "$work/verdicts.jsonl")" = $N ] || fail "not every verdict is a match"

# --- a worker restarted on the same durable consumer gets nothing again (all acked)
"$DOPPEL" run "$work/worker.toml" > "$work/worker2.out" 2>&1 &
pid=$!
BG_PIDS+=("$pid")
sleep 2
stop_doppel "$pid" || true
[ "$(grep -c " /r/" "$NGINX_DIR/access.log")" = $N ] || fail "acknowledged messages delivered again"

# --- pipelines/worker.toml itself, pointed at this server and nginx, on a durable of its own
"$DOPPEL" validate "$SRC/pipelines/worker.toml"
sed -e "s|^servers = .*|servers = [\"$NATS_URL\"]|" -e '/^credentials = /d' \
    -e "s|^url = .*|url = \"http://127.0.0.1:$NGINX_PORT\"|" -e 's|^durable = .*|durable = "shipped"|' \
    -e 's|^deliver = .*|deliver = "since:2020-01-01T00:00Z"|' -e 's|^allow = .*|allow = ["^/r/"]|' \
    -e "s|worker-diffs.jsonl|$work/shipped.jsonl|; s|worker-report.html|$work/shipped.html|" \
    "$SRC/pipelines/worker.toml" > "$work/shipped.toml"
"$DOPPEL" run "$work/shipped.toml" > "$work/shipped.out" 2>&1 &
pid=$!
BG_PIDS+=("$pid")
wait_for_requests "$NGINX_DIR/access.log" $((2 * N)) 60 || { cat "$work/shipped.out"; fail "shipped worker"; }
sleep 0.5
stop_doppel "$pid" || { cat "$work/shipped.out"; fail "shipped worker exit code"; }
[ "$(wc -l < "$work/shipped.jsonl")" = $N ] || fail "shipped worker verdicts"

# --- the stream exists with other settings: the agent refuses to start, saying why
agent_toml "$work/other.toml" "$work/a.gor" "\"$NATS_URL\"" 'create_stream = true' 'max_age = "1h"'
if "$DOPPEL" run "$work/other.toml" > "$work/other.out" 2>&1; then fail "stream mismatch accepted"; fi
grep -q 'stream "DOPPEL" exists with other settings: max_age = unlimited (pipeline: 1h)' "$work/other.out" ||
  { cat "$work/other.out"; fail "no clear error for the stream mismatch"; }

# --- servers down when the agent starts: it buffers and publishes once a server is there
port=$(nats_free_port)
python3 "$HERE/make_gor.py" "$work/b.gor" b 50
cat > "$work/late.conf" <<CONF
listen: 127.0.0.1:$port
jetstream { store_dir: "$work/late-store" }
CONF
agent_toml "$work/late.toml" "$work/b.gor" "\"nats://127.0.0.1:$port\"" 'create_stream = true' 'stream = "LATE"'
"$DOPPEL" run "$work/late.toml" > "$work/late.out" 2>&1 &
pid=$!
BG_PIDS+=("$pid")
sleep 1.5
kill -0 "$pid" || { cat "$work/late.out"; fail "agent gave up while the servers were down"; }
nats-server -c "$work/late.conf" > "$work/late.log" 2>&1 &
NATS_PIDS+=("$!")
rc=0
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid" || rc=$?
[ $rc = 0 ] || { cat "$work/late.out"; fail "late agent exit $rc"; }
grep -q "unreachable" "$work/late.out" || fail "no warning about unreachable servers"
[ "$(counter "$work/late.out" bus published)" = 50 ] || { cat "$work/late.out"; fail "late agent lost messages"; }
python3 "$NATS_TOOL" stream-info "nats://127.0.0.1:$port" LATE | grep -q '"messages": 50' || fail "LATE stream count"
echo "nats basic: ok"
