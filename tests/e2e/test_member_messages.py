"""Telling the member end to end (issue 9 items 2 and 5): "a failed draft ... tells the member"; expiry jobs "tell
the client a week before something expires". Booking-site events on the bus, the daily MembershipDrafts run at
09:00 local time, the fake Stripe, and the texts and emails moto recorded, all under the virtual clock.

MassageLuXe Austin (America/Chicago) for memberships, Glow (Asia/Hong_Kong) for a prepaid course. The lead time
is the pack's ``[expiry_notice]`` (7 days, the system's decision).
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

import tests.e2e.test_courses as courses
from tests.e2e.test_client_messages import emails_to, texts_to
import tests.e2e.test_memberships as memberships
from tests.e2e.booking_site import quarantined

pytestmark = pytest.mark.e2e

local = memberships.local


class Member(memberships.Member):
    """A member the spa can reach: a first name, a phone and an email address of their own."""

    def __init__(self, site, membership_id: str, client_id: str, phone: str, address: str,
                 card: str = "visa") -> None:
        self.site, self.membership_id, self.client_id = site, membership_id, client_id
        self.version = 0
        self.known = site.client("massageluxe", client_id, card=card, phone=phone, email=address, first_name="Dana")

    def cancel(self, paper_certificates: bool = False) -> None:
        self.send("MembershipCancellationRequested", form_sent_at=self.site.cloud.now().isoformat())
        self.site.cloud.run_for(timedelta(hours=1))
        self.send("MembershipCancellationFormCompleted", submitted_at=self.site.cloud.now().isoformat(),
                  paper_certificates=paper_certificates)
        self.site.cloud.run_for(timedelta(minutes=5))

    def told(self, outcome: str) -> list[dict]:
        return [d for kind, d in collected(self.site)
                if kind == "MembershipDecision" and d["membership_id"] == self.membership_id and d["outcome"] == outcome]


def collected(site) -> list[tuple[str, dict]]:
    """Everything the booking site was sent so far: its inbox queue is drained as the test goes (SQS keeps a
    message 4 days, and the virtual clock runs for months)."""
    seen: list[tuple[str, dict]] = site.__dict__.setdefault("_collected", [])
    seen += site.inbox()
    return seen


def run_until(site, moment) -> None:
    """Run the clock to ``moment``, reading what the booking site was sent every 3 days: an expired message
    stops moto's receive, so what came after it would never be read."""
    cloud = site.cloud
    while cloud.now() + timedelta(days=3) < moment:
        cloud.run_for(timedelta(days=3))
        collected(site)
    cloud.run_until(moment)
    collected(site)


def text_stop(cloud, phone: str) -> None:
    """The member replies STOP to the spa's number (End User Messaging publishes it to the inbound topic)."""
    cloud.client("sns").publish(TopicArn=cloud.deployment.outputs["InboundSmsTopicArn"], Message=json.dumps({
        "originationNumber": phone, "destinationNumber": "+18005550100", "messageKeyword": "KEYWORD",
        "messageBody": "STOP", "inboundMessageId": f"in-stop-{phone}", "previousPublishedMessageId": "out-1"}))


def run_the_daily_job_again(cloud, member: Member) -> None:
    """A second schedule firing for the zone, and a run naming the membership: both take its due step again."""
    sfn = cloud.client("stepfunctions")
    arn = cloud.state_machine_arn("MembershipDraftsStateMachine")
    sfn.start_execution(stateMachineArn=arn, name="again-chicago",
                        input=json.dumps({"time_zone": "America/Chicago", "membership_id": None}))
    sfn.start_execution(stateMachineArn=arn, name=f"again-{member.membership_id}",
                        input=json.dumps({"time_zone": None, "membership_id": member.key}))
    cloud.run_for(timedelta(minutes=30))


@pytest.mark.parametrize("cloud", [memberships.utc(2026, 1, 5, 15)], indirect=True)
def test_a_declined_draft_texts_and_emails_the_member_and_one_who_opted_out_of_texts_gets_only_the_email(
        cloud, site):
    dana = Member(site, "mem-dana", "c-dana", "+15125550161", "dana@example.com", card="chargeCustomerFail")
    eli = Member(site, "mem-eli", "c-eli", "+15125550162", "eli@example.com", card="chargeCustomerFail")
    text_stop(cloud, eli.known["client"]["phone"])
    cloud.run_for(timedelta(minutes=1))
    stop_reply = texts_to("+15125550162")
    for member in (dana, eli):
        member.start(date(2026, 1, 5))
    run_until(site, local(2026, 1, 5, 20))

    [declined] = texts_to("+15125550161")
    assert declined.startswith("Hi Dana, your MassageLuXe") and "$79.00" in declined
    assert "we will try your card again on Tue 6 Jan 2026" in declined and declined.endswith("Reply STOP to opt out.")
    [(subject, body)] = emails_to("dana@example.com")
    assert subject == "Your membership dues of $79.00 were declined" and "past due" in body
    assert texts_to("+15125550162") == stop_reply, "no text after STOP"
    assert [s for s, _ in emails_to("eli@example.com")] == ["Your membership dues of $79.00 were declined"]

    run_until(site, local(2026, 1, 13))  # retried Jan 6, 8 and 12, declined every time
    texts = texts_to("+15125550161")
    assert len(texts) == 4 and len(emails_to("dana@example.com")) == 4  # one notice per declined attempt
    assert ["Thu 8 Jan 2026" in texts[1], "Mon 12 Jan 2026" in texts[2]] == [True, True]
    assert "outstanding balance" in texts[3] and "try your card again" not in texts[3]
    assert len(dana.told("dues_unpaid")) == 1 and dana.told("dues_unpaid")[0]["amount"] == {
        "amount": 7900, "currency": "USD"}
    assert "Dana" not in json.dumps(collected(site)) and "dana@example.com" not in json.dumps(collected(site))
    assert quarantined(cloud) == []


@pytest.mark.parametrize("cloud", [memberships.utc(2026, 1, 15, 15)], indirect=True)
def test_services_left_after_a_cancellation_are_noticed_7_days_before_the_60_days_end_once_however_often_it_runs(
        cloud, site):
    member = Member(site, "mem-left", "c-left", "+15125550163", "left@example.com")
    member.start(date(2026, 1, 15))
    run_until(site, local(2026, 3, 20))  # Jan 15, Feb 15, Mar 15: three services
    member.cancel()  # usable until May 14: 60 days after Mar 15
    assert member.stored().credits_usable_until == date(2026, 5, 14)
    run_until(site, local(2026, 5, 6, 20))
    assert texts_to("+15125550163") == [] and member.told("services_expiring") == []

    run_until(site, local(2026, 5, 7, 10))  # the run of May 7, 09:00 CDT
    [notice] = texts_to("+15125550163")
    assert "3 membership services" in notice and "until Thu 14 May 2026" in notice
    assert [s for s, _ in emails_to("left@example.com")] == ["Your 3 membership services expire after Thu 14 May 2026"]
    [told] = member.told("services_expiring")
    assert (told["decided_at"], told["expires_on"], told["items"]) == ("2026-05-07T09:00:00-05:00", "2026-05-14", 3)

    run_the_daily_job_again(cloud, member)
    run_until(site, local(2026, 5, 16))  # the services expire the day after May 14
    assert texts_to("+15125550163") == [notice] and len(emails_to("left@example.com")) == 1
    assert len(member.told("services_expiring")) == 1 and len(member.told("services_expired")) == 1
    runs = cloud.client("stepfunctions").list_executions(
        stateMachineArn=cloud.state_machine_arn("MembershipDraftsStateMachine"))["executions"]
    assert all(r["status"] == "SUCCEEDED" for r in runs)
    assert quarantined(cloud) == []


@pytest.mark.parametrize("cloud", [memberships.utc(2026, 1, 15, 15)], indirect=True)
def test_paper_certificates_are_noticed_7_days_before_they_expire(cloud, site):
    member = Member(site, "mem-paper", "c-paper", "+15125550164", "paper@example.com")
    member.start(date(2026, 1, 15))
    run_until(site, local(2026, 2, 20))  # Jan 15, Feb 15: two services
    member.cancel(paper_certificates=True)  # issued Feb 20, expiring Aug 20
    assert [c.expires_on for c in member.stored().certificates] == [date(2026, 8, 20)] * 2
    run_until(site, local(2026, 8, 12, 20))
    assert texts_to("+15125550164") == []

    run_until(site, local(2026, 8, 13, 10))
    [notice] = texts_to("+15125550164")
    assert "2 paper certificates" in notice and "expire after Thu 20 Aug 2026" in notice
    assert len(emails_to("paper@example.com")) == 1
    run_until(site, local(2026, 8, 22))
    assert len(texts_to("+15125550164")) == 1 and len(member.told("certificate_expired")) == 2
    assert len(member.told("certificates_expiring")) == 1


@pytest.mark.parametrize("cloud", [courses.hk(2027, 2, 20, 9)], indirect=True)
def test_a_course_client_is_texted_and_emailed_a_week_before_unused_sessions_expire(cloud, site):
    site.client("glow", "c-wing", phone="+85291230011", email="wing@example.com", first_name="Wing")
    courses.buy(site, "crs-msg", "c-wing", sessions=3, purchased_on=date(2026, 3, 2))  # last day: 2027-03-01
    cloud.run_until(courses.hk(2027, 2, 21, 12))
    assert texts_to("+85291230011") == []
    cloud.run_until(courses.hk(2027, 2, 22, 12))  # the notice day's run, 09:00 HKT

    [notice] = texts_to("+85291230011")
    assert notice.startswith("Hi Wing,") and "3 prepaid sessions" in notice and "Mon 1 Mar 2027" in notice
    assert [s for s, _ in emails_to("wing@example.com")] == ["Your 3 prepaid sessions expire after Mon 1 Mar 2027"]
    assert len(courses.told(site.inbox(), "CourseExpiringSoon")) == 1
    cloud.run_until(courses.hk(2027, 3, 2, 12))
    assert len(texts_to("+85291230011")) == 1  # the expiry itself is the booking site's to tell
    assert quarantined(cloud) == []
