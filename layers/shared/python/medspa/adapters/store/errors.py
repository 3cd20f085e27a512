"""Failures of the data layer, named so a state machine can ``Catch`` them by class name."""

from collections.abc import Iterator
from contextlib import contextmanager

from pynamodb.exceptions import PynamoDBException


class StoreError(Exception):
    """Base of every data-layer failure a caller is expected to handle."""


class NotFound(StoreError, LookupError):
    """The record a write depends on does not exist (yet): the caller's event arrived too early."""


class AppointmentNotFound(NotFound):
    pass


class ClientNotFound(NotFound):
    pass


class LedgerEntryNotFound(NotFound):
    pass


class ClientErased(StoreError):
    """The client's data was erased at their request: nothing may be written about them as a person again."""


class StaleVersion(StoreError):
    """A newer booking version already won: the writer acts on an appointment that no longer exists as it saw it."""


class ConflictingEvent(StoreError, ValueError):
    """Two different booking-site events claim the same booking_version of one appointment."""


class ConcurrentUpdate(StoreError):
    """Someone changed the record after it was read: re-read it and decide again rather than overwrite."""


class InsufficientBalance(StoreError):
    """Settling or spending more than the client owes or holds would invent money."""


class LedgerConflict(StoreError):
    """The outcome would rewrite money history (e.g. a charge that succeeded cannot later be declined)."""


class StoreUnavailable(StoreError):
    """DynamoDB throttled or failed transiently: the same call may succeed later (state machines Retry it)."""


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
