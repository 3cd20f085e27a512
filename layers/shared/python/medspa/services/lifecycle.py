"""What an appointment's execution does when it wakes up: re-read the appointment, then decide the next step.

Every wake-up re-reads the appointment because the execution may have slept for days: if the booking
site has since sent a newer version (a reschedule, a cancellation), this execution is stale and must do
nothing; the newer version has an execution of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from medspa.adapters.store import AppointmentNotFound, AppointmentRepository, AppointmentStatus
from medspa.domain import engine
from medspa.policy.schema import PolicyPack

OPEN_STATUSES = {AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED}


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    appointment_id: str = Field(min_length=1)
    booking_version: int = Field(ge=0)


class DueReminder(BaseModel):
    kind: str
    send_at: AwareDatetime


class NextStep(BaseModel):
    """The state machine's view of the appointment after a wake-up; timestamps serialise as ``...Z``."""

    current: bool = Field(description="False when a newer booking version or a closed status supersedes this run")
    status: AppointmentStatus
    next_reminder: DueReminder | None = None


class LifecycleService:
    def __init__(self, appointments: AppointmentRepository, packs: Mapping[str, PolicyPack]) -> None:
        self._appointments = appointments
        self._packs = packs

    def next_step(self, request: StepRequest, now: datetime) -> NextStep:
        stored = self._appointments.get(request.appointment_id)
        if stored is None:
            raise AppointmentNotFound(request.appointment_id)
        if stored.booking_version != request.booking_version or stored.status not in OPEN_STATUSES:
            return NextStep(current=False, status=stored.status)
        appointment = stored.to_domain()
        pending = engine.reminder_times(self._packs[stored.location_id], appointment, now)
        upcoming = next((r for r in pending if r.send_at > now), None)
        return NextStep(
            current=True,
            status=stored.status,
            next_reminder=DueReminder(kind=upcoming.kind, send_at=upcoming.send_at.replace(microsecond=0))
            if upcoming else None,
        )
