"""Each function's settings fail at cold start naming what is missing or malformed, never at the first event."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from medspa.adapters.factory import Adapters, adapters_for
from medspa.adapters.settings import IngestSettings, LifecycleSettings, SettlementSettings

TABLES = {"CLIENTS_TABLE": "medspa-clients", "APPOINTMENTS_TABLE": "medspa-appointments", "LEDGER_TABLE": "medspa-ledger",
          "CONSENT_TABLE": "medspa-consent",
          "MEMBERSHIPS_TABLE": "medspa-memberships", "COURSES_TABLE": "medspa-courses",
          "DUE_INDEX_SHARDS": "4", "AWS_REGION": "us-east-1"}
LIFECYCLE = {**TABLES, "BOOKING_EVENTS_BUS": "medspa-booking-events",
             "SMS_OUTBOX_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/medspa-outbox-sms",
             "EMAIL_OUTBOX_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/medspa-outbox-email",
             "LIFECYCLE_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:lifecycle",
             "UNSUBSCRIBE_URL": "https://api.example.com/unsubscribe", "CONFIRM_URL": "https://api.example.com/confirm",
             "UNSUBSCRIBE_SIGNING_KEY_PARAMETER": "/medspa/unsubscribe-key"}

STRIPE_BUDGET = {"STRIPE_BUDGET_TABLE": "medspa-stripe-budget", "STRIPE_REQUESTS_PER_SECOND": "25",
                 "STRIPE_DRAFTS_SHARE": "0.5"}


@pytest.fixture
def environment(monkeypatch):
    def set_to(values: dict[str, str]) -> None:
        for name in {*LIFECYCLE, *STRIPE_BUDGET, "AWS_DEFAULT_REGION", "STRIPE_API_BASE", "INTAKE_MAX_RECEIVE_COUNT"}:
            monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
    return set_to


def test_a_complete_environment_gives_the_function_its_settings(environment) -> None:
    environment(LIFECYCLE)
    settings = LifecycleSettings()
    assert (settings.outbox_queues()["sms"], settings.tables().ledger) == (LIFECYCLE["SMS_OUTBOX_QUEUE_URL"],
                                                                            "medspa-ledger")


@pytest.mark.parametrize(("missing", "field"), [("SMS_OUTBOX_QUEUE_URL", "sms_outbox_queue_url"),
                                                ("LEDGER_TABLE", "ledger_table"),
                                                ("AWS_REGION", "AWS_REGION")])
def test_a_missing_variable_fails_the_cold_start_with_its_name(environment, missing, field) -> None:
    environment({k: v for k, v in LIFECYCLE.items() if k != missing})
    with pytest.raises(ValidationError) as refused:
        LifecycleSettings()
    assert field in str(refused.value)


def test_a_malformed_variable_fails_with_its_name_and_an_empty_optional_one_is_unset(environment) -> None:
    environment({**LIFECYCLE, "CONFIRM_URL": "http://plain.example.com/confirm"})
    with pytest.raises(ValidationError, match="confirm_url"):
        LifecycleSettings()
    environment({**TABLES, "BOOKING_EVENTS_BUS": "bus", "LIFECYCLE_STATE_MACHINE_ARN": "arn:x",
                 "QUARANTINE_QUEUE_URL": "https://sqs/q", "PRIVACY_FUNCTION_NAME": "privacy",
                 "INTAKE_MAX_RECEIVE_COUNT": "five"})
    with pytest.raises(ValidationError, match="intake_max_receive_count"):
        IngestSettings()
    environment({**TABLES, **STRIPE_BUDGET, "BOOKING_EVENTS_BUS": "bus", "STRIPE_API_KEY_PARAMETER": "/stripe",
                 "STRIPE_API_BASE": ""})
    assert SettlementSettings().stripe_api_base is None
    environment({**TABLES, **STRIPE_BUDGET, "BOOKING_EVENTS_BUS": "bus", "STRIPE_API_KEY_PARAMETER": "/stripe",
                 "STRIPE_DRAFTS_SHARE": "1"})  # drafts may never have the whole budget: fees would starve
    with pytest.raises(ValidationError, match="stripe_drafts_share"):
        SettlementSettings()


class Client:
    def __init__(self, service: str) -> None:
        self.service = service

    def publish(self) -> str:
        return f"{self.service}.publish"


def test_adapters_are_made_once_per_function_and_only_when_first_used(environment) -> None:
    environment(LIFECYCLE)
    made: list[str] = []
    adapters = Adapters(LifecycleSettings(), client=lambda service: made.append(service) or Client(service))
    assert made == []
    assert adapters.booking_site is adapters.booking_site and adapters.client("sns") is adapters.client("sns")
    assert made == []  # wired, not yet called: a cold start makes no client
    assert adapters.client("sns").publish() == "sns.publish" and adapters.client("sns").publish() == "sns.publish"
    assert made == ["sns"]
    assert adapters_for(LifecycleSettings()) is adapters_for(LifecycleSettings())


def test_a_refused_environment_is_quoted_only_by_the_variables_settings_read(environment, monkeypatch) -> None:
    """The error names the field and may show the settings' own values, never another variable's (Lambda's
    environment holds the session's credentials)."""
    environment({k: v for k, v in LIFECYCLE.items() if k != "EMAIL_OUTBOX_QUEUE_URL"})
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-logs")
    with pytest.raises(ValidationError) as refused:
        LifecycleSettings()
    assert "email_outbox_queue_url" in str(refused.value)
    read = refused.value.errors()[0]["input"]
    assert read["ledger_table"] == "medspa-ledger" and "not-for-logs" not in read.values()
