"""One Stripe rate budget for every Lambda that calls Stripe: a count per second in DynamoDB, the work that can wait
(drafts, card checks) capped at a share.

Why a shared budget: Stripe limits the *account* (live: 100 operations a second, 25 requests a second per endpoint;
test mode 25 a second), and every function and every concurrent Lambda spends from the same allowance. The
first-of-the-month drafts alone could use all of it and leave a no-show fee, charged at the same moment, to a
429. So each call first takes a unit of this second's budget:

* **The size** is a setting, ``STRIPE_REQUESTS_PER_SECOND`` (template ``StripeRequestsPerSecond``, default 25):
  fees and drafts both create PaymentIntents, one endpoint, so the per-endpoint 25 a second binds before the
  account's 100. Raise it only after Stripe has raised the account's limits.
* **Work that can wait gets at most a share** (``STRIPE_DRAFTS_SHARE``, default 0.5) of each second, rounded down
  (never less than one): the dues drafts, and the card checks (advice days ahead of a visit, due in one burst at a
  chain's 10:00). Fees, refunds, reconciliation and erasure (the *fees* lane) may use the whole second, what the
  others left included. So at least ``(1 - share)`` of every second is always there for fees: a draft day or a
  morning of card checks slows down, a fee is never starved.
* **A second is a fixed window**: the item ``stripe#<epoch second>`` counts the units taken (``used``) and those of
  the capped lanes (``drafts``, the drafts' and the card checks' together) with one conditional ``UpdateItem``; a refused condition means the second is spent. A
  fixed window can let up to twice the rate through around a second's edge; Stripe's limiter allows short bursts,
  and a real 429 is handled like a spent budget (``PaymentProviderThrottled``), so the window is kept simple. At
  25 to 100 updates a second, one item is far below a partition's 1,000 writes a second. Items expire (TTL) a
  few minutes later.
* **When the second is spent** the call raises ``PaymentProviderThrottled`` and the state machine retries the
  step after a jittered second or so: a Lambda never sleeps for the budget (it would pay to wait, and the local
  cloud's virtual clock could not see it). The ledger entry was kept before, so the retry sends the same
  idempotency key.
* **If DynamoDB cannot answer**, the call goes ahead (fail open): the budget keeps Stripe from answering 429, it
  is not what keeps money moving exactly once, and Stripe's own 429 is still caught. A fee is not held up by the
  budget's own table.
* **"Now" is injected** (``clock``, seconds since the epoch) so a test decides which second it is.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from medspa.ports.payments import PaymentProviderThrottled

logger = logging.getLogger(__name__)

Lane = Literal["fees", "drafts", "card_checks"]
CAPPED: frozenset[Lane] = frozenset({"drafts", "card_checks"})
"""The lanes that share the capped part of each second."""
KEPT_SECONDS = 300  # a second's item outlives it by a few minutes (TTL), long enough to read in an incident

# The drafts' Distributed Map MaxConcurrency (statemachines/membership_drafts.asl.json) is derived from the
# budget: each child takes one draft step, which makes one Stripe request (the PaymentIntent; a rerun may list
# first) and lasts about half a second (make bench). So a child in flight asks for 2 requests a second, and the
# drafts' share of a second, floor(25 x 0.5) = 12, is used by 12 / 2 = 6 children at once. More would only be
# turned away by the budget and retried; fewer would leave the share unused.
DRAFT_STEP_SECONDS = 0.5
STRIPE_REQUESTS_PER_DRAFT_STEP = 1


class StripeBudget(Protocol):
    def take(self, lane: Lane, doing: str) -> None:
        """Spend one request of this second, or raise ``PaymentProviderThrottled``."""


def drafts_per_second(requests_per_second: int, drafts_share: float) -> int:
    """The drafts' units of each second: the share rounded down, at least one so drafts always progress."""
    return max(1, math.floor(requests_per_second * drafts_share))


def drafts_max_concurrency(requests_per_second: int, drafts_share: float) -> int:
    """How many draft steps may run at once to use, not exceed, the drafts' share (see the arithmetic above)."""
    per_child = STRIPE_REQUESTS_PER_DRAFT_STEP / DRAFT_STEP_SECONDS
    return max(1, math.floor(drafts_per_second(requests_per_second, drafts_share) / per_child))


class Unmetered:
    """No budget: a script or test that calls Stripe alone."""

    def take(self, lane: Lane, doing: str) -> None:
        return None


class InMemoryBudget:
    """The same windows and limits in a dict, for unit tests and the in-process engine."""

    def __init__(self, requests_per_second: int, drafts_share: float, clock: Callable[[], float] = time.time) -> None:
        self.limit, self.drafts_limit = requests_per_second, drafts_per_second(requests_per_second, drafts_share)
        self._clock = clock
        self.used: dict[int, tuple[int, int]] = {}

    def take(self, lane: Lane, doing: str) -> None:
        second = int(self._clock())
        used, drafts = self.used.get(second, (0, 0))
        if used >= self.limit:
            raise PaymentProviderThrottled(doing, "budget-spent")
        if lane in CAPPED and drafts >= self.drafts_limit:
            raise PaymentProviderThrottled(doing, "share-spent")
        self.used[second] = (used + 1, drafts + (lane in CAPPED))


class DynamoBudget:
    """The budget in the ``StripeBudgetTable``: one item per second, one conditional ``UpdateItem`` per call."""

    def __init__(self, client: Any, table: str, requests_per_second: int, drafts_share: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._client, self._table, self._clock = client, table, clock
        self.limit, self.drafts_limit = requests_per_second, drafts_per_second(requests_per_second, drafts_share)

    def take(self, lane: Lane, doing: str) -> None:
        second = int(self._clock())
        within = "(attribute_not_exists(used) OR used < :limit)"
        values: dict[str, Any] = {":one": {"N": "1"}, ":limit": {"N": str(self.limit)},
                                  ":expires": {"N": str(second + KEPT_SECONDS)}}
        add = "used :one"
        if lane in CAPPED:
            within += " AND (attribute_not_exists(drafts) OR drafts < :drafts_limit)"
            values[":drafts_limit"] = {"N": str(self.drafts_limit)}
            add += ", drafts :one"
        try:
            self._client.update_item(
                TableName=self._table, Key={"window": {"S": f"stripe#{second}"}},
                UpdateExpression=f"ADD {add} SET expires_at = if_not_exists(expires_at, :expires)",
                ConditionExpression=within, ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except Exception as error:  # botocore's errors are made per client; matched by their code
            code = getattr(error, "response", {}).get("Error", {}).get("Code")
            if code != "ConditionalCheckFailedException":
                logger.warning("stripe budget unreadable, calling Stripe unmetered",
                               extra={"error": code or type(error).__name__})
                return
            held = error.response.get("Item", {})  # type: ignore[attr-defined]
            spent = int(held.get("used", {}).get("N", 0)) >= self.limit
            raise PaymentProviderThrottled(doing, "budget-spent" if spent or lane not in CAPPED
                                           else "share-spent") from None


def budget_from_env(environ: Mapping[str, str], client: Callable[[str], Any]) -> StripeBudget:
    """The budget a function's environment names (the privacy function wires itself from it); unmetered where no
    table is named, as for a script run against a test account alone."""
    table = environ.get("STRIPE_BUDGET_TABLE")
    if not table:
        return Unmetered()
    return DynamoBudget(client("dynamodb"), table, int(environ["STRIPE_REQUESTS_PER_SECOND"]),
                        float(environ["STRIPE_DRAFTS_SHARE"]))
