"""``medspa capacity``: the paper model of the quotas (localcloud.capacity) and its command."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from localcloud.capacity import (
    PRESETS,
    Assumptions,
    CapacityInputs,
    IdentityKind,
    LeadTime,
    RegionClass,
    SendingIdentities,
    TimeZoneShare,
    budget_burst,
    budget_patience_seconds,
    budget_retrier,
    capacity,
    inputs_from_scenario,
    last_message_late_seconds,
    mean_open_days,
    mean_pending_days,
)
from localcloud.cli import app
from localcloud.scenario import SCENARIOS_DIR, load_scenario


def _chain(**changes: object) -> CapacityInputs:
    return PRESETS["chain100"].model_copy(update=changes)


def _load(report, key):  # type: ignore[no-untyped-def]
    return next(load for load in report.loads if load.quota.key == key)


def test_doubling_the_appointments_doubles_the_open_executions() -> None:
    one, two = capacity(_chain()), capacity(_chain(appointments_per_month=200_000))
    assert _load(two, "open_executions").peak == pytest.approx(2 * _load(one, "open_executions").peak)
    assert _load(two, "start_execution").peak == pytest.approx(2 * _load(one, "start_execution").peak)


def test_open_executions_are_bookings_times_days_open_from_6_hours_before_the_card_check() -> None:
    """A run opens 6 hours before its first step (the card check 3 days ahead), or at booking when that is
    nearer; until then it is a schedule."""
    inputs = _chain(lead_times=(LeadTime(share=0.5, days_ahead=2), LeadTime(share=0.4, days_ahead=10),
                                LeadTime(share=0.1, days_ahead=100)), declined_share=0.1)
    opened = 3 + 6 / 24
    days = 0.5 * 2 + 0.5 * opened + 0.1 * Assumptions().dunning_days * Assumptions().worst_path_fee_cycles
    assert mean_open_days(inputs) == pytest.approx(days)
    assert _load(capacity(inputs), "open_executions").peak == pytest.approx(100_000 * days / 30)
    pending = 0.4 * (10 - opened) + 0.1 * (100 - opened)
    assert mean_pending_days(inputs) == pytest.approx(pending)
    assert _load(capacity(inputs), "schedules").peak == pytest.approx(100_000 * pending / 30)


def test_the_last_morning_text_leaves_messages_over_rate_late() -> None:
    for kind, rate in ((IdentityKind.TEN_DLC, 1), (IdentityKind.TOLL_FREE, 3), (IdentityKind.SHORT_CODE, 100)):
        report = capacity(_chain(sending_identities=SendingIdentities(kind=kind, count=2)))
        texts = 100_000 / 30 * Assumptions().sms_share_of_reminders / 2
        assert report.morning_texts_per_identity == pytest.approx(texts)
        assert report.last_text_late_seconds == pytest.approx((texts - 1) / rate)


def test_a_spread_window_sends_each_minutes_batch_and_the_backlog_from_the_last_minute() -> None:
    assert last_message_late_seconds(300, 1) == 299  # unspread: the outbox load test's figure
    assert last_message_late_seconds(600, 1, spread_minutes=60) == 9  # 10 a minute: each minute's batch clears
    assert last_message_late_seconds(6000, 1, spread_minutes=60) == 5999 - 59 * 60  # the backlog never clears
    assert last_message_late_seconds(0, 1, spread_minutes=60) == 0


def test_spreading_the_morning_reminder_lowers_the_peak_and_the_delay() -> None:
    spread = capacity(_chain(reminder_spread_minutes=60))
    unspread = capacity(_chain())
    assert _load(spread, "sms_per_identity").peak == pytest.approx(_load(unspread, "sms_per_identity").peak / 60)
    texts = spread.morning_texts_per_identity
    assert spread.last_text_late_seconds == pytest.approx(last_message_late_seconds(texts, 1, 60))
    assert spread.last_text_late_seconds == pytest.approx(texts / 60 - 1)  # each minute's 50 clear in 49 s
    assert spread.last_text_late_seconds < unspread.last_text_late_seconds / 50


def test_the_budgets_patience_is_the_longest_burst_its_retrier_gets_through_whole() -> None:
    """Played with the real budget and the real ``stripe_budget_spent`` retrier: the largest burst nobody gives up
    on drains in about 4 minutes at 25 a second, less than the retrier's own expected horizon (half its capped
    intervals, 6 minutes), because the last callers retry up to a minute apart and leave seconds unused."""
    patience = budget_patience_seconds(25)
    largest = round(patience * 25) + 1
    assert budget_burst(largest, 25)[0] == 0
    assert budget_burst(round(largest * 1.1), 25)[0] > 0
    retrier = budget_retrier()
    horizon = sum(min(1.5 ** n, retrier["MaxDelaySeconds"]) for n in range(retrier["MaxAttempts"])) / 2
    assert 200 < patience < horizon == pytest.approx(355.5, abs=0.1)


def test_a_burst_drains_no_faster_than_the_budget_and_gives_up_calls_past_the_patience() -> None:
    gave_up, last = budget_burst(2_000, 25)
    assert gave_up == 0 and last >= last_message_late_seconds(2_000, 25)
    gave_up, last = budget_burst(20_000, 25)
    assert gave_up > 0 and last_message_late_seconds(20_000, 25) > budget_patience_seconds(25)


def test_stripe_sees_no_more_than_the_budget_and_the_card_checks_wait_their_turn() -> None:
    """A chain's 10:00 card checks (two requests each) queue for their capped share of the budget, 12 of the 25
    a second; at 1,000 spas the last would wait longer than its retries last, so some go unchecked; spread over an
    hour, each minute's clears."""
    report = capacity(PRESETS["chain1000"])
    for key in ("stripe_endpoint", "stripe_total"):
        assert _load(report, key).peak <= 25
    wait = _load(report, "stripe_budget_wait")
    checks = 1_000_000 / 30 * 0.47  # every visit of the busiest zone's day is booked more than 3 days ahead
    assert wait.peak == pytest.approx((2 * checks - 1) / 12)
    assert wait.limit == budget_patience_seconds(12) and wait.headroom < 1
    spread = capacity(PRESETS["chain1000"].model_copy(update={"card_check_spread_minutes": 60}))
    assert _load(spread, "stripe_budget_wait").peak < 60 < _load(spread, "stripe_budget_wait").limit
    doubled = capacity(PRESETS["chain1000"].model_copy(update={"stripe_requests_per_second": 50}))
    assert _load(doubled, "stripe_budget_wait").peak == pytest.approx(wait.peak * 12 / 25)


def test_the_drafts_of_the_1st_take_as_long_as_their_share_of_the_budget_allows() -> None:
    report = capacity(PRESETS["chain1000"])
    drafts = 200_000 * 0.5 * 0.47
    assert report.drafts_seconds == pytest.approx(drafts / 12)  # floor(25 x 0.5) a second
    assert _load(report, "drafts_day").headroom > 1
    assert capacity(PRESETS["chain1000"].model_copy(update={"stripe_drafts_share": 0.25})).drafts_seconds == \
        pytest.approx(drafts / 6)


def test_more_identities_spread_the_morning() -> None:
    one = capacity(_chain())
    ten = capacity(_chain(sending_identities=SendingIdentities(count=10)))
    assert _load(ten, "sms_per_identity").headroom == pytest.approx(10 * _load(one, "sms_per_identity").headroom)


def test_the_first_limit_of_each_size() -> None:
    """Today's design sends every reminder through one 10DLC number at the reminder time: one spa fits
    (about half a minute's queue), a chain does not. Runs started shortly before their first step keep open
    executions under a fifth of the quota even at a thousand spas (issue 13)."""
    small, chain100, chain1000 = (capacity(PRESETS[size]) for size in ("small", "chain100", "chain1000"))
    assert small.first_limit.quota.key == "sms_per_identity"
    assert small.first_limit.headroom > 1
    assert all(load.headroom > 1 for load in small.loads)
    assert chain100.first_limit.quota.key == "sms_per_identity"
    assert chain100.first_limit.headroom < 1
    assert _load(chain100, "open_executions").headroom > 1
    assert chain1000.first_limit.quota.key == "sms_per_identity"
    assert _load(chain1000, "open_executions").peak < 0.2 * _load(chain1000, "open_executions").limit
    assert _load(chain1000, "schedules").headroom > 1
    assert _load(chain1000, "dynamodb_partition_writes").peak > 0
    assert sum(load.first_hit for load in chain1000.loads) == 1


def test_the_first_limit_is_the_smallest_headroom() -> None:
    report = capacity(_chain(sending_identities=SendingIdentities(kind=IdentityKind.SHORT_CODE, count=1)))
    smallest = min(report.loads, key=lambda load: load.headroom)
    assert report.first_limit == smallest
    assert report.first_limit.quota.key != "sms_per_identity"


def test_smaller_regions_have_smaller_step_functions_quotas() -> None:
    big, elsewhere = capacity(_chain()), capacity(_chain(region=RegionClass.ELSEWHERE))
    assert _load(elsewhere, "stop_execution").limit == 25
    assert _load(elsewhere, "state_transitions").headroom < _load(big, "state_transitions").headroom


def test_shares_must_add_up() -> None:
    with pytest.raises(ValidationError, match="time_zones"):
        _chain().model_validate({**_chain().model_dump(), "time_zones": [
            TimeZoneShare(time_zone="America/New_York", share=0.5).model_dump()]})


def test_a_scenario_is_scaled_to_a_month() -> None:
    scenario = load_scenario(SCENARIOS_DIR / "massageluxe-austin-memberships.json")
    inputs = inputs_from_scenario(scenario, {"massageluxe-austin": "America/Chicago"})
    assert inputs.time_zones == (TimeZoneShare(time_zone="America/Chicago", share=1.0),)
    assert inputs.memberships_per_month == len({e["detail"]["membership_id"] for e in scenario.entries
                                                if e.get("detail_type") == "MembershipStarted"})


runner = CliRunner()


def test_the_command_prints_a_preset_and_writes_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "capacity.json"
    result = runner.invoke(app, ["capacity", "--size", "chain100", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "first limit hit: SMS per origination identity" in result.output
    data = json.loads(out.read_text())
    assert data["first_limit"] == "sms_per_identity"
    assert data["last_text_late_seconds"] == pytest.approx(capacity(PRESETS["chain100"]).last_text_late_seconds)
    assert {load["quota"]["key"] for load in data["loads"]} >= {"open_executions", "stripe_endpoint",
                                                                "stripe_budget_wait", "dynamodb_partition_writes"}
    assert "the card checks: the last waits 9.3 min for its share of the Stripe budget (12 of 25" in result.output


def test_options_override_the_preset(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "capacity.json"
    result = runner.invoke(app, ["capacity", "--size", "chain100", "--identity-kind", "short_code",
                                 "--identities", "4", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["inputs"]["sending_identities"] == {"kind": "short_code", "count": 4}
    assert data["first_limit"] != "sms_per_identity"
    result = runner.invoke(app, ["capacity", "--size", "chain1000", "--reminder-spread-minutes", "60",
                                 "--card-check-spread-minutes", "60", "--stripe-requests-per-second", "50",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    inputs = json.loads(out.read_text())["inputs"]
    assert (inputs["reminder_spread_minutes"], inputs["card_check_spread_minutes"],
            inputs["stripe_requests_per_second"]) == (60, 60, 50)


def test_the_command_reads_a_bundled_scenario(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "capacity.json"
    result = runner.invoke(app, ["capacity", "--scenario", str(SCENARIOS_DIR / "bijoux.json"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["inputs"]["time_zones"] == [{"time_zone": "America/New_York", "share": 1.0}]
    assert data["inputs"]["appointments_per_month"] > 0
    assert "no limit hit; the nearest" in result.output


def test_a_bad_option_is_one_line_and_exit_2() -> None:
    result = runner.invoke(app, ["capacity", "--size", "chain100", "--time-zone", "America/New_York:0.5"])
    assert result.exit_code == 2
    assert "add up to 0.5" in result.output


def test_an_unknown_time_zone_is_one_line_and_exit_2() -> None:
    result = runner.invoke(app, ["capacity", "--size", "small", "--time-zone", "America/Atlantis:1"])
    assert result.exit_code == 2
    assert "unknown IANA time zone 'America/Atlantis'" in result.output
