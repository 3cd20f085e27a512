"""Write each Task state's ``Retry`` of the AppointmentLifecycle and the FeeWaiver from the named policies.

ASL cannot refer to a shared retrier, so the policies live in ``statemachines/retry_policies.json`` and this
writes them out into ``statemachines/appointment_lifecycle.asl.json`` and ``fee_waiver.asl.json``. A state
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
ASLS = (ROOT / "statemachines" / "appointment_lifecycle.asl.json", ROOT / "statemachines" / "fee_waiver.asl.json")
POLICIES = ROOT / "statemachines" / "retry_policies.json"


def policies() -> dict[str, list[dict[str, Any]]]:
    """Each policy name with its retriers as ASL writes them (the ``why`` notes left out)."""
    doc = json.loads(POLICIES.read_text(encoding="utf-8"))
    retriers = {name: {k: v for k, v in r.items() if k != "why"} for name, r in doc["retriers"].items()}
    return {name: [retriers[r] for r in names] for name, names in doc["policies"].items()}


def policy_of(state: dict[str, Any], named: dict[str, list[dict[str, Any]]]) -> str | None:
    """The policy whose retriers name the same errors, in the same order, as the state's."""
    errors = [r["ErrorEquals"] for r in state.get("Retry", [])]
    return next((name for name, retry in named.items() if [r["ErrorEquals"] for r in retry] == errors), None)


def apply(asl: dict[str, Any], chosen: dict[str, str]) -> list[str]:
    """Rewrite every Task's Retry in place; returns the problems (a Task with no recognisable policy)."""
    named, problems = policies(), []
    for name, state in asl["States"].items():
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
        stale = [n for n in current["States"] if current["States"][n].get("Retry") != wanted["States"][n].get("Retry")]
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
