"""Stripe's resource rules (customers, cards, intents, refunds) with no HTTP in sight.

Kept apart from the server so each rule reads next to the Stripe behaviour it copies; the server adds
what sits in front of the endpoints (auth, rate limits, idempotency, faults, webhook delivery).
Objects are stored in the JSON shape Stripe returns, so a response is just a copy of the stored dict.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .cards import AUTHENTICATION_REQUIRED, BY_NUMBER, BY_PM_TOKEN, BY_TOK, EXPIRED_CARD, Decline, TestCard

Obj = dict[str, Any]
DOCS = "https://docs.stripe.com/error-codes/"
API_VERSION = "2026-10-28.endive"
# Stripe's minimum charge amounts (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
MINIMUM_CHARGE = {"usd": 50, "eur": 50, "cad": 50, "aud": 50, "gbp": 30, "hkd": 400, "jpy": 50}
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action", "processing")
PREFIX_KIND = {
    "cus": "customer", "pm": "payment_method", "pi": "payment_intent", "ch": "charge",
    "re": "refund", "seti": "setup_intent", "evt": "event", "du": "dispute",
}


class ApiError(Exception):
    """An error response in Stripe's shape. ``stored`` is False for failures Stripe raises before an
    endpoint starts executing (validation, missing objects): those are not saved under the
    idempotency key, so a corrected retry with the same key can still run."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        stored: bool = True,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.stored = status, stored
        self.error: Obj = {"type": type, "message": message}
        if code:
            self.error |= {"code": code, "doc_url": DOCS + code.replace("_", "-")}
        if param:
            self.error["param"] = param
        self.error |= {k: v for k, v in extra.items() if v is not None}

    def body(self) -> Obj:
        return {"error": self.error}


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, code=code, param=param, stored=False)


def missing(kind: str, ident: str, param: str | None = None) -> ApiError:
    return ApiError(404, f"No such {kind}: '{ident}'", code="resource_missing", param=param, stored=False)


def unexpected_state(message: str) -> ApiError:
    return ApiError(400, message, code="payment_intent_unexpected_state")


@dataclass
class Ctx:
    """One request's view: its instant, and what it did that the server must act on afterwards."""

    now: int
    request_id: str
    idempotency_key: str | None = None
    events: list[Obj] = field(default_factory=list)
    charged: bool = False


Handler = Callable[..., Obj]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^/v1/{pattern}$"), fn))
        return fn

    return register


def _int(params: Obj, name: str, *, required: bool = False) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise invalid(f"Missing required param: {name}.", name, "parameter_missing")
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise invalid("Invalid integer: " + str(raw), name, "parameter_invalid_integer") from None
    if value < 0:
        raise invalid("This value must be greater than or equal to 0.", name, "parameter_invalid_integer")
    return value


def _bool(value: Any) -> bool:
    return str(value).lower() in ("true", "1", "one_off", "recurring")


SYMBOLS = {"usd": "$", "hkd": "HK$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$"}


def money(amount: int, currency: str) -> str:
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{amount / 100:.2f}" if symbol else f"{amount / 100:.2f} {currency.upper()}"


class Account:
    """Everything one Stripe account holds. Not thread-safe: the server serialises requests."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Obj]] = {kind: {} for kind in PREFIX_KIND.values()}
        self.cards: dict[str, TestCard] = {}
        self.set_up_off_session: set[str] = set()
        self._seq = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._seq):020d}"

    def dispatch(self, ctx: Ctx, method: str, path: str, params: Obj) -> Obj:
        for verb, pattern, fn in ROUTES:
            if verb == method and (match := pattern.match(path)):
                return self._expand(fn(self, ctx, params, *match.groups()), params.get("expand") or [])
        raise ApiError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at "
            "https://support.stripe.com/.",
            stored=False,
        )

    def get(self, kind: str, ident: str, param: str | None = None, *, deleted_too: bool = False) -> Obj:
        """A deleted object is missing to every request but its own retrieval, as in Stripe."""
        obj = self.objects[kind].get(ident)
        if obj is None or obj.get("deleted") and not deleted_too:
            raise missing(kind, ident, param)
        return obj

    def emit(self, ctx: Ctx, type_: str, obj: Obj) -> None:
        event = {
            "id": self.new_id("evt"), "object": "event", "api_version": API_VERSION, "created": ctx.now,
            "data": {"object": copy.deepcopy(obj)}, "livemode": False, "pending_webhooks": 1,
            "request": {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key}, "type": type_,
        }
        self.objects["event"][event["id"]] = event
        ctx.events.append(event)

    def _expand(self, obj: Obj, paths: list[str]) -> Obj:
        obj = copy.deepcopy(obj)
        for path in paths:
            self._expand_path(obj, path.split("."))
        return obj

    def _expand_path(self, node: Any, parts: list[str]) -> None:
        if not parts or not isinstance(node, dict):
            return
        head, rest = parts[0], parts[1:]
        if head == "data" and isinstance(node.get("data"), list):
            for item in node["data"]:
                self._expand_path(item, rest)
            return
        value = node.get(head)
        if isinstance(value, str) and (kind := PREFIX_KIND.get(value.split("_", 1)[0])):
            if found := self.objects[kind].get(value):
                node[head] = value = copy.deepcopy(found)
        self._expand_path(value, rest)

    def _list(self, kind: str, params: Obj, keep: Callable[[Obj], bool], url: str) -> Obj:
        items = [o for o in reversed(list(self.objects[kind].values())) if keep(o)]
        if after := params.get("starting_after"):
            ids = [o["id"] for o in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        limit = min(_int(params, "limit") or 10, 100)
        return {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "url": url}

    def _metadata(self, obj: Obj, params: Obj) -> None:
        given = params.get("metadata")
        if given is None:
            return
        if given == "":
            obj["metadata"] = {}
            return
        merged = dict(obj.get("metadata") or {})
        for key, value in given.items():
            if len(key) > 40:
                raise invalid("Metadata keys can have up to 40 characters.", f"metadata[{key}]")
            if len(str(value)) > 500:
                raise invalid("Metadata values can have up to 500 characters.", f"metadata[{key}]")
            if value == "":
                merged.pop(key, None)
            else:
                merged[key] = str(value)
        if len(merged) > 50:
            raise invalid("You can have up to 50 metadata keys.", "metadata")
        obj["metadata"] = merged

    # Customers -------------------------------------------------------------------------------

    @route("POST", "customers")
    def create_customer(self, ctx: Ctx, params: Obj) -> Obj:
        customer: Obj = {
            "id": self.new_id("cus"), "object": "customer", "address": None, "balance": 0,
            "created": ctx.now, "currency": None, "default_source": None, "delinquent": False,
            "description": None, "email": None, "invoice_prefix": None,
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                                 "rendering_options": None},
            "livemode": False, "metadata": {}, "name": None, "phone": None, "preferred_locales": [],
            "shipping": None, "tax_exempt": "none", "test_clock": None,
        }
        self.objects["customer"][customer["id"]] = customer
        try:
            if ref := params.get("payment_method"):
                self._attach(ctx, self._payment_method(ctx, ref, "payment_method"), customer["id"])
            return self.update_customer(ctx, params, customer["id"])
        except ApiError:
            del self.objects["customer"][customer["id"]]
            raise

    @route("GET", "customers")
    def list_customers(self, ctx: Ctx, params: Obj) -> Obj:
        email = params.get("email")
        return self._list("customer", params, lambda c: not c.get("deleted") and email in (None, c["email"]),
                          "/v1/customers")

    @route("GET", r"customers/(cus_\w+)")
    def retrieve_customer(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        return self.get("customer", ident, deleted_too=True)

    @route("POST", r"customers/(cus_\w+)")
    def update_customer(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        customer = self.get("customer", ident)
        default = (params.get("invoice_settings") or {}).get("default_payment_method")
        if default:
            pm = self.objects["payment_method"].get(default)
            if pm is None or pm["customer"] != ident:
                raise invalid(
                    f"The customer does not have a payment method with the ID {default}. The payment method must "
                    "be attached to the customer.",
                    "invoice_settings[default_payment_method]",
                    "resource_missing",
                )
        for name in ("email", "name", "phone", "description"):
            if name in params:
                customer[name] = params[name] or None
        if default is not None:
            customer["invoice_settings"]["default_payment_method"] = default or None
        self._metadata(customer, params)
        return customer

    @route("DELETE", r"customers/(cus_\w+)")
    def delete_customer(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        self.get("customer", ident)
        for pm in self.objects["payment_method"].values():
            if pm["customer"] == ident:
                pm["customer"] = None
        self.objects["customer"][ident] = {"id": ident, "object": "customer", "deleted": True}
        return self.objects["customer"][ident]

    @route("GET", r"customers/(cus_\w+)/payment_methods")
    def customer_payment_methods(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        self.get("customer", ident)
        return self._list("payment_method", params, lambda pm: pm["customer"] == ident,
                          f"/v1/customers/{ident}/payment_methods")

    # PaymentMethods --------------------------------------------------------------------------

    def _new_card(self, ctx: Ctx, card: TestCard) -> Obj:
        year = datetime.fromtimestamp(ctx.now, UTC).year
        pm: Obj = {
            "id": self.new_id("pm"), "object": "payment_method", "allow_redisplay": "unspecified",
            "billing_details": {"address": {"city": None, "country": None, "line1": None, "line2": None,
                                            "postal_code": None, "state": None},
                                "email": None, "name": None, "phone": None},
            "card": {"brand": card.brand, "checks": {"address_line1_check": None,
                                                     "address_postal_code_check": None, "cvc_check": "pass"},
                     "country": "US", "display_brand": card.brand, "exp_month": 12, "exp_year": year + 3,
                     "fingerprint": f"fp{card.number[-8:]}", "funding": card.funding, "last4": card.last4,
                     "networks": {"available": [card.brand], "preferred": None},
                     "three_d_secure_usage": {"supported": True}, "wallet": None},
            "created": ctx.now, "customer": None, "livemode": False, "metadata": {}, "type": "card",
        }
        self.objects["payment_method"][pm["id"]] = pm
        self.cards[pm["id"]] = card
        return pm

    def _payment_method(self, ctx: Ctx, ref: str, param: str) -> Obj:
        """Stripe accepts its test tokens (``pm_card_visa``) wherever a PaymentMethod id goes and
        mints a fresh PaymentMethod from them each time."""
        if card := BY_PM_TOKEN.get(ref):
            return self._new_card(ctx, card)
        return self.get("payment_method", ref, param)

    def _card_error(self, decline: Decline, **objects: Any) -> ApiError:
        return ApiError(402, decline.message, type="card_error", code=decline.code, param=decline.param,
                        decline_code=decline.decline_code, **objects)

    def _attach(self, ctx: Ctx, pm: Obj, customer_id: str) -> Obj:
        self.get("customer", customer_id, "customer")
        if pm["customer"] not in (None, customer_id):
            raise invalid("The payment method you provided has already been attached to a customer.",
                          "payment_method")
        if decline := self._setup_decline(ctx, pm["id"]):
            raise self._card_error(decline)
        pm["customer"] = customer_id
        return pm

    def _expired(self, ctx: Ctx, pm_id: str) -> bool:
        """A card is good through the last day of its expiry month (docs.stripe.com/declines/codes:
        ``expired_card``); the issuer declines it after that, whatever else it would have said."""
        card = self.objects["payment_method"][pm_id]["card"]
        today = datetime.fromtimestamp(ctx.now, UTC)
        return (card["exp_year"], card["exp_month"]) < (today.year, today.month)

    def _setup_decline(self, ctx: Ctx, pm_id: str) -> Decline | None:
        """What the issuer says when a card is checked without a charge (attach, SetupIntent)."""
        card = self.cards[pm_id]
        if self._expired(ctx, pm_id):
            return EXPIRED_CARD
        return card.decline if card.decline and card.decline_on_attach else None

    @route("POST", "payment_methods")
    def create_payment_method(self, ctx: Ctx, params: Obj) -> Obj:
        details = params.get("card") or {}
        if params.get("type") != "card" or not isinstance(details, dict):
            raise invalid("Missing required param: type.", "type", "parameter_missing")
        card = BY_TOK.get(details.get("token", "")) or BY_NUMBER.get(str(details.get("number", "")).replace(" ", ""))
        if card is None:
            raise ApiError(402, "Your card was declined. Your request was in test mode, but used a non test card.",
                           type="card_error", code="card_declined", decline_code="test_mode_live_card")
        pm = self._new_card(ctx, card)
        for name in ("exp_month", "exp_year"):
            if details.get(name):
                pm["card"][name] = int(details[name])
        try:
            self._check_expiry(ctx, pm["card"])
        except ApiError:
            del self.objects["payment_method"][pm["id"]], self.cards[pm["id"]]
            raise
        pm["billing_details"] |= {k: v for k, v in (params.get("billing_details") or {}).items() if k != "address"}
        self._metadata(pm, params)
        return pm

    def _check_expiry(self, ctx: Ctx, card: Obj) -> None:
        """Stripe refuses to save a card whose expiry is malformed or already past (``invalid_expiry_month``,
        ``invalid_expiry_year``; docs.stripe.com/error-codes): a card on file expires later, in place."""
        month, year = card["exp_month"], card["exp_year"]
        today = datetime.fromtimestamp(ctx.now, UTC)
        if not 1 <= month <= 12 or year == today.year and month < today.month:
            raise ApiError(402, "Your card's expiration month is invalid.", type="card_error",
                           code="invalid_expiry_month", param="exp_month")
        if year < today.year:
            raise ApiError(402, "Your card's expiration year is invalid.", type="card_error",
                           code="invalid_expiry_year", param="exp_year")

    @route("GET", r"payment_methods/(pm_\w+)")
    def retrieve_payment_method(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        return self.get("payment_method", ident)

    @route("POST", r"payment_methods/(pm_\w+)/attach")
    def attach_payment_method(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        if not params.get("customer"):
            raise invalid("Missing required param: customer.", "customer", "parameter_missing")
        self.get("customer", params["customer"], "customer")
        return self._attach(ctx, self._payment_method(ctx, ident, "payment_method"), params["customer"])

    @route("POST", r"payment_methods/(pm_\w+)/detach")
    def detach_payment_method(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        pm = self.get("payment_method", ident)
        if pm["customer"] is None:
            raise invalid("The payment method you provided is not attached to a customer so detachment is "
                          "impossible.", code="payment_method_unexpected_state")
        settings = self.objects["customer"][pm["customer"]]["invoice_settings"]
        if settings["default_payment_method"] == ident:
            settings["default_payment_method"] = None
        pm["customer"] = None
        return pm

    @route("GET", "payment_methods")
    def list_payment_methods(self, ctx: Ctx, params: Obj) -> Obj:
        customer = params.get("customer")
        if customer:
            self.get("customer", customer, "customer")
        return self._list("payment_method", params,
                          lambda pm: pm["customer"] == customer and params.get("type", "card") == pm["type"],
                          "/v1/payment_methods")

    # SetupIntents ----------------------------------------------------------------------------

    @route("POST", "setup_intents")
    def create_setup_intent(self, ctx: Ctx, params: Obj) -> Obj:
        if params.get("customer"):
            self.get("customer", params["customer"], "customer")
        ident = self.new_id("seti")
        seti: Obj = {
            "id": ident, "object": "setup_intent", "cancellation_reason": None,
            "client_secret": f"{ident}_secret_fake", "created": ctx.now, "customer": params.get("customer"),
            "description": params.get("description"), "last_setup_error": None, "latest_attempt": None,
            "livemode": False, "metadata": {}, "next_action": None, "payment_method": None,
            "payment_method_types": ["card"], "status": "requires_payment_method",
            "usage": params.get("usage", "off_session"),
        }
        self._metadata(seti, params)
        if params.get("payment_method"):
            seti["payment_method"] = self._payment_method(ctx, params["payment_method"], "payment_method")["id"]
            seti["status"] = "requires_confirmation"
        self.objects["setup_intent"][ident] = seti
        if _bool(params.get("confirm")):
            return self.confirm_setup_intent(ctx, {}, ident)
        return seti

    @route("GET", r"setup_intents/(seti_\w+)")
    def retrieve_setup_intent(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        return self.get("setup_intent", ident)

    @route("POST", r"setup_intents/(seti_\w+)/confirm")
    def confirm_setup_intent(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        seti = self.get("setup_intent", ident)
        if params.get("payment_method"):
            seti["payment_method"] = self._payment_method(ctx, params["payment_method"], "payment_method")["id"]
        if seti["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise invalid(f"You cannot confirm this SetupIntent because it has a status of {seti['status']}.",
                          code="setup_intent_unexpected_state")
        if not seti["payment_method"]:
            raise invalid("You cannot confirm this SetupIntent because it's missing a payment method.",
                          code="setup_intent_unexpected_state")
        card = self.cards[seti["payment_method"]]
        if decline := self._setup_decline(ctx, seti["payment_method"]):
            pm = self.objects["payment_method"][seti["payment_method"]]
            error = self._card_error(decline, payment_method=copy.deepcopy(pm))
            seti |= {"status": "requires_payment_method", "payment_method": None, "last_setup_error": error.error}
            self.emit(ctx, "setup_intent.setup_failed", seti)
            error.error["setup_intent"] = copy.deepcopy(seti)
            raise error
        if card.auth:
            seti |= {"status": "requires_action", "next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {}}}
            self.emit(ctx, "setup_intent.requires_action", seti)
            return seti
        return self.finish_setup(ctx, seti)

    def finish_setup(self, ctx: Ctx, seti: Obj) -> Obj:
        pm = self.objects["payment_method"][seti["payment_method"]]
        if seti["customer"] and pm["customer"] is None:
            pm["customer"] = seti["customer"]
        if seti["usage"] == "off_session":
            self.set_up_off_session.add(pm["id"])
        seti |= {"status": "succeeded", "next_action": None, "last_setup_error": None}
        self.emit(ctx, "setup_intent.succeeded", seti)
        return seti

    @route("POST", r"setup_intents/(seti_\w+)/cancel")
    def cancel_setup_intent(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        seti = self.get("setup_intent", ident)
        if seti["status"] in ("succeeded", "canceled"):
            raise invalid(f"You cannot cancel this SetupIntent because it has a status of {seti['status']}.",
                          code="setup_intent_unexpected_state")
        seti |= {"status": "canceled", "cancellation_reason": params.get("cancellation_reason")}
        return seti

    # PaymentIntents --------------------------------------------------------------------------

    @route("POST", "payment_intents")
    def create_payment_intent(self, ctx: Ctx, params: Obj) -> Obj:
        amount = _int(params, "amount", required=True)
        currency = str(params.get("currency") or "").lower()
        if not currency:
            raise invalid("Missing required param: currency.", "currency", "parameter_missing")
        assert amount is not None
        if amount < MINIMUM_CHARGE.get(currency, 50):
            raise invalid(f"Amount must be at least {money(MINIMUM_CHARGE.get(currency, 50), currency)} {currency}",
                          "amount", "amount_too_small")
        confirm, off_session = _bool(params.get("confirm")), _bool(params.get("off_session"))
        if off_session and not confirm:
            raise invalid("You may only specify `off_session` when confirming the PaymentIntent.", "off_session")
        customer = params.get("customer") or None
        if customer:
            self.get("customer", customer, "customer")
        if confirm and not params.get("payment_method"):
            raise invalid("You cannot confirm this PaymentIntent because it's missing a payment method.",
                          "payment_method", "payment_intent_unexpected_state")
        ref = params.get("payment_method")
        pm = self._payment_method(ctx, ref, "payment_method") if ref else None
        if pm and pm["customer"] not in (None, customer):
            raise invalid("The provided PaymentMethod is attached to another Customer; pass that customer "
                          "(or use a PaymentMethod attached to this one).", "payment_method")
        ident = self.new_id("pi")
        pi: Obj = {
            "id": ident, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_received": 0, "canceled_at": None, "cancellation_reason": None,
            "capture_method": params.get("capture_method", "automatic_async"),
            "client_secret": f"{ident}_secret_fake", "confirmation_method": "automatic", "created": ctx.now,
            "currency": currency, "customer": customer, "description": params.get("description"),
            "last_payment_error": None, "latest_charge": None, "livemode": False, "metadata": {},
            "next_action": None, "payment_method": pm["id"] if pm else None, "payment_method_types": ["card"],
            "receipt_email": params.get("receipt_email"), "setup_future_usage": params.get("setup_future_usage"),
            "statement_descriptor": params.get("statement_descriptor"),
            "statement_descriptor_suffix": params.get("statement_descriptor_suffix"),
            "status": "requires_confirmation" if pm else "requires_payment_method",
        }
        self._metadata(pi, params)
        self.objects["payment_intent"][ident] = pi
        self.emit(ctx, "payment_intent.created", pi)
        return self._confirm(ctx, pi, off_session) if confirm else pi

    @route("GET", r"payment_intents/(pi_\w+)")
    def retrieve_payment_intent(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        return self.get("payment_intent", ident)

    @route("POST", r"payment_intents/(pi_\w+)")
    def update_payment_intent(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        pi = self.get("payment_intent", ident)
        if pi["status"] in ("succeeded", "canceled") and set(params) - {"metadata", "description", "expand"}:
            raise unexpected_state(f"This PaymentIntent's status is {pi['status']}; only metadata and "
                                   "description can be updated.")
        for name in ("description", "receipt_email"):
            if name in params:
                pi[name] = params[name] or None
        self._metadata(pi, params)
        return pi

    @route("GET", "payment_intents")
    def list_payment_intents(self, ctx: Ctx, params: Obj) -> Obj:
        customer = params.get("customer")
        return self._list("payment_intent", params, lambda pi: not customer or pi["customer"] == customer,
                          "/v1/payment_intents")

    @route("POST", r"payment_intents/(pi_\w+)/confirm")
    def confirm_payment_intent(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        pi = self.get("payment_intent", ident)
        if params.get("payment_method"):
            pi["payment_method"] = self._payment_method(ctx, params["payment_method"], "payment_method")["id"]
        if not pi["payment_method"]:
            raise invalid("You cannot confirm this PaymentIntent because it's missing a payment method.",
                          "payment_method", "payment_intent_unexpected_state")
        return self._confirm(ctx, pi, _bool(params.get("off_session")))

    def _confirm(self, ctx: Ctx, pi: Obj, off_session: bool) -> Obj:
        if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise unexpected_state(f"This PaymentIntent's status is {pi['status']}, so it cannot be confirmed.")
        card = self.cards[pi["payment_method"]]
        needs_auth = card.auth == "always" or (
            card.auth == "unless_setup" and pi["payment_method"] not in self.set_up_off_session
        )
        if needs_auth and off_session:
            raise self._decline(ctx, pi, AUTHENTICATION_REQUIRED)
        if needs_auth:
            pi |= {"status": "requires_action", "next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {}}}
            self.emit(ctx, "payment_intent.requires_action", pi)
            return pi
        return self.authorize(ctx, pi)

    def authorize(self, ctx: Ctx, pi: Obj) -> Obj:
        card = self.cards[pi["payment_method"]]
        if self._expired(ctx, pi["payment_method"]):
            raise self._decline(ctx, pi, EXPIRED_CARD)
        if card.decline:
            raise self._decline(ctx, pi, card.decline)
        manual = pi["capture_method"] == "manual"
        charge = self._charge(ctx, pi, None)
        pi |= {"latest_charge": charge["id"], "next_action": None, "last_payment_error": None}
        ctx.charged = True
        if manual:
            pi |= {"status": "requires_capture", "amount_capturable": pi["amount"]}
            self.emit(ctx, "payment_intent.amount_capturable_updated", pi)
        else:
            pi |= {"status": "succeeded", "amount_received": pi["amount"]}
            self.emit(ctx, "payment_intent.succeeded", pi)
        return pi

    def _charge(self, ctx: Ctx, pi: Obj, decline: Decline | None) -> Obj:
        pm = self.objects["payment_method"][pi["payment_method"]]
        captured = decline is None and pi["capture_method"] != "manual"
        charge: Obj = {
            "id": self.new_id("ch"), "object": "charge", "amount": pi["amount"],
            "amount_captured": pi["amount"] if captured else 0, "amount_refunded": 0,
            "balance_transaction": self.new_id("txn") if captured else None,
            "billing_details": copy.deepcopy(pm["billing_details"]), "captured": captured,
            "created": ctx.now, "currency": pi["currency"], "customer": pi["customer"],
            "description": pi["description"], "disputed": False,
            "failure_code": decline.code if decline else None,
            "failure_message": decline.message if decline else None, "livemode": False,
            "metadata": dict(pi["metadata"]),
            "outcome": {
                "network_status": "declined_by_network" if decline else "approved_by_network",
                "reason": decline.decline_code if decline else None, "risk_level": "normal",
                "seller_message": "The bank did not return any further details with this decline."
                if decline else "Payment complete.",
                "type": "issuer_declined" if decline else "authorized",
            },
            "paid": decline is None, "payment_intent": pi["id"], "payment_method": pm["id"],
            "payment_method_details": {"card": {k: pm["card"][k] for k in
                                                ("brand", "country", "exp_month", "exp_year", "funding", "last4")},
                                       "type": "card"},
            "receipt_email": pi["receipt_email"], "refunded": False,
            "status": "failed" if decline else "succeeded",
        }
        self.objects["charge"][charge["id"]] = charge
        return charge

    def _decline(self, ctx: Ctx, pi: Obj, decline: Decline) -> ApiError:
        """Stripe's off-session decline: a failed charge, the intent back in requires_payment_method with
        its payment_method moved into last_payment_error, and a 402 carrying the intent."""
        charge = self._charge(ctx, pi, decline)
        pm = copy.deepcopy(self.objects["payment_method"][pi["payment_method"]])
        error = self._card_error(decline, charge=charge["id"], payment_method=pm)
        pi |= {"status": "requires_payment_method", "payment_method": None, "latest_charge": charge["id"],
               "next_action": None, "last_payment_error": copy.deepcopy(error.error)}
        self.emit(ctx, "payment_intent.payment_failed", pi)
        error.error["payment_intent"] = copy.deepcopy(pi)
        return error

    @route("POST", r"payment_intents/(pi_\w+)/capture")
    def capture_payment_intent(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        pi = self.get("payment_intent", ident)
        if pi["status"] != "requires_capture":
            raise unexpected_state(
                f"This PaymentIntent could not be captured because it has a status of {pi['status']}. Only a "
                "PaymentIntent with one of the following statuses may be captured: requires_capture."
            )
        amount = _int(params, "amount_to_capture")
        amount = pi["amount_capturable"] if amount is None else amount
        if amount > pi["amount_capturable"]:
            raise invalid("The amount_to_capture is greater than the amount capturable.", "amount_to_capture",
                          "amount_too_large")
        charge = self.objects["charge"][pi["latest_charge"]]
        charge |= {"captured": True, "amount_captured": amount, "amount_refunded": charge["amount"] - amount,
                   "balance_transaction": self.new_id("txn")}
        pi |= {"status": "succeeded", "amount_received": amount, "amount_capturable": 0}
        self.emit(ctx, "payment_intent.succeeded", pi)
        return pi

    @route("POST", r"payment_intents/(pi_\w+)/cancel")
    def cancel_payment_intent(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        pi = self.get("payment_intent", ident)
        if pi["status"] not in CANCELABLE:
            raise unexpected_state(
                f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}. Only a "
                f"PaymentIntent with one of the following statuses may be canceled: {', '.join(CANCELABLE)}."
            )
        if pi["status"] == "requires_capture":
            charge = self.objects["charge"][pi["latest_charge"]]
            charge |= {"amount_refunded": charge["amount"], "refunded": True}
        pi |= {"status": "canceled", "canceled_at": ctx.now, "amount_capturable": 0,
               "cancellation_reason": params.get("cancellation_reason"), "next_action": None}
        self.emit(ctx, "payment_intent.canceled", pi)
        return pi

    # Charges and refunds ---------------------------------------------------------------------

    @route("GET", r"charges/(ch_\w+)")
    def retrieve_charge(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        return self.get("charge", ident)

    @route("GET", "charges")
    def list_charges(self, ctx: Ctx, params: Obj) -> Obj:
        keys = [k for k in ("customer", "payment_intent") if params.get(k)]
        return self._list("charge", params, lambda ch: all(ch[k] == params[k] for k in keys), "/v1/charges")

    @route("POST", "refunds")
    def create_refund(self, ctx: Ctx, params: Obj) -> Obj:
        if params.get("payment_intent"):
            pi = self.get("payment_intent", params["payment_intent"], "payment_intent")
            charge = self.objects["charge"].get(pi["latest_charge"] or "")
            if charge is None or charge["status"] != "succeeded" or not charge["captured"]:
                raise invalid(f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                              "payment_intent")
        elif params.get("charge"):
            charge = self.get("charge", params["charge"], "charge")
        else:
            raise invalid("One of the following params should be provided for this request: payment_intent or "
                          "charge.", code="parameter_missing")
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise ApiError(400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        if params.get("reason") not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise invalid("Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
                          "reason", "parameter_invalid_string")
        amount = _int(params, "amount")
        amount = remaining if amount is None else amount
        if amount == 0:
            raise invalid("Refund amount must be greater than zero.", "amount", "parameter_invalid_integer")
        if amount > remaining:
            raise ApiError(400, f"Refund amount ({money(amount, charge['currency'])}) is greater than unrefunded "
                                f"amount on charge ({money(remaining, charge['currency'])})", param="amount")
        refund: Obj = {
            "id": self.new_id("re"), "object": "refund", "amount": amount,
            "balance_transaction": self.new_id("txn"), "charge": charge["id"], "created": ctx.now,
            "currency": charge["currency"], "destination_details": {"type": "card", "card": {}},
            "metadata": {}, "payment_intent": charge["payment_intent"], "reason": params.get("reason"),
            "receipt_number": None, "source_transfer_reversal": None, "status": "succeeded",
            "transfer_reversal": None,
        }
        self._metadata(refund, params)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self.objects["refund"][refund["id"]] = refund
        self.emit(ctx, "charge.refunded", charge)
        return refund

    @route("GET", r"refunds/(re_\w+)")
    def retrieve_refund(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        return self.get("refund", ident)

    @route("GET", "refunds")
    def list_refunds(self, ctx: Ctx, params: Obj) -> Obj:
        keys = [k for k in ("charge", "payment_intent") if params.get(k)]
        return self._list("refund", params, lambda re_: all(re_[k] == params[k] for k in keys), "/v1/refunds")

    # Disputes --------------------------------------------------------------------------------

    def open_dispute(self, ctx: Ctx, pi: Obj, reason: str) -> Obj:
        """The client's bank disputes the intent's charge: the amount is withdrawn from the balance while the
        dispute runs (``charge.dispute.created``, then ``charge.dispute.funds_withdrawn``)."""
        charge = self.objects["charge"].get(pi["latest_charge"] or "")
        if charge is None or charge["status"] != "succeeded":
            raise invalid(f"{pi['id']} has no successful charge to dispute")
        dispute: Obj = {
            "id": self.new_id("du"), "object": "dispute", "amount": charge["amount"], "charge": charge["id"],
            "created": ctx.now, "currency": charge["currency"], "is_charge_refundable": False,
            "livemode": False, "metadata": {}, "payment_intent": pi["id"], "reason": reason,
            "status": "needs_response",
        }
        charge["disputed"] = True
        self.objects["dispute"][dispute["id"]] = dispute
        self.emit(ctx, "charge.dispute.created", dispute)
        return dispute

    @route("GET", r"disputes/(du_\w+)")
    def retrieve_dispute(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        return self.get("dispute", ident)

    # Events ----------------------------------------------------------------------------------

    @route("GET", r"events/(evt_\w+)")
    def retrieve_event(self, ctx: Ctx, params: Obj, ident: str) -> Obj:
        return self.get("event", ident)

    @route("GET", "events")
    def list_events(self, ctx: Ctx, params: Obj) -> Obj:
        return self._list("event", params, lambda e: params.get("type") in (None, e["type"]), "/v1/events")

