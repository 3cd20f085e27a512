"""One AppointmentLifecycle execution per appointment version, named so an admin finds it in the console.

The name is derived from the spa, the appointment id and the booking version (``bijoux.a-123-v2``), so
StartExecution is idempotent: a duplicate booking event starts nothing new (same name, same input), and
the console lists each version's run under a name that says which spa, appointment and version it is;
two spas' appointments "a-123" never share a name. Spa ids are slugs without dots, so the first dot ends
the spa. Step Functions names are at most 80 characters from a restricted alphabet; a long or exotic
booking-site id keeps a readable prefix plus a short hash so two ids never collide.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as EndpointUnreachable

from medspa.domain.keys import split_key

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.\-]")
MAX_NAME = 80


def execution_name(appointment_id: str, booking_version: int | None = None, *, revision: int | None = None,
                   suffix: str | None = None) -> str:
    """``<spa>.<appointment>-v<version>`` (``-r<revision>`` after a late refold), or ``<spa>.<appointment>-<suffix>``.

    ``appointment_id`` is the stored key, ``<spa>#<booking site's id>``.
    """
    spa_id, appointment = split_key(appointment_id)
    if suffix is None:
        suffix = f"-v{booking_version}" + (f"-r{revision}" if revision is not None else "")
    else:
        suffix = f"-{_NOT_ALLOWED.sub('_', suffix)}"
    readable = f"{spa_id}.{appointment}"
    safe = _NOT_ALLOWED.sub("_", readable)
    if safe == readable and len(safe) + len(suffix) <= MAX_NAME:
        return safe + suffix
    digest = hashlib.sha256(appointment_id.encode()).hexdigest()[:10]
    room = MAX_NAME - len(suffix) - len(digest) - 1
    return f"{safe[:room]}~{digest}{suffix}".replace("~", "-")


def run_name(appointment_id: str, booking_version: int, revision: int, version_revision: int) -> str:
    """``<appointment>-v<version>``; a refold at the same version (an older event arrived late) adds ``-r<revision>``."""
    if revision and revision != version_revision:
        return execution_name(appointment_id, booking_version, revision=revision)
    return execution_name(appointment_id, booking_version)


def continued(name: str, continuation: int) -> str:
    """The name of the ``continuation``-th run after ``name`` handed over (``-c1``, ``-c2``...)."""
    return name if not continuation else f"{name[:MAX_NAME - 4]}-c{continuation}"


def runs_for(name: str, candidate: str | None) -> bool:
    """Is ``candidate`` the run named ``name`` or one of its continuations?"""
    return candidate == name or bool(candidate and re.fullmatch(re.escape(name[:MAX_NAME - 4]) + r"-c\d+", candidate))


class ExecutionNameTaken(RuntimeError):
    """The name is locked by an earlier execution with different input (Step Functions keeps names 90 days)."""


class ExecutionsUnavailable(RuntimeError):
    """Step Functions throttled, failed with a 5xx or could not be reached: the same call may succeed later.

    One class name, like the store's ``StoreUnavailable``, so a caller retries exactly these and treats
    every other failure as the bug or refusal it is.
    """


_TRANSIENT_CODES = {"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
                    "ServiceUnavailable", "InternalServerError", "InternalFailure", "ServiceException"}


@contextmanager
def _transient_errors_named() -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            raise ExecutionsUnavailable(f"Step Functions {code or status}") from error
        raise
    except (EndpointUnreachable, HTTPClientError) as error:
        raise ExecutionsUnavailable(f"Step Functions unreachable: {type(error).__name__}") from error


@dataclass(frozen=True)
class StartedExecution:
    name: str
    arn: str
    already_running: bool


class LifecycleExecutions:
    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._state_machine_arn = state_machine_arn

    def start(self, appointment_id: str, booking_version: int, revision: int = 0,
              name: str | None = None, continuation: int = 0) -> StartedExecution:
        payload = {"appointment_id": appointment_id, "booking_version": booking_version, "revision": revision,
                   "continuation": continuation, "waive": None}
        name = name or execution_name(appointment_id, booking_version)
        return self._start(continued(name, continuation), payload)

    def start_waiver(self, appointment_id: str, purpose: str, admin_id: str) -> StartedExecution:
        """An admin's waiver runs beside the appointment's runs; its name makes a repeated waiver a no-op."""
        payload = {"appointment_id": appointment_id, "waive": {"purpose": purpose, "admin_id": admin_id}}
        return self._start(execution_name(appointment_id, suffix=f"waive-{purpose}"), payload)

    def _start(self, name: str, input_: dict[str, Any]) -> StartedExecution:
        payload = json.dumps(input_, sort_keys=True)
        with _transient_errors_named():
            try:
                arn = self._sfn.start_execution(stateMachineArn=self._state_machine_arn, name=name,
                                                input=payload)["executionArn"]
                return StartedExecution(name, arn, already_running=False)
            except self._sfn.exceptions.ExecutionAlreadyExists as error:
                arn = self._existing_arn(name)
                described = self._sfn.describe_execution(executionArn=arn)
                if json.loads(described.get("input", "{}")) == json.loads(payload):
                    return StartedExecution(name, arn, already_running=described["status"] == "RUNNING")
                raise ExecutionNameTaken(name) from error

    def stop(self, execution_arn: str, *, error: str, cause: str) -> bool:
        """Stop a superseded run with a cause an admin reads in the console; a finished run stays as it is."""
        with _transient_errors_named():
            try:
                self._sfn.stop_execution(executionArn=execution_arn, error=error[:256], cause=cause[:32768])
                return True
            except (self._sfn.exceptions.ExecutionDoesNotExist, self._sfn.exceptions.InvalidArn):
                return False

    def stop_if_running(self, execution_arn: str, *, error: str, cause: str) -> bool:
        """Stop a run that is still going (an erased client's: nothing more may be sent or charged); a
        finished run keeps the status it ended with, which is what the console should go on showing."""
        with _transient_errors_named():
            try:
                running = self._sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"
            except (self._sfn.exceptions.ExecutionDoesNotExist, self._sfn.exceptions.InvalidArn):
                return False
        return running and self.stop(execution_arn, error=error, cause=cause)

    def _existing_arn(self, name: str) -> str:
        prefix = self._state_machine_arn.replace(":stateMachine:", ":execution:")
        return f"{prefix}:{name}"
