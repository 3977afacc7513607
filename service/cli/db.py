"""``service db``: the schema's migrations.

The module declares the commands; the store (and for ``upgrade`` alembic) is imported by each
command when it runs, so that ``service --help`` and the other commands never load it."""

from __future__ import annotations

import click

from service.cli.common import fail, load_settings


@click.group()
def db() -> None:
    """Database schema migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Migrate the database (creates the SQLite file if needed)."""
    settings = load_settings()
    # Loaded when the command runs (see the module's docstring).
    from service.store import migrations
    from service.store.db_errors import describe_db_error

    try:
        migrations.upgrade(settings, revision)
    except Exception as exc:  # alembic and the drivers raise many kinds; the line says which
        fail(f"migration failed: {describe_db_error(exc)}")
    click.echo(f"database at {revision}")


@db.command("grant-sender")
@click.argument("role")
def db_grant_sender(role: str) -> None:
    """Let the database role ROLE call send_event in its own transactions, and nothing else
    (PostgreSQL)."""
    settings = load_settings()
    # Loaded when the command runs (see the module's docstring).
    from service.cli.database import run, with_engine
    from service.store.senders import grant_sender

    run(with_engine(settings, lambda engine: grant_sender(engine, role)))
    click.echo(f"{role} may call {settings.database_schema}.send_event")


@db.command("current")
def db_current() -> None:
    """Print the schema revision of the database and the migrations' head."""
    settings = load_settings()
    # Loaded when the command runs (see the module's docstring).
    from service.cli.database import run
    from service.store import schema_version
    from service.store.engine import create_engine

    async def current() -> str | None:
        engine = create_engine(settings)
        try:
            return await schema_version.current_revision(engine)
        finally:
            await engine.dispose()

    revision = run(current())
    state = (
        "at head" if revision == schema_version.HEAD else "behind head: run `service db upgrade`"
    )
    click.echo(f"current: {revision or 'none'} (head: {schema_version.HEAD}, {state})")
