"""The SNS SMS and SES v2 email senders against moto, through the notification service."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from medspa.adapters.messaging import (
    AwsMessenger,
    InvalidRecipient,
    SesEmailSender,
    SnsSmsSender,
)
from medspa.domain.client import Channel, Client
from medspa.adapters.store.consent import InMemoryConsent
from medspa.messages import AppointmentContext, load_templates
from medspa.services.notifications import NotificationService
from medspa.services.unsubscribe import EmailUnsubscribe
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from tests.support.packs import BIJOUX, GLOW, PACKS

REGION = "us-east-1"
SENDER = "appointments@bijouxmedspa.example"
START = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)  # Tue 10 Mar 2:00 PM EDT
NOON_EDT = datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
UNSUBSCRIBE = "https://api.example.com/unsubscribe?token=v1." + "s" * 43


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def sns(aws: None):
    return boto3.client("sns", region_name=REGION)


@pytest.fixture
def sesv2(aws: None):
    client = boto3.client("sesv2", region_name=REGION)
    client.create_email_identity(EmailIdentity=SENDER)
    return client


def sms_sent() -> list[tuple[str, str]]:
    return list(sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages.values())


def mail_sent() -> list[email.message.EmailMessage]:
    """What SES received, parsed: the senders send MIME (``Content.Raw``), which moto keeps as sent."""
    return [email.message_from_string(m.raw_data, policy=email.policy.default)
            for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages]


def text_of(mail: email.message.EmailMessage) -> str:
    return mail.get_body(("plain",)).get_content()


def notifications(messenger: AwsMessenger) -> NotificationService:
    consent = InMemoryConsent()
    links = EmailUnsubscribe(consent, lambda: b"integration-test-secret-32-bytes!!", "https://api.example.com/unsubscribe",
                             {p.spa.id: p.spa.name for p in PACKS.values()})
    return NotificationService(messenger, load_templates(), PACKS, consent=consent, unsubscribe=links)


def client(pack, **overrides) -> Client:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    fields = {"client_id": f"{pack.spa.id}#c-1", "spa_id": pack.spa.id, "phone": "+14075550123",
              "email": "ana@example.com", "sms_opt_out": False, "email_opt_out": False, "stripe_customer_id": None,
              "default_payment_method_id": None, "strikes": (), "prepay_required": False, "prepay_set_at": None,
              "prepay_cleared_by": None, "prepay_cleared_at": None, "outstanding": {}, "credit": {},
              "created_at": now, "updated_at": now}
    return Client(**(fields | overrides))


def ctx(pack, **extra) -> AppointmentContext:
    terms = {"cancel_by": START - timedelta(hours=pack.cancellation.window_hours), "late_cancel_fee": pack.money(5000)}
    return AppointmentContext(appointment_id="a-1", location_id=pack.location_id, starts_at=START,
                              client_first_name="Ana", **(terms | extra))


@pytest.fixture
def service(sns, sesv2) -> NotificationService:
    return notifications(AwsMessenger(SnsSmsSender(sns), SesEmailSender(sesv2, SENDER)))


def test_sms_lands_in_sns_with_the_e164_number_and_text(sns) -> None:
    message_id = SnsSmsSender(sns, sender_id="Bijoux").send_sms("+14075550123", "Hello\nReply STOP to opt out.")
    assert message_id
    assert sms_sent() == [("+14075550123", "Hello\nReply STOP to opt out.")]


def test_sns_sender_refuses_a_number_that_is_not_e164(sns) -> None:
    with pytest.raises(InvalidRecipient) as err:
        SnsSmsSender(sns).send_sms("407-555-0123", "hi")
    assert "407" not in str(err.value)
    assert sms_sent() == []


def test_email_lands_in_ses_after_verifying_the_identity(sesv2) -> None:
    message_id = SesEmailSender(sesv2, SENDER).send_email("ana@example.com", "Subject", "Body text",
                                                          unsubscribe_url=UNSUBSCRIBE)
    assert message_id
    [record] = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    assert record.source == SENDER and record.destinations == ["ana@example.com"]  # one copy, from the To header
    [sent] = mail_sent()
    assert (sent["From"], sent["To"], sent["Subject"]) == (SENDER, "ana@example.com", "Subject")
    assert text_of(sent).strip() == "Body text"


def test_every_email_has_one_click_unsubscribe_headers(sesv2) -> None:
    SesEmailSender(sesv2, SENDER).send_email("ana@example.com", "Réservation 預約", "Body", unsubscribe_url=UNSUBSCRIBE)
    [sent] = mail_sent()
    assert sent["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sent["Subject"] == "Réservation 預約"  # encoded on the wire (RFC 2047), intact when read


def test_an_unsubscribe_link_must_be_https(sesv2) -> None:
    with pytest.raises(ValueError, match="https"):
        SesEmailSender(sesv2, SENDER).send_email("ana@example.com", "S", "B", unsubscribe_url="http://x.example/u")
    assert mail_sent() == []


def test_a_reminder_is_one_sms(service: NotificationService) -> None:
    results = service.notify(client(BIJOUX), "reminder_48h", ctx(BIJOUX), NOON_EDT)
    assert [(r.channel, r.status) for r in results] == [(Channel.SMS, "sent")]
    [(phone, text)] = sms_sent()
    assert phone == "+14075550123"
    assert text.startswith("Hi Ana, Bijoux Med Spa reminds you of your appointment on Tue 10 Mar at 2:00 PM EDT.")
    assert text.endswith("Reply STOP to opt out.")
    assert mail_sent() == []


def test_a_fee_notice_goes_by_sms_and_email(service: NotificationService) -> None:
    results = service.notify(client(GLOW, phone="+85291234567"), "no_show_fee_charged",
                             ctx(GLOW, fee=GLOW.money(50000)), datetime(2026, 3, 9, 4, 0, tzinfo=UTC))  # noon HKT
    assert [r.status for r in results] == ["sent", "sent"]
    [(phone, text)] = sms_sent()
    assert phone == "+85291234567" and "HK$500.00" in text and "Wed 11 Mar at 2:00 AM HKT" in text
    [mail] = mail_sent()
    assert mail["Subject"] == "Missed-appointment fee of HK$500.00"
    body = text_of(mail)
    assert "HK$500.00" in body and "unsubscribe" in body.casefold()
    link = mail["List-Unsubscribe"].strip("<>")
    assert link.startswith("https://api.example.com/unsubscribe?token=v1.") and link in body
    assert {r.message_id for r in results} >= {ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages[0].id}


def test_an_opted_out_client_gets_nothing(service: NotificationService) -> None:
    results = service.notify(client(BIJOUX, sms_opt_out=True, email_opt_out=True), "no_show_fee_charged",
                             ctx(BIJOUX, fee=BIJOUX.money(5000)), NOON_EDT)
    assert [r.status for r in results] == ["skipped_opted_out", "skipped_opted_out"]
    assert sms_sent() == [] and mail_sent() == []


def test_sms_opt_out_still_allows_email(service: NotificationService) -> None:
    service.notify(client(BIJOUX, sms_opt_out=True), "reminder_morning_of", ctx(BIJOUX), NOON_EDT)
    assert sms_sent() == []
    [mail] = mail_sent()
    assert mail["Subject"] == "Reminder: your appointment on Tue 10 Mar at 2:00 PM EDT"


def test_nothing_is_sent_in_quiet_hours(service: NotificationService) -> None:
    night = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # 23:00 EDT
    results = service.notify(client(BIJOUX), "auto_cancelled", ctx(BIJOUX), night)
    assert {r.status for r in results} == {"deferred_quiet_hours"}
    assert sms_sent() == [] and mail_sent() == []


def test_an_unverified_sender_fails_per_channel_and_sms_still_goes(sns, aws) -> None:
    unverified = AwsMessenger(SnsSmsSender(sns), SesEmailSender(boto3.client("sesv2", region_name=REGION),
                                                                "nobody@unverified.example"))
    results = notifications(unverified).notify(client(BIJOUX), "prepay_required", ctx(BIJOUX), NOON_EDT)
    assert [(r.channel, r.status) for r in results] == [(Channel.SMS, "sent"), (Channel.EMAIL, "failed")]
    assert results[1].error == "MessageRejected"
    assert len(sms_sent()) == 1 and mail_sent() == []


def test_sms_is_published_as_transactional_with_the_sender_id(sns) -> None:
    seen: list[dict] = []
    sns.meta.events.register("provide-client-params.sns.Publish", lambda params, **_: seen.append(params))
    SnsSmsSender(sns, sender_id="Bijoux").send_sms("+14075550123", "hi")
    attributes = seen[0]["MessageAttributes"]
    assert attributes["AWS.SNS.SMS.SMSType"]["StringValue"] == "Transactional"
    assert attributes["AWS.SNS.SMS.SenderID"]["StringValue"] == "Bijoux"
