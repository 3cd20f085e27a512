"""What the services need from outside the process, as typing Protocols, with the values that cross them.

Services are written against these; the AWS and Stripe adapters (``medspa.adapters``) implement them, and
so do in-memory ones for fast tests and backtests (``InMemoryBookingSite``, ``InMemoryExecutions``,
``InMemoryMessenger``, ``medspa.adapters.memory_payments.InMemoryPayments`` and the store's
``medspa.adapters.store.memory.InMemoryStore``). The store's ports (appointments, clients, the ledger, courses,
and their errors) are in ``medspa.ports.store``, the consent book in ``medspa.ports.consent`` and what privacy
requests need in ``medspa.ports.privacy``, imported from there rather than re-exported here, so a handler that
needs only one port does not load the store's types at cold start.
"""

from medspa.ports.booking_site import BookingSiteEvents, BookingSiteUnavailable
from medspa.ports.executions import Executions, ExecutionNameTaken, ExecutionsUnavailable, StartedExecution
from medspa.ports.messaging import (
    EmailSender,
    InvalidRecipient,
    Messenger,
    Outbox,
    OutgoingMessage,
    Pacer,
    SendClaims,
    SmsSender,
)
from medspa.ports.metrics import Counted, Metrics
from medspa.ports.payments import (
    CardCheckResult,
    CardStatus,
    ChargeResult,
    ChargeStatus,
    DisputeResult,
    Payments,
    PaymentProviderUnavailable,
    RefundResult,
    RefundStatus,
)

__all__ = [
    "BookingSiteEvents", "BookingSiteUnavailable", "CardCheckResult", "CardStatus", "ChargeResult", "ChargeStatus",
    "Counted", "DisputeResult", "EmailSender", "ExecutionNameTaken", "Executions", "ExecutionsUnavailable",
    "InvalidRecipient", "Messenger", "Metrics", "Outbox", "OutgoingMessage", "Pacer", "SendClaims",
    "PaymentProviderUnavailable", "Payments", "RefundResult", "RefundStatus", "SmsSender", "StartedExecution",
]
