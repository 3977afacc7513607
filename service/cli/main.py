"""The ``service`` command: a group whose commands each live in a module of their own, loaded
only when the command is named (or ``service --help`` lists them)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

from service.heap import leave_heap_to_exit

# Each command's module declares it (options and help) and imports nothing heavy at its top,
# so that listing them all for ``service --help`` costs little; ``service relay`` loads
# ``service.cli.relay`` and no other.
COMMANDS = {
    "db": "service.cli.db:db",
    "outbox": "service.cli.outbox:outbox",
    "relay": "service.cli.relay:relay",
    "serve": "service.cli.serve:serve",
    "session": "service.cli.session:session",
    "settings": "service.cli.app_settings:settings_group",
}


class LazyGroup(click.Group):
    """A group that imports a command's module the first time the command is asked for."""

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, name = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), name)
            assert isinstance(command, click.Command), self.lazy[cmd_name]
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Sync app settings to Inngest through a transactional outbox."""
    leave_heap_to_exit()
