"""``service console``: what the operators' web console needs from the command line."""

from __future__ import annotations

import re
import secrets

import click

from service.config import token_digest

NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


@click.group()
def console() -> None:
    """The operators' web console at /console."""


@console.command()
@click.option("--name", required=True, help="Who the token is for: the audit log names them.")
def token(name: str) -> None:
    """Make an operator token: give the token to the operator, put the entry in CONSOLE_TOKENS.

    Only the entry (the token's SHA-256 digest) is configured: the service never holds the
    token itself, so neither its environment nor its logs can give it away."""
    if not NAME.fullmatch(name):
        raise click.BadParameter("1 to 64 letters, digits and . _ @ -", param_hint="--name")
    made = secrets.token_urlsafe(32)
    click.echo(f"token (give it to {name}; it is not shown again): {made}")
    click.echo(f"CONSOLE_TOKENS entry: {name}={token_digest(made)}")
