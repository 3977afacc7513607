"""The database: engine and pragmas, tables, migrations, and all of the SQL: the outbox's
(add, claim, record in ``outbox``; inspect, replay, purge in ``outbox_admin``), the app
settings document, idempotency keys, and the group commit's batch writers, including the
SQLite writer process.

It uses only the process-wide configuration and errors.
"""
