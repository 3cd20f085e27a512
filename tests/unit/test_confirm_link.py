"""The signed confirm link of a confirmation request email (medspa.domain.confirm_link)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from medspa.domain.confirm_link import (
    InvalidConfirmLink,
    confirm_token,
    confirm_token_matches,
    confirm_token_visit,
)
from medspa.domain.consent import unsubscribe_token

SECRET = b"unit-test-signing-secret-of-32-bytes!"
VISIT = "406medicalspa#apt-1"
START = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)


def test_a_link_names_its_visit_and_matches_only_its_start_time() -> None:
    token = confirm_token(SECRET, VISIT, START)
    assert confirm_token_visit(token) == VISIT
    assert confirm_token_matches(SECRET, token, VISIT, START)
    assert confirm_token_matches(SECRET, token, VISIT, START.astimezone(timezone(timedelta(hours=-6))))  # same instant
    assert not confirm_token_matches(SECRET, token, VISIT, START + timedelta(days=1))  # the visit has moved
    assert not confirm_token_matches(SECRET, token, "406medicalspa#apt-2", START)
    assert not confirm_token_matches(b"another-deployments-secret-32-bytes!!", token, VISIT, START)


def test_a_link_made_for_one_visit_cannot_be_edited_into_another() -> None:
    token = confirm_token(SECRET, VISIT, START)
    other = confirm_token(SECRET, "406medicalspa#apt-2", START)
    forged = f"{other.rsplit('.', 1)[0]}.{token.rsplit('.', 1)[1]}"
    assert confirm_token_visit(forged) == "406medicalspa#apt-2"
    assert not confirm_token_matches(SECRET, forged, "406medicalspa#apt-2", START)


def test_an_unsubscribe_signature_never_passes_for_a_confirmation() -> None:
    signature = unsubscribe_token(SECRET, "406medicalspa", "ana@example.com").partition(".")[2]
    token = f"{confirm_token(SECRET, VISIT, START).rsplit('.', 1)[0]}.{signature}"
    assert not confirm_token_matches(SECRET, token, VISIT, START)


@pytest.mark.parametrize("token", [None, "", "c1.", "v1." + "a" * 43, "c1.YS0x." + "a" * 42, "c1.*." + "a" * 43,
                                   "c1.__8." + "a" * 43])
def test_a_damaged_link_is_refused_without_repeating_it(token: str | None) -> None:
    with pytest.raises(InvalidConfirmLink) as refused:
        confirm_token_visit(token)
    assert token is None or not token or token not in str(refused.value)


def test_the_secret_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        confirm_token(b"short", VISIT, START)
