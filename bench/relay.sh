#!/usr/bin/env bash
# bench/relay.sh: messages per second through optinproxy, measured with
# Postfix's smtp-source (the client) and smtp-sink (the upstream mailer),
# beside smtp-source straight into smtp-sink in the same run.
#
#   bench/relay.sh            run, print a Markdown table
#   bench/relay.sh --write    also replace the results section of docs/benchmarks.md
#   bench/relay.sh --quick    small runs (a smoke test of the script, numbers not meaningful)
#   bench/relay.sh --fetch-only   only fetch the Postfix tools; print how to run them
#
# For each client mode (a new connection per message, and smtp-source -d:
# many messages per connection), four paths are timed, interleaved, each
# BENCH_RUNS times, and the median is reported:
#   direct  smtp-source -> smtp-sink
#   smtp    smtp-source -> optinproxy (upstream.url smtp://, embedded store) -> smtp-sink
#   redis   smtp-source -> optinproxy (upstream.url smtp://, store.redis.url: a private
#           redis-server with appendonly yes, appendfsync everysec) -> smtp-sink
#   file    smtp-source -> optinproxy (upstream.url file://DIR, DIR on the disk of bench/.cache)
#   inject  as smtp, but the mail is a newsletter to a recipient who consented
#           beforehand: every copy gets its own unsubscribe link (headers and
#           footer); not measured unless BENCH_PATHS names it
# Every measurement starts a fresh sink, Redis and proxy on free loopback
# ports and checks afterwards that every message arrived (smtp-sink's
# counter, the proxy's optinproxy_smtp_messages_total{result="relayed"},
# the .eml count) and that the proxy lost no receipt.
# The machine may be shared: each run waits for a quiet machine first, and
# a run during which much CPU went to other processes is measured again.
#
# Postfix's tools come from the postfix .deb, unpacked under bench/.cache
# (apt-get download + dpkg -x): the postfix package is never installed and
# no mail daemon starts. Knobs (environment): BENCH_RUNS (5), BENCH_N_CONN
# (messages per run, one connection each; 10000), BENCH_N_REUSE (with -d;
# 20000), BENCH_SESSIONS (20), BENCH_SIZE (4096), BENCH_CACHE (bench/.cache),
# BENCH_OTHER_LIMIT (15: percent of the machine's CPU that other work may take
# during a run before it is measured again), BENCH_PATHS ("direct smtp redis
# file": the paths to measure, direct first). The goal is at least 35 % of the
# direct rate for every proxy path, and 40 % for Redis with a new connection
# per message.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
doc=$root/docs/benchmarks.md

write=0
quick=0
fetch_only=0
for arg in "$@"; do
  case $arg in
    --write) write=1 ;;
    --fetch-only) fetch_only=1 ;;
    --quick) quick=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "relay.sh: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

runs=${BENCH_RUNS:-5}
n_conn=${BENCH_N_CONN:-10000}
n_reuse=${BENCH_N_REUSE:-20000}
sessions=${BENCH_SESSIONS:-20}
size=${BENCH_SIZE:-4096}
cache=${BENCH_CACHE:-$here/.cache}
if ((quick)); then
  runs=1 n_conn=400 n_reuse=800
fi
if ((quick && write)); then
  echo "relay.sh: --quick numbers are not for the docs; drop --quick to --write" >&2
  exit 2
fi
# Upper bounds: one smtp-source run, and the life of a sink, Redis or proxy.
run_limit=300
life_limit=3600

# The helpers shared with bench/latency.sh: logging, the run folder and
# cleanup, the Postfix tools, ports, load checks, starting the processes.
prog=relay.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
lib_init

# ---------------------------------------------------------------- one measurement

# measure MODE PATH N sets m_rate (msgs/s), m_cpu (the proxy's CPU
# microseconds per message, "-" for direct) and m_up (connections the proxy
# opened to smtp-sink, "-" unless smtp or redis) after checking that N
# messages arrived. It runs in the main shell, so that what it starts is in
# pids.
measure() {
  local mode=$1 path=$2 n=$3 flags=() target outbox="" cpu0=0 cpu1 cpu_us="-"
  [[ $mode == reuse ]] && flags=(-d)
  case $path in
    direct)
      start_sink
      target=$sink_port
      ;;
    smtp)
      start_sink
      start_proxy "smtp://127.0.0.1:$sink_port"
      target=$proxy_port
      ;;
    redis)
      start_sink
      start_redis
      start_proxy "smtp://127.0.0.1:$sink_port" "$redis_url"
      target=$proxy_port
      ;;
    file)
      outbox=$work/outbox
      rm -rf "$outbox"
      mkdir -p "$outbox"
      start_proxy "file://$outbox"
      target=$proxy_port
      ;;
    inject)
      # Marketing mail: smtp-source's recipient consented beforehand, and
      # each copy gets its own unsubscribe link in headers and body.
      start_sink
      start_proxy "smtp://127.0.0.1:$sink_port" "" newsletter
      grant_rcpt
      target=$proxy_port
      ;;
  esac
  [[ $path == direct ]] || cpu0=$(metric_float "$http_port" process_cpu_seconds_total)
  settle

  local t0 u0 t1 u1 rc=0 src_out=$work/source.$mode.$path.out
  local stat0 stat1 ours=() own0 own1 reaped0 reaped1
  [[ $path == file ]] || ours+=("$sink_pid")
  [[ $path == direct ]] || ours+=("$proxy_pid")
  [[ $path == redis ]] && ours+=("$redis_pid")
  own0=$(child_ticks "${ours[@]}")
  stat0=$(cpu_stat)
  times >"$work/times.0"
  read -r u0 _ </proc/uptime
  t0=$EPOCHREALTIME
  timeout "$run_limit" "$smtp_source" "${flags[@]}" -s "$sessions" -l "$size" -m "$n" \
    -M bench.test -f sender@bench.test -t rcpt@bench.test "127.0.0.1:$target" >"$src_out" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  read -r u1 _ </proc/uptime
  times >"$work/times.1"
  stat1=$(cpu_stat)
  own1=$(child_ticks "${ours[@]}")
  m_busy=$(busy_pct "$stat0" "$stat1")
  reaped0=$(reaped_ticks "$work/times.0")
  reaped1=$(reaped_ticks "$work/times.1")
  # Busy time that was not the benchmark's: other load, and kernel work
  # charged to no process (softirq), which loopback traffic causes too.
  m_other=$(awk -v a="$stat0" -v b="$stat1" -v own=$((own1 - own0 + reaped1 - reaped0)) 'BEGIN {
    split(a, x, " "); split(b, y, " "); total = y[1] - x[1]; busy = total - (y[2] - x[2])
    o = (busy - own) / total; printf "%.0f", (o < 0 ? 0 : 100 * o)}')
  ((rc == 0)) || die "$mode/$path: smtp-source exited $rc: $(tail -3 "$src_out")"

  # Every message must have arrived where it was sent.
  local got i
  if [[ $path != direct ]]; then
    got=$(metric "$http_port" 'optinproxy_smtp_messages_total{result="relayed"}')
    ((got == n)) || die "$mode/$path: the proxy counted $got relayed, want $n"
    got=$(metric "$http_port" optinproxy_receipt_errors_total)
    ((got == 0)) || die "$mode/$path: the proxy failed to store $got receipts (optinproxy_receipt_errors_total)"
    if [[ $path == inject ]]; then
      got=$(metric "$http_port" 'optinproxy_decisions_total{decision="allow",purpose="newsletter",reason="consent"}')
      ((got == n)) || die "$mode/$path: the proxy allowed $got newsletter copies by consent, want $n"
    fi
    cpu1=$(metric_float "$http_port" process_cpu_seconds_total)
    cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$n" 'BEGIN {printf "%.0f", (b - a) * 1e6 / n}')
  fi
  if [[ $path == file ]]; then
    got=$(find "$outbox" -maxdepth 1 -name '*.eml' | wc -l)
    ((got == n)) || die "$mode/$path: $got .eml files in the outbox, want $n"
    local sample
    sample=$(find "$outbox" -maxdepth 1 -name '*.eml' -print -quit)
    grep -q '^X-Optinproxy-Envelope-To: <rcpt@bench.test>' "$sample" ||
      die "$mode/$path: $sample lacks the envelope header"
    (($(stat -c %s "$sample") > size)) || die "$mode/$path: $sample is smaller than the payload"
    outbox_fs=$(findmnt -no FSTYPE -T "$outbox" 2>/dev/null || stat -f -c %T "$outbox")
  else
    for i in $(seq 60); do # smtp-sink updates its counter as "." arrives
      got=$(sink_count "$sink_out")
      [[ ${got:-0} -ge $n ]] && break
      sleep 0.05
    done
    ((${got:-0} == n)) || die "$mode/$path: smtp-sink counted ${got:-0} messages, want $n"
  fi
  [[ $path == direct ]] || stop "$proxy_pid"
  [[ $path == redis ]] && stop "$redis_pid"
  m_up="-"
  if [[ $path == smtp || $path == redis || $path == inject ]]; then
    # The sink counts a session when it ends: after the proxy's shutdown
    # closed its pool, sess= is how many upstream connections it opened.
    sleep 0.2
    m_up=$(tr '\r' '\n' <"$sink_out" | grep -o 'sess=[0-9]*' | tail -1 | cut -d= -f2)
  fi
  [[ $path == file ]] || stop "$sink_pid"
  [[ -n $outbox ]] && rm -rf "$outbox"

  awk -v t0="$t0" -v t1="$t1" -v u0="$u0" -v u1="$u1" 'BEGIN {
      d = (t1 - t0) - (u1 - u0); if (d < 0) d = -d
      if (d > 0.03 + 0.01 * (u1 - u0)) exit 1 }' ||
    die "$mode/$path: the wall clock ($t0 to $t1) and /proc/uptime ($u0 to $u1) disagree; clock stepped?"
  m_rate=$(awk -v t0="$t0" -v t1="$t1" -v n="$n" 'BEGIN {printf "%.1f", n / (t1 - t0)}')
  m_cpu=$cpu_us
}

# grant_rcpt grants smtp-source's recipient the newsletter in the running
# proxy's store, through its admin API and the token it generated.
grant_rcpt() {
  local out
  printf 'email,purpose,status,basis,source\nrcpt@bench.test,newsletter,granted,consent,import\n' >"$work/consents.csv"
  out=$(cd "$proxy_dir" && OPTINPROXY_TOKEN=$(<"$proxy_dir/store/admin.token") timeout 60 "$work/optinproxy" import \
    --addr "127.0.0.1:$http_port" "$work/consents.csv" 2>&1) || die "optinproxy import failed: $out"
  [[ $out == "1 rows: 1 applied, "* || $out == "1 row: 1 applied, "* ]] || die "optinproxy import: want 1 row applied, got: $out"
}

median() { # numbers on stdin
  sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) printf "%.0f\n", v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---------------------------------------------------------------- main

for tool in apt-get dpkg dpkg-deb dpkg-query ldd timeout awk; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH"
done
get_postfix_tools

# Smoke test: the tools run and the sink counts.
smoke_postfix
if ((fetch_only)); then
  log "smtp-source and smtp-sink work"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH $smtp_source"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH $smtp_sink"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH"
log "building optinproxy"
(cd "$root" && timeout 600 go build -o "$work/optinproxy" ./cmd/optinproxy) || die "go build failed"

modes=(conn reuse)
redis_version=""
read -r -a paths <<<"${BENCH_PATHS:-direct smtp redis file}"
[[ ${paths[0]:-} == direct ]] || die "BENCH_PATHS must start with direct (the reference), got: ${paths[*]}"
for path in "${paths[@]}"; do
  case $path in
    direct | smtp | redis | file | inject) ;;
    *) die "BENCH_PATHS: unknown path $path (direct, smtp, redis, file, inject)" ;;
  esac
done
if [[ " ${paths[*]} " == *" redis "* ]]; then
  command -v redis-server >/dev/null || die "redis-server is not on PATH (the redis path needs it; or leave it out of BENCH_PATHS)"
  redis_version=$(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2)
fi
declare -A results=() cpus=() busy=() others=() ups=() nmsgs=([conn]=$n_conn [reuse]=$n_reuse)
outbox_fs=?
bases=""
noisy=0
# A run during which more than this share of the machine's CPU went to
# anything but smtp-source, smtp-sink, Redis and the proxy (other people's tests,
# builds) is measured again, up to five times.
other_limit=${BENCH_OTHER_LIMIT:-15}
retries=0
log "measuring: $runs runs each of ${#modes[@]} client modes x ${#paths[@]} paths; $sessions sessions, $size-byte messages"
for mode in "${modes[@]}"; do
  for r in $(seq "$runs"); do
    for path in "${paths[@]}"; do
      for attempt in 1 2 3 4 5; do
        measure "$mode" "$path" "${nmsgs[$mode]}"
        ((m_other <= other_limit)) && break
        log "$mode/$path run $r: $m_rate msgs/s, but ${m_other} % of the machine's CPU went to other work; measuring again"
        retries=$((retries + 1))
      done
      ((m_other <= other_limit)) || noisy=1
      results[$mode/$path]+="$m_rate "
      cpus[$mode/$path]+="$m_cpu "
      busy[$mode/$path]+="$m_busy "
      others[$mode/$path]+="$m_other "
      bases+="$m_base "
      log "$mode/$path run $r: $m_rate msgs/s (N=${nmsgs[$mode]}; proxy CPU $m_cpu us/msg; machine CPU busy $m_busy %, not by the benchmark $m_other % (before: $m_base %); upstream connections $m_up)"
      [[ $m_up == - ]] || ups[$mode/$path]+="$m_up "
    done
  done
done

# ---------------------------------------------------------------- report

mode_name() {
  case $1 in
    conn) echo "new connection per message" ;;
    reuse) echo "connection reuse (\`-d\`)" ;;
  esac
}

# goal MODE PATH: the share of the direct rate a proxy path must reach, in
# percent: 35 for the relay layer (the issue), 40 for Redis with a new
# connection per message.
goal() {
  if [[ $1 == conn && $2 == redis ]]; then echo 40; else echo 35; fi
}

table() {
  echo "| client mode | path | messages per run | runs (msgs/s) | median msgs/s | ratio to direct | goal | proxy CPU µs/msg | machine CPU busy | of it not the benchmark's |"
  echo "| --- | --- | ---: | --- | ---: | ---: | :---: | ---: | ---: | ---: |"
  local mode path med direct ratio verdict cpu g
  for mode in "${modes[@]}"; do
    direct=$(tr ' ' '\n' <<<"${results[$mode/direct]}" | grep . | median)
    for path in "${paths[@]}"; do
      med=$(tr ' ' '\n' <<<"${results[$mode/$path]}" | grep . | median)
      if [[ $path == direct ]]; then
        ratio="100 %" verdict="" cpu="–"
      else
        ratio=$(awk -v a="$med" -v b="$direct" 'BEGIN {printf "%.0f %%", 100 * a / b}')
        g=$(goal "$mode" "$path")
        verdict=$(awk -v a="$med" -v b="$direct" -v g="$g" 'BEGIN {printf "≥ %d %%: %s", g, (a >= g / 100 * b) ? "met" : "**missed**"}')
        cpu=$(tr ' ' '\n' <<<"${cpus[$mode/$path]}" | grep . | median)
      fi
      local label=$path
      case $path in
        direct) label="direct: smtp-source → smtp-sink" ;;
        smtp) label="proxy, \`smtp://\` upstream → smtp-sink" ;;
        redis) label="proxy, \`smtp://\` upstream, Redis store → smtp-sink" ;;
        file) label="proxy, \`file://\` upstream ($outbox_fs)" ;;
        inject) label="proxy, \`smtp://\` upstream, newsletter with unsubscribe links → smtp-sink" ;;
      esac
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s %% | %s %% |\n' "$(mode_name "$mode")" "$label" "${nmsgs[$mode]}" \
        "$(echo ${results[$mode/$path]} | awk '{for (i = 1; i <= NF; i++) printf "%s%.0f", (i > 1 ? ", " : ""), $i}')" \
        "$med" "$ratio" "$verdict" "$cpu" "$(tr ' ' '\n' <<<"${busy[$mode/$path]}" | grep . | median)" \
        "$(echo ${others[$mode/$path]} | tr ' ' '\n' | sort -g | awk '{v[NR] = $1} END {printf "%s–%s", v[1], v[NR]}')"
    done
  done
}

model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
results_md=$(
  echo "- Run of $(date -u '+%Y-%m-%d %H:%M UTC') (commit $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$root" && git diff --quiet HEAD -- smtpproxy upstream cmd optin 2>/dev/null || echo ', with uncommitted changes'))."
  echo "- Machine: $(nproc) CPUs ($model), $mem memory, Linux $(uname -r), $(go version | awk '{print $3}'), Postfix smtp-source/smtp-sink $postfix_version${redis_version:+, Redis $redis_version (appendonly yes, appendfsync everysec; its own redis-server on loopback, sharing the two CPUs)}."
  echo "- Load: $sessions parallel sessions, $size-byte messages, median of $runs runs, fresh sink, proxy${redis_version:+ and Redis} for every run."
  echo "- Background: the machine was $(tr ' ' '\n' <<<"$bases" | grep . | median) % busy (median; at most $(tr ' ' '\n' <<<"$bases" | grep . | sort -g | tail -1) %) in the second before each run with none of the benchmark's processes running. Runs during which over $other_limit % of the machine's CPU went to other work were measured again: $retries times.$( ((noisy)) && echo ' **Some runs still overlapped with other work: their numbers are low.**')"
  echo
  table
  echo
  echo "Connections the proxy opened to smtp-sink per run, as smtp-sink counted them (upstream.pool_size is $sessions; without pooling it would be one per message):"
  echo
  for mode in "${modes[@]}"; do
    for path in "${paths[@]}"; do
      [[ -n ${ups[$mode/$path]:-} ]] || continue
      echo "- $(mode_name "$mode")$([[ $path == redis ]] && echo ", Redis store"): $(echo ${ups[$mode/$path]} | sed 's/ /, /g')."
    done
  done
)
echo
echo "$results_md"

if ((write)); then
  [[ -f $doc ]] || die "$doc does not exist"
  grep -q '^<!-- results:start -->$' "$doc" && grep -q '^<!-- results:end -->$' "$doc" ||
    die "$doc lacks the <!-- results:start --> / <!-- results:end --> markers"
  new=$(mktemp "$work/doc.XXXXXX")
  awk -v body="$results_md" '
    /^<!-- results:start -->$/ {print; print ""; print body; print ""; skip = 1; next}
    /^<!-- results:end -->$/ {skip = 0}
    !skip {print}' "$doc" >"$new"
  cat "$new" >"$doc"
  log "wrote the results into $doc"
fi
