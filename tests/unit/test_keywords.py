"""SMS keywords: the base words hold at every location in any case, spacing or punctuation; packs only add."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medspa.messages import keyword_reply, parse_inbound_sms
from medspa.policy.keywords import BASE_KEYWORDS, keyword_form
from medspa.policy.loader import PACKS_DIR, PolicyPackError, load_pack
from medspa.policy.schema import Keywords

from tests.support.packs import PACKS

LOCATIONS = [None, *PACKS.values()]
BASE = [(group, word) for group, words in BASE_KEYWORDS.items() for word in words]
# What a phone keyboard puts around a word: spaces, newlines, punctuation, emoji, full-width forms.
NOISE = st.text(alphabet=st.sampled_from([" ", "\n", "\t", ".", "!", "?", "-", "*", "'", '"', "…", "🛑", "🙏", "。",
                                          "\u200d", "\ufe0f", "(", ")"]), max_size=3)


@st.composite
def typed(draw, word: str) -> str:
    """``word`` as a person might type it: any case per letter, noise between and around the letters."""
    letters = [draw(st.sampled_from([c.lower(), c.upper()])) for c in word]
    return draw(NOISE) + "".join(c + draw(NOISE) for c in letters)


@pytest.mark.parametrize(("group", "word"), BASE, ids=[w for _, w in BASE])
@given(data=st.data())
def test_every_base_word_works_at_every_location_however_it_is_typed(group: str, word: str, data) -> None:
    text = data.draw(typed(word))
    for pack in LOCATIONS:
        assert parse_inbound_sms(text, pack) == group, (pack and pack.location_id, text)


@given(word=st.sampled_from([w for _, w in BASE]), extra=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3,
                                                                   max_size=12))
def test_a_keyword_inside_a_sentence_is_not_a_keyword(word: str, extra: str) -> None:
    """The words of a sentence survive: only a message that is nothing but a keyword is one."""
    text = f"please {word.lower()} {extra}"
    assert parse_inbound_sms(text, PACKS["bijoux"]) == "unknown"


@pytest.mark.parametrize("text", ["please stop texting", "stop it", "don't stop", "stopp", "stop2", "STOP STOP",
                                  "can I cancel my 3pm", "yes please", "help me reschedule"])
def test_conversation_is_left_for_staff(text: str) -> None:
    for pack in LOCATIONS:
        assert parse_inbound_sms(text, pack) == "unknown"


@pytest.mark.parametrize(("text", "form"), [(" Stop! ", "stop"), ("S.T.O.P", "stop"), ("ＳＴＯＰ", "stop"),
                                            ("opt-out", "optout"), ("STOP 🛑", "stop"), ("退訂。", "退訂")])
def test_the_matching_form(text: str, form: str) -> None:
    assert keyword_form(text) == form


def test_yes_confirms_and_is_no_base_word() -> None:
    """The CTIA lists YES as an opt-in word; every pack uses it to confirm a visit, so it is the pack's."""
    assert all("yes" in {keyword_form(w) for w in p.messaging.keywords.confirm} for p in PACKS.values())
    assert parse_inbound_sms("Yes!", PACKS["406medicalspa"]) == "confirm"
    assert parse_inbound_sms("yes", None) == "unknown"


def test_no_shipped_pack_cancels_a_visit_by_sms() -> None:
    for pack in PACKS.values():
        assert parse_inbound_sms("cancel", pack) == "opt_out"
        assert "cancel" not in {keyword_form(w) for w in pack.messaging.keywords.confirm}


# --- a pack may add keywords, never take a base word over -------------------------------------------

def _keywords(**groups) -> dict:
    return {"source": {"assumption": "test"}} | groups


@pytest.mark.parametrize(("group", "word"), [("confirm", "STOP"), ("confirm", "Cancel"), ("confirm", "s.t.o.p"),
                                             ("opt_in", "QUIT"), ("opt_out", "START"), ("confirm", "unstop"),
                                             ("opt_out", "HELP"), ("help", "REVOKE")])
def test_a_pack_cannot_move_a_base_word_to_another_group(group: str, word: str) -> None:
    with pytest.raises(ValueError, match="base .* keyword at every location"):
        Keywords.model_validate(_keywords(**{group: [word]}))


def test_a_pack_may_repeat_a_base_word_in_its_own_group_and_add_its_own() -> None:
    keywords = Keywords.model_validate(_keywords(opt_out=["STOP", "BASTA"], confirm=["SI"]))
    assert keywords.words("opt_out")[-1] == "BASTA" and "CANCEL" in keywords.words("opt_out")
    assert keywords.opt_out_word == "STOP"


def test_a_keyword_with_no_letters_is_refused() -> None:
    with pytest.raises(ValueError, match="no letters or digits"):
        Keywords.model_validate(_keywords(confirm=["👍"]))


def test_the_loader_names_the_file_of_a_pack_that_takes_stop_over(tmp_path: Path) -> None:
    text = (PACKS_DIR / "bijoux.toml").read_text(encoding="utf-8")
    old = 'confirm = ["C", "CONFIRM", "Y", "YES"]'
    assert old in text
    broken = tmp_path / "bijoux.toml"
    broken.write_text(text.replace(old, 'confirm = ["C", "CONFIRM", "Y", "YES", "STOP"]', 1), encoding="utf-8")
    with pytest.raises(PolicyPackError, match=r"bijoux\.toml: messaging\.keywords: .*'STOP' is a base opt_out"):
        load_pack(broken)


# --- the one text each keyword gets -----------------------------------------------------------------

@pytest.mark.parametrize("pack", LOCATIONS, ids=lambda p: p.location_id if p else "no-pack")
def test_each_reply_is_one_sms_segment_and_says_what_it_must(pack) -> None:
    replies = {intent: keyword_reply(intent, pack) for intent in ("opt_out", "opt_in", "help")}
    for text in replies.values():
        assert len(text) <= 160 and text.isascii() or len(text) <= 70
    assert "START" in replies["opt_out"] and "unsubscribed" in replies["opt_out"]
    assert "STOP" in replies["opt_in"] and "HELP" in replies["opt_in"]
    assert "STOP" in replies["help"]
    if pack is not None:
        assert replies["help"].startswith(pack.contact.line)
        assert all(text.startswith(pack.contact.name) for text in replies.values())


def test_help_quotes_the_locations_contact_line_from_its_pack() -> None:
    assert keyword_reply("help", PACKS["bijoux"]).startswith("Bijoux Med Spa: 407-213-GLOW, info@bijouxmedspa.com.")
    assert keyword_reply("help", PACKS["406medicalspa"]).startswith("406MedicalSpa: 406-287-6565, hello@406medicalspa.com.")
