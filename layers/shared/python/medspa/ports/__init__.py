"""What the services need from outside the process, as typing Protocols, with the values that cross them.

Services are written against these; the AWS and Stripe adapters (``medspa.adapters``) implement them, and
so do in-memory ones (``medspa.adapters.memory``) for fast tests. The store's repositories are the next to
get ports of their own.
"""

from medspa.ports.booking_site import BookingSiteEvents, BookingSiteUnavailable
from medspa.ports.executions import Executions, ExecutionNameTaken, ExecutionsUnavailable, StartedExecution
from medspa.ports.messaging import EmailSender, InvalidRecipient, Messenger, SmsSender
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
    "InvalidRecipient", "Messenger", "Metrics",
    "PaymentProviderUnavailable", "Payments", "RefundResult", "RefundStatus", "SmsSender", "StartedExecution",
]
