"""``service session``: the service's own session cookies, for callers and scripts.

The module declares the command; the HTTP face's cookie code (and with it aiohttp and
cryptography) is imported by the command when it runs, so that ``service --help`` and the
other commands never load it."""

from __future__ import annotations

import click

from service.cli.common import load_settings, require
from service.config import require_session_secret


@click.group()
def session() -> None:
    """Session cookies for callers and scripts."""


@session.command("issue")
@click.option("--user-id", required=True, help="The user's id.")
@click.option("--email", help="The user's email.")
@click.option("--name", help="The user's display name.")
def session_issue(user_id: str, email: str | None, name: str | None) -> None:
    """Print a session cookie value for a user; send it as SESSION_COOKIE_NAME=VALUE."""
    settings = load_settings()
    require(require_session_secret, settings)
    from service.http.auth import issue_cookie  # loaded when the command runs

    user = {"id": user_id}
    if email:
        user["email"] = email
    if name:
        user["name"] = name
    click.echo(issue_cookie(settings, user))
