#!/usr/bin/env bash
# bench/profile.sh: what one relayed message costs the built optinproxy, in
# counts that do not depend on the machine's load: system calls on each side
# (the client's connection, the upstream's, Redis's, the log), Redis round
# trips and commands, allocations, and CPU time.
#
#   bench/profile.sh          run, print the figures
#
# The proxy runs as bench/relay.sh starts it (Redis with AOF, smtp-sink as
# the upstream, a pool of 20), with marketing mail to consented recipients:
# every recipient is decided by consent, gets a receipt and a delivery mark,
# a copy of its own with an unsubscribe link in the headers and the footer,
# and an Ed25519 DKIM signature. smtp-source sends 4 KiB messages over 20
# reused connections (-d), with 1 and then 50 recipients per message; each
# count is taken twice, first without strace (allocations, CPU, Redis's
# INFO commandstats) and then with strace attached to the proxy (system
# calls, classified by the socket's ports). Knobs (environment): PROFILE_N
# (messages per count, 2000), PROFILE_SIZE (4096), PROFILE_KEEP (a folder to
# copy the strace logs into, to read them), BENCH_CACHE (bench/.cache).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
case ${1:-} in
  "") ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "profile.sh: unknown argument $1 (try --help)" >&2
    exit 2
    ;;
esac

n=${PROFILE_N:-2000}
size=${PROFILE_SIZE:-4096}
sessions=20
cache=${BENCH_CACHE:-$here/.cache}
life_limit=1800
prog=profile.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
lib_init

for tool in strace redis-cli awk; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH"
done
get_postfix_tools
build_proxy

# A DKIM key for smtp-source's From domain, which start_proxy signs with.
(umask 077 && head -c 32 /dev/urandom | base64 >"$work/dkim.key")

start_sink
start_redis
start_proxy "smtp://127.0.0.1:$sink_port" "$redis_url" newsletter "$work/dkim.key"
proxy_inner=$(server_pid)

# smtp-source names its recipients rcpt@bench.test (-r 1) and
# 0rcpt@bench.test to 49rcpt@bench.test (-r 50): all consent beforehand.
{
  echo "email,purpose,status,basis,source"
  echo "rcpt@bench.test,newsletter,granted,consent,import"
  for i in $(seq 0 50); do echo "${i}rcpt@bench.test,newsletter,granted,consent,import"; done
} >"$work/consents.csv"
import_consents "$work/consents.csv" 52

source_run() { # RCPTS N
  timeout 600 "$smtp_source" -d -s "$sessions" -l "$size" -m "$2" -r "$1" \
    -M bench.test -f sender@bench.test -t rcpt@bench.test "127.0.0.1:$proxy_port" >"$work/source.out" 2>&1 ||
    die "smtp-source failed: $(tail -3 "$work/source.out")"
}

# snapshot prints the proxy's counters and Redis's per-command calls, one
# "name value" a line.
snapshot() {
  http_get "$http_port" /metrics | awk '
    $1 == "process_cpu_seconds_total" || $1 == "go_memstats_mallocs_total" ||
    $1 == "go_memstats_alloc_bytes_total" || $1 == "go_gc_duration_seconds_count" ||
    $1 ~ /^optinproxy_relayed_copies_total/ || $1 ~ /^optinproxy_smtp_messages_total\{result="relayed"\}/ {print $1, $2}'
  redis-cli -p "$redis_port" INFO commandstats | tr -d '\r' |
    awk -F'[:,=]' '/^cmdstat_/ {print "redis_" substr($1, 9), $3}'
}

per_msg() { # BEFORE AFTER N: "name per-message" for what changed
  awk -v n="$3" 'FNR == NR {a[$1] = $2; next} {d = $2 - a[$1]; if (d > 0) printf "%-60s %12.6g\n", $1, d / n}' "$1" "$2"
}

# classify reads strace -yy output and counts read and write calls by
# side: "client" (the proxy's listening port), "upstream" (smtp-sink),
# "redis", and the rest by file.
classify() { # FILE
  awk -v pp="$proxy_port" -v sp="$sink_port" -v rp="$redis_port" '
    /resumed>/ {next}
    match($0, /(read|write|readv|writev|recvfrom|sendto|recvmsg|sendmsg)\(/) {
      call = substr($0, RSTART, RLENGTH - 1)
      side = "other"
      if (match($0, /TCP:\[[0-9.]+:[0-9]+->[0-9.]+:[0-9]+\]/)) {
        split(substr($0, RSTART + 5, RLENGTH - 6), ep, /->/)
        split(ep[1], l, ":"); split(ep[2], r, ":")
        if (l[2] == pp) side = "client"
        else if (r[2] == sp) side = "upstream"
        else if (r[2] == rp) side = "redis"
        else side = "tcp:other"
      } else if (match($0, /\(([0-9]+)<[^>]*>/)) {
        side = substr($0, RSTART + 1, RLENGTH - 2); sub(/^[0-9]+</, "", side)
        if (side ~ /proxy\.log$/) side = "log"
      }
      key = side " " call
      c[key]++
      if ($0 ~ /= -1 EAGAIN/) e[key]++
    }
    END {for (k in c) printf "%s %d %d\n", k, c[k], e[k]}' "$1"
}

for rcpts in 1 50; do
  m=$n
  ((rcpts == 50)) && m=$((n / 10))
  source_run "$rcpts" 200 # warm: pools filled, scripts loaded
  snapshot >"$work/before"
  source_run "$rcpts" "$m"
  snapshot >"$work/after"
  relayed=$(awk '$1 ~ /relayed/ {print $2}' "$work/after" | head -1)
  echo "## $rcpts recipient(s) per message: $m messages, per message"
  per_msg "$work/before" "$work/after" "$m"

  strace -f -qq -yy -s 16 -e trace=read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg \
    -o "$work/strace.$rcpts" -p "$proxy_inner" &
  strace_pid=$!
  sleep 2 # strace attaches to every thread
  before=$(wc -l <"$work/strace.$rcpts")
  source_run "$rcpts" "$m"
  kill -INT "$strace_pid"
  wait "$strace_pid" || true
  tail -n +"$((before + 1))" "$work/strace.$rcpts" >"$work/strace.$rcpts.run"
  echo "## $rcpts recipient(s): system calls per message under strace ($m messages): side call calls eagain"
  classify "$work/strace.$rcpts.run" | sort | awk -v n="$m" '{printf "%-12s %-10s %9.2f %9.2f\n", $1, $2, $3 / n, $4 / n}'
  grep -q '"DKIM-Signature: ' "$work/strace.$rcpts.run" ||
    log "WARNING: no copy to the upstream began with DKIM-Signature; is the key in use?"
  [[ -n $relayed ]] || die "the proxy relayed nothing"
  [[ -z ${PROFILE_KEEP:-} ]] || cp "$work/strace.$rcpts.run" "$PROFILE_KEEP/"

  # Every system call, not only the socket and file ones: the Go runtime's
  # futex, epoll and nanosleep too.
  strace -f -qq -c -o "$work/strace-c.$rcpts" -p "$proxy_inner" &
  strace_pid=$!
  sleep 2
  source_run "$rcpts" "$m"
  kill -INT "$strace_pid"
  wait "$strace_pid" || true
  echo "## $rcpts recipient(s): every system call per message under strace -c ($m messages; the 2 s of attaching included): call calls errors"
  awk -v n="$m" '$1 ~ /^[0-9.]+$/ && NF >= 5 {c = $4; e = (NF == 6) ? $5 : 0; printf "%-16s %9.2f %9.2f\n", $NF, c / n, e / n}' \
    "$work/strace-c.$rcpts" | sort -k2 -gr | head -14
done
