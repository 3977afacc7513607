"""The operators' web console at ``/console``: the outbox seen and repaired in a browser.

Server-rendered pages (``views``), repairs behind a confirmation (``actions``), and a gate on
every request (``guard``): a session of the console's own (``sessions``), CSRF tokens, and
strict headers. ``install`` adds it to an application: ``service serve``'s, and with
``CONSOLE_ON_RELAY`` the relay's metrics port. Its script (htmx) and stylesheet are files of
the package: the console needs no network beyond the service.
"""
