"""``medspa simulate``: play a scenario of booking-site events against the deployed system, report what it did.

A scenario (format: ``docs/simulate.md``) is a start time, the spa's clients with their test cards, and
booking-site events in the catalogue's own format, each at a virtual time. :func:`run_scenario` opens a
local cloud at the start, deploys ``template.yaml``, creates every client's Stripe customer and card in
the fake Stripe, delivers each event through the real path (EventBridge ``PutEvents`` on the booking bus,
or the inbound SMS topic) when the virtual clock reaches it, runs on until the scenario's ``until`` (or
until nothing is left to do), and returns the report: every message sent, every ledger entry, each
appointment's final state and lifecycle executions, each client's strikes, flags and balances, the events
sent back to the booking site, the quarantined inputs, what became of each input, and a summary per
location with where its fees went.

This module is the orchestration, and the names callers import from it (``__all__``). The parts live beside
it, each with its reasons in its own docstring:

* ``localcloud.scenario``: the scenario's models, its loading, and the checks that refuse it in one line
  (:class:`ScenarioError`) before anything is deployed;
* ``localcloud.capture``: running it in the local cloud (Stripe set-up, delivery of each input, the clock's
  idle hooks that record what the system sends) and reading back what the run left behind;
* ``localcloud.report``: the report's lines, and the summary per location with its money
  (``money_summary``). The HTML page is ``localcloud.report_html``; the console's timeline, ``localcloud.cli``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from localcloud.capture import (
    BookingSiteOutbox,
    QueueRecorder,
    Recorders,
    SentMessageTap,
    collect,
    create_stripe_ids,
    deliver,
    fake_stripe,
    run_inputs,
)
from localcloud.cloud import LocalCloud
from localcloud.report import REPORT_KEYS, mask, messages_from
from localcloud.scenario import (
    SCENARIOS_DIR,
    ScenarioError,
    StripeIds,
    load_scenario,
    prepare_inputs,
    validate_scenario,
)

__all__ = [
    "REPORT_KEYS",
    "SCENARIOS_DIR",
    "QueueRecorder",
    "ScenarioError",
    "SentMessageTap",
    "load_scenario",
    "mask",
    "messages_from",
    "run_scenario",
    "validate_scenario",
]


def run_scenario(source: Path | str | Mapping[str, Any], report: Path | str | None = None, *,
                 html: Path | str | None = None) -> dict[str, Any]:
    """Run one scenario in its own local cloud; write the JSON report to ``report`` and the owner's HTML page
    to ``html`` if given; return the report.

    The whole scenario is checked first, with placeholder Stripe ids: a typo found after the deploy and
    a month of virtual time would cost the owner the run, and a traceback would not say which line.
    """
    scenario = load_scenario(source)
    prepare_inputs(scenario, StripeIds.placeholders(scenario))
    began = time.perf_counter()
    with LocalCloud(scenario.start) as cloud:
        deployment = cloud.deploy({"LogLevel": "WARNING"})
        deployed = time.perf_counter() - began
        fake, owned = fake_stripe(cloud)
        try:
            from fakestripe import client_for

            ids = create_stripe_ids(client_for(fake), scenario, pause=lambda: cloud.run_for(timedelta(seconds=1)))
            inputs = prepare_inputs(scenario, ids)
            recorders = Recorders(
                tap=SentMessageTap(cloud.region),
                outbox=BookingSiteOutbox(cloud, deployment.outputs["BookingEventsBusName"]),
                dlq=QueueRecorder(cloud.client("sqs"), deployment.outputs["IntakeDeadLetterQueueUrl"], consume=False)
                if deployment.outputs.get("IntakeDeadLetterQueueUrl") else None,
            )
            assert cloud.clock is not None
            for hook in recorders.hooks():
                cloud.clock.add_idle_hook(hook)
            ran_from = time.perf_counter()
            delivered = [deliver(cloud, scenario, item) for item in run_inputs(cloud, inputs)]
            if scenario.until is not None:
                cloud.run_until(scenario.until)
            else:
                cloud.run_until_idle()  # recurring schedules (daily drafts) fire on the way, keep nothing going
            ran = time.perf_counter() - ran_from
            result = collect(cloud, scenario, delivered, recorders, ids)
        finally:
            if owned:
                fake.stop()
    result.update(real_seconds=round(time.perf_counter() - began, 3), deploy_seconds=round(deployed, 3),
                  run_seconds=round(ran, 3), fake_stripe="cloud" if not owned else "runner")
    result = {key: result[key] for key in REPORT_KEYS if key in result}
    if report is not None:
        Path(report).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    if html is not None:
        from localcloud.report_html import write_html

        write_html(result, html)
    return result

