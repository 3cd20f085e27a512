"""One AppointmentLifecycle execution per appointment version, named so an admin finds it in the console.

The name is derived from the appointment id and booking version, so StartExecution is idempotent: a
duplicate booking event starts nothing new (same name, same input), and the console lists each version's
run under a name that says which appointment and version it is. Step Functions names are at most 80
characters from a restricted alphabet; a long or exotic booking-site id keeps a readable prefix plus a
short hash so two ids never collide.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.\-]")
MAX_NAME = 80


def execution_name(appointment_id: str, booking_version: int | None = None, *, revision: int | None = None,
                   suffix: str | None = None) -> str:
    """``<appointment>-v<version>`` (``-r<revision>`` after a late refold), or ``<appointment>-<suffix>``."""
    if suffix is None:
        suffix = f"-v{booking_version}" + (f"-r{revision}" if revision is not None else "")
    else:
        suffix = f"-{_NOT_ALLOWED.sub('_', suffix)}"
    safe = _NOT_ALLOWED.sub("_", appointment_id)
    if safe == appointment_id and len(safe) + len(suffix) <= MAX_NAME:
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
        try:
            self._sfn.stop_execution(executionArn=execution_arn, error=error[:256], cause=cause[:32768])
            return True
        except (self._sfn.exceptions.ExecutionDoesNotExist, self._sfn.exceptions.InvalidArn):
            return False

    def _existing_arn(self, name: str) -> str:
        prefix = self._state_machine_arn.replace(":stateMachine:", ":execution:")
        return f"{prefix}:{name}"
