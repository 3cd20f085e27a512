"""The AppointmentLifecycle's and the FeeWaiver's executions, started by name (``medspa.domain.runs``) so a
repeat is a no-op.

Starting a run whose name is taken by the same input returns it; by other input, refuses. Throttling, 5xx and
unreachable endpoints become ``ExecutionsUnavailable``, the one class a caller retries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as EndpointUnreachable

from medspa.domain.runs import MAX_NAME, continued, execution_name, run_name, runs_for
from medspa.ports.executions import ExecutionNameTaken, ExecutionsUnavailable, StartedExecution

__all__ = ["MAX_NAME", "ExecutionNameTaken", "ExecutionsUnavailable", "InMemoryExecutions", "LifecycleExecutions", "MembershipDraftRuns",
           "StartedExecution", "continued", "execution_name", "run_name", "runs_for"]

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


class LifecycleExecutions:
    """Each state machine's ARN is optional: a function is given only those it starts (the spa API: waivers)."""

    def __init__(self, sfn: Any, state_machine_arn: str | None, waiver_state_machine_arn: str | None = None) -> None:
        self._sfn = sfn
        self._state_machine_arn = state_machine_arn
        self._waiver_state_machine_arn = waiver_state_machine_arn

    def start(self, appointment_id: str, booking_version: int, revision: int = 0,
              name: str | None = None, continuation: int = 0) -> StartedExecution:
        # "waive" is no longer read (waivers have their own state machine) but is kept: a run started before
        # must still be found the same by a repeated start.
        payload = {"appointment_id": appointment_id, "booking_version": booking_version, "revision": revision,
                   "continuation": continuation, "waive": None}
        name = name or execution_name(appointment_id, booking_version)
        return self._start(_given(self._state_machine_arn, "lifecycle"), continued(name, continuation), payload)

    def start_waiver(self, appointment_id: str, purpose: str, admin_id: str) -> StartedExecution:
        """An admin's waiver runs beside the appointment's runs; its name makes a repeated waiver a no-op."""
        payload = {"appointment_id": appointment_id, "waive": {"purpose": purpose, "admin_id": admin_id}}
        return self._start(_given(self._waiver_state_machine_arn, "fee_waiver"),
                           execution_name(appointment_id, suffix=f"waive-{purpose}"), payload)

    def _start(self, state_machine_arn: str, name: str, input_: dict[str, Any]) -> StartedExecution:
        payload = json.dumps(input_, sort_keys=True)
        with _transient_errors_named():
            try:
                arn = self._sfn.start_execution(stateMachineArn=state_machine_arn, name=name,
                                                input=payload)["executionArn"]
                return StartedExecution(name, arn, already_running=False)
            except self._sfn.exceptions.ExecutionAlreadyExists as error:
                arn = f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
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


def _given(arn: str | None, machine: str) -> str:
    if not arn:
        raise AttributeError(f"this function was not given {machine.upper()}_STATE_MACHINE_ARN")
    return arn


class MembershipDraftRuns:
    """``DraftRuns`` on the MembershipDrafts state machine, named ``<spa>.<membership>-<due date>-a<attempt>``, so
    a duplicate event starts nothing new and the console lists each immediate draft under its month."""

    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._state_machine_arn = state_machine_arn

    def start_now(self, membership_id: str, due_on: date, attempt: int, why: str = "") -> None:
        name = execution_name(membership_id, suffix=f"{due_on.isoformat()}-a{attempt}" + (f"-{why}" if why else ""))
        with _transient_errors_named():
            try:
                self._sfn.start_execution(stateMachineArn=self._state_machine_arn, name=name,
                                          input=json.dumps({"time_zone": None, "membership_id": membership_id}))
            except self._sfn.exceptions.ExecutionAlreadyExists:
                return


class InMemoryExecutions:
    """Step Functions' naming rules without Step Functions: a name is taken once, by one input; for tests that
    take the lifecycle's steps themselves, and for backtests. ``runs`` holds each name's input and status."""

    def __init__(self) -> None:
        self.runs: dict[str, tuple[dict[str, Any], str]] = {}

    def start(self, appointment_id: str, booking_version: int, revision: int = 0,
              name: str | None = None, continuation: int = 0) -> StartedExecution:
        payload = {"appointment_id": appointment_id, "booking_version": booking_version, "revision": revision,
                   "continuation": continuation, "waive": None}
        return self._start(continued(name or execution_name(appointment_id, booking_version), continuation), payload)

    def start_waiver(self, appointment_id: str, purpose: str, admin_id: str) -> StartedExecution:
        payload = {"appointment_id": appointment_id, "waive": {"purpose": purpose, "admin_id": admin_id}}
        return self._start(execution_name(appointment_id, suffix=f"waive-{purpose}"), payload)

    def _start(self, name: str, payload: dict[str, Any]) -> StartedExecution:
        held = self.runs.get(name)
        if held is None:
            self.runs[name] = (payload, "RUNNING")
            return StartedExecution(name, self.arn(name), already_running=False)
        if held[0] != payload:
            raise ExecutionNameTaken(name)
        return StartedExecution(name, self.arn(name), already_running=False)  # as Step Functions answers a repeat

    def stop(self, execution_arn: str, *, error: str, cause: str) -> bool:
        name = execution_arn.rpartition(":")[2]
        if name not in self.runs or not execution_arn.startswith(self.arn("")):
            return False
        if self.runs[name][1] == "RUNNING":
            self.runs[name] = (self.runs[name][0], "ABORTED")
        return True

    def stop_if_running(self, execution_arn: str, *, error: str, cause: str) -> bool:
        held = self.runs.get(execution_arn.rpartition(":")[2])
        return held is not None and held[1] == "RUNNING" and self.stop(execution_arn, error=error, cause=cause)

    @staticmethod
    def arn(name: str) -> str:
        return f"arn:aws:states:local:000000000000:execution:appointment-lifecycle:{name}"
