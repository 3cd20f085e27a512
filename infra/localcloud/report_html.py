"""``medspa simulate --html FILE``: the simulation report as one page a spa owner opens in a browser.

The page shows what an owner asks of a backtest: where the fees went at each location (a table and a
bar chart), what became of every input, each appointment's final status, how the memberships stand and
what their drafts collected, and what was quarantined.

Decisions:

* Self-contained: inline CSS and an inline SVG chart, no script, no font, image or library from the
  network. It opens the same offline, as an email attachment, or years later, and shows no more than
  the JSON report (which masks contacts and names no client).
* Every figure comes from the JSON report's ``summary`` (itself derived from the report's ledger), never
  recomputed here, so the page cannot disagree with the report. Each money cell carries its amount in
  minor units and its currency as ``data-`` attributes, so a test (or a spreadsheet import) reads the
  exact numbers, not the formatted text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# (summary key, column heading, bar colour): the order the money table and the chart use.
MONEY_COLUMNS = (
    ("assessed", "fees assessed", "#6b7280"),
    ("collected", "collected (card)", "#15803d"),
    ("covered", "covered (deposit, prepayment, course)", "#2563eb"),
    ("waived", "waived", "#a16207"),
    ("outstanding", "outstanding", "#b91c1c"),
    ("forfeited", "forfeited (deposits, prepayments kept)", "#7c3aed"),
)
FEE_LABELS = {"late_cancel": "late cancels", "no_show": "no-shows", "late_reschedule": "late reschedules"}
OUTCOME_LABELS = {"applied": "applied", "held": "held (booking never arrived)", "quarantined": "quarantined",
                  "pending": "still pending at the end", "not_delivered": "not delivered",
                  "delivered": "SMS replies delivered"}

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111827; margin: 2em auto;
       max-width: 72em; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 2em; }
p.meta { color: #4b5563; margin-top: 0; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border-bottom: 1px solid #e5e7eb; padding: .3em .7em; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.status-completed { color: #15803d; } td.status-no_show, td.status-auto_cancelled { color: #b91c1c; }
td.status-cancelled { color: #a16207; }
td.status-frozen { color: #2563eb; } td.status-expired, td.draft-declined, td.draft-failed { color: #b91c1c; }
td.draft-succeeded { color: #15803d; }
.legend span { display: inline-block; margin-right: 1.2em; }
.legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em; vertical-align: -.1em; }
svg text { font: 12px system-ui, sans-serif; fill: #111827; }
"""


def write_html(report: Mapping[str, Any], path: Path | str) -> None:
    Path(path).write_text(render_html(report), encoding="utf-8")


def render_html(report: Mapping[str, Any]) -> str:
    scenario = report["scenario"]
    summary = report["summary"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(scenario['name'])}: simulation report</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(scenario['name'])}</h1>",
        f'<p class="meta">Simulated {_e(report["started_at"])} to {_e(report["ended_at"])} (virtual time, UTC); '
        f"{summary['appointments_simulated']} appointments, {summary.get('memberships_simulated', 0)} memberships, "
        f"{summary['messages_sent']} messages sent, "
        f"{summary['state_transitions']} state transitions; {_e(report.get('format', ''))}.</p>",
    ]
    if scenario.get("description"):
        parts.append(f"<p>{_e(scenario['description'])}</p>")
    parts += _money_section(summary["locations"])
    parts += _inputs_section(report)
    parts += _activity_section(summary["locations"])
    parts += _appointments_section(report["appointments"])
    parts += _memberships_section(report)
    parts += _quarantine_section(report["quarantined"])
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------- money


def _money_rows(locations: Iterable[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], str]]:
    """One row per location and currency a fee or forfeit was in (a location bills in one currency, but
    nothing here assumes it)."""
    rows = []
    for location in locations:
        money = location.get("money") or {}
        currencies = {c for key, _, _ in MONEY_COLUMNS for c in money.get(key, {})}
        currencies |= {c for fee in money.get("fees", {}).values() for c in fee["total"]}
        rows += [(location, currency) for currency in sorted(currencies)]
    return rows


def _money_section(locations: list[Mapping[str, Any]]) -> list[str]:
    rows = _money_rows(locations)
    out = ["<h2>Fees and where the money went, per location</h2>"]
    if not rows:
        return out + ["<p>No fee was assessed and nothing was forfeited in this scenario.</p>"]
    out.append('<p>Each fee assessed is collected on the card, covered by money the spa already held, waived by '
               "staff, or still outstanding: the four add up to the fees assessed. Forfeited deposits and "
               "prepayments are shown apart (for a fee they are part of what covered it).</p>")
    reasons = sorted({r for location, _ in rows for r in location["money"]["fees"]},
                     key=lambda r: (list(FEE_LABELS).index(r) if r in FEE_LABELS else len(FEE_LABELS), r))
    out.append('<table class="money"><thead><tr><th>location</th><th>spa</th><th>currency</th>'
               + "".join(f'<th class="num">{_e(FEE_LABELS.get(r, r.replace("_", " ")))}</th>' for r in reasons)
               + "".join(f'<th class="num">{_e(label)}</th>' for _, label, _ in MONEY_COLUMNS) + "</tr></thead><tbody>")
    for location, currency in rows:
        money = location["money"]
        cells = [f"<td>{_e(location['location_id'])}</td><td>{_e(location.get('spa_id') or '')}</td>"
                 f"<td>{_e(currency)}</td>"]
        for reason in reasons:
            fee = money["fees"].get(reason, {"count": 0, "total": {}})
            amount = fee["total"].get(currency, 0)
            cells.append(f'<td class="num" {_data(location, currency, f"fees.{reason}", amount)} '
                         f'data-count="{fee["count"]}">{fee["count"]} &middot; {_amount(amount, currency)}</td>')
        for key, _, _ in MONEY_COLUMNS:
            amount = money.get(key, {}).get(currency, 0)
            cells.append(f'<td class="num" {_data(location, currency, key, amount)}>{_amount(amount, currency)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    out.append(_chart(rows))
    return out


def _chart(rows: list[tuple[Mapping[str, Any], str]]) -> str:
    """Horizontal bars, one group per location and currency; bars of one currency share a scale."""
    bar, gap, label_width, width = 16, 3, 280, 520
    group = len(MONEY_COLUMNS) * (bar + gap) + 26
    largest: dict[str, int] = {}
    for location, currency in rows:
        for key, _, _ in MONEY_COLUMNS:
            largest[currency] = max(largest.get(currency, 0), abs(location["money"].get(key, {}).get(currency, 0)))
    height = group * len(rows) + 10
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_width + width + 110}" '
           f'height="{height}" viewBox="0 0 {label_width + width + 110} {height}">',
           "<title>Fees per location: assessed, collected, covered, waived, outstanding, forfeited</title>"]
    y = 4
    for location, currency in rows:
        svg.append(f'<text x="0" y="{y + 12}" font-weight="600">{_e(location["location_id"])} ({_e(currency)})</text>')
        y += 20
        for key, label, colour in MONEY_COLUMNS:
            amount = location["money"].get(key, {}).get(currency, 0)
            length = round(width * abs(amount) / largest[currency]) if largest[currency] else 0
            svg.append(f'<text x="12" y="{y + bar - 4}">{_e(label)}</text>')
            svg.append(f'<rect x="{label_width}" y="{y}" width="{length}" height="{bar}" fill="{colour}" '
                       f'{_data(location, currency, key, amount)}><title>{_e(label)}: '
                       f"{_amount(amount, currency)}</title></rect>")
            svg.append(f'<text x="{label_width + length + 6}" y="{y + bar - 4}">{_amount(amount, currency)}</text>')
            y += bar + gap
        y += 6
    svg.append("</svg>")
    legend = "".join(f'<span><i style="background:{colour}"></i>{_e(label)}</span>'
                     for _, label, colour in MONEY_COLUMNS)
    return f'<figure>{"".join(svg)}<figcaption class="legend">{legend}</figcaption></figure>'


# ---------------------------------------------------------------------- inputs, activity, appointments


def _inputs_section(report: Mapping[str, Any]) -> list[str]:
    counts = report["summary"].get("inputs") or {}
    total = len(report["inputs"])
    out = [f"<h2>What became of the {total} inputs</h2>", '<table class="inputs"><tbody>']
    for outcome, label in OUTCOME_LABELS.items():
        if counts.get(outcome):
            out.append(f'<tr><td>{_e(label)}</td><td class="num" data-outcome="{outcome}">{counts[outcome]}</td></tr>')
    return out + ["</tbody></table>"]


_ACTIVITY = (("appointments", "appointments"), ("reminders_sent", "reminders sent"),
             ("confirmation_requests", "confirmation requests"), ("confirmations", "confirmed"),
             ("auto_cancels", "auto-cancelled"), ("cancellations", "cancelled"), ("no_shows", "no-shows"),
             ("completed", "completed"), ("fees_declined", "fee charges declined"), ("strikes", "strikes"),
             ("prepay_flags", "prepay flags"), ("messages_sent", "messages sent"))


def _activity_section(locations: list[Mapping[str, Any]]) -> list[str]:
    out = ["<h2>Activity per location</h2>", '<table class="activity"><thead><tr><th></th>'
           + "".join(f'<th class="num">{_e(r["location_id"])}</th>' for r in locations) + "</tr></thead><tbody>"]
    for key, label in _ACTIVITY:
        out.append(f"<tr><td>{_e(label)}</td>"
                   + "".join(f'<td class="num">{_e(str(r.get(key, "")))}</td>' for r in locations) + "</tr>")
    return out + ["</tbody></table>"]


def _appointments_section(appointments: list[Mapping[str, Any]]) -> list[str]:
    out = [f"<h2>Appointments ({len(appointments)}): final status</h2>",
           '<table class="appointments"><thead><tr><th>appointment</th><th>location</th><th>client</th>'
           "<th>service</th><th>visit (local time)</th><th>final status</th><th>fees</th>"
           '<th class="num">executions</th></tr></thead><tbody>']
    for a in appointments:
        service = a.get("service") or {}
        fees = "; ".join(f"{f['reason'].replace('_', ' ')}: {f['outcome']}"
                         + (f" {_amount(f['fee']['amount'], f['fee']['currency'])}" if f.get("fee") else "")
                         for f in a.get("fees") or ())
        status = str(a.get("status"))
        out.append(f"<tr><td>{_e(a['appointment_id'])}</td><td>{_e(a.get('location_id') or '')}</td>"
                   f"<td>{_e(a.get('client_id') or '')}</td><td>{_e(service.get('name') or '')}</td>"
                   f"<td>{_e(_local(a))}</td><td class=\"status-{_e(status)}\" data-appointment="
                   f"\"{_e(a['appointment_id'])}\">{_e(status)}</td><td>{_e(fees)}</td>"
                   f'<td class="num">{len(a.get("executions") or ())}</td></tr>')
    return out + ["</tbody></table>"]


# (summary.locations[].memberships key, label): counts, then {count, total} figures, then per-currency amounts.
_MEMBERSHIP_COUNTS = (("count", "memberships"), ("by_status.active", "active"), ("by_status.frozen", "frozen"),
                      ("by_status.cancelled", "cancelled"), ("by_status.expired", "expired"),
                      ("past_due", "past due"), ("certificates_issued", "paper certificates issued"),
                      ("certificates_expired", "certificates expired"), ("expiries", "expiries"))
_MEMBERSHIP_MONEY = (("drafts_collected", "drafts collected"), ("drafts_declined", "drafts declined (attempts)"),
                     ("drafts_outstanding", "dues outstanding (months)"),
                     ("store_credit_applied", "store credit applied"),
                     ("store_credit_held", "store credit held (LuXe Bux)"))


def _memberships_section(report: Mapping[str, Any]) -> list[str]:
    """The members' figures per location, each membership as it ended, and every draft: shown only when the
    scenario has memberships, so a page without them is the page it always was."""
    memberships = report.get("memberships") or []
    if not memberships:
        return []
    locations = [r for r in report["summary"]["locations"] if (r.get("memberships") or {}).get("count")]
    out = [f"<h2>Memberships ({len(memberships)})</h2>", '<table class="membership-summary"><thead><tr><th></th>'
           + "".join(f'<th class="num">{_e(r["location_id"])}</th>' for r in locations) + "</tr></thead><tbody>"]
    for key, label in _MEMBERSHIP_COUNTS:
        cells = []
        for r in locations:
            value: Any = r["memberships"]
            for part in key.split("."):
                value = value.get(part, 0)
            cells.append(f'<td class="num" data-location="{_e(r["location_id"])}" data-field="memberships.{key}" '
                         f'data-value="{int(value)}">{int(value)}</td>')
        out.append(f"<tr><td>{_e(label)}</td>{''.join(cells)}</tr>")
    for key, label in _MEMBERSHIP_MONEY:
        cells = []
        for r in locations:
            figure = r["memberships"][key]
            totals = figure["total"] if "total" in figure else figure
            shown = "; ".join(f'<span {_data(r, currency, f"memberships.{key}", amount)}>'
                              f"{_amount(amount, currency)}</span>" for currency, amount in sorted(totals.items()))
            count = f'<span data-count-of="memberships.{key}">{figure["count"]}</span> &middot; ' if "count" in figure else ""
            cells.append(f'<td class="num">{count}{shown or "0"}</td>')
        out.append(f"<tr><td>{_e(label)}</td>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    out.append('<table class="memberships"><thead><tr><th>membership</th><th>location</th><th>client</th><th>plan</th>'
               '<th>status</th><th>past due</th><th class="num">draft day</th><th>next draft</th><th class="num">services</th>'
               '<th class="num">store credit</th><th class="num">full dues paid</th><th>paper certificates</th>'
               "<th>last decision</th></tr></thead><tbody>")
    for m in memberships:
        plan, credit = m.get("plan") or {}, m["store_credit"]
        dues = _amount(plan["monthly_dues"]["amount"], plan["monthly_dues"]["currency"]) if plan.get("monthly_dues") else ""
        certificates = m.get("certificates") or []
        held = [c for c in certificates if not c["expired"]]
        paper = (f"{len(certificates)} issued {_e(certificates[0]['issued_on'])}, {len(held)} held until "
                 f"{_e(certificates[0]['expires_on'])}" if certificates else "")
        last = (m.get("decisions") or [{}])[-1]
        next_draft = (m.get("next_draft_on") or "") + (f" (retry {m['next_retry_on']})" if m.get("next_retry_on") else "")
        out.append(f"<tr><td>{_e(m['membership_id'])}</td><td>{_e(m.get('location_id') or '')}</td>"
                   f"<td>{_e(m['client_id'])}</td><td>{_e(plan.get('name') or '')} ({dues} a month)</td>"
                   f'<td class="status-{_e(m["status"])}" data-membership="{_e(m["membership_id"])}">{_e(m["status"])}</td>'
                   f"<td>{'past due' if m.get('past_due') else ''}</td>"
                   f'<td class="num">{m["draft_day"]}</td><td>{_e(next_draft)}</td><td class="num">{m["credits"]}</td>'
                   f'<td class="num" data-store-credit-of="{_e(m["membership_id"])}" '
                   f'{_data({"location_id": m.get("location_id") or ""}, credit["currency"], "store_credit", credit["amount"])}>'
                   f"{_amount(credit['amount'], credit['currency'])}</td>"
                   f'<td class="num">{m["full_dues_paid"]}</td><td>{paper}</td>'
                   f"<td>{_e(last.get('outcome') or '')}: {_e(last.get('reason') or '')}</td></tr>")
    out.append("</tbody></table>")
    drafts = report.get("drafts") or []
    if drafts:
        out.append(f"<h3>Drafts ({len(drafts)})</h3>")
        out.append('<table class="drafts"><thead><tr><th>membership</th><th>draft date</th><th>purpose</th>'
                   '<th class="num">attempt</th><th class="num">amount</th><th>status</th><th>decided (UTC)</th>'
                   "<th>run</th></tr></thead><tbody>")
        for d in drafts:
            amount = d["amount"]
            out.append(f"<tr><td>{_e(d['membership_id'])}</td><td>{_e(d['due_on'])}</td><td>{_e(d['purpose'])}</td>"
                       f'<td class="num">{d["attempt"]}</td><td class="num">{_amount(amount["amount"], amount["currency"])}'
                       f'</td><td class="draft-{_e(d["status"])}">{_e(d["status"])}'
                       + (f" ({_e(d['decline_code'])})" if d.get("decline_code") else "")
                       + f"</td><td>{_e(d.get('decided_at') or d.get('updated_at') or '')}</td>"
                       f"<td>{_e(d.get('execution') or '')}</td></tr>")
        out.append("</tbody></table>")
    return out


def _quarantine_section(quarantined: list[Mapping[str, Any]]) -> list[str]:
    if not quarantined:
        return ["<h2>Quarantined inputs</h2>", "<p>None.</p>"]
    out = [f"<h2>Quarantined inputs ({len(quarantined)})</h2>",
           '<table class="quarantined"><thead><tr><th>when (UTC)</th><th class="num">entry</th><th>event</th>'
           "<th>appointment</th><th>why</th></tr></thead><tbody>"]
    for q in quarantined:
        entry = "" if q.get("input_index") is None else f"events[{q['input_index']}]"
        out.append(f"<tr><td>{_e(q.get('at') or '')}</td><td class=\"num\">{_e(entry)}</td>"
                   f"<td>{_e(q.get('detail_type') or '')}</td><td>{_e(q.get('appointment_id') or '')}</td>"
                   f"<td>{_e(q.get('rejection_reason') or '')}</td></tr>")
    return out + ["</tbody></table>"]


# ---------------------------------------------------------------------- values


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _data(location: Mapping[str, Any], currency: str, field: str, amount: int) -> str:
    return (f'data-location="{_e(location["location_id"])}" data-currency="{_e(currency)}" '
            f'data-field="{_e(field)}" data-amount="{int(amount)}"')


def _amount(minor: int, currency: str) -> str:
    """Minor units as the owner reads them; every currency the seeds use has two decimals."""
    sign = "-" if minor < 0 else ""
    return f"{sign}{_e(currency)} {abs(minor) / 100:,.2f}"


def _local(a: Mapping[str, Any]) -> str:
    if a.get("starts_at_local"):
        return datetime.fromisoformat(a["starts_at_local"]).strftime("%a %d %b %Y %H:%M")
    if a.get("starts_at") and a.get("time_zone"):
        return datetime.fromisoformat(a["starts_at"]).astimezone(ZoneInfo(a["time_zone"])).strftime("%a %d %b %Y %H:%M")
    return ""
