"""The spa API end to end (issue 12, item 3): requests through the HTTP API's real event shape (routes with path
variables, as API Gateway matches them), the function, the store and the lifecycle, under the virtual clock.

Glow: Mei misses a visit on a card that declines, so she owes the HK$500 no-show fee and has a strike. The front
desk asks what she must bring to her next booking, what cancelling that booking would cost, reads the missed
visit's timeline, waives the fee, and lifts a prepay flag. Each spa's token reads its own spa only.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from localcloud.clock import utc
from medspa.domain.api_token import api_token

pytestmark = pytest.mark.e2e

FACIAL = dict(name="HydraFacial", category="facial", minutes=60, price=128000)
MISSED, NEXT = utc(2026, 3, 3, 6), utc(2026, 3, 10, 6)  # Tuesdays, 14:00 HKT


def token(cloud, spa_id: str) -> str:
    secret = cloud.client("ssm").get_parameter(
        Name="/medspa/dev/spa-api/signing-key", WithDecryption=True)["Parameter"]["Value"]
    return api_token(secret.encode(), spa_id)


def ask(cloud, method: str, path: str, spa_id: str | None = "glow", body: dict | None = None,
        authorization: str | None = None):
    headers = {"content-type": "application/json"}
    if authorization or spa_id:
        headers["authorization"] = authorization or f"Bearer {token(cloud, spa_id)}"
    answer = cloud.http(method, path, headers=headers, body=json.dumps(body) if body is not None else None)
    return answer.status, json.loads(answer.body or "null")


@pytest.fixture
def missed(cloud, site):
    site.client("glow", "c-mei", card="chargeCustomerFail", phone="+85291230001")
    site.book("apt-g1", "c-mei", "glow-hk", MISSED, **FACIAL)
    cloud.run_until(MISSED + timedelta(hours=1))
    site.book("apt-g2", "c-mei", "glow-hk", NEXT, **FACIAL)
    cloud.run_for(timedelta(minutes=5))


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)
def test_the_front_desk_reads_a_clients_standing_and_what_her_next_booking_needs(cloud, site, missed):
    status, standing = ask(cloud, "GET", "/spas/glow/clients/c-mei")
    assert status == 200
    assert standing == {"client_id": "c-mei", "strikes": 1, "prepay_required": False, "card_on_file": True,
                        "outstanding": [{"amount": 50000, "currency": "HKD"}], "credit": []}

    status, needs = ask(cloud, "GET", "/spas/glow/booking-requirements?location_id=glow-hk&client_id=c-mei&party_size=1")
    assert status == 200
    assert (needs["prepay_in_full"], needs["outstanding_balance_due"]) == (
        False, [{"amount": 50000, "currency": "HKD"}])
    status, new_client = ask(cloud, "GET", "/spas/glow/booking-requirements?location_id=glow-hk")
    assert (status, new_client["outstanding_balance_due"], new_client["card_on_file"]) == (200, [], False)
    assert ask(cloud, "GET", "/spas/glow/booking-requirements?location_id=bijoux")[0] == 404  # another spa's
    assert ask(cloud, "GET", "/spas/glow/booking-requirements?location_id=glow-hk&party_size=0")[0] == 400


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)
def test_a_cancellation_quote_is_free_before_the_window_and_the_fee_inside_it(cloud, site, missed):
    status, early = ask(cloud, "GET", "/spas/glow/appointments/apt-g2/cancellation-quote")
    assert status == 200
    assert (early["late"], early["fee"], early["taken_from"]) == (False, None, [])
    assert early["free_until"] == "2026-03-09T06:00:00Z"  # Glow: 24 hours' notice

    cloud.run_until(NEXT - timedelta(hours=3))
    status, late = ask(cloud, "GET", "/spas/glow/appointments/apt-g2/cancellation-quote?kind=reschedule")
    assert status == 200
    assert (late["kind"], late["late"], late["fee"]) == ("reschedule", True, {"amount": 50000, "currency": "HKD"})
    assert [step["source"] for step in late["taken_from"]] == ["card_on_file"]
    assert ask(cloud, "GET", "/spas/glow/appointments/apt-g1/cancellation-quote")[0] == 409  # missed already


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)
def test_an_admin_reads_the_timeline_waives_the_fee_and_lifts_a_prepay_flag(cloud, site, missed):
    status, timeline = ask(cloud, "GET", "/spas/glow/appointments/apt-g1/timeline")
    assert status == 200 and timeline["status"] == "no_show"
    assert ("ledger", "no_show_fee", "declined") in {(e["what"], e["kind"], e["status"]) for e in timeline["entries"]}
    assert timeline["execution_console_url"].startswith(
        "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/arn:aws:states:")

    status, started = ask(cloud, "POST", "/spas/glow/appointments/apt-g1/fees/no_show_fee/waive",
                          body={"admin_id": "manager-1"})
    assert (status, started["already_running"]) == (202, False)
    cloud.run_for(timedelta(minutes=5))
    assert site.store.clients.get("glow#c-mei").outstanding in ({}, {"HKD": 0})
    status, again = ask(cloud, "POST", "/spas/glow/appointments/apt-g1/fees/no_show_fee/waive",
                        body={"admin_id": "manager-1"})
    assert (status, again["waiver"]) == (202, started["waiver"])  # the same run: a repeat waives nothing more
    assert ask(cloud, "POST", "/spas/glow/appointments/apt-g1/fees/no_show_fee/waive", body={})[0] == 400
    status, refused = ask(cloud, "POST", "/spas/glow/appointments/apt-g1/fees/deposit/waive",
                          body={"admin_id": "manager-1"})
    assert status == 400 and "no_show_fee" in refused["message"]

    site.store.clients.set_prepay_required("glow#c-mei", cloud.now())  # as the third strike would
    status, standing = ask(cloud, "POST", "/spas/glow/clients/c-mei/prepay-requirement/clear",
                           body={"admin_id": "manager-1"})
    assert (status, standing["prepay_required"]) == (200, False)
    assert site.store.clients.get("glow#c-mei").prepay_cleared_by == "manager-1"


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)
def test_a_token_reads_its_own_spa_only(cloud, site, missed):
    assert ask(cloud, "GET", "/spas/glow/clients/c-mei", spa_id=None)[0] == 401
    forged = token(cloud, "glow")[:-4] + "AAAA"
    status, refused = ask(cloud, "GET", "/spas/glow/clients/c-mei", authorization=f"Bearer {forged}")
    assert status == 401 and forged not in json.dumps(refused)
    assert ask(cloud, "GET", "/spas/glow/clients/c-mei", spa_id="bijoux")[0] == 403
    assert ask(cloud, "POST", "/spas/glow/appointments/apt-g1/fees/no_show_fee/waive", spa_id="bijoux",
               body={"admin_id": "intruder"})[0] == 403
    assert ask(cloud, "GET", "/spas/bijoux/clients/c-mei", spa_id="bijoux")[0] == 404  # Glow's client, not Bijoux's
    assert ask(cloud, "GET", "/spas/glow/appointments/apt-nope/timeline")[0] == 404
    assert site.store.clients.get("glow#c-mei").outstanding == {"HKD": 50000}


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 2)], indirect=True)
def test_the_admin_cli_does_what_the_api_does_against_the_deployed_stack(cloud, site, missed):
    from typer.testing import CliRunner

    from localcloud import cli

    runner = CliRunner()
    issued = runner.invoke(cli.app, ["admin", "token", "--spa", "glow"])
    assert issued.exit_code == 0 and issued.output.strip() == token(cloud, "glow")

    standing = runner.invoke(cli.app, ["admin", "standing", "--spa", "glow", "--client", "c-mei", "--json"])
    assert standing.exit_code == 0, standing.output
    assert json.loads(standing.output) == ask(cloud, "GET", "/spas/glow/clients/c-mei")[1]
    table = runner.invoke(cli.app, ["admin", "timeline", "--spa", "glow", "--appointment", "apt-g1"])
    assert table.exit_code == 0 and "no_show_fee" in table.output and "500.00 HKD" in table.output

    waived = runner.invoke(cli.app, ["admin", "waive", "--spa", "glow", "--appointment", "apt-g1",
                                     "--fee", "no_show_fee", "--by", "manager-2"])
    assert waived.exit_code == 0 and waived.output.startswith("waiver started: glow.apt-g1-")
    cloud.run_for(timedelta(minutes=5))
    assert site.store.clients.get("glow#c-mei").outstanding in ({}, {"HKD": 0})

    missing = runner.invoke(cli.app, ["admin", "standing", "--spa", "bijoux", "--client", "c-mei"])
    assert missing.exit_code == 1 and "no client with this id at this spa" in missing.output
