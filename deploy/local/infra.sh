#!/usr/bin/env bash
# Local infrastructure for Vigil: a real single-node Apache Kafka (KRaft) from Maven Central jars,
# Redis and PostgreSQL from Debian packages, all on loopback, all state under var/.
#
#   infra.sh up|down|reset|status|env
#
# Ports and paths come from the environment (defaults below). `up` is idempotent: a component
# that is already running is left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/local"
VAR="${VIGIL_VAR_DIR:-$ROOT/var}"

KAFKA_PORT="${VIGIL_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${VIGIL_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${VIGIL_KAFKA_HEAP:-768m}"
# The broker's collector. Measured with `make bench-ingest` on a shared 2-core box, G1
# (MaxGCPauseMillis=20) stopped the broker for 3.3 s of a 110 s run (young pauses 7-250 ms),
# and the periodic "Cleanup" safepoint (GuaranteedSafepointInterval, 1 s) added stops of up to
# 300 ms whenever a thread was waiting for a CPU; ZGC without the periodic safepoint stopped it
# for 0.1 s in all, longest 26 ms. Every stop delays every produce in flight.
KAFKA_GC_OPTS="${VIGIL_KAFKA_GC_OPTS:--XX:+UseZGC -XX:+UnlockDiagnosticVMOptions -XX:GuaranteedSafepointInterval=0}"
REDIS_PORT="${VIGIL_REDIS_PORT:-56379}"
PG_PORT="${VIGIL_PG_PORT:-55432}"
PG_USER="${VIGIL_PG_USER:-vigil}"
PG_PASSWORD="${VIGIL_PG_PASSWORD:-vigil-local}"
PG_DB="${VIGIL_PG_DB:-vigil}"

KAFKA_DIR="$VAR/kafka"
REDIS_DIR="$VAR/redis"
PG_DIR="$VAR/postgres"
# PostgreSQL runs as the postgres user when we are root; if it cannot reach var/ (a checkout
# under a private home directory), its cluster lives under /var/tmp instead, one per checkout.
if [[ "$(id -u)" == 0 ]] && id postgres >/dev/null 2>&1; then
  mkdir -p "$VAR"
  if ! runuser -u postgres -- test -x "$VAR"; then
    PG_DIR="/var/tmp/vigil-postgres-$(printf '%s' "$VAR" | sha256sum | cut -c1-12)"
  fi
fi

log() { printf '%s infra: %s\n' "$(date +%H:%M:%S)" "$*" >&2 || true; }
die() { log "ERROR: $*"; exit 1; }

# port_open PORT -> 0 when something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

require_free_port() {
  local port="$1" what="$2" var="$3"
  if port_open "$port"; then
    die "port $port needed by $what is taken by another process; stop it or set $var to a free port"
  fi
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD...
  local secs="$1" what="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------- Kafka

kafka_pidfile="$KAFKA_DIR/kafka.pid"

kafka_jars() {
  local stamp
  stamp="$(sha256sum "$HERE/kafka/pom.xml" | cut -c1-16)"
  if [[ -f "$KAFKA_DIR/lib/.stamp" && "$(cat "$KAFKA_DIR/lib/.stamp")" == "$stamp" ]]; then
    return
  fi
  command -v mvn >/dev/null || die "Maven (mvn) is not installed: it fetches the Kafka jars from Maven Central (apt-get install maven)"
  log "resolving Kafka jars from Maven Central (cached in ~/.m2)"
  rm -rf "$KAFKA_DIR/lib"
  mkdir -p "$KAFKA_DIR/lib"
  if ! mvn -B -q -f "$HERE/kafka/pom.xml" \
      org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$KAFKA_DIR/lib" >"$KAFKA_DIR/mvn.log" 2>&1; then
    tail -n 30 "$KAFKA_DIR/mvn.log" >&2
    die "Maven could not resolve the Kafka jars (see $KAFKA_DIR/mvn.log); check access to Maven Central"
  fi
  echo "$stamp" >"$KAFKA_DIR/lib/.stamp"
}

java_check() {
  command -v java >/dev/null || die "Java is not installed: the Kafka broker needs Java 17+ (apt-get install openjdk-17-jre-headless)"
  local v
  v="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
  [[ "${v%%.*}" =~ ^[0-9]+$ ]] && ((${v%%.*} >= 17)) || die "Java $v found; the Kafka broker needs Java 17 or newer"
}

kafka_up() {
  if pid_alive "$kafka_pidfile"; then log "kafka already running (pid $(cat "$kafka_pidfile"))"; return; fi
  java_check
  require_free_port "$KAFKA_PORT" "Kafka" VIGIL_KAFKA_PORT
  require_free_port "$KAFKA_CONTROLLER_PORT" "the Kafka controller" VIGIL_KAFKA_CONTROLLER_PORT
  kafka_jars
  mkdir -p "$KAFKA_DIR/data"
  sed -e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
      -e "s#@DATA_DIR@#$KAFKA_DIR/data#g" "$HERE/kafka/server.properties.in" >"$KAFKA_DIR/server.properties"
  local cp="$KAFKA_DIR/lib/*"
  if [[ ! -f "$KAFKA_DIR/data/meta.properties" ]]; then
    local cid
    cid="$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    log "formatting Kafka storage (cluster id $cid)"
    java -Dlog4j2.configurationFile="$HERE/kafka/log4j2.yaml" -cp "$cp" kafka.tools.StorageTool format \
      --standalone -t "$cid" -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/format.log" 2>&1 \
      || { cat "$KAFKA_DIR/format.log" >&2; die "formatting Kafka storage failed"; }
  fi
  log "starting kafka on 127.0.0.1:$KAFKA_PORT (heap $KAFKA_HEAP)"
  # A fixed heap: no resizing. Not -XX:+AlwaysPreTouch: touching 768 MB took 9 s of start-up on
  # the busy shared box, and ZGC faults pages in outside its pauses anyway.
  # Every stop of the JVM (collections and other safepoints) is logged to gc.log, rotated.
  # setsid: the broker outlives this script and ignores the terminal's Ctrl-C; `down` stops it.
  # shellcheck disable=SC2086 # KAFKA_GC_OPTS is a list of options
  setsid nohup java -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" $KAFKA_GC_OPTS \
    -Xlog:gc,safepoint:file="$KAFKA_DIR/gc.log":time,uptime,tags:filecount=4,filesize=10m \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$HERE/kafka/log4j2.yaml" \
    -cp "$cp" kafka.Kafka "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/kafka.log" 2>&1 </dev/null &
  echo $! >"$kafka_pidfile"
}

kafka_ready() {
  # A real metadata request that must list our broker, not a log line or a sleep.
  "$VAR/bin/vigilctl" kafka-ready --brokers "127.0.0.1:$KAFKA_PORT" --timeout 90s \
    || { tail -n 40 "$KAFKA_DIR/kafka.log" >&2; die "kafka did not become ready (log: $KAFKA_DIR/kafka.log)"; }
}

kafka_down() {
  if ! pid_alive "$kafka_pidfile"; then rm -f "$kafka_pidfile"; return; fi
  local pid; pid="$(cat "$kafka_pidfile")"
  log "stopping kafka (pid $pid)"
  kill "$pid" 2>/dev/null || true
  wait_for 45 "kafka exit" bash -c "! kill -0 $pid" || { log "kafka did not stop in 45s; killing"; kill -9 "$pid" 2>/dev/null || true; }
  rm -f "$kafka_pidfile"
}

# ---------------------------------------------------------------- Redis

redis_pidfile="$REDIS_DIR/redis.pid"

redis_up() {
  if pid_alive "$redis_pidfile"; then log "redis already running (pid $(cat "$redis_pidfile"))"; return; fi
  command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server)"
  require_free_port "$REDIS_PORT" "Redis" VIGIL_REDIS_PORT
  mkdir -p "$REDIS_DIR"
  log "starting redis on 127.0.0.1:$REDIS_PORT"
  # appendfsync everysec: windows survive a restart of Redis, which the recovery tests rely on.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes --daemonize yes \
    --pidfile "$redis_pidfile" --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" \
    --appendonly yes --appendfsync everysec --save "" --maxmemory-policy noeviction
  wait_for 20 "redis" redis-cli -p "$REDIS_PORT" ping || die "redis did not answer PING (log: $REDIS_DIR/redis.log)"
}

redis_down() {
  if ! pid_alive "$redis_pidfile"; then rm -f "$redis_pidfile"; return; fi
  local pid; pid="$(cat "$redis_pidfile")"
  log "stopping redis (pid $pid)"
  redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  wait_for 20 "redis exit" bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
  rm -f "$redis_pidfile"
}

# ---------------------------------------------------------------- PostgreSQL

pg_bin() {
  local d
  if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/pg_ctl" ]]; then d="$(pg_config --bindir)"
  else d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"; fi
  [[ -n "$d" && -x "$d/pg_ctl" ]] || die "PostgreSQL server binaries not found (apt-get install postgresql)"
  echo "$d"
}

# PostgreSQL refuses to run as root: as root, run its tools as the postgres user.
as_pg() {
  # cd /: the postgres user may not be allowed into the caller's working directory.
  if [[ "$(id -u)" == 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_up() {
  local bin; bin="$(pg_bin)"
  local data="$PG_DIR/data"
  if [[ -f "$data/postmaster.pid" ]] && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "postgres already running"; return
  fi
  require_free_port "$PG_PORT" "PostgreSQL" VIGIL_PG_PORT
  mkdir -p "$PG_DIR/run"
  if [[ "$(id -u)" == 0 ]]; then
    chown -R postgres: "$PG_DIR"
    runuser -u postgres -- test -w "$PG_DIR" \
      || die "user postgres cannot write $PG_DIR (a parent directory is not searchable); set VIGIL_VAR_DIR elsewhere"
  fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "initialising postgres cluster in $data"
    local pw="$PG_DIR/.pwfile"
    printf '%s\n' "$PG_PASSWORD" >"$pw"; chmod 600 "$pw"
    [[ "$(id -u)" == 0 ]] && chown postgres: "$pw"
    as_pg "$bin/initdb" -D "$data" -U "$PG_USER" --pwfile="$pw" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
      >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pw"
    cat >>"$data/postgresql.conf" <<EOF
# vigil local settings
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = 256MB
fsync = on
synchronous_commit = on
EOF
  fi
  log "starting postgres on 127.0.0.1:$PG_PORT"
  as_pg "$bin/pg_ctl" -D "$data" -l "$PG_DIR/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR/run" start >/dev/null || { tail -n 30 "$PG_DIR/postgres.log" >&2; die "postgres did not start"; }
  if ! PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    PGPASSWORD="$PG_PASSWORD" psql -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -c "CREATE DATABASE \"$PG_DB\""
  fi
}

pg_down() {
  local data="$PG_DIR/data"
  [[ -f "$data/postmaster.pid" ]] || return 0
  local bin; bin="$(pg_bin)"
  log "stopping postgres"
  as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------- commands

build_ctl() {
  mkdir -p "$VAR/bin"
  (cd "$ROOT" && go build -o "$VAR/bin/vigilctl" ./cmd/vigilctl) || die "building vigilctl failed"
}

cmd_env() {
  cat <<EOF
export VIGIL_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
export VIGIL_REDIS_ADDR=127.0.0.1:$REDIS_PORT
export VIGIL_POSTGRES_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable
EOF
}

cmd_up() {
  local t0=$SECONDS
  mkdir -p "$VAR"
  build_ctl &
  local build_pid=$!
  kafka_up
  redis_up
  pg_up
  wait "$build_pid" || die "building vigilctl failed"
  kafka_ready
  log "infrastructure up in $((SECONDS - t0))s: kafka 127.0.0.1:$KAFKA_PORT, redis 127.0.0.1:$REDIS_PORT, postgres 127.0.0.1:$PG_PORT/$PG_DB"
}

cmd_down() {
  kafka_down
  redis_down
  pg_down
  log "infrastructure stopped"
}

cmd_status() {
  local rc=0
  if pid_alive "$kafka_pidfile" && port_open "$KAFKA_PORT"; then echo "kafka     up    127.0.0.1:$KAFKA_PORT (pid $(cat "$kafka_pidfile"))"
  else echo "kafka     down"; rc=1; fi
  if pid_alive "$redis_pidfile"; then echo "redis     up    127.0.0.1:$REDIS_PORT (pid $(cat "$redis_pidfile"))"
  else echo "redis     down"; rc=1; fi
  if port_open "$PG_PORT" && [[ -f "$PG_DIR/data/postmaster.pid" ]]; then echo "postgres  up    127.0.0.1:$PG_PORT/$PG_DB"
  else echo "postgres  down"; rc=1; fi
  return $rc
}

cmd_reset() {
  cmd_down
  log "removing kafka data, redis data and the postgres cluster (the jar cache stays)"
  rm -rf "$KAFKA_DIR/data" "$KAFKA_DIR/server.properties" "$REDIS_DIR" "$PG_DIR"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  reset) cmd_reset ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|reset|status|env" >&2; exit 2 ;;
esac
