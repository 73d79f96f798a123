"""Provider registry configuration: refused at start-up, with the culprit named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_payouts.adapters import config as provider_config
from prizeflow_payouts.application.registry import NoRouteError
from prizeflow_payouts.bootstrap import parse_config, provider_factories
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, Secret

CTX = ProviderContext(live_execution=False, database_url="postgresql+asyncpg://x@127.0.0.1:1/x", provider_timeout_s=1)


def doc(*providers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"providers": list(providers), **extra}


SANDBOX = {"name": "sbx", "type": "sandbox", "assets": ["USDC"], "destination_types": ["sandbox", "stellar_account"]}
MANUAL = {
    "name": "ops_desk",
    "type": "manual",
    "assets": ["USDC", "INR"],
    "destination_types": ["manual", "stellar_account"],
}


def test_unknown_type_is_refused_by_name() -> None:
    with pytest.raises(ProviderConfigError, match=r"provider 'pix': unknown provider type 'pix_rail'"):
        parse_config(doc({**SANDBOX, "name": "pix", "type": "pix_rail"}), CTX, env={})


def test_this_build_implements_every_provider_type_of_the_contract() -> None:
    assert set(provider_factories()) == set(ProviderType)


@pytest.mark.parametrize("ptype", [ProviderType.GIFT_CARD, ProviderType.TON_WALLET])
def test_a_type_missing_from_the_build_is_refused_naming_it(ptype: ProviderType) -> None:
    factories = {t: f for t, f in provider_factories().items() if t is not ptype}
    with pytest.raises(ProviderConfigError, match=rf"provider 'rail': type '{ptype.value}' is not implemented"):
        provider_config.parse_config(
            doc(SANDBOX, {**SANDBOX, "name": "rail", "type": ptype.value}), CTX, env={}, factories=factories
        )


def test_missing_secret_is_refused_naming_the_variable() -> None:
    spec = {**SANDBOX, "secrets": {"webhook_secret": "SBX_HOOK_SECRET"}}
    with pytest.raises(ProviderConfigError, match=r"provider 'sbx': secret 'webhook_secret' needs .*SBX_HOOK_SECRET"):
        parse_config(doc(spec), CTX, env={})


def test_a_secret_value_in_the_file_is_refused() -> None:
    spec = {**SANDBOX, "secrets": {"webhook_secret": "s3cr3t-value!"}}
    with pytest.raises(ProviderConfigError, match="must name an environment variable"):
        parse_config(doc(spec), CTX, env={})


def test_secrets_never_show_themselves() -> None:
    spec = {**SANDBOX, "secrets": {"webhook_secret": "SBX_HOOK_SECRET"}}
    config = parse_config(doc(spec), CTX, env={"SBX_HOOK_SECRET": "very-secret"})
    assert "very-secret" not in repr(config.specs)
    assert "very-secret" not in str(config.registry.get("sbx").public)
    assert repr(Secret("X", "v")) == "Secret(env='X', value='***')"


def test_routing_explicit_then_first_fit_and_preferred_type() -> None:
    routes = [{"asset": "USDC", "destination_type": "stellar_account", "provider": "ops_desk"}]
    config = parse_config(doc(SANDBOX, MANUAL, routes=routes), CTX, env={})
    reg = config.registry
    assert reg.route("USDC", DestinationType.STELLAR_ACCOUNT).name == "ops_desk"
    assert reg.route("USDC", DestinationType.SANDBOX).name == "sbx"
    assert reg.route("USDC", DestinationType.STELLAR_ACCOUNT, ProviderType.SANDBOX).name == "sbx"
    with pytest.raises(NoRouteError, match="INR"):
        reg.route("INR", DestinationType.SANDBOX)


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        ({"assets": ["SP"]}, "not redeemable"),
        ({"assets": ["DOGE"]}, "unknown asset 'DOGE'"),
        ({"destination_types": ["pigeon"]}, r"destination_types.0: Input should be 'stellar_account'"),  # never echoed
        ({"name": "Bad Name"}, "must match"),
        ({"colour": "red"}, "unknown keys"),
        ({"options": {"default_scenario": "nope"}}, "default_scenario 'nope'"),
    ],
)
def test_bad_provider_entries(mutation: dict[str, Any], message: str) -> None:
    with pytest.raises(ProviderConfigError, match=message):
        parse_config(doc({**SANDBOX, **mutation}), CTX, env={})


def test_approval_thresholds_are_exact_decimals() -> None:
    config = parse_config(doc(SANDBOX, approvals={"USDC": {"auto_below": "100.5", "dual_from": "1000"}}), CTX, env={})
    assert config.approvals.rules["USDC"].auto_below == 1_005_000_000
    with pytest.raises(ProviderConfigError, match="decimal places"):
        parse_config(doc(SANDBOX, approvals={"USDC": {"auto_below": "0.00000001"}}), CTX, env={})


@pytest.mark.integration  # starts the service process
@pytest.mark.parametrize(
    ("provider", "env", "expected"),
    [
        (
            {
                "name": "cards",
                "type": "fiat_provider",
                "assets": ["USD"],
                "destination_types": ["stripe_account"],
                "options": {"rail": "wise"},
            },
            {},
            "provider 'cards': fiat_provider rail 'wise' is not implemented",
        ),
        ({**SANDBOX, "secrets": {"webhook_secret": "NOT_SET_ANYWHERE_42"}}, {}, "NOT_SET_ANYWHERE_42"),
    ],
)
def test_the_service_process_refuses_to_start(
    tmp_path: Path, provider: dict[str, Any], env: dict[str, str], expected: str
) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump(doc(provider)))
    run_env = {k: v for k, v in os.environ.items() if k != "NOT_SET_ANYWHERE_42"}
    run_env.update({"PAYOUTS_PROVIDERS_FILE": str(path), "LOG_JSON": "false", "HTTP_PORT": "0", **env})
    result = subprocess.run(
        [sys.executable, "-m", "prizeflow_payouts"], env=run_env, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert expected in result.stderr.decode()


def test_the_shipped_default_config_loads() -> None:
    from prizeflow_payouts.bootstrap import load_config
    from prizeflow_payouts.settings import DEFAULT_PROVIDERS_FILE

    config = load_config(DEFAULT_PROVIDERS_FILE, CTX, env={})
    assert {e.name for e in config.registry} == {"sandbox", "manual"}


SEED = "SBX2" + "A" * 52  # the shape of a Stellar secret seed: S + 55 base32 capitals
WRITTEN_WRONG = "S3CR3T-" + "x" * 20


@pytest.mark.parametrize(
    "document",
    [
        {"providers": {**SANDBOX, "secrets": {"webhook_secret": WRITTEN_WRONG}}},  # a mapping, not a list
        {"providers": [[SANDBOX, {"secrets": {"webhook_secret": WRITTEN_WRONG}}]]},  # an entry that is a list
        doc({**SANDBOX, "options": WRITTEN_WRONG}),
        doc({**SANDBOX, "assets": WRITTEN_WRONG}),
        doc({**SANDBOX, "secrets": {"webhook_secret": SEED}}),  # a seed pasted where a variable name goes
        doc({**SANDBOX, "secrets": {"webhook_secret": "A" * 65}}),
    ],
)
def test_a_refusal_never_echoes_a_value_written_in_the_wrong_place(document: dict[str, Any]) -> None:
    with pytest.raises(ProviderConfigError) as err:
        parse_config(document, CTX, env={})
    message = str(err.value)
    for value in (WRITTEN_WRONG, SEED, "A" * 65):
        assert value not in message, message


# --- a directory of parts (PAYOUTS_PROVIDERS_FILE naming a directory, e.g. a mounted ConfigMap) --------------------

STRIPE_LIKE = {"name": "ops_usd", "type": "manual", "assets": ["USD"], "destination_types": ["email"]}


def parts(directory: Path, **files: Any) -> Path:
    """Each keyword a part (`base_yaml` → base.yaml), laid out as kubelet mounts a ConfigMap: the files in a
    timestamped directory, `..data` pointing at it, and each key a link through `..data`."""
    directory.mkdir(exist_ok=True)
    data = directory / "..2026_01_01_00_00_00.000000001"
    data.mkdir()
    (directory / "..data").symlink_to(data.name)
    for key, content in files.items():
        name = key.replace("_yaml", ".yaml")
        (data / name).write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        (directory / name).symlink_to(Path("..data") / name)
    return directory


def load_dir(directory: Path) -> provider_config.PayoutsConfig:
    return provider_config.load_config(directory, CTX, factories=provider_factories(), env={})


def test_a_directorys_parts_are_merged_in_name_order(tmp_path: Path) -> None:
    directory = parts(
        tmp_path / "providers",
        base_yaml=doc(SANDBOX, approvals={"USDC": {"auto_below": "100"}}),
        rail_manual_yaml=doc(
            MANUAL,
            routes=[{"asset": "USDC", "destination_type": "stellar_account", "provider": "ops_desk"}],
            approvals={"INR": {"dual_from": "50000"}},
        ),
        zz_approvals_yaml={"approvals": {"USD": {"auto_below": "50"}}},
        rail_usd_yaml=doc(STRIPE_LIKE),
    )
    config = load_dir(directory)
    assert [e.name for e in config.registry] == ["sbx", "ops_desk", "ops_usd"]
    assert config.registry.route("USDC", DestinationType.STELLAR_ACCOUNT).name == "ops_desk"
    assert set(config.approvals.rules) == {"USDC", "INR", "USD"}
    assert config.source == str(directory)
    assert provider_config.read_parts(directory)["routes"] == [
        {"asset": "USDC", "destination_type": "stellar_account", "provider": "ops_desk"}
    ]


def test_the_merged_document_is_validated_as_one_file(tmp_path: Path) -> None:
    directory = parts(
        tmp_path / "p",
        a_yaml=doc(SANDBOX),
        b_yaml={"routes": [{"asset": "USDC", "destination_type": "sandbox", "provider": "nobody"}]},
    )
    with pytest.raises(ProviderConfigError, match="unknown provider 'nobody'"):
        load_dir(directory)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"a_yaml": doc(SANDBOX), "b_yaml": doc({**MANUAL, "name": "sbx"})},
            r"provider 'sbx' is declared by two parts: .*/a\.yaml and .*/b\.yaml",
        ),
        (
            {
                "a_yaml": doc(SANDBOX, approvals={"USDC": {"auto_below": "1"}}),
                "b_yaml": {"approvals": {"USDC": {"auto_below": "2"}}},
            },
            r"approvals for USDC are given by two parts: .*/a\.yaml and .*/b\.yaml",
        ),
        (
            {
                "a_yaml": doc(
                    SANDBOX,
                    MANUAL,
                    routes=[{"asset": "USDC", "destination_type": "stellar_account", "provider": "sbx"}],
                ),
                "b_yaml": {
                    "routes": [{"asset": "USDC", "destination_type": "stellar_account", "provider": "ops_desk"}]
                },
            },
            r"a route for USDC to stellar_account is given by two parts: .*/a\.yaml and .*/b\.yaml",
        ),
        (
            {"a_yaml": doc(SANDBOX), "b_yaml": doc(MANUAL)},
            r"USDC to stellar_account is paid by providers of different parts, 'sbx' \(.*/a\.yaml\), "
            r"'ops_desk' \(.*/b\.yaml\): give a `routes` entry",
        ),
        ({"a_yaml": doc(SANDBOX), "b_yaml": {"provider": []}}, r"/b\.yaml: unknown keys \['provider'\]"),
        ({"a_yaml": doc(SANDBOX), "b_yaml": "- just a list\n"}, r"/b\.yaml: a part is a mapping"),
        ({"a_yaml": doc(SANDBOX), "b_yaml": ""}, r"/b\.yaml: a part is a mapping"),
        ({"a_yaml": doc(SANDBOX), "b_yaml": {"providers": [], "approvals": None}}, r"/b\.yaml: the part is empty"),
        ({"a_yaml": doc(SANDBOX), "b_yaml": {"providers": SANDBOX}}, r"/b\.yaml: `providers` must be a list"),
        ({"a_yaml": doc(SANDBOX), "b_yaml": {"approvals": []}}, r"/b\.yaml: `approvals` must be a mapping"),
        ({"a_yaml": doc(SANDBOX), "b_yaml": "providers: ["}, r"/b\.yaml: not valid YAML"),
    ],
)
def test_a_directory_that_cannot_be_merged_is_refused_naming_the_files(
    tmp_path: Path, files: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProviderConfigError, match=message):
        load_dir(parts(tmp_path / "providers", **files))


def test_two_parts_may_serve_one_destination_with_a_route_for_it(tmp_path: Path) -> None:
    route = {"asset": "USDC", "destination_type": "stellar_account", "provider": "ops_desk"}
    config = load_dir(parts(tmp_path / "p", a_yaml=doc(SANDBOX), b_yaml=doc(MANUAL, routes=[route])))
    assert config.registry.route("USDC", DestinationType.STELLAR_ACCOUNT).name == "ops_desk"


def test_a_directory_without_parts_or_with_anything_else_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProviderConfigError, match=r"holds no \*\.yaml part \(PAYOUTS_PROVIDERS_FILE\)"):
        load_dir(parts(tmp_path / "empty"))
    typo = parts(tmp_path / "typo", a_yaml=doc(SANDBOX))
    (typo / "rail.yml").write_text(yaml.safe_dump(doc(MANUAL)))
    with pytest.raises(ProviderConfigError, match=r"rail\.yml: not a \*\.yaml file"):
        load_dir(typo)
    nested = parts(tmp_path / "nested", a_yaml=doc(SANDBOX))
    (nested / "more.yaml").mkdir()
    with pytest.raises(ProviderConfigError, match=r"more\.yaml: not a \*\.yaml file"):
        load_dir(nested)
    with pytest.raises(ProviderConfigError, match="does not exist"):
        load_dir(tmp_path / "absent")
