# Cluster mode: the `filters` scenario with its per-key rate limit `shared: true`, decided by a
# redis-server on loopback (started here, one GCRA script call per request), against the same
# gateway with the limit local (in the same alternating rounds). The tier's daily quota is
# dropped from both, so the only Redis call is the shared limit's.
. benches/scenarios/filters.sh
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "SCENARIO=shared needs redis-server: sudo apt-get install -y redis-server" >&2; exit 1
  fi
fi
REDIS_PORT=18906
mkdir -p "$WORK/redis"
redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/redis" \
  --logfile "$WORK/redis/redis.log" & PIDS+=($!)
for _ in $(seq 100); do redis-cli -p $REDIS_PORT ping >/dev/null 2>&1 && break; sleep 0.05; done
cat >> "$WORK/gw/gateway.yaml" <<YAML
cluster: {redis: ["redis://127.0.0.1:$REDIS_PORT"], instance: bench, timeout: 50ms}
YAML
# SHARED_RESERVE=N: the shared limit takes N tokens per Redis call (`reserve`).
RESERVE=${SHARED_RESERVE:+, reserve: $SHARED_RESERVE}
sed -i "s/{name: per-key, scope: api_key, rate: 100000000, per: 1s}/{name: per-key, scope: api_key, rate: 100000000, per: 1s, shared: true$RESERVE}/; s/, daily_quota: 1000000000//" "$WORK/gw/policies/bench.yaml"
grep -q "shared: true" "$WORK/gw/policies/bench.yaml" || { echo "shared.sh: the filters policy changed" >&2; exit 1; }
COMPARE_SED='s/^//'
COMPARE_POLICY_SED="s/, shared: true$RESERVE//"
COMPARE_NAME="same, local limit"
# Redis runs on the same two cores: its CPU per call, from its own counters.
scenario_report() {
  redis-cli -p $REDIS_PORT info > "$WORK/redis/info.txt"
  awk -F: '/^used_cpu_sys:/ {s=$2} /^used_cpu_user:/ {u=$2} /^total_commands_processed:/ {n=$2}
    END {printf "redis-server: %d commands, %.1f us of CPU each (on the same cores)\n", n, (s + u) * 1e6 / n}' "$WORK/redis/info.txt"
}
