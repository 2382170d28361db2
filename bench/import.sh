#!/usr/bin/env bash
# bench/import.sh: rows per second of `optinproxy import` of a 100k-row CSV
# through a running server's admin API, end to end, on each store: the
# embedded file store and Redis (a redis-server this script starts on a
# free loopback port, with AOF fsync every second as a production Redis).
#
#   bench/import.sh [ROWS]     default 100000
#
# Prints one Markdown table row per store; nothing else is changed. The
# store-level figures (no HTTP, no CSV) come from the Go benchmarks:
#   go test -run x -bench Import -benchtime 1x ./optin/filestore ./optin/redisstore
set -euo pipefail

rows=${1:-100000}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

command -v redis-server >/dev/null || {
  echo "import.sh: installing redis-server" >&2
  apt-get install -y -q redis-server >/dev/null || { apt-get update -q && apt-get install -y -q redis-server >/dev/null; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

(cd "$root" && go build -o "$work/optinproxy" ./cmd/optinproxy)
python3 - "$rows" >"$work/in.csv" <<'PY'
import sys
n = int(sys.argv[1])
print("email,purpose,status,basis,source,granted_at,policy_version,ip")
for i in range(n):
    print(f"user{i}@example{i % 97}.com,newsletter,granted,consent,import,2026-01-{1 + i % 28:02d}T09:00:00Z,2025-06,192.0.2.{i % 250}")
PY

run() { # store-name, extra env...
  local name=$1; shift
  local dir=$work/$name http
  mkdir -p "$dir"
  http=127.0.0.1:$(free_port)
  (cd "$dir" && exec env OPTINPROXY_SMTP_LISTEN=127.0.0.1:0 OPTINPROXY_HTTP_LISTEN=$http "$@" \
    timeout 600 "$work/optinproxy" serve 2>"$dir/serve.log") &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://$http/healthz" >/dev/null && break; sleep 0.1; done
  local start end out
  start=$(date +%s.%N)
  out=$(cd "$dir" && OPTINPROXY_ADDR=$http timeout 600 "$work/optinproxy" import "$work/in.csv")
  end=$(date +%s.%N)
  echo "$out" | grep -q "^$rows rows: $rows applied" || { echo "import.sh: $name: unexpected: $out" >&2; exit 1; }
  awk -v n="$rows" -v s="$start" -v e="$end" -v name="$name" \
    'BEGIN { printf "| %s | %d | %.1f s | %.0f rows/s |\n", name, n, e - s, n / (e - s) }'
}

echo "| store | rows | time | rate |"
echo "| --- | ---: | ---: | ---: |"
run embedded
rport=$(free_port)
mkdir -p "$work/redis"
redis-server --port "$rport" --bind 127.0.0.1 --dir "$work/redis" --appendonly yes --appendfsync everysec --save "" \
  --daemonize no >"$work/redis/log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
run redis OPTINPROXY_STORE_REDIS_URL=redis://127.0.0.1:$rport/0
