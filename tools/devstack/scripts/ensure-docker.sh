#!/usr/bin/env bash
# Install what `docker compose up --build` needs on a machine without Docker: Debian's docker.io (dockerd, containerd,
# runc and the docker CLI; with --no-install-recommends, as the other ensure-*.sh) and the Compose v2 CLI plugin,
# pinned below, built with `go build` from the Go module proxy (Debian ships only the old Python docker-compose 1.x).
#
# The plugin is installed where the docker CLI looks for plugins, `${DOCKER_CONFIG:-~/.docker}/cli-plugins/`, unless
# `docker compose` already works with a Compose v2 that is not ours (a Docker Desktop or Docker's own packages: left
# alone). Ours is recognised by its Go build info (the main module at a version: built from the module proxy) and
# replaced when it is another version than the pin. The build (about 2.5 min of CPU) happens once a machine: the Go module and build
# caches keep it, and an installed plugin at the pinned version is not built again (a second run takes seconds).
# The engine is not started here: the container tier starts its own (prizeflow_devstack/docker_engine.py).
# Idempotent and quiet when everything is in place. Needs root (or sudo) to install docker.io.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
COMPOSE_MODULE="github.com/docker/compose/v2"
COMPOSE_VERSION="v2.40.3"
# compose's go.mod excludes these (a dependency of kubernetes wants them); a build from another module must too.
COMPOSE_EXCLUDES=(
    "github.com/davecgh/go-spew@v1.1.2-0.20180830191138-d8f796af33cc"
    "github.com/pmezard/go-difflib@v1.0.1-0.20181226105442-5d4384ee4fb2"
)
BUILD="$ROOT/.devstack/tools/docker-compose"
PLUGINS="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"

if ! command -v dockerd >/dev/null 2>&1 && [[ ! -x /usr/sbin/dockerd ]]; then
    SUDO=""
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO="sudo"
        else
            echo "ensure-docker: dockerd is missing and this user cannot install packages (not root, no sudo)" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y --no-install-recommends docker.io >/dev/null 2>&1; then
        $SUDO apt-get update >/dev/null  # the package lists may be missing or stale on a fresh machine
        $SUDO apt-get install -y --no-install-recommends docker.io >/dev/null
    fi
    echo "ensure-docker: installed docker.io ($(/usr/sbin/dockerd --version))"
fi

GO="$(command -v go || true)"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then
    GO=/usr/local/go/bin/go
fi

ours() {  # the Compose version a plugin binary of ours was built at, or nothing (not ours, or not there)
    [[ -x "$1" && -n "$GO" ]] || return 0
    # Built from the module proxy, its main module has a version; Docker's own builds (from a checkout) say (devel).
    "$GO" version -m "$1" 2>/dev/null | awk -v mod="$COMPOSE_MODULE" '$1 == "mod" && $2 == mod && $3 ~ /^v/ { print $3 }'
}

installed="$PLUGINS/docker-compose"
have="$(ours "$installed")"
if [[ "$have" == "$COMPOSE_VERSION" ]]; then
    exit 0
fi
if [[ -z "$have" ]] && docker compose version >/dev/null 2>&1; then
    exit 0  # a Compose plugin that is not ours: the user's Docker, left as it is
fi
if [[ -z "$GO" ]]; then
    echo "ensure-docker: the Compose CLI plugin is missing and Go is not installed (needed to build it)" >&2
    exit 1
fi

binary="$BUILD/docker-compose"
if [[ "$(ours "$binary")" != "$COMPOSE_VERSION" ]]; then
    echo "ensure-docker: building the Compose CLI plugin $COMPOSE_VERSION (found: ${have:-none})"
    rm -rf "$BUILD"
    mkdir -p "$BUILD"
    cat >"$BUILD/go.mod" <<EOF
module prizeflow.local/docker-compose

go 1.24
EOF
    excludes=()
    for exclude in "${COMPOSE_EXCLUDES[@]}"; do
        excludes+=("-exclude=$exclude")
    done
    (
        cd "$BUILD"
        "$GO" mod edit -require="$COMPOSE_MODULE@$COMPOSE_VERSION" "${excludes[@]}"
        # Stripped, so the compiler writes no DWARF either (a quarter less CPU on a new machine).
        GOFLAGS=-mod=mod "$GO" build -trimpath -gcflags=all=-dwarf=false -o "$binary" \
            -ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" "$COMPOSE_MODULE/cmd"
    )
    built="$(ours "$binary")"
    if [[ "$built" != "$COMPOSE_VERSION" ]]; then
        echo "ensure-docker: $binary reports ${built:-no version} after building $COMPOSE_VERSION" >&2
        exit 1
    fi
fi
mkdir -p "$PLUGINS"
install -m 0755 "$binary" "$installed.tmp"
mv -f "$installed.tmp" "$installed"
echo "ensure-docker: $(docker compose version) installed as a docker CLI plugin ($installed)"
