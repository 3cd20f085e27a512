"""Generated scenarios are valid scenario files, the same for a seed, and carry the outcome mix they promise."""

from __future__ import annotations

from collections import Counter

from localcloud.generate import generated_scenario
from localcloud.scenario import validate_scenario


def test_the_same_size_and_seed_give_the_same_file_and_another_seed_another() -> None:
    assert generated_scenario(30, seed=3) == generated_scenario(30, seed=3)
    assert generated_scenario(30, seed=3)["events"] != generated_scenario(30, seed=4)["events"]


def test_a_generated_scenario_passes_the_checks_the_runner_makes_before_deploying() -> None:
    validate_scenario(generated_scenario(200, seed=11))


def test_every_appointment_is_booked_once_and_ends_in_one_outcome_of_the_mix() -> None:
    scenario = generated_scenario(300, seed=5)
    by_type = Counter(e["detail_type"] for e in scenario["events"])
    assert by_type["AppointmentBooked"] == 300
    ended = (by_type["AppointmentCompleted"] + by_type["AppointmentCancelled"]
             + by_type["AppointmentMarkedNoShow"])
    assert ended == 300
    assert by_type["AppointmentConfirmed"] > 0 and by_type["AppointmentRescheduled"] > 0
    versions: dict[str, list[int]] = {}
    for event in scenario["events"]:
        versions.setdefault(event["detail"]["appointment_id"], []).append(event["detail"]["booking_version"])
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    assert [e["at"] for e in scenario["events"]] == sorted(e["at"] for e in scenario["events"])
