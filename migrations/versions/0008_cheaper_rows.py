"""What an event costs the database: ``send_event``'s id made inline, and room on each page of
the outbox for the updates of its rows.

``send_event`` called ``inngest_id(ms, nextval(...))``. A SQL function is inlined into its
caller only when an argument used more than once in its body is cheap, and ``nextval`` is
volatile: the function ran as a statement of its own, planned anew in every call, which cost
the app's transaction about a third of its speed. The position is now taken into a variable
first, and the ULID's expression becomes part of ``send_event``'s own.

A row of the outbox is written once and updated twice (claimed, then delivered). When the new
version fits on the old one's page, PostgreSQL logs only the bytes that changed, not the whole
1 KB event again; a full page puts it on another, logged whole. ``fillfactor`` keeps half of
each page free for those versions. SQLite has neither: nothing changes there.

The Python helper now checks an event against ``event_max_bytes()`` itself, so every role
granted ``send_event`` is granted that function too (it answers a number, nothing more). A
downgrade leaves those grants.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Any

from alembic import op
from alembic.script import ScriptDirectory

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Of each page of the outbox, how much inserts fill (percent): the rest is for updates.
FILLFACTOR = 50


def revision_0007() -> Any:
    """The module of revision 0007, whose ``send_event`` this one changes."""
    return ScriptDirectory.from_config(op.get_context().config).get_revision("0007").module


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def send_event(schema: str) -> str:
    """Revision 0007's ``send_event`` with the run's position in a variable of its own."""
    function = revision_0007().send_event(schema)
    s = _quoted(schema)
    sequence = _literal(f"{s}.outbox_run_position")
    run = revision_0007().RUN_SECONDS_MS
    changes = (
        ("    inngest_id text;\n", "    inngest_id text;\n    run_position bigint;\n"),
        (
            f"    inngest_id := {s}.inngest_id(now_ms - now_ms % {run}, nextval({sequence}));\n",
            f"    run_position := nextval({sequence});\n"
            f"    inngest_id := {s}.inngest_id(now_ms - now_ms % {run}, run_position);\n",
        ),
    )
    for old, new in changes:
        if old not in function:
            raise RuntimeError(f"revision 0007's send_event has no {old.strip()!r}")
        function = function.replace(old, new)
    return function


def grant_the_limit_to_senders(schema: str) -> str:
    """Grant ``event_max_bytes()`` to every role that may call ``send_event`` (not PUBLIC,
    not the owner)."""
    s = _quoted(schema)
    function = _literal(f"{s}.send_event(text, jsonb, jsonb, text, bigint, text)")
    limit = _literal(f"{s}.event_max_bytes()")
    return f"""DO $grant$ DECLARE sender text; BEGIN
    FOR sender IN SELECT DISTINCT a.grantee::regrole::text
        FROM pg_proc p, aclexplode(p.proacl) a
        WHERE p.oid = {function}::regprocedure AND a.privilege_type = 'EXECUTE'
            AND a.grantee <> 0 AND a.grantee <> p.proowner
    LOOP
        EXECUTE 'GRANT EXECUTE ON FUNCTION ' || {limit} || ' TO ' || sender;
    END LOOP;
END $grant$"""


def upgrade() -> None:
    schema = op.get_context().version_table_schema
    if schema is None:
        return  # SQLite: no stored functions, no fillfactor
    op.execute(f"ALTER TABLE outbox_events SET (fillfactor = {FILLFACTOR})")
    op.execute(send_event(schema))
    op.execute(grant_the_limit_to_senders(schema))


def downgrade() -> None:
    schema = op.get_context().version_table_schema
    if schema is None:
        return
    op.execute("ALTER TABLE outbox_events RESET (fillfactor)")
    op.execute(revision_0007().send_event(schema))
