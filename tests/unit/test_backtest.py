"""The backtest engine (``localcloud.backtest``) on the bundled scenarios: the same files ``medspa simulate``
plays, played in process. What each visit ends as is the scenario's own story (``samples/scenarios``); the
differential test (``tests/integration/test_backtest_differential.py``) holds it to the local cloud's report."""

from __future__ import annotations

from datetime import datetime

import pytest

from localcloud.backtest import BACKTEST_KEYS, card_behaviour, run_backtest
from localcloud.scenario import SCENARIOS_DIR, ScenarioError


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


def test_a_scenario_with_memberships_is_refused_in_one_line_rather_than_half_played():
    with pytest.raises(ScenarioError, match=r"^events\[\d+\]: memberships are not played by the backtest"):
        run_backtest(SCENARIOS_DIR / "massageluxe-austin-memberships.json")


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
