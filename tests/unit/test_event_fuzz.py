"""Hostile input against the catalogue's parser: mutated, valid-at-the-edge and random events.

Whatever arrives, the parser either returns a typed detail or raises ``InvalidBookingEvent`` naming a
field of the event, without repeating any of the event's text; a valid event is never refused.
``MEDSPA_FUZZ_EVENTS`` sets how many events are tried in all (``make fuzz``: 10,000); the figures are
printed at the end of the module (``pytest -s``).
"""

from __future__ import annotations

import copy
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medspa.events import DETAIL_TYPES
from medspa.events.examples import EXAMPLES
from tests.support.hostile_events import Tally, as_text, json_values, mutated_events, valid_events

EVENTS = int(os.environ.get("MEDSPA_FUZZ_EVENTS", "1000"))
SHARES = {"mutated": 0.7, "valid": 0.15, "random": 0.15}
tally = Tally()


def budget(share: str) -> settings:
    return settings(max_examples=max(1, round(EVENTS * SHARES[share])), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield
    print(f"\n{tally.line()}")


@pytest.mark.parametrize("detail_type", DETAIL_TYPES)
def test_every_unmutated_example_parses_as_an_object_and_as_text(detail_type: str) -> None:
    event = copy.deepcopy(EXAMPLES[detail_type])
    assert tally.judge(event, valid=True) == []
    assert tally.judge(as_text(event), valid=True) == []


@budget("mutated")
@given(event=mutated_events())
def test_mutated_events_are_parsed_or_refused_by_field_without_echo(event: object) -> None:
    assert tally.judge(event, valid=False) == []


@budget("valid")
@given(event=valid_events(), text=st.booleans())
def test_valid_events_at_the_edges_of_every_bound_are_never_lost(event: dict, text: bool) -> None:
    assert tally.judge(as_text(event) if text else event, valid=True) == []


envelopes = st.fixed_dictionaries(
    {"source": st.sampled_from(["booking-site", "booking-site.acme"]), "detail-type": st.sampled_from(DETAIL_TYPES),
     "detail": json_values},
    optional={"resources": json_values, "time": json_values},
)


@budget("random")
@given(event=st.one_of(json_values, envelopes, envelopes.map(as_text), st.text(), st.binary(max_size=64)))
def test_random_json_and_bytes_are_refused_by_field_without_echo(event: object) -> None:
    assert tally.judge(event, valid=False) == []
