# Two batch-signer settings against each other in the same alternating rounds: the gateway with
# BATCH (its signing_batch, e.g. "max_wait: 250us") against the same gateway with COMPARE_BATCH
# (default "max_wait: 0ms"). Both sign every response in batch mode with SIGN_ALG, with the
# signcost policy (filters, inspection, security headers).
#   SCENARIO=batchwait SIGN_ALG=hybrid BATCH="max_wait: 250us" THREADS=2 benches/load.sh
SIGN_MODE=batch
BATCH=${BATCH:?set BATCH, the first gateway signing_batch settings}
. benches/scenarios/signcost.sh
COMPARE_BATCH=${COMPARE_BATCH:-max_wait: 0ms}
SCENARIO="batchwait-$SIGN_ALG-{$BATCH}"
COMPARE_NAME="{$COMPARE_BATCH}"
COMPARE_SED="s/^signing_batch: .*/signing_batch: {$COMPARE_BATCH}/"
COMPARE_POLICY_SED=''
