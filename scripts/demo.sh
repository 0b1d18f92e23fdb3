#!/usr/bin/env bash
# One command for a first run: installs what the build needs, builds, and starts the gateway on
# 127.0.0.1:8080 (admin 127.0.0.1:9901) with a built-in demo upstream. Ctrl-C stops it.
#   scripts/demo.sh [--dir demo-data] [--listen 127.0.0.1:8080] [--admin 127.0.0.1:9901]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
qv_install
exec cargo run --release --bin quantumvault -- demo "$@"
