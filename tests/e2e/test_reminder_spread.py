"""A spread morning-of reminder (issue 13, item 2), end to end: a spa publishes a pack version whose morning-of
reminder is spread over 08:00-09:00 (``spread_minutes = 60``), and the real state machine sends each visit's
text at that visit's own minute of the window, not all of them at 08:00.

Bijoux's quiet hours end at 08:00, so the window starts on the first sendable minute; the 48-hour reminder
(``hours_before``) is not spread.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from localcloud.clock import utc
from medspa.domain.engine import spread_offset
from medspa.domain.wallclock import at_wall_clock, in_quiet_hours
from medspa.policy import loader
from tests.support.pack_versions import copy_of_the_shipped_packs, publish_bijoux

pytestmark = pytest.mark.e2e

SPREAD_VERSION = "bijoux-2026-03-05.spread"
VISIT = utc(2026, 3, 10, 18)  # Tuesday 14:00 EDT; the local cloud starts on Thursday 5 March
VISITS = {f"apt-m{n}": (f"c-m{n}", f"+1407555017{n}") for n in range(1, 7)}
INJECTION = dict(name="Botox forehead", category="injection_laser", minutes=30, price=45000)


def texts_to(phone: str) -> list[str]:
    return [text for to, text, *_ in sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values() if to == phone]


def test_morning_of_reminders_leave_at_each_visits_own_minute_of_the_spread_window(cloud, site, tmp_path, monkeypatch):
    packs_dir = copy_of_the_shipped_packs(tmp_path)
    monkeypatch.setattr(loader, "PACKS_DIR", packs_dir)
    publish_bijoux(packs_dir, SPREAD_VERSION, ('name = "morning_of"\nat_local_time = 08:00:00\n',
                                               'name = "morning_of"\nat_local_time = 08:00:00\nspread_minutes = 60\n'))
    cloud.redeploy_code()  # the functions cold-start on the spread version
    pack = loader.load_packs(packs_dir)["bijoux"]
    for appointment_id, (client_id, phone) in VISITS.items():
        site.client("bijoux", client_id, phone=phone)
        site.book(appointment_id, client_id, "bijoux", VISIT, **INJECTION)
    cloud.run_until(utc(2026, 3, 10, 16))  # 12:00 EDT on the visits' day: every morning reminder is out

    opens = at_wall_clock(VISIT.astimezone(pack.zone).date(), time(8, 0), pack.zone)
    morning: dict[str, datetime] = {}
    forty_eight: list[datetime] = []
    for appointment_id, (_, phone) in VISITS.items():
        stored = site.stored(appointment_id)
        assert stored.policy_version == SPREAD_VERSION
        sent = {kind: at for kind, status, at in site.messages(appointment_id) if status == "sent"}
        assert set(sent) == {"reminder_48h", "reminder_morning_of"}
        forty_eight.append(sent["reminder_48h"])
        morning[appointment_id] = sent["reminder_morning_of"]
        # Each visit's text left at the minute the engine gives that visit (a hash of its stored key)...
        planned = opens + spread_offset(stored.appointment_id, 60)
        assert planned <= morning[appointment_id] < planned + timedelta(minutes=1), appointment_id
        # ... inside the window, outside quiet hours, and the client got it.
        assert opens <= morning[appointment_id] < opens + timedelta(minutes=60)
        assert not in_quiet_hours(morning[appointment_id], pack.messaging.quiet_hours, pack.zone)
        assert len(texts_to(phone)) == 2
    # Elapsed hours are never spread: the six 48-hour reminders fall due together and the outbox sends them one a
    # second, from 48 hours before.
    assert sorted(forty_eight) == [VISIT - timedelta(hours=48, seconds=-s) for s in range(len(VISITS))]
    # Not all at 08:00: six visits, six different minutes of the hour (this deterministic sample's offsets).
    minutes = sorted((at - opens) // timedelta(minutes=1) for at in morning.values())
    assert minutes == [1, 6, 22, 25, 43, 53]
