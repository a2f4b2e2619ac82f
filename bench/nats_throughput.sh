#!/usr/bin/env bash
# Messages/s through NATS JetStream: a .gor file -> doppel `nats` output (agent), then doppel
# `nats` input -> null output (worker), next to a plain C publish/consume loop with the same
# client library (libnats) and the same message sizes, in the same run on one nats-server.
#   bench/nats_throughput.sh [PAIRS] [BUILD_DIR]
# One "message" = one NATS message = a request with its original response (the agent pairs them).
set -euo pipefail
PAIRS=${1:-50000}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${2:-$SRC/build}
DOPPEL=$BUILD/bin/doppel
export DOPPEL_PLUGIN_PATH=$BUILD/plugins
work=$(mktemp -d)
source "$SRC/tests/support/nats_server.sh"
trap 'nats_stop_all; [ -n "${wpid:-}" ] && kill -KILL $wpid 2>/dev/null; rm -rf "$work"' EXIT
TOOL=$SRC/tests/support/nats_tool.py
now() { date +%s.%N; }

python3 "$SRC/tests/plugins/inputs/nats/make_gor.py" "$work/in.gor" bench "$PAIRS"
nats_start_single "$work/nats"

# --- the plain loop: one message per pair, same body size as doppel's (two .gor records)
cat > "$work/plain.c" <<'C'
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char** argv) {
  const char* url = argv[1]; int n = atoi(argv[2]); int size = atoi(argv[3]);
  natsConnection* nc; jsCtx* js; jsOptions jo; jsErrCode ec;
  if (natsConnection_ConnectTo(&nc, url) != NATS_OK) return 1;
  jsOptions_Init(&jo); jo.PublishAsync.MaxPending = 1024;
  natsConnection_JetStream(&js, nc, &jo);
  jsStreamConfig sc; jsStreamConfig_Init(&sc); const char* subj[] = {"plain.capture"};
  sc.Name = "PLAIN"; sc.Subjects = subj; sc.SubjectsLen = 1; sc.Storage = js_FileStorage;
  if (js_AddStream(NULL, js, &sc, NULL, &ec) != NATS_OK) return 2;
  char* body = malloc(size); memset(body, 'x', size);
  double t0 = now();
  for (int i = 0; i < n; i++) {
    char id[32]; snprintf(id, sizeof id, "12:%024d", i);
    natsMsg* m; natsMsg_Create(&m, "plain.capture", NULL, body, size);
    natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    if (js_PublishMsgAsync(js, &m, NULL) != NATS_OK) return 3;
    natsMsg_Destroy(m);
  }
  jsPubOptions po; jsPubOptions_Init(&po); po.MaxWait = 60000;
  if (js_PublishAsyncComplete(js, &po) != NATS_OK) return 4;
  double t1 = now();
  natsSubscription* sub; jsSubOptions so; jsSubOptions_Init(&so);
  if (js_PullSubscribe(&sub, js, "plain.capture", "plain", NULL, &so, &ec) != NATS_OK) return 5;
  int got = 0;
  while (got < n) {
    natsMsgList list;
    if (natsSubscription_Fetch(&list, sub, 64, 5000, &ec) != NATS_OK) return 6;
    for (int i = 0; i < list.Count; i++) natsMsg_Ack(list.Msgs[i], NULL);
    got += list.Count;
    natsMsgList_Destroy(&list);
  }
  natsConnection_Flush(nc);
  double t2 = now();
  printf("%.0f %.0f\n", n / (t1 - t0), n / (t2 - t1));
  return 0;
}
C
cc -O2 -o "$work/plain" "$work/plain.c" $(pkg-config --cflags --libs libnats)
size=$(python3 -c "
import sys
data=open('$work/in.gor','rb').read(); sep='\n\U0001F435\U0001F648\U0001F649\n'.encode()
recs=[r for r in data.split(sep) if r]
print(len(recs[0])+len(sep)+len(recs[1]))")
read -r plain_pub plain_sub < <("$work/plain" "$NATS_URL" "$PAIRS" "$size")

# --- doppel agent: file -> nats
cat > "$work/agent.toml" <<TOML
[inputs.src]
plugin = "file"
path = "$work/in.gor"
max_speed = true
[outputs.bus]
plugin = "nats"
from = ["src"]
servers = ["$NATS_URL"]
create_stream = true
TOML
t0=$(now)
"$DOPPEL" run "$work/agent.toml" > "$work/agent.out" 2>&1 || { cat "$work/agent.out"; exit 1; }
t1=$(now)
grep -q "published: $PAIRS" "$work/agent.out" || { cat "$work/agent.out"; exit 1; }

# --- doppel worker: nats -> null, timed until the consumer has everything acknowledged
cat > "$work/worker.toml" <<TOML
[inputs.bus]
plugin = "nats"
servers = ["$NATS_URL"]
max_speed = true
batch = 256
max_ack_pending = 20000
[outputs.sink]
plugin = "null"
from = ["bus"]
TOML
t2=$(now)
"$DOPPEL" run "$work/worker.toml" > "$work/worker.out" 2>&1 &
wpid=$!
sleep 0.2
until [ "$(python3 "$TOOL" consumer-done "$NATS_URL" DOPPEL replayers 2>/dev/null || echo 0)" = 1 ]; do sleep 0.05; done
t3=$(now)
kill -INT $wpid; wait $wpid || true; wpid=

awk -v n="$PAIRS" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" -v pp="$plain_pub" -v ps="$plain_sub" -v size="$size" 'BEGIN {
  dp = n / (t1 - t0); ds = n / (t3 - t2);
  printf "messages: %d (request+response pairs, %d bytes each)\n", n, size;
  printf "publish  plain libnats %10.0f msg/s   doppel file->nats %10.0f msg/s   ratio %.2f\n", pp, dp, dp / pp;
  printf "consume  plain libnats %10.0f msg/s   doppel nats->null %10.0f msg/s   ratio %.2f\n", ps, ds, ds / ps;
  printf "(doppel figures include process start-up and the final drain)\n" }'
