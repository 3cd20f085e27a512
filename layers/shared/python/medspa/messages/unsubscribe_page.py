"""The pages a person sees when they follow an email's unsubscribe link (pure: text in, HTML out).

Small, self-contained HTML: no scripts, no external assets, nothing to track who opened it. The
address shows masked (``a***@example.com``): enough to recognise, not enough to harvest from a
forwarded link. An error page states the reason and never repeats the token it was given.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}"
          "button{font-size:1rem;padding:.6rem 1.2rem;border-radius:.4rem;border:1px solid #444;background:#fff}")


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="robots" content="noindex"><title>{escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>")


def confirm_page(spa_name: str, masked_email: str, token: str) -> str:
    """The GET page: one button that POSTs the one-click form (RFC 8058) back to the same link."""
    action = "?token=" + quote(token, safe=".")
    return _page("Unsubscribe from emails", (
        f"<p>Stop emails from <strong>{escape(spa_name)}</strong> to <strong>{escape(masked_email)}</strong>?</p>"
        f'<form method="post" action="{escape(action)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        "<button type=\"submit\">Unsubscribe</button></form>"
        "<p>Texts are separate: reply STOP to any text to stop those.</p>"))


def done_page(spa_name: str, masked_email: str) -> str:
    return _page("You are unsubscribed", (
        f"<p><strong>{escape(spa_name)}</strong> will send no more emails to "
        f"<strong>{escape(masked_email)}</strong>.</p>"))


def refused_page(reason: str) -> str:
    return _page("This link cannot be used", (
        f"<p>{escape(reason[:1].upper() + reason[1:])}.</p>"
        "<p>Please use the unsubscribe link in the most recent email, or contact the spa.</p>"))
