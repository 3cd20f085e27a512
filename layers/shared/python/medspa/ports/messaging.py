"""Sending a client a text or an email; the provider's message id comes back, nothing personal is logged."""

from __future__ import annotations

from typing import Protocol


class InvalidRecipient(ValueError):
    """The phone number is not E.164 or the address is not an email address (value not echoed)."""


class SmsSender(Protocol):
    def send_sms(self, phone: str, body: str) -> str:
        """Send and return the provider's message id."""
        ...


class EmailSender(Protocol):
    def send_email(self, to_address: str, subject: str, body: str, *, unsubscribe_url: str) -> str:
        """Send with ``List-Unsubscribe`` pointing at ``unsubscribe_url``; return the provider's message id."""
        ...


class Messenger(SmsSender, EmailSender, Protocol):
    """Both channels; what :class:`medspa.services.notifications.NotificationService` needs."""
