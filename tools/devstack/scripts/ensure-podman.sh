#!/usr/bin/env bash
# Install what the container tests need from Debian's packages: podman (with netavark/aardvark-dns networking), the
# runc runtime, iptables (netavark sets up every container's network with it, a build's RUN steps included: without
# it each fails with "netavark: No such file or directory"; it is only a recommendation of podman's, which
# --no-install-recommends leaves out), tini (its static build is PID 1 in every image), debootstrap (the local stand-ins for official images are built from Debian packages, because no
# image registry is reachable here), and docker-registry (a local registry the push-and-pin test pushes to). Then check podman really runs a container with the project's settings
# (deploy/podman/containers.conf: runc, no default ulimits), and fail with the reason when it cannot.
# Idempotent: installs nothing when the tools are there. Needs root (or sudo) to install.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
export CONTAINERS_CONF="$ROOT/deploy/podman/containers.conf"
PACKAGES=(podman runc debootstrap netavark aardvark-dns iptables tini docker-registry)

missing=()
for tool in podman runc debootstrap tini-static iptables docker-registry; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    SUDO=""
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO="sudo"
        else
            echo "ensure-podman: ${missing[*]} missing and this user cannot install packages (not root, no sudo)" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1; then
        $SUDO apt-get update >/dev/null  # the package lists may be missing or stale on a fresh machine
        $SUDO apt-get install -y --no-install-recommends "${PACKAGES[@]}" >/dev/null
    fi
    echo "ensure-podman: installed ${PACKAGES[*]} ($(podman --version))"
fi

# podman must answer with the project's settings; `podman info` fails when the runtime or storage is unusable.
# Only its standard output is the answer: on a fresh machine its first run also logs warnings (on standard error)
# while it sets up its storage, which must not be read as the runtime's name.
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
if ! out=$(podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}} {{.Host.NetworkBackend}}' 2>"$errors"); then
    echo "ensure-podman: podman cannot run here: $(cat "$errors") $out" >&2
    exit 1
fi
out=$(tail -n 1 <<<"$out")
read -r runtime driver network <<<"$out"
if [[ "$runtime" != "runc" ]]; then
    echo "ensure-podman: podman uses the '$runtime' runtime, expected runc (CONTAINERS_CONF=$CONTAINERS_CONF)" >&2
    exit 1
fi
if [[ "$network" != "netavark" ]]; then
    echo "ensure-podman: podman's network backend is '$network'; compose needs netavark (container DNS)" >&2
    exit 1
fi
