"""The service's domain errors: drivers' and HTTP errors are converted to these at the boundary."""


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""


class DatabaseUnavailable(ServiceError):
    """The database cannot take the read or write now (down, locked past its timeout)."""


class SchemaNotCurrent(ServiceError):
    """The database schema is not at the migrations' head."""


class NotFound(ServiceError):
    """A row or resource the caller named does not exist."""


class InvalidInput(ServiceError):
    """A value given by a caller or an operator cannot be used."""
