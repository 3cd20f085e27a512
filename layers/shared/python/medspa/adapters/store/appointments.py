"""Appointments: the booking site's latest version of each booking, plus what the lifecycle added.

Booking-site events arrive duplicated and out of order (SQS, retries, replays). Each carries the
booking's monotonically increasing ``booking_version``; an upsert applies only when its version is
newer than the stored one, so every delivery order converges on the newest booking. Lifecycle
writes (status, execution) are guarded by ``record_version`` so two writers never both win.
"""

from __future__ import annotations

import json
from datetime import datetime
from collections.abc import Callable
from typing import Any

from medspa.domain.appointment import PaymentContext, Service
from medspa.domain.booking import (
    Appointment,
    AppointmentBooking,
    AppointmentStatus,
    BookingFacts,
    CardCheck,
    FeeState,
    LifecycleOutcome,
    LifecycleRun,
    MessageLog,
    MessageResult,
)
from medspa.money import Money
from medspa.ports.store import UpsertResult

from .errors import AppointmentNotFound, ConcurrentUpdate, ConflictingEvent, StaleVersion, transient_errors_named
from .models import AppointmentRecord, PaymentMap, ServiceMap, update_if


def _money(amount: int | None, currency: str | None) -> Money | None:
    return None if amount is None or currency is None else Money(amount=amount, currency=currency)


def _json_map(value: Any) -> dict[str, str]:
    return value.as_dict() if value is not None else {}


def _effective_status(record: AppointmentRecord, outcome: LifecycleOutcome | None) -> AppointmentStatus:
    booked = AppointmentStatus(record.status)
    if outcome is not None and outcome.revision == (record.revision or 0) and outcome.status != "attended":
        return AppointmentStatus(outcome.status)
    return booked


def _to_appointment(record: AppointmentRecord) -> Appointment:
    service, payment = record.service, record.payment or PaymentMap()
    outcome = LifecycleOutcome.model_validate_json(record.outcome) if record.outcome else None
    messages = sorted((MessageLog.model_validate_json(v) for v in _json_map(record.messages).values()),
                      key=lambda m: (m.due_at, m.key))
    return Appointment(
        revision=record.revision or 0,
        version_revision=record.version_revision or 0,
        version_stored_at=record.version_stored_at,
        booking_status=AppointmentStatus(record.status),
        facts=BookingFacts.model_validate_json(record.facts) if record.facts else BookingFacts(),
        messages=tuple(messages),
        fees={k: FeeState.model_validate_json(v) for k, v in _json_map(record.fees).items()},
        outcome=outcome,
        card_check=CardCheck.model_validate_json(record.card_check) if record.card_check else None,
        told_booking_site=frozenset(record.told_booking_site or ()),
        run=LifecycleRun.model_validate_json(record.run) if record.run else None,
        appointment_id=record.appointment_id,
        client_id=record.client_id,
        location_id=record.location_id,
        policy_version=record.policy_version,
        service=Service(
            name=service.name,
            category=service.category,
            duration_minutes=service.duration_minutes,
            price=Money(amount=service.price_amount, currency=service.price_currency),
        ),
        starts_at=record.starts_at,
        party_size=record.party_size,
        status=_effective_status(record, outcome),
        booking_version=record.booking_version,
        last_event_id=record.last_event_id,
        payment=PaymentContext(
            card_on_file=bool(payment.card_on_file),
            deposit=_money(payment.deposit_amount, payment.deposit_currency),
            prepaid=_money(payment.prepaid_amount, payment.prepaid_currency),
            course_id=payment.course_id,
            course_session_available=bool(payment.course_session_available),
            gift_certificate=_money(payment.gift_certificate_amount, payment.gift_certificate_currency),
        ),
        execution_name=record.execution_name,
        execution_arn=record.execution_arn,
        confirmed_at=record.confirmed_at,
        checked_in_at=record.checked_in_at,
        client_confirmed_at=record.client_confirmed_at,
        client_confirmed_via=record.client_confirmed_via,
        created_at=record.created_at,
        updated_at=record.updated_at,
        record_version=record.record_version,
    )


class AppointmentRepository:
    def __init__(self, model: type[AppointmentRecord]) -> None:
        self._model = model

    def get(self, appointment_id: str) -> Appointment | None:
        """The appointment, or ``None`` while no booking is known (only events that arrived early)."""
        try:
            with transient_errors_named():
                record = self._model.get(appointment_id, consistent_read=True)
        except self._model.DoesNotExist:
            return None
        return _to_appointment(record) if record.client_id is not None else None

    def _require(self, appointment_id: str) -> Appointment:
        current = self.get(appointment_id)
        if current is None:
            raise AppointmentNotFound(appointment_id)
        return current

    def upsert_from_booking(self, booking: AppointmentBooking, now: datetime) -> UpsertResult:
        """Apply a booking snapshot unless an equal or newer version is already stored.

        Only booking-site fields are written; the lifecycle's own fields (execution, confirmation
        and check-in times) survive a reschedule until the lifecycle itself replaces them.
        """
        m, service, payment = self._model, booking.service, booking.payment
        actions = [
            m.client_id.set(booking.client_id),
            m.location_id.set(booking.location_id),
            m.policy_version.set(booking.policy_version),
            m.service.set(
                ServiceMap(
                    name=service.name,
                    category=service.category,
                    duration_minutes=service.duration_minutes,
                    price_amount=service.price.amount,
                    price_currency=service.price.currency,
                )
            ),
            m.starts_at.set(booking.starts_at),
            m.party_size.set(booking.party_size),
            m.status.set(booking.status.value),
            m.booking_version.set(booking.booking_version),
            m.last_event_id.set(booking.event_id),
            m.payment.set(
                PaymentMap(
                    card_on_file=payment.card_on_file,
                    deposit_amount=payment.deposit.amount if payment.deposit else None,
                    deposit_currency=payment.deposit.currency if payment.deposit else None,
                    prepaid_amount=payment.prepaid.amount if payment.prepaid else None,
                    prepaid_currency=payment.prepaid.currency if payment.prepaid else None,
                    course_id=payment.course_id,
                    course_session_available=payment.course_session_available,
                    gift_certificate_amount=payment.gift_certificate.amount if payment.gift_certificate else None,
                    gift_certificate_currency=payment.gift_certificate.currency if payment.gift_certificate else None,
                )
            ),
            m.created_at.set(m.created_at | now),
            m.updated_at.set(now),
            m.record_version.set((m.record_version | 0) + 1),
            m.revision.set(booking.revision),
            m.facts.set(booking.facts.model_dump_json(exclude_defaults=True)),
            m.version_stored_at.set(now),
            m.messages.set(m.messages | {}),
            m.fees.set(m.fees | {}),
        ]
        version = booking.booking_version
        newer = m.client_id.does_not_exist() | (m.booking_version < version)
        record = update_if(m, booking.appointment_id, [*actions, m.version_revision.set(booking.revision)], newer)
        if record is None and booking.revision:
            # An older event arrived late: same newest version, one more event folded in.
            refold = (m.booking_version == version) & (m.revision < booking.revision)
            record = update_if(m, booking.appointment_id, actions, refold)
        if record is None:
            return UpsertResult(applied=False, appointment=self._require(booking.appointment_id))
        return UpsertResult(applied=True, appointment=_to_appointment(record))

    def record_event(self, appointment_id: str, booking_version: int, detail_type: str, event_id: str,
                     detail_json: str, now: datetime) -> bool:
        """Keep a booking-site event in the appointment's history; ``False`` if that version is already kept.

        Raises ``ConflictingEvent`` when the version is already held by a different event: the booking
        site reused a version, and folding either one would silently drop the other.
        """
        m = self._model
        slot = m.events[str(booking_version)]
        entry = json.dumps({"detail_type": detail_type, "event_id": event_id, "detail": json.loads(detail_json)})
        # DynamoDB cannot set a key inside a map that does not exist yet: create the maps first.
        update_if(m, appointment_id, [m.events.set(m.events | {}), m.messages.set(m.messages | {}),
                                      m.fees.set(m.fees | {}), m.created_at.set(m.created_at | now)], None)
        actions = [slot.set(entry), m.record_version.set((m.record_version | 0) + 1)]
        stored = update_if(m, appointment_id, actions, slot.does_not_exist())
        if stored is not None:
            return True
        held = json.loads(_json_map(self._model.get(appointment_id, consistent_read=True).events)[str(booking_version)])
        if held["event_id"] != event_id:
            raise ConflictingEvent(f"booking_version {booking_version} of {appointment_id} is already event "
                                   f"{held['event_id']}, not {event_id}")
        return False

    def history(self, appointment_id: str) -> list[tuple[str, str]]:
        """Every booking-site event kept for the appointment, as (detail_type, detail JSON), oldest version first."""
        try:
            with transient_errors_named():
                record = self._model.get(appointment_id, consistent_read=True)
        except self._model.DoesNotExist:
            return []
        held = [json.loads(v) for _, v in sorted(_json_map(record.events).items(), key=lambda kv: int(kv[0]))]
        return [(h["detail_type"], json.dumps(h["detail"])) for h in held]

    def record_message(self, appointment_id: str, log: MessageLog, now: datetime) -> Appointment:
        m = self._model
        actions = [m.messages[log.key].set(log.model_dump_json(exclude_defaults=True)), m.updated_at.set(now),
                   m.record_version.set(m.record_version + 1)]
        condition = m.client_id.exists()
        record = update_if(m, appointment_id, actions, condition)
        return _to_appointment(record) if record is not None else self._require(appointment_id)

    def record_delivery(self, appointment_id: str, key: str, result: MessageResult, now: datetime) -> Appointment:
        m = self._model
        for _ in range(8):
            stored = self._require(appointment_id)
            logged = stored.message(key)
            settled = logged.delivered(result, now) if logged is not None else None
            if settled is None or settled == logged:
                return stored
            record = update_if(m, appointment_id, [m.messages[key].set(settled.model_dump_json(exclude_defaults=True)),
                                                   m.updated_at.set(now), m.record_version.set(m.record_version + 1)],
                               m.record_version == stored.record_version)
            if record is not None:
                return _to_appointment(record)
        raise ConcurrentUpdate(f"{appointment_id} kept changing")

    def record_fee(self, appointment_id: str, state: FeeState) -> Appointment:
        m = self._model
        return self._update(appointment_id, [m.fees[state.reason].set(state.model_dump_json(exclude_defaults=True)),
                                             m.updated_at.set(state.updated_at)])

    def _update(self, appointment_id: str, actions: list[Any]) -> Appointment:
        """Apply lifecycle-owned ``actions`` to a stored appointment, whatever its version. An item that holds
        only early events is no appointment yet: ``AppointmentNotFound``, and nothing is written to it."""
        m = self._model
        record = update_if(m, appointment_id, [*actions, m.record_version.set(m.record_version + 1)],
                           m.client_id.exists())
        if record is None:
            raise AppointmentNotFound(appointment_id)
        return _to_appointment(record)

    def record_told(self, appointment_id: str, key: str, now: datetime) -> Appointment:
        """Remember that the booking site was told ``key``, so the plan does not ask for it again. A set add:
        telling twice (a retried step) leaves one key, and no booking upsert ever removes it."""
        m = self._model
        return self._update(appointment_id, [m.told_booking_site.add({key}), m.updated_at.set(now)])

    def record_card_check(self, appointment_id: str, check: CardCheck) -> Appointment:
        """The latest check replaces the one before: only the current visit time's check is ever read."""
        m = self._model
        return self._update(appointment_id, [m.card_check.set(check.model_dump_json(exclude_defaults=True)),
                                             m.updated_at.set(check.checked_at)])

    def record_outcome(self, appointment_id: str, outcome: LifecycleOutcome) -> Appointment:
        """The lifecycle's own decision for the revision it planned from; refused once a newer fold exists."""
        m = self._model
        actions = [m.outcome.set(outcome.model_dump_json()), m.updated_at.set(outcome.at),
                   m.record_version.set(m.record_version + 1)]
        condition = m.revision == outcome.revision
        record = update_if(m, appointment_id, actions, condition)
        return _to_appointment(record) if record is not None else self._require(appointment_id)

    def set_execution(
        self, appointment_id: str, booking_version: int, execution_name: str, execution_arn: str, now: datetime,
        revision: int | None = None,
    ) -> Appointment:
        """Record the lifecycle execution running for ``booking_version`` (and ``revision``); refused once a
        newer fold exists."""
        m = self._model
        actions = [
            m.execution_name.set(execution_name),
            m.execution_arn.set(execution_arn),
            m.updated_at.set(now),
            m.record_version.set(m.record_version + 1),
        ]
        condition = m.booking_version == booking_version
        if revision:
            condition &= m.revision == revision
        record = update_if(m, appointment_id, actions, condition)
        if record is None:
            current = self._require(appointment_id)
            raise StaleVersion(
                f"appointment {appointment_id} is at booking version {current.booking_version}, not {booking_version}"
            )
        return _to_appointment(record)

    def choose_run(
        self, appointment_id: str, booking_version: int, revision: int, run: LifecycleRun, now: datetime
    ) -> Appointment:
        """Record the run that acts for the fold at ``booking_version`` and ``revision``; refused once a newer
        fold exists."""
        m = self._model
        actions = [m.run.set(run.model_dump_json()), m.updated_at.set(now), m.record_version.set(m.record_version + 1)]
        record = update_if(m, appointment_id, actions, (m.booking_version == booking_version) & (m.revision == revision))
        if record is None:
            current = self._require(appointment_id)
            raise StaleVersion(f"appointment {appointment_id} is at fold {current.booking_version}.{current.revision}, "
                               f"not {booking_version}.{revision}")
        return _to_appointment(record)

    def mark_status(
        self, appointment_id: str, status: AppointmentStatus, expected_version: int, now: datetime
    ) -> Appointment:
        """Move the lifecycle on, but only on top of the record version the caller decided from."""
        m, status = self._model, AppointmentStatus(status)
        actions = [m.status.set(status.value), m.updated_at.set(now), m.record_version.set(m.record_version + 1)]
        if status is AppointmentStatus.CONFIRMED:
            actions.append(m.confirmed_at.set(m.confirmed_at | now))
        if status is AppointmentStatus.CHECKED_IN:
            actions.append(m.checked_in_at.set(m.checked_in_at | now))
        record = update_if(m, appointment_id, actions, m.record_version == expected_version)
        if record is None:
            current = self._require(appointment_id)
            raise ConcurrentUpdate(
                f"appointment {appointment_id} is at record version {current.record_version}, not {expected_version}"
            )
        return _to_appointment(record)

    def record_client_confirmation(self, appointment_id: str, channel: str, at: datetime) -> Appointment:
        """The client answered the confirmation request; the first answer's time is kept."""
        m = self._model
        actions = [m.client_confirmed_at.set(m.client_confirmed_at | at),
                   m.client_confirmed_via.set(m.client_confirmed_via | channel),
                   m.updated_at.set(at), m.record_version.set(m.record_version + 1)]
        record = update_if(m, appointment_id, actions, m.client_id.exists())
        if record is None:
            raise AppointmentNotFound(appointment_id)
        return _to_appointment(record)

    def erase_personal_data(self, appointment_id: str, scrub: Callable[[dict[str, Any]], dict[str, Any]],
                            now: datetime) -> tuple[int, int]:
        """Rewrite every kept booking-site event through ``scrub`` and skip every message still due; returns
        (events changed, messages skipped). What the erasure keeps, and why: ``medspa.services.privacy``.

        One conditional write on top of the version read, re-read and redone if a lifecycle step wrote in
        between; a second run finds nothing left to change and writes nothing.
        """
        m = self._model
        for _ in range(5):
            try:
                with transient_errors_named():
                    record = m.get(appointment_id, consistent_read=True)
            except m.DoesNotExist:
                return 0, 0
            events, changed = {}, 0
            for version, text in _json_map(record.events).items():
                entry = json.loads(text)
                scrubbed = scrub(entry["detail"])
                changed += scrubbed != entry["detail"]
                events[version] = json.dumps({**entry, "detail": scrubbed})
            messages, skipped = {}, 0
            for key, text in _json_map(record.messages).items():
                log = MessageLog.model_validate_json(text)
                if log.status == "due":
                    skipped += 1
                    log = log.model_copy(update={"status": "skipped", "results": (
                        MessageResult(channel="any", status="skipped_client_erased"),)})
                messages[key] = log.model_dump_json(exclude_defaults=True)
            if not changed and not skipped:
                return 0, 0
            actions = [m.events.set(events), m.messages.set(messages), m.updated_at.set(now),
                       m.record_version.set(m.record_version + 1)]
            if update_if(m, appointment_id, actions, m.record_version == record.record_version) is not None:
                return changed, skipped
        raise ConcurrentUpdate(f"appointment {appointment_id} kept changing while its client's data was erased")

    def for_client(self, client_id: str, starting_from: datetime | None = None) -> list[Appointment]:
        """A client's appointments in start order (index reads are eventually consistent)."""
        m = self._model
        condition = m.starts_at >= starting_from if starting_from else None
        return [_to_appointment(r) for r in m.by_client.query(client_id, range_key_condition=condition)]
