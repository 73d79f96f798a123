"""The providers file: what it refuses (naming the culprit, never a secret's value) and what it builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from prizeflow_contracts.providers import ProviderType
from prizeflow_devstack.devenv import local_providers, stand_in_env
from prizeflow_devstack.platform import RAIL_EMULATORS
from prizeflow_webhooks.adapters.config import ProvidersConfigError, load_config, parse_config, read_parts

ROOT = Path(__file__).parents[4]
ENV = {
    # What the stand-ins bring for themselves and their clients (a rail's webhook id and pinned certificate...), and
    # where the local stack finds each (`<SERVICE>_URL`), as the devstack gives them.
    **stand_in_env(ROOT),
    **{f"{name.upper().replace('-', '_')}_URL": "http://127.0.0.1:12117" for name in RAIL_EMULATORS},
    "WEBHOOK_SECRET_SANDBOX": "sandbox-secret-0123456789",
    "STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef",
    "STRIPE_WEBHOOK_SECRET_NEXT": "whsec_next_0123456789ab",
    "STRIPE_API_KEY": "sk_test_0123456789abcdef",
    "STRIPE_API_URL": "http://127.0.0.1:12111",
    "GIFTCARD_WEBHOOK_KEY": "giftcard-webhook-key-0123456789",
    "GIFTCARD_API_KEY": "TEST_giftcard_0123456789",
    "GIFTCARD_API_URL": "http://127.0.0.1:12112",
    "SUMSUB_WEBHOOK_SECRET": "sumsub-webhook-secret-0123456789",
    "RAZORPAYX_WEBHOOK_SECRET": "razorpayx-webhook-secret-0123456789",
}
SANDBOX = {"name": "sandbox", "type": "sandbox", "scheme": "prizeflow_signature", "secrets": ["WEBHOOK_SECRET_SANDBOX"]}
STRIPE: dict[str, Any] = {
    "name": "stripe",
    "type": "stripe",
    "scheme": "stripe_signature",
    "secrets": ["STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET_NEXT"],
    "confirm": {"api_base": "https://api.stripe.com", "api_key": "STRIPE_API_KEY", "timeout_s": 3},
}


def parse(*providers: dict[str, Any], dev: bool = False, env: dict[str, str] = ENV) -> Any:
    return parse_config({"providers": list(providers)}, dev=dev, env=env)


def test_a_valid_file_builds_providers_with_their_secrets_and_confirmation() -> None:
    config = parse(SANDBOX, STRIPE)
    sandbox, stripe = config.providers["sandbox"], config.providers["stripe"]
    assert sandbox.type is ProviderType.SANDBOX
    assert sandbox.scheme == "prizeflow_signature"
    assert (sandbox.tolerance_s, sandbox.max_body_bytes, sandbox.confirms) == (300, 65_536, False)
    assert stripe.secrets == (ENV["STRIPE_WEBHOOK_SECRET"], ENV["STRIPE_WEBHOOK_SECRET_NEXT"])
    assert stripe.confirms
    confirm = config.confirm["stripe"]
    assert (confirm.api_base, confirm.api_key, confirm.timeout_s) == (
        "https://api.stripe.com",
        ENV["STRIPE_API_KEY"],
        3,
    )
    assert ENV["STRIPE_API_KEY"] not in repr(confirm)
    assert ENV["WEBHOOK_SECRET_SANDBOX"] not in repr(sandbox)


def test_the_api_base_may_come_from_a_variable_in_the_dev_profile() -> None:
    stripe = {**STRIPE, "confirm": {"api_base_env": "STRIPE_API_URL", "api_key": "STRIPE_API_KEY"}}
    assert parse(stripe, dev=True).confirm["stripe"].api_base == "http://127.0.0.1:12111"


@pytest.mark.parametrize(
    ("provider", "dev", "env", "says"),
    [
        ({**SANDBOX, "secrets": ["MISSING_SECRET"]}, False, ENV, "MISSING_SECRET, which is not set"),
        ({**SANDBOX, "secrets": ["WEBHOOK_SECRET_SANDBOX"]}, False, {"WEBHOOK_SECRET_SANDBOX": "tiny-9k"}, "shorter"),
        ({**SANDBOX, "secrets": ["whsec_live_value"]}, False, ENV, "must name an environment variable"),
        ({**SANDBOX, "secrets": ["S" + "A" * 55]}, False, ENV, "must name an environment variable"),
        ({**SANDBOX, "secrets": ["A" * 65]}, False, ENV, "must name an environment variable"),
        ({**SANDBOX, "secrets": []}, False, ENV, "secrets"),
        ({**SANDBOX, "secrets": ["WEBHOOK_SECRET_SANDBOX"] * 2}, False, ENV, "twice"),
        ({**SANDBOX, "tolerance_s": 901}, False, ENV, "tolerance_s"),
        ({**SANDBOX, "max_body_bytes": 2_000_000}, False, ENV, "max_body_bytes"),
        ({**SANDBOX, "type": "carrier_pigeon"}, False, ENV, "type"),
        ({**SANDBOX, "name": "Bad-Name"}, False, ENV, "name"),
        ({**SANDBOX, "surprise": 1}, False, ENV, "surprise"),
        (
            {**SANDBOX, "scheme": "stripe_signature"},
            False,
            ENV,
            "a sandbox provider signs with scheme prizeflow_signature",
        ),
        ({**STRIPE, "scheme": "prizeflow_signature"}, False, ENV, "stripe_signature"),
        ({**SANDBOX, "confirm": STRIPE["confirm"]}, False, ENV, "confirms no event"),
        ({k: v for k, v in STRIPE.items() if k != "confirm"}, False, ENV, "outside the dev profile"),
        ({**STRIPE, "confirm": {**STRIPE["confirm"], "api_base": "http://api.stripe.com"}}, False, ENV, "https://"),
        ({**STRIPE, "confirm": {**STRIPE["confirm"], "api_key": "NO_KEY"}}, False, ENV, "NO_KEY, which is not set"),
        ({**STRIPE, "confirm": {"api_key": "STRIPE_API_KEY"}}, False, ENV, "exactly one of api_base"),
        ({**STRIPE, "confirm": {"api_base_env": "NO_URL", "api_key": "STRIPE_API_KEY"}}, True, ENV, "NO_URL"),
    ],
)
def test_an_unusable_provider_stops_start_up_naming_it(
    provider: dict[str, Any], dev: bool, env: dict[str, str], says: str
) -> None:
    with pytest.raises(ProvidersConfigError) as refused:
        parse(provider, dev=dev, env=env)
    assert says in str(refused.value)
    for value in env.values():
        assert value not in str(refused.value)


def test_stripe_without_confirmation_is_allowed_in_the_dev_profile_only() -> None:
    unconfirmed = {k: v for k, v in STRIPE.items() if k != "confirm"}
    assert not parse(unconfirmed, dev=True).providers["stripe"].confirms


def test_names_must_be_unique_and_the_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ProvidersConfigError, match="unique"):
        parse(SANDBOX, SANDBOX)
    with pytest.raises(ProvidersConfigError, match="WEBHOOKS_PROVIDERS_FILE"):
        load_config(tmp_path / "absent.yaml", dev=False, env=ENV)
    (tmp_path / "bad.yaml").write_text("providers: [")
    with pytest.raises(ProvidersConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml", dev=False, env=ENV)
    with pytest.raises(ProvidersConfigError, match="providers"):
        parse_config([], dev=False, env=ENV)


def test_the_local_stacks_parts_are_valid_with_the_devstack_variables(tmp_path: Path) -> None:
    """deploy/local's part and each stand-in's, linked as the devstack links them."""
    parts = Path(local_providers(ROOT, tmp_path)["WEBHOOKS_PROVIDERS_FILE"])
    assert len(list(parts.glob("rail-*.yaml"))) >= 1  # a stand-in brings its own part
    config = load_config(parts, dev=True, env=ENV)
    assert {"sandbox", "stripe", "giftcard", "sumsub", "razorpayx"} <= set(config.providers)


# --- a directory of parts (WEBHOOKS_PROVIDERS_FILE naming a directory, e.g. a mounted ConfigMap) -------------------

GIFTCARD: dict[str, Any] = {
    "name": "giftcard",
    "type": "gift_card",
    "scheme": "giftcard_signature",
    "secrets": ["GIFTCARD_WEBHOOK_KEY"],
    "confirm": {"api_base": "https://testflight.tremendous.com", "api_key": "GIFTCARD_API_KEY"},
}


def parts(directory: Path, **files: Any) -> Path:
    """Each keyword a part (`base_yaml` → base.yaml), laid out as kubelet mounts a ConfigMap: the files in a
    timestamped directory, `..data` pointing at it, and each key a link through `..data`."""
    directory.mkdir()
    data = directory / "..2026_01_01_00_00_00.000000001"
    data.mkdir()
    (directory / "..data").symlink_to(data.name)
    for key, content in files.items():
        name = key.replace("_yaml", ".yaml")
        (data / name).write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        (directory / name).symlink_to(Path("..data") / name)
    return directory


def test_a_directorys_parts_are_merged(tmp_path: Path) -> None:
    directory = parts(
        tmp_path / "providers",
        base_yaml={"providers": [SANDBOX, STRIPE]},
        rail_gift_card_yaml={"providers": [GIFTCARD]},
    )
    config = load_config(directory, dev=False, env=ENV)
    assert list(config.providers) == ["sandbox", "stripe", "giftcard"]
    assert set(config.confirm) == {"stripe", "giftcard"}
    assert read_parts(directory) == {"providers": [SANDBOX, STRIPE, GIFTCARD]}


@pytest.mark.parametrize(
    ("files", "says"),
    [
        (
            {"a_yaml": {"providers": [SANDBOX]}, "b_yaml": {"providers": [{**STRIPE, "name": "sandbox"}]}},
            r"provider 'sandbox' is declared by two parts: .*/a\.yaml and .*/b\.yaml",
        ),
        ({"a_yaml": {"providers": [SANDBOX]}, "b_yaml": {"providers": GIFTCARD}}, r"/b\.yaml: a part is a mapping"),
        ({"a_yaml": {"providers": [SANDBOX]}, "b_yaml": {"provider": [GIFTCARD]}}, r"/b\.yaml: a part is a mapping"),
        ({"a_yaml": {"providers": [SANDBOX]}, "b_yaml": ""}, r"/b\.yaml: a part is a mapping"),
        ({"a_yaml": {"providers": [SANDBOX]}, "b_yaml": {"providers": []}}, r"/b\.yaml: the part lists no provider"),
        ({"a_yaml": {"providers": [SANDBOX]}, "b_yaml": "providers: ["}, r"/b\.yaml: not valid YAML"),
        ({}, r"holds no \*\.yaml part \(WEBHOOKS_PROVIDERS_FILE\)"),
        ({"a_yaml": {"providers": [SANDBOX]}, "b_yaml": {"providers": [{**GIFTCARD, "confirm": None}]}}, "confirm"),
    ],
)
def test_a_directory_that_cannot_be_merged_is_refused_naming_the_files(
    tmp_path: Path, files: dict[str, Any], says: str
) -> None:
    with pytest.raises(ProvidersConfigError, match=says) as refused:
        load_config(parts(tmp_path / "providers", **files), dev=False, env=ENV)
    for value in ENV.values():
        assert value not in str(refused.value)


def test_a_directory_with_anything_but_parts_is_refused(tmp_path: Path) -> None:
    typo = parts(tmp_path / "typo", a_yaml={"providers": [SANDBOX]})
    (typo / "giftcard.yml").write_text(yaml.safe_dump({"providers": [GIFTCARD]}))
    with pytest.raises(ProvidersConfigError, match=r"giftcard\.yml: not a \*\.yaml file"):
        load_config(typo, dev=False, env=ENV)
