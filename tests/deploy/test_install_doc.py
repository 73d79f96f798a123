"""docs/deploy.md's Kubernetes steps against the rendered bundle (issue 44): what an operator types to install, to
let game servers in and to back up on demand. Each `kubectl apply -k` applies its stage and the three stages apply
every object once; each `wait` waits for objects that stage created; the names, Secrets and selectors exist.
(Whether each command names its test, or says it needs a real cluster: tests/deploy/test_restore_runbook.py.)
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest
from k8s_helpers import k8s_helpers
from k8s_procedures import commands as procedure_commands
from runbook_docs import ROOT, parse

from prizeflow_devstack import k8s

H = k8s_helpers()
Doc = dict[str, Any]
DOC = ROOT / "docs" / "deploy.md"
STAGES = ("platform", "migrate", "apps")
# `kubectl wait` resources by the name kubectl accepts, as the manifests' kinds.
KINDS = {
    "kafka": "Kafka",
    "kafkauser": "KafkaUser",
    "kafkatopic": "KafkaTopic",
    "externalsecret": "ExternalSecret",
    "cluster.postgresql.cnpg.io": "Cluster",
    "job": "Job",
    "backups.postgresql.cnpg.io": "Backup",
    "deployment": "Deployment",
    "pod": "Pod",
}

pytestmark = pytest.mark.k8s


@cache
def commands(step: str) -> tuple[tuple[str, ...], ...]:
    """The step's commands as the shell runs them (a one-line loop unrolled), words up to a pipe."""
    found = tuple(c.argv for c in procedure_commands(DOC, step, H.checkout()))
    assert found, f"docs/deploy.md has no k8s:{step} block"
    return found


def option(argv: tuple[str, ...], name: str) -> str | None:
    for i, word in enumerate(argv):
        if word == name and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def stage_of(doc: Doc) -> str | None:
    return (doc["metadata"].get("labels") or {}).get("prizeflow.io/stage")


def test_the_three_stages_apply_the_whole_bundle_once() -> None:
    """`kubectl apply -k ... -l prizeflow.io/stage=<stage>` skips an object without the label: every object of the
    production bundle (and of each component) is in exactly one of the three stages."""
    for docs in (
        H.rendered("prod"),
        *(H.rendered_with("prod", c) for c in ("kyc/sumsub", "fx/openexchangerates", *H.RAILS)),
    ):
        unstaged = [f"{d['kind']}/{d['metadata']['name']}" for d in docs if stage_of(d) not in STAGES]
        assert not unstaged, f"applied by no stage: {unstaged}"


def test_every_install_command_applies_its_stage_and_waits_for_what_it_created() -> None:
    docs = H.rendered("prod")
    applied: list[str] = []
    created: set[str] = set()
    jobs_deleted = False
    for argv in commands("install"):
        if argv[3:5] == ("rollout", "status"):  # a Deployment of a stage applied before
            kind_word, _, name = argv[5].partition("/")
            assert KINDS[kind_word] in created, argv
            assert name in {d["metadata"]["name"] for d in docs if d["kind"] == KINDS[kind_word]}, argv
        elif argv[3] == "logs":  # the preflight's redirect chains, once its stage ran
            assert argv[4] == "job/payouts-preflight", argv
            assert applied[-1] == "migrate", "the preflight's log once it ran"
        elif argv[3] == "wait" and option(argv, "--for") == "delete":  # the previous run's pods gone
            assert argv[5] == "pod", argv
            assert jobs_deleted, "the pods of the Jobs the step deleted"
        elif argv[:2] == ("kubectl", "apply"):
            assert option(argv, "-k") == "overlays/prod", argv
            selector = str(option(argv, "-l"))
            stage = selector.removeprefix("prizeflow.io/stage=")
            assert stage in STAGES, argv
            assert [d for d in docs if stage_of(d) == stage], f"{selector} applies nothing"
            applied.append(stage)
            created |= {d["kind"] for d in docs if stage_of(d) == stage}
        elif argv[3] == "wait":
            target = argv[5]
            kind_word, _, name = target.partition("/")
            kind = KINDS[kind_word]
            if kind == "Backup":
                # CloudNativePG creates a Backup for each ScheduledBackup that is `immediate` (labelled so).
                assert option(argv, "-l") == "cnpg.io/immediateBackup=true"
                assert "ScheduledBackup" in created
                immediate = [d for d in docs if d["kind"] == "ScheduledBackup" and d["spec"]["immediate"]]
                assert len(immediate) == len(k8s.DATABASES)
                continue
            assert kind in created, f"{' '.join(argv)} waits for a {kind} no stage applied yet"
            of_kind = {d["metadata"]["name"] for d in docs if d["kind"] == kind}
            if name:
                assert name in of_kind, argv
            elif option(argv, "-l"):
                picked = {
                    d["metadata"]["name"] for d in docs if d["kind"] == kind and _selects(str(option(argv, "-l")), d)
                }
                assert picked, argv
            else:
                assert "--all" in argv, argv
        elif argv[3] == "delete":
            assert option(argv, "-l") == "prizeflow.io/stage=migrate"
            jobs_deleted = True
    assert applied == list(STAGES), "platform, then migrations, then the apps"


def _selects(selector: str, doc: Doc) -> bool:
    labels = doc["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in (t.split("=", 1) for t in selector.split(",")))


def test_the_game_servers_get_their_namespace_and_credentials() -> None:
    """Their namespace is the one the Kafka listener `games` admits, and the Secret they get holds the password of
    the KafkaUser game-servers and the cluster CA, read from the Secrets Strimzi writes (named after the user and
    the cluster)."""
    [apply, copy] = commands("game-servers")
    assert apply == ("kubectl", "apply", "-k", "game-servers")
    [namespace] = [d for d in H.build(H.checkout() / "game-servers") if d["kind"] == "Namespace"]
    assert copy[:3] == ("kubectl", "-n", namespace["metadata"]["name"])
    docs = H.rendered("prod")
    kafka = next(d for d in docs if d["kind"] == "Kafka")
    assert "game-servers" in {d["metadata"]["name"] for d in docs if d["kind"] == "KafkaUser"}
    line = " ".join(copy)
    assert "get secret game-servers -o jsonpath='{.data.password}'" in _line("game-servers", "create secret")
    assert f"get secret {kafka['metadata']['name']}-cluster-ca-cert" in line
    assert "--from-literal=ca.crt=" in line
    assert "--from-literal=password=" in line


def _line(step: str, contains: str) -> str:
    for block in parse(DOC).blocks:
        if re.search(rf"\bk8s:{step}\b", block.info):
            for line in block.command_lines():
                if contains in line:
                    return line
    raise AssertionError(f"no k8s:{step} line with {contains!r}")


def test_an_on_demand_backup_goes_through_the_plugin() -> None:
    [backup, wait] = commands("backup")
    clusters = {d["metadata"]["name"] for d in H.rendered("prod") if d["kind"] == "Cluster"}
    assert backup[:3] == ("kubectl", "cnpg", "backup")
    assert backup[3] in clusters
    assert (option(backup, "--method"), option(backup, "--plugin-name")) == ("plugin", "barman-cloud.cloudnative-pg.io")
    assert wait[5] == f"backups.postgresql.cnpg.io/{option(backup, '--backup-name')}"


def test_the_site_step_runs_the_checker_on_the_production_overlay() -> None:
    assert commands("site") == (("uv", "run", "--frozen", "prizeflow-k8s", "--check-overlay", "overlays/prod"),)
