"""Message templates: one TOML file per location, falling back to ``default.toml``.

Staff edit these files, so a mistake must fail when the layer loads, naming the file and the
template (``bijoux.toml: reminder.sms: unknown placeholder $visit_date``), not when a client's
reminder is due at 08:00. Templates are :class:`string.Template` strings (``$name`` or
``${name}``; ``$$`` is a literal dollar sign) and may use only the placeholders their kind is given.

File format::

    [settings]                       # all optional
    service_label = "your appointment"   # neutral stand-in for the treatment (names are PHI)
    spa_name = "Glow"                # default: the pack's location name
    spa_phone = "407-213-GLOW"       # required if any template uses $spa_phone
    payment_link = "https://..."     # required if any template uses $payment_link (https only)

    [footer]                         # appended to every message of this location
    sms = "Reply ${opt_out_keyword} to opt out."       # must contain $opt_out_keyword
    email = "To unsubscribe from these emails, open ${unsubscribe_link}"   # must contain $unsubscribe_link

    [reminder]                       # one table per kind: all three fields
    sms = "..."
    email_subject = "..."
    email_body = "..."

A location file overrides whole kind tables and single settings/footer keys of ``default.toml``;
anything it leaves out comes from the default. ``reminder`` serves every reminder the pack names;
a table ``reminder_<name>`` (e.g. ``reminder_morning_of``) overrides it for that reminder only.

The kinds (every one must be renderable at every location, so ``default.toml`` words them all):

* ``reminder`` / ``reminder_<name>``, ``confirmation_request``, ``confirmation_received`` (the client
  replied CONFIRM), ``auto_cancelled``: about the visit. Reminders and the confirmation request are
  also given ``$cancel_by`` (the last on-time moment to cancel, local time) and ``$late_cancel_fee``
  ("a $50.00 fee"), so the client reads the rule with its numbers. The confirmation request's email
  may also use ``$confirm_link`` (a signed link that confirms the visit, for a client who cannot reply
  by text); never its SMS, which is answered with the confirm keyword.
* Fee notices, all given ``$fee_amount``, the whole fee (:data:`FEE_KINDS`), and all but ``fee_waived``
  given ``$fee_breakdown``, where it came from ("$50.00 from your booking deposit and $25.00 charged
  to your card on file"), to write after "applies:". The reason is in the kind only when a
  card was charged (``late_cancel_fee_charged``, ``no_show_fee_charged``,
  ``late_reschedule_fee_charged``); ``fee_applied`` (taken from a deposit, prepayment, course session
  or gift certificate), ``fee_outstanding`` (nothing to collect from: due at the next visit),
  ``fee_waived`` (an admin waived it; refunded if it had been charged) and ``fee_declined`` (the card
  was declined) are worded for any reason, so a message never misnames the violation.
* ``prepay_required`` / ``prepay_cleared``: the strike consequence and its lifting by staff.
* ``late_arrival_shortened``, ``late_arrival_reschedule`` and ``late_arrival_reschedule_same_day``
  (:data:`LATE_ARRIVAL_KINDS`): what the pack makes of a late check-in, given ``$minutes_late``,
  ``$hands_on_minutes``, ``$treatment_ends_at`` (local time of day) and ``$late_reschedule_fee``
  ("a $75.00 fee"); the last is for packs where rebooking the same day waives the fee.
* ``fee_released`` (:data:`RELEASED_KINDS`): a fee taken for a no-show (or a too-late arrival) that the
  visit no longer owes, because the client's check-in came after the decision or the spa served them.
  Given ``$fee_amount``, the fee released.
* ``prepayment_credited`` (:data:`CREDIT_KINDS`): a prepaid visit cancelled or moved in time, its
  prepayment now store credit (``medspa.services.prepayment``). Given ``$fee_amount``, here the amount
  credited. A forfeited prepayment needs no kind of its own: the fee notice's breakdown names it.

* ``card_update_requested``: days before a visit whose fee would be charged to the card on file, that
  card turned out expired by then, removed, or refused by the issuer (``medspa.services.card_check``).
  It asks the client to update the card before the visit and never names the card (no brand, no digits).

Membership and course notices (:data:`ACCOUNT_KINDS`) are about the client's account, not a visit, so they
are given no visit placeholders (no ``$visit_time``, ``$service_label``, ``$confirm_keyword``), only
``$client_first_name``, ``$spa_name``, ``$spa_phone`` and their own:

* ``membership_draft_declined``: a monthly draft was declined; ``$amount`` (what it asked for) and
  ``$what_next`` ("we will try your card again on Thu 8 Jan 2026", or that the month's dues are now an
  outstanding balance). It may also offer ``$payment_link`` where the location defines one.
* ``membership_services_expiring``, ``certificate_expiring``, ``course_sessions_expiring``: a week before the
  last day of use (the pack's ``[expiry_notice]``); ``$what_expires`` ("2 paper certificates") and
  ``$expiry_date`` ("Tue 15 Dec 2026").

Payment links: the lifecycle has none to give, so ``fee_declined`` (and ``fee_outstanding``) ask the
client to contact the spa. A location with a standing payment page may use ``$payment_link`` in those
two kinds, but only if its ``[settings]`` define ``payment_link``; otherwise the file fails to load.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

TEMPLATES_DIR = Path(__file__).parent / "templates"
DEFAULT_FILE = "default.toml"

REMINDER = "reminder"
CHARGED_FEE_KINDS = frozenset({"late_cancel_fee_charged", "no_show_fee_charged", "late_reschedule_fee_charged"})
FEE_KINDS = CHARGED_FEE_KINDS | {"fee_applied", "fee_outstanding", "fee_waived", "fee_declined"}
PAYABLE_KINDS = frozenset({"fee_declined", "fee_outstanding"})  # may offer $payment_link (see above)
# A waiver gives back what the card paid or cancels what was owed; deposits and course sessions are the
# booking system's to restore, so its notice names the amount waived, not how the fee was first met.
BREAKDOWN_KINDS = FEE_KINDS - {"fee_waived"}
CANCEL_TERMS_KINDS = frozenset({REMINDER, "confirmation_request"})  # given $cancel_by and $late_cancel_fee
CREDIT_KINDS = frozenset({"prepayment_credited"})  # given $fee_amount: the amount credited
LATE_ARRIVAL_KINDS = frozenset({"late_arrival_shortened", "late_arrival_reschedule", "late_arrival_reschedule_same_day"})
RELEASED_KINDS = frozenset({"fee_released"})  # given $fee_amount: the fee no longer owed
BASE_KINDS: tuple[str, ...] = (
    REMINDER,
    "confirmation_request",
    "confirmation_received",
    "auto_cancelled",
    "late_cancel_fee_charged",
    "no_show_fee_charged",
    "late_reschedule_fee_charged",
    "fee_applied",
    "fee_outstanding",
    "fee_waived",
    "fee_declined",
    "prepay_required",
    "prepay_cleared",
    "prepayment_credited",
    "late_arrival_shortened",
    "late_arrival_reschedule",
    "late_arrival_reschedule_same_day",
    "fee_released",
    "card_update_requested",
)
# Notices about a membership or a prepaid course (rendered from an AccountContext, never about a visit).
EXPIRING_KINDS = frozenset({"membership_services_expiring", "certificate_expiring", "course_sessions_expiring"})
ACCOUNT_KINDS: tuple[str, ...] = ("membership_draft_declined", *sorted(EXPIRING_KINDS))
ACCOUNT_PLACEHOLDERS = frozenset({"client_first_name", "spa_name", "spa_phone"})
_REMINDER_KIND = re.compile(r"^reminder_([a-z0-9][a-z0-9_-]*)$")

COMMON_PLACEHOLDERS = frozenset(
    {"client_first_name", "spa_name", "visit_time", "service_label", "spa_phone", "confirm_keyword"}
)
FOOTER_PLACEHOLDERS = frozenset({"spa_name", "spa_phone", "opt_out_keyword", "unsubscribe_link"})
_FIELDS = ("sms", "email_subject", "email_body")
_SETTINGS = frozenset({"service_label", "spa_name", "spa_phone", "payment_link"})
# A setting a template may use as a placeholder only when the location (or default.toml) defines it.
_OPTIONAL_SETTINGS = ("spa_phone", "payment_link")


class TemplateError(ValueError):
    """A template file is unreadable, incomplete, or uses a placeholder its kind is not given."""


def allowed_placeholders(kind: str) -> frozenset[str]:
    if kind == "membership_draft_declined":
        return ACCOUNT_PLACEHOLDERS | {"amount", "what_next", "payment_link"}
    if kind in EXPIRING_KINDS:
        return ACCOUNT_PLACEHOLDERS | {"what_expires", "expiry_date"}
    allowed = COMMON_PLACEHOLDERS
    if kind in FEE_KINDS or kind in CREDIT_KINDS or kind in RELEASED_KINDS:
        allowed |= {"fee_amount"}
    if kind in LATE_ARRIVAL_KINDS:
        allowed |= {"minutes_late", "hands_on_minutes", "treatment_ends_at", "late_reschedule_fee"}
    if kind in BREAKDOWN_KINDS:
        allowed |= {"fee_breakdown"}
    if kind in CANCEL_TERMS_KINDS:
        allowed |= {"cancel_by", "late_cancel_fee"}
    if kind == "confirmation_request":
        allowed |= {"confirm_link"}
    if kind in PAYABLE_KINDS:
        allowed |= {"payment_link"}
    return allowed


def reminder_name(kind: str) -> str | None:
    """``"reminder_48h"`` -> ``"48h"``; ``None`` for a kind that is not a reminder."""
    match = _REMINDER_KIND.match(kind)
    return match.group(1) if match else None


def _base_kind(kind: str) -> str | None:
    if (kind in BASE_KINDS and kind != REMINDER) or kind in ACCOUNT_KINDS:
        return kind
    if kind == REMINDER or reminder_name(kind) is not None:
        return REMINDER
    return None


def _compile(text: object, allowed: frozenset[str], where: str) -> Template:
    if not isinstance(text, str) or not text.strip():
        raise TemplateError(f"{where}: must be a non-empty string")
    template = Template(text)
    if not template.is_valid():
        raise TemplateError(f"{where}: invalid placeholder syntax (write $$ for a literal dollar sign)")
    for name in template.get_identifiers():
        if name not in allowed:
            raise TemplateError(f"{where}: unknown placeholder ${name} (allowed: {', '.join(sorted(allowed))})")
    return template


@dataclass(frozen=True)
class MessageTemplate:
    kind: str
    sms: Template
    email_subject: Template
    email_body: Template
    source: str = field(compare=False)

    def placeholders(self) -> set[str]:
        return {name for t in (self.sms, self.email_subject, self.email_body) for name in t.get_identifiers()}


@dataclass(frozen=True)
class LocationTemplates:
    """Everything needed to word one location's messages."""

    location_id: str
    settings: Mapping[str, str]
    footer_sms: Template
    footer_email: Template
    templates: Mapping[str, MessageTemplate]
    sources: tuple[str, ...]

    @property
    def service_label(self) -> str:
        return self.settings.get("service_label", "your appointment")

    def template(self, kind: str) -> MessageTemplate:
        if kind in self.templates:
            return self.templates[kind]
        base = _base_kind(kind)
        if base is None:
            raise KeyError(f"unknown message kind {kind!r}")
        return self.templates[base]


@dataclass(frozen=True)
class _Parsed:
    name: str
    settings: dict[str, str]
    footer: dict[str, Template]
    templates: dict[str, MessageTemplate]


def _parse(path: Path) -> _Parsed:
    name = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise TemplateError(f"{name}: {err}") from err
    settings: dict[str, str] = {}
    footer: dict[str, Template] = {}
    templates: dict[str, MessageTemplate] = {}
    for table, body in data.items():
        if not isinstance(body, dict):
            raise TemplateError(f"{name}: {table}: expected a table")
        if table == "settings":
            for key, value in body.items():
                if key not in _SETTINGS:
                    raise TemplateError(f"{name}: settings.{key}: unknown setting")
                if not isinstance(value, str) or not value.strip():
                    raise TemplateError(f"{name}: settings.{key}: must be a non-empty string")
                if key == "payment_link" and (not value.startswith("https://") or any(c.isspace() for c in value)):
                    raise TemplateError(f"{name}: settings.payment_link: must be an https:// address without spaces")
                settings[key] = value
        elif table == "footer":
            for key, value in body.items():
                if key not in ("sms", "email"):
                    raise TemplateError(f"{name}: footer.{key}: unknown footer (sms or email)")
                footer[key] = _compile(value, FOOTER_PLACEHOLDERS, f"{name}: footer.{key}")
            if "sms" in footer and "opt_out_keyword" not in footer["sms"].get_identifiers():
                raise TemplateError(f"{name}: footer.sms: must contain $opt_out_keyword")
            if "email" in footer and "unsubscribe_link" not in footer["email"].get_identifiers():
                raise TemplateError(f"{name}: footer.email: must contain $unsubscribe_link (the signed link)")
            if "sms" in footer and "unsubscribe_link" in footer["sms"].get_identifiers():
                raise TemplateError(f"{name}: footer.sms: $unsubscribe_link is for emails; texts opt out by keyword")
        else:
            base = _base_kind(table)
            if base is None or table == "reminder_":
                raise TemplateError(f"{name}: {table}: unknown message kind (known: {', '.join(BASE_KINDS + ACCOUNT_KINDS)}, "
                                    "reminder_<name>)")
            missing = [f for f in _FIELDS if f not in body]
            extra = [k for k in body if k not in _FIELDS]
            if missing or extra:
                raise TemplateError(f"{name}: {table}: needs exactly {', '.join(_FIELDS)} (missing {missing}, unknown {extra})")
            allowed = allowed_placeholders(base)
            compiled = {f: _compile(body[f], allowed, f"{name}: {table}.{f}") for f in _FIELDS}
            if "confirm_link" in compiled["sms"].get_identifiers():
                raise TemplateError(f"{name}: {table}.sms: $confirm_link is for emails; texts confirm by keyword")
            templates[table] = MessageTemplate(kind=table, source=name, **compiled)
    return _Parsed(name, settings, footer, templates)


def _merge(location_id: str, default: _Parsed, own: _Parsed | None) -> LocationTemplates:
    settings = dict(default.settings)
    footer = dict(default.footer)
    templates = dict(default.templates)
    if own is not None:
        settings.update(own.settings)
        footer.update(own.footer)
        templates.update(own.templates)
    where = own.name if own else default.name
    for kind in BASE_KINDS + ACCOUNT_KINDS:
        if kind not in templates:
            raise TemplateError(f"{where}: {kind}: missing (and not in {DEFAULT_FILE})")
    for key in ("sms", "email"):
        if key not in footer:
            raise TemplateError(f"{where}: footer.{key}: missing (and not in {DEFAULT_FILE})")
    for setting in _OPTIONAL_SETTINGS:
        if setting in settings:
            continue
        for template in templates.values():
            if setting in template.placeholders():
                raise TemplateError(f"{template.source}: {template.kind}: uses ${setting} but "
                                    f"{where} sets no settings.{setting}")
        for key, footer_template in footer.items():
            if setting in footer_template.get_identifiers():
                raise TemplateError(f"{where}: footer.{key}: uses ${setting} but sets no settings.{setting}")
    sources = (default.name,) if own is None else (own.name, default.name)
    return LocationTemplates(location_id, settings, footer["sms"], footer["email"], templates, sources)


class TemplateLibrary:
    """All locations' templates; a location without its own file gets ``default.toml``."""

    def __init__(self, default: LocationTemplates, locations: Mapping[str, LocationTemplates]) -> None:
        self.default = default
        self.locations = dict(locations)

    def for_location(self, location_id: str) -> LocationTemplates:
        own = self.locations.get(location_id)
        if own is not None:
            return own
        return LocationTemplates(location_id, self.default.settings, self.default.footer_sms,
                                 self.default.footer_email, self.default.templates, self.default.sources)


def load_templates(directory: str | Path | None = None) -> TemplateLibrary:
    """Load ``default.toml`` and every ``<location id>.toml`` beside it, validating all of them."""
    directory = Path(directory or TEMPLATES_DIR)
    default_path = directory / DEFAULT_FILE
    if not default_path.exists():
        raise TemplateError(f"{DEFAULT_FILE}: missing in {directory}")
    default = _parse(default_path)
    merged_default = _merge("default", default, None)
    locations = {
        path.stem: _merge(path.stem, default, _parse(path))
        for path in sorted(directory.glob("*.toml"))
        if path.name != DEFAULT_FILE
    }
    return TemplateLibrary(merged_default, locations)


def template_key(kind: str) -> str:
    """Validate a message kind name; returns it unchanged (``reminder_<name>`` or a base kind)."""
    if _base_kind(kind) is None or kind == REMINDER:
        raise KeyError(f"unknown message kind {kind!r}; reminders are 'reminder_<pack reminder name>'")
    return kind
