#!/usr/bin/env bash
# Soak: a mixed load on one gateway for SOAK_SECONDS (default 600), with a policy reload every
# 10 s, each of the two upstream peers restarted once (two restarts), and a keystore rotation
# half-way. Four wrk processes run side by side, each sending one kind of request and counting
# every answer that is not the one that kind must get:
#
#   valid      GET /api/v1/items with an API key                       -> 200
#   denied     GET /api/v1/items without a key                         -> 401
#   inspected  GET /api/v1/items?q=1'+UNION+SELECT+password+FROM+users  -> 403
#   signed     GET /signed/items with a key (hybrid batch signature)    -> 200
#
# The gateway's RSS is sampled every 10 s; the script prints it after warm-up (60 s) and at the
# end, the unexpected answers and socket errors of each kind, and exits non-zero if any
# unexpected answer or error was seen or RSS grew more than 10% after warm-up.
#
#   benches/soak.sh                    # 10 minutes
#   SOAK_SECONDS=120 benches/soak.sh   # a short run
#   QV_BIN=/tmp/qv benches/soak.sh     # a given build instead of building one
#
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${SOAK_SECONDS:-600}
CONNS=${CONNS:-8}
WARMUP=60
[ "$SOAK_SECONDS" -gt 120 ] || WARMUP=$((SOAK_SECONDS / 4))

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
  else
    echo "benches/soak.sh needs wrk and nginx: sudo apt-get install -y wrk nginx-light" >&2; exit 1
  fi
fi
# QV_BIN runs a given build (a copy, so that building on meanwhile does not swap it).
if [ -n "${QV_BIN-}" ]; then QV=$QV_BIN; else
  cargo build --release --bin quantumvault >&2
  QV=$PWD/target/release/quantumvault
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; if [ -n "${SOAK_LOG-}" ]; then cp "$WORK/gw.log" "$SOAK_LOG"; fi; rm -rf "$WORK"; }
trap cleanup EXIT
UP1=18910; UP2=18911; GW=18912; ADMIN=18913

# Two nginx peers serving a fixed body.
start_nginx() { # dir port
  mkdir -p "$1"
  cat > "$1/nginx.conf" <<NGX
worker_processes 1;
daemon off;
master_process off;
pid $1/nginx.pid;
error_log $1/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$2; location / { default_type application/json; return 200 '{"ok":true}'; } }
}
NGX
  nginx -c "$1/nginx.conf" -p "$1" >/dev/null 2>&1 & echo $!
}
N1=$(start_nginx "$WORK/up1" $UP1); PIDS+=("$N1")
N2=$(start_nginx "$WORK/up2" $UP2); PIDS+=("$N2")

mkdir -p "$WORK/gw/policies"
cat > "$WORK/gw/gateway.yaml" <<YAML
listeners: [{address: 127.0.0.1:$GW}]
admin: {address: 127.0.0.1:$ADMIN}
worker_threads: 2
data_dir: data
log: {access_log: access.log}
shutdown: {grace_period: 0s, graceful_shutdown_timeout: 1s}
policies: [policies]
keys: {key_file: master.key}
YAML
head -c 32 /dev/urandom > "$WORK/gw/master.key"
KEY="qv_soak_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SHA=$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)
cat > "$WORK/gw/policies/soak.yaml" <<YAML
upstreams:
  - name: pool
    peers: ["127.0.0.1:$UP1", "127.0.0.1:$UP2"]
    retries: 1
    health_check: {path: /, interval: 1s, unhealthy_threshold: 1}
    passive_ejection: {consecutive_failures: 1, eject_for: 5s}
api_keys:
  - {id: soak, name: soak, tier: soak, sha256: $SHA, created: '2026-01-01T00:00:00Z'}
rate_limits:
  - {name: per-key, scope: api_key, rate: 100000000, per: 1s}
tiers:
  - {name: soak, rate_limits: [per-key]}
inspection: {mode: block}
routes:
  - name: signed
    path_prefix: /signed/
    upstream: pool
    auth: {required: true}
    signing: {enabled: true, algorithm: hybrid, mode: batch}
  - {name: api, path_prefix: /api/, upstream: pool, auth: {required: true}}
YAML
(cd "$WORK/gw" && "$QV" keys init --config gateway.yaml >/dev/null)
(cd "$WORK/gw" && exec "$QV" run --config gateway.yaml 2>"$WORK/gw.log") & GWPID=$!; PIDS+=("$GWPID")
for _ in $(seq 300); do curl -fso /dev/null -H "X-API-Key: $KEY" "http://127.0.0.1:$GW/api/v1/x" && break; sleep 0.1; done
code=$(curl -so /dev/null -w '%{http_code}' -H "X-API-Key: $KEY" "http://127.0.0.1:$GW/signed/x")
[ "$code" = 200 ] || { echo "gateway answered $code; see its log:" >&2; cat "$WORK/gw.log" >&2; exit 1; }

# One wrk per kind; its Lua script counts the answers that are not `expected`.
cat > "$WORK/count.lua" <<'LUA'
local expected = tonumber(os.getenv("EXPECT"))
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) unexpected = 0; statuses = "" end
function response(status, headers, body)
  if status ~= expected then
    unexpected = unexpected + 1
    if #statuses < 200 then statuses = statuses .. status .. " " end
  end
end
function done(summary, latency, requests)
  local n, detail = 0, ""
  for _, t in ipairs(threads) do
    n = n + t:get("unexpected")
    detail = detail .. t:get("statuses")
  end
  local e = summary.errors
  io.write(string.format("requests=%d unexpected=%d connect=%d read=%d write=%d timeout=%d p99_ms=%.2f %s\n",
    summary.requests, n, e.connect, e.read, e.write, e.timeout, latency:percentile(99) / 1000,
    n > 0 and ("statuses: " .. detail) or ""))
end
LUA
run_kind() { # name expected path [header]
  local hdr=()
  [ -n "${4-}" ] && hdr=(-H "$4")
  EXPECT=$2 wrk -t1 -c"$CONNS" -d"${SOAK_SECONDS}s" --timeout 5s -s "$WORK/count.lua" "${hdr[@]}" \
    "http://127.0.0.1:$GW$3" > "$WORK/wrk-$1.out" 2>&1 &
  PIDS+=($!)
}
run_kind valid 200 /api/v1/items "X-API-Key: $KEY"
run_kind denied 401 /api/v1/items
run_kind inspected 403 "/api/v1/items?q=1'+UNION+SELECT+password+FROM+users--" "X-API-Key: $KEY"
run_kind signed 200 /signed/items "X-API-Key: $KEY"
WRKS=("${PIDS[@]: -4}")

rss() { awk '/VmRSS/ {print $2}' "/proc/$GWPID/status"; }
# The anchor log's in-memory index (KiB): it grows with every signed batch, by design.
index_kib() { curl -fsS "http://127.0.0.1:$ADMIN/metrics" | awk '/^quantumvault_anchor_index_bytes / {printf "%d", $2 / 1024}'; }
started=$(date +%s)
RSS_WARM=""; RSS_MAX=0; reloads=0; restarts=0; rotated=0
while :; do
  sleep 10
  now=$(( $(date +%s) - started ))
  [ "$now" -ge "$SOAK_SECONDS" ] && break
  r=$(rss); [ "$r" -gt "$RSS_MAX" ] && RSS_MAX=$r
  if [ -z "$RSS_WARM" ] && [ "$now" -ge "$WARMUP" ]; then RSS_WARM=$r; RSS_MAX=$r; IDX_WARM=$(index_kib); fi
  # A reload every 10 s (the policy is touched, so the new generation is a real rebuild).
  printf '# reload %s\n' "$now" >> "$WORK/gw/policies/soak.yaml"
  curl -fsS -XPOST "http://127.0.0.1:$ADMIN/reload" >/dev/null && reloads=$((reloads + 1))
  # Each upstream peer restarted once: at a third and at two thirds of the run.
  if [ "$restarts" = 0 ] && [ "$now" -ge $((SOAK_SECONDS / 3)) ]; then
    kill "$N1" 2>/dev/null || true; wait "$N1" 2>/dev/null || true; sleep 2
    N1=$(start_nginx "$WORK/up1" $UP1); PIDS+=("$N1"); restarts=1
  elif [ "$restarts" = 1 ] && [ "$now" -ge $((2 * SOAK_SECONDS / 3)) ]; then
    kill "$N2" 2>/dev/null || true; wait "$N2" 2>/dev/null || true; sleep 2
    N2=$(start_nginx "$WORK/up2" $UP2); PIDS+=("$N2"); restarts=2
  fi
  # A keystore rotation half-way; the next reload loads the new keys.
  if [ "$rotated" = 0 ] && [ "$now" -ge $((SOAK_SECONDS / 2)) ]; then
    (cd "$WORK/gw" && "$QV" keys rotate --config gateway.yaml >/dev/null) && rotated=1
  fi
done
for p in "${WRKS[@]}"; do wait "$p" || true; done
RSS_END=$(rss)
sleep 2; IDX_END=$(index_kib)
fail=0
echo "soak: ${SOAK_SECONDS}s, $CONNS connections per kind, $reloads reloads, $restarts upstream restarts, rotation done=$rotated"
for k in valid denied inspected signed; do
  line=$(grep '^requests=' "$WORK/wrk-$k.out" || echo "requests=0 unexpected=missing")
  printf '%-10s %s\n' "$k" "$line"
  echo "$line" | grep -q 'unexpected=0 connect=0 read=0 write=0 timeout=0' || fail=1
done
grow=$(awk -v a="$RSS_WARM" -v b="$RSS_END" -v m="$RSS_MAX" 'BEGIN {printf "%.1f", (m - a) * 100 / a}')
echo "RSS after warm-up (${WARMUP}s) ${RSS_WARM} KiB, at the end ${RSS_END} KiB, highest after warm-up ${RSS_MAX} KiB (+${grow}%)"
echo "anchor log index after warm-up ${IDX_WARM:-0} KiB, at the end ${IDX_END:-0} KiB; RSS growth beside it: $(awk -v a="$RSS_WARM" -v m="$RSS_MAX" -v i0="${IDX_WARM:-0}" -v i1="${IDX_END:-0}" 'BEGIN {printf "%+.1f%%", (m - a - (i1 - i0)) * 100 / a}')"
awk -v g="$grow" 'BEGIN {exit !(g > 10)}' && { echo "RSS grew more than 10% after warm-up" >&2; fail=1; }
metrics=$(curl -fsS "http://127.0.0.1:$ADMIN/metrics")
echo "$metrics" | grep -E '^quantumvault_(config_reloads_total|batch_size_count|upstream_retries_total|unsigned_responses_total|anchor_log_size)' | head -20 || true
[ "$fail" = 0 ] && echo "soak: no unexpected answer, no socket error, RSS flat" || { echo "soak: FAILED" >&2; tail -20 "$WORK/gw.log" >&2; }
exit "$fail"
