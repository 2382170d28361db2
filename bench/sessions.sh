#!/usr/bin/env bash
# bench/sessions.sh: resident memory of `optinproxy serve` holding many idle
# SMTP sessions while others relay. For each store (the embedded one, and
# a private redis-server as lib.sh starts it), a fresh proxy relays to
# Postfix's smtp-sink; a Python client on loopback opens IDLE sessions
# (greeting, EHLO, then nothing); then smtp-source relays MESSAGES messages
# of 4 KiB over ACTIVE sessions at once, a new connection per message,
# while the idle ones stay open. Prints the server's resident memory
# before the idle sessions, with them, and its peak (VmHWM, reset once the
# idle sessions are open) during the load, and the memory per idle session:
# (RSS with them - RSS before) / IDLE, and, from its /metrics, the
# Go heap and stacks in use and the goroutines per idle session. IDLE 0
# measures the load alone.
#
# The defaults of smtp.max_connections (1000) and
# smtp.max_connections_per_ip (100) would refuse most of these sessions,
# which all come from 127.0.0.1: both are raised to IDLE + 2 x ACTIVE
# (closing connections overlap opening ones) through the environment.
#
#   bench/sessions.sh [IDLE [ACTIVE [MESSAGES]]]    defaults 1000 50 20000
#   BENCH_STORES="embedded redis"                   the stores measured
set -euo pipefail

idle=${1:-1000}
active=${2:-50}
messages=${3:-20000}
stores=${BENCH_STORES:-embedded redis}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
prog=sessions.sh
cache=${BENCH_CACHE:-$here/.cache}
life_limit=900
sessions=$active # the proxy's upstream.pool_size
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
lib_init

[[ $idle =~ ^[0-9]+$ && $active =~ ^[1-9][0-9]*$ && $messages =~ ^[1-9][0-9]*$ ]] ||
  die "usage: bench/sessions.sh [IDLE [ACTIVE [MESSAGES]]] (whole numbers)"
command -v python3 >/dev/null || die "python3 is not on PATH (it holds the idle sessions)"
(($(ulimit -n) > idle + 64)) || ulimit -n $((idle + 256)) 2>/dev/null ||
  die "the open-file limit ($(ulimit -n)) is below $idle idle sessions; raise ulimit -n"

get_postfix_tools
build_proxy
export OPTINPROXY_SMTP_MAX_CONNECTIONS=$((idle + 2 * active))
export OPTINPROXY_SMTP_MAX_CONNECTIONS_PER_IP=$((idle + 2 * active))

# hold_idle PORT COUNT opens COUNT sessions to PORT, each read to the end of
# its EHLO reply, writes "ready" to $work/idle.ready and holds them until
# it is signalled. Sets idle_pid.
hold_idle() {
  rm -f "$work/idle.ready"
  timeout "$life_limit" python3 - "$1" "$2" "$work/idle.ready" >"$work/idle.log" 2>&1 <<'PY' &
import signal, socket, sys

port, count, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def reply(f):
    # A reply's last line has a space after the code.
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("connection closed by the server")
        if line[3:4] != b"-":
            return line

held = []
for i in range(count):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = s.makefile("rb")
    if not reply(f).startswith(b"220"):
        raise SystemExit("session %d: no 220 greeting" % i)
    s.sendall(b"EHLO idle.bench.test\r\n")
    line = reply(f)
    if not line.startswith(b"250"):
        raise SystemExit("session %d: EHLO got %r" % (i, line))
    held.append((s, f))
with open(ready, "w") as out:
    out.write("ready %d\n" % len(held))
signal.pause()
PY
  idle_pid=$!
  pids+=("$idle_pid")
}

mib() { awk -v b="$1" 'BEGIN {printf "%.0f MiB", b / 1048576}'; }

rows=()
for store in $stores; do
  case $store in
  embedded) redis="" ;;
  redis)
    start_redis
    redis=$redis_url
    ;;
  *) die "BENCH_STORES: unknown store $store (embedded or redis)" ;;
  esac
  start_sink
  start_proxy "smtp://127.0.0.1:$sink_port" "$redis"
  server=$(server_pid)
  sleep 1
  before=$(status "$server" VmRSS)
  g0=$(metric "$http_port" go_goroutines)
  mem0=$(($(metric "$http_port" go_memstats_heap_inuse_bytes) + $(metric "$http_port" go_memstats_stack_inuse_bytes)))

  hold_idle "$proxy_port" "$idle"
  for i in $(seq 1200); do
    [[ -s $work/idle.ready ]] && break
    kill -0 "$idle_pid" 2>/dev/null || die "$store: the idle client failed: $(tail -3 "$work/idle.log")"
    sleep 0.05
  done
  [[ -s $work/idle.ready ]] || die "$store: $idle idle sessions not open after 60 s"
  open=$(metric "$http_port" optinproxy_smtp_connections)
  ((open == idle)) || die "$store: the proxy counts $open SMTP connections, want $idle"
  sleep 2
  with_idle=$(status "$server" VmRSS)
  g1=$(metric "$http_port" go_goroutines)
  mem1=$(($(metric "$http_port" go_memstats_heap_inuse_bytes) + $(metric "$http_port" go_memstats_stack_inuse_bytes)))
  echo 5 >"/proc/$server/clear_refs" 2>/dev/null || log "cannot reset VmHWM; the peak is since the start"

  src_out=$work/source.$store.out
  t0=$EPOCHREALTIME
  timeout 600 "$smtp_source" -N -s "$active" -l 4096 -m "$messages" \
    -M bench.test -f sender@bench.test -t rcpt@bench.test "127.0.0.1:$proxy_port" >"$src_out" 2>&1 ||
    die "$store: smtp-source failed: $(tail -3 "$src_out")"
  t1=$EPOCHREALTIME
  peak=$(status "$server" VmHWM)
  after=$(status "$server" VmRSS)
  relayed=$(metric "$http_port" 'optinproxy_smtp_messages_total{result="relayed"}')
  ((relayed == messages)) || die "$store: the proxy relayed $relayed messages, want $messages"
  kill -0 "$idle_pid" 2>/dev/null || die "$store: the idle client ended: $(tail -3 "$work/idle.log")"
  for i in $(seq 100); do # smtp-source's last connections may still be closing
    open=$(metric "$http_port" optinproxy_smtp_connections)
    ((open == idle)) && break
    sleep 0.05
  done
  ((open == idle)) || die "$store: after the load the proxy counts $open SMTP connections, want the $idle idle ones"

  rows+=("$(awk -v s="$store" -v n="$idle" -v a="$active" -v m="$messages" -v b="$before" -v w="$with_idle" \
    -v p="$peak" -v e="$after" -v t0="$t0" -v t1="$t1" -v g0="$g0" -v g1="$g1" -v h0="$mem0" -v h1="$mem1" 'BEGIN {
    per = "– | – | –"
    if (n > 0)
      per = sprintf("%.1f KiB | %.1f KiB | %.1f", (w - b) / n / 1024, (h1 - h0) / n / 1024, (g1 - g0) / n)
    printf "| %s | %d | %d | %d | %.0f MiB | %.0f MiB | %s | %.0f MiB | %.0f MiB | %.0f |", s, n, a, m,
      b / 1048576, w / 1048576, per, p / 1048576, e / 1048576, m / (t1 - t0)}')")
  log "$store: before $(mib "$before"), with $idle idle $(mib "$with_idle"), peak $(mib "$peak")"
  stop "$idle_pid"
  stop "$proxy_pid"
  stop "$sink_pid"
  [[ -z $redis ]] || stop "$redis_pid"
done

echo "| store | idle sessions | active sessions | messages | RSS before | RSS with idle | RSS per idle session | Go heap + stacks per idle session | goroutines per idle session | peak RSS (VmHWM) | RSS after | msgs/s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
