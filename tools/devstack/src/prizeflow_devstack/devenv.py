"""Local-only configuration shared by every process `prizeflow-dev up` starts.

Generated once per checkout into `.devstack/dev-env.json` (ignored by git): a random JWT secret all
services agree on, and a Stellar test keypair that is both the payout source account (funded at genesis
on the Soroban RPC emulator) and the signer's hot key. None of this is a production setting: production
gets its secrets from the platform (Kubernetes secrets, an HSM), see docs/signing-modes.md.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from prizeflow_devstack.paths import Paths

DEV_ENV_FILE = "dev-env.json"


def _generate(paths: Paths) -> dict[str, str]:
    return generate_dev_env(paths.base / "secrets", root=paths.root)


def generate_dev_env(secret_dir: Path, *, root: Path) -> dict[str, str]:
    """Fresh local settings; the hot key seed is written to `secret_dir` (0600), never into the env."""
    from stellar_sdk import Keypair

    keypair = Keypair.random()
    secret_dir.mkdir(parents=True, exist_ok=True)
    seed_file = secret_dir / "hot-signer.seed"
    seed_file.write_text(keypair.secret)
    seed_file.chmod(0o600)
    source = keypair.public_key
    return {
        "JWT_SECRET": secrets.token_hex(32),
        "PAYOUT_SOURCE_ACCOUNT": source,
        "PAYOUT_HOT_SIGNER_SECRET_FILE": str(seed_file),
        "SIGNER_BACKEND": "hot_key",
        "PAYOUTS_SIGN_WITH_HOT_KEY": "true",
        "PAYOUTS_LIVE_EXECUTION": "true",
        "SOROBAN_EMULATOR_ACCOUNTS": json.dumps({source: {"XLM": "100000000", "USDC": "100000000"}}),
        "SOROBAN_EMULATOR_LEDGER_MS": "1000",
        "STELLAR_NETWORK_PASSPHRASE": "Test SDF Network ; September 2015",
        "PAYOUTS_PROVIDERS_FILE": str(root / "deploy" / "local" / "providers.yaml"),
        # The demo shows the safety nets at work: a few duplicate deliveries and malformed records.
        "SIM_DUPLICATE_RATE": "0.02",
        "SIM_MALFORMED_RATE": "0.01",
    }


def dev_env(paths: Paths) -> dict[str, str]:
    """The local settings, generated on first use; values already in the environment win."""
    file = paths.base / DEV_ENV_FILE
    if file.exists():
        values: dict[str, str] = json.loads(file.read_text())
    else:
        paths.base.mkdir(parents=True, exist_ok=True)
        values = _generate(paths)
        tmp = Path(f"{file}.tmp")
        tmp.write_text(json.dumps(values, indent=2))
        tmp.chmod(0o600)
        tmp.replace(file)
    return {k: v for k, v in values.items() if k not in os.environ}
