"""Telling the member (issue 9): the week-before expiry notices the membership fold decides, the declined-draft
facts a message needs, and how membership and course notices are worded and sent.

The lead time is the pack's ``[expiry_notice]`` (7 days, the system's decision: the seeds say when things expire,
not that anyone is warned). A notice is decided at the notice day's draft time, 09:00 in the home spa's zone, so
it lands on the same wall-clock hour whichever side of a DST change it falls.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

import tests.unit.test_membership_rules as rules
import tests.unit.test_messages as messages
from medspa.adapters.messaging import InMemoryMessenger
from medspa.adapters.store.consent import InMemoryConsent
from medspa.domain.client import Channel
from medspa.events.membership_history import fold_membership
from medspa.messages import ACCOUNT_KINDS, SMS_MAX_CHARS, AccountContext, TemplateError, load_templates, render_email, render_sms
from medspa.money import Money
from medspa.policy.schema import DEFAULT_EXPIRY_NOTICE

from tests.support.packs import AUSTIN, GLOW, PACKS

local = rules.local


def notices(membership, outcome: str) -> list:
    return [d for d in membership.decisions if d.outcome == outcome]


# --- the pack ------------------------------------------------------------------------------------


def test_the_lead_time_is_a_week_by_default_and_an_assumption_not_a_seed_quote() -> None:
    assert DEFAULT_EXPIRY_NOTICE.days_before == 7
    assert DEFAULT_EXPIRY_NOTICE.source.seed is None and "issue 9" in (DEFAULT_EXPIRY_NOTICE.source.assumption or "")
    assert all(pack.expiry_notice.days_before == 7 for pack in PACKS.values())  # no locked pack restates it


# --- the fold's notices --------------------------------------------------------------------------


def test_paper_certificates_are_noticed_once_a_week_before_they_expire_at_09_00_local() -> None:
    member = rules.certificates_member()  # three certificates issued Nov 3 2025, expiring May 3 2026
    before = member.membership(date(2026, 4, 25))
    assert notices(before, "certificates_expiring") == [] and before.next_due() == date(2026, 4, 26)

    noticed = member.membership(date(2026, 4, 26))
    [notice] = notices(noticed, "certificates_expiring")
    assert (notice.expires_on, notice.items) == (date(2026, 5, 3), 3)
    assert notice.decided_at == local(2026, 4, 26, 9) == datetime(2026, 4, 26, 14, tzinfo=UTC)  # CDT
    assert notice.forfeited is None and notice.reason == "3 paper certificate(s) expire on 2026-05-03; the member " \
                                                          "is told 7 days before"
    assert noticed.next_due() == date(2026, 5, 4)  # the expiry is the next thing to do
    assert len(notices(member.membership(date(2026, 5, 10)), "certificates_expiring")) == 1


def test_a_notice_waits_for_its_moment_so_an_intake_that_morning_does_not_decide_it_before_the_run() -> None:
    member = rules.certificates_member()
    early = fold_membership(member.events, member.drafts, AUSTIN, date(2026, 4, 26), now=local(2026, 4, 26, 8))
    assert notices(early, "certificates_expiring") == [] and early.next_due() == date(2026, 4, 26)
    run = fold_membership(member.events, member.drafts, AUSTIN, date(2026, 4, 26), now=local(2026, 4, 26, 9))
    assert len(notices(run, "certificates_expiring")) == 1


def test_a_notice_on_the_day_clocks_spring_forward_is_still_at_09_00_local() -> None:
    member = rules.paid_member(date(2025, 6, 15), months=3)
    member.cancel(local(2025, 9, 15, 10), paper_certificates=True)  # certificates expire Mar 15 2026
    [notice] = notices(member.membership(date(2026, 3, 8)), "certificates_expiring")  # US DST starts Mar 8 2026
    assert notice.decided_at == datetime(2026, 3, 8, 14, tzinfo=UTC)  # 09:00 CDT, not 09:00 CST (15:00 UTC)
    assert notice.expires_on == date(2026, 3, 15)


def test_services_left_on_a_cancelled_membership_are_noticed_a_week_before_the_60_days_end() -> None:
    member = rules.paid_member(months=3)  # Jan 15, Feb 15, Mar 15: three services
    member.cancel(local(2026, 3, 20, 10))  # usable until May 14 (60 days after Mar 15)
    member.redeem(local(2026, 4, 2, 15))
    membership = member.membership(date(2026, 5, 7))
    [notice] = notices(membership, "services_expiring")
    assert (notice.decided_at, notice.expires_on, notice.items) == (local(2026, 5, 7, 9), date(2026, 5, 14), 2)
    assert membership.decisions[-1] == notice
    gone = member.membership(date(2026, 5, 15))
    assert [d.outcome for d in gone.decisions[-2:]] == ["services_expiring", "services_expired"]


def test_nothing_is_noticed_for_a_membership_with_no_services_left() -> None:
    member = rules.paid_member(months=2)
    member.cancel(local(2026, 2, 20, 10))
    member.redeem(local(2026, 3, 1, 15), credits=2)
    membership = member.membership(date(2026, 4, 30))
    assert notices(membership, "services_expiring") == [] and membership.next_due() is None


def test_a_cancellation_inside_the_last_week_gets_no_separate_notice() -> None:
    member = rules.paid_member(months=3)  # last billed Mar 15: usable until May 14
    member.cancel(local(2026, 5, 9, 10))  # the cancellation itself says until when
    assert notices(member.membership(date(2026, 5, 14)), "services_expiring") == []
    assert member.membership(date(2026, 5, 10)).next_due() == date(2026, 5, 15)


def test_certificates_all_redeemed_before_the_notice_day_are_not_noticed() -> None:
    member = rules.certificates_member()
    for n in (1, 2, 3):
        rules.redeem(member, local(2025, 11, 20 + n, 12), f"cert-{n}")
    assert notices(member.membership(date(2026, 5, 1)), "certificates_expiring") == []


def test_a_declined_draft_carries_the_amount_and_the_retry_day_and_the_last_one_none() -> None:
    member = rules.Member(date(2026, 1, 5))
    member.declines(4)  # attempts on Jan 5, then 1, 3 and 7 days after the draft date
    declined = [d for d in member.membership().decisions if d.outcome in ("draft_declined", "dues_unpaid")]
    assert [(d.outcome, d.amount, d.retry_on) for d in declined] == [
        ("draft_declined", rules.usd(7900), date(2026, 1, 6)),
        ("draft_declined", rules.usd(7900), date(2026, 1, 8)),
        ("draft_declined", rules.usd(7900), date(2026, 1, 12)),
        ("dues_unpaid", rules.usd(7900), None)]


# --- wording and sending -------------------------------------------------------------------------

LIBRARY = load_templates()


def account(pack, **extra) -> AccountContext:
    values = {"client_first_name": messages.LONG_NAME, "amount": pack.money(1234567), "retry_on": date(2026, 12, 30),
              "expires_on": date(2026, 12, 30), "items": 12} | extra
    return AccountContext(subject_id=f"{pack.spa.id}#mem-1", location_id=pack.location_id, **values)


@pytest.mark.parametrize(("location", "kind"), [(loc, kind) for loc in sorted(PACKS) for kind in ACCOUNT_KINDS])
def test_every_account_notice_renders_for_every_location_within_two_segments(location: str, kind: str) -> None:
    pack = PACKS[location]
    templates = LIBRARY.for_location(location)
    for ctx in (account(pack), account(pack, retry_on=None, items=1)):
        sms = render_sms(templates, pack, kind, ctx)
        assert len(sms) <= SMS_MAX_CHARS and sms.endswith(f"Reply {pack.messaging.keywords.opt_out_word} to opt out.")
        email = render_email(templates, pack, kind, ctx, unsubscribe_link=messages.UNSUBSCRIBE)
        assert "${" not in sms + email.subject + email.body and email.body.rstrip().endswith(messages.UNSUBSCRIBE)


def test_a_declined_draft_names_the_amount_and_the_retry_day_or_the_outstanding_balance() -> None:
    templates = LIBRARY.for_location("massageluxe-austin")
    ctx = account(AUSTIN, client_first_name="Dana", amount=rules.usd(7900), retry_on=date(2026, 1, 6))
    retried = render_sms(templates, AUSTIN, "membership_draft_declined", ctx)
    assert "$79.00" in retried and "try your card again on Tue 6 Jan 2026" in retried
    owed = render_sms(templates, AUSTIN, "membership_draft_declined", ctx.model_copy(update={"retry_on": None}))
    assert "outstanding balance" in owed and "try your card again" not in owed


def test_expiry_notices_name_how_many_of_what_and_the_last_day() -> None:
    austin = LIBRARY.for_location("massageluxe-austin")
    certificates = render_sms(austin, AUSTIN, "certificate_expiring", account(AUSTIN, items=3,
                                                                              expires_on=date(2026, 5, 3)))
    assert "3 paper certificates" in certificates and "Sun 3 May 2026" in certificates
    one = render_sms(austin, AUSTIN, "membership_services_expiring", account(AUSTIN, items=1))
    assert "1 membership service " in one
    course = render_sms(LIBRARY.for_location("glow-hk"), GLOW, "course_sessions_expiring", account(GLOW, items=2))
    assert "2 prepaid sessions" in course


def test_an_account_notice_cannot_use_a_visit_placeholder(tmp_path) -> None:
    (tmp_path / "default.toml").write_text(messages.TEMPLATES_DIR.joinpath("default.toml").read_text()
                                           .replace("reminder from ${spa_name}: ${what_expires}",
                                                    "reminder from ${spa_name} about ${visit_time}: ${what_expires}", 1))
    with pytest.raises(TemplateError, match="unknown placeholder \\$visit_time"):
        load_templates(tmp_path)


def test_account_notices_go_to_every_channel_and_skip_one_that_opted_out() -> None:
    messenger, consent = InMemoryMessenger(), InMemoryConsent()
    service = messages.service(messenger, consent)
    client = messages.client(AUSTIN, spa_id=AUSTIN.spa.id, client_id=f"{AUSTIN.spa.id}#c-1")
    noon = datetime(2026, 3, 10, 17, tzinfo=UTC)
    sent = service.notify(client, "certificate_expiring", account(AUSTIN), noon)
    assert [(r.channel, r.status) for r in sent] == [(Channel.SMS, "sent"), (Channel.EMAIL, "sent")]
    consent.record("sms", client.phone or "", AUSTIN.spa.id, opted_out=True, how="keyword", at=noon)
    again = service.notify(client, "membership_draft_declined", account(AUSTIN), noon)
    assert [(r.channel, r.status) for r in again] == [(Channel.SMS, "skipped_opted_out"), (Channel.EMAIL, "sent")]
    assert len(messenger.sms) == 1 and len(messenger.emails) == 2
    assert "Maximiliana" not in str([r.model_dump() for r in again])  # the result carries no text or contact


def test_an_account_notice_at_night_waits_for_the_end_of_quiet_hours() -> None:
    messenger = InMemoryMessenger()
    client = messages.client(AUSTIN, spa_id=AUSTIN.spa.id, client_id=f"{AUSTIN.spa.id}#c-1")
    night = datetime(2026, 3, 10, 4, tzinfo=UTC)  # 23:00 CDT
    results = messages.service(messenger).notify(client, "membership_services_expiring", account(AUSTIN), night)
    assert {r.status for r in results} == {"deferred_quiet_hours"} and not messenger.sms and not messenger.emails


def test_money_in_another_currency_is_refused_not_misworded() -> None:
    from medspa.messages import MissingMessageValue

    with pytest.raises(MissingMessageValue):
        render_sms(LIBRARY.for_location("glow-hk"), GLOW, "membership_draft_declined",
                   account(GLOW, amount=Money(amount=100, currency="USD")))
