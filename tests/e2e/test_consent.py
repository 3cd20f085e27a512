"""Consent that holds, end to end in the local cloud (issue 7, part 2).

Texts come in through the deployed path (SNS topic -> InboundSmsFunction); visits are booked through the
bus and messaged by the real AppointmentLifecycle; what went out is read from moto's SNS and SES records
(SES keeps the MIME message the system sent); the unsubscribe link is followed through the deployed HTTP
API (``cloud.http``: the route moto's ApiGatewayV2 holds -> HttpApiFunction, in-process).
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import re
from datetime import timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from localcloud.cloud import LocalCloud
from localcloud.clock import utc
from medspa.policy.keywords import BASE_OPT_OUT
from medspa.policy.loader import load_packs

pytestmark = pytest.mark.e2e

PACKS = load_packs()
PHONE = "+14075550123"
ADDRESS = "ana.lima@example.com"
VISIT = utc(2026, 3, 10, 18)  # Tue 14:00 EDT at Bijoux; the cloud starts Thu 5 Mar 15:00 UTC
INJECTION = dict(name="Botox forehead", category="injection_laser", minutes=30, price=45000)
SERVICE = {
    "bijoux": INJECTION,
    "406medicalspa": dict(name="Hydrafacial", category="esthetics", minutes=60, price=20000),
    "glow-hk": dict(name="HydraFacial", category="facial", minutes=60, price=180000),
    "massageluxe-scottsdale": dict(name="Swedish massage", category="massage", minutes=60, price=12900),
    "massageluxe-austin": dict(name="Swedish massage", category="massage", minutes=60, price=12900),
}
_inbound_ids = itertools.count(1)


def text_in(cloud, body: str, phone: str = PHONE, message_id: str | None = None) -> str:
    """A client's text arriving on the spa's number, as End User Messaging publishes it; returns its id."""
    message_id = message_id or f"in-{next(_inbound_ids)}"
    cloud.client("sns").publish(TopicArn=cloud.deployment.outputs["InboundSmsTopicArn"], Message=json.dumps({
        "originationNumber": phone, "destinationNumber": "+18005550100", "messageKeyword": "KEYWORD",
        "messageBody": body, "inboundMessageId": message_id, "previousPublishedMessageId": "out-1"}))
    return message_id


def texts_to(phone: str) -> list[str]:
    return [text for to, text, *_ in sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values() if to == phone]


def emails_to(address: str) -> list[email.message.EmailMessage]:
    parsed = [email.message_from_string(m.raw_data, policy=email.policy.default)
              for m in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages]
    return [m for m in parsed if m["To"] == address]


def body_of(mail: email.message.EmailMessage) -> str:
    return mail.get_body(("plain",)).get_content()


def inbound_errors(cloud) -> list[str]:
    return [i.error_type for i in cloud.runtime.invocations if i.function == "InboundSmsFunction" and i.errored]


# ---------------------------------------------------------------------------------------- SMS


def test_a_client_booked_after_their_number_replied_stop_is_not_texted_until_start(cloud, site) -> None:
    """The number opted out before the booking site had ever sent this client: no record of the client
    says so, the number's consent record does. UNSTOP gives consent back and texts resume."""
    text_in(cloud, "Stop!")
    [confirmation] = texts_to(PHONE)
    assert confirmation.startswith("Appointment texts: you are unsubscribed") and "START" in confirmation

    site.client("bijoux", "c-ana", phone=PHONE, email=ADDRESS)  # new: created after the STOP
    site.book("apt-1", "c-ana", "bijoux", VISIT, **INJECTION)
    cloud.run_until(utc(2026, 3, 9, 12))  # past the 48-hour reminder
    assert texts_to(PHONE) == [confirmation], "the opt-out confirmation stays the last text the number got"
    [reminder] = site.stored("apt-1").messages
    assert [(r.channel, r.status) for r in reminder.results] == [("sms", "skipped_opted_out"), ("email", "sent")]
    assert [m["Subject"] for m in emails_to(ADDRESS)] == ["Reminder: your appointment on Tue 10 Mar at 2:00 PM EDT"]

    text_in(cloud, "unstop")
    cloud.run_until(VISIT - timedelta(hours=1))  # past the morning-of reminder
    resubscribed, morning_of = texts_to(PHONE)[1:]
    assert resubscribed.startswith("Bijoux Med Spa: you are subscribed again")
    assert morning_of.startswith("Hi ") and morning_of.endswith("Reply STOP to opt out.")
    assert [m[:2] for m in site.messages("apt-1")] == [("reminder_48h", "sent"), ("reminder_morning_of", "sent")]
    assert inbound_errors(cloud) == []


def test_every_base_opt_out_word_works_at_every_location_and_start_undoes_it(cloud, site) -> None:
    phones = {}
    for n, location in enumerate(sorted(PACKS), start=1):
        phones[location] = f"+1407555{n:04d}" if location != "glow-hk" else "+85291234567"
        site.client(PACKS[location].spa.id, f"c-{n}", phone=phones[location])
        site.book(f"apt-{n}", f"c-{n}", location, cloud.now() + timedelta(days=5), **SERVICE[location])
    cloud.run_for(timedelta(minutes=5))  # the intake stores the clients and their visits
    store = site.store
    noisy = ["{}", " {}! ", "{}.", "\n{}\n"]
    for location, phone in phones.items():
        spa = PACKS[location].spa.id
        for word, form in zip(BASE_OPT_OUT, itertools.cycle(noisy)):
            text_in(cloud, form.format(word.capitalize() if len(word) % 2 else word), phone)
            assert store.consent.opted_out("sms", phone, spa), (location, word)
            text_in(cloud, "START", phone)
            assert not store.consent.opted_out("sms", phone, spa), (location, word)
        replies = texts_to(phone)
        assert len(replies) == 2 * len(BASE_OPT_OUT)
        name = PACKS[location].contact.name
        assert all(r.startswith(f"{name}: you are unsubscribed") for r in replies[0::2]), location
        assert all(r.startswith(f"{name}: you are subscribed again") for r in replies[1::2]), location
    assert inbound_errors(cloud) == []


def test_help_gets_the_spas_contact_line_and_each_keyword_one_text_even_if_delivered_twice(cloud, site) -> None:
    site.client("406medicalspa", "c-ned", phone=PHONE)
    site.book("apt-n", "c-ned", "406medicalspa", cloud.now() + timedelta(days=3), **SERVICE["406medicalspa"])
    cloud.run_for(timedelta(minutes=5))
    for body in ("HELP", "STOP", "START", "info"):
        message_id = text_in(cloud, body)
        text_in(cloud, body, message_id=message_id)  # End User Messaging / SNS deliver it again
    help_reply, stopped, started, info_reply = texts_to(PHONE)
    assert help_reply == ("406MedicalSpa: 406-287-6565, hello@406medicalspa.com. Appointment reminders and notices. "
                          "Msg & data rates may apply. Reply STOP to opt out.")
    assert info_reply == help_reply
    assert stopped.startswith("406MedicalSpa: you are unsubscribed") and started.startswith("406MedicalSpa: you are subscribed")
    assert len([i for i in cloud.runtime.invocations if i.function == "InboundSmsFunction"]) == 8
    assert inbound_errors(cloud) == []


# ---------------------------------------------------------------------------------------- email


def _unsubscribe_link(mail: email.message.EmailMessage) -> str:
    header = mail["List-Unsubscribe"]
    assert header.startswith("<https://") and header.endswith(">")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = header[1:-1]
    assert link in body_of(mail), "the body says how to unsubscribe, with the same link"
    return link


def test_an_email_carries_its_link_and_following_it_stops_that_spas_emails_to_that_address(cloud, site) -> None:
    site.client("bijoux", "c-eve", phone=None, email=ADDRESS)
    site.client("406medicalspa", "c-eve-406", phone=None, email=ADDRESS)
    site.book("apt-e", "c-eve", "bijoux", VISIT, **INJECTION)
    site.book("apt-f", "c-eve-406", "406medicalspa", utc(2026, 3, 10, 17), **SERVICE["406medicalspa"])
    cloud.run_until(utc(2026, 3, 9, 12))  # Bijoux's 48-hour reminder has gone, by email
    [reminder] = emails_to(ADDRESS)
    link = _unsubscribe_link(reminder)
    assert link.startswith(cloud.deployment.outputs["HttpApiUrl"] + "/unsubscribe?token=v1.")
    assert ADDRESS not in link and "ana" not in link.lower() and "bijoux" not in link

    page = cloud.http("GET", link)
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert "Bijoux Med Spa" in page.body and "a***@example.com" in page.body and ADDRESS not in page.body
    assert '<form method="post"' in page.body and 'name="List-Unsubscribe" value="One-Click"' in page.body
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert not site.store.consent.opted_out("email", ADDRESS, "bijoux"), "opening the page unsubscribes nobody"

    action = re.search(r'action="([^"]+)"', page.body).group(1).replace("&amp;", "&")
    body, headers = LocalCloud.form({"List-Unsubscribe": "One-Click"})  # the page's button
    done = cloud.http("POST", "/unsubscribe" + action, body=body, headers=headers)
    assert done.status == 200 and "will send no more emails" in done.body
    record = site.store.consent.get("email", ADDRESS, "bijoux")
    assert (record.opted_out, record.how, record.scope) == (True, "link", "bijoux")

    cloud.run_until(VISIT - timedelta(hours=1))  # Bijoux's morning-of reminder, 406's confirmation request
    morning_of = site.stored("apt-e").messages[-1]
    assert (morning_of.kind, [(r.channel, r.status) for r in morning_of.results]) == (
        "reminder_morning_of", [("sms", "skipped_no_contact"), ("email", "skipped_opted_out")])
    bijoux_reminder, *from_406 = emails_to(ADDRESS)  # 406 keeps its own consent: its emails still come
    assert [m["Subject"].split(":")[0].split(" ")[0] for m in from_406] == ["Please", "Cancelled"]
    assert all("406MedicalSpa" in body_of(m) and _unsubscribe_link(m) != link for m in from_406)


def test_a_mail_providers_one_click_post_unsubscribes_and_repeating_it_is_harmless(cloud, site) -> None:
    site.client("bijoux", "c-fay", phone=None, email=ADDRESS)
    site.book("apt-g", "c-fay", "bijoux", VISIT, **INJECTION)
    cloud.run_until(utc(2026, 3, 9, 12))
    link = _unsubscribe_link(emails_to(ADDRESS)[0])
    for _ in range(2):  # RFC 8058: the provider POSTs List-Unsubscribe=One-Click to the header's address
        response = cloud.http("POST", link, body="List-Unsubscribe=One-Click",
                              headers={"content-type": "application/x-www-form-urlencoded"})
        assert response.status == 200
    assert site.store.consent.opted_out("email", ADDRESS, "bijoux")
    cloud.run_until(VISIT - timedelta(hours=1))
    assert len(emails_to(ADDRESS)) == 1


def test_a_forged_or_damaged_link_is_refused_with_a_reason_and_no_echo(cloud, site) -> None:
    site.client("bijoux", "c-gil", phone=None, email=ADDRESS)
    site.book("apt-h", "c-gil", "bijoux", VISIT, **INJECTION)
    cloud.run_until(utc(2026, 3, 9, 12))
    link = _unsubscribe_link(emails_to(ADDRESS)[0])
    token = link.partition("token=")[2]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")  # well-formed, signed by nobody
    attempts = {  # path -> the reason the page gives
        f"/unsubscribe?token={flipped}": "this system did not issue it, or it has been altered",
        f"/unsubscribe?token={token[:20]}": "its token is not one this system issues",
        "/unsubscribe": "it carries no token",
        "/unsubscribe?token=%3Cscript%3Ealert(1)%3C/script%3E": "its token is not one this system issues",
    }
    for path, reason in attempts.items():
        for method in ("GET", "POST"):
            response = cloud.http(method, path, body="List-Unsubscribe=One-Click",
                                  headers={"content-type": "application/x-www-form-urlencoded"})
            assert (response.status, response.headers["content-type"]) == (400, "text/html; charset=utf-8"), path
            assert "This link cannot be used" in response.body and reason in response.body, path
            assert flipped not in response.body and token[:20] not in response.body and "script>" not in response.body
    assert site.store.consent.get("email", ADDRESS, "bijoux") is None
    assert cloud.http("GET", "/nowhere").status == 404
    assert cloud.http("GET", link).status == 200, "the real link still works"
