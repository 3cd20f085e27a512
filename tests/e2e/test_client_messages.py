"""Messages a client understands (issue 11, item 6), end to end: booking-site events on the bus, the real
state machine, the texts and emails as SNS and SES hold them.

A fee notice states the whole fee and where it came from; a reminder states the visit's local time, the
last on-time moment to cancel (the engine's window for that visit, DST counted) and the fee at stake;
a message greets the client by the first name the booking site sent; a client's confirmation, by SMS
or through the signed link in the confirmation request email, is sent to the booking site.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from localcloud.clock import utc
from medspa.adapters.store import AppointmentStatus

pytestmark = pytest.mark.e2e


def texts_to(phone: str) -> list[str]:
    return [text for to, text, *_ in sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values() if to == phone]


def emails_to(address: str) -> list[tuple[str, str]]:
    """(subject, plain body with its lines joined) of every email sent to ``address``."""
    parsed = [email.message_from_string(m.raw_data, policy=email.policy.default)
              for m in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages]
    return [(m["Subject"], " ".join(m.get_body(("plain",)).get_content().split())) for m in parsed
            if m["To"] == address]


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 16)], indirect=True)
def test_406s_75_dollar_fee_paid_50_from_the_deposit_is_told_as_75_50_and_25(cloud, site):
    visit = utc(2026, 3, 10, 17)  # Tuesday 11:00 MDT
    site.client("406medicalspa", "c-ana", phone="+14065550120", email="ana@example.com", first_name="Ana")
    site.book("apt-406", "c-ana", "406medicalspa", visit, name="Hydrafacial", category="esthetics", minutes=60,
              price=20000, deposit=5000)
    site.client("406medicalspa", "c-bo", phone="+14065550121", card="chargeCustomerFail")
    site.book("apt-bo", "c-bo", "406medicalspa", visit, name="Hydrafacial", category="esthetics", minutes=60,
              price=20000, deposit=5000)
    cloud.run_until(utc(2026, 3, 9, 18))  # Monday 12:00 MDT: 23 hours ahead, before the confirmation deadline
    site.send("AppointmentCancelled", "apt-406", by="client")
    site.send("AppointmentCancelled", "apt-bo", by="client")
    cloud.run_until(utc(2026, 3, 9, 19))
    # A declined card: the notice still states the whole fee, and what the deposit already covered.
    assert ("a fee of $75.00 applies to your appointment on Tue 10 Mar at 11:00 AM MDT: $50.00 from your booking "
            "deposit and $25.00 still owed. We could not charge your card on file") in texts_to("+14065550121")[-1]
    customer = site.clients["c-bo"]["payment"]["stripe_customer_id"]
    good = site.stripe.v1.payment_methods.attach("pm_card_visa", params={"customer": customer}).id
    site.send("CardUpdated", spa_id="406medicalspa", client_id="c-bo", stripe_customer_id=customer,
              stripe_payment_method_id=good)
    cloud.run_until_idle()
    # The dunning retry charges only the card's share; its notice is still about the $75 fee.
    assert ("a late-cancellation fee of $75.00 applies: $50.00 from your booking deposit and $25.00 charged to "
            "your card on file") in texts_to("+14065550121")[-1]

    assert site.ledger("apt-406") == [("late_cancel_fee", "charge", 2500, "succeeded"),
                                      ("late_cancel_fee_deposit", "forfeit", 5000, "succeeded")]
    request, notice = texts_to("+14065550120")
    # Greeted by the first name the booking site sent; a client without one as before.
    assert request.startswith("Hi Ana, please confirm") and notice.startswith("Hi Ana, ")
    assert all(t.startswith("Hi there, ") for t in texts_to("+14065550121"))
    [(_, body)] = [m for m in emails_to("ana@example.com") if "fee" in m[0]]
    assert body.startswith("Hi Ana, ")
    # The confirmation request doubles as 406's reminder: it states the visit, the cancel-by time and the fee.
    assert "on Tue 10 Mar at 11:00 AM MDT" in request
    assert "Cancelling after Mon 9 Mar at 11:00 AM MDT incurs a $75.00 fee." in request
    stated = ("a late-cancellation fee of $75.00 applies: $50.00 from your booking deposit and $25.00 charged to "
              "your card on file")
    assert stated in notice and "$25.00 fee" not in notice
    [(subject, body)] = [m for m in emails_to("ana@example.com") if "fee" in m[0]]
    assert subject == "Late-cancellation fee of $75.00" and stated in body
    charged = [d for kind, d in site.inbox() if kind == "FeeCharged" and d["appointment_id"] == "apt-406"]
    assert [(d["fee"]["amount"], d["charged"]["amount"]) for d in charged] == [(7500, 2500)]


def test_reminders_state_the_cancel_by_time_and_the_fee_at_stake_in_each_packs_words(cloud, site):
    """Bijoux across the DST change (48 elapsed hours before Monday 10:00 EDT is Saturday 9:00 EST), Glow in
    Hong Kong dollars, and a Scottsdale party of four, whose window the engine lengthens to 48 hours."""
    site.client("bijoux", "c-bea", phone="+14075550121")
    site.book("apt-b", "c-bea", "bijoux", utc(2026, 3, 9, 14), name="Laser hair removal", category="injection_laser",
              minutes=60, price=30000)
    site.client("glow", "c-gil", phone="+85291234560")
    site.book("apt-g", "c-gil", "glow-hk", utc(2026, 3, 10, 6), name="HydraFacial", category="facial", minutes=60,
              price=180000)
    site.client("massageluxe", "c-max", phone="+14805550122")
    site.book("apt-m", "c-max", "massageluxe-scottsdale", utc(2026, 3, 10, 17), name="Couples massage",
              category="massage", minutes=60, price=51600, party_size=4)
    cloud.run_until(utc(2026, 3, 9, 13))  # after Bijoux's morning-of reminder, before its visit

    bijoux = texts_to("+14075550121")
    assert len(bijoux) == 2
    for text in bijoux:  # the morning-of one too, sent after the time it names: the rule still reads true
        assert "on Mon 9 Mar at 10:00 AM EDT" in text
        assert "call 407-213-GLOW: cancellations or changes after Sat 7 Mar at 9:00 AM EST incur a $100.00 fee" in text

    cloud.run_until(utc(2026, 3, 10, 5))  # before Glow's visit at 14:00 HKT
    glow = texts_to("+85291234560")
    assert len(glow) == 2 and all("on Tue 10 Mar at 2:00 PM HKT" in t for t in glow)
    assert all("after Mon 9 Mar at 2:00 PM HKT incur a HK$500.00 fee" in t for t in glow)
    cloud.run_until(utc(2026, 3, 10, 16))
    scottsdale = texts_to("+14805550122")
    assert len(scottsdale) == 2 and all("on Tue 10 Mar at 10:00 AM MST" in t for t in scottsdale)
    assert all("after Sun 8 Mar at 10:00 AM MST incur a $516.00 fee" in t for t in scottsdale)


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 16)], indirect=True)
def test_a_confirmation_by_sms_reaches_the_booking_site_and_the_visit_is_kept(cloud, site):
    visit = utc(2026, 3, 10, 17)  # Tuesday 11:00 MDT; unconfirmed, 406 would cancel it at Monday's close
    site.client("406medicalspa", "c-cal", phone="+14065550130", first_name="Cal")
    site.book("apt-cal", "c-cal", "406medicalspa", visit, name="Hydrafacial", category="esthetics", minutes=60,
              price=20000)
    cloud.run_until(utc(2026, 3, 9, 18))
    [request] = texts_to("+14065550130")
    assert request.startswith("Hi Cal, please confirm") and "replying CONFIRM" in request
    reply = {"originationNumber": "+14065550130", "destinationNumber": "+18005550100", "messageKeyword": "KEYWORD",
             "messageBody": "Yes!", "inboundMessageId": "in-cal-1", "previousPublishedMessageId": "out-1"}
    for _ in range(2):  # SNS may deliver a message twice: the booking site gets the same event id
        cloud.client("sns").publish(TopicArn=cloud.deployment.outputs["InboundSmsTopicArn"], Message=json.dumps(reply))
    cloud.run_until(visit - timedelta(minutes=5))

    told = [(kind, d) for kind, d in site.inbox() if kind == "AppointmentConfirmedByClient"]
    assert len({d["event_id"] for _, d in told}) == 1 and len(told) == 2
    detail = {k: v for k, v in told[0][1].items() if k != "event_id"}
    assert detail == {"spa_id": "406medicalspa", "appointment_id": "apt-cal", "client_id": "c-cal",
                      "booking_version": 1, "channel": "sms", "confirmed_at": "2026-03-09T18:00:00+00:00"}
    assert site.stored("apt-cal").status is AppointmentStatus.BOOKED  # not auto-cancelled at the deadline
    assert "auto_cancelled" not in [m[0] for m in site.messages("apt-cal")]


def _confirm_link(body: str) -> str:
    [link] = re.findall(r"https://\S+/confirm\?token=\S+", body)
    return link


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 16)], indirect=True)
def test_an_email_only_client_confirms_through_the_signed_link_and_the_booking_site_hears_of_it(cloud, site):
    visit = utc(2026, 3, 10, 17)  # Tuesday 11:00 MDT; unconfirmed, 406 cancels it at Monday's close
    site.client("406medicalspa", "c-dee", phone=None, email="dee@example.com", first_name="Dee")
    site.book("apt-dee", "c-dee", "406medicalspa", visit, name="Hydrafacial", category="esthetics", minutes=60,
              price=20000)
    site.client("406medicalspa", "c-eve", phone=None, email="eve@example.com")
    site.book("apt-eve", "c-eve", "406medicalspa", visit, name="Hydrafacial", category="esthetics", minutes=60,
              price=20000)
    cloud.run_until(utc(2026, 3, 9, 18))
    [(subject, body)] = emails_to("dee@example.com")
    assert subject == "Please confirm your appointment on Tue 10 Mar at 11:00 AM MDT" and body.startswith("Hi Dee,")
    link = _confirm_link(body)
    assert "dee" not in link.casefold() and "@" not in link  # the link names the visit, never the person

    page = cloud.http("GET", link)
    assert page.status == 200 and "Tue 10 Mar at 11:00 AM MDT" in page.body and '<form method="post"' in page.body
    assert site.stored("apt-dee").client_confirmed_at is None, "opening the link confirms nothing"
    for _ in range(2):  # the button, clicked twice
        done = cloud.http("POST", link)
        assert done.status == 200 and "is confirmed" in done.body
    tampered = link[:-1] + ("A" if link[-1] != "A" else "B")
    refused = cloud.http("POST", tampered)
    assert refused.status == 400 and "not valid for this visit" in refused.body and tampered[-43:] not in refused.body
    other = _confirm_link(emails_to("eve@example.com")[0][1])
    assert cloud.http("GET", other).status == 200 and site.stored("apt-eve").client_confirmed_at is None
    cloud.run_until(visit - timedelta(minutes=5))

    told = [d for kind, d in site.inbox() if kind == "AppointmentConfirmedByClient"]
    assert len(told) == 2 and len({d["event_id"] for d in told}) == 1
    assert {k: told[0][k] for k in ("appointment_id", "client_id", "channel", "confirmed_at")} == {
        "appointment_id": "apt-dee", "client_id": "c-dee", "channel": "email",
        "confirmed_at": "2026-03-09T18:00:00+00:00"}
    assert site.stored("apt-dee").status is AppointmentStatus.BOOKED  # kept at the deadline
    assert site.stored("apt-eve").status is AppointmentStatus.AUTO_CANCELLED  # Eve never pressed Confirm
    assert cloud.http("GET", other).body.count("no longer open") == 1
