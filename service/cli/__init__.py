"""The command line (``service ...``): the commands and how they show their results.

``main`` is the ``service`` group; each command is declared in a module of its own
(``serve``, ``relay``, ``db``, ``settings_commands``, ``session``, ``outbox_commands``), loaded
when the command is named, which imports nothing heavy at its top: what a command needs to run
(the store, the HTTP face, the relay, rich) it imports when it runs, mostly through an
``*_actions`` module beside it.

It uses the store, the relay and the HTTP face; nothing imports it but ``service.__main__``.
"""
