"""The AppointmentLifecycle's, the FeeWaiver's and the FeePaidLater's executions, started by name
(``medspa.domain.runs``) so a repeat is a no-op.

Starting a run whose name is taken by the same input returns it; by other input, refuses. Throttling, 5xx and
unreachable endpoints become ``ExecutionsUnavailable``, the one class a caller retries.

A run due to start later is a one-time EventBridge Scheduler schedule (``at()``, UTC, deleted once it has
fired) whose universal target calls ``StartExecution`` with the run's own name and input, so the execution is
the one an immediate start would have made, and a repeated schedule or a start racing it is the same no-op.
The schedule is named for the run (:func:`start_schedule_name`), so stopping a run that has not started yet
deletes its schedule.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as EndpointUnreachable

from medspa.domain.runs import MAX_NAME, continued, execution_name, run_name, runs_for
from medspa.ports.executions import ExecutionNameTaken, ExecutionsUnavailable, StartedExecution

__all__ = ["MAX_NAME", "MAX_SCHEDULE_NAME", "ExecutionNameTaken", "ExecutionsUnavailable", "FeePaidLaterRuns",
           "InMemoryExecutions", "LifecycleExecutions", "MembershipDraftRuns", "StartedExecution", "continued",
           "draft_run_name", "execution_name", "paid_later_run_name", "run_name", "runs_for", "start_schedule_name"]

START_EXECUTION = "arn:aws:scheduler:::aws-sdk:sfn:startExecution"  # the Scheduler's universal target
MAX_SCHEDULE_NAME = 64
# Scheduler retries a failed start for up to a day (its maximum), well past any pack's run_start margin.
START_RETRIES = {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
# The runs of a morning's card checks would all start at one instant; spread over an hour (well inside every
# pack's run_start margin), they ask Step Functions for a few starts a second, not the whole burst at once.
START_WINDOW = {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 60}

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


def start_schedule_name(prefix: str, execution: str) -> str:
    """The schedule that will start ``execution``: the deployment's prefix and the run's name, which fits in a
    schedule name's 64 characters but for an exotic booking-site id, shortened then with a hash."""
    name = prefix + execution
    if len(name) <= MAX_SCHEDULE_NAME:
        return name
    digest = hashlib.sha256(execution.encode()).hexdigest()[:10]
    return f"{name[:MAX_SCHEDULE_NAME - len(digest) - 1]}-{digest}"


class LifecycleExecutions:
    """Each state machine's ARN is optional: a function is given only those it starts (the spa API: waivers).
    ``scheduler`` (with ``start_role_arn`` to schedule, ``schedule_prefix`` to find them) serves runs that start
    later: the intake schedules and deletes them, the privacy desk deletes them."""

    def __init__(self, sfn: Any, state_machine_arn: str | None, waiver_state_machine_arn: str | None = None, *,
                 scheduler: Any = None, start_role_arn: str | None = None, schedule_prefix: str = "") -> None:
        self._sfn = sfn
        self._state_machine_arn = state_machine_arn
        self._waiver_state_machine_arn = waiver_state_machine_arn
        self._scheduler = scheduler
        self._start_role_arn = start_role_arn
        self._schedule_prefix = schedule_prefix

    def start(self, appointment_id: str, booking_version: int, revision: int = 0,
              name: str | None = None, continuation: int = 0, starts_at: datetime | None = None) -> StartedExecution:
        # "waive" is no longer read (waivers have their own state machine) but is kept: a run started before
        # must still be found the same by a repeated start.
        payload = {"appointment_id": appointment_id, "booking_version": booking_version, "revision": revision,
                   "continuation": continuation, "waive": None}
        name = continued(name or execution_name(appointment_id, booking_version), continuation)
        if starts_at is not None:
            return self._schedule(_given(self._state_machine_arn, "lifecycle"), name, payload, starts_at)
        return self._start(_given(self._state_machine_arn, "lifecycle"), name, payload)

    def _schedule(self, state_machine_arn: str, name: str, input_: dict[str, Any],
                  starts_at: datetime) -> StartedExecution:
        if self._scheduler is None or not self._start_role_arn:
            raise AttributeError("this function was not given a scheduler and LIFECYCLE_START_ROLE_ARN")
        target = {"StateMachineArn": state_machine_arn, "Name": name, "Input": json.dumps(input_, sort_keys=True)}
        with _transient_errors_named():
            try:
                self._scheduler.create_schedule(
                    Name=start_schedule_name(self._schedule_prefix, name), GroupName="default",
                    ScheduleExpression=f"at({starts_at.astimezone(UTC):%Y-%m-%dT%H:%M:%S})",
                    ScheduleExpressionTimezone="UTC", FlexibleTimeWindow=START_WINDOW,
                    ActionAfterCompletion="DELETE", Description=f"Starts the lifecycle run {name}",
                    Target={"Arn": START_EXECUTION, "RoleArn": self._start_role_arn, "Input": json.dumps(target),
                            "RetryPolicy": START_RETRIES})
            except self._scheduler.exceptions.ConflictException:
                pass  # scheduled by an earlier delivery of the same event: the same run, the same time
        return StartedExecution(name, _execution_arn(state_machine_arn, name), already_running=False,
                                starts_at=starts_at)

    def _unschedule(self, execution_arn: str) -> bool:
        """Delete the schedule of a run that has not started; False if there is none (it fired, or never was)."""
        if self._scheduler is None:
            return False
        name = start_schedule_name(self._schedule_prefix, execution_arn.rpartition(":")[2])
        with _transient_errors_named():
            try:
                self._scheduler.delete_schedule(Name=name, GroupName="default")
                return True
            except self._scheduler.exceptions.ResourceNotFoundException:
                return False

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
                arn = _execution_arn(state_machine_arn, name)
                described = self._sfn.describe_execution(executionArn=arn)
                if json.loads(described.get("input", "{}")) == json.loads(payload):
                    return StartedExecution(name, arn, already_running=described["status"] == "RUNNING")
                raise ExecutionNameTaken(name) from error

    def stop(self, execution_arn: str, *, error: str, cause: str) -> bool:
        """Stop a superseded run with a cause an admin reads in the console; a finished run stays as it is, and
        a run not started yet never starts."""
        with _transient_errors_named():
            try:
                self._sfn.stop_execution(executionArn=execution_arn, error=error[:256], cause=cause[:32768])
                return True
            except (self._sfn.exceptions.ExecutionDoesNotExist, self._sfn.exceptions.InvalidArn):
                pass
        return self._unschedule(execution_arn)

    def stop_if_running(self, execution_arn: str, *, error: str, cause: str) -> bool:
        """Stop a run that is still going (an erased client's: nothing more may be sent or charged); a
        finished run keeps the status it ended with, which is what the console should go on showing."""
        with _transient_errors_named():
            try:
                running = self._sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"
            except (self._sfn.exceptions.ExecutionDoesNotExist, self._sfn.exceptions.InvalidArn):
                return self._unschedule(execution_arn)
        return running and self.stop(execution_arn, error=error, cause=cause)


def _execution_arn(state_machine_arn: str, name: str) -> str:
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"


def _given(arn: str | None, machine: str) -> str:
    if not arn:
        raise AttributeError(f"this function was not given {machine.upper()}_STATE_MACHINE_ARN")
    return arn


def draft_run_name(membership_id: str, due_on: date, attempt: int, why: str = "") -> str:
    """The MembershipDrafts run for one membership's month and attempt (``why``: what started it again)."""
    return execution_name(membership_id, suffix=f"{due_on.isoformat()}-a{attempt}" + (f"-{why}" if why else ""))


class MembershipDraftRuns:
    """``DraftRuns`` on the MembershipDrafts state machine, named ``<spa>.<membership>-<due date>-a<attempt>``, so
    a duplicate event starts nothing new and the console lists each immediate draft under its month."""

    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._state_machine_arn = state_machine_arn

    def start_now(self, membership_id: str, due_on: date, attempt: int, why: str = "") -> None:
        name = draft_run_name(membership_id, due_on, attempt, why)
        with _transient_errors_named():
            try:
                self._sfn.start_execution(stateMachineArn=self._state_machine_arn, name=name,
                                          input=json.dumps({"time_zone": None, "membership_id": membership_id}))
            except self._sfn.exceptions.ExecutionAlreadyExists:
                return


def paid_later_run_name(appointment_id: str, purpose: str, attempt: int) -> str:
    """The FeePaidLater run for one ledger entry: ``<spa>.<appointment>-paid-<purpose>-a<attempt>``."""
    return execution_name(appointment_id, suffix=f"paid-{purpose}-a{attempt}")


class FeePaidLaterRuns:
    """``PaidFeeRuns`` on the FeePaidLater state machine; a start repeated (the same webhook again) is a no-op."""

    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._state_machine_arn = state_machine_arn

    def start_paid_later(self, appointment_id: str, purpose: str, attempt: int) -> None:
        payload = {"appointment_id": appointment_id, "paid": {"purpose": purpose, "attempt": attempt}}
        with _transient_errors_named():
            try:
                self._sfn.start_execution(stateMachineArn=self._state_machine_arn, input=json.dumps(payload),
                                          name=paid_later_run_name(appointment_id, purpose, attempt))
            except self._sfn.exceptions.ExecutionAlreadyExists:
                return


class InMemoryExecutions:
    """Step Functions' naming rules without Step Functions: a name is taken once, by one input; for tests that
    take the lifecycle's steps themselves, and for backtests. ``runs`` holds each name's input and status
    (``SCHEDULED`` until its schedule starts it, ``UNSCHEDULED`` if stopped before)."""

    def __init__(self) -> None:
        self.runs: dict[str, tuple[dict[str, Any], str]] = {}
        self.scheduled: dict[str, datetime] = {}  # a run not started yet -> when its schedule starts it

    def start(self, appointment_id: str, booking_version: int, revision: int = 0,
              name: str | None = None, continuation: int = 0, starts_at: datetime | None = None) -> StartedExecution:
        payload = {"appointment_id": appointment_id, "booking_version": booking_version, "revision": revision,
                   "continuation": continuation, "waive": None}
        name = continued(name or execution_name(appointment_id, booking_version), continuation)
        if starts_at is not None and name not in self.runs:
            self.scheduled[name] = starts_at
            self.runs[name] = (payload, "SCHEDULED")
        if name in self.scheduled:
            return StartedExecution(name, self.arn(name), already_running=False, starts_at=self.scheduled[name])
        return self._start(name, payload)

    def start_waiver(self, appointment_id: str, purpose: str, admin_id: str) -> StartedExecution:
        payload = {"appointment_id": appointment_id, "waive": {"purpose": purpose, "admin_id": admin_id}}
        return self._start(execution_name(appointment_id, suffix=f"waive-{purpose}"), payload)

    def start_due(self, now: datetime) -> list[str]:
        """Start every scheduled run due by ``now``, as the Scheduler would; their names."""
        due = sorted(name for name, at in self.scheduled.items() if at <= now)
        for name in due:
            del self.scheduled[name]
            self.runs[name] = (self.runs[name][0], "RUNNING")
        return due

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
        if self.scheduled.pop(name, None) is not None:
            self.runs[name] = (self.runs[name][0], "UNSCHEDULED")
        elif self.runs[name][1] == "RUNNING":
            self.runs[name] = (self.runs[name][0], "ABORTED")
        return True

    def stop_if_running(self, execution_arn: str, *, error: str, cause: str) -> bool:
        held = self.runs.get(execution_arn.rpartition(":")[2])
        return held is not None and held[1] in ("RUNNING", "SCHEDULED") and self.stop(execution_arn, error=error,
                                                                                       cause=cause)

    @staticmethod
    def arn(name: str) -> str:
        return f"arn:aws:states:local:000000000000:execution:appointment-lifecycle:{name}"
