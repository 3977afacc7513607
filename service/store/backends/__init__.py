"""One backend per database: ``postgres`` and ``sqlite`` implement ``base.Backend``, the one
interface for everything that differs between them (``service.store.backend`` picks one).

Each runs the statements SQLAlchemy Core does not write from a file of named SQL
(``postgres.sql``, ``sqlite.sql``, read by ``named_sql``; ``postgres_sql`` fills in the
schema), written with the one row shape of ``rows``; and has its side of the group commit
(``postgres_batch``; ``sqlite_batch`` with the ``sqlite_writer`` process and its
``sqlite_wire`` frames) and of ``send_event`` (``app_writes`` picks it by the app's dialect).
"""
