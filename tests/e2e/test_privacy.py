"""Privacy rights end to end in the local cloud: admin events on the bus and the admin CLI.

Jo books two visits at Bijoux with a card, gets the 48-hour reminder by SMS and email, cancels the first
one late with a reason (the $50 fee is charged through the fake Stripe, a strike is counted) and replies
STOP. Then the spa's admin exports Jo's data, corrects the phone and erases Jo, through the bus and
through ``medspa privacy``. After the erasure every DynamoDB table and the exports bucket are read back
whole and searched for Jo's phone numbers, email, card and the words of the cancellation reason.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends
from typer.testing import CliRunner

from localcloud import cli
from localcloud.clock import utc
from medspa.adapters.store import AppointmentStatus

pytestmark = pytest.mark.e2e

START = utc(2026, 3, 2, 15)  # Monday 10:00 EST
VISIT = utc(2026, 3, 10, 18)  # Tuesday 14:00 EDT
LATER_VISIT = utc(2026, 3, 24, 18)
INJECTION = dict(name="Botox forehead", category="injection_laser", minutes=30, price=45000)
PHONE, NEW_PHONE, EMAIL = "+14075550101", "+14075550177", "jo.tester@example.com"
FIRST_NAME = "Joanna-Marie"
REASON = "Chemo appointment moved"


@pytest.fixture
def cloud():
    from localcloud.cloud import LocalCloud

    with LocalCloud(START) as cloud:
        cloud.deploy({"LogLevel": "WARNING"})
        yield cloud


@pytest.fixture
def jo(cloud, site) -> dict:
    """Jo's history at Bijoux, up to the day after the late cancel; returns Jo's Stripe customer and card."""
    known = site.client("bijoux", "c-jo", card="visa", phone=PHONE, email=EMAIL, first_name=FIRST_NAME)
    site.book("apt-1", "c-jo", "bijoux", VISIT, **INJECTION)
    site.book("apt-2", "c-jo", "bijoux", LATER_VISIT, **INJECTION)
    cloud.run_until(VISIT - timedelta(hours=47, minutes=59))
    site.send("AppointmentCancelled", "apt-1", by="client", reason=REASON)
    cloud.run_for(timedelta(hours=1))
    cloud.client("sns").publish(TopicArn=cloud.deployment.outputs["InboundSmsTopicArn"], Message=json.dumps({
        "originationNumber": PHONE, "destinationNumber": "+18005550100", "messageKeyword": "KEYWORD",
        "messageBody": "STOP", "inboundMessageId": "in-jo-1", "previousPublishedMessageId": "out-1"}))
    cloud.run_for(timedelta(hours=1))
    assert site.ledger("apt-1") == [("late_cancel_fee", "charge", 5000, "succeeded")]
    assert ("reminder_48h", "sent") in [m[:2] for m in site.messages("apt-1")]
    return known["payment"]


def visits_booked(document: dict) -> dict:
    """The client part of the first event kept in the export's first appointment history."""
    return document["appointments"][0]["history"][0]["detail"]["client"]


def _admin(site, detail_type: str, **detail) -> None:
    site.send(detail_type, spa_id="bijoux", client_id="c-jo", **detail)
    site.cloud.run_for(timedelta(minutes=1))


def _everything_stored(cloud) -> str:
    """Every item of every DynamoDB table and every object in every bucket but the code's, as text."""
    dynamodb, s3, found = cloud.client("dynamodb"), cloud.client("s3"), []
    for table in dynamodb.list_tables()["TableNames"]:
        found += dynamodb.scan(TableName=table)["Items"]
    for bucket in s3.list_buckets()["Buckets"]:
        if bucket["Name"] != "localcloud-artifacts":
            for listed in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
                found.append(s3.get_object(Bucket=bucket["Name"], Key=listed["Key"])["Body"].read().decode())
    return json.dumps(found)


def _personal_values(payment: dict) -> tuple[str, ...]:
    return (PHONE, NEW_PHONE, EMAIL, FIRST_NAME, REASON, "Chemo", payment["stripe_customer_id"],
            payment["stripe_payment_method_id"])


def _texts_to(number: str) -> list[str]:
    return [text for _, (to, text, *_) in sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.items()
            if to == number]


def _quarantined(cloud, bodies: list[str] | None = None) -> list[tuple[str, str]]:
    sqs, url = cloud.client("sqs"), cloud.deployment.outputs["IntakeDeadLetterQueueUrl"]
    found = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                       VisibilityTimeout=0).get("Messages", []):
        for message in batch:
            found.append((json.loads(message["Body"])["detail-type"],
                          message["MessageAttributes"]["rejection_reason"]["StringValue"]))
            if bodies is not None:
                bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def _audit(cloud) -> list[dict]:
    table = cloud.deployment.outputs["PrivacyAuditTableName"]
    items = cloud.client("dynamodb").scan(TableName=table)["Items"]
    return sorted(({k: next(iter(v.values())) for k, v in item.items()} for item in items), key=lambda r: r["entry"])


def test_an_admin_exports_corrects_and_erases_a_client_through_the_bus(cloud, site, jo) -> None:
    bucket = cloud.deployment.outputs["PrivacyExportsBucketName"]

    _admin(site, "ClientDataExportRequested", admin_id="admin-maria", request_id="dsar-1")
    told = dict(site.inbox())
    exported = told["ClientDataExported"]
    assert (exported["bucket"], exported["key"]) == (bucket, "bijoux/c-jo/dsar-1.json")
    document = json.loads(cloud.client("s3").get_object(Bucket=bucket, Key=exported["key"])["Body"].read())
    assert document["format"] == "medspa.client-export/1"
    assert (document["profile"]["phone"], document["profile"]["email"]) == (PHONE, EMAIL)
    assert document["profile"]["first_name"] == FIRST_NAME
    assert "first_name" not in visits_booked(document)  # the profile holds the only copy
    assert document["profile"]["stripe_customer_id"] == jo["stripe_customer_id"]
    visits = {a["appointment_id"]: a for a in document["appointments"]}
    assert set(visits) == {"apt-1", "apt-2"}
    assert [h["detail_type"] for h in visits["apt-1"]["history"]] == ["AppointmentBooked", "AppointmentCancelled"]
    assert visits["apt-1"]["history"][1]["detail"]["reason"] == REASON
    assert "phone" not in visits["apt-1"]["history"][0]["detail"]["client"]  # the profile holds the only copy
    assert ("reminder_48h", "sent") in [(m["kind"], m["status"]) for m in visits["apt-1"]["messages"]]
    assert [(e["purpose"], e["amount"]["amount"], e["status"]) for e in document["ledger"]] == [
        ("late_cancel_fee", 5000, "succeeded")]
    assert [s["reason"] for s in document["strikes"]] == ["late_cancel"]
    assert [(c["channel"], c["opted_out"], c["how"]) for c in document["consent"]] == [("sms", True, "keyword")]

    _admin(site, "ClientContactCorrected", admin_id="admin-maria", request_id="dsar-2", phone=NEW_PHONE)
    assert site.store.clients.get("bijoux#c-jo").phone == NEW_PHONE

    run = site.stored("apt-2").execution_arn
    _admin(site, "ClientErasureRequested", admin_id="admin-maria", request_id="dsar-3")

    stored = _everything_stored(cloud)
    for personal in _personal_values(jo):
        assert personal not in stored, personal
    [customer] = [c for c in cloud.stripe.customers if c["id"] == jo["stripe_customer_id"]]
    assert customer == {"id": jo["stripe_customer_id"], "object": "customer", "deleted": True}
    assert site.ledger("apt-1") == [("late_cancel_fee", "charge", 5000, "succeeded")]  # the money stays
    assert cloud.stripe.charges_total() == 5000
    # apt-2 is two weeks ahead: its run was still a schedule, which the erasure deleted, so it never starts.
    assert run.endswith(":bijoux.apt-2-v1") and site.executions("apt-2") == []
    assert cloud.client("scheduler").list_schedules(NamePrefix="medspa-dev-run-")["Schedules"] == []
    later = site.stored("apt-2")
    assert later.status is AppointmentStatus.BOOKED and later.service.price.amount == 45000
    erased = site.store.clients.get("bijoux#c-jo")
    assert erased.erased_at == cloud.now() - timedelta(minutes=1) and erased.strike_count == 0
    assert [d["request_id"] for kind, d in site.inbox() if kind == "ClientErased"] == ["dsar-3"]
    audit = _audit(cloud)
    assert [(r["action"], r["requested_by"], r["request_id"], r["via"], r["outcome"]) for r in audit] == [
        ("export", "admin-maria", "dsar-1", "bus", "exported"),
        ("correct", "admin-maria", "dsar-2", "bus", "corrected"),
        ("erase", "admin-maria", "dsar-3", "bus", "erased")]
    assert {r["client_id"] for r in audit} == {"bijoux#c-jo"}

    site.book("apt-3", "c-jo", "bijoux", LATER_VISIT + timedelta(days=7), **INJECTION)
    site.send("CardUpdated", spa_id="bijoux", client_id="c-jo", stripe_customer_id=jo["stripe_customer_id"],
              stripe_payment_method_id=jo["stripe_payment_method_id"])
    cloud.run_for(timedelta(minutes=1))
    bodies: list[str] = []
    assert _quarantined(cloud, bodies) == [
        ("AppointmentBooked", "detail.client.id: this client's data was erased at their request"),
        ("CardUpdated", "detail.client_id: this client's data was erased at their request")]
    for personal in _personal_values(jo):  # the quarantine keeps what was refused, not who it was about
        assert not any(personal in body for body in bodies), personal
    assert site.stored("apt-3") is None
    assert site.store.clients.get("bijoux#c-jo").phone is None

    texted = len(_texts_to(NEW_PHONE))
    cloud.run_until(LATER_VISIT + timedelta(days=1))  # the second visit's reminders were due in this time
    assert site.stored("apt-2").messages == () and len(_texts_to(NEW_PHONE)) == texted == 0


def test_the_admin_cli_exports_corrects_and_erases_a_client_in_the_deployed_stack(cloud, site, jo, tmp_path) -> None:
    runner, out = CliRunner(), tmp_path / "jo.json"
    spa_and_client = ["--spa", "bijoux", "--client", "c-jo", "--by", "admin-lee"]

    exported = runner.invoke(cli.app, ["privacy", "export", *spa_and_client, "--request", "t-9", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    document = json.loads(out.read_text())
    assert document["profile"]["email"] == EMAIL and document["request"]["via"] == "cli"
    assert len(document["appointments"]) == 2 and len(document["ledger"]) == 1
    assert oct(out.stat().st_mode & 0o777) == "0o600"

    cloud.run_for(timedelta(minutes=5))  # the admin reads it, then types the next command
    corrected = runner.invoke(cli.app, ["privacy", "correct", *spa_and_client, "--email", "jo.new@example.com"])
    assert corrected.exit_code == 0 and "corrected: email" in corrected.output
    assert site.store.clients.get("bijoux#c-jo").email == "jo.new@example.com"

    cloud.run_for(timedelta(minutes=5))
    erased = runner.invoke(cli.app, ["privacy", "erase", *spa_and_client, "--yes"])
    assert erased.exit_code == 0, erased.output
    assert "stripe customers deleted 1" in erased.output and "ledger entries kept 1" in erased.output
    stored = _everything_stored(cloud)
    for personal in (*_personal_values(jo), "jo.new@example.com"):
        assert personal not in stored, personal
    assert next(c for c in cloud.stripe.customers if c["id"] == jo["stripe_customer_id"]).get("deleted") is True

    refused = runner.invoke(cli.app, ["privacy", "export", *spa_and_client])
    assert refused.exit_code == 1 and "was erased at their request" in refused.output
    unknown = runner.invoke(cli.app, ["privacy", "erase", "--spa", "bijoux", "--client", "c-nobody", "--by", "a",
                                      "--yes"])
    assert unknown.exit_code == 1 and "no client c-nobody at bijoux" in unknown.output
    assert [(r["action"], r["requested_by"], r["via"]) for r in _audit(cloud)] == [
        ("export", "admin-lee", "cli"), ("correct", "admin-lee", "cli"), ("erase", "admin-lee", "cli")]


def test_a_first_name_corrected_on_the_bus_greets_the_client_from_the_next_message_on(cloud, site) -> None:
    other = "+14075550177"
    site.client("bijoux", "c-kit", phone=other, first_name="Kitt")
    site.book("apt-k", "c-kit", "bijoux", VISIT, **INJECTION)
    site.send("ClientContactCorrected", spa_id="bijoux", client_id="c-kit", admin_id="admin-maria",
              request_id="dsar-k", first_name="Kit")
    cloud.run_until(VISIT - timedelta(hours=47))

    [reminder] = [t for t in _texts_to(other) if "Kit" in t]
    assert reminder.startswith("Hi Kit,") and "Kitt" not in reminder
    assert site.store.clients.get("bijoux#c-kit").first_name == "Kit"
    [record] = [r for r in _audit(cloud) if r["request_id"] == "dsar-k"]
    assert (record["action"], record["outcome"]) == ("correct", "corrected") and "Kit" not in json.dumps(record)
