# Access control on: a 100,000-entry deny list, 10,000 API keys (every request authenticates),
# a per-IP and a per-key rate limit (high enough never to refuse, so every request pays for
# the check), validation and security headers (always on).
python3 - "$WORK/gw/policies" <<'PY'
import hashlib, os, sys
d = sys.argv[1]
with open(os.path.join(d, "deny.txt"), "w") as f:
    for i in range(100_000):
        n = 0x0B000000 + (i * 2654435761 >> 8) % (1 << 24)
        f.write("%d.%d.%d.%d\n" % (n >> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255))
with open(os.path.join(d, "keys.yaml"), "w") as f:
    f.write("api_keys:\n")
    for i in range(10_000):
        key = "qv_bench_%064d" % i
        f.write("  - {id: k%05d, name: bench, tier: bench, sha256: %s, created: '2026-01-01T00:00:00Z'}\n"
                % (i, hashlib.sha256(key.encode()).hexdigest()))
PY
cat > "$WORK/gw/policies/bench.yaml" <<YAML
upstreams:
  - name: fast
    peers: ["127.0.0.1:$UP_PORT"]
ip_filter:
  deny_files: [deny.txt]
rate_limits:
  - {name: per-ip, scope: client_ip, rate: 100000000, per: 1s}
  - {name: per-key, scope: api_key, rate: 100000000, per: 1s}
tiers:
  - {name: bench, rate_limits: [per-key], daily_quota: 1000000000}
routes:
  - {name: health, path_prefix: /healthz, upstream: fast}
  - {name: admin-api, hosts: ["admin.example.com"], path_prefix: /, upstream: fast}
  - name: v1
    path_prefix: /api/v1/
    upstream: fast
    auth: {required: true}
    rate_limits: [per-ip]
    validation: {methods: [GET, POST], content_types: [application/json]}
  - {name: api, path_prefix: /api/, upstream: fast}
  - {name: default, path_prefix: /, upstream: fast}
YAML
# The key every wrk request presents (hashed in keys.yaml as k05000).
WRK_HEADER="X-API-Key: qv_bench_$(printf '%064d' 5000)"
