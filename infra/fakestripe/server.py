"""The fake's HTTP front: what Stripe does before and after an endpoint runs.

Auth, the account-wide token bucket, idempotency keys, injected faults and signed webhooks live here;
resource rules live in ``api.py``. Standard library only, so it runs wherever the tests run. Every
request is handled under one lock: Stripe's per-key locking is not what is being tested, and a
serial store keeps runs reproducible.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import traceback
import urllib.error
import urllib.request
from base64 import b64decode
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from .api import API_VERSION, Account, ApiError, Ctx, Obj

IDEMPOTENCY_TTL = 24 * 3600
DEFAULT_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def parse_form(body: str) -> Obj:
    """Decode Stripe's form encoding (``metadata[k]=v``, ``expand[0]=x``, ``expand[]=x``) into nested
    dicts and lists; metadata keys stay keys even when they look like indices."""
    root: Obj = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        head, bracket, rest = key.partition("[")
        parts = [head, *re.findall(r"\[([^\]]*)\]", bracket + rest)]
        node = root
        for part, nxt in zip(parts, parts[1:]):
            node = node.setdefault(part or str(len(node)), {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1] or str(len(node))] = value
    return _listify(root)


def _listify(node: Any, key: str = "") -> Any:
    if not isinstance(node, dict) or key == "metadata":
        return node
    items = {k: _listify(v, k) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` value: HMAC-SHA256 of ``"{t}.{payload}"`` keyed with the endpoint secret."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class ManualClock:
    """A clock tests move by hand, so 24-hour key expiry and bucket refills happen without sleeping."""

    def __init__(self, start: float = DEFAULT_EPOCH) -> None:
        self.t = float(start)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


class TokenBucket:
    """Stripe's rate limiter as a token bucket (burst = rate), refilled by the injected clock."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate, self.tokens, self.last = rate, rate, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = max(self.last, now)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class RecordedRequest:
    method: str
    path: str
    idempotency_key: str | None
    params: Obj
    status: int = 0
    replayed: bool = False
    dropped: bool = False


@dataclass
class WebhookDelivery:
    """One signed event as Stripe would POST it; ``payload`` is the exact body the signature covers."""

    id: str
    type: str
    payload: bytes
    signature: str
    delivered_status: int | None = None

    @property
    def event(self) -> Obj:
        return json.loads(self.payload)

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": self.signature}


@dataclass
class _Fault:
    kind: Literal["error", "rate_limit", "lock_timeout"]
    status: int
    stored: bool
    path_prefix: str | None
    reason: str = "global-rate"


# Stripe-Rate-Limited-Reason: why Stripe refused a request for a rate limit (docs.stripe.com/rate-limits).
RATE_LIMITED_REASONS = ("global-rate", "endpoint-rate", "global-concurrency", "endpoint-concurrency",
                        "resource-specific")


def _rate_limited(reason: str) -> _Reply:
    reply = _error(429, "Request rate limit exceeded. Learn more about rate limits here "
                        "https://stripe.com/docs/rate-limits.", code="rate_limit")
    reply.headers["Stripe-Rate-Limited-Reason"] = reason
    return reply


@dataclass
class _Reply:
    status: int
    body: Obj
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False
    drop: bool = False
    deliveries: list[WebhookDelivery] = field(default_factory=list)


@dataclass
class _Saved:
    fingerprint: tuple[str, str, str]
    created: float
    reply: _Reply
    request_id: str


def _error(status: int, message: str, type_: str = "invalid_request_error", **fields: Any) -> _Reply:
    return _Reply(status, {"error": {"type": type_, "message": message} | fields})


class FakeStripe:
    """A stateful Stripe account on 127.0.0.1 that the real ``stripe`` SDK talks to.

    All time (``created``, 24-hour idempotency expiry, webhook timestamps, bucket refill) comes from
    ``now`` so the local cloud's virtual clock governs it. ``rate_limit_per_second=None`` turns the
    token bucket off.
    """

    def __init__(
        self,
        now: Callable[[], float] = time.time,
        api_key: str = "sk_test_local",
        webhook_secret: str = "whsec_local",
        *,
        webhook_url: str | None = None,
        rate_limit_per_second: float | None = 25.0,
    ) -> None:
        self.now, self.api_key, self.webhook_secret = now, api_key, webhook_secret
        self.webhook_url = webhook_url
        self.rate_limit_per_second = rate_limit_per_second
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        """Forget every object, key, fault and log, as if a fresh account."""
        with self._lock:
            self.account = Account()
            self._keys: dict[str, _Saved] = {}
            self._faults: deque[_Fault] = deque()
            self._drop_next_charge = False
            self._bucket = TokenBucket(self.rate_limit_per_second, self.now()) if self.rate_limit_per_second else None
            self._request_ids = 0
            self.requests: list[RecordedRequest] = []
            self.webhook_events: list[WebhookDelivery] = []
            self.server_errors: list[str] = []

    # Lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        if self._server is None:
            self._server = _Server(("127.0.0.1", 0), _Handler)
            self._server.fake = self
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="fakestripe", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeStripe is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # Fault injection -------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500, *, stored: bool = False, path_prefix: str | None = None) -> None:
        """The next ``n`` requests get ``status`` with an ``api_error``. By default the failure happens in
        front of the endpoint (nothing saved, so an SDK retry with the same key runs for real); with
        ``stored=True`` it is the endpoint's own result, saved and replayed like any other (Stripe saves
        500s too) and marked ``Stripe-Should-Retry: false``."""
        self._inject(_Fault("error", status, stored, path_prefix), n)

    def rate_limit_next(self, n: int = 1, *, path_prefix: str | None = None, reason: str = "global-rate") -> None:
        """The next ``n`` requests get Stripe's 429 ``rate_limit`` with ``Stripe-Rate-Limited-Reason: reason``
        (one of ``RATE_LIMITED_REASONS``); no ``Stripe-Should-Retry`` header, so the SDK does not retry them on
        its own."""
        if reason not in RATE_LIMITED_REASONS:
            raise ValueError(f"Stripe gives no rate-limited reason {reason!r}")
        self._inject(_Fault("rate_limit", 429, False, path_prefix, reason), n)

    def lock_timeout_next(self, n: int = 1, *, path_prefix: str | None = None) -> None:
        """The next ``n`` requests get a 429 ``lock_timeout`` with ``Stripe-Should-Retry: true``, the one
        429 Stripe asks clients to retry."""
        self._inject(_Fault("lock_timeout", 429, False, path_prefix), n)

    def drop_connection_after_next_charge(self) -> None:
        """The next request that creates a successful charge commits it (and its idempotent result), then
        the socket closes with no response: the client cannot know the money moved."""
        with self._lock:
            self._drop_next_charge = True

    def _inject(self, fault: _Fault, n: int) -> None:
        with self._lock:
            self._faults.extend(copy.copy(fault) for _ in range(n))

    # Test-only actions and introspection -----------------------------------------------------

    def authenticate(self, intent_id: str, *, succeed: bool = True) -> Obj:
        """The customer completes (or fails) 3D Secure on-session for an intent in ``requires_action``."""
        with self._lock:
            ctx = self._ctx(None)
            kind = "setup_intent" if intent_id.startswith("seti_") else "payment_intent"
            intent = self.account.get(kind, intent_id)
            if intent["status"] != "requires_action":
                raise ValueError(f"{intent_id} is {intent['status']}, not requires_action")
            try:
                if not succeed:
                    self._fail_authentication(ctx, kind, intent)
                elif kind == "setup_intent":
                    self.account.finish_setup(ctx, intent)
                else:
                    if intent["setup_future_usage"] == "off_session":
                        self.account.set_up_off_session.add(intent["payment_method"])
                    self.account.authorize(ctx, intent)
            except ApiError:
                pass
            deliveries = self._sign_all(ctx)
            result = copy.deepcopy(intent)
        self._deliver(deliveries)
        return result

    def dispute(self, intent_id: str, reason: str = "fraudulent") -> Obj:
        """The client's bank opens a chargeback on the intent's charge (dashboard-only in Stripe's test mode)."""
        with self._lock:
            ctx = self._ctx(None)
            dispute = self.account.open_dispute(ctx, self.account.get("payment_intent", intent_id), reason)
            deliveries = self._sign_all(ctx)
            result = copy.deepcopy(dispute)
        self._deliver(deliveries)
        return result

    def _fail_authentication(self, ctx: Ctx, kind: str, intent: Obj) -> None:
        prefix = kind.replace("_intent", "_intent_authentication_failure")
        error = ApiError(400, "The provided PaymentMethod has failed authentication. You can provide "
                              "payment_method_data or a new PaymentMethod to attempt to fulfill this again.",
                         code=prefix).error
        field_name = "last_setup_error" if kind == "setup_intent" else "last_payment_error"
        intent |= {"status": "requires_payment_method", "payment_method": None, "next_action": None, field_name: error}
        self.account.emit(ctx, "setup_intent.setup_failed" if kind == "setup_intent" else
                          "payment_intent.payment_failed", intent)

    def _objects(self, kind: str) -> list[Obj]:
        with self._lock:
            return copy.deepcopy(list(self.account.objects[kind].values()))

    @property
    def customers(self) -> list[Obj]:
        return self._objects("customer")

    @property
    def payment_methods(self) -> list[Obj]:
        return self._objects("payment_method")

    @property
    def setup_intents(self) -> list[Obj]:
        return self._objects("setup_intent")

    @property
    def payment_intents(self) -> list[Obj]:
        return self._objects("payment_intent")

    @property
    def charges(self) -> list[Obj]:
        return self._objects("charge")

    @property
    def refunds(self) -> list[Obj]:
        return self._objects("refund")

    def charges_total(self, customer: str | None = None, currency: str | None = None) -> int:
        """Money actually taken (captured, gross of refunds), in minor units."""
        return sum(
            ch["amount_captured"] for ch in self.charges
            if ch["status"] == "succeeded" and customer in (None, ch["customer"]) and currency in (None, ch["currency"])
        )

    def refunds_total(self, customer: str | None = None) -> int:
        by_charge = {ch["id"]: ch for ch in self.charges}
        return sum(
            re_["amount"] for re_ in self.refunds if customer in (None, by_charge[re_["charge"]]["customer"])
        )

    # Request handling ------------------------------------------------------------------------

    def _ctx(self, key: str | None) -> Ctx:
        self._request_ids += 1
        return Ctx(now=int(self.now()), request_id=f"req_fake{self._request_ids:014d}", idempotency_key=key)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        split = urlsplit(handler.path)
        method = handler.command
        params = parse_form(body if method == "POST" else split.query)
        key = handler.headers.get("Idempotency-Key") if method == "POST" else None
        with self._lock:
            record = RecordedRequest(method, split.path, key, params)
            self.requests.append(record)
            reply = self._reply(method, split.path, params, key, handler.headers)
            record.status, record.replayed, record.dropped = reply.status, reply.replayed, reply.drop
        self._deliver(reply.deliveries)
        if reply.drop:
            handler.close_connection = True
            return
        payload = json.dumps(reply.body, indent=2).encode()
        handler.send_response(reply.status)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(payload)),
                   "Stripe-Version": handler.headers.get("Stripe-Version") or API_VERSION} | reply.headers
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _reply(self, method: str, path: str, params: Obj, key: str | None, headers: Mapping[str, str]) -> _Reply:
        if (auth := self._check_auth(headers.get("Authorization", ""))) is not None:
            return auth
        now = self.now()
        fault = next((f for f in self._faults if f.path_prefix is None or path.startswith(f.path_prefix)), None)
        if fault is not None:
            self._faults.remove(fault)
            if fault.kind != "error" or not (fault.stored and key):
                return self._fault_reply(fault)
        if self._bucket is not None and not self._bucket.take(now):
            return _rate_limited("global-rate")  # the bucket is the account's: the global limiter
        if key is not None:
            if len(key) > 255:
                return _error(400, "Idempotency keys can be at most 255 characters long.")
            self._forget_expired_keys(now)
            fingerprint = (method, path, json.dumps(params, sort_keys=True))
            if saved := self._keys.get(key):
                return self._replay(saved, fingerprint, key)
        ctx = self._ctx(key)
        if fault is not None:
            reply = self._fault_reply(fault)
            reply.headers["Stripe-Should-Retry"] = "false"
            stored = True
        else:
            reply, stored = self._execute(ctx, method, path, params)
        reply.headers["Request-Id"] = ctx.request_id
        if key is not None:
            reply.headers["Idempotency-Key"] = key
            if stored:
                self._keys[key] = _Saved(fingerprint, now, copy.deepcopy(reply), ctx.request_id)
        if ctx.charged and self._drop_next_charge:
            self._drop_next_charge, reply.drop = False, True
        reply.deliveries = self._sign_all(ctx)
        return reply

    def _forget_expired_keys(self, now: float) -> None:
        """Stripe prunes keys once they are at least 24 hours old. Keys are saved in time order (the clock
        only moves forward), so expired ones are always at the front."""
        old = itertools.takewhile(lambda k: now - self._keys[k].created >= IDEMPOTENCY_TTL, self._keys)
        for key in list(old):
            del self._keys[key]

    def _execute(self, ctx: Ctx, method: str, path: str, params: Obj) -> tuple[_Reply, bool]:
        try:
            return _Reply(200, self.account.dispatch(ctx, method, path, params)), True
        except ApiError as exc:
            return _Reply(exc.status, exc.body()), exc.stored
        except Exception:
            self.server_errors.append(traceback.format_exc())
            return _error(500, "An unknown error occurred", "api_error"), True

    def _replay(self, saved: _Saved, fingerprint: tuple[str, str, str], key: str) -> _Reply:
        if saved.fingerprint[:2] != fingerprint[:2]:
            first = " ".join(saved.fingerprint[:2])
            return _error(400, f"Keys for idempotent requests can only be used for the same endpoint they were "
                               f"first used for ('{first}' vs '{' '.join(fingerprint[:2])}'). Try using a key other "
                               f"than '{key}' if you meant to execute a different request.", "idempotency_error")
        if saved.fingerprint != fingerprint:
            return _error(400, f"Keys for idempotent requests can only be used with the same parameters they were "
                               f"first used with. Try using a key other than '{key}' if you meant to execute a "
                               "different request.", "idempotency_error")
        reply = copy.deepcopy(saved.reply)
        reply.headers |= {"Idempotent-Replayed": "true", "Original-Request": saved.request_id}
        reply.replayed = True
        return reply

    def _fault_reply(self, fault: _Fault) -> _Reply:
        if fault.kind == "rate_limit":
            return _rate_limited(fault.reason)
        if fault.kind == "lock_timeout":
            reply = _error(429, "This object cannot be accessed right now because another API request or Stripe "
                                "process is currently accessing it.", code="lock_timeout")
            reply.headers["Stripe-Should-Retry"] = "true"
            return reply
        return _error(fault.status, "An unknown error occurred", "api_error")

    def _check_auth(self, header: str) -> _Reply | None:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "basic":
            credential = b64decode(credential).decode(errors="replace").partition(":")[0]
        if credential == self.api_key:
            return None
        if not credential:
            return _error(401, "You did not provide an API key. You need to provide your API key in the "
                               "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                               "YOUR_SECRET_KEY').")
        return _error(401, f"Invalid API Key provided: {credential[:8]}{'*' * 12}{credential[-4:]}")

    # Webhooks --------------------------------------------------------------------------------

    def _sign_all(self, ctx: Ctx) -> list[WebhookDelivery]:
        deliveries = []
        for event in ctx.events:
            payload = json.dumps(event, indent=2).encode()
            delivery = WebhookDelivery(event["id"], event["type"], payload,
                                       sign(payload, self.webhook_secret, ctx.now))
            self.webhook_events.append(delivery)
            deliveries.append(delivery)
        return deliveries

    def _deliver(self, deliveries: list[WebhookDelivery]) -> None:
        """POSTs each event before the API response goes out: Stripe promises no order between the two,
        and this order makes runs repeatable. Failures are recorded, not retried."""
        for delivery in deliveries if self.webhook_url else ():
            request = urllib.request.Request(self.webhook_url, data=delivery.payload, headers=delivery.headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    delivery.delivered_status = response.status
            except urllib.error.HTTPError as exc:
                delivery.delivered_status = exc.code
            except OSError:
                delivery.delivered_status = 0


class _Server(ThreadingHTTPServer):
    fake: FakeStripe

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-response is the client's business; keep it off stderr."""
        self.fake.server_errors.append(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.fake._serve(self)  # type: ignore[attr-defined]

    do_POST = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass
