"""Failures of the data layer, named so a state machine can ``Catch`` them by class name.

The classes live in ``medspa.ports.store`` (a service catches them whichever store it runs on) and are
re-exported here; only the translation of pynamodb's transient failures is the adapter's own.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from pynamodb.exceptions import PynamoDBException

from medspa.ports.store import (
    AppointmentNotFound,
    ClientErased,
    ClientNotFound,
    ConcurrentUpdate,
    ConflictingEvent,
    InsufficientBalance,
    LedgerConflict,
    LedgerEntryNotFound,
    NotFound,
    StaleVersion,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "AppointmentNotFound", "ClientErased", "ClientNotFound", "ConcurrentUpdate", "ConflictingEvent",
    "InsufficientBalance", "LedgerConflict", "LedgerEntryNotFound", "NotFound", "StaleVersion", "StoreError",
    "StoreUnavailable", "transient_errors_named",
]


_TRANSIENT_CODES = {
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable",
}


@contextmanager
def transient_errors_named() -> Iterator[None]:
    """Give throttling and 5xx failures one class name a Retry can match, whatever pynamodb wrapped them in."""
    try:
        yield
    except PynamoDBException as error:
        code = getattr(error, "cause_response_code", None)
        if code in _TRANSIENT_CODES:
            raise StoreUnavailable(f"DynamoDB {code}") from error
        raise
