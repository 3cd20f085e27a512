"""A membership's events and drafts, folded into the membership as of a day.

The booking site's membership events may arrive twice or out of order, and drafts happen between them. So
the intake keeps every event (by ``membership_version``) and the ledger every draft, and the membership is
always recomputed from both: events in version order, each draft applied before the first event that happened
after it was decided, then the calendar run up to ``as_of`` (paid-in-full ends, services past their grace,
certificates past their date). The same events and drafts give the same membership however they arrived.

A draft is a fact: money moved (or not) at that moment, so a form that arrives later cannot undo it.

Expiry notices are decisions of the calendar too: the pack's ``[expiry_notice]`` days (7) before a cancelled
membership's services end, and before each day paper certificates expire, the member is told
(``services_expiring``, ``certificates_expiring``). Each is decided at that day's draft time (09:00 local, when the
daily run of the zone fires), a wall-clock time in the home spa's zone, so a DST change in between does not move
it, and the fold makes it only once the moment has come (``now``), so an intake on the morning of that day does
not decide it before the run that messages the member. Certificates issued together (all of a cancellation's)
expire together, so they get one notice naming how many, not one message per certificate. Nothing is noticed that
began inside its own notice period (a cancellation in the last week of the window: its confirmation says when the
services end), or that is gone by then (services all used, certificates all redeemed).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from medspa.domain.keys import client_key, spa_key
from medspa.domain.membership import (
    Decision,
    Draft,
    DraftKind,
    Membership,
    MembershipStatus,
    Plan,
    CERTIFICATES_EXPIRING,
    SERVICES_EXPIRING,
    Redemption,
    cancellation_refusal,
    certificate_redemption,
    certificates_for,
    following_draft,
    freeze_refusal,
    local_day,
    redemption_refusal,
    retry_on,
    unfreeze_refusal,
    PlannedDraft,
)
from medspa.money import Money
from medspa.policy.schema import MembershipTerms, PolicyPack

from .catalogue import (
    CertificateRedeemed,
    MembershipCancellationFormCompleted,
    MembershipCancellationRequested,
    MembershipEvent,
    MembershipFreezeFormCompleted,
    MembershipFreezeRequested,
    MembershipPlan,
    MembershipPlanChanged,
    MembershipStarted,
    MembershipUnfreezeRequested,
    ServiceCreditRedeemed,
)


class MembershipNotYetKnown(LookupError):
    """Events for a membership whose ``MembershipStarted`` has not arrived: kept until it does."""


def moment_of(event: MembershipEvent) -> datetime:
    """When the event took effect: the form's own times, the redemption's, else ``occurred_at``."""
    if isinstance(event, MembershipFreezeRequested | MembershipCancellationRequested):
        return event.form_sent_at
    if isinstance(event, MembershipFreezeFormCompleted | MembershipCancellationFormCompleted):
        return event.submitted_at
    if isinstance(event, ServiceCreditRedeemed):
        return event.redeemed_at
    return event.occurred_at


def _plan(plan: MembershipPlan) -> Plan:
    return Plan(name=plan.name, monthly_dues=plan.monthly_dues, service_credits_per_month=plan.service_credits_per_month)


def terms_of(pack: PolicyPack) -> MembershipTerms:
    if pack.membership is None:
        raise ValueError(f"{pack.location_id} has no membership terms")
    return pack.membership


class _Fold:
    def __init__(self, pack: PolicyPack) -> None:
        self.pack = pack
        self.terms = terms_of(pack)
        self.zone = ZoneInfo(pack.location.time_zone)

    def start(self, event: MembershipStarted) -> Membership:
        plan = _plan(event.plan)
        return Membership(
            membership_id=spa_key(event.spa_id, event.membership_id), spa_id=event.spa_id,
            client_id=client_key(event.spa_id, event.client.id), location_id=event.location_id,
            policy_version=self.pack.policy_version, membership_version=event.membership_version, plan=plan,
            started_on=event.starts_on, draft_day=event.starts_on.day, next_draft_on=event.starts_on,
            store_credit=Money.zero(plan.monthly_dues.currency), paid_in_full_until=event.paid_in_full_until,
            decisions=(Decision(decided_at=event.occurred_at, outcome="started", reason="membership started",
                                membership_version=event.membership_version),),
        )

    def decide(self, state: Membership, at: datetime, outcome: str, reason: str, version: int | None = None,
               *, forfeited: Money | None = None, amount: Money | None = None, retry_on: date | None = None,
               expires_on: date | None = None, items: int | None = None, **changes: object) -> Membership:
        kept = forfeited if forfeited is not None and forfeited.amount > 0 else None
        decision = Decision(decided_at=at, outcome=outcome, reason=reason, membership_version=version, forfeited=kept,
                            amount=amount, retry_on=retry_on, expires_on=expires_on, items=items)
        return state.model_copy(update={**changes, "decisions": (*state.decisions, decision)})

    def notice_at(self, day: date) -> datetime:
        """The notice day at the draft time, in the home spa's zone (the wall clock, whatever the offset then)."""
        return datetime.combine(day, self.terms.drafts.at_local_time, self.zone)

    def pending_notices(self, state: Membership) -> list[tuple[datetime, str, date, int]]:
        """The expiry notices not given yet: (moment, outcome, last day of use, how many), earliest first."""
        lead = timedelta(days=self.pack.expiry_notice.days_before)
        given = {(d.outcome, d.decided_at) for d in state.decisions}
        found: list[tuple[datetime, str, date, int]] = []
        until = state.credits_usable_until
        if (state.status is MembershipStatus.CANCELLED and state.credits and until is not None
                and state.cancelled_on is not None and until - lead > state.cancelled_on):
            found.append((self.notice_at(until - lead), SERVICES_EXPIRING, until, state.credits))
        for expires_on in sorted({c.expires_on for c in state.certificates}):
            held = [c for c in state.certificates if c.expires_on == expires_on]
            if expires_on - lead > min(c.issued_on for c in held):
                found.append((self.notice_at(expires_on - lead), CERTIFICATES_EXPIRING, expires_on, len(held)))
        return sorted(n for n in found if (n[1], n[0]) not in given)

    def notices(self, state: Membership, at: datetime) -> Membership:
        """Tell the member what expires in a week, once its moment has come (``at``)."""
        for when, outcome, until, items in self.pending_notices(state):
            if when > at:
                continue
            what = (f"{items} service(s) usable until {until}" if outcome == SERVICES_EXPIRING
                    else f"{items} paper certificate(s) expire on {until}")
            state = self.decide(state, when, outcome, f"{what}; the member is told "
                                f"{self.pack.expiry_notice.days_before} days before", expires_on=until, items=items)
        return state

    def advance(self, state: Membership, today: date, at: datetime) -> Membership:
        """What the calendar alone does by ``today``: a paid-in-full month's services, the end of a
        paid-in-full membership, services and certificates that outlived their window."""
        until = state.paid_in_full_until
        if until is not None and state.status is not MembershipStatus.EXPIRED:
            # A paid month starts before the end date: none begins on the day the membership ends.
            while state.next_draft_on is not None and state.next_draft_on <= today and state.next_draft_on < until:
                state = state.model_copy(update={
                    "credits": self.rolled(state) + state.plan.service_credits_per_month,
                    "last_billed_on": state.next_draft_on,
                    "next_draft_on": following_draft(state.next_draft_on, state.draft_day)})
            if today > until:
                state = self.decide(state, self.midnight(until + timedelta(days=1)), "expired",
                                    f"paid in full until {until}; {state.credits} service(s) "
                                    "forfeited, no grace period", status=MembershipStatus.EXPIRED, credits=0,
                                    next_draft_on=None, forfeited=state.services_worth(state.credits))
        state = self.notices(state, at)
        if (state.status is MembershipStatus.CANCELLED and state.credits and state.credits_usable_until
                and today > state.credits_usable_until):
            state = self.decide(state, self.midnight(state.credits_usable_until + timedelta(days=1)),
                                "services_expired", f"{state.credits} service(s) unused "
                                f"{self.terms.cancellation.services_usable_days} days after the last billing date",
                                credits=0, forfeited=state.services_worth(state.credits))
        expired = [c for c in state.certificates if today > c.expires_on]
        for certificate in expired:
            state = self.decide(state, self.midnight(certificate.expires_on + timedelta(days=1)),
                                "certificate_expired", f"certificate {certificate.certificate_id.rsplit('#', 1)[1]} "
                                f"expired on {certificate.expires_on}", forfeited=state.services_worth(1),
                                certificates=tuple(c for c in state.certificates if c is not certificate))
        return state

    def midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), self.zone)

    def rolled(self, state: Membership) -> int:
        return state.credits if self.terms.rollover.unused_services_roll_over else 0

    def draft(self, state: Membership, draft: Draft) -> Membership:
        planned = PlannedDraft(due_on=draft.due_on, attempt_on=local_day(draft.decided_at, self.zone),
                               kind=draft.kind, attempt=draft.attempt, amount=draft.charged + draft.store_credit_used,
                               store_credit_to_use=draft.store_credit_used)
        month = draft.due_on
        if not draft.succeeded:
            retry = retry_on(planned, self.terms)
            if retry is not None:
                return self.decide(state, draft.decided_at, "draft_declined",
                                   f"{draft.kind.value} of {month} declined (attempt {draft.attempt}); "
                                   f"retried on {retry}", past_due=True, failed_attempts=draft.attempt,
                                   next_retry_on=retry, amount=draft.charged, retry_on=retry)
            return self.decide(state, draft.decided_at, "dues_unpaid",
                               f"{draft.kind.value} of {month} declined {draft.attempt} times: owed as an "
                               "outstanding balance", past_due=True, failed_attempts=0, next_retry_on=None,
                               next_draft_on=following_draft(month, state.draft_day), amount=draft.charged)
        changes: dict[str, object] = {
            "past_due": False, "failed_attempts": 0, "next_retry_on": None, "last_billed_on": planned.attempt_on,
            "next_draft_on": following_draft(month, state.draft_day),
        }
        if draft.kind is DraftKind.FROZEN:
            changes["store_credit"] = state.store_credit + draft.charged
            reason = f"frozen draft of {draft.due_on}: {draft.charged} kept as store credit"
        else:
            plan = state.next_plan or state.plan
            changes.update(plan=plan, next_plan=None, full_dues_paid=state.full_dues_paid + 1,
                           credits=self.rolled(state) + plan.service_credits_per_month,
                           store_credit=state.store_credit - draft.store_credit_used, reactivation_pending=False)
            reason = f"dues of {draft.due_on} drafted: {draft.charged}" + (
                f" (and {draft.store_credit_used} of store credit)" if not draft.store_credit_used.is_zero else "")
        if state.status is not MembershipStatus.ACTIVE and state.status is not MembershipStatus.FROZEN:
            changes["next_draft_on"] = None  # a draft decided as the membership ended settles only its month
        return self.decide(state.model_copy(update=changes), draft.decided_at, "drafted", reason)

    def apply(self, state: Membership, event: MembershipEvent) -> Membership:
        at, version = moment_of(event), event.membership_version
        state = state.model_copy(update={"membership_version": version})
        if isinstance(event, MembershipPlanChanged):
            if state.paid_in_full or state.status not in (MembershipStatus.ACTIVE, MembershipStatus.FROZEN):
                return self.decide(state, at, "plan_change_refused", f"the membership is {state.status.value}"
                                   + (" and paid in full" if state.paid_in_full else ""), version)
            return self.decide(state, at, "plan_change_scheduled", f"{event.plan.name} from the next draft",
                               version, next_plan=_plan(event.plan))
        if isinstance(event, MembershipFreezeRequested):
            return state.model_copy(update={"freeze_form_sent_at": at})
        if isinstance(event, MembershipFreezeFormCompleted):
            refusal = freeze_refusal(state, at, self.terms)
            if refusal:
                return self.decide(state, at, "freeze_refused", refusal, version, freeze_form_sent_at=None)
            return self.decide(state, at, "frozen", f"frozen; {self.pack.money(self.terms.freeze.monthly_draft)} "
                               "a month accrues as store credit", version, status=MembershipStatus.FROZEN,
                               freeze_form_sent_at=None)
        if isinstance(event, MembershipUnfreezeRequested):
            refusal = unfreeze_refusal(state)
            if refusal:
                return self.decide(state, at, "unfreeze_refused", refusal, version)
            today = local_day(at, self.zone)
            return self.decide(state, at, "unfrozen", f"unfrozen; dues drafted today and on day {today.day} monthly",
                               version, status=MembershipStatus.ACTIVE, draft_day=today.day, next_draft_on=today,
                               next_retry_on=None, failed_attempts=0, reactivation_pending=True)
        if isinstance(event, MembershipCancellationRequested):
            return state.model_copy(update={"cancellation_form_sent_at": at})
        if isinstance(event, MembershipCancellationFormCompleted):
            return self.cancel(state, event, at, version)
        if isinstance(event, ServiceCreditRedeemed):
            refusal = redemption_refusal(state, event.credits, local_day(at, self.zone))
            if refusal:
                return self.decide(state, at, "redemption_refused", refusal, version)
            return self.decide(state, at, "redeemed", f"{event.credits} service(s) used", version,
                               credits=state.credits - event.credits)
        if isinstance(event, CertificateRedeemed):
            return self.redeem_certificate(state, event, at, version)
        return self.decide(state, at, "ignored", f"{event.detail_type} after the membership started", version)

    def redeem_certificate(self, state: Membership, event: CertificateRedeemed, at: datetime,
                           version: int) -> Membership:
        certificate_id = f"{state.membership_id}#{event.certificate_id}"
        client_id = client_key(event.spa_id, event.client_id)
        on = local_day(at, self.zone)
        refusal, fee = certificate_redemption(state, certificate_id, client_id, event.location_id, on, self.terms)
        if refusal:
            return self.decide(state, at, "certificate_refused", f"{event.certificate_id}: {refusal}", version)
        decision = Decision(decided_at=at, outcome="certificate_redeemed", membership_version=version,
                            reason=f"{event.certificate_id} redeemed" + (f"; {fee} due at checkout" if fee.amount
                                                                         else " free inside the grace window"),
                            fee_due=fee if fee.amount else None)
        return state.model_copy(update={
            "certificates": tuple(c for c in state.certificates if c.certificate_id != certificate_id),
            "redemptions": (*state.redemptions, Redemption(certificate_id=certificate_id, client_id=client_id,
                                                           on=on, fee=fee)),
            "decisions": (*state.decisions, decision)})

    def cancel(self, state: Membership, event: MembershipCancellationFormCompleted, at: datetime,
               version: int) -> Membership:
        refusal = cancellation_refusal(state, at, self.terms)
        if refusal:
            return self.decide(state, at, "cancellation_refused", refusal, version, cancellation_form_sent_at=None)
        rule, today = self.terms.cancellation, local_day(at, self.zone)
        usable_until = (state.last_billed_on or today) + timedelta(days=rule.services_usable_days)
        forfeited = state.store_credit if rule.store_credit_forfeited else Money.zero(state.store_credit.currency)
        certificates = certificates_for(state, today, self.terms) if event.paper_certificates else ()
        kept = (f"{len(certificates)} paper certificate(s) until {certificates[0].expires_on}" if certificates
                else f"{state.credits} service(s) usable until {usable_until}")
        return self.decide(state, at, "cancelled", f"cancelled; {kept}; {forfeited} of store credit forfeited",
                           version, status=MembershipStatus.CANCELLED, cancelled_on=today, next_draft_on=None,
                           next_retry_on=None,
                           cancellation_form_sent_at=None, credits_usable_until=usable_until,
                           store_credit=state.store_credit - forfeited, certificates=certificates,
                           credits=0 if certificates else state.credits, failed_attempts=0, forfeited=forfeited)


def fold_membership(events: Iterable[MembershipEvent], drafts: Iterable[Draft], pack: PolicyPack,
                    as_of: date, now: datetime | None = None) -> Membership:
    """The membership after its events and drafts, with the calendar run to the local day ``as_of``.

    ``pack`` is the home location's pack at the version the member accepted when it started. ``now`` (a moment
    of ``as_of``) holds back an expiry notice whose time has not come that day; None: the whole day has passed."""
    ordered = sorted({e.membership_version: e for e in events}.values(), key=lambda e: e.membership_version)
    started = next((e for e in ordered if isinstance(e, MembershipStarted)), None)
    if started is None:
        raise MembershipNotYetKnown(ordered[0].membership_id if ordered else "(none)")
    fold = _Fold(pack)
    pending = sorted(drafts, key=lambda d: (d.decided_at, d.due_on, d.attempt))
    state = fold.start(started)
    for event in ordered:
        if event is started or event.membership_version < started.membership_version:
            continue
        at = moment_of(event)
        while pending and pending[0].decided_at < at:  # an event at the same instant caused the draft
            draft = pending.pop(0)
            state = fold.draft(fold.advance(state, local_day(draft.decided_at, fold.zone), draft.decided_at), draft)
        state = fold.apply(fold.advance(state, local_day(at, fold.zone), at), event)
    for draft in pending:
        state = fold.draft(fold.advance(state, local_day(draft.decided_at, fold.zone), draft.decided_at), draft)
    end = now if now is not None else fold.midnight(as_of + timedelta(days=1)) - timedelta(microseconds=1)
    state = fold.advance(state, as_of, end)
    notices = fold.pending_notices(state)
    return state.model_copy(update={"next_notice_on": local_day(notices[0][0], fold.zone) if notices else None})
