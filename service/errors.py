"""The service's domain errors: drivers' and HTTP errors are converted to these at the boundary."""


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""


class DatabaseUnavailable(ServiceError):
    """The database cannot take the read or write now (down, locked past its timeout).

    ``misconfigured``: the connection itself is wrong (TLS that does not verify, TLS one side
    will not speak), which waiting will not mend: a command stops with exit status 2."""

    def __init__(self, message: str, *, misconfigured: bool = False) -> None:
        super().__init__(message)
        self.misconfigured = misconfigured


class SchemaNotCurrent(ServiceError):
    """The database schema is not at the migrations' head."""


class NotFound(ServiceError):
    """A row or resource the caller named does not exist."""


class InvalidInput(ServiceError):
    """A value given by a caller or an operator cannot be used."""
