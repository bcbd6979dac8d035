#!/usr/bin/env bash
# Webhook spool benchmark: how fast rollbackd accepts notifications (journald entry + spool file with fsync each)
# while the receiver is down, and how fast it delivers the backlog once the receiver is up.
# Usage: Benchmarks/notify-spool.sh [EVENTS]   (after `swift build`; needs python3 with standardwebhooks)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
BIN=.build/debug/rollbackd
[ -x "$BIN" ] || { echo "build first: swift build" >&2; exit 1; }
WORK=$(mktemp -d /tmp/rollbackd-bench-XXXXXX)
trap 'kill $RECEIVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
echo "$SECRET" > "$WORK/secret"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$WORK" "$PORT" <<'PY'
import json, sys
work, port = sys.argv[1], sys.argv[2]
t = json.load(open("thresholds.json"))
t["notify"]["webhooks"] = [{"name": "bench", "url": f"http://127.0.0.1:{port}/ok", "secretFile": f"{work}/secret"}]
json.dump(t, open(f"{work}/thresholds.json", "w"))
PY
DRILL=("$BIN" notify-drill --config "$WORK/thresholds.json" --state-dir "$WORK/state" --initial-backoff 100ms --max-backoff 1s)

start=$(date +%s.%N)
"${DRILL[@]}" --count "$N" >/dev/null 2>&1
end=$(date +%s.%N)
spooled=$(ls "$WORK/state/spool/webhooks/bench" | wc -l)
python3 -c "import sys; n,t=int(sys.argv[1]),float(sys.argv[2])-float(sys.argv[3]); print(f'accepted {n} events (receiver down) in {t:.2f}s: {n/t:.0f} events/s, {t/n*1000:.2f} ms each, {sys.argv[4]} spool files')" "$N" "$end" "$start" "$spooled"

python3 Tests/Servers/webhook_receiver.py --port "$PORT" --secret "$SECRET" --log "$WORK/received.jsonl" > "$WORK/receiver.out" &
RECEIVER=$!
until grep -q READY "$WORK/receiver.out" 2>/dev/null; do sleep 0.05; done
start=$(date +%s.%N)
"${DRILL[@]}" --count 0 --wait 300s 2>/dev/null | tail -1
end=$(date +%s.%N)
python3 - "$WORK/received.jsonl" "$N" "$end" "$start" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n, t = int(sys.argv[2]), float(sys.argv[3]) - float(sys.argv[4])
ids = {r["id"] for r in rows}
ok = all(r["verified"] for r in rows)
print(f"delivered the backlog in {t:.2f}s: {len(ids)/t:.0f} notifications/s; {len(rows)} requests, {len(ids)} unique ids, all verified: {ok}")
PY
