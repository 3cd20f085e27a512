"""Booking-site events in: keep each event, fold the appointment's history, keep one lifecycle run for it.

SQS delivers at least once and in any order, and a Lambda may die between two writes. So each event is
applied by converging, not by replaying: the event is kept in the appointment's history (idempotent by
booking version), the history is folded in version order (``medspa.events.history``), the store keeps
the fold only if it holds more events than the stored one; then, whether or not this delivery changed
anything, the run chosen for the stored fold must be running and every other one must be stopped. A
redelivery after a crash therefore finishes the job, and a duplicate changes nothing (StartExecution
with the same name and input is idempotent).

An event that arrives before its booking is kept and acknowledged: the fold that includes it runs when
the ``AppointmentBooked`` arrives, so nothing waits in the queue.

The policy a client accepted is the location's pack current when the intake first folds the booking, and
every later fold keeps it (the stored ``policy_version``): a pack published in between changes nothing for
a visit already booked. The booking site sends no version, so a booking still in the queue when a new pack
is deployed is held to the new one; a deploy drains in seconds, so this is accepted.

Tenants: every key is ``<spa_id>#<booking site's id>`` (``medspa.domain.keys``), so an event can only
ever address its own spa's records. Before anything is written, the event must come from a source its
spa authorised (``medspa.policy.tenants``) and book at one of that spa's locations; otherwise it is
refused (:class:`EventRefused`) and changes nothing. An admin event (waiver, prepay clear, card) that
names a client, appointment or ledger entry this spa does not have is :class:`NotKnownHere`: it may
only have overtaken the booking that creates it, so the intake lets SQS retry it and quarantines it with
that reason on the last receive.

Privacy requests (``ClientDataExportRequested``, ``ClientContactCorrected``, ``ClientErasureRequested``)
pass the same checks and go to the privacy desk (``medspa.services.privacy``). Once a client is erased,
every event naming them (as the booking's client, by ``client_id``, or through an appointment of
theirs) is refused, so nothing about them is stored again; only a repeated erasure request passes, so
one that was interrupted can finish. An appointment's history keeps each event without the client's
contact details and Stripe ids (``medspa.events.personal``): the profile holds the only copy.

One run acts for the appointment at a time (``Appointment.run``). An event that moves the appointment's next
step (``LifecycleService.next_step``: a booking, a reschedule, a cancel, a check-in, a no-show marked by the
front desk) stops it and starts a run of the new version; one that leaves the next step as it was is read by
the waiting run when it wakes, and starts and stops nothing. A state machine transition costs money and a
restart costs several, so most confirmations and completions now cost none.

``FeeWaived`` starts a run of the FeeWaiver state machine (``<appointment>-waive-<purpose>``), audited beside
the appointment's runs, since the appointment's own run may be sleeping for days. ``OutstandingBalancePaid`` is settled here, ledger first and without Stripe (the desk already holds the
money; ``medspa.services.balances``), and answered with ``OutstandingBalanceSettled``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from medspa.domain.booking import Appointment, AppointmentStatus, LifecycleRun
from medspa.domain.client import ClientProfile
from medspa.ports.store import StaleVersion, Stores
from medspa.events import (
    APPOINTMENT_DETAIL_MODELS,
    AppointmentBooked,
    AppointmentEvent,
    BookingEvent,
    BookingNotYetKnown,
    CardUpdated,
    ClientContactCorrected,
    ClientDataExportRequested,
    ClientErasureRequested,
    FeeWaived,
    CourseDeferred,
    CoursePurchased,
    MembershipEvent,
    MembershipStarted,
    OutstandingBalancePaid,
    ServiceCreditRedeemed,
    PrepayRequirementCleared,
    PrivacyRequest,
)
from medspa.domain.keys import appointment_key, belongs_to, client_key, spa_key, split_key
from medspa.domain.runs import run_name, runs_for
from medspa.money import Money
from medspa.events.history import fold
from medspa.events.personal import as_kept
from medspa.policy.loader import PolicyPacks
from medspa.policy.schema import PolicyPack
from medspa.policy.tenants import Tenant
from medspa.ports import BookingSiteEvents, Executions
from medspa.ports.memberships import ConflictingMembershipEvent, DraftRuns
from medspa.services import balances
from medspa.services.courses import CourseRefused, CourseService
from medspa.services.lifecycle import LifecycleService, NextAction
from medspa.services.memberships import MembershipService


class Refusal(Exception):
    """Why an event may not act here; ``reason`` names the field, never a value, so it is safe to log."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = f"{field}: {reason}"
        super().__init__(self.reason)


class EventRefused(Refusal):
    """Wrong source, spa or location: it will never be allowed, so it is quarantined at once."""


class ErasedClientRefused(EventRefused):
    """The event names a client erased at their request: quarantined, but without what it says about them."""


class NotKnownHere(Refusal):
    """The event names a record its spa does not hold (yet): retried, then quarantined with this reason."""


class IngestOutcome(BaseModel):
    model_config = ConfigDict(defer_build=True)

    appointment_id: str | None = None
    booking_version: int | None = None
    applied: bool
    action: Literal["started", "scheduled", "superseded", "unchanged", "stopped_nothing_left", "held_until_booked",
                    "card_updated", "waiver_started",
                    "prepay_cleared", "exported", "contact_corrected", "erased", "balance_paid",
                    "membership_folded", "held_until_started", "course_recorded", "course_deferred"]
    execution_name: str | None = None


PRIVACY_REQUESTS = (ClientDataExportRequested, ClientContactCorrected, ClientErasureRequested)
ERASED = "this client's data was erased at their request"


class PrivacyDesk(Protocol):
    """Serves a privacy request (``medspa.services.privacy.PrivacyService``, or the function that runs it)."""

    def handle(self, event: PrivacyRequest, now: datetime) -> str: ...


class IngestService:
    def __init__(self, store: Stores, executions: Executions, packs: Mapping[str, PolicyPack],
                 tenants: Mapping[str, Tenant], privacy: PrivacyDesk | None = None,
                 booking_site: BookingSiteEvents | None = None, memberships: MembershipService | None = None,
                 draft_runs: DraftRuns | None = None, courses: CourseService | None = None) -> None:
        self._courses = courses
        self._booking_site = booking_site
        self._memberships = memberships
        self._draft_runs = draft_runs
        self._store = store
        self._executions = executions
        self._packs = PolicyPacks.of(packs)  # with the superseded versions: a refold judges by the booked one
        self._planner = LifecycleService(store, packs)
        self._tenants = dict(tenants)
        self._privacy = privacy

    def ingest(self, event: BookingEvent, source: str, now: datetime) -> IngestOutcome:
        """Apply one booking-site event that ``source`` published; refuse it if it may not act here."""
        self._authorise(event, source)
        self._refuse_if_erased(event)
        if isinstance(event, PRIVACY_REQUESTS):
            return self._privacy_request(event, now)
        if isinstance(event, CardUpdated):
            return self._card(event, now)
        if isinstance(event, FeeWaived):
            return self._waive(event)
        if isinstance(event, PrepayRequirementCleared):
            self._store.clients.clear_prepay_required(self._known_client(event.spa_id, event.client_id),
                                                      event.admin_id, now)
            return IngestOutcome(applied=True, action="prepay_cleared")
        if isinstance(event, OutstandingBalancePaid):
            return self._paid_at_desk(event, now)
        if isinstance(event, MembershipEvent):
            return self._membership_event(event, now)
        if isinstance(event, CoursePurchased | CourseDeferred):
            return self._course_event(event, now)
        return self._appointment_event(event, now)

    def _authorise(self, event: BookingEvent, source: str) -> None:
        tenant = self._tenants.get(event.spa_id)
        if tenant is None:
            raise EventRefused("detail.spa_id", "no spa with this id is served here")
        if not tenant.may_speak(source):
            raise EventRefused("source", "this source is not authorised to speak for the spa in detail.spa_id")
        if (isinstance(event, AppointmentBooked | MembershipStarted | ServiceCreditRedeemed | CoursePurchased)
                and event.location_id not in tenant.locations):
            raise EventRefused("detail.location_id", "not a location of the spa in detail.spa_id")

    def _refuse_if_erased(self, event: BookingEvent) -> None:
        """Nothing about an erased client is stored again; a repeated erasure may pass, to finish the job."""
        if isinstance(event, ClientErasureRequested):
            return
        named: str | None
        if isinstance(event, AppointmentBooked | MembershipStarted | CoursePurchased):
            named, field = client_key(event.spa_id, event.client.id), "detail.client.id"
        elif isinstance(event, CourseDeferred):
            held = self._store.courses.get(spa_key(event.spa_id, event.course_id))
            named, field = (held[0].client_id if held else None), "detail.course_id"
        elif isinstance(event, CardUpdated | PrepayRequirementCleared | ClientDataExportRequested
                        | ClientContactCorrected | OutstandingBalancePaid):
            named, field = client_key(event.spa_id, event.client_id), "detail.client_id"
        elif isinstance(event, MembershipEvent):
            record = self._store.memberships.read(spa_key(event.spa_id, event.membership_id))
            named = record.membership.client_id if record and record.membership else None
            field = "detail.membership_id"
        else:
            stored = self._store.appointments.get(appointment_key(event.spa_id, event.appointment_id))
            named, field = (stored.client_id if stored else None), "detail.appointment_id"
        client = self._store.clients.get(named) if named else None
        if client is not None and client.erased:
            through = {"detail.appointment_id": "the appointment's client: ",
                       "detail.membership_id": "the membership's client: ",
                       "detail.course_id": "the course's client: "}.get(field, "")
            raise ErasedClientRefused(field, through + ERASED)

    def _privacy_request(self, event: PrivacyRequest, now: datetime) -> IngestOutcome:
        if self._privacy is None:
            raise EventRefused("detail-type", "privacy requests are not served by this deployment")
        self._known_client(event.spa_id, event.client_id)
        return IngestOutcome(applied=True, action=self._privacy.handle(event, now))

    def _known_client(self, spa_id: str, booking_client_id: str) -> str:
        key = client_key(spa_id, booking_client_id)
        if self._store.clients.get(key) is None:
            raise NotKnownHere("detail.client_id", "no client with this id at the spa in detail.spa_id")
        return key

    def _appointment_event(self, event: AppointmentEvent, now: datetime) -> IngestOutcome:
        appointments = self._store.appointments
        key = appointment_key(event.spa_id, event.appointment_id)
        appointments.record_event(key, event.booking_version, event.detail_type, event.event_id,
                                  json.dumps(as_kept(event.model_dump(mode="json"))), now)
        history = [_kept_event(kind, detail) for kind, detail in appointments.history(key)]
        stored = appointments.get(key)  # a booking folded before keeps the version its client accepted then
        try:
            folded = fold(history, self._packs, accepted_version=stored.policy_version if stored else None)
        except BookingNotYetKnown:
            return IngestOutcome(appointment_id=key, booking_version=event.booking_version,
                                 applied=False, action="held_until_booked")
        if isinstance(event, AppointmentBooked):
            self._store.clients.save_profile(ClientProfile(
                client_id=client_key(event.spa_id, event.client.id), spa_id=event.spa_id, phone=event.client.phone,
                first_name=event.client.first_name, email=event.client.email,
                stripe_customer_id=event.payment.stripe_customer_id,
                default_payment_method_id=event.payment.stripe_payment_method_id,
                sms_consent=event.client.sms_opt_in, email_consent=event.client.email_opt_in,
            ), now)
        result = appointments.upsert_from_booking(folded.booking, now)
        course_id = folded.booking.payment.course_id
        if self._courses is not None and course_id and folded.booking.status is AppointmentStatus.COMPLETED:
            self._courses.record_use(spa_key(event.spa_id, course_id), key, "completed", folded.occurred_at, now)
        why = (f"booking version {folded.booking.booking_version}: {folded.changed_by} at the booking site "
               f"{folded.occurred_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC (visit "
               f"{folded.booking.starts_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)")
        return self._converge(result.appointment, stored if result.applied else None, event.booking_version,
                              result.applied, now, why)

    def _converge(self, stored: Appointment, before: Appointment | None, version: int, applied: bool, now: datetime,
                  why: str) -> IngestOutcome:
        """The chosen run running, every other one stopped; an idle run stops the previous one and starts none.
        ``before`` is the appointment as this delivery found it, when this delivery folded the event: the only one
        that can judge whether the event moved the next step."""
        outcome = dict(appointment_id=stored.appointment_id, booking_version=version, applied=applied)
        if not stored.run_chosen:
            try:
                stored = self._store.appointments.choose_run(stored.appointment_id, stored.booking_version,
                                                             stored.revision, self._run_for(stored, before, now), now)
            except StaleVersion:
                return IngestOutcome(**outcome, action="superseded")
        assert stored.run is not None
        run = stored.run
        if run.idle:
            if before is not None and before.run is not None and before.run.idle:
                return IngestOutcome(**outcome, action="unchanged")
            if stored.execution_arn:
                self._executions.stop(stored.execution_arn, error="NothingLeftToDo",
                                      cause=f"Nothing left to do after {why}")
            return IngestOutcome(**outcome, action="stopped_nothing_left")
        current = runs_for(run.name, stored.execution_name)
        if stored.execution_arn and not current:
            self._executions.stop(stored.execution_arn, error="Superseded", cause=f"Superseded by {why}")
        if current:
            return IngestOutcome(**outcome, action="unchanged", execution_name=stored.execution_name)
        starts_at = run.starts_at if run.starts_at is not None and run.starts_at > now else None
        started = self._executions.start(stored.appointment_id, run.booking_version, run.revision, run.name,
                                         starts_at=starts_at)
        try:
            self._store.appointments.set_execution(stored.appointment_id, stored.booking_version, started.name,
                                                   started.arn, now, revision=stored.revision)
        except StaleVersion:
            return IngestOutcome(**outcome, action="superseded")
        return IngestOutcome(**outcome, action="scheduled" if started.starts_at else "started",
                             execution_name=started.name)

    def _run_for(self, stored: Appointment, before: Appointment | None, now: datetime) -> LifecycleRun:
        """The run already acting keeps acting when the event left the next step as it was (same step, same
        time): it reads the event when it wakes. Otherwise the new fold gets a run of its own, or, when nothing is
        left to do (checked in, completed, cancelled in time), an idle run that starts no execution. Only a run chosen
        for the fold this delivery found can be judged so (its wait is that fold's next step); a redelivery that
        finds the event folded but not judged, or a fold another delivery left unjudged, starts a new run:
        always safe."""
        chosen_at = LifecycleRun.fold_of(stored.booking_version, stored.revision)
        first = self._planner.next_step(stored, now)
        if (before is not None and before.run is not None and before.run_chosen
                and (before.run.idle or runs_for(before.run.name, before.execution_name))
                and self._planner.next_step(before, now) == first):
            return before.run.model_copy(update={"chosen_at": chosen_at})
        return LifecycleRun(booking_version=stored.booking_version, revision=stored.revision, chosen_at=chosen_at,
                            name=run_name(stored.appointment_id, stored.booking_version, stored.revision,
                                          stored.version_revision), starts_at=self._start_of(stored, first, now),
                            idle=first is None)

    def _start_of(self, stored: Appointment, first: NextAction | None, now: datetime) -> datetime | None:
        """When a new run should start: the pack's margin before its first step, so a visit booked months ahead
        holds no open execution until then (None: at once)."""
        if first is None:
            return None
        at = first.at - timedelta(hours=self._packs.for_visit(stored).run_start.hours_before)
        return at if at > now else None

    def _membership_event(self, event: MembershipEvent, now: datetime) -> IngestOutcome:
        """Keep the event and refold the membership; dues already due (a sign-up today, an unfreeze) are
        drafted at once by a run of their own rather than at tomorrow's daily run."""
        if self._memberships is None:
            raise EventRefused("detail-type", "memberships are not served by this deployment")
        key = spa_key(event.spa_id, event.membership_id)
        try:
            membership = self._memberships.record(event, now)
        except ConflictingMembershipEvent:
            raise EventRefused("detail.membership_version", "already held by another event of this membership") from None
        if membership is None:
            return IngestOutcome(applied=False, action="held_until_started")
        planned = self._memberships.due_now(membership, now)
        if planned is not None and self._draft_runs is not None:
            self._draft_runs.start_now(key, planned.due_on, planned.attempt)
        return IngestOutcome(applied=True, action="membership_folded")

    def _course_event(self, event: CoursePurchased | CourseDeferred, now: datetime) -> IngestOutcome:
        if self._courses is None:
            raise EventRefused("detail-type", "prepaid courses are not served by this deployment")
        try:
            if isinstance(event, CoursePurchased):
                self._courses.purchase(event, now)
                return IngestOutcome(applied=True, action="course_recorded")
            if not self._courses.known(spa_key(event.spa_id, event.course_id)):
                raise NotKnownHere("detail.course_id", "no course with this id at the spa in detail.spa_id")
            self._courses.defer(event, now)
        except CourseRefused as refused:
            raise EventRefused(refused.field, str(refused).partition(": ")[2]) from None
        return IngestOutcome(applied=True, action="course_deferred")

    def _card(self, event: CardUpdated, now: datetime) -> IngestOutcome:
        """The newest card replaces the old one; a declined fee's next dunning attempt charges it."""
        self._store.clients.save_profile(ClientProfile(
            client_id=self._known_client(event.spa_id, event.client_id), spa_id=event.spa_id,
            stripe_customer_id=event.stripe_customer_id, default_payment_method_id=event.stripe_payment_method_id,
        ), now)
        return IngestOutcome(applied=True, action="card_updated")

    def _waive(self, event: FeeWaived) -> IngestOutcome:
        key = appointment_key(event.spa_id, event.appointment_id)
        if self._store.appointments.get(key) is None:
            raise NotKnownHere("detail.appointment_id", "no appointment with this id at the spa in detail.spa_id")
        if event.ledger_entry_id is not None:
            entry = self._store.ledger.get(event.ledger_entry_id)
            if entry is None or entry.appointment_id != key or not belongs_to(entry.entry_id, event.spa_id):
                raise NotKnownHere("detail.ledger_entry_id", "no ledger entry with this id for this appointment")
        started = self._executions.start_waiver(key, event.purpose, event.admin_id)
        return IngestOutcome(appointment_id=key, applied=not started.already_running,
                             action="waiver_started", execution_name=started.name)

    def _paid_at_desk(self, event: OutstandingBalancePaid, now: datetime) -> IngestOutcome:
        """Money the desk took: it pays the client's balance, any rest is store credit, exactly once per
        payment reference (``medspa.services.balances``); then the booking site hears where it went.

        A currency none of the spa's locations charges in cannot be anything the client owes here, so it is
        refused outright rather than kept as credit nobody could spend."""
        currencies = {self._packs[location].currency for location in self._tenants[event.spa_id].locations}
        if event.amount.currency not in currencies:
            raise EventRefused("detail.amount.currency", "not a currency the spa in detail.spa_id charges in")
        client_id = self._known_client(event.spa_id, event.client_id)
        try:
            paid = balances.pay_at_desk(self._store, client_id, event.amount, event.payment_reference, now)
        except balances.ReferenceReused:
            raise EventRefused("detail.payment_reference", "already recorded for this client with another amount: "
                                                           "one payment, one reference") from None
        if self._booking_site is not None:
            self._booking_site.publish("OutstandingBalanceSettled", f"{client_id}:paid-at-desk:{event.payment_reference}",
                                       _settled_detail(event, paid))
        return IngestOutcome(applied=True, action="balance_paid")


@lru_cache(maxsize=4096)
def _kept_event(detail_type: str, detail: str) -> AppointmentEvent:
    """A kept event read back. The whole history is folded again at each event of the visit, so every event
    would be parsed again at every later one; the details are frozen, so one reading serves them all."""
    return APPOINTMENT_DETAIL_MODELS[detail_type].model_validate_json(detail)


def _settled_detail(event: OutstandingBalancePaid, paid: balances.DeskPayment) -> dict[str, object]:
    """``OutstandingBalanceSettled``: where the desk's money went, and what the client still owes."""
    def money(value: Money | None) -> dict[str, object] | None:
        return value.model_dump() if value is not None else None

    return {"spa_id": event.spa_id, "client_id": event.client_id, "payment_reference": event.payment_reference,
            "received_by": event.received_by, "paid_at": event.paid_at.isoformat(), "paid": money(paid.paid),
            "settled": money(paid.settled), "credited": money(paid.credited),
            "balance": [m.model_dump() for m in paid.balance], "ledger_entries": list(paid.ledger_entries),
            "fees_settled": [{"appointment_id": split_key(a)[1], "reason": r} for a, r in paid.fees_settled]}
