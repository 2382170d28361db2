#!/usr/bin/env bash
# bench/groups.sh: a CPU profile of the in-process benchmarks, summed by
# what the proxy was doing, as a share of the whole profile (client, proxy
# and sink together) and of the proxy's own samples (pprof label
# role=proxy; the garbage collector's workers carry no label and are
# given for the whole process).
#
#   go test -run '^$' -bench MessageCost/rcpts=1/full -benchtime 8000x \
#     -cpuprofile /tmp/cpu.out -o /tmp/bench.test ./bench/
#   bench/groups.sh /tmp/bench.test /tmp/cpu.out
#
# Given a heap profile (-memprofile, -memprofilerate 1) and the number of
# messages of the run, it prints allocations and bytes per message by the
# same groups instead. Heap profiles carry no labels, so the client, the
# sink and the benchmark's setup are left out by their functions; the
# sink's go-smtp command reading is not, and counts with the proxy's
# (the direct sub-benchmark bounds it: under 60 allocations a message).
#
#   go test -run '^$' -bench MessageCost/rcpts=1/full -benchtime 2000x \
#     -memprofile /tmp/mem.out -memprofilerate 1 -o /tmp/bench.test ./bench/
#   bench/groups.sh /tmp/bench.test /tmp/mem.out 2000
#
# A sample counts in a group when a function of its stack matches the
# group's pattern (and none of the group's exclusions); the groups are
# chosen not to overlap, and "other" is what none of them took.
set -euo pipefail

if (($# != 2 && $# != 3)); then
  echo "usage: bench/groups.sh TEST-BINARY CPU-PROFILE, or TEST-BINARY HEAP-PROFILE MESSAGES" >&2
  exit 2
fi
bin=$1 prof=$2 msgs=${3:-}

# seconds FILTER...: the samples pprof keeps under the filters, in seconds
# (or allocations, or bytes).
seconds() {
  go tool pprof -top -nodecount=1000000 -nodefraction=0 -edgefraction=0 "$@" "$bin" "$prof" 2>/dev/null |
    awk '/Showing nodes accounting for/ {print secs($5); exit}
      function secs(v,  u) {sub(/,$/, "", v); u = v; sub(/[a-zA-Z]+$/, "", v); sub(/^[0-9.]+/, "", u)
        return v * (u == "ms" ? 0.001 : u == "us" ? 0.000001 : u == "min" ? 60 : u == "kB" ? 1e3 : u == "MB" ? 1e6 : u == "GB" ? 1e9 : 1)}'
}

sign='go-msgauth|optinproxy/dkim\.'
groups=(
  "SMTP server: reading commands and DATA from the client;go-smtp\.\(\*lineLimitReader\)\.Read|go-smtp\.\(\*dataReader\)\.Read|net/textproto\.\(\*Reader\)|smtpproxy\.\(\*budget\)\.read;"
  "SMTP server: writing replies to the client;go-smtp\.\(\*Conn\)\.writeResponse;"
  "SMTP client: the copy to the upstream, signing excluded;optinproxy/upstream\.;$sign"
  "MIME: parsing the header, stamping, writing the copy with its link;smtpproxy\.parseMessage|smtpproxy\.\(\*message\)|unsubscribe\.WriteCopy|go-message/textproto;$sign"
  "unsubscribe token (HKDF, AES-GCM);unsubscribe\.\(\*Tokens\);"
  "DKIM signing;$sign;"
  "store: lookup, receipts, delivery marks (Redis and go-redis);redisstore\.|go-redis|optin\.\(\*Batcher\);"
  "decisions (the policy, without the store);smtpproxy\.\(\*Server\)\.decide|redisstore\.|go-redis;countingLedger"
  "logging (log/slog);log/slog;"
  "metrics (Prometheus);prometheus;"
)
if [[ -n $msgs ]]; then
  # The client's, the sink's and the benchmark's own allocations.
  notproxy='bench\.enforce$|bench\.session|bench\.drive|bench\.sinkSession|bench\.startSink'
  printf '| what the proxy was doing | allocations per message | bytes per message |\n| --- | ---: | ---: |\n'
  row() { # NAME FOCUS IGNORE
    local ign=$notproxy a b
    [[ -n $3 ]] && ign="$3|$notproxy"
    a=$(seconds -sample_index=alloc_objects -focus "$2" -ignore "$ign")
    b=$(seconds -sample_index=alloc_space -focus "$2" -ignore "$ign")
    awk -v n="$1" -v a="$a" -v b="$b" -v m="$msgs" 'BEGIN {printf "| %s | %.0f | %.0f |\n", n, a / m, b / m}'
  }
  for g in "${groups[@]}"; do
    IFS=';' read -r name focus ignore <<<"$g"
    row "$name" "$focus" "$ignore"
  done
  row "**the proxy, all** (every stack but the client's, the sink's DATA and the setup)" '.' ''
  exit 0
fi

total=$(seconds)
proxy=$(seconds -tagfocus role=proxy)
printf '| what the proxy was doing | CPU s | of the whole profile | of the proxy |\n| --- | ---: | ---: | ---: |\n'
sum=0
for g in "${groups[@]}"; do
  IFS=';' read -r name focus ignore <<<"$g"
  args=(-tagfocus role=proxy -focus "$focus")
  [[ -n $ignore ]] && args+=(-ignore "$ignore")
  s=$(seconds "${args[@]}")
  sum=$(awk -v a="$sum" -v b="$s" 'BEGIN {print a + b}')
  awk -v n="$name" -v s="$s" -v t="$total" -v p="$proxy" 'BEGIN {printf "| %s | %.2f | %.1f %% | %.1f %% |\n", n, s, 100 * s / t, 100 * s / p}'
done
awk -v s="$sum" -v t="$total" -v p="$proxy" 'BEGIN {printf "| other: the rest of the session, the Go scheduler | %.2f | %.1f %% | %.1f %% |\n", p - s, 100 * (p - s) / t, 100 * (p - s) / p}'
awk -v t="$total" -v p="$proxy" 'BEGIN {printf "| **the proxy, all** | %.2f | %.1f %% | 100 %% |\n", p, 100 * p / t}'
for role in client sink; do
  s=$(seconds -tagfocus role=$role)
  awk -v n="$role" -v s="$s" -v t="$total" 'BEGIN {printf "| (the %s) | %.2f | %.1f %% | |\n", n, s, 100 * s / t}'
done
s=$(seconds -tagignore role=. -focus 'runtime\.gcBgMarkWorker')
awk -v s="$s" -v t="$total" 'BEGIN {printf "| (garbage collector workers, no label) | %.2f | %.1f %% | |\n", s, 100 * s / t}'
s=$(seconds -tagignore role=. -ignore 'runtime\.gcBgMarkWorker')
awk -v s="$s" -v t="$total" 'BEGIN {printf "| (the rest without a label: the scheduler, timers, the benchmark) | %.2f | %.1f %% | |\n", s, 100 * s / t}'
