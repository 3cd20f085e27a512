"""Memberships: the booking site's membership events in, monthly drafts out, exactly once.

A membership is never edited in place. Its events (by ``membership_version``) and its drafts (by ledger entry)
are kept on its record, and the membership is recomputed from both (``medspa.events.membership_history``)
and written over the version it was read at; a writer that lost the race reads again. So an event that
arrives twice, late or out of order, and a draft that runs beside an intake, all end in the same membership.

A draft follows the ledger's exactly-once protocol (``medspa.services.settlement``): the entry, named by
membership, due date, purpose and attempt, is written before Stripe is called; its key is Stripe's
idempotency key; the outcome is recorded on the entry, then kept on the membership as a fact. A rerun of the
same day, a redriven Map or a second schedule firing finds the same entry and charges nothing more; a crash
after Stripe succeeded is finished by looking the charge up. Store credit paid toward a reactivation draft is
a deduction entry beside it. A month declined on every retry becomes the client's outstanding balance, which
the booking site hears about at their next booking or check-in.

A draft the day's run gave up on (its Lambda died after Stripe answered, on every retry) is finished before
anything else is planned for the membership, and keeps it due until then: by the next run a freeze or a
cancellation may have changed what would be planned, and a new plan would draft the month again under
another purpose, or never come back to the charge Stripe already took.

What the membership decided (frozen, refused and why, drafted, declined, cancelled, expired) is told to the
booking site once per decision, with an event id derived from it.

The member is messaged (``NotificationService``: every reachable channel, consent and quiet hours honoured) for
the decisions issue 9 says they hear of: a declined draft (``draft_declined`` with the retry's day, or
``dues_unpaid``: the month is now an outstanding balance), and the week-before notices the fold decides
(``services_expiring``, ``certificates_expiring``). Delivery is at most once: a decision is saved with the
membership first, then told to the booking site, then messaged, and "new" means not in the membership this
refold replaced, so a crash between the save and the send loses that one message (as it loses the booking-site
event) and a rerun never sends it twice. A notice is only messaged up to its last day of use, so a membership
refolded late does not tell a member about something already gone. The intake (which has no messenger) never
decides a notice before the daily run does: the fold holds a notice back until its moment, the run's time.
A message the quiet hours defer is logged, not retried: the run is at 09:00 local, after every pack's quiet hours.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from medspa.domain.client import Client, ClientProfile
from medspa.domain.ledger import EntryKind, EntryStatus, LedgerEntry
from medspa.ports.store import ConcurrentUpdate, InsufficientBalance, Stores
from medspa.domain.keys import client_key, spa_key, spa_of, split_key
from medspa.domain.membership import (
    CERTIFICATES_EXPIRING,
    SERVICES_EXPIRING,
    STORE_CREDIT_APPLIED,
    Decision,
    Draft,
    DraftKind,
    Membership,
    PlannedDraft,
    local_day,
    next_draft,
)
from medspa.events import MEMBERSHIP_DETAIL_MODELS, MembershipEvent, MembershipStarted
from medspa.events.membership_history import MembershipNotYetKnown, fold_membership, terms_of
from medspa.events.personal import as_kept
from medspa.messages.render import AccountContext
from medspa.money import Money
from medspa.policy.loader import PolicyPacks
from medspa.policy.schema import PolicyPack
from medspa.ports import BookingSiteEvents, Counted, Metrics
from medspa.ports.memberships import MembershipRecord, MembershipStore, due_shard, shards_of
from medspa.ports.metrics import NOT_COUNTED
from medspa.services.notifications import NotificationService
from medspa.services.settlement import _UNPAID, SettlementService

logger = logging.getLogger(__name__)
_SAVE_ATTEMPTS = 5
FORFEIT_PURPOSES = {"cancelled": "store_credit_forfeited", "expired": "membership_expired"}
# The decisions the member is messaged about, and the message kind of each.
MESSAGE_KINDS = {"draft_declined": "membership_draft_declined", "dues_unpaid": "membership_draft_declined",
                 SERVICES_EXPIRING: "membership_services_expiring", CERTIFICATES_EXPIRING: "certificate_expiring"}


class DraftOutcome(BaseModel):
    model_config = ConfigDict(defer_build=True)

    membership_id: str
    outcome: Literal["drafted", "declined", "nothing_due", "not_a_membership"]
    due_on: date | None = None
    attempt: int | None = None
    ledger_entry_id: str | None = None


def _attempt_of(draft: Draft | LedgerEntry) -> tuple[str, str, int]:
    """(the month's draft date, the kind, the attempt) of a draft fact or of its ledger entry."""
    if isinstance(draft, LedgerEntry):
        return draft.entry_id.rsplit("#", 3)[1], draft.purpose, draft.attempt
    return draft.due_on.isoformat(), draft.kind.value, draft.attempt


def draft_entry_id(membership_id: str, planned: PlannedDraft, purpose: str | None = None) -> str:
    """The membership, the month's draft date, the purpose and the attempt: one entry per attempt at one month,
    so a retry is a new Stripe key (reusing the old one would replay the decline) and a rerun is not."""
    return f"{membership_id}#{planned.due_on.isoformat()}#{purpose or planned.kind.value}#{planned.attempt}"


class MembershipService:
    def __init__(self, store: Stores, memberships: MembershipStore, packs: PolicyPacks,
                 settlement: SettlementService | None = None, booking_site: BookingSiteEvents | None = None,
                 notifications: NotificationService | None = None, metrics: Metrics = NOT_COUNTED) -> None:
        self._store = store
        self._metrics = metrics
        self._memberships = memberships
        self._packs = packs
        self._settlement = settlement
        self._booking_site = booking_site
        self._notifications = notifications

    # ------------------------------------------------------------------ the intake

    def record(self, event: MembershipEvent, now: datetime) -> Membership | None:
        """Keep the event and refold; None while the membership's ``MembershipStarted`` has not arrived."""
        key = spa_key(event.spa_id, event.membership_id)
        if isinstance(event, MembershipStarted):
            client = event.client
            self._store.clients.save_profile(ClientProfile(
                client_id=client_key(event.spa_id, client.id), spa_id=event.spa_id, phone=client.phone,
                first_name=client.first_name, email=client.email, stripe_customer_id=event.payment.stripe_customer_id,
                default_payment_method_id=event.payment.stripe_payment_method_id, sms_consent=client.sms_opt_in,
                email_consent=client.email_opt_in), now)
        self._memberships.record_event(key, event.membership_version, event.detail_type, event.event_id,
                                       _kept(event), now)
        try:
            return self.refold(key, now)
        except MembershipNotYetKnown:
            return None

    def pack_for(self, membership: Membership) -> PolicyPack:
        return self._packs.accepted(membership.location_id, membership.policy_version)

    def refold(self, membership_id: str, now: datetime) -> Membership:
        """Recompute the membership from everything kept, as of the home spa's local today, and store it."""
        for _ in range(_SAVE_ATTEMPTS):
            record = self._memberships.read(membership_id)
            if record is None:
                raise MembershipNotYetKnown(membership_id)
            events = [MEMBERSHIP_DETAIL_MODELS[kind].model_validate_json(detail) for kind, detail in record.events]
            started = next((e for e in events if isinstance(e, MembershipStarted)), None)
            if started is None:
                raise MembershipNotYetKnown(membership_id)
            pack = self._packs.accepted(started.location_id,
                                        record.membership.policy_version if record.membership else None)
            today = local_day(now, ZoneInfo(pack.location.time_zone))
            membership = fold_membership(events, record.drafts, pack, as_of=today, now=now)
            due = membership.next_due()
            if due is None or due > today:
                due = min([*(date.fromisoformat(e.entry_id.rsplit("#", 3)[1]) for e in self._unfinished(record)),
                           *([due] if due else [])], default=None)
            shard = (due_shard(pack.location.time_zone, membership_id), due) if due is not None else None
            if self._memberships.save(membership_id, record.record_version, membership, shard, now):
                told = {_decision_id(membership_id, d) for d in (record.membership.decisions
                                                                  if record.membership else ())}
                new = [d for d in membership.decisions if _decision_id(membership_id, d) not in told]
                self._record_forfeits(membership, new, now)
                self._tell(membership, new)
                self._message_member(membership, new, today, now)
                return membership
        raise ConcurrentUpdate(f"{membership_id} kept changing while it was folded")  # the step is retried

    # ------------------------------------------------------------------ the daily drafts job

    def due(self, time_zone: str, now: datetime) -> list[str]:
        """Every membership of the zone with something due by its local today (missed days included)."""
        today = local_day(now, ZoneInfo(time_zone))
        return sorted({m for shard in shards_of(time_zone) for m in self._memberships.due(shard, today)})

    def due_now(self, membership: Membership, now: datetime) -> PlannedDraft | None:
        """The draft due by the home spa's local today, if any."""
        pack = self.pack_for(membership)
        planned = next_draft(membership, terms_of(pack))
        if planned is None or planned.attempt_on > local_day(now, ZoneInfo(pack.location.time_zone)):
            return None
        return planned

    def take_due_step(self, membership_id: str, now: datetime) -> DraftOutcome:
        """Draft what is due today, or just let the calendar act (expiries); safe to repeat at any time."""
        finished = self._finish_unfinished(membership_id, now)
        membership = self.refold(membership_id, now)
        planned = self.due_now(membership, now)
        if planned is None and finished:
            draft, entry_id = finished[-1]
            return DraftOutcome(membership_id=membership_id, outcome="drafted" if draft.succeeded else "declined",
                                due_on=draft.due_on, attempt=draft.attempt, ledger_entry_id=entry_id)
        if planned is None:
            return DraftOutcome(membership_id=membership_id, outcome="nothing_due")
        draft, entry_id = self._draft(membership, planned, self.pack_for(membership), now)
        self._keep_draft(membership_id, entry_id, draft, now)
        self.refold(membership_id, now)
        return DraftOutcome(membership_id=membership_id, outcome="drafted" if draft.succeeded else "declined",
                            due_on=planned.due_on, attempt=planned.attempt, ledger_entry_id=entry_id)

    def _draft(self, membership: Membership, planned: PlannedDraft, pack: PolicyPack,
               now: datetime) -> tuple[Draft, str]:
        if self._settlement is None:
            raise RuntimeError("drafting needs the settlement service (Stripe)")
        ledger, key, client_id = self._store.ledger, membership.membership_id, membership.client_id
        entry_id = draft_entry_id(key, planned)
        existing = ledger.get(entry_id)
        if existing is None and (paid := self._paid_by_an_earlier_attempt(key, planned, now)) is not None:
            return self._paid_later(paid, pack, now)
        if not planned.store_credit_to_use.is_zero:
            used = ledger.record_intent(appointment_id=key, client_id=client_id, purpose=STORE_CREDIT_APPLIED,
                                        kind=EntryKind.DEDUCTION, amount=planned.store_credit_to_use, now=now,
                                        attempt=planned.attempt,
                                        entry_id=draft_entry_id(key, planned, STORE_CREDIT_APPLIED))
            if used.status is EntryStatus.PENDING:
                ledger.record_outcome(used.entry_id, EntryStatus.SUCCEEDED, now)
        to_charge = planned.to_charge
        if to_charge.is_zero:
            return self._fact(planned, to_charge, True, now), draft_entry_id(key, planned, STORE_CREDIT_APPLIED)
        entry = existing or ledger.record_intent(appointment_id=key, client_id=client_id,
                                                 purpose=planned.kind.value, kind=EntryKind.CHARGE, amount=to_charge,
                                                 now=now, attempt=planned.attempt, entry_id=entry_id)
        if entry.status is EntryStatus.PENDING:
            entry = self._settlement.collect(entry, self._client(client_id), membership.location_id, now,
                                             look_up_first=existing is not None)
        succeeded = entry.status is EntryStatus.SUCCEEDED
        self._owe_if_last(entry, pack, now)
        return self._fact(planned, entry.amount, succeeded, entry.updated_at), entry_id

    def _paid_by_an_earlier_attempt(self, membership_id: str, planned: PlannedDraft,
                                    now: datetime) -> LedgerEntry | None:
        """Before a month's retry, each earlier attempt still waiting for the member to authenticate is cancelled at
        Stripe, so the link she was sent cannot pay on top of the retry; Stripe refuses to cancel one she has paid
        meanwhile, and that attempt is the month's payment (whether or not its webhook has come)."""
        assert self._settlement is not None
        for attempt in range(1, planned.attempt):
            earlier = self._store.ledger.get(draft_entry_id(membership_id, planned.model_copy(update={"attempt": attempt})))
            if earlier is None:
                continue
            earlier = self._settlement.close_open_payment(earlier, now)
            if earlier.status is EntryStatus.SUCCEEDED:
                return earlier
        return None

    def _paid_later(self, entry: LedgerEntry, pack: PolicyPack, now: datetime) -> tuple[Draft, str]:
        """A declined attempt Stripe says was paid since (the member completed 3-D Secure): the month is paid, as a
        fact of its own beside the decline, so the fold shows both. If that attempt was the month's last, what it
        left owing is settled (or becomes store credit, when it was forgiven or paid at the desk meanwhile); the
        owed amount is raised again first, a no-op unless a crash came between the two writes, as for a fee."""
        key = f"{entry.entry_id}#paid"
        if self._last(entry, pack):
            self._store.clients.add_outstanding(entry.client_id, entry.amount, entry.entry_id, now)
            try:
                self._store.clients.settle_outstanding(entry.client_id, entry.amount, key, now)
            except InsufficientBalance:
                self._store.clients.add_credit(entry.client_id, entry.amount, key, now)
        due_on = date.fromisoformat(entry.entry_id.rsplit("#", 3)[1])
        return Draft(due_on=due_on, kind=DraftKind(entry.purpose), attempt=entry.attempt, charged=entry.amount,
                     store_credit_used=Money.zero(entry.amount.currency), succeeded=True, decided_at=now), key

    @staticmethod
    def _last(entry: LedgerEntry, pack: PolicyPack) -> bool:
        return entry.attempt > len(terms_of(pack).drafts.retry_after_days)

    def _owe_if_last(self, entry: LedgerEntry, pack: PolicyPack, now: datetime) -> None:
        if entry.status in _UNPAID and self._last(entry, pack):
            self._store.clients.add_outstanding(entry.client_id, entry.amount, entry.entry_id, now)

    def _unfinished(self, record: MembershipRecord) -> list[LedgerEntry]:
        """The membership's draft charges whose outcome never reached the membership as a Draft fact, and the
        declined ones Stripe has said were paid since, whose payment has no fact yet."""
        kept = {_attempt_of(d) for d in record.drafts}
        paid = {_attempt_of(d) for d in record.drafts if d.succeeded}
        drafts = {kind.value for kind in DraftKind}
        return [e for e in self._store.ledger.for_appointment(record.membership_id)
                if e.kind is EntryKind.CHARGE and e.purpose in drafts
                and (_attempt_of(e) not in kept or e.status is EntryStatus.SUCCEEDED and _attempt_of(e) not in paid)]

    def _finish_unfinished(self, membership_id: str, now: datetime) -> list[tuple[Draft, str]]:
        """Finish each draft as it was decided when its entry was written (look-up first, so Stripe is not
        charged twice), and keep its fact, so the next plan starts from what really happened."""
        record = self._memberships.read(membership_id)
        if record is None or record.membership is None:
            return []
        pack, finished = self.pack_for(record.membership), []
        kept = {_attempt_of(d) for d in record.drafts}
        for entry in self._unfinished(record):
            if self._settlement is None:
                raise RuntimeError("drafting needs the settlement service (Stripe)")
            if _attempt_of(entry) in kept:  # declined then, paid since
                draft, key = self._paid_later(entry, pack, now)
                self._keep_draft(membership_id, key, draft, now)
                finished.append((draft, key))
                continue
            if entry.status is EntryStatus.PENDING:
                entry = self._settlement.collect(entry, self._client(entry.client_id), record.membership.location_id,
                                                 now, look_up_first=True)
            self._owe_if_last(entry, pack, now)
            due_on = date.fromisoformat(entry.entry_id.rsplit("#", 3)[1])
            credit = self._store.ledger.get(
                f"{membership_id}#{due_on.isoformat()}#{STORE_CREDIT_APPLIED}#{entry.attempt}")
            draft = Draft(due_on=due_on, kind=DraftKind(entry.purpose), attempt=entry.attempt, charged=entry.amount,
                          store_credit_used=credit.amount if credit else Money.zero(entry.amount.currency),
                          succeeded=entry.status is EntryStatus.SUCCEEDED, decided_at=entry.updated_at)
            self._keep_draft(membership_id, entry.entry_id, draft, now)
            finished.append((draft, entry.entry_id))
        return finished

    def _keep_draft(self, membership_id: str, entry_id: str, draft: Draft, now: datetime) -> None:
        if self._memberships.record_draft(membership_id, entry_id, draft, now):
            self._metrics.count(Counted.DRAFT_COLLECTED if draft.succeeded else Counted.DRAFT_DECLINED,
                                spa_of(membership_id))

    @staticmethod
    def _fact(planned: PlannedDraft, charged: Money, succeeded: bool, at: datetime) -> Draft:
        return Draft(due_on=planned.due_on, kind=planned.kind, attempt=planned.attempt,
                     charged=charged, store_credit_used=planned.store_credit_to_use, succeeded=succeeded,
                     decided_at=at)

    def _client(self, client_id: str) -> Client:
        client = self._store.clients.get(client_id)
        if client is None:
            raise LookupError(f"no client {client_id}")
        return client

    def _record_forfeits(self, membership: Membership, decisions: Iterable[Decision], now: datetime) -> None:
        """Store credit lost on cancellation and services that expired, as ledger entries of kind ``expiry`` (no
        money moves), so a spa sees what was forfeited and why; one entry per decision, however often it is told."""
        ledger = self._store.ledger
        for decision in decisions:
            if decision.forfeited is None:
                continue
            purpose = FORFEIT_PURPOSES.get(decision.outcome, decision.outcome)
            entry = ledger.record_intent(
                appointment_id=membership.membership_id, client_id=membership.client_id, purpose=purpose,
                kind=EntryKind.EXPIRY, amount=decision.forfeited, now=now,
                entry_id=f"{_decision_id(membership.membership_id, decision).replace(':', '#')}")
            if entry.status is EntryStatus.PENDING:
                ledger.record_outcome(entry.entry_id, EntryStatus.SUCCEEDED, now)

    # ------------------------------------------------------------------ telling the member

    def _message_member(self, membership: Membership, decisions: Iterable[Decision], today: date,
                        now: datetime) -> None:
        """After the save (at most once, see the module's docstring); a notice whose last day has passed is not
        sent. Without a messenger (the intake) nothing is sent: the intake decides no declines, and no notice
        before the run that messages it."""
        if self._notifications is None:
            return
        for decision in decisions:
            kind = MESSAGE_KINDS.get(decision.outcome)
            if kind is None or (decision.expires_on is not None and decision.expires_on < today):
                continue
            client = self._store.clients.get(membership.client_id)
            if client is None:
                continue
            context = AccountContext(subject_id=membership.membership_id, location_id=membership.location_id,
                                     client_first_name=client.first_name, amount=decision.amount,
                                     retry_on=decision.retry_on, expires_on=decision.expires_on, items=decision.items)
            try:
                self._notifications.notify(client, kind, context, now)
            except Exception as err:  # noqa: BLE001 - the decision stands; a message never fails the draft step
                logger.error("member not messaged", extra={"membership_id": membership.membership_id, "kind": kind,
                                                           "error": type(err).__name__})

    # ------------------------------------------------------------------ telling the booking site

    def _tell(self, membership: Membership, decisions: Iterable[Decision]) -> None:
        if self._booking_site is None:
            return
        spa_id, local_id = split_key(membership.membership_id)
        for decision in decisions:
            self._booking_site.publish("MembershipDecision", _decision_id(membership.membership_id, decision), {
                "spa_id": spa_id, "membership_id": local_id, "client_id": split_key(membership.client_id)[1],
                "outcome": decision.outcome, "reason": decision.reason,
                "fee_due": decision.fee_due.model_dump() if decision.fee_due else None,
                "amount": decision.amount.model_dump() if decision.amount else None,
                "retry_on": decision.retry_on.isoformat() if decision.retry_on else None,
                "expires_on": decision.expires_on.isoformat() if decision.expires_on else None,
                "items": decision.items,
                "certificates": [{"certificate_id": c.certificate_id.rsplit("#", 1)[1], "issued_on": c.issued_on.isoformat(),
                                  "expires_on": c.expires_on.isoformat()} for c in membership.certificates],
                "decided_at": decision.decided_at.isoformat(), "membership_version": decision.membership_version,
                "status": membership.status.value, "past_due": membership.past_due, "credits": membership.credits,
                "store_credit": membership.store_credit.model_dump(),
                "next_draft_on": membership.next_draft_on.isoformat() if membership.next_draft_on else None})


def _decision_id(membership_id: str, decision: Decision) -> str:
    """Outcome, instant and a digest of the reason: two certificates expiring at one midnight are two decisions."""
    digest = hashlib.sha256(decision.reason.encode()).hexdigest()[:8]
    return f"{membership_id}:{decision.outcome}:{decision.decided_at.isoformat()}:{digest}"


def _kept(event: MembershipEvent) -> str:
    return json.dumps(as_kept(event.model_dump(mode="json")))
