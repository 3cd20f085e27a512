"""Confirming a visit from the link in the confirmation request email (the HTTP API's ``/confirm``).

Opening the link (GET) only shows the visit and a button: mail scanners and link previews fetch every
link in a message, and a GET that confirmed would confirm visits for clients who never saw the email,
which then escape the auto-cancel they would have had. The button POSTs to the same address, and
that records the client's confirmation (``channel`` ``email``) exactly as a CONFIRM text does: the
running lifecycle execution reads it at the deadline, and the booking site is told
(``AppointmentConfirmedByClient``, the same event and event id rule as for SMS). A second click, or a
provider's retry, changes nothing and tells the booking site again under the same event id.

What a link can confirm, decided: only the visit it was sent for, at the time it was sent for (the
token signs the start: :mod:`medspa.domain.confirm_link`), while that visit is still ahead and open. A
cancelled, auto-cancelled or past visit gets a page saying so, never an error about the token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from medspa.ports import BookingSiteEvents
from medspa.domain.booking import OPEN_STATUSES, Appointment, AppointmentStatus
from medspa.ports.store import Stores
from medspa.domain.confirm_link import InvalidConfirmLink, confirm_token, confirm_token_matches, confirm_token_visit
from medspa.messages.render import format_visit_time
from medspa.policy.loader import PolicyPacks
from medspa.policy.schema import PolicyPack

NOT_ISSUED = ("the link is not valid for this visit: it was altered, or the visit has moved since the email "
              "was sent")
CONFIRMED_BY_CLIENT = "AppointmentConfirmedByClient"


def publish_client_confirmation(booking_site: BookingSiteEvents | None, confirmed: Appointment) -> None:
    """Tell the booking site the client confirmed; the event id derives from the recorded confirmation,
    so a retried delivery or a second click gives the booking site the same id to drop."""
    at = confirmed.client_confirmed_at
    if booking_site is None or at is None:
        return
    booking_site.publish(CONFIRMED_BY_CLIENT,
                         f"{confirmed.appointment_id}:confirmed-by-client:{at.astimezone(UTC):%Y%m%dT%H%M%SZ}",
                         {**confirmed.booking_site_ids, "booking_version": confirmed.booking_version,
                          "channel": confirmed.client_confirmed_via, "confirmed_at": at.isoformat()})


class ConfirmTarget(BaseModel):
    """What the page says about the visit: the spa and the local time, nothing about the client."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    spa_id: str
    spa_name: str
    visit_time: str
    state: Literal["open", "confirmed", "closed"]


class EmailConfirmation:
    def __init__(self, store: Stores, packs: Mapping[str, PolicyPack], secret: Callable[[], bytes],
                 link_base: str | None, booking_site: BookingSiteEvents | None = None) -> None:
        """``secret`` is called when a link is made or checked (fetched lazily from SSM by a handler);
        ``link_base`` is the public https:// address of ``/confirm`` (the HTTP API's own function checks
        links but makes none)."""
        if link_base is not None and (not link_base.startswith("https://") or "?" in link_base):
            raise ValueError("link_base must be an https:// address without a query")
        self._store = store
        self._packs = PolicyPacks.of(packs)
        self._secret = secret
        self._base = link_base
        self._booking_site = booking_site

    def link_for(self, appointment_id: str, starts_at: datetime) -> str:
        if self._base is None:
            raise RuntimeError("this EmailConfirmation was built without the link address")
        return f"{self._base}?token={quote(confirm_token(self._secret(), appointment_id, starts_at), safe='.')}"

    def read(self, token: str | None, now: datetime) -> ConfirmTarget:
        """What the page shows; :class:`InvalidConfirmLink` for a link not ours or for another time."""
        return self._target(self._visit(token), now)

    def confirm(self, token: str | None, now: datetime) -> ConfirmTarget:
        visit = self._visit(token)
        target = self._target(visit, now)
        if target.state == "open":
            confirmed = self._store.appointments.record_client_confirmation(visit.appointment_id, channel="email",
                                                                            at=now)
            publish_client_confirmation(self._booking_site, confirmed)
            return target.model_copy(update={"state": "confirmed"})
        if target.state == "confirmed" and visit.client_confirmed_via == "email":
            publish_client_confirmation(self._booking_site, visit)  # same event id: finishes a failed publish
        return target

    def _visit(self, token: str | None) -> Appointment:
        appointment_id = confirm_token_visit(token)
        visit = self._store.appointments.get(appointment_id)
        if visit is None or not confirm_token_matches(self._secret(), token or "", appointment_id, visit.starts_at):
            raise InvalidConfirmLink(NOT_ISSUED)
        return visit

    def _target(self, visit: Appointment, now: datetime) -> ConfirmTarget:
        pack = self._packs.for_visit(visit)
        if visit.status not in OPEN_STATUSES or visit.starts_at <= now:
            state: Literal["open", "confirmed", "closed"] = "closed"
        elif visit.confirmed or visit.status is AppointmentStatus.CONFIRMED:
            state = "confirmed"
        else:
            state = "open"
        return ConfirmTarget(spa_id=pack.spa.id, spa_name=pack.location.name,
                             visit_time=format_visit_time(visit.starts_at, pack.zone), state=state)
