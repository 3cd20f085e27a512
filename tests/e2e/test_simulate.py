"""The scenario runner (``medspa simulate``) and its report, against template.yaml in the local cloud.

Only what the system does today is asserted (executions, reschedules, quarantine, Stripe set-up, the report's
shape); reminders, fees and strikes get their assertions with the lifecycle that produces them.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from localcloud.cli import app
from localcloud.clock import utc
from localcloud.cloud import REPO_ROOT, LocalCloud
from localcloud.simulate import (
    REPORT_KEYS,
    SCENARIOS_DIR,
    ScenarioError,
    SentMessageTap,
    load_scenario,
    mask,
    messages_from,
    run_scenario,
    validate_scenario,
)
from medspa.policy.loader import load_packs

pytestmark = pytest.mark.e2e

SCENARIOS = sorted(SCENARIOS_DIR.glob("*.json"))
DOC = REPO_ROOT / "docs" / "simulate.md"


def _booked(appointment_id: str, version: int = 1, **detail) -> dict:
    return {"spa_id": "bijoux", "appointment_id": appointment_id, "booking_version": version, "location_id": "bijoux",
            "client": {"id": "c-1"},
            "service": {"name": "Botox", "category": "injection_laser", "duration_minutes": 30,
                        "price": {"amount": 42000, "currency": "USD"}},
            "starts_at": "2026-03-10T14:00:00-04:00", "payment": {"card_on_file": True}} | detail


SMALL = {
    "name": "small",
    "description": "One Bijoux visit moved by two days; a reply by SMS; a malformed booking.",
    "start": "2026-03-05T15:00:00Z",
    "until": "2026-03-13T00:00:00Z",
    "clients": [{"spa_id": "bijoux", "id": "c-1", "card": "visa", "phone": "+14075550199", "sms_opt_in": True}],
    "events": [
        {"at": "2026-03-05T15:05:00Z", "detail_type": "AppointmentBooked", "detail": _booked("apt-s1")},
        {"at": "2026-03-06T15:00:00Z", "detail_type": "AppointmentRescheduled", "detail": {
            "spa_id": "bijoux", "appointment_id": "apt-s1", "booking_version": 2,
            "starts_at": "2026-03-12T14:00:00-04:00"}},
        {"at": "2026-03-07T15:00:00Z", "inbound_sms": {"from": "+14075550199", "body": "YES"}},
        {"at": "2026-03-07T16:00:00Z", "detail_type": "AppointmentBooked", "expect_rejected": True, "detail": _booked(
            "apt-s2", event_id="bad-1", occurred_at="2026-03-07T11:00:00-05:00",
            service={"name": "Botox", "category": "injection_laser", "duration_minutes": 30,
                     "price": {"amount": 420.5, "currency": "USD"}})},
    ],
}


# ------------------------------------------------------------------ the sample scenarios


def test_there_is_one_sample_scenario_per_seed_location():
    assert {path.stem for path in SCENARIOS} == set(load_packs())


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_each_sample_scenario_parses_and_every_event_validates(path: Path):
    inputs = validate_scenario(path)  # raises ScenarioError naming the entry and field on any typo
    assert inputs, "a scenario with no events"
    versions: dict[str, list[int]] = {}
    for item in inputs:
        if item.kind == "event" and not item.expect_rejected and "booking_version" in item.detail:
            versions.setdefault(item.detail["appointment_id"], []).append(item.detail["booking_version"])
    assert 3 <= len(versions) <= 6, "each sample tells a short story of 3 to 6 appointments"
    for appointment, seen in versions.items():
        assert seen == sorted(set(seen)), f"{appointment}: booking_version must increase with every event"


def test_a_daylight_saving_change_falls_inside_a_sample_scenario():
    packs = load_packs()

    def crosses(path: Path) -> bool:
        scenario = load_scenario(path)
        last = scenario.entries[-1]["at_utc"]
        zones = {ZoneInfo(packs[e["detail"]["location_id"]].location.time_zone)
                 for e in scenario.entries if e.get("detail_type") == "AppointmentBooked"}
        return any(scenario.start.astimezone(z).utcoffset() != last.astimezone(z).utcoffset() for z in zones)

    assert any(crosses(path) for path in SCENARIOS)


def test_a_typo_in_a_scenario_fails_fast_with_the_entry_and_field_named():
    typo = copy.deepcopy(SMALL)
    typo["events"][0]["detail"]["strats_at"] = typo["events"][0]["detail"].pop("starts_at")
    with pytest.raises(ScenarioError, match=r"events\[0\].*detail\.(starts_at|strats_at)"):
        validate_scenario(typo)
    unknown_card = copy.deepcopy(SMALL)
    unknown_card["clients"][0]["card"] = "platinum"
    with pytest.raises(ScenarioError, match=r"clients\[0\]\.card"):
        load_scenario(unknown_card)
    accepted = copy.deepcopy(SMALL)
    accepted["events"][3]["detail"]["service"]["price"]["amount"] = 42000
    with pytest.raises(ScenarioError, match="expect_rejected"):
        validate_scenario(accepted)


def test_the_runner_fills_occurred_at_event_id_contact_and_stripe_ids():
    booked = validate_scenario(SMALL)[0].detail
    assert booked["occurred_at"] == "2026-03-05T15:05:00Z" and booked["event_id"] == "small-0"
    assert booked["client"] == {"id": "c-1", "phone": "+14075550199", "sms_opt_in": True}
    assert booked["payment"]["stripe_customer_id"].startswith("cus_")
    assert booked["payment"]["stripe_payment_method_id"].startswith("pm_")


# ------------------------------------------------------------------ a run


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("simulate") / "small.json"
    result = run_scenario(SMALL, path)
    assert json.loads(path.read_text()) == result
    return result


def test_the_report_has_the_documented_sections(report):
    assert tuple(report) == REPORT_KEYS
    documented = DOC.read_text()
    for key in REPORT_KEYS:
        assert f"`{key}`" in documented, f"docs/simulate.md does not describe the report's {key!r}"
    assert (report["started_at"], report["ended_at"]) == ("2026-03-05T15:00:00Z", "2026-03-13T00:00:00Z")
    assert report["scenario"]["name"] == "small"
    assert report["real_seconds"] > 0


def test_every_appointment_has_its_executions_and_a_reschedule_stops_the_old_one_with_a_cause(report):
    (appointment,) = report["appointments"]  # the malformed booking never became an appointment
    assert appointment["appointment_id"] == "apt-s1"
    assert appointment["booking_version"] == 2
    assert appointment["starts_at"] == "2026-03-12T18:00:00Z"
    assert appointment["starts_at_local"] == "2026-03-12T14:00:00-04:00"
    old, new = appointment["executions"]
    assert (old["name"], new["name"]) == ("bijoux.apt-s1-v1", "bijoux.apt-s1-v2")
    assert old["status"] == "ABORTED" and old["error"] and old["cause"]
    assert old["stopped_at"] == "2026-03-06T15:00:00Z"
    assert new["state_transitions"] == len(new["states"]) > 0
    summary = report["summary"]
    assert summary["appointments_simulated"] == 1 and summary["executions"] == 2
    assert summary["state_transitions"] == old["state_transitions"] + new["state_transitions"]


def test_inputs_quarantine_and_clients_are_reported_without_contact_details(report):
    kinds = [item["kind"] for item in report["inputs"]]
    assert kinds == ["event", "event", "inbound_sms", "event"]
    sms = report["inputs"][2]
    assert sms["from"] == "+1******0199" and sms["appointment_id"] == "apt-s1"
    (quarantined,) = report["quarantined"]
    assert quarantined["appointment_id"] == "apt-s2"
    assert "detail.service.price.amount" in quarantined["rejection_reason"]
    (client,) = report["clients"]
    assert client["client_id"] == "bijoux#c-1" and client["card"] == "visa"
    assert client["stripe_customer_id"].startswith("cus_")
    assert "+14075550199" not in json.dumps(report)


def test_the_report_is_json_and_round_trips(report):
    assert json.loads(json.dumps(report)) == report


def test_medspa_simulate_writes_the_report(tmp_path):
    scenario = tmp_path / "small.json"
    scenario.write_text(json.dumps(SMALL))
    out = tmp_path / "out" / "report.json"
    out.parent.mkdir()
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--report", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert tuple(written) == REPORT_KEYS
    assert "apt-s1" in result.output and "summary" in result.output


def test_medspa_simulate_names_a_malformed_scenario(tmp_path):
    scenario = tmp_path / "bad.json"
    scenario.write_text(json.dumps({**SMALL, "evnets": []}))
    result = CliRunner().invoke(app, ["simulate", str(scenario)])
    assert result.exit_code == 2 and "evnets" in result.output


# ------------------------------------------------------------------ messages


def test_the_tap_stamps_each_sms_and_email_with_the_virtual_time_it_was_sent():
    with LocalCloud(utc(2026, 3, 5, 15)) as cloud:
        tap = SentMessageTap(cloud.region)
        cloud.clock.add_idle_hook(tap)
        cloud.client("sns").publish(PhoneNumber="+14075550123", Message="See you tomorrow")
        cloud.run_for(timedelta(hours=2))
        ses = cloud.client("sesv2")
        ses.create_email_identity(EmailIdentity="front-desk@example.com")
        ses.send_email(FromEmailAddress="front-desk@example.com", Destination={"ToAddresses": ["ana@example.com"]},
                       Content={"Simple": {"Subject": {"Data": "Your visit"}, "Body": {"Text": {"Data": "Hello"}}}})
        cloud.run_for(timedelta(minutes=1))
    sms, email = tap.sent
    assert (sms["at"], sms["channel"], sms["to"], sms["text"]) == (utc(2026, 3, 5, 15), "sms", "+14075550123",
                                                                  "See you tomorrow")
    assert (email["at"], email["channel"], email["to"], email["subject"], email["text"]) == (
        utc(2026, 3, 5, 17), "email", "ana@example.com", "Your visit", "Hello")


def test_messages_join_the_appointment_log_by_message_id_and_keep_unlogged_ones():
    at = datetime(2026, 3, 8, 18, tzinfo=UTC)
    recorded = [{"at": at, "channel": "sms", "message_id": "m-1", "to": "+14075550123", "subject": None,
                 "text": "Reminder: Botox on Tue 10 Mar at 14:00"},
                {"at": at, "channel": "sms", "message_id": "m-2", "to": "+14075550124", "subject": None, "text": "Hi"}]
    log = [{"key": "reminder_48h", "kind": "reminder_48h", "due_at": at, "status": "sent", "sent_at": at,
            "results": [{"channel": "sms", "status": "sent", "message_id": "m-1", "error": None},
                        {"channel": "email", "status": "skipped_no_contact", "message_id": None, "error": None}]}]
    appointment = SimpleNamespace(appointment_id="bijoux#apt-1", client_id="bijoux#c-1", messages=log)
    logged, unlogged, skipped = sorted(messages_from([appointment], recorded), key=lambda m: m["message_id"] or "~")
    assert (logged["appointment_id"], logged["kind"], logged["to"], logged["status"]) == (
        "apt-1", "reminder_48h", "+1******0123", "sent")
    assert (unlogged["appointment_id"], unlogged["kind"], unlogged["text"]) == (None, None, "Hi")
    assert (skipped["channel"], skipped["status"], skipped["text"]) == ("email", "skipped_no_contact", None)
    before_the_log = messages_from([SimpleNamespace(appointment_id="bijoux#apt-1", client_id="bijoux#c-1")], recorded)
    assert [m["kind"] for m in before_the_log] == [None, None]


def test_contacts_are_masked():
    assert mask("+14075550123") == "+1******0123"
    assert mask("+85290000101") == "+8******0101"
    assert mask("ana.morales@example.com") == "a***@example.com"
    assert mask(None) is None


def test_quarantines_days_apart_are_all_reported():
    """The runner watches the quarantine without ChangeMessageVisibility, which SQS refuses on a message sent
    more than 12 hours before: a second malformed event days after the first once crashed the runner."""
    bad = {"name": "Botox", "category": "injection_laser", "duration_minutes": 30,
           "price": {"amount": 420.5, "currency": "USD"}}
    scenario = {
        "name": "two-quarantines", "start": "2026-03-05T15:00:00Z", "until": "2026-03-12T00:00:00Z",
        "clients": [{"spa_id": "bijoux", "id": "c-1", "card": "visa"}],
        "events": [{"at": at, "detail_type": "AppointmentBooked", "expect_rejected": True,
                    "detail": _booked(f"apt-q{i}", event_id=f"bad-{i}", occurred_at=at, service=bad)}
                   for i, at in enumerate(("2026-03-05T16:00:00Z", "2026-03-07T16:00:00Z", "2026-03-10T09:00:00Z"))],
    }
    report = run_scenario(scenario)
    assert [q["appointment_id"] for q in report["quarantined"]] == ["apt-q0", "apt-q1", "apt-q2"]
