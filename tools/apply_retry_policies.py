"""Write each Task state's ``Retry`` of the AppointmentLifecycle, the FeeWaiver, FeePaidLater and MembershipDrafts from the
named policies.

ASL cannot refer to a shared retrier, so the policies live in ``statemachines/retry_policies.json`` and this
writes them out into ``statemachines/appointment_lifecycle.asl.json``, ``fee_waiver.asl.json``, ``fee_paid_later.asl.json`` and
``membership_drafts.asl.json`` (the Tasks inside a Map's ItemProcessor or a Parallel's branches too). A state
keeps the policy it has (found by
the errors its retriers name); ``--set "State name=policy"`` gives a new state one. Usage::

    .venv/bin/python tools/apply_retry_policies.py            # rewrite the Retry blocks
    .venv/bin/python tools/apply_retry_policies.py --check    # exit 1 if a block differs from its policy
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ASLS = (ROOT / "statemachines" / "appointment_lifecycle.asl.json", ROOT / "statemachines" / "fee_waiver.asl.json",
        ROOT / "statemachines" / "fee_paid_later.asl.json",
        ROOT / "statemachines" / "membership_drafts.asl.json")
POLICIES = ROOT / "statemachines" / "retry_policies.json"


def policies() -> dict[str, list[dict[str, Any]]]:
    """Each policy name with its retriers as ASL writes them (the ``why`` notes left out)."""
    doc = json.loads(POLICIES.read_text(encoding="utf-8"))
    retriers = {name: {k: v for k, v in r.items() if k != "why"} for name, r in doc["retriers"].items()}
    return {name: [retriers[r] for r in names] for name, names in doc["policies"].items()}


def policy_of(state: dict[str, Any], named: dict[str, list[dict[str, Any]]]) -> str | None:
    """The policy the state's Retry already is, else the one whose retriers name the same errors in the same order
    (two policies may name the same errors and differ in their timing: card_check and draft_step)."""
    retry = state.get("Retry", [])
    errors = [r["ErrorEquals"] for r in retry]
    return next((name for name, retriers in named.items() if retriers == retry),
                next((name for name, retriers in named.items() if [r["ErrorEquals"] for r in retriers] == errors), None))


def states(asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state by name, those nested in a Map's ItemProcessor (or Iterator) and a Parallel's branches too."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in asl["States"].items():
        found[name] = state
        for inner in [state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])]:
            if inner:
                found.update(states(inner))
    return found


def apply(asl: dict[str, Any], chosen: dict[str, str]) -> list[str]:
    """Rewrite every Task's Retry in place; returns the problems (a Task with no recognisable policy)."""
    named, problems = policies(), []
    for name, state in states(asl).items():
        if state["Type"] != "Task":
            continue
        policy = chosen.get(name) or policy_of(state, named)
        if policy is None:
            problems.append(f"{name}: no retry policy (give it one with --set '{name}=<policy>')")
        else:
            state["Retry"] = named[policy]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="STATE=POLICY")
    args = parser.parse_args(argv)
    chosen = dict(item.split("=", 1) for item in args.set)
    failed = False
    for asl in ASLS:
        current = json.loads(asl.read_text(encoding="utf-8"))
        wanted = json.loads(asl.read_text(encoding="utf-8"))
        problems = apply(wanted, chosen)
        for problem in problems:
            print(f"{asl.name}: {problem}", file=sys.stderr)
        now, then = states(current), states(wanted)
        stale = [n for n in now if now[n].get("Retry") != then[n].get("Retry")]
        if args.check:
            for name in stale:
                print(f"{asl.name}: {name}: Retry differs from its policy: run tools/apply_retry_policies.py",
                      file=sys.stderr)
        else:
            asl.write_text(json.dumps(wanted, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        failed |= bool(problems or (args.check and stale))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
