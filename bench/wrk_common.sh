# Shared by bench/intake_wrk.sh and bench/console_sse.sh (sourced, not run):
# the interpreter, a work folder removed at exit with every server started
# here, the durable-intake gateway config, and the /proc readers.
#
# The config: every request to /postback is a new conversion of campaign
# "bench" (bench/intake_wrk.lua sends a unique txid), answered after its
# group commit; the rule's 600 s delay keeps the dispatcher from sending
# during a run (127.0.0.1:9 is closed anyway), so a run measures intake.
PY=${PY:-.venv/bin/python}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)"; exit 2; }
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat > "$WORK/gateway.toml" <<'EOF'
[batch]
max_wait_ms = 2.0
max_size = 2000

[delivery]
allow_private_targets = true

[[traffic_sources]]
name = "bench"

[[traffic_sources.postbacks]]
name = "bench:pb"
url = "http://127.0.0.1:9/pb?c={externalid}&p={payout}&tx={txid}"
delay = 600

[[campaigns]]
id = "bench"
traffic_source = "bench"
offer_url = "https://offer.example/?s={click.id}"
EOF

wait_up() {
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server on :$1 did not start"; exit 1
}
# req/s from wrk's output (a file, or stdin)
rps() { awk '/Requests\/sec/ {print $2}' "$@"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, all threads
loop_ticks() { awk '{print $14 + $15}' "/proc/$1/task/$1/stat"; }   # the main (event-loop) thread
# CPU microseconds per request of PID over a wrk output file (ticks are 10 ms)
cpu_per_req() { awk -v t="$2" '/requests in/ {printf "%.1f", t * 10000 / $1}' "$1"; }
