"""``medspa``: run the system in the local cloud from the command line.

``medspa demo`` deploys template.yaml into the local cloud, books the bundled sample (one appointment per
location pack), runs every AppointmentLifecycle execution under the virtual clock and prints what each one
did and when, in the location's own time.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from localcloud.cloud import REPO_ROOT, LocalCloud
from medspa.adapters.store import AppointmentBooking, Store, TableNames
from medspa.domain.appointment import Service
from medspa.domain.money import Money
from medspa.policy.loader import load_packs

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])
console = Console(width=110)

SAMPLE = REPO_ROOT / "samples" / "foundation.json"


@app.callback()
def main() -> None:
    """Med spa appointment-lifecycle automation, in the local cloud."""


@app.command()
def demo(sample: Annotated[Path, typer.Option(help="Sample bookings (JSON)")] = SAMPLE) -> None:
    """Deploy the template locally and run the sample's appointments under the virtual clock."""
    spec = json.loads(sample.read_text())
    packs = load_packs()
    began = time.perf_counter()
    with LocalCloud(datetime.fromisoformat(spec["start"])) as cloud:
        deployment = cloud.deploy({"LogLevel": "WARNING"})
        deployed = time.perf_counter() - began
        store = Store(TableNames.from_env(cloud.function_environment("LifecycleFunction")), region=cloud.region)
        sfn = cloud.client("stepfunctions")
        runs = []
        for item in spec["appointments"]:
            pack = packs[item["location_id"]]
            starts_at = datetime.fromisoformat(item["starts_at_local"]).replace(tzinfo=pack.zone)
            store.appointments.upsert_from_booking(AppointmentBooking(
                appointment_id=item["appointment_id"], client_id=item["client_id"], location_id=pack.location_id,
                policy_version=pack.policy_version,
                service=Service(**{**item["service"], "price": Money(**item["service"]["price"])}),
                starts_at=starts_at, booking_version=1, event_id=f"sample-{item['appointment_id']}",
            ), now=cloud.now())
            arn = sfn.start_execution(
                stateMachineArn=cloud.state_machine_arn("AppointmentLifecycleStateMachine"),
                name=f"{item['appointment_id']}-v1",
                input=json.dumps({"appointment_id": item["appointment_id"], "booking_version": 1}),
            )["executionArn"]
            runs.append((item, pack, starts_at, arn))
        ran_from = time.perf_counter()
        cloud.run_until_idle()
        ran = time.perf_counter() - ran_from

        console.print(f"[bold]Local cloud[/]: template.yaml deployed ({len(deployment.resources)} resources) in "
                      f"{deployed:.2f}s; virtual clock from {spec['start']}")
        transitions = 0
        for item, pack, starts_at, arn in runs:
            events = sfn.get_execution_history(executionArn=arn)["events"]
            transitions += sum(e["type"].endswith("StateEntered") for e in events)
            _print_timeline(item, pack, starts_at, events)
        console.print(
            f"\n{len(runs)} appointments, {transitions} state transitions, virtual time "
            f"{spec['start']} -> {cloud.now().isoformat()}, real time {ran:.2f}s"
        )


def _print_timeline(item: dict[str, Any], pack: Any, starts_at: datetime, events: list[dict[str, Any]]) -> None:
    table = Table(title=f"{item['appointment_id']} at {pack.spa.name} ({pack.location_id}, {pack.zone.key}): "
                        f"visit {starts_at:%a %d %b %H:%M %Z}", title_justify="left")
    for column in ("local time", "UTC", "what happened"):
        table.add_column(column)
    waiting_for = ""
    for event in events:
        moment, kind = event["timestamp"], event["type"]
        details = event.get("stateEnteredEventDetails") or {}
        if kind == "ExecutionStarted":
            what = "execution started (booking version 1)"
        elif kind == "WaitStateEntered":
            reminder = json.loads(details["input"])["step"]["next_reminder"]
            waiting_for = reminder["kind"]
            what = f"sleeps until the {waiting_for} reminder"
        elif kind == "WaitStateExited":
            what = f"wakes: {waiting_for} reminder due, re-reads the appointment"
        elif kind in ("SucceedStateEntered", "FailStateEntered"):
            what = details["name"]
        elif kind in ("TaskFailed", "ExecutionFailed", "ExecutionAborted"):
            what = kind
        else:
            continue
        table.add_row(f"{moment.astimezone(pack.zone):%a %d %b %H:%M %Z}", f"{moment:%d %b %H:%M}", what)
    console.print(table)


if __name__ == "__main__":
    app()
