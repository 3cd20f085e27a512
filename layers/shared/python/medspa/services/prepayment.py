"""A prepaid visit's prepayment: one balance, with one fate, moved once and in the ledger.

Bijoux and 406MedicalSpa make a client with three strikes prepay. Their policies say what becomes of
that money: "nonrefundable if the policy is violated", and, if the visit is "rescheduled prior to"
24 hours (Bijoux) or 48 hours (406) ahead, "credited for future services". A spa owner reads that as
one sum of the client's money that ends up in exactly one place, so the system treats it that way:

* **Rescheduled in time** (at least the pack's ``prepaid_reschedule_credit.hours_before`` ahead):
  the prepayment becomes store credit on the client's account (ledger entry ``prepayment_credit``,
  the client's ``credit`` balance, the ``prepayment_credited`` notice, ``PrepaymentCredited`` to the
  booking site). The moved visit is no longer prepaid: the credit is what pays for it, or for any
  other visit, at the desk. Leaving the money attached to the moved visit instead would let a later
  violation forfeit money the policy had already promised back for future services.
* **Cancelled in time by the client, cancelled by the spa, or auto-cancelled** (406: no confirmation
  by the deadline, which the spa decides, not a violation): the same credit.
* **Cancelled late, rescheduled late, or missed**: forfeited, once, by the first of these violations
  (ledger entry ``<reason>_fee_prepayment``; the fee notice says how much came "from your
  prepayment"). The forfeited prepayment stands in for that violation's fee (the packs say so), where
  the pack's settlement order takes fees from it. A later violation of the same visit
  (missing the visit that was moved late) cannot reach it again: the visit no longer holds a
  prepayment, so that violation costs what it costs an unpaid visit, charged to the card on file.
  (A visit holding a booking deposit too, which 406's order applies first, forfeits from the prepayment
  only what the fee still needed; the rest is not credited by the system but left to the front desk.
  Not expected in practice: a client who must prepay pays in full.)
* **A late reschedule whose fee the policy waives** (Bijoux: moved within the same day): nothing
  happens to the prepayment; it stays with the visit at its new time.
* **Attended**: the prepayment paid for the visit; the system does nothing with it.

Two places decide, and they must agree so the same money cannot be used twice. The fold
(:mod:`medspa.events.history`) decides from each booking-site event where the prepayment goes: it
records the credit owed (``BookingFacts.prepaid_credit``; an auto-cancel is the lifecycle's own
decision, so the lifecycle owes that credit itself) or the violation that forfeits it
(``Violation.prepayment``), and removes the prepayment from the visit (``payment.prepaid``) either
way. Settlement and the credit step then move it, and before moving it they read the ledger
(:func:`movements`): once any entry has taken from this visit's prepayment, no other may. That ledger
check is what holds when events arrive out of order and a refold changes its mind after money has
moved: whichever movement was written first stands, the later one finds nothing to take.
"""

from __future__ import annotations

from typing import get_args

from medspa.domain.ledger import LedgerEntry, ledger_entry_id
from medspa.ports.store import Stores
from medspa.policy.schema import FeeReason

CREDIT = "prepayment_credit"
CREDITED_NOTICE = "prepayment_credited"


def forfeit_purpose(reason: FeeReason) -> str:
    """The ledger purpose of the settlement step that takes a fee from the prepayment."""
    return f"{reason}_fee_prepayment"


PURPOSES = (CREDIT, *(forfeit_purpose(r) for r in get_args(FeeReason)))


def movements(store: Stores, appointment_id: str) -> dict[str, LedgerEntry]:
    """Every ledger entry that has taken from this visit's prepayment, by purpose.

    Read entry by entry (strongly consistent gets) rather than through the by-appointment index,
    whose reads may lag the write that a retry must see.
    """
    found = {p: store.ledger.get(ledger_entry_id(appointment_id, p)) for p in PURPOSES}
    return {p: e for p, e in found.items() if e is not None}


__all__ = ["CREDIT", "CREDITED_NOTICE", "PURPOSES", "forfeit_purpose", "movements"]
