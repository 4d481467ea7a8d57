#!/usr/bin/env bash
# `make run`: the real engine on H2 (port 8080) and the gateway in front of it (port 8000).
# Waits for both, prints where they are, and stops both on Ctrl-C or SIGTERM.
set -euo pipefail

ENGINE="${ENGINE:-operaton}"
ENGINE_PORT="${ENGINE_PORT:-8080}"
GATEWAY_PORT="${GATEWAY_PORT:-8000}"
ADMIN_PORT="${ADMIN_PORT:-8001}"
DATA_DIR="${DATA_DIR:-$PWD/.data/$ENGINE}"
JAR="deploy/engine/target/engine-$ENGINE.jar"
mkdir -p "$DATA_DIR"

engine_pid="" gateway_pid=""
stop() {
    trap - INT TERM EXIT
    echo "stopping..."
    [ -n "$gateway_pid" ] && kill -TERM "$gateway_pid" 2>/dev/null && wait "$gateway_pid" || true
    [ -n "$engine_pid" ] && kill -TERM "$engine_pid" 2>/dev/null && wait "$engine_pid" || true
    exit 0
}
trap stop INT TERM EXIT

wait_for() { # url what pid
    for _ in $(seq 1 600); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { echo "$2 exited; see its log above" >&2; exit 1; }
        sleep 0.5
    done
    echo "$2 did not become ready at $1" >&2
    exit 1
}

echo "starting $ENGINE on 127.0.0.1:$ENGINE_PORT (data in $DATA_DIR)"
java -Xmx1g -Dfile.encoding=UTF-8 -jar "$JAR" \
    --server.port="$ENGINE_PORT" --server.address=127.0.0.1 --engine.data-dir="$DATA_DIR" &
engine_pid=$!
wait_for "http://127.0.0.1:$ENGINE_PORT/engine-rest/engine" "engine" "$engine_pid"

.venv/bin/engine-gateway --upstream "http://127.0.0.1:$ENGINE_PORT" \
    --port "$GATEWAY_PORT" --admin-port "$ADMIN_PORT" &
gateway_pid=$!
wait_for "http://127.0.0.1:$ADMIN_PORT/readyz" "gateway" "$gateway_pid"

cat <<INFO

  engine-gateway is up.
    API (through the gateway): http://127.0.0.1:$GATEWAY_PORT/engine-rest
    admin:                     http://127.0.0.1:$ADMIN_PORT/livez  /readyz
    engine ($ENGINE, direct):  http://127.0.0.1:$ENGINE_PORT/engine-rest
    credentials:               demo / demo
  try: curl -u demo:demo http://127.0.0.1:$GATEWAY_PORT/engine-rest/engine
  Ctrl-C stops both.

INFO
wait -n "$engine_pid" "$gateway_pid" || true
echo "a process exited" >&2
