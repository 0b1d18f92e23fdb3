# The core target's configuration (routing, metrics and logging on): routing, metrics and
# statistics, the access log to a file, and no access control, so the default security headers
# are switched off too (`core` is the same gateway with them on).
sed -i "1i security_headers: {headers: {X-Frame-Options: null, X-Content-Type-Options: null, X-XSS-Protection: null, Content-Security-Policy: null, Referrer-Policy: null, Permissions-Policy: null}, strict_transport_security: null, remove: []}" "$WORK/gw/policies/bench.yaml"
