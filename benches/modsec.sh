#!/usr/bin/env bash
# Side-by-side: QuantumVault's request inspection against nginx + ModSecurity 3 + OWASP CRS
# (paranoia level 1, default anomaly thresholds), both in front of the same nginx upstream on
# loopback, on the same requests.
#
#   benches/modsec.sh                        # corpus replay, then 3 alternating wrk rounds of 10 s
#   DURATION=3s ROUNDS=1 benches/modsec.sh   # quick
#   QV_BIN=/tmp/qv-bench-bin benches/modsec.sh   # a copy of the binary (default
#                                            # target/release/quantumvault, built if missing)
#   OUT=/tmp/modsec.jsonl benches/modsec.sh  # per-request results as JSONL (and the ids of the
#                                            # differences in /tmp/modsec.missed.txt)
#   CORPUS_ATTACKS=a.jsonl CORPUS_BENIGN=b.jsonl benches/modsec.sh   # other files, same format
#   REPLAY_ONLY=1 / WRK_ONLY=1               # only one of the two parts
#   QV_P2=0                                  # no second QuantumVault at paranoia 2
#   CRS_ALLOWED_METHODS=crs                  # keep CRS's own method allowlist (see below)
#   KEEP=1                                   # keep the whole work directory (confs, logs)
#   BODY_DELAY=0.01                          # replay: send each body 10 ms after its head
#   UPSTREAM_EARLY=1                         # an upstream that answers before reading the body
#
# What runs (ports 18910-18915, 127.0.0.1 only):
#   18910 upstream: nginx answering 200 with a small JSON body to any method and path, after
#         reading the whole request body (echo_read_request_body), as an application does.
#         QuantumVault sends the head upstream at once and holds the body until it is inspected;
#         an upstream that answers before the body (nginx `return`, as in load.sh; UPSTREAM_EARLY=1)
#         has its 200 relayed before the verdict, and the 403 is lost (the body is still never
#         forwarded). nginx + ModSecurity reads the whole body before it connects upstream.
#   18911 nginx + ModSecurity (2 worker processes), reverse proxy to the upstream
#   18912 QuantumVault, inspection mode block, paranoia 1, 2 worker threads (admin 18913)
#   18914 QuantumVault, the same at paranoia 2 (admin 18915), unless QV_P2=0
# Only inspection decides on QuantumVault (no rate limits, keys, content-type allowlist; body
# limits 4 MiB and more). ModSecurity: Debian's recommended modsecurity.conf with
# SecRuleEngine On (SecRequestBodyAccess On, its JSON and XML body-processor rules), CRS's
# crs-setup.conf (Debian's copy of crs-setup.conf.example) with paranoia level 1 and inbound
# threshold 5 set explicitly, and every CRS rule file; the audit log (relevant only, JSON) and
# all else goes in a mktemp -d work directory, nothing into /etc. One deviation from a bare
# CRS: tx.allowed_methods also allows PUT, PATCH and DELETE (CRS's default, GET HEAD POST
# OPTIONS, blocks every REST write with rule 911100, a method policy rather than inspection);
# CRS_ALLOWED_METHODS=crs keeps CRS's default, CRS_ALLOWED_METHODS="..." sets another list.
#
# Prints: the versions and settings; markdown tables of detection per class and per location
# (403 and, apart, 400 "refused" per gateway), false positives per location and the rules
# behind them, the differences between the gateways (counts; ids with notes in a file); then
# wrk (2 threads, 32 connections) req/s and p99 per gateway per round and the medians, for a
# plain GET /api/items?id=42 and a POST of a benign 2 KiB JSON body (the inspect_2k_json_request
# body of benches/filters.rs), and the ratio QV/ModSecurity. Every wrk run is checked to have had
# only 2xx answers. Every process started here is stopped on exit (also on Ctrl-C or failure).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=2
CONNS=32
QV_BIN=${QV_BIN:-target/release/quantumvault}
QV_P2=${QV_P2:-1}
CORPUS_ATTACKS=${CORPUS_ATTACKS:-tests/corpus/attacks.jsonl}
CORPUS_BENIGN=${CORPUS_BENIGN:-tests/corpus/benign.jsonl}
CRS_ALLOWED_METHODS=${CRS_ALLOWED_METHODS:-GET HEAD POST OPTIONS PUT PATCH DELETE}
REPLAY_ONLY=${REPLAY_ONLY-}
WRK_ONLY=${WRK_ONLY-}
KEEP=${KEEP-}
OUT=${OUT-}
REPLAY_THREADS=${REPLAY_THREADS:-4}
BODY_DELAY=${BODY_DELAY:-0}
UPSTREAM_EARLY=${UPSTREAM_EARLY-}
# The Host every request carries (a numeric Host would itself score in CRS, rule 920350).
HOST_HEADER=${HOST_HEADER:-api.example.com}
UP_PORT=18910; MS_PORT=18911; QV_PORT=18912; QV_ADMIN=18913; QV2_PORT=18914; QV2_ADMIN=18915

MODSEC_SO=/usr/lib/nginx/modules/ngx_http_modsecurity_module.so
ECHO_SO=/usr/lib/nginx/modules/ngx_http_echo_module.so
CRS_DIR=/usr/share/modsecurity-crs
CRS_SETUP=/etc/modsecurity/crs/crs-setup.conf

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || [ ! -f "$MODSEC_SO" ] || [ ! -f "$ECHO_SO" ] || [ ! -d "$CRS_DIR/rules" ]; then
  PKGS="nginx libnginx-mod-http-modsecurity libnginx-mod-http-echo modsecurity-crs wrk"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
  else
    echo "benches/modsec.sh needs $PKGS: sudo apt-get install -y --no-install-recommends $PKGS" >&2; exit 1
  fi
fi
need python3 || { echo "benches/modsec.sh needs python3" >&2; exit 1; }
need curl || { echo "benches/modsec.sh needs curl" >&2; exit 1; }
# Debian ships crs-setup.conf.example as /etc/modsecurity/crs/crs-setup.conf; elsewhere it may
# sit next to the rules.
[ -f "$CRS_SETUP" ] || CRS_SETUP=$CRS_DIR/crs-setup.conf.example
RECOMMENDED=
for f in /etc/modsecurity/modsecurity.conf-recommended /usr/share/nginx/docs/modsecurity/modsecurity.conf \
         /usr/share/doc/modsecurity-crs/examples/modsecurity.conf-recommended /etc/nginx/modsecurity.conf; do
  [ -f "$f" ] && { RECOMMENDED=$f; break; }
done
UNICODE_MAP=
for f in /etc/modsecurity/unicode.mapping /usr/share/nginx/docs/modsecurity/unicode.mapping /etc/nginx/unicode.mapping; do
  [ -f "$f" ] && { UNICODE_MAP=$f; break; }
done
for f in "$MODSEC_SO" "$ECHO_SO" "$CRS_SETUP" "$RECOMMENDED" "$UNICODE_MAP"; do
  [ -n "$f" ] && [ -f "$f" ] || { echo "missing a ModSecurity file ($f): check dpkg -L libnginx-mod-http-modsecurity modsecurity-crs" >&2; exit 1; }
done

if [ ! -x "$QV_BIN" ]; then
  cargo build --release --bin quantumvault >&2
  QV_BIN=${CARGO_TARGET_DIR:-target}/release/quantumvault
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$KEEP" ]; then
    echo "work directory kept: $WORK" >&2
  elif [ -z "$OUT" ] && [ -f "$WORK/results.jsonl" ]; then
    # The results are the one thing worth keeping; everything else goes.
    find "$WORK" -mindepth 1 -maxdepth 1 ! -name 'results.jsonl' ! -name 'missed.txt' -exec rm -rf {} +
    echo "results kept in $WORK (results.jsonl, missed.txt)" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -n "$OUT" ]; then RESULTS=$OUT; MISSED=${OUT%.jsonl}.missed.txt; else RESULTS=$WORK/results.jsonl; MISSED=$WORK/missed.txt; fi

# nginx writes its default error log and temp files to compiled-in paths unless told otherwise.
temp_paths() { # dir -> nginx directives keeping every temp file under dir
  local t
  for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $1/tmp_$t;"; done
}
# Workers of a root master drop to nobody, which cannot enter the 0700 work directory.
USER_LINE=; [ "$(id -u)" = 0 ] && USER_LINE="user root;"

# --- the upstream: one nginx process answering 200 to everything --------------------------
mkdir -p "$WORK/up"
if [ -n "$UPSTREAM_EARLY" ]; then
  UP_ANSWER="return 200 '{\"ok\":true}';"
else
  UP_ANSWER="echo_read_request_body; echo -n '{\"ok\":true}';"
fi
cat > "$WORK/up/nginx.conf" <<NGX
load_module $ECHO_SO;
worker_processes 1;
daemon off;
master_process off;
pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_max_body_size 16m;
$(temp_paths "$WORK/up")
  server {
    listen 127.0.0.1:$UP_PORT;
    location / { default_type application/json; $UP_ANSWER }
  }
}
NGX
nginx -e "$WORK/up/error.log" -p "$WORK/up" -c "$WORK/up/nginx.conf" & PIDS+=($!)

# --- nginx + ModSecurity + CRS --------------------------------------------------------------
MS=$WORK/modsec
mkdir -p "$MS/msc_tmp"
cp "$UNICODE_MAP" "$MS/unicode.mapping"
# The recommended conf as shipped, with the engine on and every path moved into $MS.
sed -e 's/^SecRuleEngine .*/SecRuleEngine On/' \
    -e 's/^SecRequestBodyAccess .*/SecRequestBodyAccess On/' \
    -e "s#^SecAuditLog .*#SecAuditLog $MS/audit.log#" \
    -e "s#^SecTmpDir .*#SecTmpDir $MS/msc_tmp/#" \
    -e "s#^SecDataDir .*#SecDataDir $MS/msc_tmp/#" \
    -e "s#^SecUnicodeMapFile [^ ]*#SecUnicodeMapFile $MS/unicode.mapping#" \
    -e 's/^SecStatusEngine .*/SecStatusEngine Off/' \
    "$RECOMMENDED" > "$MS/modsecurity.conf"
grep -q '^SecRuleEngine On' "$MS/modsecurity.conf" && grep -q 'requestBodyProcessor=JSON' "$MS/modsecurity.conf" \
  && grep -q 'requestBodyProcessor=XML' "$MS/modsecurity.conf" \
  || { echo "$RECOMMENDED does not look like modsecurity.conf-recommended" >&2; exit 1; }
# One JSON line per relevant (4xx but 404, 5xx) transaction: rule ids for the report.
echo "SecAuditLogFormat JSON" >> "$MS/modsecurity.conf"
cp "$CRS_SETUP" "$MS/crs-setup.conf"
# Paranoia, thresholds and methods are set below; a locally edited crs-setup.conf that already
# sets them would clash (duplicate rule id), so say so rather than guess.
if sed 's/#.*//' "$MS/crs-setup.conf" | grep -Eq 'id:(900000|900110|900200)\b'; then
  echo "$CRS_SETUP sets rule 900000, 900110 or 900200 itself (edited locally?); cannot pin the settings" >&2; exit 1
fi
METHODS_RULE=
if [ "$CRS_ALLOWED_METHODS" != crs ]; then
  METHODS_RULE="SecAction \"id:900200,phase:1,nolog,pass,t:none,setvar:'tx.allowed_methods=$CRS_ALLOWED_METHODS'\""
fi
cat > "$MS/main.conf" <<CONF
Include $MS/modsecurity.conf
Include $MS/crs-setup.conf
SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=1"
SecAction "id:900110,phase:1,nolog,pass,t:none,setvar:tx.inbound_anomaly_score_threshold=5,setvar:tx.outbound_anomaly_score_threshold=4"
$METHODS_RULE
Include $CRS_DIR/rules/*.conf
CONF
cat > "$MS/nginx.conf" <<NGX
load_module $MODSEC_SO;
$USER_LINE
worker_processes 2;
daemon off;
pid $MS/nginx.pid;
error_log $MS/error.log warn;
events { worker_connections 4096; }
http {
  access_log $MS/access.log;
  keepalive_requests 1000000;
  client_max_body_size 16m;
$(temp_paths "$MS")
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; }
  modsecurity on;
  modsecurity_rules_file $MS/main.conf;
  server {
    listen 127.0.0.1:$MS_PORT;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
    }
  }
}
NGX
nginx -e "$MS/error.log" -p "$MS" -c "$MS/nginx.conf" -t -q 2>"$MS/t.log" \
  || { echo "nginx + ModSecurity config test failed:" >&2; cat "$MS/t.log" >&2; exit 1; }
nginx -e "$MS/error.log" -p "$MS" -c "$MS/nginx.conf" & PIDS+=($!)

# --- QuantumVault ---------------------------------------------------------------------------
start_qv() { # dir port admin paranoia
  mkdir -p "$1/policies"
  cat > "$1/gateway.yaml" <<YAML
listeners: [{address: 127.0.0.1:$2}]
admin: {address: 127.0.0.1:$3}
worker_threads: 2
data_dir: data
log: {access_log: access.log}
shutdown: {grace_period: 0s, graceful_shutdown_timeout: 1s}
policies: [policies]
YAML
  # Policy-wide inspection applies to every route; nothing else filters.
  cat > "$1/policies/bench.yaml" <<YAML
inspection: {mode: block, paranoia: $4, max_body: 4MiB}
validation: {max_body: 16MiB}
upstreams:
  - name: up
    peers: ["127.0.0.1:$UP_PORT"]
routes:
  - {name: default, path_prefix: /, upstream: up}
YAML
  "$QV_BIN" run --config "$1/gateway.yaml" 2>"$1.log" & PIDS+=($!)
}
start_qv "$WORK/qv" $QV_PORT $QV_ADMIN 1
GWS=("modsec=http://127.0.0.1:$MS_PORT" "qv-p1=http://127.0.0.1:$QV_PORT")
if [ "$QV_P2" = 1 ]; then
  start_qv "$WORK/qv2" $QV2_PORT $QV2_ADMIN 2
  GWS+=("qv-p2=http://127.0.0.1:$QV2_PORT")
fi

url_of() { local g; for g in "${GWS[@]}"; do if [ "${g%%=*}" = "$1" ]; then echo "${g#*=}"; fi; done; }
log_of() { case $1 in modsec) echo "$MS/error.log";; qv-p1) echo "$WORK/qv.log";; qv-p2) echo "$WORK/qv2.log";; esac; }

for port in $UP_PORT $MS_PORT $QV_PORT $([ "$QV_P2" = 1 ] && echo $QV2_PORT); do
  ok=
  for _ in $(seq 300); do
    curl -fso /dev/null -H "Host: $HOST_HEADER" "http://127.0.0.1:$port/healthz" && { ok=1; break; }
    sleep 0.1
  done
  [ -n "$ok" ] || { echo "nothing answers 200 on 127.0.0.1:$port; logs:" >&2; tail -n 20 "$WORK"/*.log "$WORK"/*/error.log >&2 || true; exit 1; }
done

# The benign 2 KiB JSON body of benches/filters.rs (inspect_2k_json_request).
python3 - "$WORK/body.json" <<'PY'
import sys
items = ['{"id":"%08x-4b1e-9c3a","name":"O\'Brien\'s order %d","note":"please select the blue one and drop it at the door","url":"https://shop.example.com/p/%d?ref=mail%%20campaign","qty":%d}' % (i, i, i, i) for i in range(12)]
open(sys.argv[1], "w").write('{"customer":{"email":"anna+shop@example.com","items":[%s]}}' % ",".join(items))
PY
POST_PATH="/api/v1/orders?expand=items&lang=en"
UA="Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0"

# Sanity: benign passes (200), an obvious attack is blocked (403), on every gateway.
check() { # name expected-code curl-args...
  local name=$1 want=$2 code; shift 2
  code=$(curl -so "$WORK/check.body" -w '%{http_code}' --path-as-is -g -H "Host: $HOST_HEADER" -H "User-Agent: $UA" -H "Accept: application/json" "$@")
  if [ "$code" != "$want" ]; then
    echo "$name answered $code, not $want, for: $*" >&2; head -c 400 "$WORK/check.body" >&2; echo >&2
    tail -n 20 "$(log_of "$name")" >&2 || true; exit 1
  fi
}
for g in "${GWS[@]}"; do
  n=${g%%=*}; u=${g#*=}
  check "$n" 200 "$u/api/items?id=42"
  check "$n" 403 "$u/api/items?q=1'%20OR%20'1'='1"
  check "$n" 200 -X POST -H "Content-Type: application/json" -H "Referer: https://shop.example.com/cart?step=2" --data-binary "@$WORK/body.json" "$u$POST_PATH"
done

ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
echo "## QuantumVault vs nginx + ModSecurity + OWASP CRS"
echo
echo "- nginx $(nginx -v 2>&1 | sed 's#.*/##'), libnginx-mod-http-modsecurity $(ver libnginx-mod-http-modsecurity), libmodsecurity3 $(ver libmodsecurity3), modsecurity-crs $(ver modsecurity-crs)"
echo "- ModSecurity: $(basename "$RECOMMENDED") (recommended) with SecRuleEngine On; CRS paranoia 1, inbound threshold 5; allowed methods: $([ "$CRS_ALLOWED_METHODS" = crs ] && echo "CRS default (GET HEAD POST OPTIONS)" || echo "$CRS_ALLOWED_METHODS"); nginx 2 workers"
echo "- QuantumVault: $QV_BIN, inspection block, paranoia 1$([ "$QV_P2" = 1 ] && echo " (qv-p1) and 2 (qv-p2)"), 2 worker threads"
echo "- upstream: nginx, $([ -n "$UPSTREAM_EARLY" ] && echo "answering at once (return 200)" || echo "answering 200 after reading the body (echo_read_request_body)"); replay bodies $([ "$BODY_DELAY" = 0 ] && echo "in the same write as the head" || echo "sent ${BODY_DELAY}s after the head"); Host: $HOST_HEADER"
echo "- checked on each: GET /api/items?id=42 -> 200, ?q=1' OR '1'='1 -> 403, 2 KiB JSON POST -> 200"
echo

# --- corpus replay --------------------------------------------------------------------------
if [ -z "$WRK_ONLY" ]; then
  echo "### Corpus replay: $CORPUS_ATTACKS, $CORPUS_BENIGN"
  echo
  GW_ARGS=(); for g in "${GWS[@]}"; do GW_ARGS+=(--gateway "$g"); done
  python3 benches/replay.py "${GW_ARGS[@]}" --audit "modsec=$MS/audit.log" --host "$HOST_HEADER" \
    --threads "$REPLAY_THREADS" --body-delay "$BODY_DELAY" --out "$RESULTS" --missed "$MISSED" "$CORPUS_ATTACKS" "$CORPUS_BENIGN"
  echo
  echo "per-request results: $RESULTS"
  echo
fi
[ -n "$REPLAY_ONLY" ] && exit 0

# --- throughput -----------------------------------------------------------------------------
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
local f = io.open("$WORK/body.json", "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Referer"] = "https://shop.example.com/cart?step=2"
LUA
run_wrk() { # url [lua] -> "rps p99_ms non2xx errors"
  local lua=()
  [ -n "${2-}" ] && lua=(-s "$2")
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${lua[@]}" -H "Host: $HOST_HEADER" -H "User-Agent: $UA" \
    -H "Accept: application/json" "$1" 2>/dev/null > "$WORK/wrk.out"
  awk '
    /Requests\/sec/ {rps=$2}
    /Non-2xx or 3xx/ {bad=$NF}
    /Socket errors/ {gsub(",", ""); err=$4+$6+$8+$10}
    /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p99=v}
    END {printf "%s %s %d %d\n", rps, p99, bad, err}' "$WORK/wrk.out"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
NAMES=(); for g in "${GWS[@]}"; do NAMES+=("${g%%=*}"); done
declare -A RPS P99
BAD=0
echo "### Throughput: wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS alternating rounds"
echo
for r in $(seq "$ROUNDS"); do
  for req in get post; do
    line="round $r $req:"
    for n in "${NAMES[@]}"; do
      u=$(url_of "$n")
      if [ $req = get ]; then read -r rps p99 bad err < <(run_wrk "$u/api/items?id=42")
      else read -r rps p99 bad err < <(run_wrk "$u$POST_PATH" "$WORK/post.lua"); fi
      RPS[$n.$req]+="$rps "; P99[$n.$req]+="$p99 "
      line+=$(printf ' %s %8.0f req/s p99 %6.2f ms |' "$n" "$rps" "$p99")
      if [ "$bad" != 0 ] || [ "$err" != 0 ]; then
        line+=" ($bad non-2xx, $err socket errors!)"; BAD=1
      fi
    done
    echo "$line"
  done
done
echo
printf '| %-44s |' "request (median of $ROUNDS)"; for n in "${NAMES[@]}"; do printf ' %12s | %9s |' "$n req/s" "p99 ms"; done
for n in "${NAMES[@]}"; do [ "$n" = modsec ] || printf ' %14s |' "$n/modsec"; done; echo
printf '|%s|' "$(printf -- '-%.0s' $(seq 46))"; for _ in "${NAMES[@]}"; do printf -- '-------------:|----------:|'; done
for n in "${NAMES[@]}"; do [ "$n" = modsec ] || printf -- '---------------:|'; done; echo
for req in get post; do
  label="GET /api/items?id=42"; [ $req = post ] && label="POST $POST_PATH ($(wc -c < "$WORK/body.json") B JSON)"
  printf '| %-44s |' "$label"
  declare -A MED=()
  for n in "${NAMES[@]}"; do
    MED[$n]=$(tr ' ' '\n' <<<"${RPS[$n.$req]}" | grep . | median)
    printf ' %12.0f | %9.2f |' "${MED[$n]}" "$(tr ' ' '\n' <<<"${P99[$n.$req]}" | grep . | median)"
  done
  for n in "${NAMES[@]}"; do
    [ "$n" = modsec ] || printf ' %14s |' "$(awk -v a="${MED[$n]}" -v b="${MED[modsec]}" 'BEGIN {printf "%.2f", a/b}')"
  done
  echo
done
if [ "$BAD" = 1 ]; then
  echo; echo "WARNING: some wrk runs had non-2xx answers or socket errors; their figures are not comparable" >&2
  exit 1
fi
