#!/usr/bin/env bash
# Install Prometheus and promtool (Debian package prometheus, 2.42) for the alert-rule tests, the dashboard and
# rule expression checks and the devstack's Prometheus. Idempotent: does nothing when both binaries are there.
# The package's own service is never used (the devstack starts its own Prometheus under .devstack/); on a
# machine with systemd we stop and disable it so it does not scrape or hold port 9090.
# Needs root (or sudo) to install.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure-prometheus: prometheus/promtool are missing and this user cannot install packages (not root, no sudo)" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
install() { $SUDO apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1; }
if ! install; then
    # The package lists may be missing or stale on a fresh machine.
    $SUDO apt-get update >/dev/null
    install
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

for bin in prometheus promtool; do
    if ! command -v "$bin" >/dev/null 2>&1; then
        echo "ensure-prometheus: package prometheus installed but $bin is still missing" >&2
        exit 1
    fi
done
echo "ensure-prometheus: installed $(prometheus --version 2>&1 | head -1)"
