#!/usr/bin/env bash
# bench/flood.sh: the in-flight byte budget (smtp.max_inflight_bytes) under
# a flood of large messages. For each client mode (announcing SIZE= in
# MAIL, and not), a fresh `optinproxy serve` on a private redis-server,
# relaying to Postfix's smtp-sink, with the budget set through
# OPTINPROXY_SMTP_MAX_INFLIGHT_BYTES, takes SESSIONS sessions at once
# (bench/flood) that each send 24 MiB messages one after another for
# SECONDS, and send a message refused with 452 again after 200-400 ms, as
# a CRM would. Prints, per mode, the server's resident memory before and
# its peak (VmHWM, reset just before the flood), the highest
# optinproxy_smtp_inflight_bytes read every 20 ms and the budget's own
# high-water mark (optinproxy_smtp_inflight_bytes_peak), the 452 replies,
# and the messages relayed.
#
# It fails when the peak RSS passes a factor of the budget: 2.5 with SIZE=
# (Go's collector lets the heap reach twice what was live at the last
# collection, and a relayed message's buffer is garbage until the next),
# 4.5 without (a buffer also doubles as it grows, and the old one, like
# the buffer of a message refused part way, is garbage too; see
# docs/benchmarks.md). Without the budget, 100 sessions would hold
# 2.4 GiB, nine budgets. It also fails when either
# in-flight figure passes the budget, when bytes stay held after the
# flood, or when the counts disagree: every message the client saw
# accepted must be relayed once by the proxy (its log, by Message-ID) and
# counted by the sink, with no other failure than 452 and no duplicate.
#
# The messages in progress when SECONDS are up are finished: on a busy
# 2 vCPU machine, the first wave of 100 messages of 24 MiB alone took 40
# to 60 s per mode, and the whole script about 2.5 minutes.
#
#   bench/flood.sh [SESSIONS [SECONDS]]    defaults 100 20
#   FLOOD_BUDGET=268435456                  smtp.max_inflight_bytes (256 MiB)
#   FLOOD_FACTOR_SIZE=2.5 FLOOD_FACTOR_NOSIZE=4.5   peak RSS allowed, in budgets
#   FLOOD_MODES="size nosize"               the client modes run
set -euo pipefail

flood_sessions=${1:-100}
seconds=${2:-20}
budget=${FLOOD_BUDGET:-$((256 << 20))}
factor_size=${FLOOD_FACTOR_SIZE:-2.5}
factor_nosize=${FLOOD_FACTOR_NOSIZE:-4.5}
modes=${FLOOD_MODES:-size nosize}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
prog=flood.sh
cache=${BENCH_CACHE:-$here/.cache}
life_limit=300
sessions=$flood_sessions # the proxy's upstream.pool_size; lib.sh raises max_connections_per_ip to twice it
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
lib_init

[[ $flood_sessions =~ ^[1-9][0-9]*$ && $seconds =~ ^[1-9][0-9]*$ && $budget =~ ^[1-9][0-9]*$ ]] ||
  die "usage: bench/flood.sh [SESSIONS [SECONDS]] (whole numbers; FLOOD_BUDGET in bytes)"

get_postfix_tools
build_proxy
log "building bench/flood"
(cd "$root" && timeout 600 go build -o "$work/flood" ./bench/flood) || die "go build ./bench/flood failed"
export OPTINPROXY_SMTP_MAX_INFLIGHT_BYTES=$budget

mib() { awk -v b="$1" 'BEGIN {printf "%.0f MiB", b / 1048576}'; }
json() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"; } # FILE KEY: a number or true/false

rows=()
for mode in $modes; do
  case $mode in
  size) announce=-announce factor=$factor_size ;;
  nosize) announce=-announce=false factor=$factor_nosize ;;
  *) die "FLOOD_MODES: unknown mode $mode (size or nosize)" ;;
  esac
  start_redis
  start_sink
  start_proxy "smtp://127.0.0.1:$sink_port" "$redis_url"
  server=$(server_pid)
  sleep 1
  before=$(status "$server" VmRSS)
  echo 5 >"/proc/$server/clear_refs" 2>/dev/null || log "cannot reset VmHWM; the peak is since the start"

  out=$work/flood.$mode.json
  log "$mode: $flood_sessions sessions of 24 MiB messages for $seconds s, budget $(mib "$budget")"
  rc=0
  timeout $((seconds + 240)) "$work/flood" -addr "127.0.0.1:$proxy_port" -metrics "http://127.0.0.1:$http_port/metrics" \
    -sessions "$flood_sessions" -duration "${seconds}s" "$announce" -id "$mode" -accepted "$work/accepted.$mode" \
    >"$out" 2>"$work/flood.$mode.err" || rc=$?
  peak=$(status "$server" VmHWM)
  ((rc == 0)) || die "$mode: bench/flood failed ($rc): $(cat "$out" "$work/flood.$mode.err" | tail -3)"

  accepted=$(json "$out" accepted)
  ref_mail=$(json "$out" refused_452_mail)
  ref_data=$(json "$out" refused_452_data)
  gauge_max=$(json "$out" gauge_max)
  for i in $(seq 100); do # smtp-sink prints its counters now and then
    [[ $(sink_count "$sink_out") == "$accepted" ]] && break
    sleep 0.05
  done
  sunk=$(sink_count "$sink_out")
  relayed=$(metric "$http_port" 'optinproxy_smtp_messages_total{result="relayed"}')
  replies452=$(metric "$http_port" 'optinproxy_smtp_replies_total{code="452"}')
  hwm=$(metric "$http_port" optinproxy_smtp_inflight_bytes_peak)
  after=$(metric "$http_port" optinproxy_smtp_inflight_bytes)
  duplicates=$(metric "$http_port" 'optinproxy_smtp_recipients_total{result="duplicate"}')
  # The proxy's log names each relayed message (the sed undoes the \u003c
  # escapes that encoding/json, unlike slog, would write).
  grep -F '"msg":"message relayed"' "$proxy_dir/proxy.log" | grep -o '"message_id":"[^"]*"' |
    sed 's/\\u003c/</g; s/\\u003e/>/g; s/^"message_id":"//; s/"$//' | sort >"$work/relayed.$mode"
  sort -o "$work/accepted.$mode" "$work/accepted.$mode"

  row=$(awk -v m="$mode" -v n="$flood_sessions" -v b="$budget" -v r0="$before" -v p="$peak" -v g="$gauge_max" -v h="$hwm" \
    -v rm="$ref_mail" -v rd="$ref_data" -v a="$accepted" -v s="$(json "$out" seconds)" -v sz="$(json "$out" message_bytes)" \
    -v ab="$(json "$out" abandoned)" 'BEGIN {
    printf "| %s | %d | %.0f MiB | %.0f MiB | %.0f MiB | %.2f x | %.0f MiB | %.0f MiB | %d | %d | %d | %d | %.1f s | %.0f MB/s |",
      (m == "size" ? "SIZE= in MAIL" : "no SIZE="), n, b / 1048576, r0 / 1048576, p / 1048576, p / b,
      g / 1048576, h / 1048576, rm, rd, a, ab, s, a * sz / s / 1e6}')
  rows+=("$row")
  log "$mode: $row" # kept in the log should a check below fail
  ((accepted > 0)) || die "$mode: no message was accepted"
  [[ $sunk == "$accepted" ]] || die "$mode: the sink counted ${sunk:-nothing}, the client had $accepted accepted"
  ((relayed == accepted)) || die "$mode: the proxy counts $relayed relayed, the client had $accepted accepted"
  ((replies452 == ref_mail + ref_data)) || die "$mode: the proxy counts $replies452 replies 452, the client saw $((ref_mail + ref_data))"
  ((duplicates == 0)) || die "$mode: the proxy counts $duplicates duplicate recipients"
  dup=$(uniq -d "$work/relayed.$mode" | head -3)
  [[ -z $dup ]] || die "$mode: relayed more than once: $dup"
  cmp -s "$work/accepted.$mode" "$work/relayed.$mode" ||
    die "$mode: the Message-IDs accepted and relayed differ: $(diff "$work/accepted.$mode" "$work/relayed.$mode" | head -4 | tr '\n' ' ')"
  ((hwm <= budget)) || die "$mode: the budget's high-water mark $hwm passes the budget $budget"
  awk -v g="$gauge_max" -v b="$budget" 'BEGIN {exit !(g <= b)}' || die "$mode: the gauge read $gauge_max, above the budget $budget"
  ((after == 0)) || die "$mode: $after bytes still held after the flood"
  awk -v p="$peak" -v b="$budget" -v f="$factor" 'BEGIN {exit !(p <= f * b)}' ||
    die "$mode: peak RSS $(mib "$peak") passes $factor x the budget of $(mib "$budget")"

  log "$mode: peak RSS $(mib "$peak"), $accepted relayed, $((ref_mail + ref_data)) refused with 452"
  stop "$proxy_pid"
  stop "$sink_pid"
  stop "$redis_pid"
done

echo "| client | sessions | budget | RSS before | peak RSS (VmHWM) | peak / budget | in-flight gauge max (20 ms reads) | budget high-water mark | 452 at MAIL | 452 at DATA | relayed (= sink = accepted) | refused when time was up | time | relayed MB/s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
