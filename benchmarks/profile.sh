#!/usr/bin/env bash
# Where a saturated tokenrelay spends its time (benchmarks/PROFILE.md):
#   [REDIS=1] [TOKENS=60] [RAMP=1.5] benchmarks/profile.sh [STREAMS] [OUT]   (default 3000 streams, /tmp/tokenrelay-profile.txt)
# Serves the scripted model (--database memory) on a free port, opens STREAMS streams of
# 60 tokens at 10 tokens/s from two load processes (benchmarks/_load.py), samples the
# server with py-spy for 8 s once they run, and prints the top frames.
set -euo pipefail
cd "$(dirname "$0")/.."
streams=${1:-3000}
out=${2:-/tmp/tokenrelay-profile.txt}
port=$(.venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
redis=()
if [ -n "${REDIS:-}" ]; then  # REDIS=1: with the stream log on a redis-server of its own
    rport=$(.venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    redis-server --port "$rport" --save "" --appendonly no --daemonize no >/dev/null &
    rpid=$!
    redis=(--redis "redis://127.0.0.1:$rport/0")
fi
.venv/bin/python -m tokenrelay serve --model scripted --database memory --port "$port" \
    --log-level warning "${redis[@]}" &
server=$!
trap 'kill $server ${rpid:-} 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.2; done
# until its start-up work (the providers' SDKs imported in a thread) is done
.venv/bin/python -c "from benchmarks.relay import wait_until_idle; wait_until_idle($server)"
go=$(.venv/bin/python -c "import time; print(time.monotonic() + 0.5)")
loads=()
for i in 0 1; do
    echo "$go" | .venv/bin/python -m benchmarks._load --port "$port" --streams "$streams" \
        --index $i --of 2 --tokens "${TOKENS:-60}" --rate 10 --ramp "${RAMP:-1.5}" --out "/tmp/profile-load-$i.json" \
        >/dev/null &
    loads+=($!)
done
sleep 3
.venv/bin/py-spy record -p "$server" -d 8 -r 250 -f raw -o "$out" --nonblocking >/dev/null
wait "${loads[@]}" || true
.venv/bin/python -m benchmarks._frames "$out"
