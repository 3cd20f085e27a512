"""An appointment's state: the booking as the fold of its booking-site events builds it, and what the
lifecycle adds to it (messages, fees, its own outcome, the card check).

Plain values, below the events and the store: the fold (``medspa.events.history``) produces them, the
store (``medspa.adapters.store.appointments``) persists them, the services read them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator

from medspa.domain.appointment import Appointment as PolicyAppointment
from medspa.domain.appointment import PaymentContext, Service
from medspa.domain.fee_breakdown import FeeBreakdown
from medspa.domain.keys import belongs_to, split_key
from medspa.money import Money


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CONFIRMED = "confirmed"
    CHECKED_IN = "checked_in"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    AUTO_CANCELLED = "auto_cancelled"


OPEN_STATUSES = frozenset({AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED})
"""A visit still ahead: reminders, confirmation and the attendance decision apply; a cancel can be late."""


class _Frozen(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")


class Violation(_Frozen):
    """A late cancel or late reschedule, decided from the booking-site event when it was folded in."""

    reason: Literal["late_cancel", "late_reschedule"]
    booking_version: int
    decided_at: AwareDatetime
    fee_waived: bool = False
    notice_minutes: int = Field(description="Notice the client gave; negative for an arrival after the start")
    cause: Literal["notice", "late_arrival"] = Field(
        "notice", description="A change made too late, or an arrival too late for the visit to go ahead")
    fee_due_at: AwareDatetime | None = Field(
        None, description="Not charged before this instant: the end of the visit's local day when rebooking "
                          "that day would waive the fee")
    prepayment: Money | None = Field(None, description="The visit's prepayment this violation forfeits: the visit "
                                     "holds it no longer, so no later violation can (medspa.services.prepayment)")


class LateArrival(_Frozen):
    """How late the client checked in and what the pack makes of it (``engine.late_arrival_outcome``)."""

    status: Literal["shortened", "must_reschedule"]
    minutes_late: int
    hands_on_minutes: int
    treatment_ends_at: AwareDatetime


class BookingFacts(_Frozen):
    """What the booking site's events established besides the booking itself."""

    confirmed_at: AwareDatetime | None = None
    arrived_at: AwareDatetime | None = None
    late_arrival: LateArrival | None = None
    cancelled_at: AwareDatetime | None = None
    cancelled_by: Literal["client", "spa"] | None = None
    no_show_marked_by: str | None = None
    violations: tuple[Violation, ...] = ()
    prepaid_credit: Money | None = Field(None, description="A prepayment owed back as store credit")


class MessageResult(_Frozen):
    channel: str
    status: str
    message_id: str | None = None
    error: str | None = None


class MessageLog(_Frozen):
    """One client notification the lifecycle owes or sent, keyed so a retry never sends it twice.

    ``queued``: handed to the outbox of each channel's sending identity, which sends it at that identity's rate and
    reports back (:meth:`delivered`) as ``sent``, or ``dropped`` when it could no longer be sent usefully."""

    key: str
    kind: str
    due_at: AwareDatetime
    status: Literal["due", "sending", "queued", "sent", "skipped", "failed", "dropped"]
    sent_at: AwareDatetime | None = None
    fee: Money | None = None
    fee_breakdown: FeeBreakdown | None = Field(None, description="A fee notice's whole fee and where each part came from")
    results: tuple[MessageResult, ...] = ()

    def delivered(self, result: MessageResult, now: datetime) -> MessageLog:
        """The outbox's word on one channel, in place of that channel's ``queued`` result. The notification is sent
        once any channel is; it is dropped only when nothing went and nothing is still queued. A word on a channel
        that is not queued (a redelivered report) changes nothing."""
        if not any(r.channel == result.channel and r.status == "queued" for r in self.results):
            return self
        results = tuple(result if r.channel == result.channel and r.status == "queued" else r for r in self.results)
        statuses = {r.status for r in results}
        status = ("sent" if "sent" in statuses else "queued" if "queued" in statuses
                  else "dropped" if "dropped" in statuses else self.status)
        first_sent = self.sent_at or (now if status == "sent" else None)
        return self.model_copy(update={"results": results, "status": status, "sent_at": first_sent})


class FeeState(_Frozen):
    """Where one fee of this visit stands; the ledger holds the money, this holds the schedule."""

    reason: str
    outcome: Literal["no_fee", "settled", "outstanding", "waived"]
    fee: Money | None = None
    attempt: int = 1
    next_retry_at: AwareDatetime | None = None
    retry_at: tuple[AwareDatetime, ...] = Field((), description="The policy's dunning times after the first decline")
    updated_at: AwareDatetime


class LifecycleOutcome(_Frozen):
    """A status the lifecycle itself decided (auto-cancel, no-show) for one revision of the booking."""

    status: Literal["auto_cancelled", "no_show", "attended"]
    revision: int
    at: AwareDatetime


class LifecycleRun(_Frozen):
    """The execution that acts for the appointment, and the fold it was chosen at.

    A run is started for one booking version and revision and keeps acting while later events leave the
    appointment's next step as it was (a confirmation, a check-in that changes nothing due): it reads them
    when it wakes. ``chosen_at`` names the fold (``<booking_version>.<revision>``) whose event was judged,
    so a redelivery after a crash can tell a judged event from one that still needs judging. An idle run
    starts no execution at all: a run started only to find nothing due would cost three state transitions.
    """

    booking_version: int
    revision: int
    name: str = Field(description="The run's execution name; a hand-over continues it as ``<name>-c<n>``")
    chosen_at: str
    starts_at: AwareDatetime | None = Field(
        None, description="When a schedule starts the run (the pack's run_start before its first step); None: "
                          "started when chosen")
    idle: bool = Field(False, description="Nothing is left to do for this fold (a visit checked in, completed or "
                                          "cancelled in time): no execution runs for it, the previous one is stopped")

    @staticmethod
    def fold_of(booking_version: int, revision: int) -> str:
        return f"{booking_version}.{revision}"


CardCheckOutcome = Literal["usable", "expired", "detached", "missing", "verification_failed", "not_checked"]


class CardCheck(_Frozen):
    """The card on file as found before one visit time (``medspa.services.card_check``); a reschedule to
    another time earns a new check, a check for this time is never repeated."""

    starts_at: AwareDatetime = Field(description="The visit time the card was checked for")
    outcome: CardCheckOutcome
    checked_at: AwareDatetime
    code: str | None = Field(None, description="Stripe's error or decline code, or why no check was made")


class _DomainView:
    appointment_id: str
    client_id: str
    location_id: str
    policy_version: str
    service: Service
    starts_at: datetime
    party_size: int
    payment: PaymentContext

    @property
    def spa_id(self) -> str:
        return split_key(self.appointment_id)[0]

    @property
    def booking_site_ids(self) -> dict[str, str]:
        """How the spa's booking site names this visit and its client (keys here carry the spa)."""
        spa_id, appointment = split_key(self.appointment_id)
        return {"spa_id": spa_id, "appointment_id": appointment, "client_id": split_key(self.client_id)[1]}

    def to_domain(self) -> PolicyAppointment:
        """The facts the policy engine decides on, without what only the store and the lifecycle track."""
        return PolicyAppointment(
            id=self.appointment_id, client_id=self.client_id, location_id=self.location_id,
            policy_version=self.policy_version, service=self.service, starts_at=self.starts_at,
            party_size=self.party_size, payment=self.payment,
        )


class AppointmentBooking(_DomainView, _Frozen):
    """One versioned snapshot of a booking as the booking site sent it."""

    appointment_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    location_id: str = Field(min_length=1)
    policy_version: str = Field(min_length=1, description="The policy the client accepted when booking.")
    service: Service = Field(description="Its name lives only here: nothing about treatments is sent to Stripe.")
    starts_at: AwareDatetime
    party_size: PositiveInt = 1
    status: AppointmentStatus = AppointmentStatus.BOOKED
    booking_version: NonNegativeInt
    event_id: str = Field(min_length=1)
    payment: PaymentContext = PaymentContext()
    revision: NonNegativeInt = Field(0, description="Events folded into this snapshot; 0 = not from a history")
    facts: BookingFacts = BookingFacts()

    @model_validator(mode="after")
    def _one_spa(self) -> AppointmentBooking:
        spa_id, _ = split_key(self.appointment_id)
        if not belongs_to(self.client_id, spa_id):
            raise ValueError("appointment_id and client_id must be namespaced by the same spa ('<spa_id>#<id>')")
        return self


class Appointment(_DomainView, _Frozen):
    appointment_id: str
    client_id: str
    location_id: str
    policy_version: str
    service: Service = Field(description="Its name lives only here: nothing about treatments is sent to Stripe.")
    starts_at: AwareDatetime
    party_size: int
    status: AppointmentStatus
    booking_version: int
    last_event_id: str | None
    payment: PaymentContext
    execution_name: str | None
    execution_arn: str | None
    confirmed_at: AwareDatetime | None
    checked_in_at: AwareDatetime | None
    client_confirmed_at: AwareDatetime | None = None
    client_confirmed_via: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    record_version: int = Field(description="Pass back as expected_version to write on top of what you read.")
    revision: int = 0
    version_revision: int = Field(0, description="The revision at which this booking_version was first stored")
    version_stored_at: AwareDatetime | None = None
    booking_status: AppointmentStatus | None = Field(None, description="The status the booking site's events give")
    facts: BookingFacts = BookingFacts()
    messages: tuple[MessageLog, ...] = ()
    fees: dict[str, FeeState] = {}
    outcome: LifecycleOutcome | None = None
    card_check: CardCheck | None = None
    told_booking_site: frozenset[str] = Field(frozenset(), description="Keys of what the lifecycle told the "
                                              "booking site on its own account (``balance_due@booked``)")
    run: LifecycleRun | None = Field(None, description="The execution acting for the appointment (none on records "
                                 "stored before runs outlived a booking version: the booking version's own run acts)")

    @property
    def run_identity(self) -> tuple[int, int]:
        """(booking version, revision) of the run that acts for the appointment: what its steps carry."""
        return (self.run.booking_version, self.run.revision) if self.run else (self.booking_version, self.revision)

    @property
    def run_chosen(self) -> bool:
        """The run was chosen after the latest fold (a redelivery finds it so, and only converges)."""
        return self.run is not None and self.run.chosen_at == LifecycleRun.fold_of(self.booking_version, self.revision)

    @property
    def confirmed(self) -> bool:
        return self.facts.confirmed_at is not None or self.client_confirmed_at is not None

    def message(self, key: str) -> MessageLog | None:
        return next((m for m in self.messages if m.key == key), None)

    @property
    def card_checked(self) -> bool:
        """The card on file was checked (or given up on) for the visit's current time."""
        return self.card_check is not None and self.card_check.starts_at == self.starts_at
