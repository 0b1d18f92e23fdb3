# Attribution: the core gateway with the access log off and no security headers.
sed -i 's/access_log: access.log/access_log: off/' "$WORK/gw/gateway.yaml"
sed -i "1i security_headers: {headers: {X-Frame-Options: null, X-Content-Type-Options: null, X-XSS-Protection: null, Content-Security-Policy: null, Referrer-Policy: null, Permissions-Policy: null}, strict_transport_security: null, remove: []}" "$WORK/gw/policies/bench.yaml"
