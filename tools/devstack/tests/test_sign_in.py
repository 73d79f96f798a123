"""`make run`'s console banner: the console's address and one dev sign-in link per dev person, once (and only
when) a `console` service runs; and the dev identity provider among the services the stacks start."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text

from prizeflow_devstack import cli
from prizeflow_devstack.paths import find_root
from prizeflow_devstack.platform import Platform
from prizeflow_devstack.sign_in import console_banner, sign_in_links
from prizeflow_devstack.supervisor import RunningService, ServiceSpec, discover_services

EXPECTED = [
    ("olivia", "ops"),
    ("adam", "admin"),
    ("alice", "approver"),
    ("bob", "approver"),
    ("priya", "approver, player"),
    ("player-1", "player"),
]


def running(name: str, port: int | None) -> RunningService:
    spec = ServiceSpec(name=name, directory=Path("/x"), command=("x",))
    return RunningService(spec=spec, pid=1, port=port, log=Path("/x.log"), database_url=None)


def text_of(renderable: object) -> str:
    out = Console(record=True, width=200)
    out.print(renderable)
    return out.export_text()


def test_with_a_console_the_banner_gives_its_url_and_a_sign_in_link_per_person() -> None:
    services = [running("settlement", 8001), running("dev-idp", 8100), running("console", 8200)]
    banner = console_banner(services)
    assert banner is not None
    text = text_of(banner)
    assert "Console: http://127.0.0.1:8200" in text
    rows = [line.split() for line in text.splitlines() if "/auth/login?" in line]
    assert [(row[0], " ".join(row[1:-1]), row[-1]) for row in rows] == [
        (user, roles, f"http://127.0.0.1:8200/auth/login?login_hint={user}") for user, roles in EXPECTED
    ]


def test_without_a_console_nothing_is_printed_for_it() -> None:
    assert console_banner([running("settlement", 8001), running("dev-idp", 8100)]) is None
    assert console_banner([running("console", None)]) is None


def test_a_trailing_slash_on_the_console_url_is_not_doubled() -> None:
    assert sign_in_links("http://c.test/")[0][1] == "http://c.test/auth/login?login_hint=olivia"


def test_up_and_run_print_the_banner_after_the_components(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = Console(record=True, width=200)
    monkeypatch.setattr(cli, "console", recorded)
    monkeypatch.setattr(cli, "_table", lambda *_: Text("components table"))
    cli._banner(Path("/x"), None, [running("console", 8200)], "http://127.0.0.1:9090")  # type: ignore[arg-type]
    text = recorded.export_text()
    assert text.index("components table") < text.index("Console: http://127.0.0.1:8200")
    assert "http://127.0.0.1:8200/auth/login?login_hint=priya" in text


def test_the_dev_identity_provider_is_a_service_of_both_stacks() -> None:
    specs = {s.name: s for s in discover_services(find_root())}
    idp = specs["dev-idp"]
    assert idp.http_port_env == "DEV_IDP_PORT"
    assert not idp.metrics
    make = next(f.default_factory for f in fields(Platform) if f.name == "services")
    assert "dev-idp" in make()  # type: ignore[operator]
