"""The named statements of both backends against the one definition of each shape they read
or answer: ``OutboxRow`` (the INSERT's rows), ``Claim`` (idempotency claims), ``ClaimedRow``
(what a claim answers) and the table the migrations make (``tables.outbox_events``, which
``test_migrations`` holds to the migrations). A field added to one and not the others fails
here, by name."""

from __future__ import annotations

import dataclasses
import re

import pytest

from service.store.backends.named_sql import named_statements
from service.store.backends.postgres_sql import PostgresStatements
from service.store.backends.rows import APP_SETTINGS_ROW, EMPTY_DOCUMENT, ROW_FIELDS
from service.store.backends.sqlite_sql import SQL
from service.store.batch_writes import CLAIM_FIELDS
from service.store.deliveries import ClaimedRow
from service.store.tables import outbox_events

# The statements as the backends run them, their fields filled in.
POSTGRES = {
    name: getattr(PostgresStatements.of("public"), name) for name in named_statements("postgres")
}
SQLITE = SQL
BOTH = pytest.mark.parametrize("statements", [POSTGRES, SQLITE], ids=["postgres", "sqlite"])
# What the INSERT writes besides the row's own fields: the payload (made of head and tail), and
# the state of a new row.
MADE_BY_THE_INSERT = {"payload", "status", "attempts", "next_attempt_at"}
PAYLOAD_PARTS = {"head", "tail"}


def json_keys(statement: str, alias: str) -> list[str]:
    """The keys a SQLite statement reads from the JSON objects of ``alias``, in order."""
    return list(
        dict.fromkeys(re.findall(rf"json_extract\({alias}\.value, '\$\.(\w+)'\)", statement))
    )


def unnest_alias(statement: str) -> tuple[int, list[str]]:
    """How many arrays a PostgreSQL statement's ``unnest`` takes, and the names it gives them."""
    found = re.search(
        r"unnest\((.*?)\)\s*(?:WITH ORDINALITY\s+)?AS \w+\(([^)]*)\)", statement, re.S
    )
    assert found, statement
    arrays = re.findall(r"\$\d+::\w+\[\]", found.group(1))
    return len(arrays), [name.strip() for name in found.group(2).split(",")]


def target_columns(statement: str) -> list[str]:
    found = re.search(r"INSERT INTO \S*outbox_events\s*\(([^)]*)\)", statement)
    assert found, statement
    return [name.strip() for name in found.group(1).split(",")]


def returned_columns(statement: str) -> list[str]:
    found = re.search(r"RETURNING (.*)$", statement, re.S)
    assert found, statement
    return [name.strip() for name in found.group(1).split(",")]


def test_sqlite_insert_names_every_field_of_the_row_at_its_place() -> None:
    named = re.findall(r"json_extract\(value, '\$\[(\d+)\]'\) AS (\w+)", SQLITE["insert_events"])
    assert [(int(place), name) for place, name in named] == list(enumerate(ROW_FIELDS))


def test_postgres_insert_takes_one_array_per_field_in_the_rows_order() -> None:
    arrays, names = unnest_alias(POSTGRES["insert_events"])
    assert arrays == len(ROW_FIELDS)
    assert names == [*ROW_FIELDS, "position"]


@BOTH
def test_insert_writes_each_field_to_its_column(statements: dict[str, str]) -> None:
    columns = target_columns(statements["insert_events"])
    assert set(columns) == (set(ROW_FIELDS) - PAYLOAD_PARTS) | MADE_BY_THE_INSERT
    assert set(columns) <= set(outbox_events.c.keys())


@BOTH
@pytest.mark.parametrize("claim", ["claim_due", "claim_early"])
def test_claims_answer_the_fields_of_a_claimed_row(statements: dict[str, str], claim: str) -> None:
    fields = [f.name for f in dataclasses.fields(ClaimedRow)]
    assert returned_columns(statements[claim]) == fields
    assert set(fields) <= set(outbox_events.c.keys())


def test_idempotency_claims_read_every_field_of_a_claim() -> None:
    assert sorted(json_keys(SQLITE["claim_keys"], "c")) == sorted(CLAIM_FIELDS)
    arrays, names = unnest_alias(POSTGRES["claim_keys"])
    assert (arrays, names) == (len(CLAIM_FIELDS), list(CLAIM_FIELDS))


@BOTH
def test_the_settings_document_is_read_where_the_store_writes_it(
    statements: dict[str, str],
) -> None:
    insert = " ".join(statements["insert_events"].split())
    assert f"WHERE id = {APP_SETTINGS_ROW})" in insert
    assert f"'{EMPTY_DOCUMENT}') AS data" in insert
    assert f"VALUES ({APP_SETTINGS_ROW}, " in statements["save_settings"]


def test_both_backends_name_the_same_operations_of_the_outbox() -> None:
    postgres_only = {
        "take_in",  # the intake of apps' transactions
        *("notify", "start_waiting", "shared_available", "stop_waiting"),  # waking relays
        *(
            "send_event",
            "size_limit",
            "grant_sender_schema",
            "grant_sender_function",
            "event_max_bytes",
        ),
    }
    assert set(POSTGRES) - postgres_only == set(SQLITE)


def test_postgres_statements_are_filled_in_for_the_schema() -> None:
    sql = PostgresStatements.of('we"ird')
    for name in named_statements("postgres"):
        statement = getattr(sql, name)
        assert '"we""ird"' in statement, name
        left = set(re.findall(r"\{(\w+)\}", statement))
        assert left <= {"role", "limit"}, (name, left)
    assert sql.grant_sender("app") == [
        'GRANT USAGE ON SCHEMA "we""ird" TO "app"',
        'GRANT EXECUTE ON FUNCTION "we""ird".send_event(text, jsonb, jsonb, text, bigint, text),\n'
        '    "we""ird".event_max_bytes() TO "app"',
    ]


def test_sqlite_statements_are_filled_in_with_the_row() -> None:
    for name, statement in SQL.items():
        assert re.findall(r"\{(\w+)\}", statement) == [], name
