"""Every location with membership terms has its daily MembershipDrafts schedule, in its zone, at its pack's hour."""

from __future__ import annotations

import json
from pathlib import Path

from localcloud.deploy import load_template
from medspa.policy.loader import load_packs
from medspa.policy.schema import DEFAULT_DRAFTS

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def schedules() -> dict[str, tuple[str, dict]]:
    events = load_template(TEMPLATE)["Resources"]["MembershipDraftsStateMachine"]["Properties"]["Events"]
    return {e["Properties"]["ScheduleExpressionTimezone"]: (e["Properties"]["ScheduleExpression"],
                                                             json.loads(e["Properties"]["Input"]))
            for e in events.values() if e["Type"] == "ScheduleV2"}


def test_each_membership_or_course_location_has_its_daily_run_at_its_packs_hour_in_its_own_zone():
    wanted = {pack.location.time_zone: (pack.membership.drafts if pack.membership else DEFAULT_DRAFTS).at_local_time
              for pack in load_packs().values() if pack.membership is not None or pack.prepaid is not None}
    assert wanted, "no pack has membership terms"
    found = schedules()
    for zone, at in wanted.items():
        assert zone in found, f"no MembershipDrafts schedule for {zone}"
        expression, payload = found[zone]
        assert expression == f"cron({at.minute} {at.hour} * * ? *)"
        assert payload == {"time_zone": zone, "membership_id": None}


def test_no_schedule_runs_for_a_zone_without_memberships_or_courses():
    zones = {pack.location.time_zone for pack in load_packs().values()
             if pack.membership is not None or pack.prepaid is not None}
    assert set(schedules()) <= zones
