"""The runner: a bad setting is logged, naming it, and the process exits 2; a good one is served as built."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from prizeflow_emulator_kit.runner import Serving, run
from prizeflow_emulator_kit.settings import SettingsError, env_int, env_list, env_port, env_template, env_url


def test_a_bad_setting_exits_2_naming_it(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    def build() -> Serving:
        raise SettingsError("DEMO_EMULATOR_PORT must be an integer, got 'x'")

    monkeypatch.setattr(
        "prizeflow_emulator_kit.runner.web.run_app", lambda *a, **k: pytest.fail("served with a bad setting")
    )
    with pytest.raises(SystemExit) as exited:
        run("prizeflow_demo_emulator", build)
    assert exited.value.code == 2
    assert "invalid configuration: DEMO_EMULATOR_PORT must be an integer" in caplog.text


def test_a_good_build_is_served_where_it_says_without_an_access_log(monkeypatch: pytest.MonkeyPatch) -> None:
    app = web.Application()
    served: dict[str, Any] = {}
    monkeypatch.setattr("prizeflow_emulator_kit.runner.web.run_app", lambda a, **k: served.update(app=a, **k))
    run("prizeflow_demo_emulator", lambda: Serving(app, "127.0.0.1", 4242))
    assert served == {"app": app, "host": "127.0.0.1", "port": 4242, "access_log": None, "print": None}


def test_settings_helpers_name_the_variable() -> None:
    env = {"PORT": "80", "BAD": "x", "BIG": "70000", "URL": "${BASE}/hook", "BASE": "http://h:1", "FTP": "ftp://x"}
    assert env_port(env, "PORT", 1) == 80
    assert env_port(env, "UNSET", 12) == 12
    with pytest.raises(SettingsError, match="BAD must be an integer"):
        env_int(env, "BAD", 0, 0, 10)
    with pytest.raises(SettingsError, match=r"BIG must be within \[0, 65535\]"):
        env_port(env, "BIG", 1)
    assert env_url(env, "URL") == "http://h:1/hook"
    assert env_template(env, "UNSET") is None
    with pytest.raises(SettingsError, match="FTP must be an http"):
        env_url(env, "FTP")
    with pytest.raises(SettingsError, match="NAMES names a variable that is not set"):
        env_template({"NAMES": "${NOPE}"}, "NAMES")
    assert env_list({"L": " a, ,b "}, "L") == ("a", "b")
