#!/usr/bin/env bash
# Create (or reuse) the Python venv that holds the independent RFC 9421 verifier
# used by the Rust integration tests (tests/interop/verify.py).
#
#   venv:    ${QV_INTEROP_VENV:-<repo>/target/interop-venv}   (target/ is git-ignored)
#   python:  ${QV_INTEROP_PYTHON:-python3} is used to create the venv
#
# Idempotent: a stamp file inside the venv records the sha256 of
# requirements.txt (plus the base interpreter's version); when it matches and
# the venv's python runs, nothing is installed and the script returns at once.
# Concurrent callers (parallel cargo test binaries) are serialised with flock.
#
# All progress goes to stderr. The ONLY line on stdout is the venv's python
# path, printed last, so callers can do: PY=$(tests/interop/setup.sh | tail -n1)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${QV_INTEROP_VENV:-$REPO/target/interop-venv}"
REQ="$HERE/requirements.txt"
BASE_PY="${QV_INTEROP_PYTHON:-python3}"
STAMP="$VENV/.qv-interop-stamp"
VPY="$VENV/bin/python"

log() { printf 'interop-setup: %s\n' "$*" >&2; }

if ! command -v "$BASE_PY" >/dev/null 2>&1; then
    log "error: $BASE_PY not found (install python3, e.g. apt-get install -y python3 python3-venv)"
    exit 1
fi

want_stamp() {
    local req_hash py_ver
    req_hash="$(sha256sum "$REQ" | cut -d' ' -f1)"
    py_ver="$("$BASE_PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
    printf '%s python-%s\n' "$req_hash" "$py_ver"
}

is_ready() {
    [[ -x "$VPY" && -f "$STAMP" ]] || return 1
    [[ "$(cat "$STAMP")" == "$WANT" ]] || return 1
    "$VPY" -c 'import sys' >/dev/null 2>&1
}

WANT="$(want_stamp)"

# Fast path: no lock, no pip.
if is_ready; then
    printf '%s\n' "$VPY"
    exit 0
fi

mkdir -p "$(dirname "$VENV")"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV.lock"
    flock 9
    # Another process may have finished the job while we waited.
    if is_ready; then
        printf '%s\n' "$VPY"
        exit 0
    fi
fi

make_venv() {
    "$BASE_PY" -m venv "$VENV" >&2
}

if [[ ! -x "$VPY" ]] || ! "$VPY" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV"
    log "creating venv at $VENV"
    if ! make_venv; then
        rm -rf "$VENV"
        if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
            log "python3 -m venv failed; installing python3-venv with apt-get"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq >&2
            apt-get install -y -qq python3-venv >&2
            make_venv
        else
            log "error: '$BASE_PY -m venv' failed. Install venv support, e.g.:"
            log "    sudo apt-get install -y python3-venv"
            exit 1
        fi
    fi
fi

log "installing $(basename "$REQ") into $VENV"
# Wheels only: a source build of cryptography would need a Rust toolchain and
# minutes of CPU. Quiet, no version self-check, output to stderr.
"$VPY" -m pip install --quiet --disable-pip-version-check --no-input \
    --only-binary=:all: -r "$REQ" >&2

# Smoke test: the library imports and this cryptography build has ML-DSA.
"$VPY" - >&2 <<'PY'
import http_message_signatures  # noqa: F401
from cryptography.hazmat.backends.openssl.backend import backend
from cryptography.hazmat.primitives.asymmetric import mldsa  # noqa: F401
if not backend.mldsa_supported():
    raise SystemExit("cryptography's OpenSSL lacks ML-DSA support")
PY

printf '%s\n' "$WANT" >"$STAMP"
log "ready"
printf '%s\n' "$VPY"
