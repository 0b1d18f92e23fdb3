#!/usr/bin/env bash
# Scores the sandbox of systemd/quantumvault.service with `systemd-analyze security` (offline:
# no running systemd needed) and fails if the exposure is above 2.0 ("OK" is below 2.0).
#
#   scripts/check-systemd.sh [UNIT_FILE]      MAX_EXPOSURE=2.0 by default
#
# Exit codes: 0 ok or skipped (systemd-analyze missing or older than 250), 1 score too high,
# 2 systemd-analyze failed or printed no score.
set -euo pipefail

src="${BASH_SOURCE[0]}"
[[ "$src" == */* ]] || src="./$src"
here="$(cd "${src%/*}" && pwd)"
unit="${1:-$here/../systemd/quantumvault.service}"
max="${MAX_EXPOSURE:-2.0}"

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "skipped: systemd-analyze not available"
    exit 0
fi
# --offline= exists since systemd 250.
version="$(systemd-analyze --version | awk 'NR == 1 { print $2 }')"
if ! [[ "$version" =~ ^[0-9]+$ ]] || (( version < 250 )); then
    echo "skipped: systemd-analyze $version has no --offline (needs systemd >= 250)"
    exit 0
fi
if [[ ! -f "$unit" ]]; then
    echo "error: no unit file at $unit" >&2
    exit 2
fi

# The table goes to stdout; `--offline=true` reads the unit file as given, not the installed one.
# systemd-analyze exits non-zero only for errors here (no --threshold), so keep its status.
if ! out="$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1)"; then
    echo "$out" >&2
    echo "error: systemd-analyze security failed" >&2
    exit 2
fi
line="$(grep -m1 'Overall exposure level' <<<"$out" || true)"
# "→ Overall exposure level for quantumvault.service: 1.4 OK 🙂"
score="$(sed -nE 's/.*Overall exposure level for [^:]*: ([0-9]+(\.[0-9]+)?).*/\1/p' <<<"$line")"
if [[ -z "$score" ]]; then
    echo "$out" >&2
    echo "error: no 'Overall exposure level' line in the output" >&2
    exit 2
fi

if [[ -n "${VERBOSE:-}" ]]; then
    grep -E '✗' <<<"$out" || true
fi
echo "${line#*→ }"
if awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
    echo "FAIL: exposure $score is above $max; run with VERBOSE=1 to list the open items" >&2
    exit 1
fi
echo "ok: exposure $score <= $max"
