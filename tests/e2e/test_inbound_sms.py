"""Inbound SMS through the deployed path: SNS topic -> subscription -> InboundSmsFunction (in-process).

moto's SNS backend delivers a topic message to a Lambda subscription through
``LambdaFunction._invoke_lambda`` (the local cloud's seam); moto's CloudFormation cannot create the
``AWS::SNS::Subscription`` SAM makes of the function's SNS event, so the local cloud's deploy creates
it through the SNS API (``Deployment.completed``). Delivery is synchronous inside ``Publish``.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from medspa.adapters.store import AppointmentBooking, ClientProfile, Store
from medspa.domain.appointment import Service
from medspa.money import Money

pytestmark = pytest.mark.e2e

PHONE = "+14075550123"


def _publish(cloud, **message) -> None:
    payload = {"originationNumber": PHONE, "destinationNumber": "+18005550100", "messageKeyword": "KEYWORD",
               "inboundMessageId": "in-1", "previousPublishedMessageId": "out-1"} | message
    cloud.client("sns").publish(TopicArn=cloud.deployment.outputs["InboundSmsTopicArn"], Message=json.dumps(payload))


def _inbound_invocations(cloud) -> list:
    return [i for i in cloud.runtime.invocations if i.function == "InboundSmsFunction"]


@pytest.fixture
def client_with_a_visit(cloud, store: Store) -> str:
    now = cloud.now()
    for client_id in ("406medicalspa#c-4", "bijoux#c-1"):
        store.clients.save_profile(ClientProfile(client_id=client_id, spa_id=client_id.split("#")[0], phone=PHONE,
                                                 email="ana@example.com"), now)
    store.appointments.upsert_from_booking(AppointmentBooking(
        appointment_id="406medicalspa#apt-406-1", client_id="406medicalspa#c-4", location_id="406medicalspa",
        policy_version="406medicalspa-2025.1",
        service=Service(name="Facial", category="esthetician", duration_minutes=60,
                        price=Money(amount=15_000, currency="USD")),
        starts_at=now + timedelta(hours=20), booking_version=1, event_id="evt-1",
    ), now)
    return "406medicalspa#apt-406-1"


def test_the_subscription_is_created_and_points_at_the_function(cloud) -> None:
    deployment = cloud.deployment
    [logical_id] = [r for r, kind in deployment.completed.items() if kind == "AWS::SNS::Subscription"]
    [subscription] = cloud.client("sns").list_subscriptions_by_topic(
        TopicArn=deployment.outputs["InboundSmsTopicArn"])["Subscriptions"]
    assert subscription["Protocol"] == "lambda"
    assert subscription["Endpoint"].endswith(":function:" + deployment.functions["InboundSmsFunction"])
    assert deployment.physical(logical_id) == subscription["SubscriptionArn"]


def test_a_confirm_reply_records_the_clients_confirmation(cloud, store: Store, client_with_a_visit: str) -> None:
    cloud.run_for(timedelta(hours=1))
    _publish(cloud, messageBody="Yes")
    appointment = store.appointments.get(client_with_a_visit)
    assert appointment.client_confirmed_at == cloud.now()
    assert appointment.client_confirmed_via == "sms"
    assert [i.errored for i in _inbound_invocations(cloud)] == [False]


def test_stop_opts_the_number_out_at_every_spa_and_start_back_in(cloud, store: Store, client_with_a_visit: str) -> None:
    _publish(cloud, messageBody="STOP", inboundMessageId="in-stop")
    assert [store.consent.opted_out("sms", PHONE, c.spa_id) for c in store.clients.find_by_phone(PHONE)] == [True, True]
    _publish(cloud, messageBody="start", inboundMessageId="in-start")
    assert [store.consent.opted_out("sms", PHONE, c.spa_id) for c in store.clients.find_by_phone(PHONE)] == [False, False]
    assert store.appointments.get(client_with_a_visit).client_confirmed_at is None


def test_a_malformed_message_is_skipped_not_failed(cloud, store: Store, client_with_a_visit: str) -> None:
    cloud.client("sns").publish(TopicArn=cloud.deployment.outputs["InboundSmsTopicArn"], Message="STOP")
    _publish(cloud, originationNumber="not-a-number", messageBody="STOP")
    assert [i.errored for i in _inbound_invocations(cloud)] == [False, False]
    assert store.consent.get("sms", PHONE, "bijoux") is None
