# Request inspection on every route (block mode), on the core gateway.
sed -i "1i inspection: {mode: block}" "$WORK/gw/policies/bench.yaml"
