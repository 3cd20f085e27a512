"""The business metrics (issue 12, item 4), read back from CloudWatch as the dashboard reads them: each counted
once where the system records the outcome, whatever the retries, and each line carrying its spa."""

from __future__ import annotations

from datetime import timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from localcloud.clock import utc
from medspa.adapters.store import AppointmentStatus

pytestmark = pytest.mark.e2e

VISIT = utc(2026, 3, 10, 18)  # Tuesday 14:00 EDT
INJECTION = dict(name="Botox forehead", category="injection_laser", minutes=30, price=45000)


@pytest.mark.parametrize("cloud", [utc(2026, 3, 2, 16)], indirect=True)
def test_fees_visits_messages_and_quarantined_events_are_counted_once_each_with_their_spa(cloud, site):
    site.client("bijoux", "c-ben")  # a no-show, charged, then waived by an admin
    site.book("apt-ben", "c-ben", "bijoux", VISIT, **INJECTION)
    site.client("bijoux", "c-gus", card="chargeCustomerFail")  # a no-show whose card declines, then every retry
    site.book("apt-gus", "c-gus", "bijoux", VISIT, **INJECTION)
    site.client("bijoux", "c-lu", sms_opt_in=False)  # checked in: reminders skipped, nothing charged
    site.book("apt-lu", "c-lu", "bijoux", VISIT, **INJECTION)
    site.client("406medicalspa", "c-cy", phone="+14065550111")  # never confirms: auto-cancelled
    site.book("apt-cy", "c-cy", "406medicalspa", utc(2026, 3, 10, 17), name="Hydrafacial", category="esthetics",
              minutes=60, price=20000)
    cloud.run_until(VISIT - timedelta(minutes=5))
    site.send("ClientCheckedIn", "apt-lu", arrived_at=(VISIT - timedelta(minutes=5)).isoformat())
    site.send("ClientCheckedIn", "apt-lu", arrived_at="at some point")  # quarantined: not a time
    cloud.run_until(VISIT + timedelta(hours=2))
    site.send("FeeWaived", "apt-ben", purpose="no_show_fee", admin_id="admin-maria", reason="Medical emergency")
    cloud.run_until_idle()

    assert [site.stored(a).status for a in ("apt-ben", "apt-gus", "apt-cy")] == [
        AppointmentStatus.NO_SHOW, AppointmentStatus.NO_SHOW, AppointmentStatus.AUTO_CANCELLED]
    assert len(site.ledger("apt-gus")) > 2, "dunning retried the declined fee"
    counted = {name: cloud.metric_sum(name) for name in (
        "FeeCharged", "FeeDeclined", "FeeOutstanding", "FeeWaived", "NoShow", "StrikeRecorded", "AutoCancelled",
        "EventQuarantined", "PrepayRequired", "DraftCollected")}
    assert counted == {"FeeCharged": 1, "FeeDeclined": 1, "FeeOutstanding": 0, "FeeWaived": 1, "NoShow": 2,
                       "StrikeRecorded": 2, "AutoCancelled": 1, "EventQuarantined": 1, "PrepayRequired": 0,
                       "DraftCollected": 0}

    region = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    assert cloud.metric_sum("MessageSent", channel="sms") == len(region.sms_messages) > 0
    assert cloud.metric_sum("MessageSent", channel="email") == len(
        ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)
    assert cloud.metric_sum("MessageSkipped", channel="sms") == 2  # c-lu's two reminders, no SMS consent

    spas = {(name, line.get("spa_id")) for _, line in cloud.metric_lines
            for name in ("FeeCharged", "AutoCancelled", "EventQuarantined") if name in line}
    assert spas == {("FeeCharged", "bijoux"), ("AutoCancelled", "406medicalspa"), ("EventQuarantined", None)}
