#!/usr/bin/env bash
# Install stripe-mock (the official Stripe API mock, validating requests against Stripe's OpenAPI spec) at a pinned
# version into .devstack/tools/bin, for the Stripe emulator's contract test. Idempotent: does nothing when that
# version is already there. Needs the Go toolchain and the Go module proxy.
#
# Exit codes: 0 installed (or already there); 3 it cannot be installed here (no Go toolchain, module unreachable),
# with the reason on stderr; anything else is a bug of this script.
set -euo pipefail

VERSION="${STRIPE_MOCK_VERSION:-v0.197.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BIN_DIR="${STRIPE_MOCK_BIN_DIR:-$ROOT/.devstack/tools/bin}"
BIN="$BIN_DIR/stripe-mock"
MARKER="$BIN_DIR/.stripe-mock-version"

if [[ -x "$BIN" && -f "$MARKER" && "$(cat "$MARKER")" == "$VERSION" ]]; then
    exit 0
fi

GO="$(command -v go || true)"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then
    GO=/usr/local/go/bin/go
fi
if [[ -z "$GO" ]]; then
    echo "ensure-stripe-mock: cannot install stripe-mock $VERSION: no Go toolchain (go) on PATH" >&2
    exit 3
fi

mkdir -p "$BIN_DIR"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
# Stripped, so the compiler writes no DWARF either (a quarter less CPU on a new machine).
if ! GOBIN="$STAGE" GOFLAGS=-mod=mod "$GO" install -trimpath -gcflags=all=-dwarf=false -ldflags="-s -w" \
    "github.com/stripe/stripe-mock@$VERSION" >"$STAGE/install.log" 2>&1; then
    echo "ensure-stripe-mock: cannot install stripe-mock $VERSION: go install failed:" >&2
    tail -5 "$STAGE/install.log" >&2
    exit 3
fi
mv -f "$STAGE/stripe-mock" "$BIN"
echo "$VERSION" >"$MARKER"
echo "ensure-stripe-mock: installed stripe-mock $VERSION ($BIN)"
