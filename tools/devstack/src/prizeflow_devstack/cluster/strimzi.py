"""Strimzi on this machine: its own CRDs, generated from Maven Central (tools/devstack/cluster/strimzi/pom.xml says
how and why), and the stand-in operator (tools/strimzi-standin) that realises the bundle's Kafka, KafkaNodePools,
KafkaTopics and KafkaUsers the way Strimzi does for them.

What refused building Strimzi's operator here: it is Java, built with Maven from its repository, and none of its
operator modules is published (io.strimzi:cluster-operator, operator-common, topic-operator, user-operator: 404 on
Maven Central); its source is on GitHub, which neither this machine's builds nor CI can reach.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from prizeflow_devstack.cluster import versions as v
from prizeflow_devstack.cluster.paths import ClusterPaths

KINDS = ("040-Crd-kafka.yaml", "043-Crd-kafkatopic.yaml", "044-Crd-kafkauser.yaml", "045-Crd-kafkanodepool.yaml")


class StrimziError(RuntimeError):
    """The CRDs could not be generated (no JDK 21+, or Maven failed)."""


def _jdk21() -> Path:
    """A JDK of 21 or later: the generator's classes need it (this machine's default Java is 17)."""
    candidates = [Path(os.environ["JAVA_HOME"])] if "JAVA_HOME" in os.environ else []
    candidates += sorted(Path("/usr/lib/jvm").glob("*"), reverse=True)
    for home in candidates:
        release = home / "release"
        if not (home / "bin" / "java").exists() or not release.exists():
            continue
        for line in release.read_text().splitlines():
            if line.startswith("JAVA_VERSION="):
                major = line.split("=", 1)[1].strip('"').split(".", 1)[0]
                if major.isdigit() and int(major) >= 21:
                    return home
    raise StrimziError("no JDK 21 or later under /usr/lib/jvm or JAVA_HOME: Strimzi's crd-generator needs one")


def ensure_crds(root: Path) -> Path:
    """`.devstack/cluster/strimzi-crds-<version>/`, generated once."""
    out = ClusterPaths(root).base / f"strimzi-crds-{v.STRIMZI}"
    if all((out / name).exists() for name in KINDS):
        return out
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StrimziError("`mvn` not found: Maven generates Strimzi's CRDs from Maven Central")
    jdk = _jdk21()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    pom = root / "tools" / "devstack" / "cluster" / "strimzi" / "pom.xml"
    env = {**os.environ, "JAVA_HOME": str(jdk), "PATH": f"{jdk / 'bin'}:{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom), "package", f"-Dout={partial}", f"-Dstrimzi.version={v.STRIMZI}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )
    if result.returncode != 0 or not all((partial / name).exists() for name in KINDS):
        raise StrimziError(f"Strimzi's crd-generator failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    shutil.rmtree(pom.parent / "target", ignore_errors=True)
    return out


__all__ = ["KINDS", "StrimziError", "ensure_crds"]
