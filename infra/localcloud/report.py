"""The JSON report of a scenario run (``medspa.simulate.report/1``, documented in ``docs/simulate.md``): the
line of each appointment, execution, ledger entry, client, membership, draft, message and quarantined input,
and the summary per location with where its fees and its members' dues went.

It stands apart from the run (``localcloud.capture``, which reads the local cloud and hands over what it
found) because the report is a documented interface of its own and its rules need no cloud: the same stored
records give the same lines, and the summary is computed from the report's own sections. The console
(``localcloud.cli``) and the HTML page (``localcloud.report_html``) both render a finished report.

Decisions:

* Money in the summary is derived from the report's own ledger lines (:func:`money_summary`), so the
  summary, the HTML page and the ledger cannot disagree.
* The appointments' message log adds each message's kind and appointment to what moto recorded
  (:func:`messages_from`); a message no log names is still listed, with ``kind`` null.
* Every time in the report is UTC ISO-8601 with ``Z``; local times carry their offset. A membership's days
  (draft dates, expiries) are the home location's local dates, as the member and the spa count them.
* A membership is reported as the system last stored it, plus what that record alone cannot say: the
  certificates already expired are gone from it, so the certificates issued are refolded from the
  membership's own events and drafts as of its cancellation day.
* Membership drafts are ledger entries filed under the membership's key, so they stay in ``ledger[]`` and
  are also listed, with their draft date and the run that took them, in ``drafts[]``; the fee money never
  counts them (a draft is no fee).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from medspa.domain.keys import spa_of, split_key
from medspa.domain.ledger import EntryKind
from medspa.events import DETAIL_MODELS
from medspa.events.membership_history import fold_membership
from medspa.policy.loader import PolicyPacks

if TYPE_CHECKING:
    from localcloud.capture import QueueRecorder
    from localcloud.scenario import StripeIds


REPORT_FORMAT = "medspa.simulate.report/1"
REPORT_KEYS = ("format", "scenario", "started_at", "ended_at", "real_seconds", "deploy_seconds", "run_seconds",
               "fake_stripe", "inputs", "messages", "ledger", "appointments", "executions", "clients", "memberships",
               "drafts", "expiries", "events_to_booking_site", "quarantined", "summary")
OUTCOMES = ("applied", "held", "quarantined", "pending", "not_delivered", "delivered")  # inputs[].outcome


# ====================================================================== the report's lines


def appointment_line(a: Any, packs: PolicyPacks, executions: list[dict[str, Any]]) -> dict[str, Any]:
    pack = packs.for_visit(a) if a.location_id in packs else None  # the version it was booked under
    zone = pack.zone if pack else UTC
    line = {
        "appointment_id": site_id(a.appointment_id),
        "client_id": a.client_id,
        "spa_id": a.spa_id,
        "location_id": a.location_id,
        "time_zone": str(getattr(zone, "key", "UTC")),
        "service": {"name": a.service.name, "category": a.service.category,
                    "duration_minutes": a.service.duration_minutes, "price": _money(a.service.price)},
        "party_size": a.party_size,
        "status": str(a.status),
        "booking_version": a.booking_version,
        "policy_version": a.policy_version,
        "starts_at": iso(a.starts_at),
        "starts_at_local": a.starts_at.astimezone(zone).isoformat(),
        **_booking_facts(a),
        "executions": sorted(executions, key=lambda e: (e["started_at"], e["name"])),
    }
    return line


def _booking_facts(a: Any) -> dict[str, Any]:
    """Confirmation, check-in, cancellation, violations and fees, from whichever fields the stored
    appointment has (the lifecycle keeps booking-site facts in ``facts`` and SMS replies apart)."""
    facts = getattr(a, "facts", None)
    by_site = getattr(a, "confirmed_at", None) or getattr(facts, "confirmed_at", None)
    by_client = getattr(a, "client_confirmed_at", None)
    confirmed = min((t for t in (by_site, by_client) if t is not None), default=None)
    via = None
    if confirmed is not None:
        via = (getattr(a, "client_confirmed_via", None) or "sms") if confirmed == by_client else "booking_site"
    fees = getattr(a, "fees", None) or {}
    return {
        "confirmed_at": iso(confirmed),
        "confirmed_via": via,
        "checked_in_at": iso(getattr(a, "checked_in_at", None) or getattr(facts, "arrived_at", None)),
        "cancelled_by": getattr(facts, "cancelled_by", None),
        "violations": [{"reason": v.reason, "notice_minutes": v.notice_minutes, "fee_waived": v.fee_waived}
                       for v in getattr(facts, "violations", ())],
        "fees": [{"reason": f.reason, "outcome": f.outcome, "fee": _money(f.fee) if f.fee else None,
                  "attempt": f.attempt} for _, f in sorted(fees.items())],
    }


def ledger_line(e: Any, *, membership: bool = False) -> dict[str, Any]:
    """``membership``: the entry is a membership's draft, filed under the membership's key."""
    return {
        "entry_id": e.entry_id, "appointment_id": site_id(e.appointment_id), "client_id": e.client_id,
        "purpose": e.purpose, "kind": str(e.kind), "amount": _money(e.amount), "status": str(e.status),
        "attempt": e.attempt, "stripe_payment_intent_id": e.stripe_payment_intent_id,
        "stripe_refund_id": e.stripe_refund_id, "decline_code": e.decline_code,
        "failure_message": e.failure_message, "created_at": iso(e.created_at), "updated_at": iso(e.updated_at),
        "membership_id": site_id(e.appointment_id) if membership else None,
    }


# ---------------------------------------------------------------------- memberships


MEMBERSHIP_STATUSES = ("active", "frozen", "cancelled", "expired")
EXPIRY_OUTCOMES = ("expired", "services_expired", "certificate_expired")
DRAFT_PURPOSES = ("membership_dues", "frozen_dues")  # a month's charge; store credit is a deduction beside it
_UNPAID = ("declined", "requires_action", "failed")


def membership_line(record: Any, packs: PolicyPacks) -> dict[str, Any]:
    """A membership as the system stored it last, with the certificates it issued (held or expired)."""
    m = record.membership
    pack = packs.accepted(m.location_id, m.policy_version) if m.location_id in packs else None
    held = {c.certificate_id for c in m.certificates}
    return {
        "membership_id": site_id(m.membership_id), "spa_id": m.spa_id, "client_id": m.client_id,
        "location_id": m.location_id, "time_zone": pack.location.time_zone if pack else None,
        "policy_version": m.policy_version, "membership_version": m.membership_version,
        "plan": _plan(m.plan), "next_plan": _plan(m.next_plan) if m.next_plan else None,
        "status": str(m.status), "past_due": m.past_due, "started_on": _day(m.started_on),
        "draft_day": m.draft_day, "next_draft_on": _day(m.next_draft_on), "next_retry_on": _day(m.next_retry_on),
        "last_billed_on": _day(m.last_billed_on), "paid_in_full_until": _day(m.paid_in_full_until),
        "cancelled_on": _day(m.cancelled_on), "credits": m.credits,
        "credits_usable_until": _day(m.credits_usable_until), "store_credit": _money(m.store_credit),
        "full_dues_paid": m.full_dues_paid,
        "certificates": [{"certificate_id": c.certificate_id.rsplit("#", 1)[-1], "issued_on": _day(c.issued_on),
                          "expires_on": _day(c.expires_on), "expired": c.certificate_id not in held}
                         for c in _certificates_issued(record, pack)],
        "decisions": [{"decided_at": iso(d.decided_at), "outcome": d.outcome, "reason": d.reason,
                       "membership_version": d.membership_version} for d in m.decisions],
    }


def _certificates_issued(record: Any, pack: Any) -> tuple[Any, ...]:
    """Every certificate the cancellation issued: an expired one is gone from the stored membership, so the
    membership's own events and drafts are folded again as of its cancellation day."""
    m = record.membership
    if m.cancelled_on is None or pack is None or not any(d.outcome == "certificate_expired" for d in m.decisions):
        return tuple(m.certificates)
    try:
        events = [DETAIL_MODELS[kind].model_validate_json(detail) for kind, detail in record.events]
        then = fold_membership(events, record.drafts, pack, as_of=m.cancelled_on)  # type: ignore[arg-type]
    except (LookupError, ValueError):
        return tuple(m.certificates)
    issued = {c.certificate_id: c for c in then.certificates}
    issued.update({c.certificate_id: c for c in m.certificates})
    return tuple(sorted(issued.values(), key=lambda c: (c.issued_on, _natural(c.certificate_id))))


def _natural(text: str) -> tuple[Any, ...]:
    """``cert-2`` before ``cert-10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def draft_lines(entries: Iterable[Any], records: Iterable[Any], executions: Iterable[Mapping[str, Any]]
                ) -> list[dict[str, Any]]:
    """Each ledger entry of a membership, with its month's draft date (from the entry id, which names it),
    when the draft was decided (the fact kept on the membership) and the MembershipDrafts run that took it."""
    members = {r.membership_id: r.membership for r in records}
    decided: dict[tuple[str, str, str, int], Any] = {}
    for r in records:
        for d in r.drafts:
            decided[(r.membership_id, d.due_on.isoformat(), str(d.kind), d.attempt)] = d.decided_at
    by_step: dict[Any, str] = {}
    for execution in executions:
        for step in execution.get("steps") or ():
            entry_id = step.get("ledger_entry_id")
            if isinstance(entry_id, str) and entry_id.count("#") >= 4:
                key, due_on, _, attempt = entry_id.rsplit("#", 3)
                by_step.setdefault(entry_id, execution["name"])
                by_step.setdefault((key, due_on, attempt), execution["name"])
    out = []
    for e in entries:
        key, due_on, purpose, attempt = _draft_id(e)
        member = members.get(key)
        kind = "frozen_dues" if purpose == "frozen_dues" else "membership_dues"
        out.append({
            "entry_id": e.entry_id, "membership_id": site_id(key), "spa_id": spa_of(key), "client_id": e.client_id,
            "location_id": member.location_id if member else None, "due_on": due_on, "purpose": e.purpose,
            "kind": str(e.kind), "attempt": e.attempt, "amount": _money(e.amount), "status": str(e.status),
            "decline_code": e.decline_code, "failure_message": e.failure_message,
            "stripe_payment_intent_id": e.stripe_payment_intent_id,
            "created_at": iso(e.created_at), "updated_at": iso(e.updated_at),
            "decided_at": iso(decided.get((key, due_on, kind, e.attempt))),
            "execution": by_step.get(e.entry_id) or by_step.get((key, due_on, attempt)),
        })
    return sorted(out, key=lambda d: (d["created_at"] or "", d["entry_id"]))


def ledger_and_memberships(ledger: Iterable[Any], records: Iterable[Any], packs: PolicyPacks,
                           executions: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The report's ``ledger``, ``memberships``, ``drafts`` and ``expiries`` from the stored entries and the
    memberships (those started): one reading for both engines, so neither can tell the money differently."""
    entries = sorted(ledger, key=lambda e: (e.created_at, e.entry_id))
    started = [r for r in records if r is not None and r.membership is not None]
    members = {r.membership_id for r in started}
    return {
        "ledger": [ledger_line(e, membership=e.appointment_id in members) for e in entries],
        "memberships": sorted((membership_line(r, packs) for r in started),
                              key=lambda m: (m["started_on"], m["spa_id"], m["membership_id"])),
        "drafts": draft_lines([e for e in entries if e.appointment_id in members and e.kind is not EntryKind.EXPIRY],
                              started, executions),
        "expiries": [expiry_line(e) for e in entries if e.kind is EntryKind.EXPIRY],
    }


def expiry_line(e: Any) -> dict[str, Any]:
    """A prepaid course's or a membership's expiry: what was forfeited, and of what."""
    spa_id, of = split_key(e.appointment_id)
    return {"spa_id": spa_id, "of": of, "purpose": e.purpose, "amount": e.amount.model_dump(),
            "ledger_entry_id": e.entry_id, "created_at": iso(e.created_at)}


def _draft_id(e: Any) -> tuple[str, str | None, str, str]:
    """(membership key, month's draft date, purpose, attempt) from ``<spa>#<membership>#<date>#<purpose>#<n>``;
    an entry of the membership named otherwise keeps its membership and purpose, with no draft date."""
    parts = e.entry_id.rsplit("#", 3)
    if len(parts) == 4 and parts[0] == e.appointment_id:
        return parts[0], parts[1], parts[2], parts[3]
    return e.appointment_id, None, e.purpose, str(e.attempt)


def _plan(plan: Any) -> dict[str, Any]:
    return {"name": plan.name, "monthly_dues": _money(plan.monthly_dues),
            "service_credits_per_month": plan.service_credits_per_month}


def _day(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _opted_out(consent: Any, channel: str, address: str | None, spa_id: str) -> bool:
    """Opt-outs belong to the address (medspa.domain.consent), so the report reads the consent record."""
    try:
        return bool(address) and consent.opted_out(channel, address, spa_id)
    except ValueError:
        return False


def client_line(c: Any, cards: Mapping[str, str | None], ids: StripeIds, consent: Any) -> dict[str, Any]:
    return {
        "client_id": c.client_id, "spa_id": c.spa_id, "card": cards.get(c.client_id),
        "stripe_customer_id": c.stripe_customer_id or ids.customers.get(c.client_id),
        "strikes": [{"reason": s.reason, "appointment_id": site_id(s.appointment_id), "at": iso(s.at)}
                    for s in c.strikes],
        "prepay_required": c.prepay_required, "prepay_set_at": iso(c.prepay_set_at),
        "prepay_cleared_by": c.prepay_cleared_by, "prepay_cleared_at": iso(c.prepay_cleared_at),
        "outstanding": {k: v for k, v in sorted(c.outstanding.items()) if v},
        "credit": {k: v for k, v in sorted(c.credit.items()) if v},
        "sms_opt_out": c.sms_opt_out or _opted_out(consent, "sms", c.phone, c.spa_id),
        "email_opt_out": c.email_opt_out or _opted_out(consent, "email", c.email, c.spa_id),
    }


def quarantined_lines(dlq: QueueRecorder | None, inputs: Mapping[str, int]) -> list[dict[str, Any]]:
    """Each quarantined message, with the input it came from (by EventBridge id, which the quarantined copy
    keeps even when an erased client's details are taken out of it)."""
    out = []
    for message in (dlq.messages.values() if dlq else ()):
        try:
            event = json.loads(message["Body"])
        except ValueError:
            event = {}
        detail = event.get("detail") if isinstance(event, dict) and isinstance(event.get("detail"), dict) else {}
        attributes = message.get("MessageAttributes") or {}
        sent = int(message.get("Attributes", {}).get("SentTimestamp", 0)) / 1000
        out.append({"at": iso(datetime.fromtimestamp(sent, UTC)) if sent else None,
                    "detail_type": event.get("detail-type") if isinstance(event, dict) else None,
                    "appointment_id": detail.get("appointment_id"), "event_id": detail.get("event_id"),
                    "rejection_reason": attributes.get("rejection_reason", {}).get("StringValue"),
                    "input_index": inputs.get(event.get("id")) if isinstance(event, dict) else None})
    return sorted(out, key=lambda q: (q["at"] or "", q["input_index"] if q["input_index"] is not None else -1))


# ---------------------------------------------------------------------- messages


def _plain(value: Any) -> Any:
    """A message-log entry as a dict, whether the model stores pydantic objects or maps."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return dict(value) if isinstance(value, Mapping) else value


def messages_from(appointments: Iterable[Any], recorded: Iterable[Mapping[str, Any]],
                  clients: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """Every message moto recorded, joined by message id with the appointments' message logs.

    A log entry adds the kind and the appointment. Log results that sent nothing (opted out, deferred,
    failed) are listed too, with their status and no text. Before the lifecycle keeps a log
    (``Appointment.messages``), every message is listed with ``kind`` and ``appointment_id`` null.
    A message no log names (a member's or course client's notice, a reply to an inbound text) gets the
    ``client_id`` of the one client of ``clients`` whose phone or address it went to, so the summary counts
    it at that client's home location rather than at none.
    """
    by_contact: dict[str, set[str]] = {}
    for c in clients:
        for contact in (c.phone, (c.email or "").strip().casefold() or None):
            if contact:
                by_contact.setdefault(contact, set()).add(c.client_id)
    logged: dict[str, dict[str, Any]] = {}
    unsent: list[dict[str, Any]] = []
    for a in appointments:
        for entry in map(_plain, getattr(a, "messages", None) or ()):
            for result in map(_plain, entry.get("results") or ()):
                line = {"appointment_id": site_id(a.appointment_id), "client_id": a.client_id,
                        "kind": entry.get("kind"), "key": entry.get("key"),
                        "at": iso(entry.get("sent_at")) or iso(entry.get("due_at")),
                        "channel": str(result.get("channel")), "status": str(result.get("status")),
                        "error": result.get("error")}
                if result.get("message_id"):
                    logged[result["message_id"]] = line
                else:
                    unsent.append(line | {"to": None, "subject": None, "text": None, "message_id": None})
    out = []
    for sent in recorded:
        owners = by_contact.get(sent["to"] if sent["channel"] == "sms" else str(sent["to"] or "").strip().casefold())
        line = {"appointment_id": None, "client_id": next(iter(owners)) if owners and len(owners) == 1 else None,
                "kind": None, "key": None, "status": "sent", "error": None} | logged.pop(sent["message_id"], {})
        out.append(line | {"at": line.get("at") or iso(sent["at"]), "channel": sent["channel"],
                           "to": mask(sent["to"]), "subject": sent["subject"], "text": sent["text"],
                           "message_id": sent["message_id"]})
    for message_id, line in logged.items():  # logged as sent, but not recorded by moto: listed without text
        out.append(line | {"to": None, "subject": None, "text": None, "message_id": message_id})
    fields = ("at", "appointment_id", "client_id", "kind", "key", "channel", "status", "to", "subject", "text",
              "message_id", "error")
    return sorted(({k: m.get(k) for k in fields} for m in out + unsent), key=lambda m: m["at"] or "")


def mask(contact: str | None) -> str | None:
    """``+14075550123`` -> ``+1******0123``; ``ana@example.com`` -> ``a***@example.com``."""
    if not contact:
        return contact
    if "@" in contact:
        local, _, domain = contact.partition("@")
        return f"{local[:1]}***@{domain}"
    return contact[:2] + "*" * max(len(contact) - 6, 0) + contact[-4:]


# ---------------------------------------------------------------------- summary


def summarize(report: Mapping[str, Any]) -> dict[str, Any]:
    """Per location, from the report's own sections (so the summary never disagrees with them)."""
    location_of = {(a.get("spa_id"), a["appointment_id"]): a.get("location_id") for a in report["appointments"]}
    home: dict[str, str] = {}  # a client's location: that of their first appointment in the scenario
    for a in sorted(report["appointments"], key=lambda a: a.get("starts_at") or ""):
        home.setdefault(a.get("client_id"), a.get("location_id"))
    memberships = report.get("memberships") or []
    for m in memberships:  # a member with no appointment belongs to their home spa
        home.setdefault(m["client_id"], m["location_id"])
    rows: dict[str, dict[str, Any]] = {}

    def row(location: str | None) -> dict[str, Any]:
        location = location or "(none)"
        return rows.setdefault(location, {
            "location_id": location, "spa_id": None, "appointments": 0, "reminders_sent": 0,
            "confirmation_requests": 0, "confirmations": 0, "auto_cancels": 0, "cancellations": 0,
            "no_shows": 0, "completed": 0, "fees_charged": {"count": 0, "total": {}},
            "fees_covered": {"count": 0, "total": {}}, "fees_declined": 0,
            "outstanding": {}, "strikes": 0, "prepay_flags": 0, "messages_sent": 0, "state_transitions": 0,
            "memberships": _no_memberships(),
        })

    for a in report["appointments"]:
        r = row(a.get("location_id"))
        r["spa_id"] = a.get("spa_id")
        r["appointments"] += 1
        r["confirmations"] += a.get("confirmed_at") is not None
        status = a.get("status")
        r["auto_cancels"] += status == "auto_cancelled"
        r["cancellations"] += status == "cancelled"
        r["no_shows"] += status == "no_show"
        r["completed"] += status == "completed"
        r["state_transitions"] += sum(e["state_transitions"] for e in a.get("executions", []))
    notified: set[tuple[tuple[str | None, str | None], str]] = set()
    for m in report["messages"]:
        if m["status"] != "sent":
            continue
        visit = _visit(m)
        r = row(location_of.get(visit) or home.get(m["client_id"]))
        r["messages_sent"] += 1
        kind = m.get("kind") or ""
        if (visit, kind) in notified:
            continue  # one notification on two channels counts once
        notified.add((visit, kind))
        r["reminders_sent"] += kind.startswith("reminder")
        r["confirmation_requests"] += kind == "confirmation_request"
    for e in report["ledger"]:
        if "fee" not in e["purpose"].split("_"):
            continue
        r = row(location_of.get(_visit(e)))
        if e["status"] == "succeeded" and e["kind"] in ("charge", "forfeit", "deduction"):
            moved = r["fees_charged" if e["kind"] == "charge" else "fees_covered"]
            moved["count"] += 1
            moved["total"][e["amount"]["currency"]] = (moved["total"].get(e["amount"]["currency"], 0)
                                                       + e["amount"]["amount"])
        elif e["kind"] == "charge" and e["status"] in ("declined", "requires_action", "failed"):
            r["fees_declined"] += 1
    for c in report["clients"]:
        for strike in c["strikes"]:
            row(location_of.get((c["spa_id"], strike["appointment_id"])) or home.get(c["client_id"]))["strikes"] += 1
        r = row(home.get(c["client_id"]))
        r["prepay_flags"] += bool(c["prepay_required"])
        for currency, amount in c["outstanding"].items():
            r["outstanding"][currency] = r["outstanding"].get(currency, 0) + amount
    for location, money in money_summary(report["ledger"], location_of).items():
        row(location)["money"] = money
    for m in memberships:
        r = row(m["location_id"])
        r["spa_id"] = r["spa_id"] or m["spa_id"]
        _count_membership(r["memberships"], m)
    _count_drafts(rows, report.get("drafts") or [], row)
    for r in rows.values():
        money = r.setdefault("money", _no_money())
        for key in _MONEY_KEYS:
            money[key] = dict(sorted(money[key].items()))
        for fee in money["fees"].values():
            fee["total"] = dict(sorted(fee["total"].items()))
    for r in rows.values():
        for key in ("store_credit_applied", "store_credit_held"):
            r["memberships"][key] = {c: v for c, v in sorted(r["memberships"][key].items()) if v}
    locations = sorted(rows.values(), key=lambda r: r["location_id"])
    outcomes = [line.get("outcome") for line in report["inputs"]]
    machines: dict[str, dict[str, int]] = {}
    for e in report.get("executions") or []:
        machine = machines.setdefault(e["state_machine"], {"executions": 0, "state_transitions": 0})
        machine["executions"] += 1
        machine["state_transitions"] += e["state_transitions"]
    return {
        "locations": locations,
        "inputs": {outcome: outcomes.count(outcome) for outcome in OUTCOMES},
        "appointments_simulated": len(report["appointments"]),
        "executions": sum(len(a.get("executions", [])) for a in report["appointments"]),
        "state_transitions": sum(r["state_transitions"] for r in locations),
        "messages_sent": sum(r["messages_sent"] for r in locations),
        "events_to_booking_site": len(report["events_to_booking_site"]),
        "quarantined": len(report["quarantined"]),
        "memberships_simulated": len(memberships),
        "drafts": len(report.get("drafts") or []),
        "state_machines": dict(sorted(machines.items())),
    }


def _no_memberships() -> dict[str, Any]:
    return {"count": 0, "by_status": dict.fromkeys(MEMBERSHIP_STATUSES, 0), "past_due": 0,
            "drafts_collected": {"count": 0, "total": {}}, "drafts_declined": {"count": 0, "total": {}},
            "drafts_outstanding": {"count": 0, "total": {}}, "store_credit_applied": {}, "store_credit_held": {},
            "certificates_issued": 0, "certificates_expired": 0, "expiries": 0}


def _count_membership(figures: dict[str, Any], m: Mapping[str, Any]) -> None:
    figures["count"] += 1
    figures["by_status"][m["status"]] = figures["by_status"].get(m["status"], 0) + 1
    figures["past_due"] += bool(m["past_due"])
    if m["store_credit"]["amount"]:
        _add(figures["store_credit_held"], m["store_credit"]["currency"], m["store_credit"]["amount"])
    figures["certificates_issued"] += len(m["certificates"])
    figures["certificates_expired"] += sum(c["expired"] for c in m["certificates"])
    figures["expiries"] += sum(d["outcome"] in EXPIRY_OUTCOMES for d in m["decisions"])


def _count_drafts(rows: Mapping[str, dict[str, Any]], drafts: Iterable[Mapping[str, Any]], row: Any) -> None:
    """Collected and declined: each charge attempt. Outstanding: each month whose charge has not succeeded on
    any attempt (still retried, or owed after the last retry), at its latest attempt's amount."""
    months: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for d in drafts:
        figures = row(d["location_id"])["memberships"]
        amount, currency = d["amount"]["amount"], d["amount"]["currency"]
        if d["purpose"] == "store_credit_applied" and d["status"] == "succeeded":
            _add(figures["store_credit_applied"], currency, amount)
        if d["kind"] != "charge" or d["purpose"] not in DRAFT_PURPOSES:
            continue
        months.setdefault((d["location_id"], d["spa_id"], d["membership_id"], d["due_on"], d["purpose"]), []).append(d)
        if d["status"] == "succeeded":
            _tally(figures["drafts_collected"], currency, amount)
        elif d["status"] in _UNPAID:
            _tally(figures["drafts_declined"], currency, amount)
    for (location, *_), attempts in months.items():
        if not any(a["status"] == "succeeded" for a in attempts):
            latest = max(attempts, key=lambda a: a["attempt"])
            _tally(row(location)["memberships"]["drafts_outstanding"], latest["amount"]["currency"],
                   latest["amount"]["amount"])
    for r in rows.values():
        for key in ("drafts_collected", "drafts_declined", "drafts_outstanding"):
            r["memberships"][key]["total"] = dict(sorted(r["memberships"][key]["total"].items()))


def _tally(figure: dict[str, Any], currency: str, amount: int) -> None:
    figure["count"] += 1
    _add(figure["total"], currency, amount)


FEE_REASONS = ("late_cancel", "no_show", "late_reschedule")
_FEE_PURPOSE = re.compile(r"^(?P<reason>[a-z][a-z0-9_]*?)_fee(?:_(?P<step>[a-z0-9_]+))?$")
_MONEY_KEYS = ("assessed", "collected", "covered", "outstanding", "waived", "forfeited")


def money_summary(ledger: Iterable[Mapping[str, Any]], location_of: Mapping[tuple[Any, Any], Any]
                  ) -> dict[str, dict[str, Any]]:
    """Where each location's fees went, by location and currency, from the report's ledger lines alone.

    A fee is one (appointment, reason): ``no_show_fee`` is its card charge (attempt 1 the settlement,
    later attempts dunning), ``no_show_fee_<source>`` what the policy took from a deposit, prepayment,
    course session or gift certificate (``forfeit``, ``deduction``) or left owed (``outstanding``),
    ``no_show_fee_refund`` and ``no_show_fee_waiver`` what staff forgave, ``no_show_fee_<source>_released`` what a
    fee released because the client was there after all gave back. So each fee splits exactly:
    assessed = collected + covered + waived + outstanding, where

    * assessed: the settlement's steps, each once (the card's attempt 1, whatever its status, plus the
      other sources);
    * collected: card charges that succeeded, on any attempt, less fee refunds;
    * covered: deposits, prepayments, course sessions and gift certificates taken for the fee, less what a
      release gave back;
    * waived: fee refunds, owed balances staff cancelled, and what a release gave back;
    * outstanding: the rest, still owed (a charge still pending counts here until Stripe answers).

    ``forfeited`` is every deposit or prepayment kept (``forfeit`` entries that succeeded, for a fee or
    not, less those a release gave back): the part of ``covered`` the client lost outright, plus any forfeit
    that was not a fee.
    """
    rows: dict[str, dict[str, Any]] = {}

    def row(location: Any) -> dict[str, Any]:
        return rows.setdefault(location or "(none)", _no_money())

    fees: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in ledger:
        visit = _visit(e)
        amount, currency, succeeded = e["amount"]["amount"], e["amount"]["currency"], e["status"] == "succeeded"
        if e["kind"] == "forfeit" and succeeded:
            _add(row(location_of.get(visit))["forfeited"], currency, amount)
        matched = _FEE_PURPOSE.match(e["purpose"])
        if matched is None:
            continue
        step = matched["step"]
        fee = fees.setdefault((*visit, matched["reason"], currency), {
            "location": location_of.get(visit), "reason": matched["reason"], "currency": currency,
            "assessed": 0, "collected": 0, "covered": 0, "waived": 0})
        if e["kind"] == "charge" and step is None:
            fee["assessed"] += amount if e["attempt"] == 1 else 0
            fee["collected"] += amount if succeeded else 0
        elif e["kind"] in ("forfeit", "deduction") and step is not None:
            fee["assessed"] += amount
            fee["covered"] += amount if succeeded else 0
        elif e["kind"] == "outstanding" and step is not None:
            fee["assessed"] += amount
        elif e["kind"] == "refund" and step == "refund" and succeeded:
            fee["collected"] -= amount
            fee["waived"] += amount
        elif e["kind"] == "credit" and step == "waiver" and succeeded:
            fee["waived"] += amount
        elif e["kind"] == "credit" and step is not None and step.endswith("_released") and succeeded:
            fee["covered"] -= amount
            fee["waived"] += amount
            if step.removesuffix("_released") in ("deposit", "prepayment"):
                _add(row(location_of.get(visit))["forfeited"], currency, -amount)
    for fee in fees.values():
        r, currency = row(fee["location"]), fee["currency"]
        if fee["assessed"]:
            by_reason = r["fees"].setdefault(fee["reason"], {"count": 0, "total": {}})
            by_reason["count"] += 1
            _add(by_reason["total"], currency, fee["assessed"])
        outstanding = fee["assessed"] - fee["collected"] - fee["covered"] - fee["waived"]
        for key, value in (("assessed", fee["assessed"]), ("collected", fee["collected"]),
                           ("covered", fee["covered"]), ("waived", fee["waived"]), ("outstanding", outstanding)):
            if value:
                _add(r[key], currency, value)
    for r in rows.values():
        r["forfeited"] = {currency: amount for currency, amount in r["forfeited"].items() if amount}
    return rows


def _no_money() -> dict[str, Any]:
    return {"fees": {reason: {"count": 0, "total": {}} for reason in FEE_REASONS}, **{key: {} for key in _MONEY_KEYS}}


def _add(totals: dict[str, int], currency: str, amount: int) -> None:
    totals[currency] = totals.get(currency, 0) + amount


# ---------------------------------------------------------------------- values


def site_id(key: str) -> str:
    """The report names a visit as its booking site does (``apt-1``) beside its ``spa_id``, not by the stored key."""
    return split_key(key)[1]


def _visit(line: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(spa, appointment) of a message or ledger line: two spas may both have an appointment ``apt-1``."""
    client = line.get("client_id")
    return (spa_of(client) if client else None), line.get("appointment_id")


def iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_time(value)
        if value is None:
            return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _money(money: Any) -> dict[str, Any]:
    return {"amount": int(money.amount), "currency": money.currency}
