#!/usr/bin/env bash
# Durable conversion intake vs. a bare aiohttp+uvloop handler, measured with wrk.
#
#   bash bench/intake_wrk.sh [DURATION_S] [CONNECTIONS]
#
# 1. baseline: bench/bare_server.py parses the same /postback query and answers
#    200 with nothing stored;
# 2. gateway: `python -m gateway serve` on a fresh SQLite file; every request is a
#    new conversion (a unique txid per request from bench/intake_wrk.lua), answered
#    only after its group commit.  Deliveries go to 127.0.0.1:9 (closed), and the
#    dispatcher only starts sending after the 600 s rule delay, so the run measures
#    intake, not delivery.
# Loopback only; each run is bounded by DURATION_S.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
THREADS=${THREADS:-1}
source bench/wrk_common.sh

$PY bench/bare_server.py 18091 & BARE=$!
wait_up 18091
wrk -t"$THREADS" -c"$CONNS" -d2s -s bench/intake_wrk.lua http://127.0.0.1:18091 >/dev/null  # warm-up
T0=$(ticks $BARE)
BARE_RPS=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s bench/intake_wrk.lua http://127.0.0.1:18091 | tee "$WORK/bare.txt" | rps)
BARE_CPU=$(cpu_per_req "$WORK/bare.txt" $(( $(ticks $BARE) - T0 )))
kill $BARE; wait $BARE 2>/dev/null || true

$PY -m gateway serve --config "$WORK/gateway.toml" --db "$WORK/g.sqlite" --port 18092 2>"$WORK/gw.log" & GW=$!
wait_up 18092
CLICK_ID=$(curl -s -o /dev/null -w '%{redirect_url}' "http://127.0.0.1:18092/click/bench?externalid=ext-1" | sed 's/.*s=//')
export CLICK_ID
wrk -t"$THREADS" -c"$CONNS" -d2s -s bench/intake_wrk.lua http://127.0.0.1:18092 >/dev/null
T0=$(ticks $GW); L0=$(loop_ticks $GW)
GW_RPS=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s bench/intake_wrk.lua http://127.0.0.1:18092 | tee "$WORK/gw.txt" | rps)
GW_CPU=$(cpu_per_req "$WORK/gw.txt" $(( $(ticks $GW) - T0 )))
GW_LOOP=$(cpu_per_req "$WORK/gw.txt" $(( $(loop_ticks $GW) - L0 )))
kill -TERM $GW; wait $GW 2>/dev/null || true
STORED=$($PY -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from conversions').fetchone()[0])" "$WORK/g.sqlite")

echo "--- bare aiohttp+uvloop (nothing stored)"; cat "$WORK/bare.txt"
echo "--- gateway durable intake"; cat "$WORK/gw.txt"
echo "conversions stored: $STORED"
echo "server CPU per request: bare ${BARE_CPU} us, gateway ${GW_CPU} us (all threads; steadier than req/s on a busy box)"
echo "gateway event-loop thread: ${GW_LOOP} us per request (the thread that bounds its req/s)"
$PY - "$BARE_RPS" "$GW_RPS" <<'EOF'
import sys
bare, gw = (float(x) for x in sys.argv[1:3])
print(f"bare {bare:.0f} req/s, gateway {gw:.0f} req/s, ratio {gw / bare:.2f} (target >= 0.75)")
EOF
