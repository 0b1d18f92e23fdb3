# What signing costs on the whole gateway: the filters scenario (100k deny entries, 10k keys,
# auth, limits, validation, security headers) plus inspection in block mode, signing every
# response with SIGN_ALG (default ecdsa-p256), against the same gateway with signing off, in the
# same alternating rounds (the second gateway's policy has `signing: {enabled: false}`).
. benches/scenarios/filters.sh
SIGN_ALG=${SIGN_ALG:-ecdsa-p256}
# SIGN_MODE=batch signs through the batch signer (docs/batch-signing.md); SIGN_EXTRA adds
# settings to the signing block (e.g. "inline_ecdsa: true"), BATCH the gateway's signing_batch.
SIGN_MODE=${SIGN_MODE:-inline}
SIGN_EXTRA=${SIGN_EXTRA:+, $SIGN_EXTRA}
head -c 32 /dev/urandom > "$WORK/gw/master.key"
printf 'keys: {key_file: master.key}\n' >> "$WORK/gw/gateway.yaml"
sed -i "1i inspection: {mode: block}" "$WORK/gw/policies/bench.yaml"
sed -i "1i signing: {enabled: true, algorithm: $SIGN_ALG, mode: $SIGN_MODE$SIGN_EXTRA}" "$WORK/gw/policies/bench.yaml"
if [ -n "${BATCH-}" ]; then printf 'signing_batch: {%s}\n' "$BATCH" >> "$WORK/gw/gateway.yaml"; fi
./target/release/quantumvault keys init --config "$WORK/gw/gateway.yaml" >/dev/null
SCENARIO="signcost-$SIGN_ALG-$SIGN_MODE-${BODY_BYTES}B"
COMPARE_NAME="unsigned"
COMPARE_SED='s/^policies: \[policies\]/policies: [policies]/'
COMPARE_POLICY_SED='s/^signing: {enabled: true/signing: {enabled: false/'
