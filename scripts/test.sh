#!/usr/bin/env bash
# Every test, from a fresh Debian machine with only the Rust toolchain: installs the system
# packages it needs, then runs the unit tests, the integration tests (real gateway processes,
# real upstreams and clients on 127.0.0.1) and the systemd sandbox score.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
qv_install cmd:systemd-analyze=systemd cmd:promtool=prometheus cmd:openssl=openssl cmd:redis-server=redis-server cmd:redis-cli=redis-tools python3-venv

echo "== formatting (cargo fmt --check)"
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --check; else echo "skipped: rustfmt is not installed"; fi

echo "== systemd unit sandbox (systemd-analyze security)"
scripts/check-systemd.sh

echo "== independent RFC 9421 verifier (Python http-message-signatures + cryptography) self-test"
PY=$(bash tests/interop/setup.sh | tail -n1)
"$PY" tests/interop/selftest.py | tail -n 3

echo "== independent batch (Merkle) signature verifier (Python stdlib + cryptography) self-test"
"$PY" tests/interop/selftest_batch.py | tail -n 3
"$PY" tests/interop/selftest_log.py | tail -n 3

echo "== cargo test (release build, shared by unit and integration tests)"
cargo test --release --locked 2>&1
