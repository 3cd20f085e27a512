"""The simulator and its report for memberships (issue 9): the bundled MassageLuXe Austin membership scenario
played in the local cloud, the report's memberships, drafts, executions and figures, its HTML page, and the
scenario checks that refuse a membership event before anything is deployed.

The expected drafts are the MassageLuXe rules as ``tests/e2e/test_memberships.py`` pins them: a draft day of
the 31st falls on 28 February and returns; a freeze form within 48 hours freezes ($5.00 a month as LuXe Bux), a
late one changes nothing; an unfreeze moves the draft day and drafts full dues at once, store credit first; a
cancellation with paper certificates issues one per service, good for exactly 6 months; a declined draft is
retried 1, 3 and 7 days after its date and a new card restores good standing.
"""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from localcloud.cli import app
from localcloud.cloud import REPO_ROOT
from localcloud.simulate import REPORT_KEYS, SCENARIOS_DIR, ScenarioError, run_scenario, validate_scenario

pytestmark = pytest.mark.e2e

SCENARIO = SCENARIOS_DIR / "massageluxe-austin-memberships.json"
DOC = REPO_ROOT / "docs" / "simulate.md"


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("memberships")
    report = run_scenario(SCENARIO, out / "report.json", html=out / "page.html")
    assert json.loads((out / "report.json").read_text()) == report
    return report, (out / "page.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report(played) -> dict:
    return played[0]


def _membership(report: dict, membership_id: str) -> dict:
    (found,) = (m for m in report["memberships"] if m["membership_id"] == membership_id)
    return found


# ------------------------------------------------------------------ the bundled scenario's report


def test_the_report_has_memberships_drafts_and_executions_and_documents_them(report):
    assert tuple(report) == REPORT_KEYS
    documented = DOC.read_text()
    for key in ("executions", "memberships", "drafts", "membership_id", "membership_version", "draft_day",
                "next_draft_on", "next_retry_on", "store_credit", "full_dues_paid", "certificates", "decisions",
                "due_on", "decided_at", "drafts_collected", "drafts_declined", "drafts_outstanding",
                "store_credit_held", "certificates_issued", "expiries", "state_machines", "memberships_simulated"):
        assert f"`{key}`" in documented, f"docs/simulate.md does not describe {key!r}"
    assert report["format"] == "medspa.simulate.report/1"  # only additions: a reader of version 1 reads it
    assert report["appointments"] == [] and report["quarantined"] == []
    assert {line["outcome"] for line in report["inputs"]} == {"applied"}
    started = next(line for line in report["inputs"] if line["detail_type"] == "MembershipStarted")
    assert (started["membership_id"], started["membership_version"]) == ("mem-eve", 1)
    assert started["facts"]["plan"]["monthly_dues"] == {"amount": 7900, "currency": "USD"}
    assert "stripe_customer_id" not in json.dumps(started["facts"])
    assert "+15125550141" not in json.dumps(report), "the report carries no phone number"


def test_each_membership_is_drafted_as_the_rules_say_month_end_freeze_unfreeze_decline(report):
    drafts = sorted((d["membership_id"], d["due_on"], d["purpose"], d["attempt"], d["amount"]["amount"], d["status"])
                    for d in report["drafts"])
    assert drafts == sorted([
        # Eve's draft day is the 31st: the last day of February, then the 31st again (09:00 CDT after 8 March).
        ("mem-eve", "2026-01-31", "membership_dues", 1, 7900, "succeeded"),
        ("mem-eve", "2026-02-28", "membership_dues", 1, 7900, "succeeded"),
        ("mem-eve", "2026-03-31", "membership_dues", 1, 7900, "succeeded"),
        # Fay's form came back within 48 hours: $5.00 in March, kept as LuXe Bux.
        ("mem-fay", "2026-02-02", "membership_dues", 1, 7900, "succeeded"),
        ("mem-fay", "2026-03-02", "frozen_dues", 1, 500, "succeeded"),
        # Gus's came back late: full dues go on.
        ("mem-gus", "2026-02-02", "membership_dues", 1, 7900, "succeeded"),
        ("mem-gus", "2026-03-02", "membership_dues", 1, 7900, "succeeded"),
        # Kim unfroze on 18 March: full dues at once, her $5.00 of LuXe Bux first.
        ("mem-kim", "2026-02-03", "membership_dues", 1, 7900, "succeeded"),
        ("mem-kim", "2026-03-03", "frozen_dues", 1, 500, "succeeded"),
        ("mem-kim", "2026-03-18", "membership_dues", 1, 7400, "succeeded"),
        ("mem-kim", "2026-03-18", "store_credit_applied", 1, 500, "succeeded"),
        # Hal: two months, then cancelled.
        ("mem-hal", "2026-02-01", "membership_dues", 1, 10900, "succeeded"),
        ("mem-hal", "2026-03-01", "membership_dues", 1, 10900, "succeeded"),
        # Ivy's card declines on the draft date and the first retry; the new card pays the retry of 8 February.
        ("mem-ivy", "2026-02-05", "membership_dues", 1, 7900, "declined"),
        ("mem-ivy", "2026-02-05", "membership_dues", 2, 7900, "declined"),
        ("mem-ivy", "2026-02-05", "membership_dues", 3, 7900, "succeeded"),
        ("mem-ivy", "2026-03-05", "membership_dues", 1, 7900, "succeeded"),
    ])
    ivy = [d for d in report["drafts"] if d["membership_id"] == "mem-ivy" and d["due_on"] == "2026-02-05"]
    assert [d["created_at"][:10] for d in sorted(ivy, key=lambda d: d["attempt"])] == [
        "2026-02-05", "2026-02-06", "2026-02-08"]
    assert all(d["decline_code"] for d in ivy if d["status"] == "declined")
    eve = sorted(d["created_at"] for d in report["drafts"] if d["membership_id"] == "mem-eve")
    assert eve == ["2026-01-31T15:00:00Z", "2026-02-28T15:00:00Z", "2026-03-31T14:00:00Z"]  # 09:00 local
    # Each draft is a ledger entry too, named for the membership (and only there, never a fee).
    ledger = {e["entry_id"]: e for e in report["ledger"]}
    for d in report["drafts"]:
        assert ledger[d["entry_id"]]["membership_id"] == d["membership_id"]
        assert d["entry_id"] == f"massageluxe#{d['membership_id']}#{d['due_on']}#{d['purpose']}#{d['attempt']}"
    (location,) = report["summary"]["locations"]
    assert location["money"]["assessed"] == {} and location["fees_charged"]["count"] == 0


def test_statuses_draft_days_credits_store_credit_and_certificates_at_the_end(report):
    state = {m["membership_id"]: (m["status"], m["past_due"], m["draft_day"], m["next_draft_on"], m["credits"],
                                  m["store_credit"]["amount"], m["full_dues_paid"]) for m in report["memberships"]}
    assert state == {
        "mem-eve": ("active", False, 31, "2026-04-30", 2, 0, 3),  # three services, one used on 14 February
        "mem-fay": ("frozen", False, 2, "2026-04-02", 1, 500, 1),
        "mem-gus": ("active", False, 2, "2026-04-02", 2, 0, 2),
        "mem-kim": ("active", False, 18, "2026-04-18", 2, 0, 2),
        "mem-hal": ("cancelled", False, 1, None, 0, 0, 2),
        "mem-ivy": ("active", False, 5, "2026-04-05", 2, 0, 2),
        "mem-jo": ("expired", False, 1, None, 0, 0, 0),
    }
    hal = _membership(report, "mem-hal")
    assert hal["cancelled_on"] == "2026-03-11"
    assert hal["certificates"] == [
        {"certificate_id": "cert-1", "issued_on": "2026-03-11", "expires_on": "2026-09-11", "expired": False},
        {"certificate_id": "cert-2", "issued_on": "2026-03-11", "expires_on": "2026-09-11", "expired": False}]
    gus = _membership(report, "mem-gus")
    assert ("freeze_refused", "the freeze form came back more than 48 hours after it was sent", 3) in [
        (d["outcome"], d["reason"], d["membership_version"]) for d in gus["decisions"]]
    ivy = [d["outcome"] for d in _membership(report, "mem-ivy")["decisions"]]
    assert ivy == ["started", "draft_declined", "draft_declined", "drafted", "drafted"]
    assert [d["outcome"] for d in _membership(report, "mem-jo")["decisions"]] == ["started", "expired"]
    assert [(x["of"], x["purpose"], x["amount"]["amount"]) for x in report["expiries"]] == [
        ("mem-jo", "membership_expired", 7900)]  # the paid-in-full month's service, forfeited without grace
    told = [e for e in report["events_to_booking_site"] if e["detail_type"] == "MembershipDecision"]
    assert len(told) == sum(len(m["decisions"]) for m in report["memberships"])
    assert {e["membership_id"] for e in told} == {m["membership_id"] for m in report["memberships"]}


def test_the_drafts_executions_are_listed_with_the_others_and_name_the_drafts_they_took(report):
    runs = [e for e in report["executions"] if e["state_machine"] == "MembershipDrafts"]
    assert runs and all(e["status"] == "SUCCEEDED" for e in runs)
    alone = sorted(e["name"] for e in runs if e["membership_id"])
    assert alone == ["massageluxe.mem-fay-2026-02-02-a1", "massageluxe.mem-gus-2026-02-02-a1",
                     "massageluxe.mem-kim-2026-03-18-a1"]
    daily = [e for e in runs if not e["membership_id"]]
    assert {"America/Chicago", "America/Phoenix"} <= {e["time_zone"] for e in daily}  # one per zone with terms
    assert all(re.fullmatch(r"MembershipDraftsStateMachineDrafts\w+-\d{8}T\d{6}Z", e["name"]) for e in daily)
    by_name = {e["name"]: e for e in runs}
    for d in report["drafts"]:
        run = by_name[d["execution"]]
        assert any(step["membership_id"] == d["membership_id"] and step["due_on"] == d["due_on"]
                   for step in run["steps"]), d
        assert run["started_at"] <= d["created_at"] <= run["stopped_at"]
    machines = report["summary"]["state_machines"]
    assert machines["MembershipDrafts"] == {"executions": len(runs),
                                            "state_transitions": sum(e["state_transitions"] for e in runs)}
    assert report["summary"]["executions"] == 0, "the older total still counts appointments' lifecycles only"


def test_the_membership_figures_per_location_are_the_drafts_and_memberships_summed(report):
    (location,) = report["summary"]["locations"]
    figures = location["memberships"]
    drafts = report["drafts"]
    charged = [d for d in drafts if d["kind"] == "charge"]
    ok = [d for d in charged if d["status"] == "succeeded"]
    declined = [d for d in charged if d["status"] == "declined"]
    assert figures == {
        "count": 7,
        "by_status": {"active": 4, "frozen": 1, "cancelled": 1, "expired": 1},
        "past_due": 0,
        "drafts_collected": {"count": len(ok), "total": {"USD": sum(d["amount"]["amount"] for d in ok)}},
        "drafts_declined": {"count": len(declined), "total": {"USD": sum(d["amount"]["amount"] for d in declined)}},
        "drafts_outstanding": {"count": 0, "total": {}},
        "store_credit_applied": {"USD": 500},
        "store_credit_held": {"USD": 500},
        "certificates_issued": 2,
        "certificates_expired": 0,
        "expiries": 1,
    }
    assert figures["drafts_collected"] == {"count": 14, "total": {"USD": 101300}}
    assert figures["drafts_declined"] == {"count": 2, "total": {"USD": 15800}}
    summary = report["summary"]
    assert (summary["memberships_simulated"], summary["drafts"]) == (7, len(drafts))
    assert location["location_id"] == "massageluxe-austin" and location["spa_id"] == "massageluxe"


def test_a_month_declined_on_every_attempt_so_far_is_outstanding_and_the_member_past_due():
    """The summary's rule on its own: a month with no successful attempt is outstanding, at its latest amount."""
    from localcloud.report import summarize

    def draft(membership: str, due_on: str, attempt: int, status: str) -> dict:
        return {"membership_id": membership, "spa_id": "massageluxe", "location_id": "massageluxe-austin",
                "due_on": due_on, "purpose": "membership_dues", "kind": "charge", "attempt": attempt,
                "amount": {"amount": 7900, "currency": "USD"}, "status": status}

    member = {"membership_id": "mem-1", "spa_id": "massageluxe", "client_id": "massageluxe#c-1",
              "location_id": "massageluxe-austin", "status": "active", "past_due": True,
              "store_credit": {"amount": 0, "currency": "USD"}, "certificates": [], "decisions": []}
    report = {"appointments": [], "messages": [], "ledger": [], "clients": [], "inputs": [],
              "events_to_booking_site": [], "quarantined": [], "executions": [], "memberships": [member],
              "drafts": [draft("mem-1", "2026-02-05", 1, "declined"), draft("mem-1", "2026-02-05", 2, "declined"),
                         draft("mem-1", "2026-01-05", 1, "succeeded")]}
    (location,) = summarize(report)["locations"]
    assert location["memberships"]["drafts_outstanding"] == {"count": 1, "total": {"USD": 7900}}
    assert location["memberships"]["drafts_declined"] == {"count": 2, "total": {"USD": 15800}}
    assert location["memberships"]["past_due"] == 1


def test_certificates_expired_by_the_end_are_still_reported_as_issued():
    """The stored membership drops a certificate once it expires; the report refolds the membership's own
    events and drafts as of its cancellation day, so the owner still sees what was issued, and that it expired."""
    from datetime import UTC, date, datetime

    from localcloud.report import membership_line, summarize
    from medspa.domain.membership import Draft, DraftKind
    from medspa.events import DETAIL_MODELS
    from medspa.events.membership_history import fold_membership
    from medspa.money import Money
    from medspa.policy.loader import load_packs
    from medspa.ports.memberships import MembershipRecord

    plan = {"name": "LuXe 60", "monthly_dues": {"amount": 7900, "currency": "USD"}, "service_credits_per_month": 1}
    details = [
        ("MembershipStarted", "2026-01-10T15:00:00Z", {"client": {"id": "c-1"}, "location_id": "massageluxe-austin",
                                                       "plan": plan, "starts_on": "2026-01-15"}),
        ("MembershipCancellationRequested", "2026-02-20T15:00:00Z", {"form_sent_at": "2026-02-20T15:00:00Z"}),
        ("MembershipCancellationFormCompleted", "2026-02-21T15:00:00Z",
         {"submitted_at": "2026-02-21T15:00:00Z", "paper_certificates": True}),
    ]
    events = [DETAIL_MODELS[kind].model_validate_json(json.dumps({
        "spa_id": "massageluxe", "membership_id": "mem-1", "membership_version": n, "event_id": f"e-{n}",
        "occurred_at": at, **detail})) for n, (kind, at, detail) in enumerate(details, 1)]
    drafts = tuple(Draft(due_on=date(2026, month, 15), kind=DraftKind.DUES, attempt=1,
                         charged=Money(amount=7900, currency="USD"), store_credit_used=Money.zero("USD"),
                         succeeded=True, decided_at=datetime(2026, month, 15, 15, tzinfo=UTC)) for month in (1, 2))
    packs = load_packs()
    ended = fold_membership(events, drafts, packs["massageluxe-austin"], as_of=date(2026, 8, 25))
    assert ended.certificates == ()
    record = MembershipRecord(membership_id="massageluxe#mem-1", drafts=drafts, membership=ended,
                              events=tuple((e.detail_type, e.model_dump_json()) for e in events))
    line = membership_line(record, packs)
    assert line["certificates"] == [
        {"certificate_id": f"cert-{n}", "issued_on": "2026-02-21", "expires_on": "2026-08-21", "expired": True}
        for n in (1, 2)]
    report = {"appointments": [], "messages": [], "ledger": [], "clients": [], "inputs": [], "drafts": [],
              "events_to_booking_site": [], "quarantined": [], "executions": [], "memberships": [line]}
    (location,) = summarize(report)["locations"]
    figures = location["memberships"]
    assert (figures["certificates_issued"], figures["certificates_expired"], figures["expiries"]) == (2, 2, 2)


class _MembershipCells(HTMLParser):
    """The membership status cells and figures of the HTML page, by their data- attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: dict[str, str] = {}
        self.amounts: dict[tuple[str, str, str], int] = {}
        self.values: dict[tuple[str, str], int] = {}
        self.store_credit: dict[str, int] = {}
        self._status: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._status = a.get("data-membership")
        field = a.get("data-field") or ""
        if field.startswith("memberships.") and "data-amount" in a:
            self.amounts[(a["data-location"], a["data-currency"], field)] = int(a["data-amount"])
        if field.startswith("memberships.") and "data-value" in a:
            self.values[(a["data-location"], field)] = int(a["data-value"])
        if "data-store-credit-of" in a:
            self.store_credit[a["data-store-credit-of"]] = int(a["data-amount"])

    def handle_data(self, data):
        if self._status is not None:
            self.statuses[self._status] = data
            self._status = None


def test_the_html_page_shows_the_memberships_of_the_json(played):
    report, page = played
    cells = _MembershipCells()
    cells.feed(page)
    assert cells.statuses == {m["membership_id"]: m["status"] for m in report["memberships"]}
    assert cells.store_credit == {m["membership_id"]: m["store_credit"]["amount"] for m in report["memberships"]}
    (location,) = report["summary"]["locations"]
    figures, where = location["memberships"], location["location_id"]
    assert cells.values[(where, "memberships.count")] == 7
    assert cells.values[(where, "memberships.by_status.frozen")] == figures["by_status"]["frozen"]
    assert cells.values[(where, "memberships.certificates_issued")] == 2
    assert cells.amounts[(where, "USD", "memberships.drafts_collected")] == figures["drafts_collected"]["total"]["USD"]
    assert cells.amounts[(where, "USD", "memberships.store_credit_held")] == 500
    assert not re.search(r"""(src|href)\s*=|@import|url\(|<script""", page)


def test_medspa_simulate_prints_each_membership_and_the_memberships_table(report, monkeypatch):
    """The console renders the finished report: run_scenario is replaced by the module's report."""
    monkeypatch.setattr("localcloud.cli.run_scenario", lambda *args, **kwargs: copy.deepcopy(report))
    result = CliRunner().invoke(app, ["simulate", str(SCENARIO)])
    assert result.exit_code == 0, result.output
    output = result.output
    for expected in ("mem-eve", "mem-hal", "freeze_refused", "frozen_dues", "store_credit_applied",
                     "memberships: massageluxe-austin-memberships", "store credit held (LuXe Bux)",
                     "paper certificates issued", "MembershipDrafts:", "massageluxe.mem-kim-2026-03-18-a1"):
        assert expected in output, expected


# ------------------------------------------------------------------ refused before anything is deployed


def _bundled() -> dict:
    return json.loads(SCENARIO.read_text())


def _entry(scenario: dict, detail_type: str, membership_id: str) -> dict:
    return next(e for e in scenario["events"] if e.get("detail_type") == detail_type
                and e["detail"]["membership_id"] == membership_id)


def _no_deploy(*args, **kwargs):
    raise AssertionError("the scenario was not validated before the local cloud was opened")


def test_a_membership_version_that_does_not_increase_is_refused_naming_the_field(tmp_path, monkeypatch):
    scenario = _bundled()
    completed = _entry(scenario, "MembershipFreezeFormCompleted", "mem-fay")
    completed["detail"]["membership_version"] = 2  # the freeze request of events[7] already holds version 2
    index = scenario["events"].index(completed)
    with pytest.raises(ScenarioError, match=rf"^events\[{index}\]\.detail\.membership_version: 2 does not increase "
                                            r"on events\[7\] \(version 2\) of membership mem-fay$"):
        validate_scenario(scenario)
    monkeypatch.setattr("localcloud.simulate.LocalCloud", _no_deploy)
    path = tmp_path / "memberships.json"
    path.write_text(json.dumps(scenario))
    result = CliRunner().invoke(app, ["simulate", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}: events[{index}].detail.membership_version: ")


@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: _entry(s, "MembershipStarted", "mem-eve")["detail"].update(location_id="glow-hk"),
     r"^events\[0\]\.detail\.location_id: 'glow-hk' is a location of glow, not of massageluxe"),
    (lambda s: _entry(s, "ServiceCreditRedeemed", "mem-eve")["detail"].update(location_id="bijoux"),
     r"^events\[\d+\]\.detail\.location_id: 'bijoux' is a location of bijoux, not of massageluxe"),
    (lambda s: _entry(s, "MembershipStarted", "mem-eve")["detail"]["client"].update(id="c-nobody"),
     r"^events\[0\]\.detail\.client\.id: 'c-nobody' of massageluxe is not in the clients section"),
    (lambda s: _entry(s, "MembershipStarted", "mem-eve")["detail"].update(membership_version=0),
     r"^events\[0\]\.detail\.membership_version: "),
    (lambda s: s["events"].insert(0, {"at": "2026-01-30T15:01:00Z", "detail_type": "CardUpdated", "card": "visa",
                                      "detail": {"spa_id": "massageluxe", "client_id": "c-ivy"}}),
     r"^events\[0\]\.detail\.client_id: 'c-ivy' has no booking at massageluxe before this entry"),
], ids=["membership-location", "redemption-location", "unlisted-member", "version-zero", "card-before-sign-up"])
def test_membership_events_are_checked_as_the_intake_will(change, expected):
    scenario = _bundled()
    change(scenario)
    with pytest.raises(ScenarioError, match=expected):
        validate_scenario(scenario)


def test_the_runner_fills_the_members_contact_and_the_card_dues_are_drafted_from():
    inputs = validate_scenario(SCENARIO)
    started = next(i.detail for i in inputs if i.envelope and i.envelope["detail-type"] == "MembershipStarted")
    assert started["client"] == {"id": "c-eve", "phone": "+15125550141", "sms_opt_in": True}
    assert started["payment"]["stripe_customer_id"].startswith("cus_")
    assert started["payment"]["stripe_payment_method_id"].startswith("pm_")
    scenario = _bundled()
    scenario["clients"][0]["card"] = None  # listed without a card: the customer only, drafts decline until a card
    started = next(i.detail for i in validate_scenario(scenario)
                   if i.envelope and i.envelope["detail-type"] == "MembershipStarted")
    assert set(started["payment"]) == {"stripe_customer_id"}


# ------------------------------------------------------------------ a run without until


def test_a_scenario_without_until_ends_when_its_work_does_though_the_daily_drafts_never_stop():
    """The daily MembershipDrafts schedules always have a next fire: "until nothing is left to do" would
    otherwise run every scenario to the 400-day bound. They fire on time while the visit's lifecycle runs."""
    scenario = {
        "name": "no-until", "start": "2026-03-05T15:00:00Z",
        "clients": [{"spa_id": "massageluxe", "id": "c-1", "card": "visa"}],
        "events": [
            {"at": "2026-03-05T15:05:00Z", "detail_type": "AppointmentBooked", "detail": {
                "spa_id": "massageluxe", "appointment_id": "tx-1", "booking_version": 1,
                "location_id": "massageluxe-austin", "client": {"id": "c-1"},
                "service": {"name": "Swedish massage, 60 min", "category": "massage", "duration_minutes": 60,
                            "price": {"amount": 9900, "currency": "USD"}},
                "starts_at": "2026-03-07T10:00:00-06:00", "payment": {"card_on_file": True}}},
            {"at": "2026-03-06T15:00:00Z", "detail_type": "AppointmentCancelled", "detail": {
                "spa_id": "massageluxe", "appointment_id": "tx-1", "booking_version": 2, "by": "spa"}},
        ],
    }
    report = run_scenario(scenario)
    assert report["ended_at"] < "2026-03-08T00:00:00Z", report["ended_at"]
    daily = [e for e in report["executions"]
             if e["state_machine"] == "MembershipDrafts" and e["time_zone"] == "America/Chicago"]
    assert [e["started_at"] for e in daily][:2] == ["2026-03-05T15:00:00Z", "2026-03-06T15:00:00Z"]
