"""The SMS keywords every location honours, and how a reply is reduced to a keyword.

The carriers (CTIA) and the FCC's 2024 revocation rule treat STOP, STOPALL, UNSUBSCRIBE, CANCEL, END,
QUIT, OPTOUT and REVOKE as a withdrawal of consent, START and UNSTOP as consent given back, and HELP
(INFO too) as a request for the program's contact details. A spa cannot opt out of the law, so these
words are code, not pack data: a pack may ADD words to a group, and the loader refuses a pack that
puts a base word in another group (STOP as a confirm word would silently un-STOP a client).

YES is not a base opt-in word although the CTIA lists it: every pack uses YES to confirm a visit.

Matching (:func:`keyword_form`): the message is NFKC-normalised (full-width ＳＴＯＰ is STOP), case is
folded, and every whitespace, punctuation, symbol (emoji included) and control character is removed,
wherever it is. So "stop", " Stop! ", "S.T.O.P", "s t o p", "STOP 🛑" and "opt-out" all match, while
"please stop texting" does not: a message is a keyword only if nothing but a keyword is left. Letters
and digits are never dropped, so "stop2" and "stopp" are not keywords either (staff read them).
"""

from __future__ import annotations

import unicodedata
from typing import Literal

KeywordGroup = Literal["opt_out", "opt_in", "confirm", "help"]

BASE_OPT_OUT: tuple[str, ...] = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE")
BASE_OPT_IN: tuple[str, ...] = ("START", "UNSTOP")
BASE_HELP: tuple[str, ...] = ("HELP", "INFO")
BASE_KEYWORDS: dict[KeywordGroup, tuple[str, ...]] = {
    "opt_out": BASE_OPT_OUT, "opt_in": BASE_OPT_IN, "confirm": (), "help": BASE_HELP,
}
_DROPPED_CATEGORIES = ("Z", "P", "S", "C")  # separators, punctuation, symbols, control/format
_VARIATION_SELECTORS = range(0xFE00, 0xFE10)  # emoji presentation marks (category Mn)


def keyword_form(text: str) -> str:
    """What is left of ``text`` for keyword matching; ``""`` if nothing is (see the module docstring)."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return "".join(ch for ch in folded
                   if not unicodedata.category(ch).startswith(_DROPPED_CATEGORIES)
                   and ord(ch) not in _VARIATION_SELECTORS)


def base_group_of(word: str) -> KeywordGroup | None:
    """The base group a word belongs to after matching normalisation, if any."""
    form = keyword_form(word)
    for group, words in BASE_KEYWORDS.items():
        if form in {keyword_form(w) for w in words}:
            return group
    return None
