#!/usr/bin/env bash
# Install SoftHSM2 (Debian package softhsm2) for the signer's PKCS#11 tests and benchmarks.
# Idempotent: does nothing when the PKCS#11 module is already there. Needs root (or sudo) to install.
set -euo pipefail

MODULE="${SIGNER_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
if [[ -f "$MODULE" ]]; then
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure-softhsm: $MODULE is missing and this user cannot install packages (not root, no sudo)" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y softhsm2 >/dev/null 2>&1; then
    # The package lists may be missing or stale on a fresh machine.
    $SUDO apt-get update >/dev/null
    $SUDO apt-get install -y softhsm2 >/dev/null
fi

if [[ ! -f "$MODULE" ]]; then
    echo "ensure-softhsm: softhsm2 installed but $MODULE is still missing" >&2
    exit 1
fi
echo "ensure-softhsm: installed softhsm2 ($MODULE)"
