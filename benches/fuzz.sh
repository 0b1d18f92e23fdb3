#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a fixed time each, one at a time, and prints per target
# the runs executed and whether it found anything. Exits non-zero if any target crashed.
#
#   FUZZ_SECONDS=60 benches/fuzz.sh            # every target, 60 s each (the default)
#   FUZZ_TARGETS="httpsig ipset" benches/fuzz.sh
#
# libFuzzer through cargo-fuzz (installed if missing); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain take the sanitizer flags. New inputs go to benches/results/fuzz-corpus/<target>,
# the committed seeds in fuzz/corpus/<target> are read too; a crash leaves its input in
# fuzz/artifacts/<target>/ and the log in benches/results/fuzz-<target>.log. To fold new
# inputs into the committed seeds: `cargo fuzz cmin <target>` after copying them in.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${FUZZ_SECONDS:-60}"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    nice -n 19 cargo install cargo-fuzz --locked
fi

cd "$root/fuzz"
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
nice -n 19 cargo fuzz build >/dev/null

results="$root/benches/results"
mkdir -p "$results"
failed=0
printf '%-10s %12s %8s  %s\n' target runs seconds result
for t in $targets; do
    mkdir -p "$results/fuzz-corpus/$t" "corpus/$t"
    log="$results/fuzz-$t.log"
    start=$(date +%s)
    # One process, one worker: the machine is shared. -timeout turns a hang into a finding.
    status=0
    nice -n 19 cargo fuzz run "$t" "$results/fuzz-corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
    took=$(($(date +%s) - start))
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    if [ "$status" -ne 0 ] || grep -qE 'ERROR: libFuzzer|ERROR: AddressSanitizer|panicked at|Test unit written' "$log"; then
        result="FOUND (see $log, fuzz/artifacts/$t/)"
        failed=1
    else
        result="nothing found"
    fi
    printf '%-10s %12s %8s  %s\n' "$t" "${runs:-?}" "$took" "$result"
done
exit "$failed"
