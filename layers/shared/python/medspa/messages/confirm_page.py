"""The pages a client sees when they follow the confirm link in a confirmation request email (pure).

Like the unsubscribe pages: no scripts, no external assets, the token never repeated except in the
form that posts it back. The page names the spa and the visit's local time, nothing about the client,
so a forwarded link tells its reader no more than the email's subject did.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from .unsubscribe_page import _page


def confirm_visit_page(spa_name: str, visit_time: str, token: str) -> str:
    """The GET page: one button that POSTs back to the same link (opening a link never confirms)."""
    action = "?token=" + quote(token, safe=".")
    return _page("Confirm your appointment", (
        f"<p>Your appointment with <strong>{escape(spa_name)}</strong> on <strong>{escape(visit_time)}</strong>.</p>"
        f'<form method="post" action="{escape(action)}"><button type="submit">Confirm</button></form>'
        "<p>If you need to cancel or reschedule, please contact the spa.</p>"))


def visit_confirmed_page(spa_name: str, visit_time: str) -> str:
    return _page("Your appointment is confirmed", (
        f"<p>Thank you. Your appointment with <strong>{escape(spa_name)}</strong> on "
        f"<strong>{escape(visit_time)}</strong> is confirmed.</p>"))


def visit_closed_page(spa_name: str, visit_time: str) -> str:
    return _page("This appointment cannot be confirmed", (
        f"<p>Your appointment with <strong>{escape(spa_name)}</strong> on <strong>{escape(visit_time)}</strong> "
        "is no longer open: it has been cancelled, or its time has passed.</p>"
        "<p>Please contact the spa to book again.</p>"))


def confirm_refused_page(reason: str) -> str:
    return _page("This link cannot be used", (
        f"<p>{escape(reason[:1].upper() + reason[1:])}.</p>"
        "<p>Please use the link in the most recent email about your appointment, or contact the spa.</p>"))
