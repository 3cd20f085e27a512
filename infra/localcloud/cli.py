"""``medspa``: run the system in the local cloud from the command line.

``medspa simulate SCENARIO [--report FILE] [--html FILE]`` plays one scenario (``docs/simulate.md``)
against template.yaml deployed in the local cloud and prints, per appointment, a timeline in the
location's own time (events received, executions, states entered, messages, ledger entries), the same per
membership (events, drafts and the runs that took them, decisions), then a summary per location, where its
fees went and how its memberships stand; ``--report`` writes the full JSON report, ``--html`` the
page a spa owner opens in a browser. A scenario that cannot be played as written is refused before
anything is deployed, with one line naming the entry and the field, and exit status 2.

``medspa backtest SCENARIO [--pack FILE ...] [--report FILE]`` plays the same scenario through the same services
in one process (``localcloud.backtest``: in-memory adapters, the lifecycle loop driven on a virtual clock) and
prints the summary per location; the report has the simulator's keys for what both engines know. With packs,
it plays the scenario once per policy (the bundled packs and one file, or each of two or more files) and prints
each location's figures side by side, a column per policy, the rows that differ in bold.

``medspa capacity [--size small|chain100|chain1000] [--scenario FILE] [--json FILE]`` prints a paper model of
the AWS and Stripe quotas (``localcloud.capacity``): for each, the peak load a chain of that size puts on it,
the default quota, the headroom and the first limit hit; from a preset, options, or a scenario scaled to a month.

``medspa privacy export|correct|erase`` serves a client's privacy request against the deployed stack
(``localcloud.privacy_cli``); ``medspa admin ...`` does what the spa API does (``localcloud.admin_cli``).

``medspa demo`` runs every scenario in ``samples/scenarios/`` (one per seed location, and more stories of a
location, such as its memberships), one after another, each in its own local cloud, prints each one the same
way, and ends with the totals: appointments and memberships simulated, state transitions, real seconds and
appointments per second. (Scenarios in parallel processes
were tried and were slower on the shared 2-core machine measured: the clock hands the baton between
threads many times per virtual instant, and that suffers more from CPU contention than a second core gains.)
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from localcloud.admin_cli import app as admin_app
from localcloud.privacy_cli import app as privacy_app
from localcloud.simulate import SCENARIOS_DIR, ScenarioError, run_scenario

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])
app.add_typer(privacy_app, name="privacy")
app.add_typer(admin_app, name="admin")
console = Console(width=120)


@app.callback()
def main() -> None:
    """Med spa appointment-lifecycle automation, in the local cloud."""


@app.command()
def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (JSON, see docs/simulate.md)", exists=True,
                                             dir_okay=False)],
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report to this file")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the report as an HTML page (money per "
                                                             "location, table and chart) to this file")] = None,
) -> None:
    """Play a scenario of booking-site events in the local cloud and print what the system did."""
    _quiet_moto()
    try:
        with _held_function_logs() as logs:
            result = run_scenario(scenario, report, html=html)
    except ScenarioError as error:
        _scenario_error(scenario, error)
    print_report(result, logs.getvalue())
    if report is not None:
        console.print(f"report written to {report}")
    if html is not None:
        console.print(f"HTML page written to {html}")


@app.command()
def backtest(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (JSON, see docs/simulate.md)", exists=True,
                                             dir_okay=False)],
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report to this file")] = None,
    pack: Annotated[list[Path] | None, typer.Option(
        "--pack", help="A location's policy pack (TOML) to play instead of its bundled one; give one to compare it "
        "with the bundled pack, or two or more to compare them", exists=True, dir_okay=False)] = None,
) -> None:
    """Play a scenario through the same services in process, on a virtual clock, and print the summary per
    location: seconds for a year of bookings, where ``simulate`` takes about a second per appointment."""
    from localcloud.backtest import compare_packs, run_backtest
    from medspa.policy.loader import PolicyPackError

    try:
        if pack:
            _print_comparison(compare_packs(scenario, pack, report))
        else:
            _print_summary(run_backtest(scenario, report))
    except ScenarioError as error:
        _scenario_error(scenario, error)
    except PolicyPackError as error:
        typer.echo(" ".join(str(error).split()), err=True)
        raise typer.Exit(2) from None
    if report is not None:
        console.print(f"report written to {report}")


@app.command()
def capacity(
    size: Annotated[str | None, typer.Option("--size", help="A preset: small (1 spa, 1,000 appointments a month), "
                                                          "chain100 (100 spas, 100,000), chain1000 (1,000 spas, "
                                                          "1,000,000 and 200,000 memberships)")] = None,
    scenario: Annotated[Path | None, typer.Option("--scenario", help="Derive the inputs from a scenario file "
                                                                     "(docs/simulate.md), scaled to a month",
                                                  exists=True, dir_okay=False)] = None,
    spas: Annotated[int | None, typer.Option(help="Spas (locations)")] = None,
    appointments: Annotated[float | None, typer.Option(help="Appointments a month")] = None,
    memberships: Annotated[float | None, typer.Option(help="Active memberships (dues drafted a month)")] = None,
    lead_time: Annotated[list[str] | None, typer.Option("--lead-time", help="SHARE:DAYS booked ahead, repeated "
                                                                            "(e.g. 0.9:7 --lead-time 0.1:180)")] = None,
    time_zone: Annotated[list[str] | None, typer.Option("--time-zone", help="ZONE:SHARE of the spas, repeated "
                                                                            "(e.g. America/New_York:0.5)")] = None,
    identity_kind: Annotated[str | None, typer.Option(help="SMS origination identity: 10dlc, toll_free or "
                                                           "short_code")] = None,
    identities: Annotated[int | None, typer.Option(help="How many of them the account texts from")] = None,
    declined_share: Annotated[float | None, typer.Option(help="Share of visits whose fee declines through "
                                                              "dunning")] = None,
    region: Annotated[str | None, typer.Option(help="big_three (us-east-1, us-west-2, eu-west-1) or "
                                                    "elsewhere")] = None,
    reminder_spread_minutes: Annotated[int | None, typer.Option(help="The packs' morning-of reminder "
                                                                     "spread_minutes")] = None,
    card_check_spread_minutes: Annotated[int | None, typer.Option(help="The packs' [card_check] "
                                                                       "spread_minutes")] = None,
    stripe_requests_per_second: Annotated[int | None, typer.Option(help="The Stripe budget (template "
                                                                        "StripeRequestsPerSecond)")] = None,
    stripe_drafts_share: Annotated[float | None, typer.Option(help="The drafts' share of it (template "
                                                                   "StripeDraftsShare)")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON to this file")] = None,
) -> None:
    """A paper model of the AWS and Stripe quotas: each one's peak load against its default, the headroom
    (quota / peak) and the first limit hit. Options override the preset or the scenario's figures."""
    from pydantic import ValidationError

    from localcloud import capacity as model

    try:
        base = _capacity_base(size, scenario)
        given: dict[str, Any] = {"spas": spas, "appointments_per_month": appointments,
                                 "memberships_per_month": memberships, "declined_share": declined_share,
                                 "region": region, "reminder_spread_minutes": reminder_spread_minutes,
                                 "card_check_spread_minutes": card_check_spread_minutes,
                                 "stripe_requests_per_second": stripe_requests_per_second,
                                 "stripe_drafts_share": stripe_drafts_share}
        if lead_time:
            given["lead_times"] = [_pair("--lead-time", text, ("share", "days_ahead")) for text in lead_time]
        if time_zone:
            given["time_zones"] = [_pair("--time-zone", text, ("time_zone", "share")) for text in time_zone]
        if identity_kind is not None or identities is not None:
            given["sending_identities"] = {**base.get("sending_identities", {}),
                                           **({"kind": identity_kind} if identity_kind else {}),
                                           **({"count": identities} if identities else {})}
        inputs = model.CapacityInputs.model_validate({**base, **{k: v for k, v in given.items() if v is not None}})
    except (ValidationError, ValueError) as error:
        typer.echo(f"capacity: {' '.join(str(error).split())}", err=True)
        raise typer.Exit(2) from None
    report = model.capacity(inputs)
    _print_capacity(report)
    if json_file is not None:
        json_file.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
        console.print(f"report written to {json_file}")


def _capacity_base(size: str | None, scenario: Path | None) -> dict[str, Any]:
    from localcloud import capacity as model

    if size is not None and scenario is not None:
        raise ValueError("--size and --scenario: give one or the other")
    if size is not None:
        if size not in model.PRESETS:
            raise ValueError(f"--size: {size!r} is not one of {', '.join(model.PRESETS)}")
        return model.PRESETS[size].model_dump(mode="json")
    if scenario is not None:
        from localcloud.scenario import load_scenario
        from medspa.policy.loader import load_packs

        try:
            loaded = load_scenario(scenario)
        except ScenarioError as error:
            _scenario_error(scenario, error)
        zones = {location: pack.location.time_zone for location, pack in load_packs().items()}
        return model.inputs_from_scenario(loaded, zones).model_dump(mode="json")
    return {"name": "custom", "lead_times": [lt.model_dump() for lt in model.LEAD_TIMES],
            "time_zones": [tz.model_dump() for tz in model.EASTERN]}


def _pair(option: str, text: str, keys: tuple[str, str]) -> dict[str, str]:
    """``A:B`` split at its last colon (a time zone has none, a share or a day count none either)."""
    first, sep, second = text.rpartition(":")
    if not sep or not first:
        raise ValueError(f"{option}: {text!r} is not {keys[0].upper()}:{keys[1].upper()}")
    return {keys[0]: first, keys[1]: second}


def _print_capacity(report: Any) -> None:
    """One row per quota, as the issue asks: the peak, the default, the headroom, the first limit hit."""
    inputs = report.inputs
    identities = inputs.sending_identities
    console.print(
        f"[bold]{escape(inputs.name)}[/]: {inputs.spas:,} spa(s), {inputs.appointments_per_month:,.0f} appointments "
        f"and {inputs.memberships_per_month:,.0f} memberships a month; {report.mean_open_days:.1f} days open per "
        f"execution; busiest zone {report.busiest_time_zone}; {identities.count} {identities.kind.value} SMS "
        f"identit{'y' if identities.count == 1 else 'ies'}; Region {inputs.region.value}")
    table = Table(title="capacity: peak load against the default quota (headroom = quota / peak)",
                  title_justify="left")
    for column, justify in (("quota", "left"), ("peak", "right"), ("default", "right"), ("unit", "left"),
                            ("headroom", "right"), ("", "left"), ("when", "left"), ("source", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    sources = list(dict.fromkeys(load.quota.source for load in report.loads))
    for load in report.loads:
        headroom = "-" if load.headroom == float("inf") else _headroom(load.headroom)
        marker = "[bold red]first hit[/]" if load.first_hit else ("[red]over[/]" if load.headroom < 1 else "")
        table.add_row(load.quota.name, _figure(load.peak), _figure(load.limit), load.quota.unit, headroom, marker,
                      escape(load.when), escape(f"{load.quota.doc} [{sources.index(load.quota.source) + 1}]"))
    console.print(table)
    for n, source in enumerate(sources, 1):
        url = next(q.quota.url for q in report.loads if q.quota.source == source)
        console.print(escape(f"  [{n}] {source}" + (f" ({url})" if url else "")), style="dim", highlight=False)
    console.print(f"the morning reminders: {report.morning_texts_per_identity:,.0f} texts per identity; the last "
                  f"leaves {report.last_text_late_seconds / 60:,.1f} min after its reminder time")
    wait = next(load for load in report.loads if load.quota.key == "stripe_budget_wait")
    console.print(f"the card checks: the last waits {wait.peak / 60:,.1f} min for its share of the Stripe budget "
                  f"({report.capped_requests_per_second} of {inputs.stripe_requests_per_second} requests/s), against "
                  f"{wait.limit / 60:,.1f} min of retries; the drafts on the 1st take {report.drafts_seconds / 60:,.1f} "
                  "min")
    first = report.first_limit
    verdict = "first limit hit" if first.headroom < 1 else "no limit hit; the nearest"
    console.print(f"[bold]{verdict}: {first.quota.name}[/] (peak {_figure(first.peak)} {first.quota.unit} "
                  f"against {_figure(first.limit)}, headroom {_headroom(first.headroom)}, {escape(first.when)})")


def _headroom(value: float) -> str:
    """Two significant figures below 10, where a limit is near or hit (0.0043 must not print as 0.00)."""
    return f"{value:.2g}" if value < 10 else f"{value:,.0f}"


def _figure(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.3g}"


def _scenario_error(scenario: Path, error: ScenarioError) -> NoReturn:
    """One plain line on stderr, exit 2: the scenario is checked whole before anything is deployed, and a
    spa owner fixing a file wants the entry and the field, not a traceback or a line wrapped at 120."""
    typer.echo(f"{scenario}: {' '.join(str(error).split())}", err=True)
    raise typer.Exit(2)


@app.command()
def demo(
    scenarios: Annotated[Path, typer.Option(help="Directory of scenario files")] = SCENARIOS_DIR,
    reports: Annotated[Path | None, typer.Option(help="Write each JSON report into this directory")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write each report as an HTML page into this "
                                                             "directory")] = None,
) -> None:
    """Run every sample scenario (one per seed location, and more stories of one) and print each timeline,
    summary and the totals."""
    _quiet_moto()
    files = sorted(scenarios.glob("*.json"))
    if not files:
        console.print(f"[red]no scenarios in {scenarios}[/]")
        raise typer.Exit(2)
    for directory in (reports, html):
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    results = []
    for file in files:
        try:
            with _held_function_logs() as logs:
                result = run_scenario(file, reports / f"{file.stem}.report.json" if reports else None,
                                      html=html / f"{file.stem}.html" if html else None)
        except ScenarioError as error:
            _scenario_error(file, error)
        print_report(result, logs.getvalue())
        results.append(result)
    print_totals(results, time.perf_counter() - began)


# ====================================================================== printing


def print_report(report: Mapping[str, Any], function_logs: str = "") -> None:
    scenario = report["scenario"]
    console.rule(f"[bold]{scenario['name']}[/]  {report['started_at']} -> {report['ended_at']} (virtual)")
    if scenario.get("description"):
        console.print(scenario["description"], style="dim")
    for appointment in report["appointments"]:
        _print_timeline(report, appointment)
        console.print()
    for membership in report.get("memberships") or []:
        _print_membership(report, membership)
        console.print()
    _print_unattached(report)
    _print_function_logs(function_logs)
    _print_summary(report)


def _print_function_logs(text: str) -> None:
    """What the functions logged at WARNING and above, one line each (they log JSON, without PII)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return
    console.print(f"function logs ({len(lines)}):")
    for line in lines:
        try:
            record = json.loads(line)
            shown = f"{record.get('level')} {record.get('function_name', '')}: {record.get('message')}"
            shown += f" ({record['reason']})" if record.get("reason") else ""
        except (ValueError, AttributeError):
            shown = line
        console.print(f"  {escape(shown)}", style="dim")


def _print_timeline(report: Mapping[str, Any], a: Mapping[str, Any]) -> None:
    zone = ZoneInfo(a.get("time_zone") or "UTC")
    aid = a["appointment_id"]
    rows: list[tuple[str, int, str]] = []
    for item in report["inputs"]:
        if item.get("appointment_id") == aid:
            rows.append((item["at"], 0, _describe_input(item, zone)))
    for execution in a.get("executions", []):
        rows.append((execution["started_at"], 1, f"execution [cyan]{execution['name']}[/] started"))
        rows += _state_rows(execution)
        if execution.get("stopped_at"):
            end = f"execution [cyan]{execution['name']}[/] {execution['status'].lower()}"
            if execution.get("error") or execution.get("cause"):
                end += escape(f": {execution.get('error') or ''} - {execution.get('cause') or ''}")
            rows.append((execution["stopped_at"], 3, end))
    if a.get("confirmed_at") and a.get("confirmed_via") not in (None, "booking_site"):
        rows.append((a["confirmed_at"], 4, f"confirmed by the client's {a['confirmed_via'].upper()} reply"))
    for m in report["messages"]:
        if m["appointment_id"] == aid:
            rows.append((m["at"], 5, _describe_message(m)))
    for e in report["ledger"]:
        if e["appointment_id"] == aid and not e.get("membership_id"):
            rows.append((e["created_at"], 4, _describe_ledger(e)))
    for e in report["events_to_booking_site"]:
        if e["appointment_id"] == aid:
            rows.append((e["at"], 6, f"-> booking site: {e['detail_type']} ({e['source']})"))
    for q in report["quarantined"]:
        if q["appointment_id"] == aid:
            rows.append((q["at"], 7, f"[red]quarantined[/] {q['detail_type']}: {escape(q['rejection_reason'] or '')}"))
    service = a.get("service") or {}
    starts = _local(a["starts_at"], zone) if a.get("starts_at") else "?"
    title = (f"[bold]{aid}[/] {service.get('name', '')} ({service.get('duration_minutes')} min, "
             f"{_money(service['price']) if service.get('price') else '?'}) for {a.get('client_id')} at "
             f"{a.get('location_id')} ({zone.key}): visit {starts}; final: [bold]{a.get('status')}[/] "
             f"v{a.get('booking_version')}")
    table = Table(title=title, title_justify="left", show_lines=False, pad_edge=False)
    table.add_column("local time", no_wrap=True)
    table.add_column("UTC", no_wrap=True)
    table.add_column("what happened")
    for at, _, what in sorted(rows, key=lambda r: (r[0] or "", r[1])):
        table.add_row(_local(at, zone), _utc(at), what)
    console.print(table)


def _state_rows(execution: Mapping[str, Any]) -> list[tuple[str, int, str]]:
    """States entered, one row per instant (Choice states left out: they only route)."""
    instants: list[tuple[str, list[str]]] = []
    for state in execution.get("states", []):
        if state["type"] == "Choice":
            continue
        if instants and instants[-1][0] == state["at"]:
            instants[-1][1].append(state["name"])
        else:
            instants.append((state["at"], [state["name"]]))
    return [(at, 2, f"  [dim]{escape(' -> '.join(names))}[/]") for at, names in instants]


def _describe_input(item: Mapping[str, Any], zone: ZoneInfo) -> str:
    if item["kind"] == "inbound_sms":
        text = escape(f"inbound SMS from {item['from']}: {item['body']!r}")
        return text + (f" [yellow](not delivered: {item['not_delivered']})[/]" if item.get("not_delivered") else "")
    facts = item.get("facts") or {}
    parts = [f"booking site: [bold]{item['detail_type']}[/]"]
    if facts.get("client_id"):
        parts.append(f"client {escape(facts['client_id'])}")
    if item.get("booking_version") is not None:
        parts.append(f"v{item['booking_version']}")
    if item.get("membership_version") is not None:
        parts.append(f"v{item['membership_version']}")
    parts += _membership_facts(facts, zone)
    if facts.get("service"):
        parts.append(escape(facts["service"]["name"]))
    if facts.get("starts_at"):
        parts.append(f"visit {_local(facts['starts_at'], zone)}")
    if facts.get("party_size", 1) != 1:
        parts.append(f"party of {facts['party_size']}")
    for key in ("by", "channel", "marked_by"):
        if facts.get(key):
            parts.append(f"{key.replace('_', ' ')} {facts[key]}")
    if facts.get("arrived_at"):
        parts.append(f"arrived {_local(facts['arrived_at'], zone)}")
    payment = facts.get("payment") or {}
    held = [f"{k} {_money(v)}" for k, v in payment.items() if isinstance(v, dict) and "amount" in v]
    if payment.get("course_id"):
        held.append(f"course {payment['course_id']}")
    if held:
        parts.append("(" + ", ".join(held) + ")")
    if item.get("expect_rejected"):
        parts.append("[yellow](deliberately invalid)[/]")
    if item.get("not_delivered"):
        parts.append(f"[red]not delivered: {item['not_delivered']}[/]")
    return " ".join(parts)


def _membership_facts(facts: Mapping[str, Any], zone: ZoneInfo) -> list[str]:
    parts = []
    plan = facts.get("plan")
    if isinstance(plan, Mapping) and plan.get("monthly_dues"):
        parts.append(escape(f"{plan.get('name')} ({_money(plan['monthly_dues'])} a month, "
                            f"{plan.get('service_credits_per_month')} service(s))"))
    if facts.get("starts_on"):
        parts.append(f"first draft {facts['starts_on']}")
    if facts.get("paid_in_full_until"):
        parts.append(f"paid in full until {facts['paid_in_full_until']}")
    for key, label in (("form_sent_at", "form sent"), ("submitted_at", "submitted"), ("redeemed_at", "used")):
        if facts.get(key):
            parts.append(f"{label} {_local(facts[key], zone)}")
    if facts.get("paper_certificates"):
        parts.append("paper certificates")
    if facts.get("credits") is not None:
        parts.append(f"{facts['credits']} service(s)")
    return parts


def _describe_message(m: Mapping[str, Any]) -> str:
    kind = m.get("kind") or "message"
    if m["status"] != "sent":
        return f"{m['channel']} {kind}: [yellow]{m['status']}[/] {m.get('error') or ''}"
    text = (m.get("subject") + ": " if m.get("subject") else "") + (m.get("text") or "")
    text = " ".join(text.split())
    text = escape(text[:90] + ("..." if len(text) > 90 else ""))
    return f"{m['channel'].upper()} [magenta]{kind}[/] to {m['to']}: {text}"


def _describe_ledger(e: Mapping[str, Any]) -> str:
    status = e["status"]
    colour = {"succeeded": "green", "declined": "red", "failed": "red", "requires_action": "yellow"}.get(status, "")
    outcome = f"[{colour}]{status}[/]" if colour else status
    extra = f" ({e['decline_code']})" if e.get("decline_code") else ""
    return (f"ledger: {e['kind']} {e['purpose']} {_money(e['amount'])} attempt {e['attempt']}: "
            f"{outcome}{extra}")


def _print_membership(report: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    """A membership's timeline in its home spa's time: the booking site's events (and the member's new
    cards), each draft with the MembershipDrafts run that took it, the runs started for it alone, and what
    the membership decided (drafts aside, which their own rows show)."""
    zone = ZoneInfo(m.get("time_zone") or "UTC")
    mid, spa, client = m["membership_id"], m["spa_id"], m["client_id"]
    rows: list[tuple[str, int, str]] = []
    for item in report["inputs"]:
        if item.get("spa_id") != spa:
            continue
        card = item.get("detail_type") == "CardUpdated" and f"{spa}#{(item.get('facts') or {}).get('client_id')}" == client
        if item.get("membership_id") == mid or card:
            rows.append((item["at"], 0, _describe_input(item, zone)))
    for e in report.get("executions") or []:
        if e.get("membership_id") == mid and e["name"].startswith(f"{spa}."):
            rows.append((e["started_at"], 1, f"execution [cyan]{e['name']}[/] started"))
            if e.get("stopped_at"):
                rows.append((e["stopped_at"], 3, f"execution [cyan]{e['name']}[/] {e['status'].lower()}"))
    for d in report.get("drafts") or []:
        if d["membership_id"] == mid and d["spa_id"] == spa:
            rows.append((d["created_at"], 2, _describe_draft(d)))
    for decision in m.get("decisions") or ():
        if decision["outcome"] != "drafted":
            colour = "red" if decision["outcome"].endswith(("refused", "declined", "unpaid")) else "cyan"
            caused = 0 if decision.get("membership_version") is not None else 4  # right after the event
            rows.append((decision["decided_at"], caused,
                         f"[{colour}]{decision['outcome']}[/]: {escape(decision['reason'])}"))
    plan = m.get("plan") or {}
    certificates = m.get("certificates") or []
    final = (f"final: [bold]{m['status']}[/]" + (" [red]past due[/]" if m.get("past_due") else "")
             + f", draft day {m['draft_day']}, next draft {m.get('next_draft_on') or '-'}"
             + (f" (retry {m['next_retry_on']})" if m.get("next_retry_on") else "")
             + f", {m['credits']} service(s), store credit {_money(m['store_credit'])}"
             + (f", {len(certificates)} paper certificate(s) until {certificates[0]['expires_on']}" if certificates
                else ""))
    title = (f"[bold]{mid}[/] {escape(str(plan.get('name')))} "
             f"({_money(plan['monthly_dues']) if plan.get('monthly_dues') else '?'} a month) for {client} at "
             f"{m.get('location_id')} ({zone.key}): started {m.get('started_on')}; {final}")
    table = Table(title=title, title_justify="left", show_lines=False, pad_edge=False)
    table.add_column("local time", no_wrap=True)
    table.add_column("UTC", no_wrap=True)
    table.add_column("what happened")
    for at, _, what in sorted(rows, key=lambda r: (r[0] or "", r[1])):
        table.add_row(_local(at, zone), _utc(at), what)
    console.print(table)


def _describe_draft(d: Mapping[str, Any]) -> str:
    status = d["status"]
    colour = {"succeeded": "green", "declined": "red", "failed": "red", "requires_action": "yellow"}.get(status, "")
    outcome = f"[{colour}]{status}[/]" if colour else status
    extra = f" ({d['decline_code']})" if d.get("decline_code") else ""
    run = str(d.get("execution") or "").removeprefix("MembershipDraftsStateMachine")  # the daily runs' long prefix
    by = f" by [cyan]{run}[/]" if run else ""
    return (f"draft: {d['kind']} {d['purpose']} of {d['due_on']} {_money(d['amount'])} attempt {d['attempt']}: "
            f"{outcome}{extra}{by}")


def _print_unattached(report: Mapping[str, Any]) -> None:
    """Inputs and outputs with no appointment in the table: client events, quarantined bookings, replies.
    A membership's events and the decisions told to the booking site are in the membership's timeline."""
    known = {a["appointment_id"] for a in report["appointments"]}

    def loose(item: Mapping[str, Any]) -> bool:
        return item.get("appointment_id") not in known and not item.get("membership_id")

    zones = {a.get("location_id"): ZoneInfo(a.get("time_zone") or "UTC") for a in report["appointments"]}
    rows = [(i["at"], _describe_input(i, zones.get((i.get("facts") or {}).get("location_id"), ZoneInfo("UTC"))))
            for i in report["inputs"] if loose(i)]
    rows += [(m["at"], _describe_message(m)) for m in report["messages"] if loose(m)]
    rows += [(e["at"], f"-> booking site: {e['detail_type']} ({e['source']})")
             for e in report["events_to_booking_site"] if loose(e)]
    rows += [(q["at"], f"[red]quarantined[/] {q['detail_type']}: {escape(q['rejection_reason'] or '')}")
             for q in report["quarantined"] if loose(q)]
    if not rows:
        return
    table = Table(title="not tied to an appointment in the table", title_justify="left")
    table.add_column("UTC", no_wrap=True)
    table.add_column("what happened")
    for at, what in sorted(rows, key=lambda r: r[0] or ""):
        table.add_row(_utc(at), what)
    console.print(table)


_SUMMARY_ROWS = (
    ("appointments", "appointments"), ("reminders sent", "reminders_sent"),
    ("confirmation requests", "confirmation_requests"), ("confirmed", "confirmations"),
    ("auto-cancelled", "auto_cancels"), ("cancelled", "cancellations"), ("no-shows", "no_shows"),
    ("completed", "completed"), ("fees charged to a card", "fees_charged"),
    ("fees from deposit/course", "fees_covered"), ("fee charges declined", "fees_declined"),
    ("outstanding", "outstanding"), ("strikes", "strikes"), ("prepay flags", "prepay_flags"),
    ("messages sent", "messages_sent"), ("state transitions", "state_transitions"),
)


def _print_summary(report: Mapping[str, Any]) -> None:
    """One column per location, one row per measure (narrow enough for a terminal)."""
    summary = report["summary"]
    table = Table(title=f"summary: {report['scenario']['name']}", title_justify="left")
    table.add_column("")
    for r in summary["locations"]:
        table.add_column(r["location_id"], justify="right")
    for label, key in _SUMMARY_ROWS:
        if key == "state_transitions" and report.get("engine") == "backtest":
            continue  # no Step Functions execution, so no state entered: a zero would read as nothing done
        table.add_row(label, *(_cell(r[key]) for r in summary["locations"]))
    console.print(table)
    _print_money(report)
    _print_memberships(report)
    counts = summary.get("inputs") or {}
    if counts:
        console.print("inputs: " + ", ".join(f"{n} {outcome.replace('_', ' ')}" for outcome, n in counts.items() if n)
                      + f" (of {len(report['inputs'])})")
    if report.get("engine") == "backtest":
        console.print(
            f"{summary['appointments_simulated']} appointments, {summary['messages_sent']} messages, "
            f"{summary['events_to_booking_site']} events to the booking site; in process on the in-memory "
            f"adapters, real {report['real_seconds']:.2f}s\n")
        return
    console.print(
        f"{summary['appointments_simulated']} appointments, {summary['executions']} executions, "
        f"{summary['state_transitions']} state transitions, {summary['messages_sent']} messages, "
        f"{summary['events_to_booking_site']} events to the booking site, {summary['quarantined']} quarantined; "
        f"real {report['real_seconds']:.2f}s (deploy {report['deploy_seconds']:.2f}s, "
        f"run {report['run_seconds']:.2f}s); fake Stripe: {report['fake_stripe']}\n")


_MONEY_ROWS = (("fees assessed", "assessed"), ("collected on the card", "collected"),
               ("covered (deposit, prepayment, course)", "covered"), ("waived", "waived"),
               ("outstanding", "outstanding"), ("forfeited (deposits, prepayments kept)", "forfeited"))
_FEE_LABELS = {"late_cancel": "late cancels", "no_show": "no-shows", "late_reschedule": "late reschedules"}


def _print_money(report: Mapping[str, Any]) -> None:
    """Where the fees went, one column per location: the same figures as ``summary.locations[].money``."""
    locations = [r for r in report["summary"]["locations"] if r.get("money")]
    if not locations:
        return
    table = Table(title=f"money: {report['scenario']['name']}", title_justify="left")
    table.add_column("")
    for r in locations:
        table.add_column(r["location_id"], justify="right")
    reasons = list(dict.fromkeys(reason for r in locations for reason in r["money"]["fees"]))
    for reason in reasons:
        fees = [r["money"]["fees"].get(reason, {"count": 0, "total": {}}) for r in locations]
        table.add_row(_FEE_LABELS.get(reason, reason.replace("_", " ")), *map(_cell, fees))
    for label, key in _MONEY_ROWS:
        table.add_row(label, *(_cell(r["money"][key]) for r in locations))
    console.print(table)


_MEMBERSHIP_ROWS = (
    ("memberships", "count"), ("active", "by_status.active"), ("frozen", "by_status.frozen"),
    ("cancelled", "by_status.cancelled"), ("expired", "by_status.expired"), ("past due", "past_due"),
    ("drafts collected", "drafts_collected"), ("drafts declined (attempts)", "drafts_declined"),
    ("dues outstanding (months)", "drafts_outstanding"), ("store credit applied", "store_credit_applied"),
    ("store credit held (LuXe Bux)", "store_credit_held"), ("paper certificates issued", "certificates_issued"),
    ("certificates expired", "certificates_expired"), ("expiries", "expiries"),
)


def _print_comparison(comparison: Mapping[str, Any]) -> None:
    """Per location, a column per policy and a row per figure of the summary, money and membership tables; a row
    whose figures differ is bold, so the owner's eye goes to what the policy changes."""
    variants = comparison["variants"]
    rows_of = [{r["location_id"]: r for r in v["summary"]["locations"]} for v in variants]
    for location in dict.fromkeys(loc for rows in rows_of for loc in rows):
        table = Table(title=f"{comparison['scenario']['name']}: {location}", title_justify="left")
        table.add_column("")
        for v in variants:
            table.add_column(v["label"] + (f"\n{v['pack']}" if v["pack"] else ""), justify="right")
        measures = [_measures(rows.get(location)) for rows in rows_of]
        for label in dict.fromkeys(label for m in measures for label in m):
            cells = [m.get(label, "0") for m in measures]
            table.add_row(label, *cells, style="bold" if len(set(cells)) > 1 else None)
        console.print(table)
    console.print(", ".join(f"{v['label']}: {v['real_seconds']:.2f}s" for v in variants) + " real, in process\n")


def _measures(row: Mapping[str, Any] | None) -> dict[str, str]:
    """Every figure of one location's summary row, labelled as the summary, money and membership tables label
    them (state transitions left out: the backtest has none)."""
    if row is None:
        return {}
    figures = {label: _cell(row[key]) for label, key in _SUMMARY_ROWS if key != "state_transitions"}
    money = row.get("money") or {}
    figures |= {"fees for " + _FEE_LABELS.get(reason, reason.replace("_", " ")): _cell(fee)
                for reason, fee in (money.get("fees") or {}).items()}
    figures |= {label: _cell(money[key]) for label, key in _MONEY_ROWS if key in money}
    if (row.get("memberships") or {}).get("count"):
        figures |= {label: _cell(_part(row["memberships"], key)) for label, key in _MEMBERSHIP_ROWS}
    return figures


def _part(figures: Mapping[str, Any], key: str) -> Any:
    value: Any = figures
    for part in key.split("."):
        value = value.get(part, 0) if isinstance(value, Mapping) else 0
    return value


def _cell(value: Any) -> str:
    """A count, a count with its totals, or totals by currency, as the summary tables print them."""
    if isinstance(value, Mapping) and "count" in value:
        return f"{value['count']}" + (f" ({_totals(value['total'])})" if value["total"] else "")
    if isinstance(value, Mapping):
        return _totals(value) or "0"
    return str(value)


def _print_memberships(report: Mapping[str, Any]) -> None:
    """How each location's memberships stand, one column per location with members: the same figures as
    ``summary.locations[].memberships``, and a line on the MembershipDrafts runs."""
    summary = report["summary"]
    locations = [r for r in summary["locations"] if (r.get("memberships") or {}).get("count")]
    if not locations:
        return
    table = Table(title=f"memberships: {report['scenario']['name']}", title_justify="left")
    table.add_column("")
    for r in locations:
        table.add_column(r["location_id"], justify="right")
    for label, key in _MEMBERSHIP_ROWS:
        table.add_row(label, *(_cell(_part(r["memberships"], key)) for r in locations))
    console.print(table)
    drafts = (summary.get("state_machines") or {}).get("MembershipDrafts")
    if drafts:
        alone = sum(1 for e in report.get("executions") or [] if e["state_machine"] == "MembershipDrafts"
                    and e.get("membership_id"))
        console.print(f"MembershipDrafts: {drafts['executions']} runs ({drafts['executions'] - alone} daily per time "
                      f"zone, {alone} for one membership), {drafts['state_transitions']} state transitions; "
                      f"{summary.get('drafts', 0)} draft ledger entries")


def print_totals(results: list[Mapping[str, Any]], real_seconds: float) -> None:
    table = Table(title="demo totals", title_justify="left")
    for column in ("scenario", "appointments", "memberships", "state transitions", "messages", "deploy s", "run s",
                   "real s"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for r in results:
        s = r["summary"]
        table.add_row(r["scenario"]["name"], str(s["appointments_simulated"]), str(s.get("memberships_simulated", 0)),
                      str(s["state_transitions"]), str(s["messages_sent"]), f"{r['deploy_seconds']:.2f}",
                      f"{r['run_seconds']:.2f}", f"{r['real_seconds']:.2f}")
    console.print(table)
    appointments = sum(r["summary"]["appointments_simulated"] for r in results)
    members = sum(r["summary"].get("memberships_simulated", 0) for r in results)
    transitions = sum(r["summary"]["state_transitions"] for r in results)
    running = sum(r["run_seconds"] for r in results)
    console.print(
        f"[bold]{appointments} appointments simulated[/], {members} memberships, {transitions} state transitions, "
        f"{real_seconds:.1f} s real in all: {appointments / real_seconds:.2f} appointments per second "
        f"({appointments / max(running, 1e-9):.2f} per second of running the clock, deploys and reports excluded)")


# ---------------------------------------------------------------------- formatting


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _local(value: str | None, zone: ZoneInfo) -> str:
    return f"{_when(value).astimezone(zone):%a %d %b %H:%M %Z}" if value else ""


def _utc(value: str | None) -> str:
    return f"{_when(value).astimezone(UTC):%d %b %H:%M}" if value else ""


def _money(money: Mapping[str, Any]) -> str:
    return f"{money['currency']} {money['amount'] / 100:,.2f}"


def _totals(totals: Mapping[str, int]) -> str:
    return ", ".join(_money({"amount": amount, "currency": currency}) for currency, amount in sorted(totals.items()))


class _Stdout(io.TextIOBase):
    """Stands in for stdout while a command runs: the in-process functions write their logs to stdout
    (Powertools, JSON); while a scenario runs they are held, to be shown after its timeline."""

    def __init__(self, real: Any) -> None:
        self.real, self.held = real, None

    def write(self, text: str) -> int:
        return (self.held if self.held is not None else self.real).write(text)

    def flush(self) -> None:
        self.real.flush()

    def isatty(self) -> bool:
        return self.real.isatty()

    def fileno(self) -> int:
        return self.real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", "utf-8")


@contextmanager
def _held_function_logs() -> Iterator[io.StringIO]:
    """The stand-in stays installed afterwards (passing writes through): a function's log handler keeps
    the stream it was created with, so the next scenario's lines must reach the same object."""
    if not isinstance(sys.stdout, _Stdout):
        sys.stdout = _Stdout(sys.stdout)
    proxy, held = sys.stdout, io.StringIO()
    proxy.held = held
    try:
        yield held
    finally:
        proxy.held = None


def _quiet_moto() -> None:
    """moto warns once per deploy about a resource it does not model; the deploy already vets that list."""
    logging.getLogger("moto").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Tried to parse AWS::SQS::QueuePolicy")


if __name__ == "__main__":
    app()
