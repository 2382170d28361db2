#!/usr/bin/env bash
# bench/memory.sh: peak resident memory of `optinproxy serve` while it
# relays one marketing message of 25 MiB (a text part and a 24 MiB base64
# attachment) to 50 consented recipients, each copy with its own
# unsubscribe link, through the file upstream. Prints the server's
# resident memory before, its peak (VmHWM) during, and the peak over the
# message size. Needs swaks (installed when missing) and ~1.3 GB of free
# disk under bench/.cache (BENCH_CACHE) for the 50 copies.
#
#   bench/memory.sh [RECIPIENTS]     default 50
set -euo pipefail

rcpts=${1:-50}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
prog=memory.sh
cache=${BENCH_CACHE:-$here/.cache}
life_limit=900
sessions=20
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
lib_init

command -v swaks >/dev/null || {
  log "installing swaks"
  apt-get install -y -q swaks >/dev/null || { apt-get update -q && apt-get install -y -q swaks >/dev/null; }
}
build_proxy
smtp_port=$(free_port) http_port=$(free_port)
# exec: $! is the server itself, whose memory is read below.
(cd "$work" && exec env OPTINPROXY_SMTP_LISTEN=127.0.0.1:$smtp_port OPTINPROXY_HTTP_LISTEN=127.0.0.1:$http_port \
  "$work/optinproxy" serve 2>"$work/serve.log") &
server=$!
pids+=("$server")
wait_listen "$http_port" "$server" || die "optinproxy did not start: $(tail -3 "$work/serve.log")"

{
  echo "email,purpose,status,basis,source"
  for i in $(seq 0 $((rcpts - 1))); do echo "r$i@example.com,newsletter,granted,consent,import"; done
} >"$work/grants.csv"
(cd "$work" && OPTINPROXY_ADDR=127.0.0.1:$http_port "$work/optinproxy" import "$work/grants.csv" >/dev/null)

python3 - "$work/message.eml" <<'PY'
import base64, os, sys
with open(sys.argv[1], "w", newline="") as f:
    f.write("From: <news@shop.example>\r\nSubject: Catalogue\r\nMessage-ID: <memory@shop.example>\r\n"
            "X-Optin-Purpose: newsletter\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOur new catalogue is attached.\r\n"
            "--b1\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            'Content-Disposition: attachment; filename="catalogue.pdf"\r\n\r\n')
    data = base64.encodebytes(os.urandom(18 << 20)).decode().replace("\n", "\r\n")
    f.write(data)
    f.write("--b1--\r\n")
PY
size=$(stat -c %s "$work/message.eml")
to=$(seq -s, -f "r%g@example.com" 0 $((rcpts - 1)))
before=$(status "$server" VmRSS)
echo 5 >"/proc/$server/clear_refs" 2>/dev/null || true # VmHWM from here on
start=$(date +%s.%N)
out=$(swaks --server "127.0.0.1:$smtp_port" --from news@shop.example --to "$to" --data "@$work/message.eml" --timeout 600 2>&1) ||
  die "swaks failed: $(echo "$out" | tail -5)"
end=$(date +%s.%N)
echo "$out" | grep -q "relayed $rcpts, blocked 0" || die "unexpected reply: $(echo "$out" | tail -3)"
peak=$(status "$server" VmHWM)
copies=$(ls "$work/data/outbox" | wc -l)
awk -v s="$size" -v b="$before" -v p="$peak" -v n="$rcpts" -v c="$copies" -v t0="$start" -v t1="$end" 'BEGIN {
  printf "| message | recipients | copies | RSS before | peak RSS | peak / message | peak above before / message | time |\n"
  printf "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
  printf "| %.1f MiB | %d | %d | %.0f MiB | %.0f MiB | %.2f x | %.2f x | %.1f s |\n", s / 1048576, n, c, b / 1048576, p / 1048576, p / s, (p - b) / s, t1 - t0
}'
