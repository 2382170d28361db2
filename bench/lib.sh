# shellcheck shell=bash
# bench/lib.sh: what bench/relay.sh and bench/latency.sh share, sourced by
# both (not run on its own): logging, the run folder and the cleanup of
# every process a script starts, Postfix's smtp-source and smtp-sink
# fetched as a .deb and unpacked (never installed), free loopback ports,
# the machine-load checks, and starting smtp-sink, a private redis-server
# and optinproxy.
#
# The sourcing script sets, before sourcing: prog (its name, for messages),
# cache (the cache folder), life_limit (seconds a sink, Redis or proxy may
# live at most) and sessions (the proxy's upstream.pool_size). It then calls
# lib_init, which makes the run folder $work and sets the traps.

log() { printf '%s %s: %s\n' "$(date +%T)" "$prog" "$*" >&2; }
died=0
die() {
  log "FAILED: $*"
  died=1
  exit 1
}

# ---------------------------------------------------------------- cleanup

# pids are the processes the script started and has not stopped yet: the
# timeout wrappers of its sinks, Redis servers and proxies (each passes a
# signal on to the program it runs).
pids=()
cleanup() {
  local rc=$? cmd=$BASH_COMMAND pid
  trap - EXIT INT TERM
  # A command that failed under set -e, rather than a check that said why.
  ((rc == 0 || rc == 130 || rc == 143 || died)) || log "FAILED: exit status $rc from: $cmd"
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if ((rc != 0)) && [[ -d $work ]]; then
    # Keep the logs of a failed run, but not the bulk of the outboxes
    # and of Redis's data.
    find "$work" \( -name outbox -o -name redis-data \) -type d -prune -exec rm -rf {} + 2>/dev/null || true
    log "logs kept in $work"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
# lib_init makes the run folder $work under $cache and sets the traps
# that stop everything on exit.
lib_init() {
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/run.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# build_proxy builds ./cmd/optinproxy into $work/optinproxy, the binary
# start_proxy and import_consents run.
build_proxy() {
  log "building optinproxy"
  (cd "$root" && timeout 600 go build -o "$work/optinproxy" ./cmd/optinproxy) || die "go build ./cmd/optinproxy failed"
}

# status prints a /proc/PID/status field given in kB (VmRSS, VmHWM...) in bytes.
status() { awk -v f="$2:" '$1 == f { print $2 * 1024 }' "/proc/$1/status"; }

# stop ends one process this script started (a timeout wrapper, which
# passes the signal on) and forgets it.
stop() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}

# forget takes a process that has ended (and was waited for) off pids, so
# that the cleanup does not signal its number again.
forget() {
  local pid=$1 keep=() p
  for p in "${pids[@]}"; do
    [[ $p == "$pid" ]] || keep+=("$p")
  done
  pids=("${keep[@]}")
}

# ---------------------------------------------------------------- Postfix tools

pfdir=$cache/postfix
smtp_source=$pfdir/root/usr/sbin/smtp-source
smtp_sink=$pfdir/root/usr/sbin/smtp-sink
apt_updated=0

apt_download() {
  # apt-get download writes into the current directory.
  if timeout 300 apt-get -q download "$@" >>"$pfdir/apt.log" 2>&1; then
    return 0
  fi
  if ((!apt_updated)); then
    log "apt-get download $* failed; running apt-get update once"
    apt_updated=1
    local sudo=()
    ((EUID == 0)) || sudo=(sudo -n)
    timeout 600 "${sudo[@]}" apt-get -q update >>"$pfdir/apt.log" 2>&1 ||
      die "apt-get update failed (see $pfdir/apt.log)"
    timeout 300 apt-get -q download "$@" >>"$pfdir/apt.log" 2>&1 && return 0
  fi
  die "apt-get download $* failed (see $pfdir/apt.log)"
}

lib_path() {
  # Every folder of the unpacked packages that holds a shared library.
  find "$pfdir/root" -name '*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd:
}

missing_libs() { # ldd follows the libraries' own dependencies too
  LD_LIBRARY_PATH=$(lib_path) ldd "$smtp_source" "$smtp_sink" 2>/dev/null |
    awk '/not found/ {print $1}' | sort -u
}

is_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# lib_deps lists the lib* packages the unpacked .debs depend on (first of
# each alternative), without architecture or version.
lib_deps() {
  local deb
  for deb in "$pfdir"/debs/*.deb; do
    dpkg-deb -f "$deb" Depends Pre-Depends 2>/dev/null
  done | sed 's/^[A-Za-z-]*: //' | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:.*//; s/[[:space:]]//g' |
    grep '^lib' | sort -u
}

get_postfix_tools() {
  mkdir -p "$pfdir/debs"
  if [[ ! -x $smtp_source || ! -x $smtp_sink ]]; then
    log "fetching Postfix's smtp-source and smtp-sink (apt-get download postfix; dpkg -x; nothing is installed)"
    (cd "$pfdir/debs" && apt_download postfix)
    rm -rf "$pfdir/root"
    dpkg -x "$pfdir"/debs/postfix_*.deb "$pfdir/root"
  fi
  [[ -x $smtp_source && -x $smtp_sink ]] || die "the postfix package has no usr/sbin/smtp-source or smtp-sink"
  # Libraries of postfix's dependencies that this machine lacks: fetch
  # those packages the same way, a few rounds for their own dependencies.
  local round missing pkg new
  for round in $(seq 10); do
    missing=$(missing_libs)
    [[ -z $missing ]] && break
    new=()
    for pkg in $(lib_deps); do
      [[ $pkg == libc6 ]] && continue
      is_installed "$pkg" && continue
      compgen -G "$pfdir/debs/${pkg}_*.deb" >/dev/null && continue
      new+=("$pkg")
    done
    ((${#new[@]})) || die "smtp-source/smtp-sink lack $(echo $missing) and no uninstalled dependency of postfix is left to fetch"
    log "libraries missing: $(echo $missing); fetching ${new[*]}"
    (cd "$pfdir/debs" && apt_download "${new[@]}")
    for pkg in "${new[@]}"; do
      dpkg -x "$(compgen -G "$pfdir/debs/${pkg}_*.deb" | head -1)" "$pfdir/root"
    done
  done
  missing=$(missing_libs)
  [[ -z $missing ]] || die "smtp-source/smtp-sink still lack: $(echo $missing)"
  export LD_LIBRARY_PATH
  LD_LIBRARY_PATH=$(lib_path)
  postfix_version=$(basename "$pfdir"/debs/postfix_*.deb .deb | cut -d_ -f2)
}

# ---------------------------------------------------------------- helpers

# Ports: random ones outside the ephemeral range, with no socket of this
# machine on them (listening or not) at the time of asking.
read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range
declare -A handed_out=()
free_port() {
  local port tries
  for tries in $(seq 200); do
    if ((eph_lo > 12000)); then
      port=$((10000 + RANDOM % (eph_lo - 10000)))
    else
      port=$((eph_hi + 1 + RANDOM % (65000 - eph_hi)))
    fi
    [[ -n ${handed_out[$port]:-} ]] && continue
    if ! grep -qi ":$(printf '%04X' "$port") " /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      handed_out[$port]=1
      echo "$port"
      return 0
    fi
  done
  die "no free loopback port found"
}

# wait_listen PORT PID: until PORT accepts, or PID died, or 10 s.
wait_listen() {
  local port=$1 pid=$2 i
  for i in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || return 1
    if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# http_get PORT PATH prints the response body (bash only: no curl needed).
http_get() {
  timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3
    cat <&3' _ "$1" "$2" | tr -d '\r' | sed '1,/^$/d'
}

metric() { # PORT NAME-WITH-LABELS: the value, 0 when absent
  http_get "$1" /metrics | awk -v m="$2" '$1 == m {v = $2} END {printf "%.0f\n", v + 0}'
}

metric_float() {
  http_get "$1" /metrics | awk -v m="$2" '$1 == m {v = $2} END {print v + 0}'
}

# Wall time: $EPOCHREALTIME (microseconds) around each run. It is not a
# monotonic clock, so /proc/uptime (monotonic, 10 ms steps) is read too and
# a run where the two disagree by more than 30 ms + 1 % is refused. Both are
# read without a fork, so that only a step of the clock can come between.

cpu_stat() { # the machine's total and idle (idle + iowait) jiffies
  awk '$1 == "cpu" {t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6; exit}' /proc/stat
}

busy_pct() { # "TOTAL IDLE" before, after: percent of the machine busy between
  awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " ");
    printf "%.0f", (y[1] > x[1]) ? 100 * (1 - (y[2] - x[2]) / (y[1] - x[1])) : 0}'
}

# settle waits, up to settle_limit seconds (two minutes unless the script
# set it), until the machine is quiet while none of the benchmark's
# processes run (others share it: tests, builds), and sets m_base to how
# busy it was in the last second.
settle() {
  local i a b
  for i in $(seq "${settle_limit:-120}"); do
    a=$(cpu_stat)
    sleep 1
    b=$(cpu_stat)
    m_base=$(busy_pct "$a" "$b")
    ((m_base <= 10)) && return 0
    ((i == 1 && ${settle_limit:-120} > 1)) && log "the machine is ${m_base} % busy with nothing of the benchmark running; waiting up to ${settle_limit:-120} s"
  done
  log "WARNING: still ${m_base} % busy; measuring anyway"
}

# The benchmark's own CPU time, in clock ticks, to tell it from other load
# on the machine: child_ticks sums the processes that the given timeout
# wrappers run (smtp-sink, optinproxy); reaped_ticks is what this shell's
# finished children used (smtp-source), read with the times builtin in this
# shell, since a subshell starts from zero.
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)
child_ticks() {
  local p c t=0 v
  for p in "$@"; do
    for c in $(cat "/proc/$p/task/$p/children" 2>/dev/null); do
      v=$(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null) || continue
      t=$((t + ${v:-0}))
    done
  done
  echo "$t"
}
reaped_ticks() { # FILE: the output of times, taken in the main shell
  awk -v hz="$clk_tck" 'NR == 2 {
    for (i = 1; i <= NF; i++) {s = $i; sub(/s$/, "", s); split(s, ms, "m"); t += ms[1] * 60 + ms[2]}
    printf "%.0f", t * hz}' "$1"
}

sink_count() { # FILE: the last mesg= of smtp-sink's -c counters
  tr '\r' '\n' <"$1" | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2
}

start_sink() { # [ARG...]: more smtp-sink options; sets sink_port, sink_pid, sink_out
  local user=()
  ((EUID == 0)) && user=(-u nobody) # smtp-sink refuses to run as root without -u
  local attempt
  for attempt in 1 2 3; do
    sink_port=$(free_port)
    sink_out=$work/sink.$sink_port.out
    timeout "$life_limit" "$smtp_sink" "${user[@]}" "$@" -c -m 512 "127.0.0.1:$sink_port" 1024 >"$sink_out" 2>&1 &
    sink_pid=$!
    pids+=("$sink_pid")
    wait_listen "$sink_port" "$sink_pid" && return 0
    stop "$sink_pid"
  done
  die "smtp-sink did not start: $(cat "$sink_out")"
}

# start_redis starts a private redis-server on a free loopback port (never
# the machine's shared one) that persists as a production Redis would: the
# append-only file, fsynced every second, no RDB snapshots, its data in a
# folder of its own in the run folder. Sets redis_port, redis_pid,
# redis_dir, redis_url.
start_redis() {
  local attempt i up
  command -v redis-server >/dev/null || die "redis-server is not on PATH (Debian: apt-get install redis-server)"
  for attempt in 1 2 3; do
    redis_port=$(free_port)
    [[ -n $redis_port && $redis_port != 6379 ]] || continue
    redis_dir=$work/redis.$redis_port
    mkdir -p "$redis_dir/redis-data"
    timeout "$life_limit" redis-server --port "$redis_port" --bind 127.0.0.1 --protected-mode yes \
      --dir "$redis_dir/redis-data" --appendonly yes --appendfsync everysec --save "" \
      --daemonize no --logfile "$redis_dir/redis.log" >"$redis_dir/stdout.log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    up=0
    for i in $(seq 200); do
      kill -0 "$redis_pid" 2>/dev/null || break
      if redis_ping "$redis_port"; then
        up=1
        break
      fi
      sleep 0.05
    done
    if ((up)); then
      redis_url=redis://127.0.0.1:$redis_port/0
      return 0
    fi
    stop "$redis_pid"
  done
  die "redis-server did not start: $(tail -5 "$redis_dir/redis.log" "$redis_dir/stdout.log" 2>/dev/null)"
}

redis_ping() { # PORT: true when a Redis answers PING there (bash only: no redis-cli needed)
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "PING\r\n" >&3
    head -c 7 <&3' _ "$1" 2>/dev/null | grep -q '^+PONG'
}

# start_proxy URL [REDIS_URL [PURPOSE [DKIM_KEY]]] starts optinproxy with
# upstream.url URL, on the embedded store in its folder or, given
# REDIS_URL, on Redis, with policy.default_purpose PURPOSE (transactional
# unless given) and, given DKIM_KEY (a PEM file), signing every copy from
# bench.test with it.
# Loopback clients are trusted (the default), so no AUTH. Sets proxy_port,
# http_port, proxy_pid, proxy_dir; the generated admin token is in
# $proxy_dir/store/admin.token.
start_proxy() {
  local url=$1 redis=${2:-} purpose=${3:-transactional} dkim=${4:-} attempt i ready prev=""
  for attempt in 1 2 3; do
    proxy_port=$(free_port)
    http_port=$(free_port)
    proxy_dir=$work/proxy.$proxy_port
    mkdir -p "$proxy_dir/store"
    # A retry on the same Redis needs the ledger key an earlier attempt
    # made there: with a new one the store refuses to open.
    if [[ -n $redis && -n $prev && -f $prev/store/ledger.key ]]; then
      cp -p "$prev/store/ledger.key" "$proxy_dir/store/"
    fi
    prev=$proxy_dir
    proxy_config "$url" "$redis" "$purpose" "$dkim" >"$proxy_dir/config.yaml"
    (cd "$proxy_dir" && exec timeout "$life_limit" "$work/optinproxy" serve --config "$proxy_dir/config.yaml") \
      >"$proxy_dir/stdout.log" 2>"$proxy_dir/proxy.log" &
    proxy_pid=$!
    pids+=("$proxy_pid")
    ready=0
    for i in $(seq 200); do
      kill -0 "$proxy_pid" 2>/dev/null || break
      if http_get "$http_port" /readyz 2>/dev/null | grep -q '"ready"'; then
        ready=1
        break
      fi
      sleep 0.05
    done
    if ((ready)); then
      # It must run on the store asked for (its "listening" log line
      # says which; it may come a moment after the HTTP port answers).
      local want='"store":"embedded:'
      [[ -n $redis ]] && want='"store":"redis"'
      for i in $(seq 40); do
        grep -q "$want" "$proxy_dir/proxy.log" && return 0
        sleep 0.05
      done
      die "optinproxy is not on the store asked for ($want): $(grep -m1 '"listening"' "$proxy_dir/proxy.log")"
    fi
    stop "$proxy_pid"
  done
  die "optinproxy did not get ready: $(tail -5 "$proxy_dir/proxy.log")"
}

# server_pid prints the optinproxy process under start_proxy's timeout
# wrapper, whose memory and CPU are read.
server_pid() {
  local c
  c=$(tr -d " \n" <"/proc/$proxy_pid/task/$proxy_pid/children" 2>/dev/null)
  [[ $c =~ ^[0-9]+$ ]] || die "no optinproxy process under the timeout wrapper $proxy_pid"
  echo "$c"
}

# proxy_config URL REDIS_URL PURPOSE DKIM_KEY prints start_proxy's
# configuration file (it uses proxy_port, http_port and proxy_dir).
proxy_config() {
  local url=$1 redis=$2 purpose=$3 dkim=$4 per_ip=""
  # The client's sessions all come from 127.0.0.1, and with a new
  # connection per message, ones closing overlap ones opening: room for
  # both, above the default of 100 when needed.
  ((2 * sessions <= 100)) || per_ip=$'\n'"  max_connections_per_ip: $((2 * sessions))"
  cat <<EOF
smtp:
  listen: 127.0.0.1:$proxy_port
  hostname: relay.bench.test$per_ip
upstream:
  url: $url
  pool_size: $sessions
http:
  listen: 127.0.0.1:$http_port
store:
  path: $proxy_dir/store
EOF
  [[ -z $redis ]] || printf '  redis:\n    url: %s\n' "$redis"
  cat <<EOF
unsubscribe:
  secret_file: $proxy_dir/store/unsubscribe.key
EOF
  if [[ $purpose == transactional ]]; then
    cat <<EOF
# Every recipient is decided (one store lookup per message) and gets a
# receipt; transactional, so that smtp-source's one recipient, who never
# opted in, is allowed.
EOF
  else
    cat <<EOF
# Every recipient is decided (one store lookup per message) and gets a
# receipt; $purpose mail needs each recipient's consent.
EOF
  fi
  cat <<EOF
policy:
  default_purpose: $purpose
EOF
  [[ -z $dkim ]] || printf 'dkim:\n  - {domain: bench.test, selector: bench, key_file: %s}\n' "$dkim"
}

# make_dkim_key ALG FILE writes a new private key for DKIM signing, rsa
# (2048 bits, what most senders publish) or ed25519, to FILE.
make_dkim_key() {
  command -v openssl >/dev/null || die "openssl is not on PATH (the DKIM keys are made with it)"
  case $1 in
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$2" 2>/dev/null ;;
    ed25519) openssl genpkey -algorithm ed25519 -out "$2" 2>/dev/null ;;
    *) false ;;
  esac || die "openssl could not make a $1 key"
  chmod 600 "$2"
}

# ---------------------------------------------------------------- consents

# make_consents FILE FIRST COUNT FORMAT writes COUNT recipients, the
# printf FORMAT of FIRST, FIRST+1, ..., all granted the newsletter an hour
# ago, as `optinproxy import` takes them (policy_version: the default
# policy.current_version).
make_consents() {
  local granted
  granted=$(date -u -d '-1 hour' '+%Y-%m-%dT%H:%M:%SZ')
  awk -v first="$2" -v n="$3" -v f="$4" -v at="$granted" 'BEGIN {
    print "email,purpose,status,basis,source,granted_at,policy_version,ip"
    for (i = first; i < first + n; i++)
      printf f ",newsletter,granted,consent,import,%s,2026-01,192.0.2.%d\n", i, at, 1 + i % 250
  }' >"$1"
}

# import_consents FILE COUNT imports FILE into the running proxy's store
# (start_proxy) through its admin API, with the token the proxy generated
# in its data folder, and checks that all COUNT rows were applied.
import_consents() {
  local out token
  token=$(<"$proxy_dir/store/admin.token")
  out=$(cd "$proxy_dir" && OPTINPROXY_TOKEN=$token timeout "${import_limit:-600}" "$work/optinproxy" import \
    --addr "127.0.0.1:$http_port" "$1" 2>&1) || die "optinproxy import failed: $out"
  [[ $out == "$2 rows: $2 applied, "* || ($2 == 1 && $out == "1 row: 1 applied, "*) ]] ||
    die "optinproxy import: want $2 rows applied, got: $out"
}

# ---------------------------------------------------------------- a Postfix relay

# start_postfix SINK_PORT starts a stock Postfix relay from the unpacked
# package (get_postfix_tools), relaying everything from 127.0.0.0/8 to
# smtp-sink at [127.0.0.1]:SINK_PORT. It is a private instance: its own
# configuration folder (-c), queue and data folders in the run folder,
# smtpd on a free loopback port, no chroot, no local delivery, its log in
# a file (postlogd) rather than syslog. Nothing outside the run folder is
# touched: no postfix user or postdrop group is made; the daemons run as
# nobody (mail_owner) and the queue's setgid group is mail. postdrop and
# postqueue need not be setgid, since mail only comes in over SMTP. The
# master runs in the foreground (`postfix start-fg`), so that it is among
# pids; stop_postfix ends it with `postfix stop`. Must run as root. Sets
# postfix_port, postfix_dir, postfix_pid (the timeout wrapper) and
# postfix_master (the master daemon's pid).
start_postfix() {
  local sink=$1 attempt i conf
  ((EUID == 0)) || die "the postfix path must run as root (Postfix's master starts its daemons as mail_owner)"
  getent passwd nobody >/dev/null && getent group mail >/dev/null ||
    die "the postfix path runs Postfix as user nobody with setgid group mail; this machine lacks one of them"
  for attempt in 1 2 3; do
    postfix_port=$(free_port)
    postfix_dir=$work/postfix.$postfix_port
    conf=$postfix_dir/conf
    mkdir -p "$conf/dynamicmaps.cf.d" "$conf/postfix-files.d" "$postfix_dir/queue" "$postfix_dir/data"
    # The package's installer puts these in /etc/postfix (meta_directory).
    cp "$pfdir/root/etc/postfix/postfix-files" "$pfdir/root/usr/share/postfix/dynamicmaps.cf" "$conf/"
    # The daemons, as nobody, open files in the data folder by its full
    # path: the run folder (mktemp's 0700) must let them through.
    chown nobody "$postfix_dir/data"
    chmod go+x "$work"
    postfix_main_cf "$sink" >"$conf/main.cf"
    postfix_master_cf >"$conf/master.cf"
    timeout "$life_limit" "$pfdir/root/usr/sbin/postfix" -c "$conf" start-fg >"$postfix_dir/start.log" 2>&1 &
    postfix_pid=$!
    pids+=("$postfix_pid")
    postfix_master=""
    if wait_listen "$postfix_port" "$postfix_pid"; then
      for i in $(seq 100); do
        postfix_master=$(tr -d ' ' <"$postfix_dir/queue/pid/master.pid" 2>/dev/null) && [[ -n $postfix_master ]] && break
        sleep 0.05
      done
      [[ -n $postfix_master ]] && return 0
    fi
    stop_postfix
  done
  die "Postfix did not start: $(tail -5 "$postfix_dir/start.log" "$postfix_dir/maillog" 2>/dev/null)"
}

# stop_postfix stops the instance start_postfix started, and its wrapper,
# and waits (up to 10 s) for its daemons, which the master only signals.
stop_postfix() {
  local kids="" pid i
  [[ -n ${postfix_master:-} ]] && kids=$(cat "/proc/$postfix_master/task/$postfix_master/children" 2>/dev/null || true)
  timeout 60 "$pfdir/root/usr/sbin/postfix" -c "$postfix_dir/conf" stop >>"$postfix_dir/start.log" 2>&1 || true
  stop "$postfix_pid"
  for pid in $kids; do
    for i in $(seq 200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
  done
}

# postfix_main_cf SINK_PORT prints the instance's main.cf: Postfix's
# defaults but for what a private relay needs (paths, users, addresses).
postfix_main_cf() {
  cat <<EOF
compatibility_level = 3.6
meta_directory = $postfix_dir/conf
queue_directory = $postfix_dir/queue
data_directory = $postfix_dir/data
command_directory = $pfdir/root/usr/sbin
daemon_directory = $pfdir/root/usr/lib/postfix/sbin
shlib_directory = $pfdir/root/usr/lib/postfix
# The package's programs find their libraries through LD_LIBRARY_PATH (their
# RUNPATH is /usr/lib/postfix); Postfix passes on only what is named here.
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME LD_LIBRARY_PATH=$LD_LIBRARY_PATH
mail_owner = nobody
setgid_group = mail
default_privs = daemon
maillog_file = $postfix_dir/maillog
maillog_file_prefixes = $postfix_dir
myhostname = postfix.bench.test
mydomain = bench.test
mydestination =
local_recipient_maps =
local_transport = error:no local delivery here
alias_maps =
alias_database =
relay_domains =
relayhost = [127.0.0.1]:$1
mynetworks = 127.0.0.0/8
inet_interfaces = loopback-only
inet_protocols = ipv4
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
EOF
}

# postfix_master_cf prints the instance's master.cf: the services of the
# package's master.cf that a relay uses, unchrooted, smtpd on postfix_port.
postfix_master_cf() {
  cat <<EOF
127.0.0.1:$postfix_port inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}

# postfix_ticks prints the CPU clock ticks that the Postfix instance used
# so far: its master, the daemons it reaped, and those still running.
postfix_ticks() {
  local t c v
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postfix_master/stat" 2>/dev/null) || t=0
  for c in $(cat "/proc/$postfix_master/task/$postfix_master/children" 2>/dev/null); do
    v=$(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null) || continue
    t=$((t + ${v:-0}))
  done
  echo "${t:-0}"
}

# smoke_postfix checks that smtp-source and smtp-sink run and that the
# sink counts what it gets.
smoke_postfix() {
  local i
  start_sink
  timeout 30 "$smtp_source" -s 2 -l 100 -m 10 -M bench.test "127.0.0.1:$sink_port" >"$work/smoke.out" 2>&1 ||
    die "smtp-source does not run: $(cat "$work/smoke.out")"
  for i in $(seq 40); do
    [[ $(sink_count "$sink_out") == 10 ]] && break
    sleep 0.05
  done
  [[ $(sink_count "$sink_out") == 10 ]] || die "smtp-sink did not count the 10 smoke-test messages"
  stop "$sink_pid"
}
