"""A local OpenID Connect identity provider for the dev profile: the console signs its people in through it as it
would through the production identity provider (authorization code + PKCE S256), and the tokens it issues are
signed with the run's dev identity, so every service accepts them unchanged."""

from prizeflow_dev_idp.app import TOKEN_TTL_S, create_app
from prizeflow_dev_idp.people import PRESETS, DevPerson
from prizeflow_dev_idp.settings import CLIENT_ID, SERVICE_AUDIENCES, IdpSettings, SettingsError

__all__ = [
    "CLIENT_ID",
    "PRESETS",
    "SERVICE_AUDIENCES",
    "TOKEN_TTL_S",
    "DevPerson",
    "IdpSettings",
    "SettingsError",
    "create_app",
]
