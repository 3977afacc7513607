"""The schema the code expects (``service.store.schema_version.HEAD``) is the head of the
migrations' scripts, as alembic finds it."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from service.store import migrations, schema_version


def test_the_expected_revision_is_the_migrations_head() -> None:
    scripts = ScriptDirectory.from_config(migrations.alembic_config(""))
    assert scripts.get_heads() == [schema_version.HEAD], (
        "set schema_version.HEAD to the newest migration"
    )
