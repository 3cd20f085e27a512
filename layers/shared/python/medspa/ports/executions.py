"""Starting and stopping an appointment's lifecycle runs (Step Functions executions, named per version)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class ExecutionNameTaken(RuntimeError):
    """The name is locked by an earlier execution with different input (Step Functions keeps names 90 days)."""


class ExecutionsUnavailable(RuntimeError):
    """Step Functions throttled, failed with a 5xx or could not be reached: the same call may succeed later.

    One class name, like the store's ``StoreUnavailable``, so a caller retries exactly these and treats
    every other failure as the bug or refusal it is.
    """


@dataclass(frozen=True)
class StartedExecution:
    """``starts_at``: the run is a schedule until then (its ARN is the one it will have), None once it runs."""

    name: str
    arn: str
    already_running: bool
    starts_at: datetime | None = None


class Executions(Protocol):
    def start(self, appointment_id: str, booking_version: int, revision: int = 0, name: str | None = None,
              continuation: int = 0, starts_at: datetime | None = None) -> StartedExecution:
        """At once, or from a one-time schedule at ``starts_at``; either way a repeat is a no-op."""
        ...

    def start_waiver(self, appointment_id: str, purpose: str, admin_id: str) -> StartedExecution: ...

    def stop(self, execution_arn: str, *, error: str, cause: str) -> bool:
        """Stop the run, or delete its schedule if it has not started yet."""
        ...

    def stop_if_running(self, execution_arn: str, *, error: str, cause: str) -> bool: ...


class PaidFeeRuns(Protocol):
    """Starts a FeePaidLater run for one fee's card charge that Stripe says was paid after its step recorded it
    owed (3-D Secure completed from the client's link); named for the ledger entry, so a repeat is a no-op."""

    def start_paid_later(self, appointment_id: str, purpose: str, attempt: int) -> None: ...
