"""Local-only configuration shared by every process `prizeflow-dev up` starts.

Generated once per checkout into `.devstack/dev-env.json` (ignored by git): the dev profile, a dev identity
provider (an Ed25519 key pair under `.devstack/secrets/identity/`, its public JWKS as a `file://` URL every
service verifies tokens against), and a Stellar test keypair that is both the payout source account (funded at
genesis on the Soroban RPC emulator) and the signer's hot key, and the webhook ingress's random dev secrets
(`webhook_env`). None of this is a production setting:
production gets its secrets from the platform (Kubernetes secrets, an HSM, the identity provider), see
docs/signing-modes.md and docs/adr/0005-identity.md.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
from collections.abc import Callable, Collection
from pathlib import Path

from prizeflow_devstack.paths import Paths
from prizeflow_runtime.dev_identity import DevIdentity, write_private_file

DEV_ENV_FILE = "dev-env.json"
TON_HIGHLOAD_TIMEOUT_S = 600  # the local highload wallet's timeout: a provider using it names the same
# Identity settings a dev stack defines itself: inherited values would point its services at other keys.
IDENTITY_ENV = ("PRIZEFLOW_PROFILE", "JWT_JWKS_URL", "JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_ROLES_CLAIM")


def _generate(paths: Paths) -> dict[str, str]:
    return generate_dev_env(paths.base / "secrets", root=paths.root)


def generate_dev_env(secret_dir: Path, *, root: Path) -> dict[str, str]:
    """Fresh local settings; the hot key seed and the identity's private key are written to `secret_dir` (0600
    from the first byte), never into the env."""
    from stellar_sdk import Keypair

    keypair = Keypair.random()
    secret_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    seed_file = secret_dir / "hot-signer.seed"
    write_private_file(seed_file, keypair.secret.encode(), replace=True)
    source = keypair.public_key
    return {
        **identity_env(secret_dir),
        "PAYOUT_SOURCE_ACCOUNT": source,
        "PAYOUT_HOT_SIGNER_SECRET_FILE": str(seed_file),
        "SIGNER_BACKEND": "hot_key",
        "PAYOUTS_SIGN_WITH_HOT_KEY": "true",
        "PAYOUTS_LIVE_EXECUTION": "true",
        "SOROBAN_EMULATOR_ACCOUNTS": json.dumps({source: {"XLM": "100000000", "USDC": "100000000"}}),
        "SOROBAN_EMULATOR_LEDGER_MS": "1000",
        "STELLAR_NETWORK_PASSPHRASE": "Test SDF Network ; September 2015",
        **local_providers(root, secret_dir.parent / "providers"),
        # The emulators list a payment the moment it is made: a window is reconciled 5 s after it ends, not 15 min.
        "PAYOUTS_RECON_SLACK_S": "5",
        **webhook_env(root),
        **exchange_env(),
        **kyc_env(),
        **upi_env(),
        **stand_in_env(root),
        **rates_env(),
        **ton_env(source),
        # The demo shows the safety nets at work: a few duplicate deliveries, and chaos bursts.
        "SIM_DUPLICATE_RATE": "0.02",
        **chaos_env(),
        **inr_players_env(),
    }


def inr_players_env() -> dict[str, str]:
    """A tenth of the simulated players' claims are INR players': a USDC → INR quote (REWARDS_FX_PAIRS), paid to
    their VPA on the UPI rail's emulator (`upi-api`)."""
    return {"SIM_INR_SHARE": "0.1"}


def chaos_env() -> dict[str, str]:
    """`make run`'s chaos, in bursts so that the alerts it triggers fire and then resolve: 30 s every 15 min (the
    first 45 s in) of malformed game records (dead-lettered by settlement: PrizeflowEventsDeadLettered, whose
    10-minute window resolves it ~10 min after the burst) and forged webhooks (refused by the ingress: signature
    failures). Nothing malformed outside the bursts: an alert that never stops firing teaches nobody anything."""
    return {
        "SIM_MALFORMED_RATE": "0",
        "SIM_CHAOS_BURST": "30s/15m@45s",
        "SIM_CHAOS_BURST_MALFORMED": "0.5",
        "SIM_CHAOS_BURST_FORGED_WEBHOOKS": "2",
        "DEMO_MALFORMED_EVERY": "0",
    }


def webhook_env(root: Path) -> dict[str, str]:
    """The webhook ingress's providers file and random dev secrets for the providers it names: the sandbox's
    Prizeflow-Signature secret, Stripe's endpoint secret, and the platform key the ingress confirms events with,
    which the Stripe emulator (service `stripe-api`, found as STRIPE_API_URL) accepts."""
    api_key = "sk_test_" + secrets.token_hex(16)
    telegram_token = f"{secrets.randbelow(9 * 10**9) + 10**9}:{secrets.token_urlsafe(30)[:35]}"
    gift_card_key = "TEST_" + secrets.token_hex(16)
    return {
        "WEBHOOK_SECRET_SANDBOX": secrets.token_hex(24),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(24),
        "STRIPE_API_KEY": api_key,
        "STRIPE_EMULATOR_API_KEYS": api_key,
        # The emulator signs its webhooks with the ingress's endpoint secret and posts them to the ingress, whose
        # address every process of the stack gets as WEBHOOKS_URL; the bank pays a payout 1.5 s after it is made.
        "STRIPE_EMULATOR_WEBHOOK_ENDPOINTS": "${WEBHOOKS_URL}/providers/stripe/events|${STRIPE_WEBHOOK_SECRET}",
        "STRIPE_EMULATOR_WEBHOOK_RETRY_BASE_MS": "200",
        "STRIPE_EMULATOR_PAYOUT_AUTO_SETTLE_MS": "1500",
        "STRIPE_EMULATOR_PLATFORM_BALANCE": "usd:100000000,inr:10000000000",
        # Players top up their wallets through Stripe Checkout on the emulator (its hosted page is a stand-in).
        "REWARDS_TOPUP_PROVIDER": "stripe",
        # Gift cards (the gift-card emulator, service `giftcard-api`, found as GIFTCARD_API_URL): its API key, and
        # the webhook key it signs its events with, posted to the ingress, which fetches each order back.
        "GIFTCARD_API_KEY": gift_card_key,
        "GIFTCARD_WEBHOOK_KEY": secrets.token_hex(24),
        "GIFTCARD_EMULATOR_API_KEYS": gift_card_key,
        "GIFTCARD_EMULATOR_WEBHOOK_URL": "${WEBHOOKS_URL}/providers/giftcard/events",
        "GIFTCARD_EMULATOR_WEBHOOK_PRIVATE_KEY": "${GIFTCARD_WEBHOOK_KEY}",
        "GIFTCARD_EMULATOR_WEBHOOK_RETRY_BASE_MS": "200",
        "GIFTCARD_EMULATOR_DELIVERY_DELAY_MS": "1000",
        # The Telegram rail's bot (service `telegram-api`, found as TELEGRAM_API_URL) and the token it accepts.
        "TELEGRAM_BOT_TOKEN": telegram_token,
        "TELEGRAM_EMULATOR_TOKENS": telegram_token,
        "TELEGRAM_EMULATOR_BALANCE": "1000000",
    }


def exchange_env() -> dict[str, str]:
    """The exchange emulator (service `exchange-api`, found as EXCHANGE_API_URL) and the random API key and HMAC
    secret payouts' `crypto_exchange` rail signs with: funded, two whitelisted dev addresses (USDC on Ethereum, XLM
    with a memo), withdrawals completed 1.5 s after they are made."""
    key, secret = "dev" + secrets.token_hex(16), secrets.token_hex(32)
    return {
        "EXCHANGE_API_KEY": key,
        "EXCHANGE_API_SECRET": secret,
        "EXCHANGE_EMULATOR_API_KEY": key,
        "EXCHANGE_EMULATOR_API_SECRET": secret,
        "EXCHANGE_EMULATOR_BALANCES": "USDC:1000000,XLM:1000000",
        "EXCHANGE_EMULATOR_WHITELIST": (
            "ETH|0x5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a,"
            "XLM|GCKFBEIYV2U22IO2BJ4KVJOIP7XPWQGQFKKWXR6DOSJBV7STMAQSMTGG|4242"
        ),
        "EXCHANGE_EMULATOR_AUTO_SETTLE_MS": "1500",
    }


def kyc_env() -> dict[str, str]:
    """Identity verification on the local stack: the KYC emulator (service `kyc-api`, found as KYC_API_URL, which
    `PEER_SETTINGS` gives payouts as PAYOUTS_KYC_BASE_URL) with a random app token and secret key payouts signs its
    calls with, and the random webhook secret it signs its webhooks with, posted to the ingress's `sumsub`
    provider. A submitted applicant is reviewed GREEN 3 s later (tests steer it through `/_emulator`)."""
    token, secret = "sbx:" + secrets.token_hex(16), secrets.token_hex(32)
    return {
        "PAYOUTS_KYC_PROVIDER": "sumsub",
        "PAYOUTS_KYC_APP_TOKEN": token,
        "PAYOUTS_KYC_SECRET_KEY": secret,
        "PAYOUTS_KYC_LEVEL": "basic-kyc-level",
        "SUMSUB_WEBHOOK_SECRET": secrets.token_hex(24),
        "KYC_EMULATOR_APP_TOKEN": token,
        "KYC_EMULATOR_SECRET_KEY": secret,
        "KYC_EMULATOR_LEVELS": "basic-kyc-level",
        "KYC_EMULATOR_WEBHOOK_URL": "${WEBHOOKS_URL}/providers/sumsub/events",
        "KYC_EMULATOR_WEBHOOK_SECRET": "${SUMSUB_WEBHOOK_SECRET}",
        "KYC_EMULATOR_WEBHOOK_RETRY_BASE_MS": "200",
        "KYC_EMULATOR_AUTO_REVIEW": "green",
        "KYC_EMULATOR_REVIEW_DELAY_MS": "3000",
    }


def upi_env() -> dict[str, str]:
    """The UPI/IMPS/NEFT rail's provider on the local stack: the RazorpayX-shaped emulator (service `upi-api`, found as
    UPI_API_URL) with a random key id and secret (HTTP Basic) and the random webhook secret it signs `payout.*` events
    with, posted to the ingress's `razorpayx` provider. A payout is processed 1.5 s after it is made (NEFT 5 s); a
    validation completes after 1 s. The rail's own settings are RAZORPAYX_*."""
    key_id, secret = "rzp_test_" + secrets.token_hex(7), secrets.token_hex(24)
    return {
        "RAZORPAYX_KEY_ID": key_id,
        "RAZORPAYX_KEY_SECRET": secret,
        "RAZORPAYX_WEBHOOK_SECRET": secrets.token_hex(24),
        "UPI_EMULATOR_KEYS": f"{key_id}:{secret}",
        "UPI_EMULATOR_WEBHOOK_URL": "${WEBHOOKS_URL}/providers/razorpayx/events",
        "UPI_EMULATOR_WEBHOOK_SECRET": "${RAZORPAYX_WEBHOOK_SECRET}",
        "UPI_EMULATOR_WEBHOOK_RETRY_BASE_MS": "200",
        "UPI_EMULATOR_SETTLE_MS": "UPI:1500,IMPS:1500,NEFT:5000,RTGS:5000",
    }


# Each service's providers on the local stack: the variable naming them, and the checkout's own part
# (deploy/local/<file>).
LOCAL_PROVIDERS: dict[str, tuple[str, str]] = {
    "PAYOUTS_PROVIDERS_FILE": ("payouts", "providers.yaml"),
    "WEBHOOKS_PROVIDERS_FILE": ("webhooks", "webhooks.yaml"),
}


def local_providers(root: Path, directory: Path) -> dict[str, str]:
    """The local stack's providers, per service a directory of parts as the k8s bundle mounts them (the services
    merge its `*.yaml` in name order and refuse a provider given twice): the checkout's own (`deploy/local/<file>`,
    linked as `local.yaml`) and each stand-in's (`local/<service>-providers.yaml` in its directory, linked as
    `rail-<name>.yaml`): a new rail's emulator brings its providers, as its deploy component does in the bundle.
    Linked under `directory` on each call, link by link, so a process starting beside sees the old set or the new,
    never an empty directory."""
    from prizeflow_devstack.supervisor import discover_services  # supervisor imports this module

    specs = discover_services(root)
    env: dict[str, str] = {}
    for variable, (service, file) in LOCAL_PROVIDERS.items():
        parts = directory / service
        parts.mkdir(parents=True, exist_ok=True)
        wanted = {"local.yaml": root / "deploy" / "local" / file}
        for spec in specs:
            if (part := spec.directory / "local" / f"{service}-providers.yaml").is_file():
                wanted[f"rail-{spec.name}.yaml"] = part
        for name, source in wanted.items():
            link = parts / name
            if link.is_symlink() and Path(os.readlink(link)) == source:
                continue
            staged = parts / f".{name}.{os.getpid()}"
            staged.unlink(missing_ok=True)
            staged.symlink_to(source)
            staged.replace(link)
        for stale in parts.glob("*.yaml"):
            if stale.name not in wanted:
                stale.unlink(missing_ok=True)
        env[variable] = str(parts)
    return env


def stand_ins_env(root: Path, *, present: Collection[str] = ()) -> list[dict[str, str]]:
    """The settings of each stand-in that brings its own (`local_env` in its `[tool.prizeflow.service]`: a
    `module:function` of its package), for itself and its clients, generated now: one dict per stand-in whose
    `local_env_marker` is not among the keys `present` (a checkout's settings already holding them)."""
    from prizeflow_devstack.supervisor import discover_services  # supervisor imports this module

    made: list[dict[str, str]] = []
    for spec in discover_services(root):
        if spec.local_env is not None and spec.local_env_marker not in present:
            module, function = spec.local_env.split(":", 1)
            made.append(getattr(importlib.import_module(module), function)())
    return made


def stand_in_env(root: Path) -> dict[str, str]:
    """Every stand-in's settings (`stand_ins_env`), together."""
    return {key: value for env in stand_ins_env(root) for key, value in env.items()}


def rates_env() -> dict[str, str]:
    """Claim-time conversion's rates provider on the local stack: the Open Exchange Rates-shaped emulator (service
    `rates-api`, found as RATES_API_URL) with a random App ID, publishing every minute with a small random walk, and the
    pairs rewards converts."""
    app_id = secrets.token_hex(16)
    return {
        "RATES_APP_ID": app_id,
        "RATES_EMULATOR_APP_IDS": app_id,
        "RATES_EMULATOR_PUBLISH_S": "60",
        "RATES_EMULATOR_DRIFT_BPS": "5",
        # Rewards converts these at claim time (ADR 0015): a USD or USDC prize paid in rupees.
        "REWARDS_FX_PAIRS": json.dumps({"USD/INR": 150, "USDC/INR": 150}),
    }


# Settings whose value is another service's address, set from that peer's `<NAME>_URL` where it runs (a value
# already in the environment wins): payouts reads the KYC vendor's API base as a URL, not a variable's name.
PEER_SETTINGS: dict[str, str] = {"PAYOUTS_KYC_BASE_URL": "kyc-api"}
# Settings built from a peer's URL (`{url}`) where that peer runs: payouts screens against the four lists the
# sanctions emulator (`sanctions-lists`) serves at its publishers' paths; a platform without it screens nothing
# (the dev profile allows no list).
PEER_TEMPLATES: dict[str, tuple[str, str]] = {
    "PAYOUTS_SANCTIONS_SOURCES": (
        "sanctions-lists",
        "ofac_sdn={url}/ofac/downloads/sdn.xml,"
        "ofac_consolidated={url}/ofac/downloads/consolidated/consolidated.xml,"
        "eu={url}/eu/fsf/public/files/xmlFullSanctionsList_1_1/content,"
        "un={url}/un/resources/xml/en/consolidated.xml",
    ),
}


def ton_env(stellar_public_key: str) -> dict[str, str]:
    """The TON rail of the local stack: a wallet whose key is the signer's hot key (the same Ed25519 key as the
    Stellar source account), funded with TON and a USDT jetton at the TON emulator's genesis (service `ton-api`,
    found as TON_API_URL). The emulator does not derive addresses from a state init: the address is made up.
    Beside it a highload wallet v3 of the same key (TON_HIGHLOAD_*), for a `ton_wallet` provider with
    `wallet_version: highload_v3` (deploy/local/providers.yaml keeps the v4r2 one; the e2e suite switches)."""
    import hashlib

    from stellar_sdk import StrKey

    public_key = bytes(StrKey.decode_ed25519_public_key(stellar_public_key))
    wallet = "0:" + hashlib.sha256(b"prizeflow-dev-ton-wallet/" + public_key).hexdigest()
    master = "0:" + hashlib.sha256(b"prizeflow-dev-usdt-master").hexdigest()
    jetton_wallet = "0:" + hashlib.sha256(b"prizeflow-dev-usdt-wallet/" + wallet.encode()).hexdigest()
    highload = "0:" + hashlib.sha256(b"prizeflow-dev-ton-highload-wallet/" + public_key).hexdigest()
    highload_jetton_wallet = "0:" + hashlib.sha256(b"prizeflow-dev-usdt-wallet/" + highload.encode()).hexdigest()
    genesis = {
        "wallets": [
            {"address": wallet, "public_key": public_key.hex(), "balance": 100_000 * 10**9},
            {"address": highload, "public_key": public_key.hex(), "balance": 100_000 * 10**9,
             "type": "highload_v3", "subwallet_id": 0x10AD, "timeout": TON_HIGHLOAD_TIMEOUT_S},
        ],
        "jettons": [
            {"master": master, "owner": wallet, "jetton_wallet": jetton_wallet, "balance": 1_000_000 * 10**6},
            {"master": master, "owner": highload, "jetton_wallet": highload_jetton_wallet,
             "balance": 1_000_000 * 10**6},
        ],
    }  # fmt: skip
    return {
        "TON_WALLET_ADDRESS": wallet,
        "TON_WALLET_PUBLIC_KEY": public_key.hex(),
        "TON_USDT_MASTER": master,
        "TON_USDT_JETTON_WALLET": jetton_wallet,
        "TON_EMULATOR_GENESIS": json.dumps(genesis),
        "TON_EMULATOR_BLOCK_MS": "500",
        "SIGNER_TON_WALLET": wallet,
        "SIGNER_TON_JETTONS": json.dumps({"USDT": {"master": master, "wallet": jetton_wallet}}),
        "TON_HIGHLOAD_WALLET_ADDRESS": highload,
        "TON_HIGHLOAD_USDT_JETTON_WALLET": highload_jetton_wallet,
        "SIGNER_TON_HIGHLOAD_WALLET": highload,
        "SIGNER_TON_HIGHLOAD_JETTONS": json.dumps({"USDT": {"master": master, "wallet": highload_jetton_wallet}}),
    }


def identity_env(secret_dir: Path) -> dict[str, str]:
    """The dev profile and the dev identity in `secret_dir/identity` (created on first use)."""
    identity = DevIdentity.ensure(secret_dir / "identity")
    return {"PRIZEFLOW_PROFILE": "dev", "JWT_JWKS_URL": identity.jwks_url}


# What a checkout's settings gained later, each known by one of its variables: the exchange rail, identity
# verification, the UPI rail's emulator, the rates provider's emulator, the chaos bursts (which
# replaced a steady malformed rate).
ADDED_LATER: tuple[tuple[str, Callable[[], dict[str, str]]], ...] = (
    ("EXCHANGE_API_KEY", exchange_env),
    ("PAYOUTS_KYC_PROVIDER", kyc_env),
    ("UPI_EMULATOR_KEYS", upi_env),
    ("RATES_EMULATOR_APP_IDS", rates_env),
    ("SIM_CHAOS_BURST", chaos_env),
)


def dev_env(paths: Paths) -> dict[str, str]:
    """The local settings, generated on first use; values already in the environment win. A checkout whose
    settings predate the dev identity (a shared HS256 `JWT_SECRET`) gets the identity instead, and one whose settings
    predate the webhook ingress or the chaos bursts gets their settings added."""
    file = paths.base / DEV_ENV_FILE
    if file.exists():
        values: dict[str, str] = json.loads(file.read_text())
        changed = False
        if "JWT_JWKS_URL" not in values:
            values.pop("JWT_SECRET", None)
            values.update(identity_env(paths.base / "secrets"))
            changed = True
        missing = {k: v for k, v in webhook_env(paths.root).items() if k not in values}
        if missing:  # settings from before the webhook ingress, or before one of its settings
            if "STRIPE_API_KEY" in values:  # keep the emulator accepting the key the stack already uses
                missing.pop("STRIPE_EMULATOR_API_KEYS", None)
                values.setdefault("STRIPE_EMULATOR_API_KEYS", values["STRIPE_API_KEY"])
            values.update(missing)
            changed = True
        for marker, settings in ADDED_LATER:
            if marker not in values:  # settings from before what `settings` configures
                values.update(settings())
                changed = True
        for brought in stand_ins_env(paths.root, present=values.keys()):  # a stand-in's, when its marker is missing
            if brought and not brought.keys() & values.keys():
                values.update(brought)
                changed = True
        if "TON_WALLET_ADDRESS" not in values or "TON_HIGHLOAD_WALLET_ADDRESS" not in values:
            # Settings from before the TON rail or its highload wallet: both wallets are the same key's.
            with contextlib.suppress(KeyError, ValueError):  # no usable source account: the stack has no TON rail
                values.update(ton_env(values["PAYOUT_SOURCE_ACCOUNT"]))
                changed = True
        # The providers' parts linked afresh (a stand-in added since); settings from before them named the files.
        linked = local_providers(paths.root, paths.base / "providers")
        if any(values.get(k) != v for k, v in linked.items()):
            values |= linked
            changed = True
        added = {k: v for k, v in inr_players_env().items() if k not in values}  # from before the INR players
        values |= added
        changed = changed or bool(added)
        if changed:
            write_private_file(file, json.dumps(values, indent=2).encode(), replace=True)
    else:
        paths.base.mkdir(parents=True, exist_ok=True)
        values = _generate(paths)
        write_private_file(file, json.dumps(values, indent=2).encode(), replace=True)
    return {k: v for k, v in values.items() if k not in os.environ}
