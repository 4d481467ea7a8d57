#!/usr/bin/env bash
# `make run`: the real engine (port 8080) and the gateway in front of it (port 8000), the
# engine on H2 or, with DB=postgres, on a PostgreSQL server of its own (port 5433, data in
# .data/postgres); with CLAMD=on, Debian's clamd with the project's EICAR test signatures
# (deploy/clamd, socket in .data/clamd) and the gateway scanning uploads and downloads with it.
# With DOCUMENTS=file, files over 1 MiB go to a document store in .data/documents; with
# DOCUMENTS=s3, to a SeaweedFS (S3 on port 8333, data in .data/seaweedfs) started here.
# Waits for each, prints where they are, stops all on Ctrl-C or SIGTERM.
set -euo pipefail

ENGINE="${ENGINE:-operaton}"
DB="${DB:-h2}"
ENGINE_PORT="${ENGINE_PORT:-8080}"
GATEWAY_PORT="${GATEWAY_PORT:-8000}"
ADMIN_PORT="${ADMIN_PORT:-8001}"
POSTGRES_PORT="${POSTGRES_PORT:-5433}"
DATA_DIR="${DATA_DIR:-$PWD/.data/$ENGINE}"
POSTGRES_DIR="${POSTGRES_DIR:-$PWD/.data/postgres}"
CLAMD="${CLAMD:-off}"
CLAMD_DIR="${CLAMD_DIR:-$PWD/.data/clamd}"
DOCUMENTS="${DOCUMENTS:-off}"
DOCUMENTS_DIR="${DOCUMENTS_DIR:-$PWD/.data/documents}"
SEAWEEDFS_DIR="${SEAWEEDFS_DIR:-$PWD/.data/seaweedfs}"
S3_PORT="${S3_PORT:-8333}"
JAR="deploy/engine/target/engine-$ENGINE.jar"
mkdir -p "$DATA_DIR"

engine_pid="" gateway_pid="" postgres_pid="" clamd_pid="" seaweedfs_pid=""
stop() {
    trap - INT TERM EXIT
    echo "stopping..."
    [ -n "$gateway_pid" ] && kill -TERM "$gateway_pid" 2>/dev/null && wait "$gateway_pid" || true
    [ -n "$engine_pid" ] && kill -TERM "$engine_pid" 2>/dev/null && wait "$engine_pid" || true
    # SIGINT: PostgreSQL's fast shutdown
    [ -n "$postgres_pid" ] && kill -INT "$postgres_pid" 2>/dev/null && wait "$postgres_pid" || true
    [ -n "$clamd_pid" ] && kill -TERM "$clamd_pid" 2>/dev/null && wait "$clamd_pid" || true
    [ -n "$seaweedfs_pid" ] && kill -TERM "$seaweedfs_pid" 2>/dev/null && wait "$seaweedfs_pid" || true
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

database_args=() heap=1g
if [ "$DB" = postgres ]; then
    # the engine holds more copies of a binary value on PostgreSQL (docs/scaling.md, "The engine")
    heap=2g
    pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    # PostgreSQL will not run as root: as root, run it as Debian's postgres user.
    as_postgres=()
    [ "$(id -u)" -eq 0 ] && as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups)
    if [ ! -s "$POSTGRES_DIR/data/PG_VERSION" ]; then
        echo "creating a PostgreSQL cluster in $POSTGRES_DIR"
        mkdir -p "$POSTGRES_DIR"
        head -c 18 /dev/urandom | base64 | tr '+/' '-_' > "$POSTGRES_DIR/password"
        chmod 600 "$POSTGRES_DIR/password"
        [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$POSTGRES_DIR"
        "${as_postgres[@]}" "$pg_bin/initdb" --pgdata="$POSTGRES_DIR/data" --username=engine \
            --pwfile="$POSTGRES_DIR/password" --auth=scram-sha-256 --encoding=UTF8 --locale=C \
            >/dev/null
    fi
    echo "starting PostgreSQL on 127.0.0.1:$POSTGRES_PORT (data in $POSTGRES_DIR)"
    "${as_postgres[@]}" "$pg_bin/postgres" -D "$POSTGRES_DIR/data" -p "$POSTGRES_PORT" \
        -c listen_addresses=127.0.0.1 -c unix_socket_directories= &
    postgres_pid=$!
    export PGPASSWORD; PGPASSWORD="$(cat "$POSTGRES_DIR/password")"
    pg=(--host=127.0.0.1 --port="$POSTGRES_PORT" --username=engine)
    for _ in $(seq 1 120); do
        "$pg_bin/pg_isready" "${pg[@]}" --dbname=postgres --quiet && break
        kill -0 "$postgres_pid" 2>/dev/null || { echo "PostgreSQL exited" >&2; exit 1; }
        sleep 0.5
    done
    "$pg_bin/psql" "${pg[@]}" --dbname=postgres -tAc "SELECT 1 FROM pg_database WHERE datname='engine'" \
        | grep -q 1 || "$pg_bin/createdb" "${pg[@]}" engine
    database_args=(--spring.datasource.url="jdbc:postgresql://127.0.0.1:$POSTGRES_PORT/engine"
        --spring.datasource.username=engine --spring.datasource.password="$PGPASSWORD")
fi

scanning_args=()
if [ "$CLAMD" = on ]; then
    mkdir -p "$CLAMD_DIR/tmp"
    cat > "$CLAMD_DIR/clamd.conf" <<CONF
Foreground yes
DatabaseDirectory $PWD/deploy/clamd
LocalSocket $CLAMD_DIR/clamd.sock
TemporaryDirectory $CLAMD_DIR/tmp
LogFile $CLAMD_DIR/clamd.log
StreamMaxLength 2047M
MaxFileSize 2047M
MaxScanSize 2047M
AlertExceedsMax yes
CONF
    echo "starting clamd (socket $CLAMD_DIR/clamd.sock, the project's test signatures only)"
    clamd --config-file="$CLAMD_DIR/clamd.conf" &
    clamd_pid=$!
    for _ in $(seq 1 120); do
        [ -S "$CLAMD_DIR/clamd.sock" ] && break
        kill -0 "$clamd_pid" 2>/dev/null || { echo "clamd exited; see $CLAMD_DIR/clamd.log" >&2; exit 1; }
        sleep 0.5
    done
    scanning_args=(--clamd "unix://$CLAMD_DIR/clamd.sock" --clamd-scan-downloads on)
fi

documents_args=() gateway_env=()
if [ "$DOCUMENTS" != off ]; then
    mkdir -p .data
    keys=".data/document-keys"
    [ -s "$keys" ] || { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; echo; } > "$keys"
    documents_args=(--document-key-file "$keys")
fi
if [ "$DOCUMENTS" = file ]; then
    documents_args+=(--document-store "file://$DOCUMENTS_DIR")
elif [ "$DOCUMENTS" = s3 ]; then
    mkdir -p "$SEAWEEDFS_DIR/data"
    if [ ! -s "$SEAWEEDFS_DIR/credentials" ]; then
        echo "$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n') $(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
            > "$SEAWEEDFS_DIR/credentials"
    fi
    read -r access_key secret_key < "$SEAWEEDFS_DIR/credentials"
    cat > "$SEAWEEDFS_DIR/s3.json" <<JSON
{"identities": [{"name": "gateway", "credentials": [{"accessKey": "$access_key", "secretKey": "$secret_key"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
    echo "starting SeaweedFS (S3 on 127.0.0.1:$S3_PORT, data in $SEAWEEDFS_DIR)"
    # Every port set, all on loopback: weed's own defaults include 8080, the engine's.
    .tools/bin/weed mini -dir="$SEAWEEDFS_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.port=9333 -master.port.grpc=19333 -volume.port=8084 -volume.port.grpc=18084 \
        -filer.port=8888 -filer.port.grpc=18888 -s3.port="$S3_PORT" -s3.port.grpc=18333 \
        -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false -admin.port.legacy=0 \
        -admin.port=23646 -admin.port.grpc=33646 -master.telemetry=false \
        -s3.config="$SEAWEEDFS_DIR/s3.json" -bucket=documents >"$SEAWEEDFS_DIR/weed.log" 2>&1 &
    seaweedfs_pid=$!
    for _ in $(seq 1 120); do
        curl -fs -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$access_key:$secret_key" \
            -I "http://127.0.0.1:$S3_PORT/documents" && break
        kill -0 "$seaweedfs_pid" 2>/dev/null || { echo "SeaweedFS exited; see $SEAWEEDFS_DIR/weed.log" >&2; exit 1; }
        sleep 0.5
    done
    documents_args+=(--document-store s3://documents --document-store-endpoint "http://127.0.0.1:$S3_PORT")
    gateway_env=(AWS_ACCESS_KEY_ID="$access_key" AWS_SECRET_ACCESS_KEY="$secret_key" AWS_REGION=us-east-1)
elif [ "$DOCUMENTS" != off ]; then
    echo "DOCUMENTS is file, s3 or off, not $DOCUMENTS" >&2
    exit 1
fi

echo "starting $ENGINE on 127.0.0.1:$ENGINE_PORT (database: $DB)"
java -Xmx"$heap" -Dfile.encoding=UTF-8 -jar "$JAR" \
    --server.port="$ENGINE_PORT" --server.address=127.0.0.1 --engine.data-dir="$DATA_DIR" \
    "${database_args[@]}" &
engine_pid=$!
wait_for "http://127.0.0.1:$ENGINE_PORT/engine-rest/engine" "engine" "$engine_pid"

env "${gateway_env[@]}" .venv/bin/engine-gateway --upstream "http://127.0.0.1:$ENGINE_PORT" \
    --port "$GATEWAY_PORT" --admin-port "$ADMIN_PORT" "${scanning_args[@]}" "${documents_args[@]}" &
gateway_pid=$!
wait_for "http://127.0.0.1:$ADMIN_PORT/readyz" "gateway" "$gateway_pid"

cat <<INFO

  engine-gateway is up.
    Cockpit (through it):      http://127.0.0.1:$GATEWAY_PORT/$ENGINE/app/cockpit/default/
    Tasklist, Admin:           http://127.0.0.1:$GATEWAY_PORT/$ENGINE/app/tasklist/default/  …/admin/default/
    API (through the gateway): http://127.0.0.1:$GATEWAY_PORT/engine-rest
    admin:                     http://127.0.0.1:$ADMIN_PORT/livez  /readyz
    engine ($ENGINE, direct):  http://127.0.0.1:$ENGINE_PORT/engine-rest  (database: $DB)
    credentials:               demo / demo
    clamd scanning:            $CLAMD
    document store:            $DOCUMENTS
  try: curl -u demo:demo http://127.0.0.1:$GATEWAY_PORT/engine-rest/engine
  Ctrl-C stops them all.

INFO
wait -n "$engine_pid" "$gateway_pid" ${postgres_pid:+"$postgres_pid"} ${clamd_pid:+"$clamd_pid"} \
    ${seaweedfs_pid:+"$seaweedfs_pid"} || true
echo "a process exited" >&2
