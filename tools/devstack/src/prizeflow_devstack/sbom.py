"""A CycloneDX 1.5 JSON SBOM of what an image holds, written during its build (Containerfile, `builder` stage).

Run by the image's own interpreter (`/opt/venv/bin/python -I sbom.py …`), so it sees exactly what is installed:
the Debian packages of the base (`/var/lib/dpkg/status`), the interpreter, tini, and every distribution of the
virtualenv (`importlib.metadata`), each with its version and purl, and the SHA-256 of the wheel it was installed
from when that wheel is in the wheelhouse. Standard library only: it runs before anything else is trusted, and the
output is deterministic (no timestamp, a serial number derived from the content) so a rebuild's layer is cached.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import re
import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

SPEC_VERSION = "1.5"
SBOM_PATH = "/usr/share/prizeflow/sbom.cdx.json"  # where every image carries it (Containerfile, runtime stage)


def normalize(name: str) -> str:
    """A Python distribution's name as PEP 503 and the pypi purl type spell it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pypi_purl(name: str, version: str) -> str:
    return f"pkg:pypi/{normalize(name)}@{quote(version, safe='')}"


def _wheel_hashes(wheels: Path | None) -> dict[tuple[str, str], list[str]]:
    """(normalized name, version) → SHA-256 of each wheel file of it in the wheelhouse."""
    found: dict[tuple[str, str], list[str]] = {}
    if wheels is None or not wheels.is_dir():
        return found
    for wheel in sorted(wheels.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        found.setdefault((normalize(name), version), []).append(digest)
    return found


def python_components(wheels: Path | None) -> list[dict[str, Any]]:
    """Every distribution the running interpreter sees (run with the virtualenv's: exactly the venv's)."""
    hashes = _wheel_hashes(wheels)
    out = []
    for dist in metadata.distributions():
        name, version = dist.metadata["Name"], dist.version
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": pypi_purl(name, version),
            "name": normalize(name),
            "version": version,
            "purl": pypi_purl(name, version),
        }
        # One wheel file of that name and version: the one installed (several would be ambiguous: no hash then).
        digests = hashes.get((normalize(name), version), [])
        if len(digests) == 1:
            component["hashes"] = [{"alg": "SHA-256", "content": digests[0]}]
        licences = dist.metadata.get_all("License-Expression") or []
        if licences:
            component["licenses"] = [{"expression": licences[0]}]
        out.append(component)
    return sorted(out, key=lambda c: str(c["name"]))


def _os_release(root: Path) -> dict[str, str]:
    path = root / "etc" / "os-release"
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    return {key: value.strip('"') for key, value in pairs}


def debian_components(root: Path = Path("/")) -> list[dict[str, Any]]:
    """The base image's installed Debian packages (dpkg's status database)."""
    status = root / "var" / "lib" / "dpkg" / "status"
    if not status.is_file():
        return []
    release = _os_release(root)
    distro = f"{release.get('ID', 'debian')}-{release.get('VERSION_ID', '')}".rstrip("-")
    out = []
    for block in status.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(" "))
        if not fields.get("Status", "").endswith(" installed") or "Package" not in fields:
            continue
        name, version, arch = fields["Package"], fields.get("Version", ""), fields.get("Architecture", "")
        purl = f"pkg:deb/{release.get('ID', 'debian')}/{name}@{quote(version, safe='')}?arch={arch}&distro={distro}"
        out.append({"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl})
    return sorted(out, key=lambda c: str(c["name"]))


def runtime_components(tini: Path | None) -> list[dict[str, Any]]:
    """The interpreter (the official image builds it from source: no dpkg entry) and tini (PID 1)."""
    version = platform.python_version()
    purl = f"pkg:generic/cpython@{version}"
    out: list[dict[str, Any]] = [
        {"type": "application", "bom-ref": purl, "name": "cpython", "version": version, "purl": purl}
    ]
    if tini is not None and tini.is_file():
        said = subprocess.run([str(tini), "--version"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"tini version (\S+)", said)
        tini_version = match.group(1) if match else "unknown"
        purl = f"pkg:github/krallin/tini@v{tini_version}"
        digest = hashlib.sha256(tini.read_bytes()).hexdigest()
        out.append(
            {
                "type": "application",
                "bom-ref": purl,
                "name": "tini",
                "version": tini_version,
                "purl": purl,
                "hashes": [{"alg": "SHA-256", "content": digest}],
            }
        )
    return out


def build_sbom(name: str, components: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps(components, sort_keys=True).encode()
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name + hashlib.sha256(body).hexdigest())}",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "prizeflow-sbom"}]},
            "component": {"type": "container", "bom-ref": name, "name": name},
        },
        "components": components,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--name", required=True, help="the image, e.g. prizeflow-settlement")
    parser.add_argument("--wheels", type=Path, help="the wheelhouse the virtualenv was installed from (hashes)")
    parser.add_argument("--tini", type=Path, help="the tini binary the image runs as PID 1")
    args = parser.parse_args(argv)
    components = [*debian_components(), *runtime_components(args.tini), *python_components(args.wheels)]
    json.dump(build_sbom(args.name, components), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
