"""A prepaid course (Glow) and its rules: when its sessions expire, how far a medical deferral may move that,
and how many sessions are left.

Glow: "Clients must use pre-paid services, including those forming part of a course, within 12 months of
purchase after which any unused sessions expire"; "clients may defer pre-paid services ... for up to 18
months". Both are counted from the purchase date with the pack's ``[prepaid]`` months, by calendar month (the
same day, or a shorter month's last day). A session is used by a visit that took place or taken by a late
cancellation or no-show; each visit uses at most one, so a repeated report of it changes nothing.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from medspa.domain.membership import months_later
from medspa.money import Money
from medspa.policy.schema import DEFAULT_EXPIRY_NOTICE, PrepaidExpiry

SessionUse = Literal["completed", "deducted"]
EXPIRY_NOTICE = timedelta(days=DEFAULT_EXPIRY_NOTICE.days_before)  # a pack's [expiry_notice] may restate it


class UsedSession(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    appointment_id: str
    use: SessionUse
    at: datetime


class Course(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    course_id: str
    spa_id: str
    client_id: str
    location_id: str
    sessions: int = Field(ge=1)
    paid: Money
    purchased_on: date
    expires_on: date = Field(description="The last day a session may be used")
    deferred_by: str | None = None
    used: tuple[UsedSession, ...] = ()
    expired_sessions: int = 0
    expiry_noticed: bool = False

    @property
    def sessions_left(self) -> int:
        return self.sessions - len(self.used) - self.expired_sessions

    def used_by(self, appointment_id: str) -> UsedSession | None:
        return next((u for u in self.used if u.appointment_id == appointment_id), None)

    def session_for(self, appointment_id: str, on: date) -> bool:
        """Whether this visit is paid from the course: its own session, once taken, stays its own."""
        return self.used_by(appointment_id) is not None or (self.sessions_left > 0 and on <= self.expires_on)

    @property
    def value_per_session(self) -> Money:
        """What one session was bought for (the course price over its sessions, rounded down), to show what an
        expiry forfeits in money."""
        return Money(amount=self.paid.amount // self.sessions, currency=self.paid.currency)

    def next_due(self, notice_before: timedelta = EXPIRY_NOTICE) -> date | None:
        """The next day the daily job must look at this course: the expiry notice (``notice_before`` the last day
        of use: the pack's ``[expiry_notice]``), then the day after expiry."""
        if self.sessions_left <= 0:
            return None
        notice = self.expires_on - notice_before
        return notice if not self.expiry_noticed else self.expires_on + timedelta(days=1)


def expiry_date(purchased_on: date, rule: PrepaidExpiry) -> date:
    """The last day of use: the day before the same date ``expires_after_months`` later."""
    return months_later(purchased_on, rule.expires_after_months) - timedelta(days=1)


def deferral_refusal(course: Course, until: date, rule: PrepaidExpiry) -> str | None:
    if rule.medical_deferral_months is None:
        return "this location does not defer prepaid services"
    limit = months_later(course.purchased_on, rule.medical_deferral_months) - timedelta(days=1)
    if until > limit:
        return f"a deferral may run to {limit} at most ({rule.medical_deferral_months} months from purchase)"
    if until <= course.expires_on:
        return f"the course already runs to {course.expires_on}"
    return None
