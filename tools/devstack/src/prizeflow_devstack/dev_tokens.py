"""`prizeflow-dev token`: a bearer token the local stack accepts, signed by its dev identity.

So that runbooks can run on the devstack as they run in production, with the ops CLI and a token:
`export PRIZEFLOW_OPS_TOKEN=$(uv run prizeflow-dev token --role ops --user alice)`. The key is the one the
devstack's services verify against, found as they find it: `JWT_JWKS_URL` from the environment when set (it wins
for the services too), else `.devstack/dev-env.json`. Nothing is created here: without a devstack identity, or
outside the dev profile, or with a JWKS that is not a local `file://` one (an identity provider's), it refuses.
One token names every service's dev audience, so one ops token reaches every admin API of the stack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from prizeflow_contracts.ids import IDENTIFIER_PATTERN
from prizeflow_devstack.devenv import DEV_ENV_FILE
from prizeflow_devstack.paths import Paths
from prizeflow_devstack.supervisor import discover_services
from prizeflow_runtime.auth import Role
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.settings import DEV_ISSUER, audience_for

MAX_TTL_S: Final = 12 * 3600
# The subject the services accept (prizeflow_runtime.auth): anything else would be a token every call refuses.
_USER = re.compile(IDENTIFIER_PATTERN)


class DevTokenRefusedError(Exception):
    """No token: the reason says which setting or file is missing or wrong (never a key)."""


def _dev_settings(root: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The identity settings the devstack's services run with: the environment's, over `.devstack/dev-env.json`."""
    file = Paths(root).base / DEV_ENV_FILE
    stored: dict[str, str] = {}
    if file.exists():
        try:
            loaded = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DevTokenRefusedError(f"{file} cannot be read: {err}") from None
        stored = {k: v for k, v in loaded.items() if isinstance(v, str)} if isinstance(loaded, dict) else {}
    elif "JWT_JWKS_URL" not in env:
        raise DevTokenRefusedError(
            f"no devstack identity ({file} does not exist): start the stack with `prizeflow-dev up` first"
        )
    keys = ("PRIZEFLOW_PROFILE", "JWT_JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_ROLES_CLAIM")
    return {k: v for k in keys if (v := env.get(k, stored.get(k)))}


def dev_token(
    root: Path,
    env: Mapping[str, str],
    *,
    user: str,
    roles: Sequence[str],
    ttl_s: int = 3600,
    audiences: Sequence[str] = (),
) -> str:
    """A token for `user` holding `roles`, for every discovered service's dev audience (or `audiences`)."""
    settings = _dev_settings(root, env)
    profile = settings.get("PRIZEFLOW_PROFILE", "production")
    if profile != "dev":
        raise DevTokenRefusedError(
            f"PRIZEFLOW_PROFILE is {profile!r}: dev tokens are for the dev profile only "
            "(production tokens come from the identity provider)"
        )
    jwks_url = settings.get("JWT_JWKS_URL", "")
    if not jwks_url.startswith("file://"):
        raise DevTokenRefusedError(
            "JWT_JWKS_URL is not the dev identity's file:// JWKS: that key belongs to an identity provider"
        )
    unknown = sorted(set(roles) - {r.value for r in Role})
    if not roles or unknown:
        raise DevTokenRefusedError(f"--role must be one of {', '.join(r.value for r in Role)}; got {unknown or 'none'}")
    if not _USER.fullmatch(user):
        raise DevTokenRefusedError("--user must be a simple identifier (letters, digits, . _ : -; at most 128)")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise DevTokenRefusedError(f"--ttl must be between 1 and {MAX_TTL_S} seconds")
    try:
        identity = DevIdentity.from_jwks_url(jwks_url)
    except (OSError, ValueError) as err:
        raise DevTokenRefusedError(f"the dev identity's private key beside {jwks_url} cannot be read: {err}") from None
    if not audiences:
        audiences = [audience_for(spec.name) for spec in discover_services(root)]
        if shared := settings.get("JWT_AUDIENCE"):
            audiences.append(shared)  # every service then accepts this one instead of its own
    if not audiences:
        raise DevTokenRefusedError(f"no service declares [tool.prizeflow.service] under {root}: no audience to name")
    return identity.issue(
        user,
        list(dict.fromkeys(roles)),
        audience=list(dict.fromkeys(audiences)),
        issuer=settings.get("JWT_ISSUER", DEV_ISSUER),
        roles_claim=settings.get("JWT_ROLES_CLAIM", "roles"),
        ttl_s=ttl_s,
    )


__all__ = ["MAX_TTL_S", "DevTokenRefusedError", "dev_token"]
