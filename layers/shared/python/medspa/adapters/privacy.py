"""What privacy requests need beyond the store: the exports bucket, Stripe, and the privacy function.

The intake parses whatever a booking site sends, so it is the function least worth trusting with the
Stripe key, the exports bucket or the audit table. It only checks a privacy event (spa, source, client)
and hands it to the privacy function with a synchronous Invoke (:class:`InvokedPrivacyDesk`); that
function alone holds those grants. A failure the privacy function may get past (Stripe, DynamoDB or
S3 throttled or down) comes back as :class:`PrivacyDeskUnavailable`, which the intake retries like its
own; anything else is a bug and is quarantined as one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from botocore.exceptions import ClientError

from medspa.events import PrivacyRequest

if TYPE_CHECKING:
    from medspa.adapters.booking_site import EventBridgeBookingSite
    from medspa.adapters.executions import LifecycleExecutions
    from medspa.adapters.store import Store
    from medspa.adapters.store.audit import PrivacyAuditRepository

# Error types the privacy function raises for a failure that may pass; the intake retries these.
TRANSIENT_ERRORS = frozenset({"StoreUnavailable", "PaymentProviderUnavailable", "PaymentProviderThrottled",
                              "ExecutionsUnavailable",
                              "BookingSiteUnavailable", "ExportsUnavailable", "PrivacyDeskUnavailable"})


class ExportsUnavailable(RuntimeError):
    """S3 throttled or failed: the same request may succeed later."""


class PrivacyDeskUnavailable(RuntimeError):
    """The privacy function could not finish for a reason that may pass; the intake retries the event."""


def _s3_errors_named(error: ClientError) -> Exception:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    code = error.response.get("Error", {}).get("Code", "")
    if status >= 500 or status == 429 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
        return ExportsUnavailable(f"S3 {code or status}")
    return error


class S3Exports:
    """Exports waiting for the spa's admin: one JSON object each, encrypted at rest by the bucket's default
    (SSE-KMS), deleted by the bucket's lifecycle rule after ``kept_for``; an erasure deletes them at once."""

    def __init__(self, s3: Any, bucket: str, kept_for: timedelta) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.kept_for = kept_for

    def put(self, key: str, document: Mapping[str, Any]) -> None:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(document, indent=2).encode(),
                                ContentType="application/json", ServerSideEncryption="aws:kms")
        except ClientError as error:
            raise _s3_errors_named(error) from error

    def remove_under(self, prefix: str) -> int:
        removed = 0
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                    removed += len(keys)
        except ClientError as error:
            raise _s3_errors_named(error) from error
        return removed

    def get(self, key: str) -> dict[str, Any]:
        return json.loads(self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())


class StripeCustomers:
    """Deletes Stripe customers, with the key fetched on first use: inside an invocation (and its retry),
    and never for a request that needs no Stripe call."""

    def __init__(self, api_key: Callable[[], str], api_base: str | None = None, budget: Any = None) -> None:
        """``budget``: the account's Stripe rate budget (``medspa.adapters.stripe_budget``), spent in the fees lane."""
        self._api_key = api_key
        self._api_base = api_base
        self._budget = budget
        self._payments: Any = None

    def delete_customer(self, customer_id: str) -> bool:
        if self._payments is None:
            from medspa.adapters.payments import StripePayments

            self._payments = StripePayments.from_settings(self._api_key(), self._api_base, budget=self._budget)
        return bool(self._payments.delete_customer(customer_id))


class InvokedPrivacyDesk:
    """The intake's side of the privacy function: the checked event in, what was done out."""

    def __init__(self, lambda_client: Any, function_name: str) -> None:
        self._lambda = lambda_client
        self._function = function_name

    def handle(self, event: PrivacyRequest, now: datetime) -> str:
        payload = {"detail_type": event.detail_type, "detail": event.model_dump(mode="json"),
                   "received_at": now.isoformat()}
        try:
            response = self._lambda.invoke(FunctionName=self._function, Payload=json.dumps(payload).encode())
        except ClientError as error:
            code = error.response["Error"].get("Code")
            raise PrivacyDeskUnavailable(f"invoking the privacy function: {code}") from error
        body = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            error_type = body.get("errorType", "") if isinstance(body, dict) else ""
            if error_type in TRANSIENT_ERRORS:
                raise PrivacyDeskUnavailable(f"{error_type} in the privacy function")
            raise RuntimeError(f"the privacy function failed: {error_type or 'unknown error'}")
        return str(body["done"])


class PrivacyAdapters(TypedDict):
    """The privacy service's ports, by its parameter names: ``PrivacyService(**privacy_adapters_from(...))``."""

    store: Store
    audit: PrivacyAuditRepository
    payments: StripeCustomers
    executions: LifecycleExecutions
    exports: S3Exports
    booking_site: EventBridgeBookingSite


PRIVACY_ENV = ("PRIVACY_AUDIT_TABLE", "PRIVACY_EXPORTS_BUCKET", "PRIVACY_EXPORTS_KEPT_DAYS",
               "STRIPE_API_KEY_PARAMETER", "BOOKING_EVENTS_BUS", "LIFECYCLE_STATE_MACHINE_ARN",
               "LIFECYCLE_START_SCHEDULE_PREFIX")


def privacy_adapters_from(environ: Mapping[str, str], client: Callable[[str], Any],
                          stripe_key: Callable[[], str]) -> PrivacyAdapters:
    """The privacy service's adapters as the privacy function's environment describes them: for the function
    itself, and for the admin CLI from the deployed function's configuration, so both act on the same resources.
    ``client`` makes a boto3 client by service name; ``stripe_key`` is called only if Stripe is."""
    from medspa.adapters.booking_site import EventBridgeBookingSite
    from medspa.adapters.executions import LifecycleExecutions
    from medspa.adapters.store import Store
    from medspa.adapters.store.audit import PrivacyAuditRepository
    from medspa.adapters.stripe_budget import budget_from_env

    missing = [name for name in PRIVACY_ENV if not environ.get(name)]
    if missing:
        raise KeyError(f"missing from the environment: {', '.join(missing)}")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or ""
    return PrivacyAdapters(
        store=Store.from_env(environ),
        audit=PrivacyAuditRepository.bound(environ["PRIVACY_AUDIT_TABLE"], region,
                                           environ.get("AWS_ENDPOINT_URL_DYNAMODB")),
        payments=StripeCustomers(stripe_key, environ.get("STRIPE_API_BASE") or None, budget_from_env(environ, client)),
        executions=LifecycleExecutions(client("stepfunctions"), environ["LIFECYCLE_STATE_MACHINE_ARN"],
                                       scheduler=client("scheduler"),
                                       schedule_prefix=environ["LIFECYCLE_START_SCHEDULE_PREFIX"]),
        exports=S3Exports(client("s3"), environ["PRIVACY_EXPORTS_BUCKET"],
                          timedelta(days=int(environ["PRIVACY_EXPORTS_KEPT_DAYS"]))),
        booking_site=EventBridgeBookingSite(client("events"), environ["BOOKING_EVENTS_BUS"]),
    )
