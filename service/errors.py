"""The service's domain errors: drivers' and HTTP errors are converted to these at the boundary."""


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""


class SettingsMayBeWrong(ServiceError):
    """A failure that is either of the moment or of the settings: ``misconfigured`` says it
    is the settings, which waiting will not mend (a command stops with exit status 2)."""

    def __init__(self, message: str, *, misconfigured: bool = False) -> None:
        super().__init__(message)
        self.misconfigured = misconfigured


class DatabaseUnavailable(SettingsMayBeWrong):
    """The database cannot take the read or write now (down, locked past its timeout), or the
    connection itself is wrong (TLS that does not verify, TLS one side will not speak)."""


class SchemaNotCurrent(ServiceError):
    """The database schema is not at the migrations' head."""


class NotFound(ServiceError):
    """A row or resource the caller named does not exist."""


class InvalidInput(ServiceError):
    """A value given by a caller or an operator cannot be used."""


class CannotListen(SettingsMayBeWrong):
    """The server cannot take the address it was given (a port in use, a host it is not)."""
