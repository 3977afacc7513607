"""The command line (``service ...``): the commands and how they show their results.

It uses the store, the relay and the HTTP face; nothing imports it but ``service.__main__``.
"""
