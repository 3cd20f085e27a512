"""Inbound SMS keywords: what a client's reply means, and the one text that answers it.

A reply is a keyword only if nothing but the keyword is left once spacing, punctuation, symbols and
case are set aside (:func:`medspa.policy.keywords.keyword_form`): "yes" and " Yes! " confirm, "S.T.O.P"
stops, "yes but I'll be late" and "please stop texting" are left for staff instead of being acted on.
The base words (STOP and the other carrier/FCC opt-out words, START/UNSTOP, HELP/INFO) are honoured at
every location and with no pack at all, so a number the system has never seen can still opt out.

The answers are worded here, not in the per-location templates, because carriers prescribe what they
say: the program's name, how to reach a person, how to opt back in or out. They are short enough
for one SMS segment with any spa's contact line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from medspa.policy.keywords import BASE_KEYWORDS, KeywordGroup, keyword_form
from medspa.policy.schema import PolicyPack

InboundIntent = Literal["confirm", "opt_out", "opt_in", "help", "unknown"]
HELP_KEYWORDS = BASE_KEYWORDS["help"]
# Opt-out first: if two packs ever read one word differently, honouring STOP is the safe reading.
_ORDER: tuple[KeywordGroup, ...] = ("opt_out", "opt_in", "confirm", "help")
GENERIC_PROGRAM = "Appointment texts"


def _forms(packs: Iterable[PolicyPack], group: KeywordGroup) -> set[str]:
    forms = {keyword_form(w) for w in BASE_KEYWORDS[group]}
    for pack in packs:
        forms |= {keyword_form(w) for w in getattr(pack.messaging.keywords, group)}
    return forms


def parse_inbound_sms(text: str, pack: PolicyPack | None, *, also: Iterable[PolicyPack] = ()) -> InboundIntent:
    """The intent of ``text`` under the base words plus ``pack``'s (and ``also``'s) own.

    ``pack=None`` reads only the base words: a sender the system cannot place at a location.
    """
    form = keyword_form(text or "")
    if not form:
        return "unknown"
    packs = [p for p in (pack, *also) if p is not None]
    for group in _ORDER:
        if form in _forms(packs, group):
            return group
    return "unknown"


def keyword_reply(intent: InboundIntent, pack: PolicyPack | None) -> str:
    """The confirmation text for an opt-out, an opt-in or a HELP request.

    The opt-out reply speaks of "this number": an SMS opt-out holds for every spa that texts from it
    (see :mod:`medspa.services.inbound_sms`). Without a pack (a number no client has) the reply names
    no spa, since none can be named truthfully.
    """
    keywords = pack.messaging.keywords if pack is not None else None
    name = pack.contact.name if pack is not None else GENERIC_PROGRAM
    stop = keywords.opt_out_word if keywords else BASE_KEYWORDS["opt_out"][0]
    start = keywords.opt_in_word if keywords else BASE_KEYWORDS["opt_in"][0]
    if intent == "opt_out":
        return (f"{name}: you are unsubscribed and will receive no more texts from this number. "
                f"Reply {start} to resubscribe.")
    if intent == "opt_in":
        return (f"{name}: you are subscribed again to appointment texts. Msg & data rates may apply. "
                f"Reply HELP for help, {stop} to opt out.")
    if intent == "help":
        reach = pack.contact.line if pack is not None else f"{name} from your spa: please contact the spa you booked with"
        return f"{reach}. Appointment reminders and notices. Msg & data rates may apply. Reply {stop} to opt out."
    raise ValueError(f"no keyword reply for {intent!r}")
