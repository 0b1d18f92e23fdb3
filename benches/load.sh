#!/usr/bin/env bash
# Whole-proxy load benchmark: the gateway against a bare Pingora pass-through (benches/bare_pingora.rs)
# built in the same run with the same allocator and server conf, both in front of the same nginx
# upstream on loopback, driven by the same wrk, alternating runs. Prints req/s, p99 and the ratio.
#
#   benches/load.sh                 # 3 rounds of 10 s each, 1 worker thread, 32 connections
#   ROUNDS=5 DURATION=20s THREADS=2 CONNS=64 benches/load.sh
#   SCENARIO=filters benches/load.sh   # (later scenarios add filters, signing, inspection)
#   SCENARIO=monitoring benches/load.sh  # also a second gateway with monitoring off, same rounds
#   FLOOR=1 benches/load.sh         # also bare Pingora plus only the required forwarding headers
#   INSTR=1 DURATION=6s benches/load.sh  # instructions per request under callgrind, not timing
#   RATES="10 50 100" SCENARIO=signcost ... # also both gateways at shares of the peak (open-ish loop)
#   SCENARIO=inspect REQUEST=json2k benches/load.sh  # inspection on against off, POSTs of 2 KiB JSON
#   COMPARE_BIN=/tmp/qv-before SCENARIO=signcost benches/load.sh  # this build against another one
#   SCENARIO=batchwait BATCH="max_wait: 250us" benches/load.sh  # two batch-signer settings, same rounds
#
# A scenario may set COMPARE_SED: then a second gateway runs with the same files, its
# gateway.yaml edited by that sed expression (and its policy files by COMPARE_POLICY_SED, if set),
# measured in the same alternating rounds, and its figures and the gateway/second-gateway ratio
# are printed too.
#
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-1}
CONNS=${CONNS:-32}
BODY_BYTES=${BODY_BYTES:-60}
SCENARIO=${SCENARIO:-core}
# FLOOR=1 also runs the bare proxy in its `forwarding` mode (timeouts and the required forwarding
# headers, nothing else) in the same rounds: the floor any gateway built on Pingora's
# header API starts from.
FLOOR=${FLOOR-}
# INSTR=1 counts instructions instead of timing: every proxy runs under valgrind's callgrind
# and, after a warm-up, the user-space instructions it executes for DURATION of wrk traffic
# (8 connections) are divided by the requests served. Unlike req/s on shared cores, this figure
# repeats to within a percent; it leaves out the kernel's share (system calls are the same for
# both, see the README).
INSTR=${INSTR-}
# PIN=1 pins the load generator and the upstream to CPU 0 and the proxy under test to CPU 1: the
# proxy's own CPU becomes the bottleneck, so the ratio shows its per-request cost at its
# harshest. Unpinned (the default), all three share both cores, as in the README's figures.
PIN=${PIN-}
if [ -n "$INSTR" ]; then
  if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
    else
      echo "INSTR=1 needs valgrind: sudo apt-get install -y valgrind" >&2; exit 1
    fi
  fi
  ON_LOAD=""; ON_PROXY="valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes --callgrind-out-file=%q{CG_OUT} -q"
elif [ -n "$PIN" ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  ON_LOAD="taskset -c 0"; ON_PROXY="taskset -c 1"
else
  ON_LOAD=""; ON_PROXY=""
fi
UP_PORT=18900; BASE_PORT=18901; GW_PORT=18902; ADMIN_PORT=18903; GW2_PORT=18904; ADMIN2_PORT=18905
COMPARE_SED=''
COMPARE_POLICY_SED=''
COMPARE_NAME=

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
  else
    echo "benches/load.sh needs wrk and nginx: sudo apt-get install -y wrk nginx-light" >&2; exit 1
  fi
fi

cargo build --release --bin quantumvault --example bare_pingora >&2
TARGET=${CARGO_TARGET_DIR:-target}

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; if [ -n "${KEEP_WORK-}" ]; then rm -rf "$KEEP_WORK"; cp -r "$WORK" "$KEEP_WORK"; fi; rm -rf "$WORK"; }
trap cleanup EXIT

# REQUEST=json2k: every wrk request is a POST of the 2 KiB JSON body of benches/filters.rs
# (inspect_2k_json_request) instead of a GET, so that inspection has a body to read.
WRK_ARGS=()
if [ "${REQUEST:-get}" = json2k ]; then
  python3 - > "$WORK/body2k.json" <<'PY'
items = [
    '{"id":"%08x-4b1e-9c3a","name":"O\'Brien\'s order %d","note":"please select the blue one and drop it at the door","url":"https://shop.example.com/p/%d?ref=mail%%20campaign","qty":%d}' % (i, i, i, i)
    for i in range(12)
]
print('{"customer":{"email":"anna+shop@example.com","items":[%s]}}' % ",".join(items), end="")
PY
  cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$WORK/body2k.json", "rb"); wrk.body = f:read("*a"); f:close()
LUA
  WRK_ARGS=(-s "$WORK/post.lua")
elif [ "${REQUEST:-get}" != get ]; then
  echo "REQUEST is get or json2k" >&2; exit 1
fi

# The fast upstream: nginx serving a fixed body (from the page cache).
mkdir -p "$WORK/nginx"
head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x' > "$WORK/nginx/body.json"
# Small bodies come from memory (`return`); nginx caps that string, so large ones from a file.
if [ "$BODY_BYTES" -le 4096 ]; then
  BODY_DIRECTIVE="return 200 '$(cat "$WORK/nginx/body.json")';"
else
  BODY_DIRECTIVE="root $WORK/nginx; try_files /body.json =404;"
fi
cat > "$WORK/nginx/nginx.conf" <<NGX
worker_processes 1;
daemon off;
master_process off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP_PORT;
    location / { default_type application/json; $BODY_DIRECTIVE }
  }
}
NGX
$ON_LOAD nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" & PIDS+=($!)

# The gateway: routing, metrics and the access log (to a file) on.
mkdir -p "$WORK/gw/policies"
cat > "$WORK/gw/gateway.yaml" <<YAML
listeners: [{address: 127.0.0.1:$GW_PORT}]
admin: {address: 127.0.0.1:$ADMIN_PORT}
worker_threads: $THREADS
data_dir: data
log: {access_log: access.log}
shutdown: {grace_period: 0s, graceful_shutdown_timeout: 1s}
policies: [policies]
YAML
cat > "$WORK/gw/policies/bench.yaml" <<YAML
upstreams:
  - name: fast
    peers: ["127.0.0.1:$UP_PORT"]
routes:
  - {name: health, path_prefix: /healthz, upstream: fast}
  - {name: admin-api, hosts: ["admin.example.com"], path_prefix: /, upstream: fast}
  - {name: v1, path_prefix: /api/v1/, upstream: fast}
  - {name: api, path_prefix: /api/, upstream: fast}
  - {name: default, path_prefix: /, upstream: fast}
YAML
WRK_HEADER="X-Bench: 1"
if [ -f "benches/scenarios/$SCENARIO.sh" ]; then . "benches/scenarios/$SCENARIO.sh"; fi
# COMPARE_BIN=path: the second gateway is another build (say, the commit before a change) with
# the same configuration as the first, in the same alternating rounds.
COMPARE_BIN=${COMPARE_BIN-}
if [ -n "$COMPARE_BIN" ]; then
  COMPARE_SED='s/^//'; COMPARE_POLICY_SED=''; COMPARE_NAME=${COMPARE_BIN_NAME:-other build}
fi

CG_OUT=$WORK/bare.cg $ON_PROXY "$TARGET"/release/examples/bare_pingora 127.0.0.1:$BASE_PORT 127.0.0.1:$UP_PORT "$THREADS" 2>"$WORK/bare.log" & BASE_PID=$!; PIDS+=($BASE_PID)
CG_OUT=$WORK/gw.cg $ON_PROXY "$TARGET"/release/quantumvault run --config "$WORK/gw/gateway.yaml" 2>"$WORK/gw.log" & GW_PID=$!; PIDS+=($GW_PID)
PORTS="$UP_PORT $BASE_PORT $GW_PORT"
COMPARE=
if [ -n "$FLOOR" ] && [ -n "$COMPARE_SED" ]; then
  echo "FLOOR=1 and SCENARIO=$SCENARIO both bring a comparison; run them separately" >&2; exit 1
fi
if [ -n "$FLOOR" ]; then
  COMPARE=1; COMPARE_NAME="bare + forwarding"
  CG_OUT=$WORK/gw2.cg $ON_PROXY "$TARGET"/release/examples/bare_pingora 127.0.0.1:$GW2_PORT 127.0.0.1:$UP_PORT "$THREADS" forwarding 2>"$WORK/floor.log" & GW2_PID=$!; PIDS+=($GW2_PID)
  PORTS="$PORTS $GW2_PORT"
elif [ -n "$COMPARE_SED" ]; then
  COMPARE=1
  cp -r "$WORK/gw" "$WORK/gw2"
  sed -i "s/127.0.0.1:$GW_PORT/127.0.0.1:$GW2_PORT/; s/127.0.0.1:$ADMIN_PORT/127.0.0.1:$ADMIN2_PORT/" "$WORK/gw2/gateway.yaml"
  sed -i "$COMPARE_SED" "$WORK/gw2/gateway.yaml"
  if [ -n "$COMPARE_POLICY_SED" ]; then sed -i "$COMPARE_POLICY_SED" "$WORK/gw2/policies/"*.yaml; fi
  CG_OUT=$WORK/gw2.cg $ON_PROXY "${COMPARE_BIN:-$TARGET/release/quantumvault}" run --config "$WORK/gw2/gateway.yaml" 2>"$WORK/gw2.log" & GW2_PID=$!; PIDS+=($GW2_PID)
  PORTS="$PORTS $GW2_PORT"
fi

for port in $PORTS; do
  for _ in $(seq 600); do curl -fso /dev/null -H "$WRK_HEADER" "http://127.0.0.1:$port/api/v1/x" && break; sleep 0.1; done
done
# Every measured request must succeed (a refusal would be cheaper than proxying).
code=$(curl -so /dev/null -w '%{http_code}' -H "$WRK_HEADER" "http://127.0.0.1:$GW_PORT/api/v1/items")
[ "$code" = 200 ] || { echo "gateway answered $code for the benchmark request; see $WORK/gw.log" >&2; cat "$WORK/gw.log" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime of the proxy, in ticks

run_wrk() { # url pid -> "rps p99_ms proxy_cpu_us_per_request"
  local before after
  before=$(cpu_ticks "$2")
  $ON_LOAD wrk -t1 -c"$CONNS" -d"$DURATION" --latency "${WRK_ARGS[@]}" -H "$WRK_HEADER" "$1" 2>/dev/null > "$WORK/wrk.out"
  after=$(cpu_ticks "$2")
  awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /requests in/ {n=$1}
    /Requests\/sec/ {rps=$2}
    /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p99=v}
    END {printf "%s %s %.1f\n", rps, p99, ticks / hz * 1e6 / n}' "$WORK/wrk.out"
}

if [ -n "$INSTR" ]; then
  count_instr() { # name port pid cg-file -> prints instructions per request
    wrk -t1 -c8 -d2s -H "$WRK_HEADER" "http://127.0.0.1:$2/api/v1/items" >/dev/null 2>&1
    callgrind_control -i on "$3" >/dev/null 2>&1 || { echo "callgrind_control -i on $3 failed" >&2; exit 1; }
    wrk -t1 -c8 -d"$DURATION" -H "$WRK_HEADER" "http://127.0.0.1:$2/api/v1/items" 2>/dev/null > "$WORK/wrk.out"
    callgrind_control -i off "$3" >/dev/null 2>&1 || { echo "callgrind_control -i off $3 failed" >&2; exit 1; }
    rm -f "$4".*
    callgrind_control -d "$3" >/dev/null 2>&1 || { echo "callgrind_control -d $3 failed" >&2; exit 1; }
    local n dump= totals
    for _ in $(seq 50); do dump=$(ls "$4".* 2>/dev/null | head -1) && [ -n "$dump" ] && break; sleep 0.2; done
    [ -n "$dump" ] || { echo "no callgrind dump for $1" >&2; exit 1; }
    sleep 1 # let the dumps (one per thread) finish writing
    n=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
    local files
    files=$(ls "$4".* | wc -l)
    totals=$(for f in "$4".*; do callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; done)
    # Every thread's dump must have a total (one still being written would drop out of the sum).
    [ -n "$n" ] && [ "$(echo "$totals" | grep -c .)" = "$files" ] || { echo "could not read the counts for $1" >&2; exit 1; }
    # All threads, and the busiest one alone (with THREADS=1, the worker that serves requests).
    echo "$totals" | awk -v n="$n" -v name="$1" '{sum += $1; if ($1 > max) max = $1}
      END {printf "| %-26s | %12.0f | %12.0f | %10d |\n", name, sum / n, max / n, n}'
  }
  echo "scenario=$SCENARIO instructions per request (callgrind, user space), wrk -c8 for $DURATION"
  printf '| %-26s | %12s | %12s | %10s |\n' "proxy" "instr/req" "busiest thr." "requests"
  count_instr "bare Pingora" "$BASE_PORT" "$BASE_PID" "$WORK/bare.cg"
  [ -n "$COMPARE" ] && count_instr "${COMPARE_NAME}" "$GW2_PORT" "$GW2_PID" "$WORK/gw2.cg"
  count_instr "quantumvault ($SCENARIO)" "$GW_PORT" "$GW_PID" "$WORK/gw.cg"
  exit 0
fi

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -a B_RPS G_RPS B_P99 G_P99 B_CPU G_CPU C_RPS C_P99 C_CPU
for r in $(seq "$ROUNDS"); do
  read -r brps bp99 bcpu < <(run_wrk "http://127.0.0.1:$BASE_PORT/api/v1/items" "$BASE_PID")
  read -r grps gp99 gcpu < <(run_wrk "http://127.0.0.1:$GW_PORT/api/v1/items" "$GW_PID")
  B_RPS+=("$brps"); B_P99+=("$bp99"); G_RPS+=("$grps"); G_P99+=("$gp99"); B_CPU+=("$bcpu"); G_CPU+=("$gcpu")
  printf 'round %d: baseline %8.0f req/s p99 %6.2f ms %5.1f us/req | gateway %8.0f req/s p99 %6.2f ms %5.1f us/req\n' \
    "$r" "$brps" "$bp99" "$bcpu" "$grps" "$gp99" "$gcpu" >&2
  if [ -n "$COMPARE" ]; then
    read -r crps cp99 ccpu < <(run_wrk "http://127.0.0.1:$GW2_PORT/api/v1/items" "$GW2_PID")
    C_RPS+=("$crps"); C_P99+=("$cp99"); C_CPU+=("$ccpu")
    printf '         %s %8.0f req/s p99 %6.2f ms %5.1f us/req\n' "$COMPARE_NAME" "$crps" "$cp99" "$ccpu" >&2
  fi
done

b=$(printf '%s\n' "${B_RPS[@]}" | median); g=$(printf '%s\n' "${G_RPS[@]}" | median)
bp=$(printf '%s\n' "${B_P99[@]}" | median); gp=$(printf '%s\n' "${G_P99[@]}" | median)
bc=$(printf '%s\n' "${B_CPU[@]}" | median); gc=$(printf '%s\n' "${G_CPU[@]}" | median)
ratio=$(awk -v g="$g" -v b="$b" 'BEGIN {printf "%.3f", g/b}')
echo
echo "scenario=$SCENARIO rounds=$ROUNDS duration=$DURATION threads=$THREADS conns=$CONNS body=${BODY_BYTES}B (medians)"
printf '| %-26s | %10s | %9s | %16s |\n' "proxy" "req/s" "p99 ms" "proxy CPU us/req"
printf '| %-26s | %10.0f | %9.2f | %16.1f |\n' "bare Pingora" "$b" "$bp" "$bc"
printf '| %-26s | %10.0f | %9.2f | %16.1f |\n' "quantumvault ($SCENARIO)" "$g" "$gp" "$gc"
if [ -n "$COMPARE" ]; then
  c=$(printf '%s\n' "${C_RPS[@]}" | median); cp=$(printf '%s\n' "${C_P99[@]}" | median)
  cc=$(printf '%s\n' "${C_CPU[@]}" | median)
  label="quantumvault ($COMPARE_NAME)"; [ -n "$FLOOR" ] && label="$COMPARE_NAME"
  printf '| %-26s | %10.0f | %9.2f | %16.1f |\n' "$label" "$c" "$cp" "$cc"
  echo "$COMPARE_NAME/baseline throughput ratio: $(awk -v c="$c" -v b="$b" 'BEGIN {printf "%.3f", c/b}')"
  echo "gateway/$COMPARE_NAME throughput ratio: $(awk -v g="$g" -v c="$c" 'BEGIN {printf "%.3f", g/c}')"
  # Per-round pairs, since the two gateways ran back to back in each round.
  for i in "${!G_RPS[@]}"; do
    awk -v g="${G_RPS[$i]}" -v c="${C_RPS[$i]}" -v r="$((i + 1))" 'BEGIN {printf "  round %d: gateway/comparison %.3f\n", r, g/c}'
  done
fi
echo "gateway/baseline throughput ratio: $ratio"
# A scenario may add figures of its own (say, the CPU of a server it started).
if declare -F scenario_report >/dev/null; then scenario_report; fi

# RATES="10 50 100" (with a COMPARE scenario): after the rounds, load both gateways at each
# percentage of the gateway's measured peak (the median above). Below 100% each wrk connection
# waits between requests (wrk's Lua delay(): CONNS / rate seconds, less the time a request took
# on the unsigned gateway at peak), so both gateways see about the same offered rate; 100% is
# the closed loop. Prints the rate reached, p99 on each, the p99 the gateway adds, and the
# batch signer's responses per batch over that run (from the gateway's admin metrics); then,
# for a batch-signing gateway, its mean wait for a batch, batch signing and append+sync times
# and the shares over 1 ms, from its own histograms over the same runs.
if [ -n "${RATES-}" ] && [ -n "$COMPARE" ]; then
  batch_sums() { curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '
    /^quantumvault_batch_leaves_sum/ {s += $2} /^quantumvault_batch_leaves_count/ {c += $2} END {printf "%d %d\n", s, c}'; }
  # Where a batched response's time goes, from the gateway's own histograms: the wait for its
  # batch to close, the batch's signing (signatures, append and fdatasync), and the append and
  # fdatasync alone; sums, counts, and counts at or under 1 ms (the histogram's `le="0.001"`).
  batch_times() { curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '
    /^quantumvault_batch_wait_seconds_sum/ {ws += $2} /^quantumvault_batch_wait_seconds_count/ {wc += $2}
    /^quantumvault_batch_signing_seconds_sum/ {ss += $2} /^quantumvault_batch_signing_seconds_count/ {sc += $2}
    /^quantumvault_batch_signing_seconds_bucket.*le="0.001"/ {s1 += $2}
    /^quantumvault_anchor_latency_seconds_sum/ {as += $2} /^quantumvault_anchor_latency_seconds_count/ {ac += $2}
    /^quantumvault_anchor_latency_seconds_bucket.*le="0.001"/ {a1 += $2}
    END {printf "%.6f %d %.6f %d %d %.6f %d %d\n", ws, wc, ss, sc, s1, as, ac, a1}'; }
  TIMES=()
  run_rate() { # url rate -> "rps p99_ms"
    local lua="$WORK/rate.lua"
    if [ "$2" = 0 ]; then echo 'function delay() return 0 end' > "$lua"
    else awk -v c="$CONNS" -v r="$2" 'BEGIN {d = c / r * 1000; printf "function delay() return %d end\n", d}' > "$lua"; fi
    $ON_LOAD wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$lua" -H "$WRK_HEADER" "$1" 2>/dev/null > "$WORK/wrk.out"
    awk '/Requests\/sec/ {rps=$2}
      /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p99=v}
      END {printf "%s %s\n", rps, p99}' "$WORK/wrk.out"
  }
  echo
  echo "offered load as a share of the gateway's peak ($g req/s), $CONNS connections, $DURATION each"
  printf '| %5s | %12s | %12s | %14s | %14s | %10s | %12s |\n' "load" "gateway req/s" "$COMPARE_NAME req/s" "gateway p99 ms" "$COMPARE_NAME p99" "added p99" "resp./batch"
  for pct in $RATES; do
    rate=0; [ "$pct" -lt 100 ] && rate=$(awk -v g="$g" -v p="$pct" 'BEGIN {printf "%d", g * p / 100}')
    read -r s0 c0 < <(batch_sums)
    t0=$(batch_times)
    read -r rg pg < <(run_rate "http://127.0.0.1:$GW_PORT/api/v1/items" "$rate")
    read -r s1 c1 < <(batch_sums)
    TIMES+=("$pct $t0 $(batch_times)")
    read -r rc pc < <(run_rate "http://127.0.0.1:$GW2_PORT/api/v1/items" "$rate")
    printf '| %4s%% | %12.0f | %12.0f | %14.2f | %14.2f | %10.2f | %12s |\n' "$pct" "$rg" "$rc" "$pg" "$pc" \
      "$(awk -v a="$pg" -v b="$pc" 'BEGIN {print a - b}')" "$(awk -v s=$((s1 - s0)) -v c=$((c1 - c0)) 'BEGIN {if (c > 0) printf "%.1f", s / c; else print "-"}')"
  done
  if [ "$(printf '%s\n' "${TIMES[@]}" | awk '{n += $13 - $5} END {print n + 0}')" -gt 0 ]; then
    echo
    echo "where a batch-signed response's time goes, from the gateway's histograms over each run above"
    printf '| %5s | %16s | %17s | %19s | %17s | %19s |\n' "load" "wait for batch ms" "batch signing ms" "batches over 1 ms" "append+sync ms" "syncs over 1 ms"
    for row in "${TIMES[@]}"; do
      echo "$row" | awk '{
        wc = $11 - $3; sc = $13 - $5; ac = $16 - $8
        if (sc == 0) next
        printf "| %4s%% | %16.3f | %17.3f | %18.2f%% | %17.3f | %18.2f%% |\n", $1,
          wc ? ($10 - $2) / wc * 1e3 : 0, ($12 - $4) / sc * 1e3, (1 - ($14 - $6) / sc) * 100,
          ac ? ($15 - $7) / ac * 1e3 : 0, ac ? (1 - ($17 - $9) / ac) * 100 : 0 }'
    done
  fi
fi
