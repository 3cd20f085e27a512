"""Client messages: templates, rendering, keyword parsing and the notification decisions."""

from __future__ import annotations

import logging

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from medspa.adapters.messaging import InMemoryMessenger
from medspa.domain.client import Channel, Client
from medspa.adapters.store.consent import InMemoryConsent
from medspa.domain.fee_breakdown import FeeBreakdown, PaidFrom
from medspa.money import Money
from medspa.messages import (
    BASE_KINDS,
    CHARGED_FEE_KINDS,
    FEE_KINDS,
    PAYABLE_KINDS,
    SMS_MAX_CHARS,
    AppointmentContext,
    TemplateError,
    format_money,
    format_visit_time,
    load_templates,
    parse_inbound_sms,
    render_email,
    render_sms,
)
from medspa.messages.templates import BREAKDOWN_KINDS, TEMPLATES_DIR
from medspa.services.notifications import NotificationService
from medspa.services.unsubscribe import EmailUnsubscribe

from tests.support.packs import AUSTIN, BIJOUX, GLOW, PACKS, SPA406

LIBRARY = load_templates()
LONG_NAME = "Maximiliana-Josephine Alexandrova-Worthington"
LINK = "https://pay.example.com/" + "x" * 76  # a 100-character payment link
UNSUBSCRIBE = "https://api.example.com/unsubscribe?token=v1." + "s" * 43
CONFIRM = "https://api.example.com/confirm?token=c1.YS0x." + "c" * 43


def kinds_for(pack) -> list[str]:
    return [k for k in BASE_KINDS if k != "reminder"] + [f"reminder_{r.name}" for r in pack.reminders]


def context(pack, starts_at: datetime, **extra) -> AppointmentContext:
    values = {"fee": pack.money(50000), "client_first_name": LONG_NAME, "late_cancel_fee": pack.money(123456),
              "cancel_by": starts_at - timedelta(hours=pack.cancellation.window_hours), "confirm_link": CONFIRM,
              "late_reschedule_fee": pack.money(123456), "minutes_late": 115, "hands_on_minutes": 115,
              "treatment_ends_at": starts_at + timedelta(minutes=235)} | extra
    return AppointmentContext(**({"appointment_id": "a-1", "location_id": pack.location_id, "starts_at": starts_at}
                                 | values))


def client(pack, **overrides) -> Client:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    fields = {"client_id": f"{pack.spa.id}#c-1", "spa_id": pack.spa.id, "phone": "+14075550123",
              "email": "client@example.com", "sms_opt_out": False, "email_opt_out": False, "stripe_customer_id": None,
              "default_payment_method_id": None, "strikes": (), "prepay_required": False, "prepay_set_at": None,
              "prepay_cleared_by": None, "prepay_cleared_at": None, "outstanding": {}, "credit": {},
              "created_at": now, "updated_at": now}
    return Client(**(fields | overrides))


ALL = [(loc, kind) for loc, pack in sorted(PACKS.items()) for kind in kinds_for(pack)]
START = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)


# --- every template of every location -----------------------------------------------------------

def test_every_pack_location_has_its_own_template_file() -> None:
    assert set(LIBRARY.locations) == set(PACKS)


@pytest.mark.parametrize(("location", "kind"), ALL)
def test_every_kind_renders_for_every_location(location: str, kind: str) -> None:
    pack = PACKS[location]
    templates = LIBRARY.for_location(location)
    ctx = context(pack, START)
    sms = render_sms(templates, pack, kind, ctx)
    opt_out_line = f"Reply {pack.messaging.keywords.opt_out_word} to opt out."
    assert sms.endswith(opt_out_line)
    assert len(sms) <= SMS_MAX_CHARS
    email = render_email(templates, pack, kind, ctx, unsubscribe_link=UNSUBSCRIBE)
    assert email.subject and "\n" not in email.subject
    assert "unsubscribe" in email.body.casefold() and email.body.rstrip().endswith(UNSUBSCRIBE)
    for text in (sms, email.subject + email.body):
        assert "${" not in text
    if kind in FEE_KINDS:
        assert format_money(ctx.fee) in sms and format_money(ctx.fee) in email.subject + email.body
    if kind in CHARGED_FEE_KINDS:
        assert "card on file" in sms
    if kind == "fee_declined":
        assert "card" in sms and "http" not in sms  # no payment link to give: ask to update the card
    if kind == "confirmation_request":
        assert "CONFIRM" in sms


def test_the_kinds_the_lifecycle_sends_are_all_known() -> None:
    lifecycle_kinds = {
        "confirmation_request", "confirmation_received", "auto_cancelled", "late_cancel_fee_charged",
        "no_show_fee_charged", "late_reschedule_fee_charged", "fee_applied", "fee_outstanding", "fee_waived",
        "fee_declined", "prepay_required", "prepay_cleared", "prepayment_credited", "late_arrival_shortened",
        "late_arrival_reschedule", "late_arrival_reschedule_same_day", "fee_released", "card_update_requested",
    }
    assert set(BASE_KINDS) == lifecycle_kinds | {"reminder"}
    assert FEE_KINDS == CHARGED_FEE_KINDS | {"fee_applied", "fee_outstanding", "fee_waived", "fee_declined"}
    assert PAYABLE_KINDS <= FEE_KINDS
    for location in PACKS:
        for kind in lifecycle_kinds:
            assert LIBRARY.for_location(location).template(kind).kind == kind


def test_fee_kinds_name_what_happened_to_the_money() -> None:
    ctx = context(BIJOUX, START, client_first_name="Ana")
    templates = LIBRARY.for_location("bijoux")
    sms = {kind: render_sms(templates, BIJOUX, kind, ctx) for kind in FEE_KINDS}
    assert "late-reschedule fee of $500.00 applies: $500.00 charged to your card on file" in sms[
        "late_reschedule_fee_charged"]
    assert "$500.00 from your booking deposit, prepayment, course or gift certificate" in sms["fee_applied"]
    assert "due at your next visit" in sms["fee_outstanding"]
    assert "waived" in sms["fee_waived"] and "refunded" in sms["fee_waived"]
    assert "call us at 407-213-GLOW to update your card" in sms["fee_declined"]
    default = LIBRARY.for_location("massageluxe-austin")
    declined = render_sms(default, AUSTIN, "fee_declined", context(AUSTIN, START))
    assert "contact us to update your card" in declined


# --- a fee notice states the whole fee and where each part came from (issue 11) ---------------------

def breakdown(pack, fee: int, *, charged: int | None = None, outstanding: int | None = None,
              **paid_from: int) -> FeeBreakdown:
    money = pack.money
    return FeeBreakdown(fee=money(fee), paid_from=tuple(PaidFrom(source=s, amount=money(a), sessions=int(
        s == "course_session")) for s, a in paid_from.items()), charged=money(charged) if charged else None,
        outstanding=money(outstanding) if outstanding else None)


def test_406s_75_dollar_fee_paid_50_by_the_deposit_is_a_75_dollar_fee() -> None:
    ctx = context(SPA406, START, fee=None, client_first_name="Ana",
                  fee_breakdown=breakdown(SPA406, 7500, deposit=5000, charged=2500))
    templates = LIBRARY.for_location("406medicalspa")
    sms = render_sms(templates, SPA406, "late_cancel_fee_charged", ctx)
    email = render_email(templates, SPA406, "late_cancel_fee_charged", ctx, unsubscribe_link=UNSUBSCRIBE)
    stated = ("late-cancellation fee of $75.00 applies: $50.00 from your booking deposit and $25.00 charged to "
              "your card on file")
    assert stated in sms and stated in " ".join(email.body.split())
    assert email.subject == "Late-cancellation fee of $75.00"
    assert "$25.00 fee" not in sms + email.subject + email.body


@pytest.mark.parametrize(("location", "kind"), [(loc, kind) for loc in sorted(PACKS) for kind in sorted(BREAKDOWN_KINDS)])
def test_every_fee_notice_of_every_location_states_the_fee_and_each_part(location: str, kind: str) -> None:
    pack = PACKS[location]
    parts = {"charged": 2500} if kind in CHARGED_FEE_KINDS else {"outstanding": 2500}
    if kind == "fee_applied":
        parts = {"prepayment": 2500}
    ctx = context(pack, START, fee=None, fee_breakdown=breakdown(pack, 7500, deposit=5000, **parts))
    templates = LIBRARY.for_location(location)
    sms = render_sms(templates, pack, kind, ctx)
    email = render_email(templates, pack, kind, ctx, unsubscribe_link=UNSUBSCRIBE)
    symbol = "HK$" if pack.currency == "HKD" else "$"
    how = {"charged": "charged to your card on file", "outstanding": "still owed", "prepayment": "from your prepayment"}
    [(part, _)] = parts.items()
    for text in (sms, " ".join(email.body.split())):
        assert f"{symbol}75.00" in text
        assert f"{symbol}50.00 from your booking deposit and {symbol}25.00 {how[part]}" in text
    assert f"{symbol}75.00" in email.subject


@pytest.mark.parametrize("location", sorted(PACKS))
def test_the_longest_breakdown_a_settlement_can_give_fits_the_sms(location: str) -> None:
    """Two sources paid in advance and a card that declined the rest, with four-digit amounts and a long
    name: the SMS sums what was paid in advance rather than run past its segments."""
    pack = PACKS[location]
    ctx = context(pack, START, fee=None, fee_breakdown=breakdown(
        pack, 999999, deposit=123456, gift_certificate=123456, outstanding=753087))
    for kind in sorted(BREAKDOWN_KINDS):
        sms = render_sms(LIBRARY.for_location(location), pack, kind, ctx)
        assert len(sms) <= SMS_MAX_CHARS
        assert f"{format_money(pack.money(999999))}" in sms and format_money(pack.money(753087)) in sms
        assert ("from what you paid in advance" in sms) or ("from your gift certificate" in sms)


def test_glow_names_the_course_session_it_deducted() -> None:
    ctx = context(GLOW, START, fee=None, fee_breakdown=breakdown(GLOW, 180000, course_session=180000))
    sms = render_sms(LIBRARY.for_location("glow-hk"), GLOW, "fee_applied", ctx)
    assert ("HK$1,800.00 was deducted from your course or account balance: HK$1,800.00 from your course "
            "(1 session)") in sms


def test_a_breakdown_in_another_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="HKD"):
        render_sms(LIBRARY.for_location("glow-hk"), GLOW, "late_cancel_fee_charged",
                   context(GLOW, START, fee=None, fee_breakdown=breakdown(BIJOUX, 7500, charged=7500)))
    with pytest.raises(ValueError, match="must be in USD"):
        FeeBreakdown(fee=Money(amount=7500, currency="USD"), charged=Money(amount=7500, currency="HKD"))


def test_a_waiver_notice_is_given_no_breakdown(tmp_path: Path) -> None:
    text = '[fee_waived]\nsms = "${fee_breakdown}"\nemail_subject = "x"\nemail_body = "y"\n'
    with pytest.raises(TemplateError, match=r"fee_waived\.sms: unknown placeholder \$fee_breakdown"):
        _library_with(tmp_path, "bijoux.toml", text)


# --- greeted by first name when the booking site sends one (issue 11) -----------------------------------

@pytest.mark.parametrize(("first_name", "greeting"), [("Ana", "Hi Ana, "), (None, "Hi there, "), ("  Ana   Sofia ", "Hi Ana Sofia, "),
                                                      (LONG_NAME, "Hi Maximiliana-Josephin, ")])
def test_every_location_greets_by_first_name_when_known(first_name: str | None, greeting: str) -> None:
    for location, pack in PACKS.items():
        ctx = context(pack, START, client_first_name=first_name)
        for kind in kinds_for(pack):
            assert render_sms(LIBRARY.for_location(location), pack, kind, ctx).startswith(greeting), (location, kind)


# --- an email-only client confirms through a signed link (issue 11) ------------------------------------

@pytest.mark.parametrize("location", sorted(PACKS))
def test_the_confirmation_request_email_carries_the_confirm_link_and_the_text_does_not(location: str) -> None:
    pack, templates = PACKS[location], LIBRARY.for_location(location)
    email = render_email(templates, pack, "confirmation_request", context(pack, START), unsubscribe_link=UNSUBSCRIBE)
    assert f"\n{CONFIRM}\n" in email.body
    assert CONFIRM not in render_sms(templates, pack, "confirmation_request", context(pack, START))
    with pytest.raises(ValueError, match="confirm link"):
        render_email(templates, pack, "confirmation_request", context(pack, START, confirm_link=None),
                     unsubscribe_link=UNSUBSCRIBE)


def test_a_confirm_link_in_a_text_fails_at_load(tmp_path: Path) -> None:
    text = '[confirmation_request]\nsms = "Confirm: ${confirm_link}"\nemail_subject = "x"\nemail_body = "y"\n'
    with pytest.raises(TemplateError, match=r"confirmation_request\.sms: \$confirm_link is for emails"):
        _library_with(tmp_path, "bijoux.toml", text)


def test_a_confirm_link_is_only_for_the_confirmation_request(tmp_path: Path) -> None:
    text = '[reminder]\nsms = "x"\nemail_subject = "x"\nemail_body = "${confirm_link}"\n'
    with pytest.raises(TemplateError, match=r"reminder\.email_body: unknown placeholder \$confirm_link"):
        _library_with(tmp_path, "bijoux.toml", text)


# --- a reminder states the visit's local time, the cancel-by time and the fee at stake (issue 11) ------

def test_bijouxs_reminder_counts_48_elapsed_hours_back_across_the_dst_change() -> None:
    visit = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # Monday 10:00 EDT; 48 hours earlier it is still EST
    ctx = context(BIJOUX, visit, client_first_name="Ana", late_cancel_fee=BIJOUX.money(5000))
    sms = render_sms(LIBRARY.for_location("bijoux"), BIJOUX, "reminder_48h", ctx)
    assert "on Mon 9 Mar at 10:00 AM EDT" in sms
    assert "cancellations or changes after Sat 7 Mar at 9:00 AM EST incur a $50.00 fee" in sms


@pytest.mark.parametrize(("location", "kind"), [(loc, k) for loc, pack in sorted(PACKS.items())
                                                for k in [f"reminder_{r.name}" for r in pack.reminders]
                                                + ["confirmation_request"]])
def test_every_reminder_states_the_visit_time_the_cancel_by_time_and_the_fee(location: str, kind: str) -> None:
    pack = PACKS[location]
    window = timedelta(hours=pack.cancellation.window_hours)
    ctx = context(pack, START, late_cancel_fee=pack.money(7500), cancel_by=START - window)
    templates = LIBRARY.for_location(location)
    sms = render_sms(templates, pack, kind, ctx)
    email = " ".join(render_email(templates, pack, kind, ctx, unsubscribe_link=UNSUBSCRIBE).body.split())
    fee = "a HK$75.00 fee" if pack.currency == "HKD" else "a $75.00 fee"
    cancel_by = format_visit_time(START - window, pack.zone)
    assert f"after {cancel_by} incur" in sms
    assert f"by {cancel_by}" in email and "after that time incur" in email
    for text in (sms, email):
        assert format_visit_time(START, pack.zone) in text and fee in text


def test_a_visit_the_pack_names_no_fee_for_is_not_given_an_amount() -> None:
    sms = render_sms(LIBRARY.for_location("bijoux"), BIJOUX, "reminder_48h",
                     context(BIJOUX, START, late_cancel_fee=None))
    assert "incur a fee under our cancellation policy" in sms and "$" not in sms


def test_a_reminder_without_its_cancel_by_time_is_refused() -> None:
    with pytest.raises(ValueError, match="cancel-by"):
        render_sms(LIBRARY.for_location("bijoux"), BIJOUX, "reminder_48h", context(BIJOUX, START, cancel_by=None))


@pytest.mark.parametrize("kind", sorted(FEE_KINDS))
def test_glow_says_hong_kong_dollars_once_and_correctly(kind: str) -> None:
    ctx = context(GLOW, datetime(2026, 3, 10, 6, 30, tzinfo=UTC), fee=GLOW.money(50000))
    templates = LIBRARY.for_location("glow-hk")
    sms = render_sms(templates, GLOW, kind, ctx)
    email = render_email(templates, GLOW, kind, ctx, unsubscribe_link=UNSUBSCRIBE)
    for text in (sms, email.subject, email.body):
        assert "HK$500.00" in text
        assert "HK$HK$" not in text and "$HK" not in text and "HKD" not in text and " $500" not in text
        assert "US$" not in text


def test_glow_wording_follows_its_seed() -> None:
    ctx = context(GLOW, datetime(2026, 3, 10, 6, 30, tzinfo=UTC), client_first_name="Ana")
    templates = LIBRARY.for_location("glow-hk")
    assert "deducted from your course or account balance" in render_sms(templates, GLOW, "fee_applied", ctx)
    assert "due at your next visit to Glow" in render_sms(templates, GLOW, "fee_outstanding", ctx)
    assert "rebooking fee of HK$500.00" in render_sms(templates, GLOW, "late_reschedule_fee_charged", ctx)


def test_406_gives_the_phone_number_from_its_seed() -> None:
    templates = LIBRARY.for_location("406medicalspa")
    assert templates.settings["spa_phone"] == "406-287-6565"
    assert "406-287-6565" in render_sms(templates, SPA406, "fee_declined", context(SPA406, START))


def test_templates_never_name_a_treatment() -> None:
    """Treatment names are PHI; only the neutral service label may appear."""
    every = [LIBRARY.default, *LIBRARY.locations.values()]
    raw = " ".join(t.template for lib in every for m in lib.templates.values()
                   for t in (m.sms, m.email_subject, m.email_body))
    words = {w.casefold() for pack in PACKS.values() for cat in pack.fees.categories for w in cat.matches}
    words |= {"botox", "filler", "laser", "facial", "massage", "injection", "iv", "pellet", "hydrafacial"}
    found = {w for w in words if re.search(rf"\b{re.escape(w)}\b", raw, re.IGNORECASE)}
    assert not found
    assert "service_name" not in AppointmentContext.model_fields
    templates = LIBRARY.for_location("406medicalspa")  # its reminder is the default one
    assert templates.template("reminder_24h").source == "default.toml"
    sms = render_sms(templates, SPA406, "reminder_24h", context(SPA406, START))
    assert "reminding you of your appointment on" in sms


def test_a_location_without_its_own_file_falls_back_to_default(tmp_path: Path) -> None:
    (tmp_path / "default.toml").write_text((TEMPLATES_DIR / "default.toml").read_text())
    library = load_templates(tmp_path)
    pack = BIJOUX
    templates = library.for_location("bijoux")
    assert templates.sources == ("default.toml",)
    sms = render_sms(templates, pack, "reminder_48h", context(pack, START, client_first_name="Ana"))
    assert sms.startswith("Hi Ana, this is Bijoux Med Spa reminding you of your appointment on Tue 10 Mar at 2:00 PM EDT.")


def test_a_location_file_overrides_only_what_it_names() -> None:
    bijoux = LIBRARY.for_location("bijoux")
    assert bijoux.template("reminder_48h").source == "bijoux.toml"
    assert bijoux.template("confirmation_request").source == "default.toml"
    assert "407-213-GLOW" in render_sms(bijoux, BIJOUX, "reminder_morning_of", context(BIJOUX, START))


# --- time and money -----------------------------------------------------------------------------

@pytest.mark.parametrize(("moment", "expected"), [
    (datetime(2026, 3, 7, 19, 0, tzinfo=UTC), "Sat 7 Mar at 2:00 PM EST"),
    (datetime(2026, 3, 8, 6, 59, tzinfo=UTC), "Sun 8 Mar at 1:59 AM EST"),
    (datetime(2026, 3, 8, 7, 0, tzinfo=UTC), "Sun 8 Mar at 3:00 AM EDT"),
    (datetime(2026, 3, 10, 18, 0, tzinfo=UTC), "Tue 10 Mar at 2:00 PM EDT"),
    (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), "Sun 1 Nov at 1:30 AM EDT"),
    (datetime(2026, 11, 1, 6, 30, tzinfo=UTC), "Sun 1 Nov at 1:30 AM EST"),
    (datetime(2026, 3, 8, 16, 0, tzinfo=UTC), "Sun 8 Mar at 12:00 PM EDT"),
    (datetime(2026, 3, 9, 4, 5, tzinfo=UTC), "Mon 9 Mar at 12:05 AM EDT"),
])
def test_visit_time_uses_the_abbreviation_in_force_on_each_side_of_dst(moment: datetime, expected: str) -> None:
    assert format_visit_time(moment, BIJOUX.zone) == expected


def test_visit_time_in_the_rendered_message_follows_dst() -> None:
    templates = LIBRARY.for_location("bijoux")
    before = render_sms(templates, BIJOUX, "reminder_48h", context(BIJOUX, datetime(2026, 3, 6, 19, tzinfo=UTC)))
    after = render_sms(templates, BIJOUX, "reminder_48h", context(BIJOUX, datetime(2026, 3, 10, 18, tzinfo=UTC)))
    assert "Fri 6 Mar at 2:00 PM EST" in before
    assert "Tue 10 Mar at 2:00 PM EDT" in after


def test_hong_kong_time_and_money() -> None:
    assert format_visit_time(datetime(2026, 3, 10, 6, 30, tzinfo=UTC), GLOW.zone) == "Tue 10 Mar at 2:30 PM HKT"
    assert format_money(Money(amount=50000, currency="HKD")) == "HK$500.00"
    sms = render_sms(LIBRARY.for_location("glow-hk"), GLOW, "no_show_fee_charged",
                     context(GLOW, datetime(2026, 3, 10, 6, 30, tzinfo=UTC)))
    assert "HK$500.00" in sms and "HKT" in sms


@pytest.mark.parametrize(("money", "text"), [
    (Money(amount=7500, currency="USD"), "$75.00"),
    (Money(amount=123456, currency="USD"), "$1,234.56"),
    (Money(amount=5, currency="USD"), "$0.05"),
    (Money(amount=-500, currency="USD"), "-$5.00"),
    (Money(amount=500, currency="JPY"), "JPY 500"),
])
def test_money_formatting(money: Money, text: str) -> None:
    assert format_money(money) == text


def test_a_fee_in_another_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="USD"):
        render_sms(LIBRARY.for_location("glow-hk"), GLOW, "no_show_fee_charged",
                   context(GLOW, START, fee=Money(amount=100, currency="USD")))


def test_a_fee_message_without_a_fee_is_refused() -> None:
    with pytest.raises(ValueError, match="fee amount"):
        render_sms(LIBRARY.for_location("bijoux"), BIJOUX, "no_show_fee_charged", context(BIJOUX, START, fee=None))


# --- template validation ------------------------------------------------------------------------

def _library_with(tmp_path: Path, name: str, text: str):
    (tmp_path / "default.toml").write_text((TEMPLATES_DIR / "default.toml").read_text())
    (tmp_path / name).write_text(text)
    return load_templates(tmp_path)


def test_an_unknown_placeholder_fails_at_load_naming_file_and_template(tmp_path: Path) -> None:
    text = '[reminder]\nsms = "Hi $client_first_name, see you ${visit_date}"\nemail_subject = "x"\nemail_body = "y"\n'
    with pytest.raises(TemplateError, match=r"bijoux\.toml: reminder\.sms: unknown placeholder \$visit_date"):
        _library_with(tmp_path, "bijoux.toml", text)


def test_a_placeholder_not_given_to_that_kind_fails(tmp_path: Path) -> None:
    text = '[prepay_required]\nsms = "fee ${fee_amount}"\nemail_subject = "x"\nemail_body = "y"\n'
    with pytest.raises(TemplateError, match=r"prepay_required\.sms: unknown placeholder \$fee_amount"):
        _library_with(tmp_path, "bijoux.toml", text)


def test_fee_declined_renders_without_a_payment_link() -> None:
    for location, pack in PACKS.items():
        ctx = context(pack, START)
        assert ctx.payment_link is None
        for kind in PAYABLE_KINDS:
            render_sms(LIBRARY.for_location(location), pack, kind, ctx)
            render_email(LIBRARY.for_location(location), pack, kind, ctx, unsubscribe_link=UNSUBSCRIBE)


DECLINED_WITH_LINK = ('[fee_declined]\nsms = "Pay ${fee_amount} at ${payment_link}"\n'
                      'email_subject = "Pay ${fee_amount}"\nemail_body = "Pay here: ${payment_link}"\n')


def test_payment_link_needs_a_payment_link_setting(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"^bijoux\.toml: fee_declined: uses \$payment_link but bijoux\.toml "
                                            r"sets no settings\.payment_link"):
        _library_with(tmp_path, "bijoux.toml", DECLINED_WITH_LINK)


def test_payment_link_from_the_location_settings_is_rendered(tmp_path: Path) -> None:
    settings = '[settings]\npayment_link = "https://pay.example.com/bijoux"\n'
    library = _library_with(tmp_path, "bijoux.toml", settings + DECLINED_WITH_LINK)
    templates = library.for_location("bijoux")
    sms = render_sms(templates, BIJOUX, "fee_declined", context(BIJOUX, START))
    assert sms.startswith("Pay $500.00 at https://pay.example.com/bijoux\n")
    email = render_email(templates, BIJOUX, "fee_declined", context(BIJOUX, START, payment_link=LINK),
                         unsubscribe_link=UNSUBSCRIBE)
    assert LINK in email.body  # a per-fee link from the caller wins over the location's page
    assert "payment_link" not in library.for_location("glow-hk").settings


@pytest.mark.parametrize("kind", ["prepay_required", "late_cancel_fee_charged", "fee_waived"])
def test_payment_link_is_only_for_fees_still_to_pay(tmp_path: Path, kind: str) -> None:
    text = (f'[settings]\npayment_link = "https://pay.example.com/x"\n[{kind}]\nsms = "${{payment_link}}"\n'
            'email_subject = "x"\nemail_body = "y"\n')
    with pytest.raises(TemplateError, match=rf"bijoux\.toml: {kind}\.sms: unknown placeholder \$payment_link"):
        _library_with(tmp_path, "bijoux.toml", text)


@pytest.mark.parametrize("link", ["http://pay.example.com/x", "pay.example.com", "https://pay.example.com/a b"])
def test_a_payment_link_setting_must_be_https(tmp_path: Path, link: str) -> None:
    with pytest.raises(TemplateError, match=r"bijoux\.toml: settings\.payment_link: must be an https://"):
        _library_with(tmp_path, "bijoux.toml", f'[settings]\npayment_link = "{link}"\n')


def test_spa_phone_needs_a_phone_setting(tmp_path: Path) -> None:
    text = '[reminder]\nsms = "call ${spa_phone}"\nemail_subject = "x"\nemail_body = "y"\n'
    with pytest.raises(TemplateError, match=r"glow-hk\.toml: reminder: uses \$spa_phone"):
        _library_with(tmp_path, "glow-hk.toml", text)


@pytest.mark.parametrize("text", [
    '[reminder]\nsms = "costs $5"\nemail_subject = "x"\nemail_body = "y"\n',
    '[reminder]\nsms = "x"\n',
    '[reminders]\nsms = "x"\nemail_subject = "x"\nemail_body = "y"\n',
    '[footer]\nsms = "Text back to stop."\n',
    '[settings]\ncolour = "red"\n',
    'not toml =',
])
def test_broken_files_fail_at_load_with_the_file_name(tmp_path: Path, text: str) -> None:
    with pytest.raises(TemplateError, match=r"^bijoux\.toml: "):
        _library_with(tmp_path, "bijoux.toml", text)


def test_a_missing_default_file_fails(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="default.toml"):
        load_templates(tmp_path)


# --- inbound keywords ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "intent"), [
    ("stop", "opt_out"), ("STOP", "opt_out"), ("  Unsubscribe\n", "opt_out"), ("Stop.", "opt_out"),
    (" Yes ", "confirm"), ("CONFIRM", "confirm"), ("confirm!", "confirm"), ("c", "confirm"), ("y", "confirm"),
    ("start", "opt_in"), ("UNSTOP", "opt_in"), ("help", "help"), ("Info", "help"),
    ("cancel", "opt_out"), ("Revoke", "opt_out"), ("opt out", "opt_out"), ("S.T.O.P", "opt_out"),
    ("yes but I'll be late", "unknown"), ("please stop texting", "unknown"), ("", "unknown"), ("   ", "unknown"),
])
def test_inbound_keywords(text: str, intent: str) -> None:
    assert parse_inbound_sms(text, BIJOUX) == intent


def test_inbound_keywords_are_the_base_words_plus_the_packs_own() -> None:
    assert parse_inbound_sms("退訂", GLOW) == "opt_out"
    assert parse_inbound_sms("退訂", BIJOUX) == "unknown"
    assert parse_inbound_sms("end", GLOW) == "opt_out"  # base: GLOW's pack does not list it
    assert parse_inbound_sms("yes", None) == "unknown"  # confirm words are a pack's
    assert parse_inbound_sms("退訂", None, also=[GLOW]) == "opt_out"


# --- the notification service -------------------------------------------------------------------

NOON_EDT = datetime(2026, 3, 9, 16, 0, tzinfo=UTC)


SECRET = b"unit-test-signing-secret-of-32-bytes!"


def service(messenger: InMemoryMessenger, consent: InMemoryConsent | None = None, **kw) -> NotificationService:
    consent = consent if consent is not None else InMemoryConsent()
    links = EmailUnsubscribe(consent, lambda: SECRET, "https://api.example.com/unsubscribe",
                             {p.spa.id: p.spa.name for p in PACKS.values()})
    return NotificationService(messenger, LIBRARY, PACKS, consent=consent, unsubscribe=links, **kw)


def test_reminder_goes_by_sms_only_when_sms_is_possible() -> None:
    messenger = InMemoryMessenger()
    results = service(messenger).notify(client(BIJOUX), "reminder_48h", context(BIJOUX, START), NOON_EDT)
    assert [(r.channel, r.status) for r in results] == [(Channel.SMS, "sent")]
    assert results[0].message_id == messenger.sms[0].message_id
    assert messenger.sms[0].phone == "+14075550123" and not messenger.emails


def test_reminder_falls_back_to_email_when_sms_opted_out() -> None:
    messenger = InMemoryMessenger()
    results = service(messenger).notify(client(BIJOUX, sms_opt_out=True), "reminder_48h",
                                        context(BIJOUX, START), NOON_EDT)
    assert [(r.channel, r.status) for r in results] == [(Channel.SMS, "skipped_opted_out"), (Channel.EMAIL, "sent")]
    assert not messenger.sms and messenger.emails[0].subject.startswith("Reminder: your appointment")


def test_reminder_falls_back_to_email_when_sms_fails() -> None:
    messenger = InMemoryMessenger(fail_sms=True)
    results = service(messenger).notify(client(BIJOUX), "reminder_morning_of", context(BIJOUX, START), NOON_EDT)
    assert [(r.channel, r.status, r.error) for r in results] == [
        (Channel.SMS, "failed", "ConnectionError"), (Channel.EMAIL, "sent", None)]


def test_fee_notices_go_to_every_channel() -> None:
    messenger = InMemoryMessenger()
    results = service(messenger).notify(client(BIJOUX), "no_show_fee_charged", context(BIJOUX, START), NOON_EDT)
    assert [(r.channel, r.status) for r in results] == [(Channel.SMS, "sent"), (Channel.EMAIL, "sent")]
    assert "$500.00" in messenger.sms[0].body and "$500.00" in messenger.emails[0].body


def test_an_opted_out_client_gets_nothing() -> None:
    messenger = InMemoryMessenger()
    results = service(messenger).notify(client(BIJOUX, sms_opt_out=True, email_opt_out=True),
                                        "no_show_fee_charged", context(BIJOUX, START), NOON_EDT)
    assert {r.status for r in results} == {"skipped_opted_out"}
    assert not messenger.sms and not messenger.emails


def test_a_client_without_contact_details_gets_nothing() -> None:
    messenger = InMemoryMessenger()
    results = service(messenger).notify(client(BIJOUX, phone=None, email=None), "auto_cancelled",
                                        context(BIJOUX, START), NOON_EDT)
    assert [r.status for r in results] == ["skipped_no_contact", "skipped_no_contact"]
    assert not messenger.sms and not messenger.emails


@pytest.mark.parametrize(("now", "send_after"), [
    (datetime(2026, 3, 10, 2, 0, tzinfo=UTC), datetime(2026, 3, 10, 12, 0, tzinfo=UTC)),   # 22:00 EDT
    (datetime(2026, 3, 10, 5, 0, tzinfo=UTC), datetime(2026, 3, 10, 12, 0, tzinfo=UTC)),   # 01:00 EDT
    (datetime(2026, 3, 8, 4, 0, tzinfo=UTC), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),     # 23:00 EST -> 08:00 EDT
])
def test_notices_at_night_are_deferred_to_the_end_of_quiet_hours(now: datetime, send_after: datetime) -> None:
    messenger = InMemoryMessenger()
    results = service(messenger).notify(client(BIJOUX), "late_cancel_fee_charged", context(BIJOUX, START), now)
    assert [(r.channel, r.status, r.send_after) for r in results] == [
        (Channel.SMS, "deferred_quiet_hours", send_after), (Channel.EMAIL, "deferred_quiet_hours", send_after)]
    assert not messenger.sms and not messenger.emails


def test_quiet_hours_are_the_locations_own() -> None:
    at_0830_hkt = datetime(2026, 3, 10, 0, 30, tzinfo=UTC)
    results = service(InMemoryMessenger()).notify(client(GLOW, phone="+85291234567"), "auto_cancelled",
                                                  context(GLOW, START), at_0830_hkt)
    assert {r.send_after for r in results} == {datetime(2026, 3, 10, 1, 0, tzinfo=UTC)}  # 09:00 HKT


def test_quiet_hours_boundaries_are_sendable() -> None:
    at_0800_edt = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    results = service(InMemoryMessenger()).notify(client(BIJOUX), "reminder_morning_of",
                                                  context(BIJOUX, START), at_0800_edt)
    assert [r.status for r in results] == ["sent"]


def test_urgent_kinds_may_be_sent_at_night() -> None:
    messenger = InMemoryMessenger()
    night = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    results = service(messenger, urgent_kinds={"auto_cancelled"}).notify(
        client(SPA406), "auto_cancelled", context(SPA406, START), night)
    assert [r.status for r in results] == ["sent", "sent"]


def test_unknown_kinds_and_reminders_are_refused() -> None:
    svc = service(InMemoryMessenger())
    with pytest.raises(KeyError):
        svc.notify(client(BIJOUX), "birthday_greeting", context(BIJOUX, START), NOON_EDT)
    with pytest.raises(ValueError, match="72h"):
        svc.notify(client(BIJOUX), "reminder_72h", context(BIJOUX, START), NOON_EDT)


def test_a_client_of_another_spa_is_refused() -> None:
    with pytest.raises(ValueError, match="spa"):
        service(InMemoryMessenger()).notify(client(GLOW), "reminder_48h", context(BIJOUX, START), NOON_EDT)


def test_results_carry_no_text_or_contact_details() -> None:
    results = service(InMemoryMessenger()).notify(client(BIJOUX), "no_show_fee_charged",
                                                  context(BIJOUX, START), NOON_EDT)
    dumped = str([r.model_dump() for r in results])
    assert "+1407" not in dumped and "@" not in dumped and "500" not in dumped


def test_logs_carry_no_text_or_contact_details(caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # A Lambda handler's Powertools Logger(service="medspa") stops propagation at "medspa"; look past it.
    monkeypatch.setattr(logging.getLogger("medspa"), "propagate", True)
    caplog.set_level("DEBUG", logger="medspa")
    service(InMemoryMessenger()).notify(client(BIJOUX), "no_show_fee_charged", context(BIJOUX, START), NOON_EDT)
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records and "+1407" not in logged and "client@example.com" not in logged
    assert LONG_NAME[:10] not in logged and "$500" not in logged


def test_the_thanks_for_confirming_goes_to_one_channel() -> None:
    messenger = InMemoryMessenger()
    results = service(messenger).notify(client(BIJOUX), "confirmation_received", context(BIJOUX, START), NOON_EDT)
    assert [(r.channel, r.status) for r in results] == [(Channel.SMS, "sent")]
    assert "is confirmed" in messenger.sms[0].body and not messenger.emails


@pytest.mark.parametrize("kind", ["fee_applied", "fee_outstanding", "fee_waived", "prepay_cleared",
                                  "late_reschedule_fee_charged", "prepayment_credited"])
def test_money_and_prepay_notices_go_to_every_channel(kind: str) -> None:
    messenger = InMemoryMessenger()
    results = service(messenger).notify(client(SPA406), kind, context(SPA406, START), NOON_EDT)
    assert [(r.channel, r.status) for r in results] == [(Channel.SMS, "sent"), (Channel.EMAIL, "sent")]


def test_confirmation_uses_a_confirm_keyword_from_the_pack() -> None:
    messenger = InMemoryMessenger()
    service(messenger).notify(client(SPA406), "confirmation_request",
                              context(SPA406, START + timedelta(days=1)), NOON_EDT)
    assert "replying CONFIRM" in messenger.sms[0].body


# --- consent belongs to the address, checked at send time -----------------------------------------

def test_a_number_that_opted_out_is_not_texted_whichever_client_has_it() -> None:
    consent = InMemoryConsent()
    consent.record("sms", "+14075550123", "glow", opted_out=True, how="keyword", at=NOON_EDT)
    messenger = InMemoryMessenger()
    later_client = client(BIJOUX, client_id="bijoux#c-new")  # another spa, created after the STOP
    results = service(messenger, consent).notify(later_client, "no_show_fee_charged", context(BIJOUX, START), NOON_EDT)
    assert [(r.channel, r.status) for r in results] == [(Channel.SMS, "skipped_opted_out"), (Channel.EMAIL, "sent")]
    assert not messenger.sms


def test_an_email_unsubscribe_holds_at_its_spa_only() -> None:
    consent = InMemoryConsent()
    consent.record("email", "Client@Example.com ", "bijoux", opted_out=True, how="link", at=NOON_EDT)
    messenger = InMemoryMessenger()
    bijoux = service(messenger, consent).notify(client(BIJOUX), "no_show_fee_charged", context(BIJOUX, START), NOON_EDT)
    spa406 = service(messenger, consent).notify(client(SPA406), "no_show_fee_charged", context(SPA406, START), NOON_EDT)
    assert {(r.channel, r.status) for r in bijoux} == {(Channel.SMS, "sent"), (Channel.EMAIL, "skipped_opted_out")}
    assert {(r.channel, r.status) for r in spa406} == {(Channel.SMS, "sent"), (Channel.EMAIL, "sent")}
    assert [e.to_address for e in messenger.emails] == ["client@example.com"]


def test_opting_back_in_is_honoured_at_the_next_send() -> None:
    consent = InMemoryConsent()
    consent.record("sms", "+14075550123", "bijoux", opted_out=True, how="keyword", at=NOON_EDT)
    consent.record("sms", "+14075550123", "bijoux", opted_out=False, how="keyword", at=NOON_EDT + timedelta(minutes=1))
    results = service(InMemoryMessenger(), consent).notify(client(BIJOUX), "reminder_48h", context(BIJOUX, START),
                                                           NOON_EDT)
    assert [r.status for r in results] == ["sent"]


class ConfirmLinksMade:
    def __init__(self) -> None:
        self.made: list[tuple[str, datetime]] = []

    def link_for(self, appointment_id: str, starts_at: datetime) -> str:
        self.made.append((appointment_id, starts_at))
        return f"https://api.example.com/confirm?token=c1.{len(self.made)}"


def test_an_email_only_client_is_asked_to_confirm_through_a_link_made_for_the_visit() -> None:
    messenger, links = InMemoryMessenger(), ConfirmLinksMade()
    results = service(messenger, confirm_links=links).notify(
        client(SPA406, phone=None), "confirmation_request", context(SPA406, START, confirm_link=None), NOON_EDT)
    assert [(r.channel, r.status) for r in results] == [(Channel.SMS, "skipped_no_contact"), (Channel.EMAIL, "sent")]
    assert links.made == [("a-1", START)]
    assert "https://api.example.com/confirm?token=c1.1" in messenger.emails[0].body


def test_every_email_carries_its_signed_link_in_the_body_and_the_header() -> None:
    consent, messenger = InMemoryConsent(), InMemoryMessenger()
    service(messenger, consent).notify(client(SPA406), "prepay_required", context(SPA406, START), NOON_EDT)
    [email] = messenger.emails
    assert email.unsubscribe_url.startswith("https://api.example.com/unsubscribe?token=v1.")
    assert email.unsubscribe_url in email.body
    assert "client@example.com" not in email.unsubscribe_url and "406" not in email.unsubscribe_url
    [(spa, address)] = consent.links.values()
    assert (spa, address) == ("406medicalspa", "client@example.com")
