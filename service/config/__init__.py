"""Settings: every variable the service reads, declared once, read into frozen dataclasses.

``Settings.from_env`` validates each variable and raises ``ConfigError`` naming the variable,
so the command line can print one clear line and exit with status 2 instead of a traceback.
Each variable's name, parser, default and meaning live in one place, the field of the settings
class it fills (``settings``, ``delivery``, ``callers``); the README's configuration table is
rendered from them (``table``).
"""

from service.config.callers import (
    ABSOLUTE_EVENT_MAX_BYTES,
    DEFAULT_EVENT_MAX_BYTES,
    EVENT_KEY_PATTERN,
    EventApiSettings,
    NextAuthSettings,
    check_secret_strength,
)
from service.config.console import ConsoleSettings, token_digest
from service.config.delivery import (
    INNGEST_CLOUD_ORIGIN,
    INNGEST_DEV_ORIGIN,
    InngestSettings,
    RelaySettings,
)
from service.config.nextauth_database import ADAPTERS, NextAuthDatabaseSettings
from service.config.settings import (
    Settings,
    normalise_database_url,
    require_event_key,
    require_session_secret,
)
from service.config.variables import ConfigError, parse_duration

__all__ = [
    "ABSOLUTE_EVENT_MAX_BYTES",
    "ADAPTERS",
    "DEFAULT_EVENT_MAX_BYTES",
    "EVENT_KEY_PATTERN",
    "INNGEST_CLOUD_ORIGIN",
    "INNGEST_DEV_ORIGIN",
    "ConfigError",
    "ConsoleSettings",
    "EventApiSettings",
    "InngestSettings",
    "NextAuthDatabaseSettings",
    "NextAuthSettings",
    "RelaySettings",
    "Settings",
    "check_secret_strength",
    "normalise_database_url",
    "parse_duration",
    "require_event_key",
    "require_session_secret",
    "token_digest",
]
