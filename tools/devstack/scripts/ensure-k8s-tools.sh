#!/usr/bin/env bash
# Install the pinned Kubernetes tools the manifest tests run (tests/deploy): kustomize renders the overlays,
# kube-score lints them. `go install` from the Go module proxy into .devstack/tools/go/bin, only when a binary
# is missing or was built from another version (read from the binary's own build info, `go version -m`).
# Idempotent and quiet when everything is in place.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BIN="$ROOT/.devstack/tools/go/bin"

# name  module path (as `go version -m` reports it)  package to install  version
TOOLS=(
    "kustomize  sigs.k8s.io/kustomize/kustomize/v5  sigs.k8s.io/kustomize/kustomize/v5  v5.5.0"
    "kube-score github.com/zegl/kube-score          github.com/zegl/kube-score/cmd/kube-score  v1.20.0"
)

GO="$(command -v go || true)"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then
    GO=/usr/local/go/bin/go
fi

installed_version() {  # the module version a Go binary was built from, or nothing
    [[ -x "$1" ]] || return 0
    "$GO" version -m "$1" 2>/dev/null | awk -v mod="$2" '$1 == "mod" && $2 == mod { print $3 }'
}

mkdir -p "$BIN"
for entry in "${TOOLS[@]}"; do
    read -r name module package version <<<"$entry"
    if [[ -z "$GO" ]]; then
        if [[ -x "$BIN/$name" ]]; then
            continue  # cannot read its version without go; the tests report what they run
        fi
        echo "ensure-k8s-tools: $name is missing and Go is not installed (needed to build it)" >&2
        exit 1
    fi
    have="$(installed_version "$BIN/$name" "$module")"
    if [[ "$have" == "$version" ]]; then
        continue
    fi
    echo "ensure-k8s-tools: installing $name $version (found: ${have:-none})"
    # Stripped, so the compiler writes no DWARF either (a quarter less CPU on a new machine).
    GOBIN="$BIN" GOFLAGS=-mod=mod "$GO" install -trimpath -gcflags=all=-dwarf=false -ldflags="-s -w" "$package@$version"
    have="$(installed_version "$BIN/$name" "$module")"
    if [[ "$have" != "$version" ]]; then
        echo "ensure-k8s-tools: $BIN/$name reports ${have:-no version} after installing $version" >&2
        exit 1
    fi
done
