#!/usr/bin/env bash
# Intake with three browsers on the console's live view vs. none, measured with wrk.
#
#   bash bench/console_sse.sh [DURATION_S] [ROUNDS] [CONNECTIONS]
#
# One gateway (`python -m gateway serve`, no api_token, so the console answers
# loopback without a login), the same durable-intake load as
# bench/intake_wrk.sh (a new conversion per request; deliveries delayed 600 s,
# so the run measures intake).  Rounds alternate: no SSE client, then three
# `curl -N` readers of /console/live, each receiving the overview once a
# second (odd rounds without first, even rounds with).  Reports req/s and gateway CPU per request per round and the median
# of the per-pair ratios (with / without).  Loopback only, bounded by
# DURATION_S x 2 x ROUNDS.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-8}
ROUNDS=${2:-5}
CONNS=${3:-64}
PORT=${PORT:-18093}
source bench/wrk_common.sh

$PY -m gateway serve --config "$WORK/gateway.toml" --db "$WORK/g.sqlite" --port "$PORT" 2>"$WORK/gw.log" & GW=$!
wait_up "$PORT"
CLICK_ID=$(curl -s -o /dev/null -w '%{redirect_url}' "http://127.0.0.1:$PORT/click/bench?externalid=ext-1" | sed 's/.*s=//')
export CLICK_ID
wrk -t1 -c"$CONNS" -d2s -s bench/intake_wrk.lua "http://127.0.0.1:$PORT" >/dev/null  # warm-up

round() {  # $1: label; prints "rps cpu"
  local out="$WORK/$1.txt" t0
  t0=$(ticks $GW)
  wrk -t1 -c"$CONNS" -d"${DURATION}s" -s bench/intake_wrk.lua "http://127.0.0.1:$PORT" > "$out"
  echo "$(rps "$out") $(cpu_per_req "$out" $(( $(ticks $GW) - t0 )))"
}

: > "$WORK/results"
for r in $(seq "$ROUNDS"); do
  # odd rounds measure "none" first, even rounds "three" first (no order bias)
  if (( r % 2 )); then NONE=$(round "none-$r"); fi
  READERS=()
  for _ in 1 2 3; do
    curl -sN "http://127.0.0.1:$PORT/console/live" > "$WORK/sse-$r-${#READERS[@]}.txt" & READERS+=($!)
  done
  sleep 1.5
  THREE=$(round "three-$r")
  kill "${READERS[@]}" 2>/dev/null || true; wait "${READERS[@]}" 2>/dev/null || true
  if (( r % 2 == 0 )); then NONE=$(round "none-$r"); fi
  EVENTS=$(cat "$WORK"/sse-"$r"-*.txt | grep -c '^event: overview' || true)
  echo "round $r: none $NONE | three $THREE | overview events received by the 3 readers: $EVENTS"
  echo "$NONE $THREE $EVENTS" >> "$WORK/results"
done
kill -TERM $GW; wait $GW 2>/dev/null || true

$PY - "$WORK/results" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
rps = [float(r[2]) / float(r[0]) for r in rows]
cpu = [float(r[3]) / float(r[1]) for r in rows]
events = [int(r[4]) for r in rows]
print(f"req/s with three live views / with none, per round: {', '.join(f'{x:.3f}' for x in rps)}")
print(f"median {statistics.median(rps):.3f} (target >= 0.95)")
print(f"gateway CPU per request, three / none: median {statistics.median(cpu):.3f}")
print(f"overview events per round (3 readers): {events} (none means the stream did not flow)")
EOF
