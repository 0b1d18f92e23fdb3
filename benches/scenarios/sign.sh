# Response signing on every route: SIGN_ALG=ecdsa-p256 | ml-dsa-65 | hybrid | none.
# (BODY_BYTES sets the upstream's response size, e.g. 1024 or 65536.)
SIGN_ALG=${SIGN_ALG:-hybrid}
head -c 32 /dev/urandom > "$WORK/gw/master.key"
cat >> "$WORK/gw/gateway.yaml" <<YAML
keys: {key_file: master.key}
YAML
if [ "$SIGN_ALG" != none ]; then
  sed -i "1i signing: {enabled: true, algorithm: $SIGN_ALG}" "$WORK/gw/policies/bench.yaml"
fi
./target/release/quantumvault keys init --config "$WORK/gw/gateway.yaml" >/dev/null
SCENARIO="sign-$SIGN_ALG-${BODY_BYTES}B"
