#!/usr/bin/env bash
# Installs the Debian packages Vigil's local infrastructure and tests need, when missing.
# Used by `make demo`, `make test` (via .ci/run) and anyone on a fresh machine. As root it runs
# apt-get; otherwise it uses sudo when available, or prints the command to run.
set -euo pipefail

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v psql >/dev/null || missing+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
[[ -f /usr/include/google/protobuf/timestamp.proto ]] || missing+=(libprotobuf-dev)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v curl >/dev/null || missing+=(curl)
command -v make >/dev/null || missing+=(make)
# promtool parses the Prometheus config and the PromQL of the alert rules.
command -v promtool >/dev/null || missing+=(prometheus)
# The analyst UI is tested in a real headless browser.
command -v chromium >/dev/null || missing+=(chromium)

if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "prereqs: installing ${missing[*]}" >&2
if [[ "$(id -u)" == 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "prereqs: run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
