"""Prepaid courses (Glow): the balance of sessions this system keeps, deferrals, the next-session prompt, expiry.

The booking site sells the course (``CoursePurchased``); from then on this system keeps how many sessions are
left, so a deduction is auditable: each session is used by one visit, named by the appointment, either because
the visit took place (``AppointmentCompleted``) or because a late cancellation or no-show took it (the
settlement's ``course_session`` step). A visit reported again uses nothing more.

"Clients with a course of treatment are required to book their following session on completion of each
session": when a course visit completes with sessions left, the booking site hears ``CourseNextSessionDue``
(it holds the calendar and the treatment protocol, so it prompts the client).

The daily MembershipDrafts run of the location's time zone takes each course's due step: a week (the pack's
``[expiry_notice]``) before the last day of use the booking site hears ``CourseExpiringSoon`` and the client is
messaged directly (``course_sessions_expiring``, every reachable channel); the day after, what is left
expires: a ledger entry of kind ``expiry`` records the sessions and what they were bought for, and the booking
site hears ``CourseSessionsExpired``. A verified pregnancy or medical condition (``CourseDeferred``) moves the
last day of use, up to the pack's limit from purchase.

Every change is written over the version it was read at; a writer that lost the race reads again. The notice is
marked given (``expiry_noticed``) before it is told and messaged, so a rerun never repeats it, and a crash in
between loses that one notice: at most once, as for memberships (``medspa.services.memberships``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta

from zoneinfo import ZoneInfo

from medspa.domain.client import ClientProfile
from medspa.domain.ledger import EntryKind, EntryStatus
from medspa.ports.store import ConcurrentUpdate, Stores
from medspa.domain.course import Course, SessionUse, UsedSession, deferral_refusal, expiry_date
from medspa.domain.keys import client_key, spa_key, split_key
from medspa.domain.membership import local_day
from medspa.events import CourseDeferred, CoursePurchased
from medspa.messages.render import AccountContext
from medspa.policy.loader import PolicyPacks
from medspa.policy.schema import PolicyPack, PrepaidExpiry
from medspa.ports import BookingSiteEvents
from medspa.ports.memberships import due_shard, shards_of
from medspa.services.notifications import NotificationService

logger = logging.getLogger(__name__)
_SAVE_ATTEMPTS = 5
EXPIRED = "course_sessions_expired"


class CourseRefused(ValueError):
    """A course event the pack does not allow (a deferral beyond its limit); ``field`` names the field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(f"{field}: {reason}")


class CourseService:
    def __init__(self, store: Stores, packs: PolicyPacks, booking_site: BookingSiteEvents | None = None,
                 notifications: NotificationService | None = None) -> None:
        self._store = store
        self._courses = store.courses
        self._packs = packs
        self._booking_site = booking_site
        self._notifications = notifications

    def _notice_before(self, course: Course) -> timedelta:
        return timedelta(days=self._packs[course.location_id].expiry_notice.days_before)

    def _rule(self, location_id: str) -> tuple[PolicyPack, PrepaidExpiry]:
        pack = self._packs[location_id]
        if pack.prepaid is None:
            raise CourseRefused("detail.location_id", "this location sells no prepaid courses")
        return pack, pack.prepaid

    def _due(self, course: Course) -> tuple[str, date] | None:
        day = course.next_due(self._notice_before(course))
        return (due_shard(self._packs[course.location_id].location.time_zone, course.course_id,
                          self._courses.due_shards), day) if day else None

    def purchase(self, event: CoursePurchased, now: datetime) -> Course:
        pack, rule = self._rule(event.location_id)
        client = event.client
        self._store.clients.save_profile(ClientProfile(
            client_id=client_key(event.spa_id, client.id), spa_id=event.spa_id, phone=client.phone,
            first_name=client.first_name, email=client.email, sms_consent=client.sms_opt_in,
            email_consent=client.email_opt_in), now)
        course = Course(course_id=spa_key(event.spa_id, event.course_id), spa_id=event.spa_id,
                        client_id=client_key(event.spa_id, client.id), location_id=event.location_id,
                        sessions=event.sessions, paid=event.paid, purchased_on=event.purchased_on,
                        expires_on=expiry_date(event.purchased_on, rule))
        self._courses.create(course, self._due(course), now)  # the same purchase again: already there
        held = self._courses.get(course.course_id)
        assert held is not None
        return held[0]

    def known(self, course_id: str) -> bool:
        return self._courses.get(course_id) is not None

    def defer(self, event: CourseDeferred, now: datetime) -> Course:
        def deferred(course: Course) -> Course | None:
            _, rule = self._rule(course.location_id)
            if event.deferred_until == course.expires_on:
                return None  # the same deferral again
            refusal = deferral_refusal(course, event.deferred_until, rule)
            if refusal:
                raise CourseRefused("detail.deferred_until", refusal)
            return course.model_copy(update={"expires_on": event.deferred_until, "deferred_by": event.admin_id,
                                             "expiry_noticed": False})

        course = self._change(spa_key(event.spa_id, event.course_id), deferred, now)
        self._tell("CourseDeferralRecorded", f"{course.course_id}:deferred:{course.expires_on}", course,
                   {"deferred_by": event.admin_id})
        return course

    def record_use(self, course_id: str, appointment_id: str, use: SessionUse, at: datetime, now: datetime) -> None:
        """One session for this visit, once; a completed course visit with sessions left prompts the next booking."""
        def used(course: Course) -> Course | None:
            if course.used_by(appointment_id) is not None or course.sessions_left <= 0:
                return None
            return course.model_copy(update={"used": (*course.used, UsedSession(
                appointment_id=appointment_id, use=use, at=at))})

        if self._courses.get(course_id) is None:
            return  # a course the system never heard of: the booking site's own business
        course = self._change(course_id, used, now)
        record = course.used_by(appointment_id)
        if record is None or record.use != use:
            return
        pack, rule = self._rule(course.location_id)
        if use == "completed" and rule.book_next_session_on_completion and course.sessions_left > 0:
            self._tell("CourseNextSessionDue", f"{course.course_id}:next-session:{split_key(appointment_id)[1]}",
                       course, {"completed_appointment_id": split_key(appointment_id)[1]})

    def covers(self, course_id: str | None, appointment_id: str, on: date) -> bool | None:
        """Whether the course pays this visit (None when the system does not keep that course)."""
        held = self._courses.get(course_id) if course_id else None
        return held[0].session_for(appointment_id, on) if held else None

    def due(self, time_zone: str, now: datetime) -> list[str]:
        today = local_day(now, ZoneInfo(time_zone))
        return sorted({c for shard in shards_of(time_zone, self._courses.due_shards) for c in self._courses.due(shard, today)})

    def take_due_step(self, course_id: str, now: datetime) -> str:
        held = self._courses.get(course_id)
        if held is None:
            return "unknown"
        course = held[0]
        today = local_day(now, ZoneInfo(self._packs[course.location_id].location.time_zone))
        if course.sessions_left > 0 and today > course.expires_on:
            return self._expire(course, now)
        notice_on = course.next_due(self._notice_before(course))
        if course.sessions_left > 0 and not course.expiry_noticed and notice_on is not None and today >= notice_on:
            course = self._change(course_id, lambda c: c.model_copy(update={"expiry_noticed": True}), now)
            self._tell("CourseExpiringSoon", f"{course_id}:expiring:{course.expires_on}", course, {})
            self._message_client(course, now)
            return "expiry_noticed"
        return "nothing_due"

    def _expire(self, course: Course, now: datetime) -> str:
        left = course.sessions_left
        entry_id = f"{course.course_id}#{EXPIRED}#{course.expires_on.isoformat()}"
        ledger = self._store.ledger
        forfeited = course.value_per_session.model_copy(update={"amount": course.value_per_session.amount * left})
        if forfeited.amount > 0:
            entry = ledger.record_intent(appointment_id=course.course_id, client_id=course.client_id, purpose=EXPIRED,
                                         kind=EntryKind.EXPIRY, amount=forfeited, now=now, entry_id=entry_id)
            if entry.status is EntryStatus.PENDING:
                ledger.record_outcome(entry.entry_id, EntryStatus.SUCCEEDED, now)
        course = self._change(course.course_id, lambda c: c.model_copy(update={
            "expired_sessions": c.expired_sessions + c.sessions_left}) if c.sessions_left else None, now)
        self._tell("CourseSessionsExpired", f"{course.course_id}:expired:{course.expires_on}", course,
                   {"sessions_expired": left, "value": forfeited.model_dump(), "ledger_entry_id": entry_id})
        return "expired"

    def _change(self, course_id: str, change: Callable[[Course], Course | None], now: datetime) -> Course:
        for _ in range(_SAVE_ATTEMPTS):
            held = self._courses.get(course_id)
            if held is None:
                raise LookupError(course_id)
            course, version = held
            changed = change(course)
            if changed is None:
                return course
            if self._courses.replace(changed, version, self._due(changed), now):
                return changed
        raise ConcurrentUpdate(f"{course_id} kept changing")

    def _message_client(self, course: Course, now: datetime) -> None:
        client = self._store.clients.get(course.client_id) if self._notifications is not None else None
        if self._notifications is None or client is None:
            return
        try:
            self._notifications.notify(client, "course_sessions_expiring", AccountContext(
                subject_id=course.course_id, location_id=course.location_id, client_first_name=client.first_name,
                expires_on=course.expires_on, items=course.sessions_left), now)
        except Exception as err:  # noqa: BLE001 - the notice stands; the other courses' steps still run
            logger.error("course client not messaged", extra={"course_id": course.course_id,
                                                              "error": type(err).__name__})

    def _tell(self, detail_type: str, event_id: str, course: Course, extra: dict[str, object]) -> None:
        if self._booking_site is None:
            return
        spa_id, local_id = split_key(course.course_id)
        self._booking_site.publish(detail_type, event_id, {
            "spa_id": spa_id, "course_id": local_id, "client_id": split_key(course.client_id)[1],
            "location_id": course.location_id, "sessions": course.sessions, "sessions_left": course.sessions_left,
            "expires_on": course.expires_on.isoformat(), **extra})
