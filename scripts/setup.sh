#!/usr/bin/env bash
# Installs the system packages the build and the tests need, when they are missing.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again.
#   cmake       zlib-ng, built by Pingora's flate2
#   pkg-config  C library discovery of -sys crates
#   curl        the demo's printed commands and the load script
set -euo pipefail

qv_missing_packages() {
  local missing=()
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v cc >/dev/null 2>&1 || missing+=(build-essential)
  for p in "$@"; do
    case "$p" in
      cmd:*) local c=${p#cmd:}; c=${c%%=*}; command -v "$c" >/dev/null 2>&1 || missing+=("${p#*=}") ;;
      *) dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p") ;;
    esac
  done
  echo "${missing[@]:-}"
}

# qv_install [extra packages or cmd:COMMAND=package ...]
qv_install() {
  local missing
  missing=$(qv_missing_packages "$@")
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing system packages: $missing" >&2
    echo "install them with: sudo apt-get install -y $missing" >&2
    exit 1
  fi
  echo "installing system packages: $missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq $missing >/dev/null
}
