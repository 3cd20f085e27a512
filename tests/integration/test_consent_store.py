"""Consent by contact address: the DynamoDB repository and the in-memory fake pass the same cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from medspa.adapters.store import InMemoryConsent, Store

T0 = datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
PHONE = "+14075550123"


@pytest.fixture(params=["dynamodb", "in-memory"])
def consent(request, store: Store):
    return store.consent if request.param == "dynamodb" else InMemoryConsent()


def test_an_sms_opt_out_holds_for_every_spa_and_an_email_one_for_its_spa(consent) -> None:
    consent.record("sms", PHONE, "bijoux", opted_out=True, how="keyword", at=T0, evidence="in-1")
    consent.record("email", " Ana@Example.COM", "bijoux", opted_out=True, how="link", at=T0)
    assert consent.opted_out("sms", PHONE, "glow") and consent.opted_out("sms", PHONE, "bijoux")
    assert consent.opted_out("email", "ana@example.com", "bijoux")
    assert not consent.opted_out("email", "ana@example.com", "glow")
    assert not consent.opted_out("sms", "+14075550999", "bijoux")
    record = consent.get("sms", PHONE, "406medicalspa")
    assert (record.scope, record.opted_out, record.how, record.changed_at, record.evidence) == (
        "*", True, "keyword", T0, "in-1")
    assert PHONE not in repr(record)


def test_a_later_change_is_never_overwritten_by_an_earlier_one(consent) -> None:
    consent.record("sms", PHONE, "bijoux", opted_out=False, how="keyword", at=T0 + timedelta(minutes=1))
    stored = consent.record("sms", PHONE, "bijoux", opted_out=True, how="keyword", at=T0)
    assert (stored.opted_out, stored.changed_at) == (False, T0 + timedelta(minutes=1))
    assert consent.record("sms", PHONE, "bijoux", opted_out=True, how="admin", at=T0 + timedelta(hours=1)).opted_out


def test_an_address_that_is_not_one_is_refused_without_echo(consent) -> None:
    for channel, address in (("sms", "407-555-0123"), ("email", "not an address")):
        with pytest.raises(ValueError) as error:
            consent.opted_out(channel, address, "bijoux")
        assert address not in str(error.value)


def test_links_map_a_reference_to_the_spa_and_address(consent) -> None:
    consent.remember_link("ref-1", "bijoux", "Ana@Example.com", T0)
    consent.remember_link("ref-1", "bijoux", "ana@example.com", T0 + timedelta(days=1))  # every email re-sends it
    assert consent.link("ref-1") == ("bijoux", "ana@example.com")
    assert consent.link("ref-2") is None


def test_a_reply_is_claimed_once_and_released_if_it_could_not_be_sent(consent) -> None:
    assert consent.claim_reply("in-1", "opt_out", T0)
    assert not consent.claim_reply("in-1", "opt_out", T0)
    consent.release_reply("in-1")
    assert consent.claim_reply("in-1", "opt_out", T0)
    consent.reply_sent("in-1", "msg-1", T0)
    assert not consent.claim_reply("in-1", "opt_out", T0 + timedelta(hours=2))


def test_reply_claims_expire_through_the_tables_ttl(store: Store) -> None:
    store.consent.claim_reply("in-9", "help", T0)
    item = store.consent._model.get("reply#in-9", "sms", consistent_read=True)
    assert item.expires_at == T0 + timedelta(days=30)
