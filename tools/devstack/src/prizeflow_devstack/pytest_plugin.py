"""pytest fixtures for real infrastructure: provisioned lazily, errors (never skips) when missing.

The session runs in the dev profile with its own dev identity (a key pair in a private temporary directory):
every service settings object a test builds verifies tokens against that JWKS, and test helpers mint tokens
with its private key (`prizeflow_runtime.dev_identity.dev_bearer`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from prizeflow_devstack import owners
from prizeflow_devstack.devenv import IDENTITY_ENV
from prizeflow_devstack.infra import Infra, create_database, drop_database, ensure_infra, stop_infra, sweep_orphans
from prizeflow_devstack.procs import run_sync
from prizeflow_devstack.topics import delete_suffixed
from prizeflow_runtime.dev_identity import DevIdentity

# The identity settings (IDENTITY_ENV) belong to the session: whatever the developer's shell says, tests run
# on their own keys.
_SAVED_ENV = pytest.StashKey[dict[str, str | None]]()
_IDENTITY_DIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    directory = Path(tempfile.mkdtemp(prefix="prizeflow-identity-"))
    identity = DevIdentity.ensure(directory)
    config.stash[_IDENTITY_DIR] = directory
    config.stash[_SAVED_ENV] = {key: os.environ.get(key) for key in IDENTITY_ENV}
    for key in IDENTITY_ENV:
        os.environ.pop(key, None)
    os.environ["PRIZEFLOW_PROFILE"] = "dev"
    os.environ["JWT_JWKS_URL"] = identity.jwks_url


def pytest_unconfigure(config: pytest.Config) -> None:
    for key, value in config.stash.get(_SAVED_ENV, {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if (directory := config.stash.get(_IDENTITY_DIR, None)) is not None:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def dev_identity() -> DevIdentity:
    """The session's dev identity: what `JWT_JWKS_URL` publishes, with the private key to mint tokens."""
    return DevIdentity.from_jwks_url(os.environ["JWT_JWKS_URL"])


def _teardown_requested() -> bool:
    explicit = os.environ.get("PRIZEFLOW_DEVSTACK_TEARDOWN")
    if explicit is not None:
        return explicit.strip().lower() in {"1", "true", "yes"}
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """Real PostgreSQL + Kafka for the session; left running afterwards unless teardown is requested (CI) and
    this session started them: a session nested in another (a test that runs pytest) or next to a developer's
    running stack never stops infrastructure someone else is using."""
    provisioned = ensure_infra()
    sweep_orphans(provisioned)  # what a killed session or bench left
    saved = {key: os.environ.get(key) for key in provisioned.env()}
    os.environ.update(provisioned.env())  # subprocesses started by tests inherit them
    yield provisioned
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if _teardown_requested() and provisioned.started:
        stop_infra()


class MigrationTemplates:
    """One database per alembic.ini, migrated to head once per test session; a test gets a copy of it (`CREATE
    DATABASE … TEMPLATE`): the same schema a fresh migration gives, for a file copy instead of every migration.
    Tests about the migrations themselves keep using `fresh_database` and run them."""

    def __init__(self, infra: Infra) -> None:
        self.infra = infra
        self.templates: dict[str, str] = {}

    async def copy(self, alembic_ini: str, name: str) -> str:
        """`alembic_ini` is an absolute path (the template's key)."""
        from prizeflow_runtime.migrations import upgrade_to_head

        key = alembic_ini
        template = self.templates.get(key)
        if template is None:
            template = f"tmpl_{uuid.uuid4().hex[:16]}"
            owners.claim("database", template)
            url = await create_database(self.infra, template)
            await upgrade_to_head(key, url)
            self.templates[key] = template
        owners.claim("database", name)
        return await create_database(self.infra, name, template=template)

    def drop_all(self) -> None:
        for template in self.templates.values():
            run_sync(lambda t=template: drop_database(self.infra, t))  # type: ignore[misc]
            owners.release("database", template)


@pytest.fixture(scope="session")
def migration_templates(infra: Infra) -> Iterator[MigrationTemplates]:
    templates = MigrationTemplates(infra)
    yield templates
    templates.drop_all()


@pytest.fixture
def migrated_database(infra: Infra, migration_templates: MigrationTemplates) -> Iterator[Callable[[str], str]]:
    """`migrated_database(alembic_ini)`: asyncpg URL of a new database at that schema's head (a copy of the
    session's migrated template), dropped WITH (FORCE) after the test."""
    made: list[str] = []

    def make(alembic_ini: str) -> str:
        name = f"test_{uuid.uuid4().hex[:16]}"
        made.append(name)
        ini = str(Path(alembic_ini).resolve())
        return run_sync(lambda: migration_templates.copy(ini, name))

    yield make
    for name in made:
        run_sync(lambda n=name: drop_database(infra, n))  # type: ignore[misc]
        owners.release("database", name)


@pytest.fixture
def fresh_database(infra: Infra) -> Iterator[str]:
    """asyncpg URL of a new uniquely named database, dropped WITH (FORCE) after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    owners.claim("database", name)
    url = run_sync(lambda: create_database(infra, name))
    yield url
    run_sync(lambda: drop_database(infra, name))
    owners.release("database", name)


@pytest.fixture(scope="session")
def kafka_bootstrap(infra: Infra) -> str:
    return infra.kafka_bootstrap


@pytest.fixture
def topic_suffix(infra: Infra) -> Iterator[str]:
    """A fresh `KAFKA_TOPIC_SUFFIX` for one test. Whoever starts a service with it provisions its topics first;
    afterwards every `*<suffix>` and `*<suffix>.dlq` topic is deleted, so a run leaves no topics behind (a
    broker that kept them all ran out of open files after a few runs)."""
    suffix = f".t{uuid.uuid4().hex[:12]}"
    owners.claim("topics", suffix)
    yield suffix
    delete_suffixed(infra.kafka_bootstrap, suffix)
    owners.release("topics", suffix)
