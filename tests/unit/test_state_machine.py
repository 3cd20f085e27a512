"""The AppointmentLifecycle's, the FeeWaiver's and MembershipDrafts' definitions stay what the code expects of them.

Retries come from a few named policies (``statemachines/retry_policies.json``, written out by
``tools/apply_retry_policies.py``), every error a ``Retry`` or ``Catch`` names is one the code raises (a name
that matches nothing never retries anything), and every step the plan can ask for has a route: the Choice's
default ends the run, so a step without one would silently be dropped.
"""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path
from typing import get_args

from medspa.services.lifecycle import Action

ROOT = Path(__file__).resolve().parents[2]
ASL = json.loads((ROOT / "statemachines" / "appointment_lifecycle.asl.json").read_text(encoding="utf-8"))
WAIVER = json.loads((ROOT / "statemachines" / "fee_waiver.asl.json").read_text(encoding="utf-8"))
DRAFTS = json.loads((ROOT / "statemachines" / "membership_drafts.asl.json").read_text(encoding="utf-8"))
CODE = [*(ROOT / "layers" / "shared" / "python" / "medspa").rglob("*.py"), *(ROOT / "functions").rglob("app.py")]
LAMBDA_ERRORS = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                 "Lambda.TooManyRequestsException", "Lambda.Unknown"}


def _tool():
    spec = importlib.util.spec_from_file_location("apply_retry_policies", ROOT / "tools" / "apply_retry_policies.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_STATES_OF = _tool().states
STATES = {**_STATES_OF(ASL), **_STATES_OF(WAIVER), **_STATES_OF(DRAFTS)}  # a Map's own states too


def _raised_and_their_bases() -> set[str]:
    """Exception classes a ``raise`` in the code names, with every base class defined in the code."""
    raised, bases = set(), {}
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(target, ast.Name):
                    raised.add(target.id)
            elif isinstance(node, ast.ClassDef):
                bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]
    found, todo = set(), list(raised)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += bases.get(name, [])
    return found


def _tasks() -> dict[str, dict]:
    return {name: state for name, state in STATES.items() if state["Type"] == "Task"}


def test_every_task_retries_by_one_named_policy_and_the_definition_is_written_from_them() -> None:
    tool = _tool()
    named = tool.policies()
    for name, state in _tasks().items():
        policy = tool.policy_of(state, named)
        assert policy is not None and state["Retry"] == named[policy], name
    assert tool.main(["--check"]) == 0
    assert len(named) <= 5
    assert "Take the membership's due step" in _tasks()


def test_every_error_a_retry_or_catch_names_is_raised_by_the_code_or_the_lambda_service() -> None:
    raised = _raised_and_their_bases()
    named = {error for state in STATES.values() for rule in state.get("Retry", []) + state.get("Catch", [])
             for error in rule["ErrorEquals"]}
    unknown = sorted(e for e in named if e not in raised and e not in LAMBDA_ERRORS and not e.startswith("States."))
    assert unknown == []
    assert {"StoreUnavailable", "PaymentProviderUnavailable", "PaymentProviderThrottled", "SettlementOutOfOrder"} <= named


def test_every_task_that_may_call_stripe_retries_a_spent_budget_within_seconds() -> None:
    """The budget refills every second: a step it turned away is retried soon and spread out, not after an outage's
    minutes, and never lands in a Catch that gives it up."""
    stripe_tasks = {name: state for name, state in _tasks().items()
                    if any("PaymentProviderUnavailable" in r["ErrorEquals"] for r in state["Retry"])}
    assert len(stripe_tasks) == 6
    for name, state in stripe_tasks.items():
        [throttled] = [r for r in state["Retry"] if r["ErrorEquals"] == ["PaymentProviderThrottled"]]
        assert (throttled["IntervalSeconds"], throttled["JitterStrategy"]) == (1, "FULL"), name


def test_every_step_the_plan_can_ask_for_has_a_route() -> None:
    routed = {rule.get("StringEquals") for rule in ASL["States"]["What happens next?"]["Choices"]}
    routed |= {cond.get("StringEquals") for rule in ASL["States"]["What happens next?"]["Choices"]
               for cond in rule.get("And", [])}
    acted = {state["Parameters"]["Payload"].get("action") for state in _tasks().values()}
    assert set(get_args(Action)) - routed == {"skip_card_check"}  # reached from the card check's Catch instead
    assert "skip_card_check" in acted
