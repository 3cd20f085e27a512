"""The backtest engine (``localcloud.backtest``) on the bundled scenarios: the same files ``medspa simulate``
plays, played in process. What each visit ends as is the scenario's own story (``samples/scenarios``); the
differential test (``tests/integration/test_backtest_differential.py``) holds it to the local cloud's report."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from localcloud.backtest import BACKTEST_KEYS, card_behaviour, compare_packs, run_backtest, what_if
from localcloud.scenario import SCENARIOS_DIR


def _visits(report):
    return {a["appointment_id"]: a["status"] for a in report["appointments"]}


def _fees(report):
    return sorted((e["appointment_id"], e["kind"], e["amount"]["amount"], e["status"]) for e in report["ledger"])


def test_bijoux_late_cancels_no_shows_and_the_declined_card_come_out_as_the_scenario_tells():
    report = run_backtest(SCENARIOS_DIR / "bijoux.json")

    assert set(report) == set(BACKTEST_KEYS)
    assert _visits(report) == {"bij-1001": "completed", "bij-1002": "cancelled", "bij-1003": "no_show",
                               "bij-1004": "no_show", "bij-1005": "cancelled", "bij-1006": "no_show"}
    assert ("bij-1003", "charge", 3000, "declined") in _fees(report)  # the wellness no-show's card declines first
    assert ("bij-1002", "charge", 10000, "succeeded") in _fees(report)  # a 60-minute laser cancelled late: $100
    row = next(r for r in report["summary"]["locations"] if r["location_id"] == "bijoux")
    assert row["appointments"] == 6 and row["fees_declined"] == 1
    assert row["messages_sent"] == sum(m["status"] == "sent" for m in report["messages"]) > 0


def test_every_message_goes_out_in_time_order_across_all_the_visits():
    """The wake-ups are one queue for every appointment, so the log reads as the spa's day went."""
    sent = [m["at"] for m in run_backtest(SCENARIOS_DIR / "bijoux.json")["messages"] if m["status"] == "sent"]
    times = [datetime.fromisoformat(at) for at in sent]
    assert times == sorted(times) and len(times) > 10


def test_the_same_scenario_gives_the_same_report_twice():
    first, second = (run_backtest(SCENARIOS_DIR / "massageluxe-austin.json") for _ in range(2))
    first.pop("real_seconds"), second.pop("real_seconds")
    assert first == second


def test_406_auto_cancels_the_unconfirmed_visit_and_refuses_the_booking_the_owner_expects_refused():
    report = run_backtest(SCENARIOS_DIR / "406medicalspa.json")

    assert _visits(report)["mt-2002"] == "auto_cancelled"
    assert [line["outcome"] for line in report["inputs"]].count("quarantined") == 1


def test_memberships_are_drafted_at_09_00_local_frozen_unfrozen_and_retried_as_the_scenario_tells():
    report = run_backtest(SCENARIOS_DIR / "massageluxe-austin-memberships.json")
    drafts = {(d["membership_id"], d["due_on"], d["purpose"], d["attempt"]): (d["amount"]["amount"], d["status"])
              for d in report["drafts"]}

    assert {m["membership_id"]: m["status"] for m in report["memberships"]} == {
        "mem-eve": "active", "mem-fay": "frozen", "mem-gus": "active", "mem-hal": "cancelled", "mem-ivy": "active",
        "mem-jo": "expired", "mem-kim": "active"}
    assert [k[1] for k in drafts if k[0] == "mem-eve"] == ["2026-01-31", "2026-02-28", "2026-03-31"]
    assert drafts["mem-fay", "2026-03-02", "frozen_dues", 1] == (500, "succeeded")  # frozen within 48 hours
    assert drafts["mem-gus", "2026-03-02", "membership_dues", 1] == (7900, "succeeded")  # form back too late
    assert drafts["mem-kim", "2026-03-18", "store_credit_applied", 1] == (500, "succeeded")  # unfrozen: at once
    assert [drafts["mem-ivy", "2026-02-05", "membership_dues", n][1] for n in (1, 2, 3)] == \
        ["declined", "declined", "succeeded"]  # the new card pays the third attempt
    at_once = {line["at"] for line in report["inputs"]}  # a sign-up or unfreeze after 09:00 drafts at once
    daily = {datetime.fromisoformat(d["created_at"]).astimezone(ZoneInfo("America/Chicago")).time().isoformat()
             for d in report["drafts"] if d["created_at"] not in at_once}
    assert daily == {"09:00:00"}  # the daily run, either side of 8 March's change to daylight saving
    assert len(report["drafts"]) - sum(d["created_at"] in at_once for d in report["drafts"]) == 13


def test_a_prepaid_course_left_unused_is_noticed_a_week_before_and_expires_12_months_after_purchase():
    """Glow: "Clients must use pre-paid services ... within 12 months of purchase", by the Hong Kong daily run."""
    course = {"spa_id": "glow", "course_id": "crs-1", "client": {"id": "c-mei"}, "location_id": "glow-hk",
              "sessions": 2, "paid": {"amount": 360000, "currency": "HKD"}, "purchased_on": "2026-01-10"}
    report = run_backtest({"name": "course", "start": "2026-01-10T03:00:00Z", "until": "2027-01-12T03:00:00Z",
                           "clients": [{"spa_id": "glow", "id": "c-mei", "card": "visa"}],
                           "events": [{"at": "2026-01-10T04:00:00Z", "detail_type": "CoursePurchased",
                                       "detail": course}]})

    told = {e["detail_type"]: e["detail"] for e in report["events_to_booking_site"]}
    assert told["CourseExpiringSoon"]["expires_on"] == "2027-01-09"
    assert told["CourseSessionsExpired"]["value"] == {"amount": 360000, "currency": "HKD"}
    [expiry] = report["expiries"]
    assert (expiry["of"], expiry["purpose"], expiry["created_at"]) == \
        ("crs-1", "course_sessions_expired", "2027-01-10T01:00:00Z")  # 09:00 in Hong Kong, the day after


@pytest.mark.parametrize(("card", "behaviour"), [("visa", "pays"), ("visa_chargeDeclined", "declines"),
                                                 ("chargeCustomerFail", "declines"),
                                                 ("authenticationRequired", "needs_authentication"),
                                                 ("pm_card_chargeDeclinedExpiredCard", "expired")])
def test_each_test_card_behaves_in_memory_as_the_fake_stripe_makes_it_behave(card, behaviour):
    assert card_behaviour(card) == behaviour


def test_medspa_backtest_prints_the_summary_per_location_and_writes_the_report(tmp_path):
    from typer.testing import CliRunner

    from localcloud.cli import app

    written = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["backtest", str(SCENARIOS_DIR / "glow-hk.json"), "--report", str(written)])

    assert result.exit_code == 0, result.output
    assert "summary: glow-hk" in result.output and "money: glow-hk" in result.output
    assert "5 appointments" in result.output and f"report written to {written}" in result.output
    import json

    assert json.loads(written.read_text())["engine"] == "backtest"


def test_medspa_backtest_refuses_a_scenario_it_cannot_play_in_one_line_with_status_2(tmp_path):
    from typer.testing import CliRunner

    from localcloud.cli import app

    broken = tmp_path / "broken.json"
    broken.write_text('{"start": "2026-03-01T00:00:00Z", "events": [{"at": "yesterday"}]}')
    result = CliRunner().invoke(app, ["backtest", str(broken)])

    assert result.exit_code == 2
    assert "events[0].at" in result.output


def _variant(tmp_path, location: str, name: str, **replaced: str):
    """A copy of a bundled pack with some top-level lines replaced: a policy the owner is weighing."""
    from medspa.policy.loader import PACKS_DIR

    text = (PACKS_DIR / f"{location}.toml").read_text()
    for old, new in replaced.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_two_policies_side_by_side_a_24_hour_window_charges_one_late_cancel_where_48_hours_charge_two(tmp_path):
    variant = _variant(tmp_path, "bijoux", "bijoux-24h", **{
        'policy_version = "bijoux-2024-04-01.1"': 'policy_version = "bijoux-what-if-24h"',
        "window_hours = 48": "window_hours = 24"})
    written = tmp_path / "comparison.json"

    comparison = compare_packs(SCENARIOS_DIR / "bijoux.json", [variant], written)

    assert [(v["label"], v["pack"]) for v in comparison["variants"]] == \
        [("bundled", None), ("bijoux-24h", "bijoux@bijoux-what-if-24h")]
    bundled, narrower = ({r["location_id"]: r for r in v["summary"]["locations"]}["bijoux"]
                         for v in comparison["variants"])
    assert bundled["money"]["fees"]["late_cancel"] == {"count": 2, "total": {"USD": 15000}}
    assert narrower["money"]["fees"]["late_cancel"] == {"count": 1, "total": {"USD": 5000}}
    assert (bundled["strikes"], narrower["strikes"]) == (5, 4)
    assert bundled["no_shows"] == narrower["no_shows"] == 3  # the window changes cancellations, not no-shows
    assert json.loads(written.read_text())["format"] == "medspa-backtest-comparison/1"


def test_a_what_if_pack_judges_every_visit_of_its_location_and_leaves_the_others_as_bundled(tmp_path):
    from medspa.policy.loader import load_pack, load_packs

    bundled = load_packs()
    variant = load_pack(_variant(tmp_path, "bijoux", "bijoux-x", **{
        'policy_version = "bijoux-2024-04-01.1"': 'policy_version = "bijoux-x"'}))
    packs = what_if(bundled, variant)

    assert packs["bijoux"] is variant and packs.accepted("bijoux", "bijoux-2024-04-01.1") is variant
    assert all(packs[location] is bundled[location] for location in bundled if location != "bijoux")
    assert {location: packs.versions(location) for location in bundled if location != "bijoux"} == \
        {location: bundled.versions(location) for location in bundled if location != "bijoux"}


def test_medspa_backtest_with_two_packs_prints_a_column_per_policy_and_refuses_a_pack_of_no_location(tmp_path):
    from typer.testing import CliRunner

    from localcloud.cli import app

    wider = _variant(tmp_path, "bijoux", "bijoux-72h", **{
        'policy_version = "bijoux-2024-04-01.1"': 'policy_version = "bijoux-72h"', "window_hours = 48": "window_hours = 72"})
    narrower = _variant(tmp_path, "bijoux", "bijoux-24h", **{
        'policy_version = "bijoux-2024-04-01.1"': 'policy_version = "bijoux-24h"', "window_hours = 48": "window_hours = 24"})
    result = CliRunner().invoke(app, ["backtest", str(SCENARIOS_DIR / "bijoux.json"), "--pack", str(wider),
                                      "--pack", str(narrower)], terminal_width=200)

    assert result.exit_code == 0, result.output
    assert "bijoux-72h" in result.output and "bijoux-24h" in result.output and "bundled" not in result.output
    assert "fees for late cancels" in result.output

    elsewhere = _variant(tmp_path, "bijoux", "nowhere", **{'id = "bijoux"\nname = "Bijoux Med Spa"\ntime_zone':
                                                           'id = "nowhere"\nname = "Bijoux Med Spa"\ntime_zone'})
    refused = CliRunner().invoke(app, ["backtest", str(SCENARIOS_DIR / "bijoux.json"), "--pack", str(elsewhere)])
    assert refused.exit_code == 2 and "location.id: 'nowhere' is not a location of the bundled packs" in refused.output
