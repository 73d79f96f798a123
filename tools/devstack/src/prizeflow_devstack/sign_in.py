"""What `make run` prints once the console runs: its address and a ready-to-use dev sign-in link per person.

Each link opens the console's login with a `login_hint` naming one of the dev identity provider's people, whose
sign-in button then comes first and focused: one click (or Enter) and that person is in.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from rich import box
from rich.table import Table
from rich.text import Text

from prizeflow_dev_idp.people import PRESETS, DevPerson
from prizeflow_devstack.supervisor import RunningService

CONSOLE_SERVICE = "console"


def console_url(services: Sequence[RunningService]) -> str | None:
    return next((s.http_url for s in services if s.spec.name == CONSOLE_SERVICE and s.http_url), None)


def sign_in_links(base_url: str) -> list[tuple[DevPerson, str]]:
    base = base_url.rstrip("/")
    return [(person, f"{base}/auth/login?login_hint={quote(person.user, safe='')}") for person in PRESETS]


def console_banner(services: Sequence[RunningService]) -> Table | None:
    """None while no console runs: nothing to sign in to."""
    url = console_url(services)
    if url is None:
        return None
    table = Table(
        title=f"Console: {url}  (dev sign-in: open a link)", title_justify="left", box=box.SIMPLE, expand=False
    )
    table.add_column("person", style="bold", no_wrap=True)
    table.add_column("roles", no_wrap=True)
    table.add_column("sign in", overflow="fold")
    for person, link in sign_in_links(url):
        # A terminal link too: still one click where a narrow terminal folds the text.
        table.add_row(person.user, ", ".join(person.roles), Text(link, style=f"link {link}"))
    return table


__all__ = ["CONSOLE_SERVICE", "console_banner", "console_url", "sign_in_links"]
