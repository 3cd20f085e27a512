"""Inbound SMS keywords: what a client's reply means, by the pack's keyword lists.

The whole message must be the keyword (after trimming whitespace and surrounding punctuation,
ignoring case): "yes" and " Yes! " confirm, "yes but I'll be late" does not, so a conversational
reply is left for staff instead of being acted on. HELP/INFO are the carrier-mandated help words
and are answered at every location.
"""

from __future__ import annotations

import string
from typing import Literal

from medspa.policy.schema import PolicyPack

InboundIntent = Literal["confirm", "opt_out", "opt_in", "help", "unknown"]
HELP_KEYWORDS = ("HELP", "INFO")
_STRIP = string.whitespace + string.punctuation + "。！？，"


def _norm(word: str) -> str:
    return " ".join(word.split()).strip(_STRIP).casefold()


def parse_inbound_sms(text: str, pack: PolicyPack) -> InboundIntent:
    word = _norm(text or "")
    if not word:
        return "unknown"
    keywords = pack.messaging.keywords
    # Opt-out first: if a pack ever listed a word twice, honouring STOP is the safe reading.
    groups: tuple[tuple[InboundIntent, list[str] | tuple[str, ...]], ...] = (
        ("opt_out", keywords.opt_out),
        ("opt_in", keywords.opt_in),
        ("confirm", keywords.confirm),
        ("help", HELP_KEYWORDS),
    )
    for intent, words in groups:
        if word in {_norm(w) for w in words}:
            return intent
    return "unknown"
