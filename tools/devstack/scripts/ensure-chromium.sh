#!/usr/bin/env bash
# Install Debian's Chromium (package chromium) for the console's browser tests (marker `browser`), which drive it
# through Playwright with executable_path=/usr/bin/chromium: Playwright never downloads a browser of its own.
# fonts-liberation (metric-compatible with Arial/Times/Courier) is chromium's recommended font set: installed too,
# so that text renders, and renders the same in screenshots on every machine; the other recommends (upower,
# notification-daemon, printing, GPU drivers) are desktop parts a headless browser does without.
# Idempotent: does nothing when both are there. Needs root (or sudo) to install.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
FONTS=/usr/share/fonts/truetype/liberation
PACKAGES=(chromium fonts-liberation)

if [[ -x "$CHROMIUM" && -d "$FONTS" ]]; then
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure-chromium: $CHROMIUM or $FONTS is missing and this user cannot install packages (not root, no sudo)" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
install() { $SUDO apt-get install -y --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1; }
if ! install; then
    # The package lists may be missing or stale on a fresh machine.
    $SUDO apt-get update >/dev/null
    $SUDO apt-get install -y --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi

if [[ ! -x "$CHROMIUM" ]]; then
    echo "ensure-chromium: package chromium installed but $CHROMIUM is still missing" >&2
    exit 1
fi
# The launcher (a shell script) may print warnings of its own: keep only the version line.
if ! out=$("$CHROMIUM" --version 2>&1) || ! version=$(grep -m1 '^Chromium ' <<<"$out"); then
    echo "ensure-chromium: $CHROMIUM is installed but does not run: $out" >&2
    exit 1
fi
echo "ensure-chromium: installed $version"
