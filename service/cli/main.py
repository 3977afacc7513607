"""The ``service`` command: a group whose commands each live in a module of their own, loaded
only when the command is named (or ``service --help`` lists them), and the one place where
whatever a command raises becomes one line and an exit status."""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Mapping
from typing import Any

import click

from service.cli.common import fail, show_tracebacks
from service.heap import leave_heap_to_exit

# Each command's module declares it (options and help) and imports nothing heavy at its top,
# so that listing them all for ``service --help`` costs little; ``service relay`` loads
# ``service.cli.relay`` and no other.
COMMANDS = {
    "console": "service.cli.console_commands:console",
    "db": "service.cli.db:db",
    "outbox": "service.cli.outbox_commands:outbox",
    "relay": "service.cli.relay:relay",
    "serve": "service.cli.serve:serve",
    "session": "service.cli.session:session",
    "settings": "service.cli.settings_commands:settings_group",
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

    def invoke(self, ctx: click.Context) -> Any:
        """The command's work; the project's own errors as one line (exit 2 when the
        settings are at fault, else 1), anything else with its traceback, once, and exit 1."""
        from service.config import ConfigError
        from service.errors import ServiceError, SettingsMayBeWrong

        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ConfigError as exc:
            fail(str(exc), code=2)
        except SettingsMayBeWrong as exc:
            fail(str(exc), code=2 if exc.misconfigured else 1)
        except ServiceError as exc:
            fail(str(exc))
        except Exception as exc:  # a bug: its traceback is what the next engineer needs
            traceback.print_exc()
            fail(f"unexpected {type(exc).__name__} (the traceback above says where)")


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--debug", is_flag=True, help="Print the traceback of an error too (as LOG_LEVEL=DEBUG does)."
)
def main(debug: bool) -> None:
    """Sync app settings to Inngest through a transactional outbox."""
    leave_heap_to_exit()
    if debug:
        show_tracebacks()
