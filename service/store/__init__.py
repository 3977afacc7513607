"""The database. One backend per database (``backends``: SQLite, PostgreSQL) owns everything
that differs between them, and the engine it makes carries it (``backend``); the rest is
written once: the engine's connections (``engine``), the tables (``tables``), the outbox's
writes and delivery (``deliveries``: add, claim, record the ``outcomes``), events in an app's
own transaction (``in_transaction``: ``send_event``), its figures (``outbox_stats``), its
inspection and repair (``outbox_admin``: list, show, replay, purge), the app settings document
(``settings_store``), idempotency keys (``idempotency``), the relays' shared probe
(``probe_slot``), the group commit's contract (``batch_writes``) and the migrations
(``migrations``).

It uses only the process-wide configuration and errors, and the event.
"""
