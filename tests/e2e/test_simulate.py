"""The scenario runner (``medspa simulate``) and its report, against template.yaml in the local cloud.

Only what the system does today is asserted (executions, reschedules, quarantine, Stripe set-up, the report's
shape); reminders, fees and strikes get their assertions with the lifecycle that produces them.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from localcloud.cli import app
from localcloud.clock import utc
from localcloud.cloud import REPO_ROOT, LocalCloud
from localcloud.report_html import render_html, write_html
from localcloud.simulate import (
    REPORT_KEYS,
    SCENARIOS_DIR,
    QueueRecorder,
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


def test_there_is_one_sample_scenario_per_seed_location_and_each_other_story_names_its_location():
    stems, locations = {path.stem for path in SCENARIOS}, set(load_packs())
    assert locations <= stems
    for extra in stems - locations:
        assert any(extra.startswith(f"{location}-") for location in locations), extra


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_each_sample_scenario_parses_and_every_event_validates(path: Path):
    inputs = validate_scenario(path)  # raises ScenarioError naming the entry and field on any typo
    assert inputs, "a scenario with no events"
    versions: dict[str, list[int]] = {}
    memberships: dict[str, list[int]] = {}
    for item in inputs:
        if item.kind == "event" and not item.expect_rejected and "booking_version" in item.detail:
            versions.setdefault(item.detail["appointment_id"], []).append(item.detail["booking_version"])
        if item.kind == "event" and not item.expect_rejected and "membership_version" in item.detail:
            memberships.setdefault(item.detail["membership_id"], []).append(item.detail["membership_version"])
    assert 3 <= len(versions) <= 6 or 3 <= len(memberships) <= 8, (
        "each sample tells a short story of 3 to 6 appointments (or 3 to 8 memberships)")
    for appointment, seen in versions.items():
        assert seen == sorted(set(seen)), f"{appointment}: booking_version must increase with every event"
    for membership, seen in memberships.items():
        assert seen == sorted(set(seen)), f"{membership}: membership_version must increase with every event"


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


def test_every_appointment_has_its_executions_and_a_reschedule_before_the_run_starts_replaces_it(report):
    """The booking's run was still a schedule when the reschedule came: only the new version's run ever starts,
    6 hours before its card check (10:00 EDT, 3 days before the visit)."""
    (appointment,) = report["appointments"]  # the malformed booking never became an appointment
    assert appointment["appointment_id"] == "apt-s1"
    assert appointment["booking_version"] == 2
    assert appointment["starts_at"] == "2026-03-12T18:00:00Z"
    assert appointment["starts_at_local"] == "2026-03-12T14:00:00-04:00"
    (run,) = appointment["executions"]
    assert run["name"] == "bijoux.apt-s1-v2" and run["started_at"].startswith("2026-03-09T08:00")
    assert run["state_transitions"] == len(run["states"]) > 0
    summary = report["summary"]
    assert summary["appointments_simulated"] == 1 and summary["executions"] == 1
    assert summary["state_transitions"] == run["state_transitions"]


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
    page = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--report", str(out), "--html", str(page)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert tuple(written) == REPORT_KEYS
    assert "apt-s1" in result.output and "summary" in result.output
    assert "fees assessed" in result.output and "inputs: 2 applied, 1 quarantined, 1 delivered (of 4)" in result.output
    cells = _Cells()
    cells.feed(page.read_text(encoding="utf-8"))
    assert cells.statuses == {"apt-s1": written["appointments"][0]["status"]}


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


def test_the_quarantine_recorder_reads_every_arrival_once_however_they_bunch_and_deletes_nothing():
    """The rule, without a deployment: dozens of messages at one instant, more between two polls of that
    instant, the old ones showing again 12 hours on, and messages past retention that moto keeps and
    stops a receive at; each message is recorded once and the watched queue keeps all of them."""
    with LocalCloud(utc(2026, 3, 5, 15)) as cloud:
        sqs = cloud.client("sqs")
        url = sqs.create_queue(QueueName="watched", Attributes={"MessageRetentionPeriod": "86400"})["QueueUrl"]
        recorder = QueueRecorder(sqs, url, consume=False)
        cloud.clock.add_idle_hook(recorder)

        def send(tag: str, count: int) -> None:
            for n in range(count):
                sqs.send_message(QueueUrl=url, MessageBody=f"{tag}-{n}")

        send("a", 25)
        recorder.poll(cloud.now())
        send("b", 30)  # the same instant, after a poll that hid the first 25
        recorder.poll(cloud.now())
        recorder.poll(cloud.now())
        assert len(recorder.messages) == 55
        cloud.run_for(timedelta(hours=13))  # the 55 show again and are read again, once each
        send("c", 1)
        cloud.run_for(timedelta(days=2))  # all past retention: moto keeps them, and stops a receive at them
        send("d", 12)
        cloud.run_for(timedelta(minutes=1))
        bodies = [m["Body"] for m in recorder.messages.values()]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert sorted(bodies) == sorted([f"a-{n}" for n in range(25)] + [f"b-{n}" for n in range(30)] + ["c-0"]
                                    + [f"d-{n}" for n in range(12)])
    assert int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 68


# ------------------------------------------------------------------ one-line errors, before anything is deployed


def _mutated(change) -> dict:
    scenario = copy.deepcopy(SMALL)
    change(scenario)
    return scenario


def _card_update(client_id: str, **entry) -> dict:
    return {"at": "2026-03-08T00:00:00Z", "detail_type": "CardUpdated", "detail": {"spa_id": "bijoux",
                                                                                    "client_id": client_id}} | entry


SCENARIO_ERRORS = [
    ("missing-start", lambda s: s.pop("start"), r"^start: required"),
    ("bad-start", lambda s: s.update(start="next Tuesday"), r"^start: 'next Tuesday' is not an ISO-8601 time"),
    ("start-without-offset", lambda s: s.update(start="2026-03-05T15:00:00"), r"^start: .* has no offset"),
    ("bad-until", lambda s: s.update(until=20260313), r"^until: 20260313 is not a string"),
    ("until-before-last", lambda s: s.update(until="2026-03-06T00:00:00Z"), r"^until: before events\[3\]\.at"),
    ("unknown-top-level-key", lambda s: s.update(evnets=[]), r"^unknown top-level key 'evnets'"),
    ("events-not-a-list", lambda s: s.update(events={}), r"^events: must be a list"),
    ("unknown-entry-key", lambda s: s["events"][1].update(colour="red"), r"^events\[1\]: unknown key 'colour'"),
    ("entry-not-an-object", lambda s: s["events"].append("x"), r"^events\[4\]: an entry is a JSON object"),
    ("at-missing", lambda s: s["events"][2].pop("at"), r"^events\[2\]\.at: required"),
    ("unknown-detail-type", lambda s: s["events"][1].update(detail_type="AppointmentMoved"),
     r"^events\[1\]\.detail_type: 'AppointmentMoved' is not a detail-type of the catalogue"),
    ("catalogue", lambda s: s["events"][0]["detail"].pop("starts_at"), r"^events\[0\]\.detail\.starts_at: "),
    ("unknown-spa", lambda s: s["events"][0]["detail"].update(spa_id="acme"),
     r"^events\[0\]\.detail\.spa_id: 'acme' is not a spa served here"),
    ("unknown-location", lambda s: s["events"][0]["detail"].update(location_id="bijoux-miami"),
     r"^events\[0\]\.detail\.location_id: 'bijoux-miami' is not a location of bijoux"),
    ("another-spas-location", lambda s: s["events"][0]["detail"].update(location_id="glow-hk"),
     r"^events\[0\]\.detail\.location_id: 'glow-hk' is a location of glow, not of bijoux"),
    ("unauthorised-source", lambda s: s["events"][1].update(source="booking-site.acme"),
     r"^events\[1\]\.source: 'booking-site\.acme' is not authorised to speak for bijoux"),
    ("unrouted-source", lambda s: s["events"][1].update(source="acme"), r"^events\[1\]\.source: 'acme' does not start"),
    ("client-spa", lambda s: s["clients"][0].update(spa_id="acme"), r"^clients\[0\]\.spa_id: 'acme' is not a spa"),
    ("client-card", lambda s: s["clients"][0].update(card="platinum"), r"^clients\[0\]\.card: 'platinum' is not"),
    ("booked-client-has-no-card", lambda s: s["clients"][0].pop("card"),
     r"^events\[0\]\.detail\.payment\.card_on_file: true, but client 'c-1' of bijoux has no card"),
    ("new-card-name", lambda s: s["events"].append(_card_update("c-1", card="platinum")),
     r"^events\[4\]\.card: 'platinum' is not a fake Stripe test card"),
    ("new-card-for-an-unlisted-client", lambda s: s["events"].append(_card_update("c-9", card="amex")),
     r"^events\[4\]\.card: client 'c-9' of bijoux is not in the clients section"),
    ("client-reference", lambda s: s["clients"].append({"spa_id": "bijoux", "id": "c-9", "card": "visa"})
     or s["events"].append(_card_update("c-9", card="amex")),
     r"^events\[4\]\.detail\.client_id: 'c-9' has no booking at bijoux before this entry"),
    ("waiver-reference", lambda s: s["events"].append({"at": "2026-03-08T00:00:00Z", "detail_type": "FeeWaived",
                                                       "detail": {"spa_id": "bijoux", "appointment_id": "apt-zz",
                                                                  "purpose": "no_show_fee", "admin_id": "a-1",
                                                                  "reason": "first visit"}}),
     r"^events\[4\]\.detail\.appointment_id: 'apt-zz' is not booked by an earlier entry"),
    ("erased-client", lambda s: s["events"].insert(1, {
        "at": "2026-03-05T16:00:00Z", "detail_type": "ClientErasureRequested",
        "detail": {"spa_id": "bijoux", "client_id": "c-1", "admin_id": "a-1", "request_id": "r-1"}}),
     r"^events\[2\]\.detail\.appointment_id: names client 'c-1' of bijoux, erased by an earlier entry"),
    ("booking-version", lambda s: s["events"][1]["detail"].update(booking_version=1),
     r"^events\[1\]\.detail\.booking_version: 1 does not increase on events\[0\]"),
    ("expect-rejected-but-valid", lambda s: s["events"][3]["detail"]["service"]["price"].update(amount=42000),
     r"^events\[3\]\.expect_rejected: true, but the intake would accept this event"),
    ("several-problems", lambda s: s["events"][0]["detail"].update(location_id="glow-hk")
     or s["events"][1].update(source="booking-site.acme"),
     r"^events\[0\]\.detail\.location_id: .*\(and 1 more problem\)$"),
]


@pytest.mark.parametrize(("change", "expected"), [e[1:] for e in SCENARIO_ERRORS], ids=[e[0] for e in SCENARIO_ERRORS])
def test_each_scenario_error_is_one_line_naming_the_entry_and_field_before_anything_is_deployed(
        tmp_path, monkeypatch, change, expected):
    monkeypatch.setattr("localcloud.simulate.LocalCloud", _no_deploy)
    scenario = tmp_path / "typo.json"
    scenario.write_text(json.dumps(_mutated(change)))
    result = CliRunner().invoke(app, ["simulate", str(scenario)])
    assert result.exit_code == 2, result.output
    assert result.stdout == "", "the error goes to stderr, and nothing else is printed"
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{scenario}: ")
    assert re.search(expected, line.removeprefix(f"{scenario}: ")), line


@pytest.mark.parametrize(("text", "expected"), [
    ('{"start": "2026-03-05T15:00:00Z", "events": [}', r"^not JSON: Expecting value at line 1, column 46$"),
    ('[{"at": "2026-03-05T15:00:00Z"}]', r"^a scenario is a JSON object .*, not a list$"),
    ("\xff\xfe", r"^not JSON: the file is not UTF-8 text$"),
], ids=["not-json", "not-an-object", "not-utf8"])
def test_a_file_that_is_not_a_scenario_object_is_one_line_too(tmp_path, monkeypatch, text, expected):
    monkeypatch.setattr("localcloud.simulate.LocalCloud", _no_deploy)
    scenario = tmp_path / "broken.json"
    scenario.write_bytes(text.encode("latin-1") if text.startswith("\xff") else text.encode())
    result = CliRunner().invoke(app, ["simulate", str(scenario)])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert re.search(expected, line.removeprefix(f"{scenario}: ")), line


def test_a_deliberately_refused_event_may_break_tenancy_and_is_delivered_as_written():
    foreign = _mutated(lambda s: s["events"][3]["detail"].update(
        service=SMALL["events"][0]["detail"]["service"], location_id="glow-hk"))
    inputs = validate_scenario(foreign)
    refused = next(item for item in inputs if item.index == 3)
    assert refused.expect_rejected and refused.detail == foreign["events"][3]["detail"]


def _no_deploy(*args, **kwargs):
    raise AssertionError("the scenario was not validated before the local cloud was opened")


# ------------------------------------------------------------------ bursts: hundreds of inputs, dozens quarantined


BURST_START = datetime(2026, 3, 2, 14, tzinfo=UTC)  # Monday 09:00 in Orlando
BURSTS = [BURST_START + timedelta(hours=h) for h in (1, 7, 13, 19)]
BOTOX = {"name": "Botox", "category": "injection_laser", "duration_minutes": 30,
         "price": {"amount": 42000, "currency": "USD"}}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _burst_scenario() -> dict:
    """277 inputs in two days: 40 bookings (a dozen at the instants of the bursts) moved, confirmed and
    cancelled; four bursts of 40 refused events at one instant each (malformed, at another spa's
    location, from an unauthorised source); 30 SMS replies; an event whose booking never comes; and seven
    visits whose late cancels and reschedules move money every way the ledger knows (card, declined card,
    waiver, prepayment, gift certificate, deposit). Valid events are what costs real time (each starts a
    lifecycle run), so most of the volume is in the bursts and the replies."""
    clients = [{"spa_id": "bijoux", "id": f"c-{n}", "card": "visa_chargeDeclined" if n == 0 else "visa",
                "phone": f"+1407555{n:04d}", "sms_opt_in": True} for n in range(30)]
    clients.append({"spa_id": "406medicalspa", "id": "c-mt", "card": "visa"})
    events: list[dict] = []

    def event(at: datetime, detail_type: str, **detail) -> None:
        events.append({"at": _iso(at), "detail_type": detail_type, "detail": {"spa_id": "bijoux"} | detail})

    for n in range(40):
        at = BURSTS[n % 4] if n < 12 else BURST_START + timedelta(minutes=5 + 4 * n)
        visit = BURST_START + timedelta(days=4, hours=n % 8)
        event(at, "AppointmentBooked", appointment_id=f"apt-{n}", booking_version=1, location_id="bijoux",
              client={"id": f"c-{n % 30}"}, service=BOTOX, starts_at=_iso(visit), payment={"card_on_file": True})
        version = 1
        if n % 4 == 0:
            version += 1
            event(at + timedelta(hours=20), "AppointmentRescheduled", appointment_id=f"apt-{n}",
                  booking_version=version, starts_at=_iso(visit + timedelta(days=1)))
        if n % 3 == 1:
            version += 1
            event(at + timedelta(hours=21), "AppointmentConfirmed", appointment_id=f"apt-{n}",
                  booking_version=version, channel="web")
        if n % 5 == 2:
            version += 1
            event(at + timedelta(hours=22), "AppointmentCancelled", appointment_id=f"apt-{n}",
                  booking_version=version, by="client")
    malformed = {**BOTOX, "price": {"amount": 420.5, "currency": "USD"}}
    for b, at in enumerate(BURSTS):
        for k in range(40):
            detail = {"spa_id": "bijoux", "appointment_id": f"bad-{b}-{k}", "booking_version": 1,
                      "location_id": "bijoux", "event_id": f"bad-{b}-{k}", "occurred_at": _iso(at),
                      "client": {"id": "c-1"}, "service": malformed, "starts_at": _iso(at + timedelta(days=3))}
            entry = {"at": _iso(at), "detail_type": "AppointmentBooked", "expect_rejected": True, "detail": detail}
            if k % 6 == 1:
                detail |= {"service": BOTOX, "location_id": "massageluxe-austin"}
            elif k % 6 == 2:
                detail["service"] = BOTOX
                entry["source"] = "booking-site.acme"
            events.append(entry)
    for n in range(30):
        events.append({"at": _iso(BURST_START + timedelta(hours=26, minutes=n)),
                       "inbound_sms": {"from": f"+1407555{n:04d}", "body": "YES" if n % 3 else "HELP"}})
    event(BURST_START + timedelta(hours=30), "AppointmentRescheduled", appointment_id="never-booked",
          booking_version=2, starts_at=_iso(BURST_START + timedelta(days=6)))
    # Money: visits 30 hours after booking, so a cancel or move the hour after is inside the 48-hour window.
    booked, late, visit = (BURST_START + timedelta(hours=h) for h in (2, 3, 30))
    for appointment, client, payment in (("fee-card", "c-1", {"card_on_file": True}),
                                         ("fee-declined", "c-0", {"card_on_file": True}),
                                         ("fee-waived", "c-2", {"card_on_file": True}),
                                         ("fee-prepaid", "c-3", {"card_on_file": True,
                                                                 "prepaid": {"amount": 5000, "currency": "USD"}}),
                                         ("fee-gift", "c-4", {"gift_certificate": {"amount": 5000, "currency": "USD"}}),
                                         ("fee-moved", "c-5", {"card_on_file": True})):
        event(booked, "AppointmentBooked", appointment_id=appointment, booking_version=1, location_id="bijoux",
              client={"id": client}, service=BOTOX, starts_at=_iso(visit), payment=payment)
        if appointment == "fee-moved":
            event(late, "AppointmentRescheduled", appointment_id=appointment, booking_version=2,
                  starts_at=_iso(visit + timedelta(days=3)))
        else:
            event(late, "AppointmentCancelled", appointment_id=appointment, booking_version=2, by="client")
    event(late + timedelta(hours=2), "FeeWaived", appointment_id="fee-waived", purpose="late_cancel_fee",
          admin_id="admin-1", reason="first late cancel")
    events.append({"at": _iso(booked), "detail_type": "AppointmentBooked", "detail": {
        "spa_id": "406medicalspa", "appointment_id": "fee-deposit", "booking_version": 1,
        "location_id": "406medicalspa", "client": {"id": "c-mt"},
        "service": {"name": "HydraFacial", "category": "esthetician", "duration_minutes": 60,
                    "price": {"amount": 22500, "currency": "USD"}},
        "starts_at": _iso(BURST_START + timedelta(hours=20)),
        "payment": {"card_on_file": True, "deposit": {"amount": 7500, "currency": "USD"}}}})
    events.append({"at": _iso(late), "detail_type": "AppointmentCancelled", "detail": {
        "spa_id": "406medicalspa", "appointment_id": "fee-deposit", "booking_version": 2, "by": "client"}})
    return {"name": "bursts", "start": _iso(BURST_START), "until": _iso(BURST_START + timedelta(days=2)),
            "clients": clients, "events": events}


@pytest.fixture(scope="module")
def bursts(tmp_path_factory) -> tuple[dict, dict]:
    scenario = _burst_scenario()
    page = tmp_path_factory.mktemp("bursts") / "bursts.html"
    report = run_scenario(scenario, html=page)
    return scenario, report | {"html_written": page}


def test_every_input_of_hundreds_with_dozens_quarantined_at_one_instant_is_accounted_for(bursts):
    scenario, report = bursts
    events = scenario["events"]
    assert len(events) >= 250
    assert sorted(line["index"] for line in report["inputs"]) == list(range(len(events)))
    outcome = {line["index"]: line["outcome"] for line in report["inputs"]}
    refused = {i for i, e in enumerate(events) if e.get("expect_rejected")}
    sms = {i for i, e in enumerate(events) if "inbound_sms" in e}
    (never_booked,) = (i for i, e in enumerate(events) if e.get("detail", {}).get("appointment_id") == "never-booked")
    assert len(refused) == 160
    assert {i for i, o in outcome.items() if o == "quarantined"} == refused
    assert {i for i, o in outcome.items() if o == "delivered"} == sms
    assert outcome[never_booked] == "held"
    assert {o for i, o in outcome.items() if i not in refused | sms | {never_booked}} == {"applied"}
    assert report["summary"]["inputs"] == {"applied": len(events) - len(refused) - len(sms) - 1, "held": 1,
                                           "quarantined": 160, "pending": 0, "not_delivered": 0, "delivered": 30}
    # Each quarantined message is one refused input, once, at the instant of its burst, with the field named.
    assert sorted(q["input_index"] for q in report["quarantined"]) == sorted(refused)
    assert report["summary"]["quarantined"] == 160
    for burst in BURSTS:
        assert sum(q["at"] == _iso(burst) for q in report["quarantined"]) == 40
    for q in report["quarantined"]:
        entry = events[q["input_index"]]
        field = ("source" if entry.get("source") else "detail.location_id"
                 if entry["detail"]["location_id"] != "bijoux" else "detail.service.price.amount")
        assert field in q["rejection_reason"], q
        assert (q["appointment_id"], q["event_id"]) == (entry["detail"]["appointment_id"], entry["detail"]["event_id"])
    booked = {e["detail"]["appointment_id"] for e in events
              if e.get("detail_type") == "AppointmentBooked" and not e.get("expect_rejected")}
    assert {a["appointment_id"] for a in report["appointments"]} == booked


def _ledger_money(report: dict) -> dict:
    """The money summary, summed straight from the ledger lines by location and currency (written apart from
    the runner's own derivation, so the two can disagree)."""
    location = {(a["spa_id"], a["appointment_id"]): a["location_id"] for a in report["appointments"]}
    out: dict = {}
    for e in report["ledger"]:
        where = location[(e["client_id"].split("#")[0], e["appointment_id"])]
        money = out.setdefault(where, {"fees": {}, "assessed": {}, "collected": {}, "covered": {}, "waived": {},
                                       "outstanding": {}, "forfeited": {}})
        amount, currency, ok, purpose = (e["amount"]["amount"], e["amount"]["currency"], e["status"] == "succeeded",
                                         e["purpose"])

        def add(key: str, value: int) -> None:
            money[key][currency] = money[key].get(currency, 0) + value

        if e["kind"] == "forfeit" and ok:
            add("forfeited", amount)
        if "_fee" not in purpose:
            continue
        reason, _, step = purpose.partition("_fee")
        first_step = (e["kind"] == "charge" and e["attempt"] == 1 and not step) or e["kind"] in (
            "forfeit", "deduction", "outstanding")
        if first_step:
            fee = money["fees"].setdefault(reason, {"count": 0, "total": {}})
            fee["count"] += (e["appointment_id"], reason) not in money.setdefault("seen", set())
            money["seen"].add((e["appointment_id"], reason))
            fee["total"][currency] = fee["total"].get(currency, 0) + amount
            add("assessed", amount)
            add("outstanding", amount)
        if e["kind"] == "charge" and ok:
            add("collected", amount)
            add("outstanding", -amount)
        if e["kind"] in ("forfeit", "deduction") and ok:
            add("covered", amount)
            add("outstanding", -amount)
        if e["kind"] == "refund" and ok:
            add("collected", -amount)
            add("waived", amount)
        if e["kind"] == "credit" and step == "_waiver" and ok:
            add("waived", amount)
            add("outstanding", -amount)
    for money in out.values():
        money.pop("seen", None)
        for key, totals in money.items():
            if key != "fees":
                money[key] = {c: v for c, v in totals.items() if v}
    return out


def test_the_money_summary_per_location_is_the_ledger_summed(bursts):
    _, report = bursts
    summary = {r["location_id"]: r["money"] for r in report["summary"]["locations"]}
    expected = _ledger_money(report)
    assert set(expected) == {"bijoux", "406medicalspa"}
    for location, money in expected.items():
        got = summary[location]
        assert {r: f for r, f in got["fees"].items() if f["count"]} == money["fees"], location
        for key in ("assessed", "collected", "covered", "waived", "outstanding", "forfeited"):
            assert got[key] == money[key], (location, key)
    bijoux, mt = summary["bijoux"], summary["406medicalspa"]
    # Every way the ledger moves a fee appears: card, declined card, waiver (refund), gift certificate, deposit.
    assert bijoux["collected"]["USD"] >= 5000 and bijoux["outstanding"] == {"USD": 5000}
    assert bijoux["waived"] == {"USD": 5000} and bijoux["fees"]["late_reschedule"] == {"count": 1,
                                                                                       "total": {"USD": 5000}}
    assert mt["covered"] == mt["forfeited"] == mt["assessed"] == {"USD": 7500}
    for money in summary.values():
        for currency, assessed in money["assessed"].items():
            assert assessed == sum(money[k].get(currency, 0) for k in ("collected", "covered", "waived", "outstanding"))
    # ... and it agrees with the appointments' own record of their fees and with the clients' balances.
    for location, money in summary.items():
        fees = [f for a in report["appointments"] if a["location_id"] == location for f in a["fees"]
                if f["outcome"] != "no_fee"]
        for reason, by_reason in money["fees"].items():
            mine = [f for f in fees if f["reason"] == reason]
            assert by_reason["count"] == len(mine)
            assert by_reason["total"] == ({"USD": sum(f["fee"]["amount"] for f in mine)} if mine else {})
        for outcome in ("waived", "outstanding"):
            total = sum(f["fee"]["amount"] for f in fees if f["outcome"] == outcome)
            assert money[outcome] == ({"USD": total} if total else {}), (location, outcome)
        row = next(r for r in report["summary"]["locations"] if r["location_id"] == location)
        assert money["outstanding"] == row["outstanding"]


class _Cells(HTMLParser):
    """The money cells, chart bars and status cells of the HTML page, by their data- attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.money: dict[tuple[str, str, str, str], int] = {}  # (element, location, currency, field) -> amount
        self.counts: dict[tuple[str, str, str], int] = {}
        self.statuses: dict[str, str] = {}
        self.tags: set[str] = set()
        self._status: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if "data-amount" in a:
            self.money[(tag, a["data-location"], a["data-currency"], a["data-field"])] = int(a["data-amount"])
        if "data-count" in a:
            self.counts[(a["data-location"], a["data-currency"], a["data-field"])] = int(a["data-count"])
        self._status = a.get("data-appointment")

    def handle_data(self, data):
        if self._status is not None:
            self.statuses[self._status] = data
            self._status = None


def test_the_html_page_shows_the_money_table_chart_and_statuses_of_the_json(bursts, tmp_path):
    _, report = bursts
    path = tmp_path / "page.html"
    write_html(report, path)
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    cells = _Cells()
    cells.feed(page)
    assert "script" not in cells.tags and "link" not in cells.tags and "img" not in cells.tags
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page), "the page loads nothing from anywhere"
    expected_rows = 0
    for row in report["summary"]["locations"]:
        money = row["money"]
        for currency in sorted({c for k in ("assessed", "forfeited") for c in money[k]}):
            expected_rows += 1
            for key in ("assessed", "collected", "covered", "waived", "outstanding", "forfeited"):
                amount = money[key].get(currency, 0)
                assert cells.money[("td", row["location_id"], currency, key)] == amount
                assert cells.money[("rect", row["location_id"], currency, key)] == amount
                assert f"{currency} {amount / 100:,.2f}" in page
            for reason, fee in money["fees"].items():
                cell = ("td", row["location_id"], currency, f"fees.{reason}")
                assert cells.money[cell] == fee["total"].get(currency, 0)
                assert cells.counts[(row["location_id"], currency, f"fees.{reason}")] == fee["count"]
    assert expected_rows == 2 and len({k[1:] for k in cells.money if k[0] == "td"}) == 2 * 9
    assert cells.statuses == {a["appointment_id"]: a["status"] for a in report["appointments"]}
    assert f'data-outcome="quarantined">{report["summary"]["inputs"]["quarantined"]}<' in page


def test_run_scenario_writes_the_html_page_it_was_asked_for(bursts):
    """The fixture asked run_scenario for the page: it is there and is the page of the report returned."""
    _, report = bursts
    returned = {key: value for key, value in report.items() if key != "html_written"}
    assert tuple(returned) == REPORT_KEYS
    assert report["html_written"].read_text(encoding="utf-8") == render_html(returned)
