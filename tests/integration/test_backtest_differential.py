"""The two engines tell the same story: each bundled scenario, played through the full local cloud (Step
Functions on moto, the fake Stripe, every Lambda) and through the backtest (the same services in process on
the in-memory adapters), ends alike for every appointment and client.

Compared exactly, per appointment: the final status, the ledger entries (purpose, kind, amount, status), the
message templates sent on each channel, and the strikes; per client: the prepay flag, the outstanding balance
and the store credit; per membership: its status and every draft (month, purpose, attempt, amount, outcome);
and what expired. Executions and state transitions are not compared: the backtest has no Step Functions.
A difference is a bug in one engine, to be found and fixed there, never a looser assertion here.

Every bundled scenario is played, and one generated scenario of 200 appointments (about two minutes in the
local cloud): each is one test, marked e2e as every local-cloud run is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from localcloud.backtest import run_backtest
from localcloud.generate import generated_scenario
from localcloud.scenario import SCENARIOS_DIR
from localcloud.simulate import run_scenario

BUNDLED = sorted(path.name for path in SCENARIOS_DIR.glob("*.json"))
GENERATED, GENERATED_SIZE = "generated-200-seed-7", 200


def outcomes(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the spa and its clients would see of a run, keyed by appointment and client."""
    visits: dict[str, Any] = {}
    for a in report["appointments"]:
        key = a["appointment_id"]
        visits[key] = {
            "status": a["status"],
            "ledger": sorted((e["purpose"], e["kind"], e["amount"]["amount"], e["amount"]["currency"], e["status"])
                             for e in report["ledger"] if e["appointment_id"] == key),
            "messages": sorted((m["kind"], m["channel"], m["status"]) for m in report["messages"]
                               if m["appointment_id"] == key),
            "strikes": sorted(s["reason"] for c in report["clients"] for s in c["strikes"]
                              if s["appointment_id"] == key),
        }
    clients = {c["client_id"]: {"prepay_required": c["prepay_required"], "strikes": len(c["strikes"]),
                                "outstanding": c["outstanding"], "credit": c["credit"]} for c in report["clients"]}
    unattached = sorted((m["kind"], m["channel"], m["client_id"], m["status"]) for m in report["messages"]
                        if m["appointment_id"] is None)
    memberships = {m["membership_id"]: {
        "status": m["status"],
        "drafts": sorted((d["due_on"], d["purpose"], d["attempt"], d["amount"]["amount"], d["status"])
                         for d in report["drafts"] if d["membership_id"] == m["membership_id"]),
    } for m in report["memberships"]}
    expired = sorted((e["spa_id"], e["of"], e["purpose"], e["amount"]["amount"]) for e in report["expiries"])
    return {"appointments": visits, "clients": clients, "messages not about a visit": unattached,
            "memberships": memberships, "expired": expired}


def test_every_bundled_scenario_is_played_memberships_included():
    assert "massageluxe-austin-memberships.json" in BUNDLED and len(BUNDLED) == 6


@pytest.mark.e2e
@pytest.mark.parametrize("scenario", [*BUNDLED, GENERATED])
def test_the_backtest_ends_every_visit_as_the_local_cloud_does(scenario):
    played_file = generated_scenario(GENERATED_SIZE, seed=7) if scenario == GENERATED else SCENARIOS_DIR / scenario
    in_the_cloud = run_scenario(played_file)
    in_process = run_backtest(played_file)

    expected, played = outcomes(in_the_cloud), outcomes(in_process)
    assert played["appointments"].keys() == expected["appointments"].keys()
    for appointment, story in expected["appointments"].items():
        assert played["appointments"][appointment] == story, appointment
    assert played == expected
    money_moved = [v["ledger"] for v in expected["appointments"].values()] + \
        [m["drafts"] for m in expected["memberships"].values()]
    assert any(money_moved)  # the test bites
