#!/usr/bin/env bash
# The demo fleet on one machine: outpostc compiles examples/demo.yaml, a local
# Prometheus 2.42 plays the central receiver (remote-write receiver on
# 127.0.0.1:19090), and `outpost` ships this machine's real node metrics to it.
# At the end the script queries the receiver back and prints what arrived.
#
#   DEMO_SECONDS=60   how long the agent runs (0: until Ctrl-C)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
seconds="${DEMO_SECONDS:-60}"
work="$root/target/demo"
rm -rf "$work" && mkdir -p "$work"

bash targets/peers.sh
echo "demo: building outpostc and outpost (release)"
cargo build --locked --release -q -p outpost-compiler -p outpost-agent
bin="$root/target/release"

"$bin/outpostc" check examples/demo.yaml
"$bin/outpostc" compile examples/demo.yaml -o "$work/plans"
plan="$(find "$work/plans" -name node.plan | head -1)"
"$bin/outpostc" explain "$plan" | head -40

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

printf 'global:\n  scrape_interval: 1m\n' > "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/receiver" \
  --web.listen-address=127.0.0.1:19090 --web.enable-remote-write-receiver \
  --log.level=warn >"$work/receiver.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -sf http://127.0.0.1:19090/-/ready >/dev/null && break; sleep 0.2; done

"$bin/outpost" run --plan "$plan" --wal-dir "$work/wal" --listen 127.0.0.1:19464 \
  --node-name "$(hostname)" --node-ip 127.0.0.1 >"$work/outpost.log" 2>&1 &
agent=$!
pids+=($agent)
echo "demo: outpost pid $agent; status on http://127.0.0.1:19464/metrics, receiver on http://127.0.0.1:19090"

if [ "$seconds" = 0 ]; then wait "$agent"; exit; fi
sleep "$seconds"

q() { curl -sfG http://127.0.0.1:19090/api/v1/query --data-urlencode "query=$1"; }
echo
echo "== what the receiver holds after ${seconds}s =="
echo "series from the agent:        $(q 'count({job!=""})' | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')"
echo "up:                           $(q 'up' | python3 -c 'import json,sys; print(", ".join(x["metric"].get("job","?")+"="+x["value"][1] for x in json.load(sys.stdin)["data"]["result"]))')"
echo "node_memory_MemTotal_bytes:   $(q 'node_memory_MemTotal_bytes' | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "missing")') (host: $(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) * 1024 )))"
echo "succeeded samples (agent):    $(q 'prometheus_remote_storage_succeeded_samples_total' | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "missing")')"
echo "agent RSS:                    $(awk '/VmRSS/ {print $2, $3}' /proc/$agent/status)"
echo "agent log (last lines):"
tail -5 "$work/outpost.log"
