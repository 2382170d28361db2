#!/usr/bin/env bash
# bench/wakeups.sh: why the proxy spends more CPU per message at a fixed
# rate below its peak than at the peak. For the closed loop (the peak) and
# for fixed rates, it counts per message: the proxy's CPU, its threads'
# context switches (each is a thread going to sleep or being woken: the Go
# scheduler parking and waking its threads), and the receipt writes to Redis
# (EVALSHA: at a high rate several messages share one).
#
#   bench/wakeups.sh            closed loop, then 25 % and 50 % of its rate
#   bench/wakeups.sh --quick    a smoke test; its numbers mean nothing
#
# The set-up is bench/latency.sh's proxy path: bench/latency (20 kept
# connections, 4 KiB) -> optinproxy on a private Redis, the newsletter with
# consent and unsubscribe links, no DKIM -> smtp-sink. Each step starts a
# fresh sink, Redis and proxy. Knobs: BENCH_CONNS (20), BENCH_SUBJECTS
# (20000), BENCH_PEAK_N (10000), BENCH_DURATION (15), BENCH_LOADS ("25 50").
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

quick=0
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "wakeups.sh: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

conns=${BENCH_CONNS:-20}
subjects=${BENCH_SUBJECTS:-20000}
peak_n=${BENCH_PEAK_N:-10000}
duration=${BENCH_DURATION:-15}
loads=${BENCH_LOADS:-25 50}
if ((quick)); then
  subjects=2000 peak_n=1000 duration=2
fi
sessions=$conns
cache=${BENCH_CACHE:-$here/.cache}
life_limit=1800
prog=wakeups.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
lib_init

get_postfix_tools
build_proxy
(cd "$root" && timeout 600 go build -o "$work/latency" ./bench/latency) || die "go build ./bench/latency failed"
make_consents "$work/consents.csv" 0 "$subjects" r%d@sink.test

# ctx_switches PID: voluntary plus involuntary context switches of every
# thread of the process.
ctx_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ {n += $2} END {print n + 0}'
}

# redis_evalsha: the EVALSHA calls the run's Redis has served.
redis_evalsha() {
  local info
  # The connection stays open: cat is stopped after a second, by which
  # time the reply has come.
  info=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "INFO commandstats\r\n" >&3
    timeout 1 cat <&3' _ "$redis_port" 2>/dev/null || true)
  tr -d '\r' <<<"$info" | awk -F'[:=,]' '/^cmdstat_evalsha:/ {print $3; found = 1} END {if (!found) print 0}'
}

# step RATE: one measurement (RATE 0 is the closed loop); prints a row
# and sets step_rate to the achieved rate.
step() {
  local rate=$1 args pid cpu0 cpu1 cs0 cs1 ev0 ev1 n out=$work/step.$1.tsv
  start_sink
  start_redis
  start_proxy "smtp://127.0.0.1:$sink_port" "$redis_url" newsletter
  import_consents "$work/consents.csv" "$subjects"
  pid=$(server_pid)
  if [[ $rate == 0 ]]; then args=(-rate 0 -count "$peak_n"); else args=(-rate "$rate" -duration "${duration}s"); fi
  settle
  cpu0=$(metric_float "$http_port" process_cpu_seconds_total)
  cs0=$(ctx_switches "$pid")
  ev0=$(redis_evalsha)
  timeout 600 "$work/latency" -addr "127.0.0.1:$proxy_port" -conns "$conns" -size 4096 -rcpts 1 \
    -rcpt 'r{n}@sink.test' -rcpt-range "$subjects" -format tsv "${args[@]}" >"$out" 2>"$work/step.$rate.log" ||
    die "bench/latency at rate $rate failed: $(tail -3 "$work/step.$rate.log")"
  cpu1=$(metric_float "$http_port" process_cpu_seconds_total)
  cs1=$(ctx_switches "$pid")
  ev1=$(redis_evalsha)
  n=$(metric "$http_port" 'optinproxy_smtp_messages_total{result="relayed"}')
  ((n > 0)) || die "rate $rate: the proxy relayed nothing"
  step_rate=$(awk -F'\t' 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == "achieved_rate") c = i} NR == 2 {print $c}' "$out")
  awk -v r="$rate" -v a="$step_rate" -v n="$n" -v c0="$cpu0" -v c1="$cpu1" -v s0="$cs0" -v s1="$cs1" \
    -v e0="$ev0" -v e1="$ev1" 'BEGIN {
      printf "| %s | %.0f | %d | %.0f | %.1f | %.2f |\n", (r == 0 ? "closed loop (peak)" : "fixed " r " msgs/s"),
        a, n, (c1 - c0) * 1e6 / n, (s1 - s0) / n, (e1 - e0) / n }'
  stop "$proxy_pid"
  stop "$redis_pid"
  stop "$sink_pid"
}

echo "| load | achieved msgs/s | messages | proxy CPU µs/msg | context switches/msg | receipt writes (EVALSHA)/msg |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
step 0
peak=$step_rate
for pct in $loads; do
  step "$(awk -v p="$peak" -v l="$pct" 'BEGIN {printf "%d", p * l / 100}')"
done
