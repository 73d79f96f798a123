"""overlays/prod cannot reach a cluster with a placeholder in it (issue 44): the installation's own values (the object
store, PostgreSQL's and the HSM client's images by digest, the HSM's address, the API server's range, the identity
provider, the public hosts) are site values (overlays/prod/site.env), and the render fails until each one is set.
Once set, each lands where site.yaml says and no placeholder of the base is left; `prizeflow-k8s --check-overlay`
refuses values that would render and still be placeholders.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from k8s_helpers import k8s_helpers

from prizeflow_devstack import k8s
from prizeflow_devstack.k8s_site import (
    check_databases,
    check_site,
    read_env,
    read_site_lists,
    required_site_keys,
    required_site_lists,
)

H = k8s_helpers()
Doc = dict[str, Any]
PROD = H.K8S / "overlays" / "prod"
ZERO_DIGEST = "sha256:" + "0" * 64
# What the base and the overlay held for a site value until an operator gives theirs (and what they still hold for
# dev): reserved names, a documentation address, the zero digest, the base's own markers.
PLACEHOLDERS = re.compile(
    r"example\.(com|net|org)|\.invalid\b|set-by-site-env|192\.0\.2\.|sha256:0{64}|/hsm-client\b|10\.20\.30\.40"
)
# The release step writes the Prizeflow images' repository and digests (`prizeflow-dev images --push ... --pin`,
# docs/deploy.md "Images"): registry.example.com is that step's, not a site value.
RELEASE = "registry.example.com/prizeflow/"

pytestmark = pytest.mark.k8s


def _render(overlay: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([H.tool("kustomize"), "build", str(overlay)], capture_output=True, text=True, check=False)


def test_the_committed_production_overlay_does_not_render() -> None:
    """Every site value is commented out in git: `kubectl apply -k overlays/prod` stops at once, naming the value."""
    committed = read_env(PROD / "site.env")
    assert committed == {}, "site.env in git holds no installation's values"
    out = _render(PROD)
    assert out.returncode != 0
    assert re.search(r"fieldPath `data\.[a-z-]+` is missing for replacement source .*prizeflow-site", out.stderr)


@pytest.mark.parametrize("key", sorted(H.SITE))
def test_each_site_value_is_required(key: str, tmp_path: Path) -> None:
    """Leave out any one value and the render fails naming it."""
    copy = tmp_path / "k8s"
    shutil.copytree(H.checkout(), copy)
    (copy / "overlays" / "prod" / "site.env").write_text(H.site_env({k: v for k, v in H.SITE.items() if k != key}))
    out = _render(copy / "overlays" / "prod")
    assert out.returncode != 0
    assert f"fieldPath `data.{key}` is missing" in out.stderr


def test_the_site_values_are_the_ones_the_overlay_reads() -> None:
    """site.env and site-lists.yaml document every key site.yaml reads, the checker knows each, and the tests give
    each a value."""
    from prizeflow_devstack.k8s_site import LIST_RULES, SITE_RULES

    required = required_site_keys(PROD)
    documented = set(re.findall(r"^#([a-z-]+)=$", (PROD / "site.env").read_text(), re.MULTILINE))
    assert required == documented == set(H.SITE)
    assert set(SITE_RULES) == required
    lists = required_site_lists(PROD)
    documented_lists = set(re.findall(r"^#  ([a-z-]+):$", (PROD / "site-lists.yaml").read_text(), re.MULTILINE))
    assert lists == documented_lists == set(H.SITE_LISTS) == set(LIST_RULES)
    assert read_site_lists(PROD) == {}, "site-lists.yaml in git holds no installation's values"


@pytest.mark.parametrize("key", sorted(H.SITE_LISTS))
def test_each_site_list_is_required(key: str, tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(H.checkout(), copy)
    lists = {k: v for k, v in H.SITE_LISTS.items() if k != key}
    (copy / "overlays" / "prod" / "site-lists.yaml").write_text(H.site_lists(lists))
    out = _render(copy / "overlays" / "prod")
    assert out.returncode != 0
    assert f"fieldPath `spec.{key}` is missing for replacement source SiteValues" in out.stderr


def test_once_set_every_value_is_where_it_belongs_and_no_placeholder_is_left() -> None:
    docs = H.rendered("prod")
    site = H.SITE
    text = json.dumps(docs).replace(RELEASE, "")
    assert not PLACEHOLDERS.findall(text), sorted(set(PLACEHOLDERS.findall(text)))
    stores = H.of_kind(docs, "ObjectStore")
    assert {s["spec"]["configuration"]["endpointURL"] for s in stores} == {f"https://{site['object-store-host']}"}
    assert {c["spec"]["imageName"] for c in H.of_kind(docs, "Cluster")} == {site["postgres-image"]}
    signer = H.named(docs, "Deployment", "signer")["spec"]["template"]["spec"]
    assert [c["image"] for c in signer["initContainers"]] == [site["hsm-client-image"]]
    hsm = H.named(docs, "NetworkPolicy", "signer-to-hsm")["spec"]["egress"]
    assert hsm == [
        {
            "to": [{"ipBlock": {"cidr": site["hsm-address"]}}],
            "ports": [{"protocol": "TCP", "port": int(site["hsm-port"])}],
        }
    ]
    common = H._config(docs, H._container(H.named(docs, "Deployment", "settlement")))
    console = H._config(docs, H._container(H.named(docs, "Deployment", "console")))
    payouts = H._config(docs, H._container(H.named(docs, "Deployment", "payouts")))
    rewards = H._config(docs, H._container(H.named(docs, "Deployment", "rewards")))
    assert (common["JWT_ISSUER"], common["JWT_JWKS_URL"]) == (site["identity-issuer"], site["identity-jwks-url"])
    assert (console["OIDC_ISSUER"], console["OIDC_DISCOVERY_URL"]) == (
        site["identity-issuer"],
        site["identity-discovery-url"],
    )
    assert console["CONSOLE_PUBLIC_URL"] == f"https://{site['console-host']}"
    assert payouts["SOROBAN_RPC_URL"] == site["soroban-rpc-url"]
    signer = H._config(docs, H._container(H.named(docs, "Deployment", "signer")))
    assert payouts["PAYOUT_SOURCE_ACCOUNT"] == signer["PAYOUT_SOURCE_ACCOUNT"] == site["payout-source-account"]
    assert (rewards["REWARDS_TOPUP_SUCCESS_URL"], rewards["REWARDS_TOPUP_CANCEL_URL"]) == (
        site["topup-success-url"],
        site["topup-cancel-url"],
    )
    for name, host in (("console", site["console-host"]), ("webhooks", site["webhooks-host"])):
        ingress = H.named(docs, "Ingress", name)["spec"]
        assert [r["host"] for r in ingress["rules"]] == [host]
        assert [t["hosts"] for t in ingress["tls"]] == [[host]]
    allowed = {
        a: h for part in H._allowlist(docs).values() for a, h in H._acl_hosts(part).items() if a == "object_store"
    }
    assert allowed == {"object_store": frozenset({site["object-store-host"]})}


def test_the_base_keeps_its_placeholders_where_only_a_site_value_replaces_them() -> None:
    """What the checks above would catch is really there to be replaced: dev renders the base's values."""
    text = json.dumps(H.rendered("dev"))
    assert "object-store.invalid" in text
    assert "id.example.com" in text
    assert not H.of_kind(H.rendered("dev"), "ObjectStore"), "and dev uses none of the object store's"


def test_the_checker_passes_the_operators_values_and_names_each_placeholder(tmp_path: Path) -> None:
    overlay = H.checkout() / "overlays" / "prod"
    assert check_site(overlay) == []
    assert check_databases(overlay, k8s.DATABASES) == []
    bad = dict(
        H.SITE,
        **{
            "object-store-host": "s3.example.com",
            "postgres-image": "ghcr.io/cloudnative-pg/postgresql:16.4",
            "hsm-client-image": "hsm-vendor.example.com/pkcs11-client@" + ZERO_DIGEST,
            "hsm-address": "10.0.0.0/8",
            "identity-jwks-url": "http://login.prizeflow.test/keys",
        },
    )
    copy = tmp_path / "prod"
    shutil.copytree(overlay, copy)
    (copy / "site.env").write_text(H.site_env(bad))
    problems = check_site(copy)
    for key in ("object-store-host", "postgres-image", "hsm-client-image", "hsm-address"):
        assert any(p.startswith(f"site.env: {key}:") for p in problems), (key, problems)
    assert any("identity-jwks-url" in p and "https://" in p for p in problems)
    pg15 = "ghcr.io/cloudnative-pg/postgresql@sha256:" + "a" * 64
    (copy / "site.env").write_text(H.site_env(dict(H.SITE, **{"postgres-image": pg15})))
    assert check_site(copy) == [
        f"site.env: postgres-image: {pg15} has no tag: CloudNativePG reads the PostgreSQL "
        "major from it (keep the tag before the digest)"
    ]
    (copy / "site.env").write_text(H.site_env({k: v for k, v in H.SITE.items() if k != "hsm-port"}))
    assert check_site(copy) == ["site.env: hsm-port is not set"]


def test_the_checker_refuses_an_api_server_list_that_is_a_placeholder_too_wide_or_not_a_list(tmp_path: Path) -> None:
    overlay = tmp_path / "prod"
    shutil.copytree(H.checkout() / "overlays" / "prod", overlay)

    def problems(entries: object) -> list[str]:
        (overlay / "site-lists.yaml").write_text(H.site_lists({"kubernetes-api": entries}))
        return check_site(overlay)

    block = {"ipBlock": {"cidr": "172.20.0.10/32"}}
    assert problems([block, {"ipBlock": {"cidr": "172.20.1.0/24"}}]) == []
    assert problems([{"ipBlock": {"cidr": "192.0.2.10/32"}}]) == [
        "site-lists.yaml: kubernetes-api: 192.0.2.10/32 is a documentation range (RFC 5737), a placeholder"
    ]
    assert problems([{"ipBlock": {"cidr": "10.0.0.0/8"}}]) == [
        "site-lists.yaml: kubernetes-api: 10.0.0.0/8 is wider than a /16: name the address itself"
    ]
    assert "no `except`" in " ".join(problems([{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}]))
    assert "names a range twice" in " ".join(problems([block, block]))
    assert "is not a list" in " ".join(problems("172.20.0.10/32"))
    (overlay / "site-lists.yaml").write_text(H.site_lists({}))
    assert check_site(overlay) == ["site-lists.yaml: kubernetes-api is not set"]


def test_the_checker_runs_as_the_command_the_docs_give() -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "prizeflow-k8s"), "--check-overlay", str(PROD)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    assert f"{PROD}: site.env: postgres-image is not set" in out.stderr.splitlines()


def test_the_checker_refuses_a_restore_that_would_restore_nothing_or_into_its_origin(tmp_path: Path) -> None:
    """A restore is a NEW cluster of the same service, to a past UTC time, with its component listed: the checker
    names each way to get it wrong before kustomize renders it."""
    overlay = tmp_path / "prod"
    shutil.copytree(PROD, overlay)

    def problems(databases: dict[str, str], *, listed: bool = True) -> list[str]:
        (overlay / "databases.env").write_text(H.site_env(read_env(PROD / "databases.env") | databases))
        kustomization = H.yaml.safe_load((PROD / "kustomization.yaml").read_text())
        if listed:
            kustomization["components"].append("../../components/restore/settlement")
        (overlay / "kustomization.yaml").write_text(H.yaml.safe_dump(kustomization))
        return check_databases(overlay, k8s.DATABASES)

    good = {
        "settlement": "settlement-db-r1",
        "settlement-restore-from": "settlement-db",
        "settlement-restore-target-time": "2026-11-25 13:00:00.000000+00",
    }
    assert problems(good) == []
    assert "restores into settlement-db, the cluster it restores from" in " ".join(
        problems(good | {"settlement": "settlement-db"})
    )
    assert "is not a cluster of settlement" in " ".join(problems(good | {"settlement-restore-from": "payouts-db"}))
    assert "(UTC)" in " ".join(problems(good | {"settlement-restore-target-time": "2026-11-25T13:00:00Z"}))
    assert "in the future" in " ".join(problems(good | {"settlement-restore-target-time": "2999-01-01 00:00:00+00"}))
    assert "restores nothing" in " ".join(problems(good, listed=False))
    assert "set settlement-restore-from" in " ".join(problems({"settlement": "settlement-db-r1"}))
    assert "is not `settlement-db`" in " ".join(problems({"settlement": "settlement-app-db"}, listed=False))
    assert "is not `settlement-db`" in " ".join(problems({"settlement": "settlement-db-rw"}, listed=False))


def _base_values() -> dict[str, str]:
    """What the bundle holds where each site value goes: the first target of each of site.yaml's replacements, in a
    render of the operator's overlay without them (a delimited target's part, as the replacement would write it)."""
    copy = H.checkout().parent / "without-site-values"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(H.checkout(), copy)
    overlay = copy / "overlays" / "prod"
    kustomization = H.yaml.safe_load((overlay / "kustomization.yaml").read_text())
    kustomization.pop("replacements")
    (overlay / "kustomization.yaml").write_text(H.yaml.safe_dump(kustomization))
    replacements = H.yaml.safe_load((PROD / "site.yaml").read_text())
    for component in kustomization.get("components", []):  # a component that reads a site value (signer-hsm)
        path = (overlay / component / "kustomization.yaml").resolve()
        declared = H.yaml.safe_load(path.read_text())
        site = [r for r in declared.get("replacements", []) if r.get("source", {}).get("name") == "prizeflow-site"]
        if site:
            replacements += site
            declared["replacements"] = [r for r in declared["replacements"] if r not in site]
            path.write_text(H.yaml.safe_dump(declared))
    docs = H.build(overlay)
    values = {}
    for replacement in replacements:
        source = replacement["source"]
        key = source["fieldPath"].removeprefix("data.")
        if source["kind"] != "ConfigMap" or key in values or source.get("options"):
            continue  # a list (site-lists.yaml), or a part of a value its first replacement writes whole
        target = replacement["targets"][0]
        select = target["select"]
        [doc] = [
            d for d in docs if d["kind"] == select["kind"] and d["metadata"]["name"].startswith(select.get("name", ""))
        ][:1]
        node: Any = doc
        for part in re.split(r"(?<!\\)\.", target["fieldPaths"][0]):
            named = re.fullmatch(r"\[name=(.+)\]", part)
            if named:
                node = next(x for x in node if x["name"] == named.group(1))
            else:
                node = node[int(part)] if isinstance(node, list) else node[part.replace("\\.", ".")]
        value = str(node)
        if options := target.get("options"):
            value = value.split(options["delimiter"])[options["index"]]
        values[key] = value
    return values


def test_a_site_value_left_as_the_bundle_holds_it_is_refused(tmp_path: Path) -> None:
    """Each site value replaces something in the bundle: the bundle's own value there (a placeholder, or the base's
    development setting: port 1 for the HSM, Stellar's testnet RPC under prod's public network) given back as the
    site value renders and must still be refused."""
    from prizeflow_devstack.k8s_site import BASE_PLACEHOLDERS

    base = _base_values()
    assert base == dict(BASE_PLACEHOLDERS), "k8s_site.BASE_PLACEHOLDERS is what the bundle holds"
    overlay = tmp_path / "prod"
    shutil.copytree(H.checkout() / "overlays" / "prod", overlay)
    for key, value in base.items():
        (overlay / "site.env").write_text(H.site_env(H.SITE | {key: value}))
        problems = check_site(overlay)
        assert [p for p in problems if p.startswith(f"site.env: {key}: ")], (key, value, problems)


def test_the_checker_refuses_the_example_registry_and_the_development_digests(tmp_path: Path) -> None:
    """overlays/prod pins the Prizeflow images of a development build in registry.example.com until a release pins
    its own: every one is refused, naming the image; a release's (its registry, its digests) passes. The set of
    development digests is what is committed."""
    from prizeflow_devstack.k8s_site import DEVELOPMENT_DIGESTS, check_images

    committed = H.yaml.safe_load((PROD / "kustomization.yaml").read_text())["images"]
    prizeflow = [i for i in committed if i["name"].startswith("prizeflow/")]
    assert {i["digest"] for i in prizeflow} == DEVELOPMENT_DIGESTS
    problems = check_images(PROD)
    for image in prizeflow:
        assert any(f"images: {image['name']}: registry.example.com/" in p for p in problems), image
        assert any(f"images: {image['name']}: {image['digest']} is a development build's" in p for p in problems)
    assert not [p for p in problems if "docker.io/ubuntu/squid" in p], "a public image pinned by its digest"
    overlay = tmp_path / "prod"
    shutil.copytree(PROD, overlay)
    released = [
        i | {"newName": f"registry.prizeflow.test/prizeflow/{i['name'].split('/')[1]}", "digest": "sha256:" + "3" * 64}
        if i["name"].startswith("prizeflow/")
        else i
        for i in committed
    ]
    kustomization = H.yaml.safe_load((PROD / "kustomization.yaml").read_text()) | {"images": released}
    (overlay / "kustomization.yaml").write_text(H.yaml.safe_dump(kustomization))
    assert check_images(overlay) == []
    out = subprocess.run(
        [str(Path(sys.executable).parent / "prizeflow-k8s"), "--check-overlay", str(PROD)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "images: prizeflow/payouts: registry.example.com/prizeflow/payouts is in registry.example.com" in out.stderr
