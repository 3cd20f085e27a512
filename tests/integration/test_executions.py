"""Execution naming and idempotent starts against the real AppointmentLifecycle in the local cloud."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localcloud.cloud import LocalCloud
from localcloud.clock import utc
from medspa.adapters.executions import MAX_NAME, MAX_SCHEDULE_NAME, LifecycleExecutions, execution_name, start_schedule_name
from medspa.adapters.store import AppointmentBooking, Store, TableNames
from medspa.domain.appointment import Service
from medspa.money import Money

ALLOWED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def test_a_plain_id_reads_as_its_spa_and_itself_with_its_version():
    assert execution_name("bijoux#apt-1001", 3) == "bijoux.apt-1001-v3"


def test_two_spas_with_the_same_booking_site_id_get_different_runs():
    assert execution_name("bijoux#apt-1", 1) != execution_name("glow#apt-1", 1)
    assert execution_name("a#b.c", 1) != execution_name("a-b#c", 1)


SPAS = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)


@settings(derandomize=True, max_examples=300)
@given(SPAS, st.text(min_size=1, max_size=300), SPAS, st.text(min_size=1, max_size=300), st.integers(1, 10**9))
def test_names_are_short_legal_and_distinct_for_distinct_ids(spa_a, a, spa_b, b, version):
    a, b = f"{spa_a}#{a}", f"{spa_b}#{b}"
    name_a, name_b = execution_name(a, version), execution_name(b, version)
    assert len(name_a) <= MAX_NAME and set(name_a) <= ALLOWED
    assert name_a.endswith(f"-v{version}")
    if a != b:
        assert name_a != name_b


@settings(derandomize=True, max_examples=300)
@given(SPAS, st.text(min_size=1, max_size=300), SPAS, st.text(min_size=1, max_size=300), st.integers(1, 10**9))
def test_run_start_schedules_are_named_for_their_run_within_64_characters_and_distinct(spa_a, a, spa_b, b, version):
    """A schedule name is at most 64 characters of the same alphabet, so a long run name is cut and hashed."""
    name_a = start_schedule_name("medspa-prod-run-", execution_name(f"{spa_a}#{a}", version))
    name_b = start_schedule_name("medspa-prod-run-", execution_name(f"{spa_b}#{b}", version))
    assert len(name_a) <= MAX_SCHEDULE_NAME and set(name_a) <= ALLOWED and name_a.startswith("medspa-prod-run-")
    if execution_name(f"{spa_a}#{a}", version) != execution_name(f"{spa_b}#{b}", version):
        assert name_a != name_b
    assert start_schedule_name("medspa-dev-run-", "bijoux.apt-1-v1") == "medspa-dev-run-bijoux.apt-1-v1"


@pytest.fixture
def lifecycle():
    with LocalCloud(utc(2026, 3, 5, 15)) as cloud:
        cloud.deploy({"LogLevel": "WARNING"})
        yield cloud, LifecycleExecutions(cloud.client("stepfunctions"),
                                         cloud.state_machine_arn("AppointmentLifecycleStateMachine"))


def test_a_duplicate_start_returns_the_same_execution(lifecycle):
    cloud, executions = lifecycle
    first = executions.start("bijoux#apt-9", 1)
    again = executions.start("bijoux#apt-9", 1)
    assert (again.name, again.arn) == (first.name, first.arn)
    listed = cloud.client("stepfunctions").list_executions(
        stateMachineArn=cloud.state_machine_arn("AppointmentLifecycleStateMachine"))["executions"]
    assert [e["name"] for e in listed] == ["bijoux.apt-9-v1"]
    cloud.run_for(timedelta(0))


def test_stop_during_the_wait_records_the_cause_an_admin_reads(lifecycle):
    cloud, executions = lifecycle
    store = Store(TableNames.from_env(cloud.function_environment("LifecycleFunction")), region=cloud.region)
    store.appointments.upsert_from_booking(AppointmentBooking(
        appointment_id="bijoux#apt-10", client_id="bijoux#c-1", location_id="bijoux", policy_version="bijoux-2024-04-01.1",
        service=Service(name="Consultation", category="consultation", duration_minutes=30,
                        price=Money(amount=0, currency="USD")),
        starts_at=utc(2026, 3, 12, 15), booking_version=1, event_id="e-1"), now=cloud.now())
    started = executions.start("bijoux#apt-10", 1)
    cloud.run_for(timedelta(hours=2))
    assert executions.stop(started.arn, error="Rescheduled", cause="Booking version 2 moved the visit")
    cloud.run_for(timedelta(0))
    described = cloud.client("stepfunctions").describe_execution(executionArn=started.arn)
    assert described["status"] == "ABORTED"
    assert described["stopDate"] == utc(2026, 3, 5, 17)
    history = cloud.client("stepfunctions").get_execution_history(executionArn=started.arn)["events"]
    aborted = next(e for e in history if e["type"] == "ExecutionAborted")["executionAbortedEventDetails"]
    assert aborted == {"error": "Rescheduled", "cause": "Booking version 2 moved the visit"}


def test_an_execution_for_an_unknown_appointment_fails_with_a_named_error(lifecycle):
    cloud, executions = lifecycle
    started = executions.start("bijoux#apt-missing", 1)
    cloud.run_for(timedelta(0))
    described = cloud.client("stepfunctions").describe_execution(executionArn=started.arn)
    assert described["status"] == "FAILED"
    assert described["error"] == "AppointmentNotFound"
