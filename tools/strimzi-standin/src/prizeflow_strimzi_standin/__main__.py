"""Run the stand-in: `STRIMZI_NAMESPACE` (the namespace it watches, as Strimzi's operator reads it),
`STRIMZI_KAFKA_IMAGES` (`<version>=<image>` lines, as Strimzi's), `STANDIN_INTERVAL_S` (5)."""

from __future__ import annotations

import logging
import os

from kubernetes import config

from prizeflow_strimzi_standin.reconcile import Reconciler


def images(text: str) -> dict[str, str]:
    out = {}
    for line in text.split():
        version, _, image = line.partition("=")
        if not image:
            raise SystemExit(f"STRIMZI_KAFKA_IMAGES: {line!r} is not <version>=<image>")
        out[version] = image
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config.load_incluster_config()  # type: ignore[no-untyped-call]  # the client leaves it unannotated
    reconciler = Reconciler(
        namespace=os.environ["STRIMZI_NAMESPACE"],
        operator_namespace=os.environ.get("OPERATOR_NAMESPACE", "strimzi"),
        images=images(os.environ["STRIMZI_KAFKA_IMAGES"]),
    )
    reconciler.run(float(os.environ.get("STANDIN_INTERVAL_S", "5")))


if __name__ == "__main__":
    main()
