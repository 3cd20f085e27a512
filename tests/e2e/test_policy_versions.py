"""The policy the client accepted (issue 11, item 5), end to end: a spa publishes a new version of its pack
while visits booked under the old one are still ahead, and each visit is judged by the version it was
booked under.

Bijoux v1 (the shipped pack): 48-hour window, reminders 48 hours ahead and the morning of, $50 for a 30-minute
injection. Four days into the run the spa "deploys" a hypothetical v2 (24-hour window, the first reminder 24
hours ahead, $80), the documented way: the old file kept in history, the
new version locked, the functions' code published again so they cold-start on it. Visits booked before keep
v1 through a reschedule, a late cancel and a no-show (the fold, the lifecycle's reminders and strikes, the
settlement's fee); visits booked after are judged by v2.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from localcloud.clock import utc
from medspa.policy import loader
from tests.support.pack_versions import BIJOUX_V1, BIJOUX_V2, copy_of_the_shipped_packs, publish_bijoux_v2

pytestmark = pytest.mark.e2e

VISIT = utc(2026, 3, 17, 18)  # Tuesday 14:00 EDT; the local cloud starts on Thursday 5 March
LATER = utc(2026, 3, 18, 18)  # Wednesday 14:00 EDT
INJECTION = dict(name="Botox forehead", category="injection_laser", minutes=30, price=45000)  # v1 $50, v2 $80
PHONES = {"c-ava": "+14075550141", "c-ben": "+14075550142", "c-cy": "+14075550143", "c-dee": "+14075550144"}


def texts_to(phone: str) -> list[str]:
    return [text for to, text, *_ in sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values() if to == phone]


def test_visits_booked_before_a_new_pack_keep_the_version_their_clients_accepted(cloud, site, tmp_path, monkeypatch):
    packs_dir = copy_of_the_shipped_packs(tmp_path)
    monkeypatch.setattr(loader, "PACKS_DIR", packs_dir)
    cloud.redeploy_code()  # the functions read this copy from their first cold start
    for client_id, phone in PHONES.items():
        site.client("bijoux", client_id, phone=phone)
    site.book("apt-ava", "c-ava", "bijoux", VISIT, **INJECTION)
    site.book("apt-cy", "c-cy", "bijoux", VISIT, **INJECTION)
    cloud.run_until(utc(2026, 3, 9, 15))

    publish_bijoux_v2(packs_dir)
    cloud.redeploy_code()
    site.book("apt-ben", "c-ben", "bijoux", LATER, **INJECTION)
    site.book("apt-dee", "c-dee", "bijoux", VISIT, **INJECTION)
    site.send("AppointmentRescheduled", "apt-ava", starts_at=LATER.isoformat())  # 9 days ahead: on time either way
    cloud.run_until(LATER - timedelta(hours=36))  # late under v1's 48 hours, on time under v2's 24
    site.send("AppointmentCancelled", "apt-ava", by="client")
    site.send("AppointmentCancelled", "apt-ben", by="client")
    cloud.run_until_idle()

    accepted = {a: site.stored(a).policy_version for a in ("apt-ava", "apt-cy", "apt-ben", "apt-dee")}
    assert accepted == {"apt-ava": BIJOUX_V1, "apt-cy": BIJOUX_V1, "apt-ben": BIJOUX_V2, "apt-dee": BIJOUX_V2}

    # The fold: the same 36 hours' notice is a late cancel under v1 and on time under v2.
    assert [v.reason for v in site.stored("apt-ava").facts.violations] == ["late_cancel"]
    assert site.stored("apt-ben").facts.violations == ()
    # The settlement: each fee at its version's amount.
    assert site.ledger("apt-ava") == [("late_cancel_fee", "charge", 5000, "succeeded")]
    assert site.ledger("apt-ben") == []
    assert site.ledger("apt-cy") == [("no_show_fee", "charge", 5000, "succeeded")]
    assert site.ledger("apt-dee") == [("no_show_fee", "charge", 8000, "succeeded")]
    assert cloud.stripe.charges_total() == 5000 + 5000 + 8000
    # The lifecycle and its notices: each visit's reminders, what they promise, strikes and fee notices.
    reminders = {a: [m[0] for m in site.messages(a) if m[0].startswith("reminder_") and m[1] == "sent"]
                 for a in ("apt-ava", "apt-cy", "apt-ben", "apt-dee")}
    assert reminders == {"apt-ava": ["reminder_48h"], "apt-cy": ["reminder_48h", "reminder_morning_of"],
                         "apt-ben": [], "apt-dee": ["reminder_24h", "reminder_morning_of"]}
    strikes = {c: getattr(site.store.clients.get(f"bijoux#{c}"), "strike_count", 0) for c in PHONES}
    assert strikes == {"c-ava": 1, "c-ben": 0, "c-cy": 1, "c-dee": 1}
    ava, ben, cy, dee = (texts_to(PHONES[c]) for c in ("c-ava", "c-ben", "c-cy", "c-dee"))
    assert any("changes after Mon 16 Mar at 2:00 PM EDT incur a $50.00 fee" in t for t in ava)  # moved visit, v1
    assert any("a late-cancellation fee of $50.00 applies" in t for t in ava)
    assert not any("fee of" in t for t in ben)
    assert [t for t in cy if "incur a" in t] and all("after Sun 15 Mar at 2:00 PM EDT incur a $50.00 fee" in t
                                                      for t in cy if "incur a" in t)
    assert any("a missed-appointment fee of $50.00 applies" in t for t in cy)
    assert [t for t in dee if "incur a" in t] and all("after Mon 16 Mar at 2:00 PM EDT incur a $80.00 fee" in t
                                                       for t in dee if "incur a" in t)
    assert any("a missed-appointment fee of $80.00 applies" in t for t in dee)
