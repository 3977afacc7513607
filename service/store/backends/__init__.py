"""One backend per database: ``postgres`` and ``sqlite`` implement ``base.Backend``, the one
interface for everything that differs between them (``service.store.backend`` picks one).

Each keeps the statements SQLAlchemy Core does not write in a module of its own
(``postgres_sql``, ``sqlite_sql``), and its side of the group commit (``postgres_batch``;
``sqlite_batch`` with the ``sqlite_writer`` process and its ``sqlite_wire`` frames).
"""
