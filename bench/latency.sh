#!/usr/bin/env bash
# bench/latency.sh: how long optinproxy takes to accept a message when
# messages come at a fixed rate, against the same rate straight into
# smtp-sink, in one run.
#
#   bench/latency.sh            run, print Markdown tables
#   bench/latency.sh --write    also replace the latency results in docs/benchmarks.md
#   bench/latency.sh --quick    short runs (a smoke test of the script, numbers not meaningful)
#
# The client is bench/latency (Go, go-smtp): BENCH_CONNS connections opened
# before the clock starts and kept, one transaction after another on each
# (MAIL, RCPT, DATA, the body, the final dot). Two paths:
#   direct  bench/latency -> smtp-sink
#   proxy   bench/latency -> optinproxy (upstream.url smtp://, pool of BENCH_CONNS)
#           -> smtp-sink; the proxy on Redis (a private redis-server, appendonly
#           yes, appendfsync everysec) and enforcing: policy.default_purpose
#           newsletter, whose recipients need consent. BENCH_SUBJECTS recipients
#           r0@sink.test ... are granted the newsletter beforehand with
#           `optinproxy import`, and the messages cycle over them, so every
#           message costs a lookup and a receipt per recipient. Newsletter
#           copies get their own unsubscribe link (headers and footer); with
#           BENCH_DKIM every copy is also DKIM-signed.
# Steps, interleaved direct and proxy:
#   1. peak: closed loop (each connection sends its next message as soon as
#      the last is answered), BENCH_PEAK_N messages, BENCH_PEAK_RUNS times
#      each; the median of the proxy's runs is its peak rate.
#   2. latency: for each of BENCH_LOADS (percent of the proxy's peak), that
#      rate offered open loop (message i due at i/rate, whatever the replies;
#      latency counted from the due time, so waiting for a free connection
#      counts) to direct and to proxy, BENCH_RUNS times each, BENCH_DURATION
#      seconds measured after BENCH_WARMUP seconds of warm-up.
# Every measurement starts a fresh sink (and Redis, proxy and import) on
# free loopback ports and checks afterwards that every message was accepted
# and arrived: the client's counts, smtp-sink's counter and, for the proxy,
# its relayed messages, its allow-by-consent decisions and no lost receipt.
# The machine may be shared: each run waits for a quiet machine first, and
# a run during which much CPU went to other processes is measured again.
#
# smtp-sink comes from the postfix .deb, unpacked under bench/.cache as
# bench/relay.sh does (see bench/lib.sh): nothing is installed. Needs Go and
# redis-server. Knobs (environment): BENCH_CONNS (20), BENCH_SIZE (4096:
# body bytes), BENCH_RCPTS (1: recipients per message), BENCH_SUBJECTS
# (20000), BENCH_PEAK_N (10000), BENCH_PEAK_RUNS (3), BENCH_LOADS ("25 50"),
# BENCH_RUNS (3), BENCH_DURATION (20), BENCH_WARMUP (2), BENCH_CACHE
# (bench/.cache), BENCH_OTHER_LIMIT (15: percent of the machine's CPU that
# other work may take during a run before it is measured again),
# BENCH_RATES (unset; "400 800" offers those rates in msgs/s instead of
# BENCH_LOADS, the peak still measured and shown: to compare two versions of
# the code at the same load, since the peak itself varies from run to run),
# BENCH_DKIM (none; rsa or ed25519: the proxy signs every copy for
# bench.test with a key of that kind made for the run).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
doc=$root/docs/benchmarks.md

write=0
quick=0
for arg in "$@"; do
  case $arg in
    --write) write=1 ;;
    --quick) quick=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "latency.sh: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

conns=${BENCH_CONNS:-20}
size=${BENCH_SIZE:-4096}
rcpts=${BENCH_RCPTS:-1}
subjects=${BENCH_SUBJECTS:-20000}
peak_n=${BENCH_PEAK_N:-10000}
peak_runs=${BENCH_PEAK_RUNS:-3}
loads=${BENCH_LOADS:-25 50}
fixed_rates=${BENCH_RATES:-}
runs=${BENCH_RUNS:-3}
duration=${BENCH_DURATION:-20}
warmup=${BENCH_WARMUP:-2}
cache=${BENCH_CACHE:-$here/.cache}
other_limit=${BENCH_OTHER_LIMIT:-15}
dkim_alg=${BENCH_DKIM:-none}
[[ $dkim_alg == none || $dkim_alg == rsa || $dkim_alg == ed25519 ]] || {
  echo "latency.sh: BENCH_DKIM: want none, rsa or ed25519, got '$dkim_alg'" >&2
  exit 2
}
if ((quick)); then
  subjects=2000 peak_n=1000 peak_runs=1 runs=1 duration=3 warmup=1
fi
if ((quick && write)); then
  echo "latency.sh: --quick numbers are not for the docs; drop --quick to --write" >&2
  exit 2
fi
for v in conns size rcpts subjects peak_n peak_runs runs duration warmup other_limit; do
  [[ ${!v} =~ ^[0-9]+$ ]] || {
    echo "latency.sh: $v must be a whole number, got '${!v}'" >&2
    exit 2
  }
done
for v in conns rcpts subjects peak_n peak_runs runs duration; do
  ((${!v} > 0)) || {
    echo "latency.sh: $v must be at least 1" >&2
    exit 2
  }
done
((rcpts <= subjects)) || {
  echo "latency.sh: BENCH_RCPTS ($rcpts) is more than BENCH_SUBJECTS ($subjects)" >&2
  exit 2
}
# load_list holds the offered loads: percentages of the peak (BENCH_LOADS),
# or rates in msgs/s (BENCH_RATES).
if [[ -n $fixed_rates ]]; then
  read -r -a load_list <<<"$fixed_rates"
else
  read -r -a load_list <<<"$loads"
fi
((${#load_list[@]})) || {
  echo "latency.sh: BENCH_LOADS is empty" >&2
  exit 2
}
for l in "${load_list[@]}"; do
  if [[ -n $fixed_rates ]]; then
    if ! [[ $l =~ ^[0-9]+$ ]] || ((l < 1)); then
      echo "latency.sh: BENCH_RATES: $l is not a positive whole number of messages per second" >&2
      exit 2
    fi
  elif ! [[ $l =~ ^[0-9]+$ ]] || ((l < 1 || l > 100)); then
    echo "latency.sh: BENCH_LOADS: $l is not a percentage from 1 to 100" >&2
    exit 2
  fi
done
# Upper bounds: one closed-loop run, one open-loop run (its schedule, the
# client's 30 s of grace, and room), an import, and the life of a sink,
# Redis or proxy.
peak_limit=600
open_limit=$((warmup + duration + 30 + 90))
import_limit=600
life_limit=3600
# The proxy's upstream pool: as many as the client's connections.
sessions=$conns

prog=latency.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
lib_init

# ---------------------------------------------------------------- one measurement

declare -A res=()
# parse_tsv FILE reads bench/latency's -format tsv output (a header line
# and a line of values) into res.
parse_tsv() {
  local -a names=() vals=()
  local i
  IFS=$'\t' read -r -a names < <(sed -n 1p "$1")
  IFS=$'\t' read -r -a vals < <(sed -n 2p "$1")
  ((${#names[@]} > 0 && ${#names[@]} == ${#vals[@]})) || die "cannot read bench/latency's output $1"
  res=()
  for i in "${!names[@]}"; do
    res[${names[$i]}]=${vals[$i]}
  done
}

metric_decisions() { # PORT: recipients allowed for the newsletter by consent
  http_get "$1" /metrics | awk 'index($1, "optinproxy_decisions_total{") == 1 && index($1, "decision=\"allow\"") &&
    index($1, "purpose=\"newsletter\"") && index($1, "reason=\"consent\"") {v += $2} END {printf "%.0f\n", v}'
}

# measure PATH RATE runs bench/latency once against PATH (direct or proxy):
# closed loop when RATE is 0, else open loop at RATE messages per second.
# It sets res (the client's figures), m_cpu (the proxy's CPU microseconds
# per message, "-" for direct), m_busy and m_other (percent of the machine
# busy, and busy with other work) after checking every count. It runs in
# the main shell, so that what it starts is in pids.
seq_no=0
measure() {
  local path=$1 rate=$2 target cpu0=0 cpu1 args=() limit rc=0 label out err tool_pid
  seq_no=$((seq_no + 1))
  if [[ $rate == 0 ]]; then
    label="$path, closed loop"
    args=(-rate 0 -count "$peak_n")
    limit=$peak_limit
  else
    label="$path at $rate msgs/s"
    args=(-rate "$rate" -duration "${duration}s" -warmup "${warmup}s")
    limit=$open_limit
  fi
  start_sink
  target=$sink_port
  if [[ $path == proxy ]]; then
    start_redis
    start_proxy "smtp://127.0.0.1:$sink_port" "$redis_url" newsletter "$dkim_key"
    import_consents "$work/consents.csv" "$subjects"
    target=$proxy_port
    cpu0=$(metric_float "$http_port" process_cpu_seconds_total)
  fi
  settle

  local stat0 stat1 ours=("$sink_pid") own0 own1 reaped0 reaped1
  [[ $path == proxy ]] && ours+=("$proxy_pid" "$redis_pid")
  out=$work/latency.$seq_no.$path.tsv
  err=$work/latency.$seq_no.$path.log
  own0=$(child_ticks "${ours[@]}")
  stat0=$(cpu_stat)
  times >"$work/times.0"
  # In the background and waited for, so that a signal ends the script
  # at once (the cleanup stops the client too).
  timeout "$limit" "$work/latency" -addr "127.0.0.1:$target" -conns "$conns" -size "$size" \
    -rcpts "$rcpts" -rcpt 'r{n}@sink.test' -rcpt-range "$subjects" -format tsv "${args[@]}" >"$out" 2>"$err" &
  tool_pid=$!
  pids+=("$tool_pid")
  wait "$tool_pid" || rc=$?
  forget "$tool_pid"
  times >"$work/times.1"
  stat1=$(cpu_stat)
  own1=$(child_ticks "${ours[@]}")
  m_busy=$(busy_pct "$stat0" "$stat1")
  reaped0=$(reaped_ticks "$work/times.0")
  reaped1=$(reaped_ticks "$work/times.1")
  m_other=$(awk -v a="$stat0" -v b="$stat1" -v own=$((own1 - own0 + reaped1 - reaped0)) 'BEGIN {
    split(a, x, " "); split(b, y, " "); total = y[1] - x[1]; busy = total - (y[2] - x[2])
    o = (busy - own) / total; printf "%.0f", (o < 0 ? 0 : 100 * o)}')

  # The client's own account: every message sent and accepted.
  ((rc == 0 || rc == 1)) || die "$label: bench/latency exited $rc: $(tail -3 "$err")"
  parse_tsv "$out"
  ((res[failed] == 0 && res[warmup_failed] == 0)) ||
    die "$label: $((res[failed] + res[warmup_failed])) messages were refused or failed: $(grep -m1 'failures by reply code' "$err")"
  ((res[unsent] == 0)) ||
    die "$label: ${res[unsent]} messages were never sent: the server fell more than 30 s behind the schedule"
  ((rc == 0)) || die "$label: bench/latency exited $rc: $(tail -3 "$err")"
  local n=$((res[ok] + res[warmup_ok])) got i
  ((res[sent] == n)) || die "$label: bench/latency sent ${res[sent]} but counted $n accepted"
  if [[ $rate == 0 ]]; then
    ((n == peak_n)) || die "$label: $n messages accepted, want $peak_n"
  else
    local want
    want=$(awk -v r="$rate" -v d="$duration" -v w="$warmup" 'BEGIN {printf "%d", int(r * d + 0.5) + int(r * w + 0.5)}')
    ((n == want)) || die "$label: $n messages accepted, want $want"
  fi

  # Every message must have arrived where it was sent.
  m_cpu="-"
  if [[ $path == proxy ]]; then
    got=$(metric "$http_port" 'optinproxy_smtp_messages_total{result="relayed"}')
    ((got == n)) || die "$label: the proxy counted $got relayed, want $n"
    got=$(metric_decisions "$http_port")
    ((got == n * rcpts)) || die "$label: the proxy allowed $got recipients by consent for the newsletter, want $((n * rcpts))"
    got=$(metric "$http_port" optinproxy_receipt_errors_total)
    ((got == 0)) || die "$label: the proxy failed to store $got receipts (optinproxy_receipt_errors_total)"
    cpu1=$(metric_float "$http_port" process_cpu_seconds_total)
    m_cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$n" 'BEGIN {printf "%.0f", (b - a) * 1e6 / n}')
  fi
  for i in $(seq 60); do # smtp-sink updates its counter as "." arrives
    got=$(sink_count "$sink_out")
    [[ ${got:-0} -ge $n ]] && break
    sleep 0.05
  done
  ((${got:-0} == n)) || die "$label: smtp-sink counted ${got:-0} messages, want $n"
  m_notes=""
  if [[ $path == proxy ]]; then
    stop "$proxy_pid"
    stop "$redis_pid"
    # What might explain a stall: Redis waiting on the disk or rewriting
    # its append-only file, and the proxy's warnings and errors.
    local slow rewrites warns
    slow=$(grep -c 'fsync is taking too long' "$redis_dir/redis.log" || true)
    rewrites=$(grep -c 'Background append only file rewriting started' "$redis_dir/redis.log" || true)
    # (Leaving out the configuration advice every start gives: this
    # configuration has no https public_url.)
    warns=$(grep '"level":"\(WARN\|ERROR\)"' "$proxy_dir/proxy.log" | grep -vc '"msg":"configuration"' || true)
    ((slow == 0)) || m_notes+="Redis: $slow slow AOF fsyncs; "
    ((rewrites == 0)) || m_notes+="Redis: $rewrites AOF rewrites; "
    if ((warns > 0)); then
      local first
      first=$(grep '"level":"\(WARN\|ERROR\)"' "$proxy_dir/proxy.log" | grep -v '"msg":"configuration"' | cut -c1-200 | sed -n 1p || true)
      m_notes+="proxy: $warns warnings or errors ($first); "
    fi
  fi
  stop "$sink_pid"
}

# measure_quiet PATH RATE is measure, repeated (up to five times in all)
# while more than other_limit percent of the machine went to other work.
measure_quiet() {
  local attempt what="$1 at $2 msgs/s"
  [[ $2 == 0 ]] && what="$1, closed loop"
  for attempt in 1 2 3 4 5; do
    measure "$1" "$2"
    ((m_other <= other_limit)) && break
    log "$what: ${m_other} % of the machine's CPU went to other work; measuring again"
    retries=$((retries + 1))
  done
  ((m_other <= other_limit)) || noisy=1
  bases+="$m_base "
  [[ -z $m_notes ]] || notes+=("$what: ${m_notes%; }")
}

median() { # numbers on stdin; FORMAT (default %.0f)
  sort -g | awk -v f="${1:-%.0f}" '{v[NR] = $1} END {
    if (NR == 0) exit 1
    if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf f "\n", m }'
}

med() { # "VALUES ..." [FORMAT]: their median
  tr ' ' '\n' <<<"$1" | grep . | median "${2:-%.0f}"
}

# ---------------------------------------------------------------- main

for tool in apt-get dpkg dpkg-deb dpkg-query ldd timeout awk go redis-server; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH"
done
get_postfix_tools
smoke_postfix
redis_version=$(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2)

build_proxy
log "building bench/latency"
(cd "$root" && timeout 600 go build -o "$work/latency" ./bench/latency) || die "go build ./bench/latency failed"
make_consents "$work/consents.csv" 0 "$subjects" r%d@sink.test
dkim_key=""
if [[ $dkim_alg != none ]]; then
  dkim_key=$work/dkim.pem
  make_dkim_key "$dkim_alg" "$dkim_key"
fi

# Enforcement check: on a proxy set up as for the measurements, a granted
# recipient's message goes through and a stranger's is refused.
log "checking that the proxy enforces consent (a granted recipient passes, a stranger gets 550) and injects (and signs) as configured"
# smtp-sink, as nobody, writes the kept copy by its full path.
mkdir -p "$work/probe"
((EUID == 0)) && chown nobody "$work/probe" && chmod go+x "$work"
start_sink -D "$work/probe/dump"
start_redis
start_proxy "smtp://127.0.0.1:$sink_port" "$redis_url" newsletter "$dkim_key"
import_consents "$work/consents.csv" "$subjects"
timeout 60 "$work/latency" -addr "127.0.0.1:$proxy_port" -conns 1 -count 1 -rcpt r0@sink.test \
  -format tsv -q >"$work/check.ok.tsv" 2>&1 || die "a message to a granted recipient was not accepted: $(cat "$work/check.ok.tsv")"
rc=0
timeout 60 "$work/latency" -addr "127.0.0.1:$proxy_port" -conns 1 -count 1 -rcpt stranger@sink.test \
  -format tsv >"$work/check.no.tsv" 2>"$work/check.no.log" || rc=$?
if ((rc != 1)) || ! grep -q 'failures by reply code: 550: 1' "$work/check.no.log"; then
  die "a message to a recipient without consent was not refused with 550 (exit $rc): $(cat "$work/check.no.log")"
fi
got=$(metric "$http_port" 'optinproxy_smtp_messages_total{result="relayed"}')
((got == 1)) || die "enforcement check: the proxy counted $got relayed, want 1"
got=$(metric_decisions "$http_port")
((got == 1)) || die "enforcement check: the proxy allowed $got recipients by consent, want 1"
dump=""
for i in $(seq 40); do
  dump=$(find "$work/probe" -name 'dump*' -print -quit)
  [[ -n $dump ]] && break
  sleep 0.05
done
[[ -n $dump ]] || die "enforcement check: smtp-sink kept no copy of the granted recipient's message"
grep -q '^List-Unsubscribe:' "$dump" || die "enforcement check: the copy has no List-Unsubscribe header ($dump)"
if [[ $dkim_alg != none ]]; then
  grep -A3 '^DKIM-Signature:' "$dump" | grep -q 'd=bench.test' ||
    die "enforcement check: the copy is not DKIM-signed for bench.test ($dump)"
fi
stop "$proxy_pid"
stop "$redis_pid"
stop "$sink_pid"

declare -A rates=() p50=() p90=() p99=() p999=() pmax=() lag99=() cpus=() busy=() others=()
bases=""
noisy=0
retries=0
notes=()
paths=(direct proxy)

log "peak: closed loop, $conns kept connections, $peak_n messages, $peak_runs runs each of direct and proxy"
for r in $(seq "$peak_runs"); do
  for path in "${paths[@]}"; do
    measure_quiet "$path" 0
    rates[peak/$path]+="${res[achieved_rate]} "
    p50[peak/$path]+="${res[p50_ms]} "
    p99[peak/$path]+="${res[p99_ms]} "
    cpus[peak/$path]+="$m_cpu "
    busy[peak/$path]+="$m_busy "
    others[peak/$path]+="$m_other "
    log "peak $path run $r: ${res[achieved_rate]} msgs/s (latency p50 ${res[p50_ms]} ms, p99 ${res[p99_ms]} ms; proxy CPU $m_cpu us/msg; machine CPU busy $m_busy %, not by the benchmark $m_other %)${m_notes:+; ${m_notes%; }}"
  done
done
peak=$(med "${rates[peak/proxy]}" '%.1f')
peak_direct=$(med "${rates[peak/direct]}" '%.1f')
log "the proxy's peak: $peak msgs/s (direct: $peak_direct msgs/s)"

# offered: each load's rate in msgs/s; row: how the tables name it.
declare -A offered=() row=()
for l in "${load_list[@]}"; do
  if [[ -n $fixed_rates ]]; then
    offered[$l]=$l
    row[$l]=$(awk -v r="$l" -v p="$peak" 'BEGIN {printf "%d msgs/s (%.0f %% of peak)", r, 100 * r / p}')
  else
    offered[$l]=$(awk -v p="$peak" -v l="$l" 'BEGIN {printf "%.1f", p * l / 100}')
    row[$l]=$(awk -v r="${offered[$l]}" -v l="$l" 'BEGIN {printf "%d %% of peak, %.0f msgs/s", l, r}')
  fi
  awk -v r="${offered[$l]}" -v d="$duration" 'BEGIN {exit !(r * d >= 1)}' ||
    die "${row[$l]} for $duration s is not one message"
done
log "latency: open loop at $(for l in "${load_list[@]}"; do printf '%s; ' "${row[$l]}"; done)$runs runs each of direct and proxy, ${duration} s measured after ${warmup} s of warm-up"
for l in "${load_list[@]}"; do
  for r in $(seq "$runs"); do
    for path in "${paths[@]}"; do
      measure_quiet "$path" "${offered[$l]}"
      rates[$l/$path]+="${res[achieved_rate]} "
      p50[$l/$path]+="${res[p50_ms]} "
      p90[$l/$path]+="${res[p90_ms]} "
      p99[$l/$path]+="${res[p99_ms]} "
      p999[$l/$path]+="${res[p999_ms]} "
      pmax[$l/$path]+="${res[max_ms]} "
      lag99[$l/$path]+="${res[lag_p99_ms]} "
      cpus[$l/$path]+="$m_cpu "
      busy[$l/$path]+="$m_busy "
      others[$l/$path]+="$m_other "
      log "${row[$l]}, $path, run $r: achieved ${res[achieved_rate]} msgs/s; latency ms p50 ${res[p50_ms]}, p90 ${res[p90_ms]}, p99 ${res[p99_ms]}, p99.9 ${res[p999_ms]}, max ${res[max_ms]} (waiting to be sent: p99 ${res[lag_p99_ms]}); proxy CPU $m_cpu us/msg; machine CPU busy $m_busy %, not by the benchmark $m_other %${m_notes:+; ${m_notes%; }}"
    done
  done
done

# ---------------------------------------------------------------- report

path_name() {
  case $1 in
    direct) echo "direct: bench/latency → smtp-sink" ;;
    proxy) echo "proxy, \`smtp://\` upstream, Redis store, enforcing$([[ $dkim_alg == none ]] || echo ", DKIM $dkim_alg") → smtp-sink" ;;
  esac
}

list() { # "VALUES ..." [FORMAT]: comma-separated, each formatted (default %.2f)
  awk -v f="${2:-%.2f}" '{for (i = 1; i <= NF; i++) printf "%s" f, (i > 1 ? ", " : ""), $i}' <<<"$1"
}

range() { # "VALUES ...": lowest–highest
  tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR] = $1} END {printf "%s–%s", v[1], v[NR]}'
}

peak_table() {
  echo "| path | runs (msgs/s) | median msgs/s | latency p50 / p99 ms (medians) | proxy CPU µs/msg | machine CPU busy | of it not the benchmark's |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
  local path cpu
  for path in "${paths[@]}"; do
    cpu="–"
    [[ $path == proxy ]] && cpu=$(med "${cpus[peak/$path]}")
    printf '| %s | %s | %s | %s / %s | %s | %s %% | %s %% |\n' "$(path_name "$path")" \
      "$(list "${rates[peak/$path]}" '%.0f')" \
      "$(med "${rates[peak/$path]}")" "$(med "${p50[peak/$path]}" '%.2f')" "$(med "${p99[peak/$path]}" '%.2f')" \
      "$cpu" "$(med "${busy[peak/$path]}")" "$(range "${others[peak/$path]}")"
  done
}

latency_table() {
  echo "| offered | path | achieved msgs/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | p99 of each run (ms) | wait to be sent, p99 ms | proxy CPU µs/msg | machine CPU busy | of it not the benchmark's |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
  local l path cpu
  for l in "${load_list[@]}"; do
    for path in "${paths[@]}"; do
      cpu="–"
      [[ $path == proxy ]] && cpu=$(med "${cpus[$l/$path]}")
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s %% | %s %% |\n' \
        "${row[$l]}" "$(path_name "$path")" "$(med "${rates[$l/$path]}")" \
        "$(med "${p50[$l/$path]}" '%.2f')" "$(med "${p90[$l/$path]}" '%.2f')" "$(med "${p99[$l/$path]}" '%.2f')" \
        "$(med "${p999[$l/$path]}" '%.2f')" \
        "$(tr ' ' '\n' <<<"${pmax[$l/$path]}" | grep . | sort -g | tail -1 | awk '{printf "%.1f", $1}')" \
        "$(list "${p99[$l/$path]}")" "$(med "${lag99[$l/$path]}" '%.2f')" "$cpu" "$(med "${busy[$l/$path]}")" \
        "$(range "${others[$l/$path]}")"
    done
  done
}

added_table() {
  echo "| offered | p50 direct | p50 proxy | **added p50** | p99 direct | p99 proxy | **added p99** |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  local l d50 x50 d99 x99
  for l in "${load_list[@]}"; do
    d50=$(med "${p50[$l/direct]}" '%.3f')
    x50=$(med "${p50[$l/proxy]}" '%.3f')
    d99=$(med "${p99[$l/direct]}" '%.3f')
    x99=$(med "${p99[$l/proxy]}" '%.3f')
    awk -v row="${row[$l]}" -v d50="$d50" -v x50="$x50" -v d99="$d99" -v x99="$x99" 'BEGIN {
      printf "| %s | %.2f ms | %.2f ms | **%+.2f ms** | %.2f ms | %.2f ms | **%+.2f ms** |\n",
        row, d50, x50, x50 - d50, d99, x99, x99 - d99 }'
  done
}

model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
results_md=$(
  echo "- Run of $(date -u '+%Y-%m-%d %H:%M UTC') (commit $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$root" && git diff --quiet HEAD -- smtpproxy upstream cmd optin bench/latency 2>/dev/null || echo ', with uncommitted changes'))."
  echo "- Machine: $(nproc) CPUs ($model), $mem memory, Linux $(uname -r), $(go version | awk '{print $3}'), Postfix smtp-sink $postfix_version, Redis $redis_version (appendonly yes, appendfsync everysec; its own redis-server on loopback, sharing the CPUs)."
  echo "- Client: bench/latency, $conns kept connections, $size-byte bodies, $rcpts recipient(s) per message, cycling over $subjects recipients who were granted the newsletter beforehand (\`optinproxy import\`). Proxy: \`smtp://\` upstream (pool of $sessions), Redis store, \`policy.default_purpose: newsletter\` (consent needed; every copy with its own unsubscribe link$([[ $dkim_alg == none ]] && echo ", not DKIM-signed" || echo " and DKIM-signed with a $dkim_alg key"))."
  echo "- Peak: closed loop, $peak_n messages, median of $peak_runs runs. Latency: $duration s measured after $warmup s of warm-up, open loop at a fixed rate, latency from each message's due time to the reply to its final dot; median of $runs runs. A fresh sink for every run, and for the proxy's a fresh Redis, proxy and import."
  echo "- Background: the machine was $(med "$bases") % busy (median; at most $(tr ' ' '\n' <<<"$bases" | grep . | sort -g | tail -1) %) in the second before each run with none of the benchmark's processes running. Runs during which over $other_limit % of the machine's CPU went to other work were measured again: $retries times.$( ((noisy)) && echo ' **Some runs still overlapped with other work: their numbers are off.**')"
  echo
  echo "Peak (closed loop, $conns connections):"
  echo
  peak_table
  echo
  echo "Latency at a fixed rate (medians of the runs; max is the largest of all runs):"
  echo
  latency_table
  echo
  echo "Added latency, proxy minus direct, at the same offered rate:"
  echo
  added_table
  echo
  if ((${#notes[@]})); then
    echo "Noted during the runs (Redis's log, the proxy's warnings):"
    echo
    printf -- '- %s\n' "${notes[@]}"
  else
    echo "Redis logged no slow AOF fsync and no AOF rewrite, and the proxy no warning or error, in any run."
  fi
)
echo
echo "$results_md"

if ((write)); then
  [[ -f $doc ]] || die "$doc does not exist"
  grep -q '^<!-- latency:start -->$' "$doc" && grep -q '^<!-- latency:end -->$' "$doc" ||
    die "$doc lacks the <!-- latency:start --> / <!-- latency:end --> markers"
  new=$(mktemp "$work/doc.XXXXXX")
  awk -v body="$results_md" '
    /^<!-- latency:start -->$/ {print; print ""; print body; print ""; skip = 1; next}
    /^<!-- latency:end -->$/ {skip = 0}
    !skip {print}' "$doc" >"$new"
  cat "$new" >"$doc"
  log "wrote the results into $doc"
fi
