#!/usr/bin/env bash
# The local demo: infrastructure, topics, schema, the four services, sample traffic, URLs.
#
#   demo.sh          start everything and stay in the foreground; Ctrl-C stops it all
#   demo.sh stop     stop the services a previous demo left running
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VAR="${VIGIL_VAR_DIR:-$ROOT/var}"
BIN="$VAR/bin"
RUN="$VAR/run"
LOGS="$VAR/log"
INFRA="$ROOT/deploy/local/infra.sh"
SERVICES=(feature-window scoring alerting ingest)

INGEST_ADDR="${VIGIL_INGEST_ADDR:-127.0.0.1:8080}"
FEATURE_WINDOW_ADDR="${VIGIL_FEATURE_WINDOW_ADDR:-127.0.0.1:8081}"
SCORING_ADDR="${VIGIL_SCORING_ADDR:-127.0.0.1:8082}"
ALERTING_ADDR="${VIGIL_ALERTING_ADDR:-127.0.0.1:8083}"

log() { printf '%s demo: %s\n' "$(date +%H:%M:%S)" "$*" >&2 || true; }
die() { log "ERROR: $*"; exit 1; }

stop_services() {
  local s pid
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    s="${SERVICES[$i]}"
    [[ -f "$RUN/$s.pid" ]] || continue
    pid="$(cat "$RUN/$s.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping $s (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && { log "$s did not stop in 30s; killing"; kill -9 "$pid" 2>/dev/null || true; }
    fi
    rm -f "$RUN/$s.pid"
  done
}

if [[ "${1:-}" == "stop" ]]; then
  stop_services
  exit 0
fi

# Demo secrets: generated once, kept private under var/, never printed except the demo API key
# the user needs to send traffic.
secrets() {
  local f="$VAR/demo.env"
  if [[ ! -f "$f" ]]; then
    mkdir -p "$VAR"
    umask 077
    cat >"$f" <<EOF
VIGIL_DEMO_API_KEY=sk_demo_$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
VIGIL_INGEST_CARD_HMAC_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
VIGIL_ALERTING_API_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
VIGIL_DEMO_ADMIN_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
EOF
  fi
  set -a
  # shellcheck disable=SC1090
  source "$f"
  set +a
}

wait_ready() {
  local name="$1" addr="$2"
  for _ in $(seq 1 300); do
    if curl -fsS "http://$addr/readyz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
      tail -n 20 "$LOGS/$name.log" >&2; die "$name exited during start-up (log: $LOGS/$name.log)"
    fi
    sleep 0.2
  done
  die "$name not ready at $addr after 60s (log: $LOGS/$name.log)"
}

shutdown() {
  # Best effort from here on: a closed stdout (Ctrl-C also kills a `| tee`) must not abort the
  # clean-up half way.
  set +e
  trap - INT TERM
  trap '' PIPE
  if ! { echo >&2; } 2>/dev/null; then
    # Nobody reads stderr any more: keep the shutdown's messages in the demo log instead.
    exec >>"$LOGS/demo.log" 2>&1
  fi
  stop_services
  "$INFRA" down
  exit 0
}

main() {
  command -v go >/dev/null || die "Go is not installed (https://go.dev/dl, 1.26 or newer)"
  "$ROOT/deploy/local/prereqs.sh"
  stop_services
  "$INFRA" up
  set -a
  eval "$("$INFRA" env)"
  set +a
  secrets
  log "building services"
  make -s -C "$ROOT" build BIN="$BIN" >/dev/null
  # Older demo.env files predate the admin password.
  if [[ -z "${VIGIL_DEMO_ADMIN_PASSWORD:-}" ]]; then
    echo "VIGIL_DEMO_ADMIN_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >>"$VAR/demo.env"
    secrets
  fi
  "$BIN/vigilctl" topics
  "$BIN/vigilctl" migrate
  # The first analyst: an admin whose password stays in var/demo.env.
  "$BIN/alerting" user create --email admin@vigil.local --role admin <<<"$VIGIL_DEMO_ADMIN_PASSWORD" 2>&1 \
    | grep -v 'exists' || true

  mkdir -p "$RUN" "$LOGS"
  export VIGIL_INGEST_ADDR="$INGEST_ADDR" VIGIL_FEATURE_WINDOW_ADDR="$FEATURE_WINDOW_ADDR"
  export VIGIL_SCORING_ADDR="$SCORING_ADDR" VIGIL_ALERTING_ADDR="$ALERTING_ADDR"
  export VIGIL_INGEST_API_KEYS="demo:$VIGIL_DEMO_API_KEY"
  # Scoring uses the shipped reference model (the Handbook LR, models/artifacts) unless told
  # otherwise.
  export VIGIL_SCORING_MODEL_PATH="${VIGIL_SCORING_MODEL_PATH:-$ROOT/models/artifacts/handbook-lr.json}"
  # The four services share this machine with the broker, Redis and Postgres: a quarter of the
  # cpus each, at least 1 (docs/tuning.md: Go's default of every cpu each raised the p99 by half).
  local cpus; cpus="$(nproc)"
  export GOMAXPROCS="${GOMAXPROCS:-$(( cpus / 4 > 1 ? cpus / 4 : 1 ))}"
  # The analyst overview reads lag and latency from the services' own metrics.
  export VIGIL_ALERTING_METRICS_SOURCES="ingest=http://$INGEST_ADDR/metrics,feature-window=http://$FEATURE_WINDOW_ADDR/metrics,scoring=http://$SCORING_ADDR/metrics,alerting=http://$ALERTING_ADDR/metrics"
  local s
  # Services get their own session: Ctrl-C reaches only this script, which stops them in
  # reverse order of the data flow and then the infrastructure.
  trap 'shutdown' INT TERM
  # If whoever reads our output goes away (`make demo | tee`, a closed terminal), keep running
  # until a signal arrives rather than dying half-way without stopping anything.
  trap '' PIPE
  for s in "${SERVICES[@]}"; do
    setsid "$BIN/$s" >>"$LOGS/$s.log" 2>&1 </dev/null &
    echo $! >"$RUN/$s.pid"
  done
  wait_ready feature-window "$FEATURE_WINDOW_ADDR"
  wait_ready scoring "$SCORING_ADDR"
  wait_ready alerting "$ALERTING_ADDR"
  wait_ready ingest "$INGEST_ADDR"

  log "sending sample traffic: 300 transactions at 50/s"
  VIGIL_SEND_API_KEY="$VIGIL_DEMO_API_KEY" "$BIN/vigil-send" --url "http://$INGEST_ADDR" --rate 50 --count 300

  cat <<EOF

  Vigil is running.
    ingest API      http://$INGEST_ADDR/v1/transactions   (Authorization: Bearer $VIGIL_DEMO_API_KEY)
    ingest OpenAPI  http://$INGEST_ADDR/openapi.json
    analyst UI      http://$ALERTING_ADDR/login           (admin@vigil.local, VIGIL_DEMO_ADMIN_PASSWORD in $VAR/demo.env)
    analyst API     http://$ALERTING_ADDR/v1/alerts       (Authorization: Bearer <VIGIL_ALERTING_API_TOKEN in $VAR/demo.env>)
    metrics         http://<service>/metrics on every service (Prometheus format)
    health          http://<service>/livez and /readyz on each service address
    Postgres        $VIGIL_POSTGRES_URL
    logs            $LOGS/<service>.log

  Send more:  VIGIL_SEND_API_KEY=$VIGIL_DEMO_API_KEY $BIN/vigil-send --rate 100 --count 1000
  Ctrl-C (or 'make down' from another shell) stops everything.

EOF
  local pgurl="${VIGIL_POSTGRES_URL%%\?*}"
  while true; do
    psql -qtA "$pgurl" -c "SELECT format('decisions: %s (approve %s, review %s, decline %s); open alerts: %s',
        count(*), count(*) FILTER (WHERE action = 'approve'), count(*) FILTER (WHERE action = 'review'),
        count(*) FILTER (WHERE action = 'decline'), (SELECT count(*) FROM alerts WHERE status = 'open'))
      FROM decisions" 2>/dev/null | sed "s/^/$(date +%H:%M:%S) /" || true
    for s in "${SERVICES[@]}"; do
      kill -0 "$(cat "$RUN/$s.pid")" 2>/dev/null || { tail -n 20 "$LOGS/$s.log" >&2; stop_services; die "$s stopped unexpectedly"; }
    done
    sleep 5 &
    wait $! || true
  done
}

main "$@"
