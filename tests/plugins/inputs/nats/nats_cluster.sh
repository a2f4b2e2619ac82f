#!/usr/bin/env bash
# Integration, a three-node JetStream cluster on loopback with an R3 stream; two agents publish
# from .gor files, three workers share one durable consumer and replay to nginx:
#  1. nothing fails: every request reaches the target exactly once, every verdict is written,
#     the load is shared;
#  2. one worker is stopped (SIGTERM) mid-run: nothing lost; what it had fetched but not handed
#     to its pipeline goes back to the others and is counted as redelivered;
#  3. one worker is killed (SIGKILL) while its pipeline holds messages it took from the stream:
#     nothing lost (they were never acknowledged and go to the others after ack_wait), and any
#     request replayed twice is counted as a redelivery;
#  4. the stream's leader is stopped mid-run: publishing resumes after fail-over, nothing lost,
#     and any request replayed twice is counted as a redelivery.
set -euo pipefail
work=$(mktemp -d)
source "$(dirname "$0")/nats_common.sh"
trap cleanup EXIT

nats_start_cluster "$work/nats"
NGINX_DIR="$work/nginx"
start_echo_nginx "$NGINX_DIR"
servers="\"$(echo "$NATS_URLS" | sed 's/,/", "/g')\""
log="$NGINX_DIR/access.log"

# slow_worker TOML: a middleware answering 20 lines/s in front of the worker's http output, so
# that its pipeline holds many messages taken from the stream and not finished; stats every 250ms.
slow_worker() {
  printf '%s\n' 'while IFS= read -r line; do sleep 0.05; printf "%s\n" "$line"; done' > "$work/slow-mw.sh"
  sed -i 's/^from = \["bus"\]$/from = ["slow"]/' "$1"  # the http output's
  cat >> "$1" <<TOML
[middleware.slow]
plugin = "process"
from = ["bus"]
command = "bash $work/slow-mw.sh"
[pipeline]
stats_interval = "250ms"
TOML
}

# scenario NAME N GAP_MS WORKER_OPTIONS...: agents a/b publish N pairs each on subject
# doppel.NAME into stream NAME (R3); three workers consume it (the first one slow when
# SLOW_FIRST=1). Leaves WORKERS=(pids).
start_scenario() {
  local name=$1 n=$2 gap=$3
  shift 3
  local agent
  for agent in a b; do
    python3 "$HERE/make_gor.py" "$work/$name-$agent.gor" "$name$agent" "$n" "$gap"
    uris "$work/$name-$agent.gor" >> "$work/$name-want.txt"
    agent_toml "$work/$name-agent-$agent.toml" "$work/$name-$agent.gor" "$servers" \
      'create_stream = true' 'replicas = 3' "stream = \"$name\"" "subject = \"doppel.$name\"" 'ack_timeout = "2s"'
    sed -i 's/^max_speed = true$/speed = "100%"/' "$work/$name-agent-$agent.toml"
  done
  WORKERS=()
  local i
  for i in 1 2 3; do
    worker_toml "$work/$name-worker$i.toml" "$servers" "$NGINX_PORT" "$work/$name-verdicts$i.jsonl" \
      "stream = \"$name\"" "subject = \"doppel.$name\"" 'ack_wait = "3s"' "$@"
    if [ $i = 1 ] && [ "${SLOW_FIRST:-0}" = 1 ]; then slow_worker "$work/$name-worker$i.toml"; fi
    "$DOPPEL" run "$work/$name-worker$i.toml" > "$work/$name-worker$i.out" 2>&1 &
    WORKERS+=("$!")
    BG_PIDS+=("$!")
  done
  # Every worker must have reached the cluster (and been told the stream does not exist yet)
  # before the agents publish, or the first one to bind could take the whole scenario.
  local ready=0
  for _ in $(seq 300); do
    ready=0
    for i in 1 2 3; do grep -q "does not exist" "$work/$name-worker$i.out" 2>/dev/null && ready=$((ready + 1)); done
    [ $ready = 3 ] && break
    sleep 0.1
  done
  [ $ready = 3 ] || fail "$name: only $ready of 3 workers reached the cluster"
  AGENTS=()
  for agent in a b; do
    "$DOPPEL" run "$work/$name-agent-$agent.toml" > "$work/$name-agent-$agent.out" 2>&1 &
    AGENTS+=("$!")
    BG_PIDS+=("$!")
  done
}

wait_agents() {
  local p rc
  for p in "${AGENTS[@]}"; do
    rc=0
    wait "$p" || rc=$?
    [ $rc = 0 ] || { cat "$work"/*agent*.out; fail "an agent exited with $rc"; }
  done
}

# finish NAME N_TOTAL: waits for N_TOTAL distinct requests of this scenario, stops the workers, checks.
finish_scenario() {
  local name=$1 total=$2 p
  local n=0
  for _ in $(seq 600); do
    n=$({ grep -o " /r/$name[^ ]*" "$log" || true; } | sort -u | wc -l)
    [ "$n" -ge "$total" ] && break
    sleep 0.1
  done
  sleep 1
  for p in "${WORKERS[@]}"; do [ -n "$p" ] && { stop_doppel "$p" || true; }; done
  grep " /r/$name" "$log" > "$work/$name-log" || true
  check_exactly_once "$work/$name-log" "$work/$name-want.txt"
  REPLAYED=$(wc -l < "$work/$name-log")
  REDELIVERED=0
  local f v
  for f in "$work/$name"-worker*.out; do
    v=$(counter "$f" bus redelivered)
    REDELIVERED=$((REDELIVERED + ${v:-0}))
  done
  VERDICTS=$(cat "$work/$name"-verdicts*.jsonl 2>/dev/null | wc -l)
  echo "$name: $total requests, $REPLAYED replayed, $REDELIVERED redelivered, $VERDICTS verdicts"
}

# 1. nothing fails
start_scenario calm 300 8 'speed = "100%"' 'batch = 16'
wait_agents
finish_scenario calm 600
[ "$REPLAYED" = 600 ] || fail "calm: $REPLAYED replays of 600 requests (expected exactly once)"
[ "$VERDICTS" = 600 ] || fail "calm: $VERDICTS verdicts of 600"
busy=0
for i in 1 2 3; do
  v=$(counter "$work/calm-worker$i.out" bus acked)
  [ "${v:-0}" -gt 0 ] && busy=$((busy + 1))
done
[ $busy -ge 2 ] || fail "calm: the load was not shared ($busy busy workers)"
python3 "$NATS_TOOL" stream-info "${NATS_URLS%%,*}" calm | grep -q '"num_replicas": 3\|"replicas": 3' ||
  fail "calm: the stream is not R3"

# 2. one worker stopped mid-run (workers pace requests, so each holds fetched messages)
start_scenario term 300 10 'speed = "100%"' 'batch = 32'
sleep 1.5
kill -TERM "${WORKERS[0]}"
rc=0
wait "${WORKERS[0]}" || rc=$?
[ $rc = 0 ] || { cat "$work/term-worker1.out"; fail "term: the stopped worker exited with $rc"; }
returned=$(counter "$work/term-worker1.out" bus returned)
WORKERS[0]=
wait_agents
finish_scenario term 600
[ "${returned:-0}" -gt 0 ] || fail "term: the stopped worker returned nothing (test did not exercise redelivery)"
[ "$REDELIVERED" -ge "$returned" ] || fail "term: $returned returned but only $REDELIVERED redelivered"
[ $((REPLAYED - 600)) -le "$REDELIVERED" ] || fail "term: $REPLAYED replays, more duplicates than redeliveries"

# 3. one worker killed mid-run while its pipeline holds messages (a slow middleware keeps them)
SLOW_FIRST=1
start_scenario kill 300 10 'speed = "100%"' 'batch = 32'
SLOW_FIRST=0
held=0
for _ in $(seq 100); do
  held=$(grep -o 'bus\[[^]]*' "$work/kill-worker1.out" 2>/dev/null | grep -o 'in_pipeline=[0-9]*' | tail -1 |
    cut -d= -f2 || true)
  [ "${held:-0}" -ge 20 ] && break
  sleep 0.1
done
[ "${held:-0}" -ge 20 ] || { cat "$work/kill-worker1.out"; fail "kill: the slow worker never held 20 messages"; }
kill -KILL "${WORKERS[0]}"
wait "${WORKERS[0]}" 2>/dev/null || true
WORKERS[0]=
echo "kill: worker 1 killed holding at least $held messages in its pipeline"
wait_agents
finish_scenario kill 600
# What it held when looked at, less what it may have finished until the kill (~4 pairs at 10/s).
[ "$REDELIVERED" -ge $((held - 5)) ] || fail "kill: $held held by the killed worker, only $REDELIVERED redelivered"
[ $((REPLAYED - 600)) -le "$REDELIVERED" ] || fail "kill: $REPLAYED replays, more duplicates than redeliveries"

# 4. the stream leader stopped mid-run
start_scenario leader 300 10 'max_speed = true'
sleep 1.2
leader=$(python3 "$NATS_TOOL" leader "${NATS_URLS%%,*}" leader 2>/dev/null ||
  python3 "$NATS_TOOL" leader "$(echo "$NATS_URLS" | cut -d, -f2)" leader)
[ -n "$leader" ] || fail "leader: no stream leader found"
idx=${leader#n}
echo "stopping stream leader $leader"
nats_kill_node "$idx"
wait_agents
for f in "$work"/leader-agent-*.out; do
  [ "$(counter "$f" bus published)" = 300 ] || { cat "$f"; fail "leader: an agent did not publish everything"; }
done
finish_scenario leader 600
[ $((REPLAYED - 600)) -le "$REDELIVERED" ] || fail "leader: $REPLAYED replays, more duplicates than redeliveries"
[ "$VERDICTS" -ge 600 ] || fail "leader: $VERDICTS verdicts of 600"
echo "nats cluster: ok"
