#!/usr/bin/env bash
# bench/relay.sh: messages per second through optinproxy, measured with
# Postfix's smtp-source (the client) and smtp-sink (the upstream mailer),
# beside smtp-source straight into smtp-sink, and beside a stock Postfix
# relay, in the same run.
#
#   bench/relay.sh            run, print a Markdown table
#   bench/relay.sh --write    also replace the results section of docs/benchmarks.md (the
#                             section "Against a Postfix relay" when postfix or full is measured)
#   bench/relay.sh --quick    small runs (a smoke test of the script, numbers not meaningful)
#   bench/relay.sh --fetch-only   only fetch the Postfix tools; print how to run them
#
# For each row of the matrix (client mode x sessions x message size x
# recipients per message) the paths are timed, interleaved, each BENCH_RUNS
# times, and the median is reported. Client modes: a new connection per
# message (conn), and smtp-source -d, many messages per connection (reuse).
# smtp-source numbers its recipients (-N: 1rcpt@bench.test, 2rcpt@..., one
# new address for every recipient of the run), so no path sees one hot
# address. The paths:
#   direct  smtp-source -> smtp-sink
#   smtp    smtp-source -> optinproxy (upstream.url smtp://, embedded store) -> smtp-sink
#   redis   smtp-source -> optinproxy (upstream.url smtp://, store.redis.url: a private
#           redis-server with appendonly yes, appendfsync everysec) -> smtp-sink
#   file    smtp-source -> optinproxy (upstream.url file://DIR, DIR on the disk of bench/.cache)
#   inject  as smtp, but the mail is a newsletter to recipients who consented
#           beforehand: every copy gets its own unsubscribe link (headers and
#           footer)
#   full    as inject, and every copy DKIM-signed (a key made for the run):
#           enforcement, receipts, unsubscribe injection and signing, on the
#           embedded store
#   full-redis  full on Redis (as the redis path)
#   full-redis-ed25519  full-redis, signing with an Ed25519 key whatever
#           BENCH_DKIM says (beside full-redis, the price of the RSA key)
#   inject-redis  inject on Redis: enforcement, receipts and unsubscribe
#           injection, no signing (the goal's own wording)
#   postfix smtp-source -> a stock Postfix relay -> smtp-sink, timed twice:
#           at acceptance (smtp-source done: Postfix has queued every message)
#           and end to end (smtp-sink counted every message)
# Before the inject and full paths, every recipient of the run is granted
# the newsletter with `optinproxy import` (not timed). Every measurement
# starts a fresh sink, Redis, proxy or Postfix on free loopback ports and
# checks afterwards that every message arrived (smtp-sink's counter, the
# proxy's optinproxy_smtp_messages_total{result="relayed"} and
# optinproxy_relayed_copies_total, its decisions, the .eml count) and that
# the proxy lost no receipt. Before the first full measurement, one message
# through a full proxy into a dumping smtp-sink must come out signed and
# with its unsubscribe link.
# The machine may be shared: each run waits for a quiet machine first, and
# a run during which much CPU went to other processes is measured again.
#
# Postfix comes from the postfix .deb, unpacked under bench/.cache
# (apt-get download + dpkg -x): the package is never installed and no
# system mail daemon starts. The postfix path runs a private instance of
# the unpacked Postfix, as root: `postfix -c DIR start-fg` with main.cf and
# master.cf written by bench/lib.sh (start_postfix) into the run folder;
# queue and data folders there too; smtpd on a free loopback port
# (inet_interfaces = loopback-only); relayhost = [127.0.0.1]:SINK-PORT;
# mynetworks = 127.0.0.0/8; no local delivery (mydestination empty); no
# chroot; its log in the run folder (maillog_file, postlogd) rather than
# syslog. It needs no postfix user or postdrop group: mail_owner is nobody,
# setgid_group is mail, default_privs is daemon (three different ids, as
# Postfix requires). postdrop and postqueue are not made setgid: they only
# serve local submission (sendmail), and mail comes in over SMTP here;
# Postfix's start-up check warns about them in its log, harmlessly. The
# data folder belongs to nobody, and the run folder is opened to others
# for traversal (chmod go+x), since the daemons open files there by path.
# LD_LIBRARY_PATH reaches the daemons through import_environment.
#
# Knobs (environment): BENCH_RUNS (5), BENCH_MODES ("conn reuse"),
# BENCH_SESSIONS ("20"; a list, e.g. "1 20 100"), BENCH_SIZE ("4096"; a
# list of bytes, e.g. "4096 262144"), BENCH_RCPTS ("1"; a list of
# recipients per message, e.g. "1 50"), BENCH_N_CONN (messages per run, one
# connection each; 10000), BENCH_N_REUSE (with -d; 20000), BENCH_N_MULTI
# (messages per run when a message has more than one recipient; 2000;
# each of the three is scaled down by size/4096 for larger messages, to
# no fewer than 100),
# BENCH_DKIM (rsa: a 2048-bit RSA key, what most senders publish; or
# ed25519), BENCH_CACHE (bench/.cache), BENCH_OTHER_LIMIT (15: percent of
# the machine's CPU that other work may take during a run before it is
# measured again), BENCH_PATHS ("direct smtp redis file": the paths to
# measure, direct first; "direct full-redis full postfix" is the comparison
# with what users would put in front of a mailer instead). The goals, in
# the row of 20 sessions, 4 KiB, one recipient: at least 35 % of the direct
# rate for smtp, file and inject, 40 % for redis with a new connection per
# message, and 50 % for full-redis, full-redis-ed25519 and inject-redis.
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
n_multi=${BENCH_N_MULTI:-2000}
read -r -a modes <<<"${BENCH_MODES:-conn reuse}"
read -r -a session_list <<<"${BENCH_SESSIONS:-20}"
read -r -a size_list <<<"${BENCH_SIZE:-4096}"
read -r -a rcpt_list <<<"${BENCH_RCPTS:-1}"
dkim_alg=${BENCH_DKIM:-rsa}
cache=${BENCH_CACHE:-$here/.cache}
other_limit=${BENCH_OTHER_LIMIT:-15}
if ((quick)); then
  # A smoke test: small runs, and no waiting for a quiet machine.
  runs=1 n_conn=400 n_reuse=800 n_multi=40 settle_limit=1 other_limit=100
fi
if ((quick && write)); then
  echo "relay.sh: --quick numbers are not for the docs; drop --quick to --write" >&2
  exit 2
fi
whole() { # NAME VALUE...: each VALUE a whole number above 0, or exit
  local name=$1 v
  shift
  (($#)) || {
    echo "relay.sh: $name is empty" >&2
    exit 2
  }
  for v in "$@"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || {
      echo "relay.sh: $name: want a whole number above 0, got '$v'" >&2
      exit 2
    }
  done
}
whole BENCH_RUNS "$runs"
whole BENCH_N_CONN "$n_conn"
whole BENCH_N_REUSE "$n_reuse"
whole BENCH_N_MULTI "$n_multi"
whole BENCH_OTHER_LIMIT "$other_limit"
whole BENCH_SESSIONS "${session_list[@]}"
whole BENCH_SIZE "${size_list[@]}"
whole BENCH_RCPTS "${rcpt_list[@]}"
for mode in "${modes[@]}"; do
  [[ $mode == conn || $mode == reuse ]] || {
    echo "relay.sh: BENCH_MODES: unknown mode $mode (conn, reuse)" >&2
    exit 2
  }
done
[[ $dkim_alg == rsa || $dkim_alg == ed25519 ]] || {
  echo "relay.sh: BENCH_DKIM: want rsa or ed25519, got '$dkim_alg'" >&2
  exit 2
}
# Upper bounds: one smtp-source run, Postfix's delivery of what it queued,
# and the life of a sink, Redis, proxy or Postfix.
run_limit=300
drain_limit=300
life_limit=3600

# The helpers shared with bench/latency.sh: logging, the run folder and
# cleanup, the Postfix tools, ports, load checks, starting the processes.
prog=relay.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
lib_init

# ---------------------------------------------------------------- one measurement

# sink_last prints smtp-sink's counter (sink_count) from the end of its
# output only, cheap enough to ask every 50 ms while a run drains.
sink_last() {
  tail -c 256 "$sink_out" | tr '\r' '\n' | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2
}

# measure MODE PATH N RCPTS SIZE sets m_rate (msgs/s accepted), m_e2e
# (msgs/s until smtp-sink counted the last copy), m_cpu (CPU microseconds
# per message of the proxy or of Postfix, "-" for direct), m_up
# (connections the proxy opened to smtp-sink, "-" if none), m_busy and
# m_other after checking that every message arrived. It runs in the main
# shell, so that what it starts is in pids.
measure() {
  local mode=$1 path=$2 n=$3 rcpts=$4 size=$5 flags=(-N) target outbox="" cpu0=0 cpu1 cpu_us="-"
  local proxy=0 redis=0 pf=0 want
  [[ $mode == reuse ]] && flags+=(-d)
  ((rcpts > 1)) && flags+=(-r "$rcpts")
  case $path in
    smtp | inject | full) proxy=1 ;;
    redis | full-redis | full-redis-ed25519 | inject-redis) proxy=1 redis=1 ;;
    file) proxy=1 ;;
    postfix) pf=1 ;;
  esac
  [[ $path == file ]] || start_sink
  ((redis)) && start_redis
  case $path in
    direct) target=$sink_port ;;
    smtp) start_proxy "smtp://127.0.0.1:$sink_port" ;;
    redis) start_proxy "smtp://127.0.0.1:$sink_port" "$redis_url" ;;
    file)
      outbox=$work/outbox
      rm -rf "$outbox"
      mkdir -p "$outbox"
      start_proxy "file://$outbox"
      ;;
    inject) start_proxy "smtp://127.0.0.1:$sink_port" "" newsletter ;;
    full) start_proxy "smtp://127.0.0.1:$sink_port" "" newsletter "$dkim_key" ;;
    full-redis) start_proxy "smtp://127.0.0.1:$sink_port" "$redis_url" newsletter "$dkim_key" ;;
    full-redis-ed25519) start_proxy "smtp://127.0.0.1:$sink_port" "$redis_url" newsletter "$ed_key" ;;
    inject-redis) start_proxy "smtp://127.0.0.1:$sink_port" "$redis_url" newsletter ;;
    postfix)
      start_postfix "$sink_port"
      target=$postfix_port
      ;;
  esac
  if ((proxy)); then
    target=$proxy_port
    # Marketing mail: every recipient of the run consented beforehand.
    if [[ $path == inject* || $path == full* ]]; then
      local csv=$work/consents.$((n * rcpts)).csv
      [[ -f $csv ]] || make_consents "$csv" 1 "$((n * rcpts))" %drcpt@bench.test
      import_consents "$csv" "$((n * rcpts))"
    fi
    cpu0=$(metric_float "$http_port" process_cpu_seconds_total)
  fi
  settle

  local t0 u0 t1 u1 t2 u2 rc=0 src_out=$work/source.$mode.$path.out
  local stat0 stat1 ours=() own0 own1 reaped0 reaped1 pf0=0 pf1=0
  [[ $path == file ]] || ours+=("$sink_pid")
  ((proxy)) && ours+=("$proxy_pid")
  ((redis)) && ours+=("$redis_pid")
  own0=$(child_ticks "${ours[@]}")
  ((pf)) && pf0=$(postfix_ticks)
  stat0=$(cpu_stat)
  times >"$work/times.0"
  read -r u0 _ </proc/uptime
  t0=$EPOCHREALTIME
  timeout "$run_limit" "$smtp_source" "${flags[@]}" -s "$sessions" -l "$size" -m "$n" \
    -M bench.test -f sender@bench.test -t rcpt@bench.test "127.0.0.1:$target" >"$src_out" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  read -r u1 _ </proc/uptime
  ((rc == 0)) || die "$mode/$path: smtp-source exited $rc: $(tail -3 "$src_out")"

  # What smtp-sink must count: a copy per recipient where the proxy
  # injects (each gets its own link); one per message and per 50
  # recipients (smtp_destination_recipient_limit) through Postfix; one
  # per message otherwise.
  local got i wait=3
  case $path in
    postfix) want=$((n * ((rcpts + 49) / 50))) wait=$drain_limit ;;
    inject* | full*) want=$((n * rcpts)) ;;
    *) want=$n ;;
  esac
  # End to end: until smtp-sink counted every copy. For the proxy, which
  # answers DATA only after the upstream took the message, that is at
  # once (smtp-sink updates its counter as "." arrives); Postfix delivers
  # from its queue afterwards.
  if [[ $path != file ]]; then
    for i in $(seq $((wait * 20))); do
      got=$(sink_last)
      [[ ${got:-0} -ge $want ]] && break
      sleep 0.05
    done
  fi
  t2=$EPOCHREALTIME
  read -r u2 _ </proc/uptime
  times >"$work/times.1"
  stat1=$(cpu_stat)
  own1=$(child_ticks "${ours[@]}")
  ((pf)) && pf1=$(postfix_ticks)
  m_busy=$(busy_pct "$stat0" "$stat1")
  reaped0=$(reaped_ticks "$work/times.0")
  reaped1=$(reaped_ticks "$work/times.1")
  # Busy time that was not the benchmark's: other load, and kernel work
  # charged to no process (softirq), which loopback traffic causes too.
  m_other=$(awk -v a="$stat0" -v b="$stat1" -v own=$((own1 - own0 + pf1 - pf0 + reaped1 - reaped0)) 'BEGIN {
    split(a, x, " "); split(b, y, " "); total = y[1] - x[1]; busy = total - (y[2] - x[2])
    o = (busy - own) / total; printf "%.0f", (o < 0 ? 0 : 100 * o)}')

  # Every message must have arrived where it was sent.
  if ((proxy)); then
    got=$(metric "$http_port" 'optinproxy_smtp_messages_total{result="relayed"}')
    ((got == n)) || die "$mode/$path: the proxy counted $got relayed, want $n"
    got=$(metric "$http_port" optinproxy_receipt_errors_total)
    ((got == 0)) || die "$mode/$path: the proxy failed to store $got receipts (optinproxy_receipt_errors_total)"
    if [[ $path == inject* || $path == full* ]]; then
      got=$(metric "$http_port" 'optinproxy_decisions_total{decision="allow",purpose="newsletter",reason="consent"}')
      ((got == n * rcpts)) || die "$mode/$path: the proxy allowed $got newsletter recipients by consent, want $((n * rcpts))"
      got=$(metric "$http_port" 'optinproxy_relayed_copies_total{domain="bench.test"}')
      ((got == want)) || die "$mode/$path: the proxy handed over $got copies, want one per recipient, $want"
    fi
    cpu1=$(metric_float "$http_port" process_cpu_seconds_total)
    cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$n" 'BEGIN {printf "%.0f", (b - a) * 1e6 / n}')
  fi
  if ((pf)); then
    cpu_us=$(awk -v a="$pf0" -v b="$pf1" -v hz="$clk_tck" -v n="$n" 'BEGIN {printf "%.0f", (b - a) / hz * 1e6 / n}')
    grep -q 'status=sent' "$postfix_dir/maillog" || die "$mode/$path: Postfix's log shows no delivery: $(tail -3 "$postfix_dir/maillog")"
  fi
  if [[ $path == file ]]; then
    got=$(find "$outbox" -maxdepth 1 -name '*.eml' | wc -l)
    ((got == n)) || die "$mode/$path: $got .eml files in the outbox, want $n"
    local sample
    sample=$(find "$outbox" -maxdepth 1 -name '*.eml' -print -quit)
    grep -q '^X-Optinproxy-Envelope-To: <[0-9]*rcpt@bench.test>' "$sample" ||
      die "$mode/$path: $sample lacks the envelope header"
    (($(stat -c %s "$sample") > size)) || die "$mode/$path: $sample is smaller than the payload"
    outbox_fs=$(findmnt -no FSTYPE -T "$outbox" 2>/dev/null || stat -f -c %T "$outbox")
  else
    got=$(sink_count "$sink_out")
    ((${got:-0} == want)) || die "$mode/$path: smtp-sink counted ${got:-0} messages, want $want"
  fi
  ((proxy)) && stop "$proxy_pid"
  ((pf)) && stop_postfix
  ((redis)) && stop "$redis_pid"
  m_up="-"
  if ((proxy)) && [[ $path != file ]]; then
    # The sink counts a session when it ends: after the proxy's shutdown
    # closed its pool, sess= is how many upstream connections it opened.
    sleep 0.2
    m_up=$(tr '\r' '\n' <"$sink_out" | grep -o 'sess=[0-9]*' | tail -1 | cut -d= -f2)
  fi
  [[ $path == file ]] || stop "$sink_pid"
  [[ -n $outbox ]] && rm -rf "$outbox"

  awk -v t0="$t0" -v t1="$t1" -v t2="$t2" -v u0="$u0" -v u1="$u1" -v u2="$u2" 'BEGIN {
      d1 = (t1 - t0) - (u1 - u0); if (d1 < 0) d1 = -d1
      d2 = (t2 - t0) - (u2 - u0); if (d2 < 0) d2 = -d2
      if (d1 > 0.03 + 0.01 * (u1 - u0) || d2 > 0.03 + 0.01 * (u2 - u0)) exit 1 }' ||
    die "$mode/$path: the wall clock ($t0, $t1, $t2) and /proc/uptime ($u0, $u1, $u2) disagree; clock stepped?"
  m_rate=$(awk -v t0="$t0" -v t1="$t1" -v n="$n" 'BEGIN {printf "%.1f", n / (t1 - t0)}')
  m_e2e=$(awk -v t0="$t0" -v t2="$t2" -v n="$n" 'BEGIN {printf "%.1f", n / (t2 - t0)}')
  m_cpu=$cpu_us
}

# probe_full sends one message through a proxy set up as for the full
# paths into an smtp-sink that keeps what it gets (-D), and checks that it
# came out DKIM-signed and with its unsubscribe link: the full paths
# measure what they say.
probe_full() {
  local dump i
  # smtp-sink, as nobody, writes the dump by its full path.
  mkdir -p "$work/probe"
  ((EUID == 0)) && chown nobody "$work/probe" && chmod go+x "$work"
  start_sink -D "$work/probe/dump"
  start_proxy "smtp://127.0.0.1:$sink_port" "" newsletter "$dkim_key"
  make_consents "$work/probe.csv" 1 1 %drcpt@bench.test
  import_consents "$work/probe.csv" 1
  timeout 60 "$smtp_source" -N -m 1 -l 100 -M bench.test -f sender@bench.test -t rcpt@bench.test \
    "127.0.0.1:$proxy_port" >"$work/probe.out" 2>&1 || die "the probe message was not accepted: $(cat "$work/probe.out")"
  for i in $(seq 40); do
    [[ $(sink_count "$sink_out") == 1 ]] && break
    sleep 0.05
  done
  stop "$proxy_pid"
  stop "$sink_pid"
  dump=$(find "$work/probe" -name 'dump*' -print -quit)
  [[ -n $dump ]] || die "smtp-sink kept no copy of the probe message: $(tr '\r' '\n' <"$sink_out" | tail -2)"
  grep -q '^DKIM-Signature:.* d=bench.test' "$dump" || grep -A3 '^DKIM-Signature:' "$dump" | grep -q 'd=bench.test' ||
    die "the probe message through the full proxy is not DKIM-signed for bench.test (smtp-sink's dump in $dump)"
  grep -q '^List-Unsubscribe:' "$dump" || die "the probe message through the full proxy has no List-Unsubscribe header ($dump)"
  log "probe: a message through the full proxy came out DKIM-signed ($dkim_alg) with its unsubscribe link"
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

redis_version=""
read -r -a paths <<<"${BENCH_PATHS:-direct smtp redis file}"
[[ ${paths[0]:-} == direct ]] || die "BENCH_PATHS must start with direct (the reference), got: ${paths[*]}"
for path in "${paths[@]}"; do
  case $path in
    direct | smtp | redis | file | inject | inject-redis | full | full-redis | full-redis-ed25519 | postfix) ;;
    *) die "BENCH_PATHS: unknown path $path (direct, smtp, redis, file, inject, inject-redis, full, full-redis, full-redis-ed25519, postfix)" ;;
  esac
done
if [[ " ${paths[*]} " == *" redis "* || " ${paths[*]} " == *"-redis"* ]]; then
  command -v redis-server >/dev/null || die "redis-server is not on PATH (the redis paths need it; or leave them out of BENCH_PATHS)"
  redis_version=$(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2)
fi

command -v go >/dev/null || die "go is not on PATH"
build_proxy

if [[ " ${paths[*]} " == *" full"* ]]; then
  dkim_key=$work/dkim.pem
  make_dkim_key "$dkim_alg" "$dkim_key"
  ed_key=$work/dkim-ed25519.pem
  make_dkim_key ed25519 "$ed_key"
  sessions=1
  probe_full
fi

# rows: "MODE SESSIONS SIZE RCPTS", in the order measured.
rows=()
for mode in "${modes[@]}"; do
  for s in "${session_list[@]}"; do
    for z in "${size_list[@]}"; do
      for rc in "${rcpt_list[@]}"; do
        rows+=("$mode $s $z $rc")
      done
    done
  done
done
declare -A results=() e2es=() cpus=() busy=() others=() ups=() nmsgs=()
outbox_fs=?
bases=""
noisy=0
# A run during which more than other_limit % of the machine's CPU went to
# anything but smtp-source, smtp-sink, Redis, the proxy and Postfix (other
# people's tests, builds) is measured again, up to five times.
retries=0
log "measuring: ${#rows[@]} rows (client mode x sessions x size x recipients) x ${#paths[@]} paths x $runs runs"
for row in "${rows[@]}"; do
  read -r mode sessions size rcpts <<<"$row"
  if ((rcpts > 1)); then n=$n_multi; elif [[ $mode == conn ]]; then n=$n_conn; else n=$n_reuse; fi
  # Larger messages: the same bytes per run as at 4 KiB, at least 100
  # messages, so that a 256 KiB row takes about as long as a 4 KiB one.
  ((size > 4096)) && n=$((n * 4096 / size > 100 ? n * 4096 / size : 100))
  nmsgs[$row]=$n
  for r in $(seq "$runs"); do
    for path in "${paths[@]}"; do
      for attempt in 1 2 3 4 5; do
        measure "$mode" "$path" "$n" "$rcpts" "$size"
        ((m_other <= other_limit)) && break
        log "$row/$path run $r: $m_rate msgs/s, but ${m_other} % of the machine's CPU went to other work; measuring again"
        retries=$((retries + 1))
      done
      ((m_other <= other_limit)) || noisy=1
      results[$row/$path]+="$m_rate "
      e2es[$row/$path]+="$m_e2e "
      cpus[$row/$path]+="$m_cpu "
      busy[$row/$path]+="$m_busy "
      others[$row/$path]+="$m_other "
      bases+="$m_base "
      log "$mode, $sessions sessions, $size bytes, $rcpts rcpt/$path run $r: $m_rate msgs/s accepted, $m_e2e end to end (N=$n; CPU $m_cpu us/msg; machine CPU busy $m_busy %, not by the benchmark $m_other % (before: $m_base %); upstream connections $m_up)"
      [[ $m_up == - ]] || ups[$row/$path]+="$m_up "
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

# goal ROW PATH prints the share of the direct rate a path must reach, in
# percent, or nothing: the goals hold for 20 sessions, 4 KiB, one
# recipient: 35 for the relay layer, 40 for Redis with a new connection
# per message, 50 for the proxy doing everything on Redis.
goal() {
  local mode s z rc
  read -r mode s z rc <<<"$1"
  [[ $s == 20 && $z == 4096 && $rc == 1 ]] || return 0
  case $2 in
    full-redis | full-redis-ed25519 | inject-redis) echo 50 ;;
    redis) if [[ $mode == conn ]]; then echo 40; else echo 35; fi ;;
    smtp | file | inject) echo 35 ;;
  esac
}

label() {
  case $1 in
    direct) echo "direct: smtp-source → smtp-sink" ;;
    smtp) echo "proxy, \`smtp://\` upstream → smtp-sink" ;;
    redis) echo "proxy, \`smtp://\` upstream, Redis store → smtp-sink" ;;
    file) echo "proxy, \`file://\` upstream ($outbox_fs)" ;;
    inject) echo "proxy, \`smtp://\` upstream, newsletter with unsubscribe links → smtp-sink" ;;
    full) echo "proxy, everything on (consent, receipts, unsubscribe links, DKIM $dkim_alg), embedded store → smtp-sink" ;;
    full-redis) echo "proxy, everything on (consent, receipts, unsubscribe links, DKIM $dkim_alg), Redis store → smtp-sink" ;;
    full-redis-ed25519) echo "proxy, everything on (consent, receipts, unsubscribe links, DKIM ed25519), Redis store → smtp-sink" ;;
    inject-redis) echo "proxy, consent, receipts and unsubscribe links, no DKIM, Redis store → smtp-sink" ;;
    postfix) echo "Postfix relay → smtp-sink, at acceptance" ;;
    postfix-e2e) echo "Postfix relay → smtp-sink, end to end" ;;
  esac
}

list() { # numbers: "a, b, c", rounded
  echo "$@" | awk '{for (i = 1; i <= NF; i++) printf "%s%.0f", (i > 1 ? ", " : ""), $i}'
}

med() { tr ' ' '\n' <<<"$1" | grep . | median; }

table() {
  echo "| client mode | sessions | bytes | rcpts | path | messages per run | runs (msgs/s) | median msgs/s | ratio to direct | goal | relay CPU µs/msg | machine CPU busy | of it not the benchmark's |"
  echo "| --- | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | :---: | ---: | ---: | ---: |"
  local row mode s z rc path med direct ratio verdict cpu g key vals
  for row in "${rows[@]}"; do
    read -r mode s z rc <<<"$row"
    direct=$(med "${results[$row/direct]}")
    for path in "${paths[@]}" $([[ " ${paths[*]} " == *" postfix "* ]] && echo postfix-e2e); do
      key=$row/${path%-e2e}
      vals=${results[$key]}
      [[ $path == postfix-e2e ]] && vals=${e2es[$key]}
      med=$(med "$vals")
      ratio=$(awk -v a="$med" -v b="$direct" 'BEGIN {printf "%.0f %%", 100 * a / b}')
      verdict="" cpu="–"
      g=$(goal "$row" "$path")
      [[ -n $g ]] && verdict=$(awk -v a="$med" -v b="$direct" -v g="$g" 'BEGIN {printf "≥ %d %%: %s", g, (a >= g / 100 * b) ? "met" : "**missed**"}')
      # Postfix's CPU is up to the last delivery: shown on its end-to-end line.
      [[ $path == direct || $path == postfix ]] || cpu=$(med "${cpus[$key]}")
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s %% | %s %% |\n' "$(mode_name "$mode")" "$s" "$z" "$rc" \
        "$(label "$path")" "${nmsgs[$row]}" "$(list $vals)" "$med" "$ratio" "$verdict" "$cpu" "$(med "${busy[$key]}")" \
        "$(echo ${others[$key]} | tr ' ' '\n' | sort -g | awk '{v[NR] = $1} END {printf "%s–%s", v[1], v[NR]}')"
    done
  done
}

# versus prints, for each row and each of the Redis proxy paths measured
# with the Postfix relay, how many times the Postfix relay's end-to-end
# rate the proxy reached.
versus() {
  local row mode s z rc p f path
  [[ " ${paths[*]} " == *" postfix "* ]] || return 0
  for path in full-redis full-redis-ed25519 inject-redis; do
    [[ " ${paths[*]} " == *" $path "* ]] || continue
    echo
    echo "$(label "$path"), against the Postfix relay end to end (goal ≥ 10x at 20 sessions, 4 KiB, one recipient):"
    echo
    for row in "${rows[@]}"; do
      read -r mode s z rc <<<"$row"
      p=$(med "${e2es[$row/postfix]}")
      f=$(med "${results[$row/$path]}")
      echo "- $(mode_name "$mode"), $s sessions, $z bytes, $rc recipients: $(awk -v f="$f" -v p="$p" 'BEGIN {printf "%.1fx", f / p}') ($f against $p msgs/s)."
    done
  done
}

model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
results_md=$(
  echo "- Run of $(date -u '+%Y-%m-%d %H:%M UTC') (commit $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$root" && git diff --quiet HEAD -- smtpproxy upstream cmd optin dkim unsubscribe 2>/dev/null || echo ', with uncommitted changes'))."
  echo "- Machine: $(nproc) CPUs ($model), $mem memory, Linux $(uname -r), $(go version | awk '{print $3}'), Postfix $postfix_version (smtp-source, smtp-sink$([[ " ${paths[*]} " == *" postfix "* ]] && echo ', and the relay: its defaults, unchrooted, queue on the disk of bench/.cache'))${redis_version:+, Redis $redis_version (appendonly yes, appendfsync everysec; its own redis-server on loopback, sharing the CPUs)}."
  echo "- Load: smtp-source with -N (a new recipient address for every recipient of the run), median of $runs runs, fresh sink, proxy${redis_version:+, Redis}$([[ " ${paths[*]} " == *" postfix "* ]] && echo ', Postfix') for every run$([[ " ${paths[*]} " == *" full"* ]] && echo "; DKIM key: $dkim_alg")."
  echo "- Background: the machine was $(med "$bases") % busy (median; at most $(tr ' ' '\n' <<<"$bases" | grep . | sort -g | tail -1) %) in the second before each run with none of the benchmark's processes running. Runs during which over $other_limit % of the machine's CPU went to other work were measured again: $retries times.$( ((noisy)) && echo ' **Some runs still overlapped with other work: their numbers are low.**')"
  echo
  table
  versus
  echo
  echo "Connections the proxy opened to smtp-sink per run, as smtp-sink counted them (upstream.pool_size is the row's sessions; without pooling it would be one per message):"
  echo
  for row in "${rows[@]}"; do
    read -r mode s z rc <<<"$row"
    for path in "${paths[@]}"; do
      [[ -n ${ups[$row/$path]:-} ]] || continue
      echo "- $(mode_name "$mode"), $s sessions, $z bytes, $rc recipients, $path: $(echo ${ups[$row/$path]} | sed 's/ /, /g')."
    done
  done
)
echo
echo "$results_md"

if ((write)); then
  # A run with the Postfix relay or the full paths goes into a section of
  # its own, so that it does not replace the relay layer's results.
  marker=results
  [[ " ${paths[*]} " == *" postfix "* || " ${paths[*]} " == *" full"* ]] && marker=versus
  [[ -f $doc ]] || die "$doc does not exist"
  grep -q "^<!-- $marker:start -->\$" "$doc" && grep -q "^<!-- $marker:end -->\$" "$doc" ||
    die "$doc lacks the <!-- $marker:start --> / <!-- $marker:end --> markers"
  new=$(mktemp "$work/doc.XXXXXX")
  awk -v body="$results_md" -v m="$marker" '
    $0 == "<!-- " m ":start -->" {print; print ""; print body; print ""; skip = 1; next}
    $0 == "<!-- " m ":end -->" {skip = 0}
    !skip {print}' "$doc" >"$new"
  cat "$new" >"$doc"
  log "wrote the results into $doc"
fi
