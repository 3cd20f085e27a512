"""Client messages: per-location templates and pure rendering (no boto3, no clock).

The service in :mod:`medspa.services.notifications` decides whom to message and when; this package
only turns a message kind plus facts about a visit (or a membership or course) into text. See :mod:`.templates` for the file
format and :mod:`.render` for the placeholder values.
"""

from .inbound import InboundIntent, keyword_reply, parse_inbound_sms
from .render import (
    DEFAULT_SERVICE_LABEL,
    SMS_MAX_CHARS,
    AccountContext,
    AppointmentContext,
    EmailMessage,
    MessageTooLong,
    MissingMessageValue,
    format_fee_breakdown,
    format_money,
    format_visit_time,
    render_email,
    render_sms,
)
from .templates import (
    ACCOUNT_KINDS,
    BASE_KINDS,
    CHARGED_FEE_KINDS,
    FEE_KINDS,
    PAYABLE_KINDS,
    LocationTemplates,
    MessageTemplate,
    TemplateError,
    TemplateLibrary,
    load_templates,
    template_key,
)

__all__ = [
    "ACCOUNT_KINDS",
    "BASE_KINDS",
    "CHARGED_FEE_KINDS",
    "DEFAULT_SERVICE_LABEL",
    "FEE_KINDS",
    "PAYABLE_KINDS",
    "SMS_MAX_CHARS",
    "AccountContext",
    "AppointmentContext",
    "EmailMessage",
    "InboundIntent",
    "LocationTemplates",
    "MessageTemplate",
    "MessageTooLong",
    "MissingMessageValue",
    "TemplateError",
    "TemplateLibrary",
    "format_fee_breakdown",
    "format_money",
    "format_visit_time",
    "keyword_reply",
    "load_templates",
    "parse_inbound_sms",
    "render_email",
    "render_sms",
    "template_key",
]
