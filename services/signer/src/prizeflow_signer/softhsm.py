"""SoftHSM2 tokens for tests, benchmarks and local runs: a token in a directory, an Ed25519 key in it.

SoftHSM2 reads SOFTHSM2_CONF when the module is first initialised, and a process sees only the tokens that
existed then. So one configuration (token directory) serves the whole process: the first token creates it,
later tokens are added to it under their own unique label, and the in-process library is re-initialised
to see them. Signer processes started afterwards inherit SOFTHSM2_CONF and see every token.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from prizeflow_signer.adapters.backends import generate_pkcs11_ed25519_key

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
DEFAULT_KEY_LABEL = "payout-key"
ENSURE_SCRIPT = Path(__file__).resolve().parents[4] / "tools" / "devstack" / "scripts" / "ensure-softhsm.sh"


def ensure_softhsm(module: str = DEFAULT_MODULE) -> str:
    """The module path, installing softhsm2 with the project's script when it is missing."""
    if not Path(module).is_file():
        subprocess.run(["bash", str(ENSURE_SCRIPT)], check=True)  # noqa: S603,S607 - the project's own script
    if not Path(module).is_file():
        raise RuntimeError(f"SoftHSM2 module {module} is missing; run {ENSURE_SCRIPT}")
    return module


def _refresh_tokens(module: str) -> None:
    """Make an already-initialised in-process library see tokens created since (no-op before first use)."""
    import pkcs11

    with contextlib.suppress(pkcs11.PKCS11Error):  # not initialised yet: first use reads the configuration
        pkcs11.lib(module).reinitialize()


@dataclass(frozen=True)
class SoftHsmToken:
    conf: Path
    module: str
    token_label: str
    pin: str

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        token_label: str | None = None,
        pin: str = "1234",
    ) -> SoftHsmToken:
        """A new token (label unique unless given) in this process's SoftHSM2 configuration."""
        module = ensure_softhsm()
        token_label = token_label or f"pf-{uuid.uuid4().hex[:12]}"
        existing = os.environ.get("SOFTHSM2_CONF")
        if existing and Path(existing).is_file():
            conf = Path(existing)
        else:
            tokens = directory / "tokens"
            tokens.mkdir(parents=True, exist_ok=True)
            conf = directory / "softhsm2.conf"
            conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
            os.environ["SOFTHSM2_CONF"] = str(conf)
        subprocess.run(  # noqa: S603
            ["softhsm2-util", "--init-token", "--free", "--label", token_label, "--pin", pin, "--so-pin", pin + "0"],  # noqa: S607
            check=True,
            capture_output=True,
            env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        )
        _refresh_tokens(module)
        return cls(conf=conf, module=module, token_label=token_label, pin=pin)

    def generate_key(self, key_label: str) -> str:
        """A new Ed25519 key in the token; returns its G... address."""
        return generate_pkcs11_ed25519_key(
            module=self.module, token_label=self.token_label, pin=self.pin, key_label=key_label
        )

    def env(self, key_label: str) -> dict[str, str]:
        """The signer's environment for this token and key (the PIN in env: tests only)."""
        return {
            "SOFTHSM2_CONF": str(self.conf),
            "SIGNER_BACKEND": "pkcs11",
            "SIGNER_PKCS11_MODULE": self.module,
            "SIGNER_PKCS11_TOKEN_LABEL": self.token_label,
            "SIGNER_PKCS11_PIN": self.pin,
            "SIGNER_PKCS11_KEY_LABEL": key_label,
        }
