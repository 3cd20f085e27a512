"""The discrete-event clock on plain threads: ordering, interruption, blocking and misuse, without moto."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

from localcloud.clock import ClockMisuse, VirtualClock, utc

T0 = utc(2026, 1, 1)


def _spawn(clock: VirtualClock, name: str, body, parent=None) -> threading.Thread:
    actor = clock.register(name, parent=parent)

    def run() -> None:
        clock.enter(actor)
        try:
            body()
        finally:
            clock.exit()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.actor = actor  # type: ignore[attr-defined]
    return thread


@pytest.fixture
def clock():
    clock = VirtualClock(T0, drive_wall_clock=False)
    yield clock
    clock.close()


def test_actors_wake_in_time_order_then_in_the_order_they_slept(clock):
    log: list[tuple[str, datetime]] = []

    def sleeper(name: str, hours: int):
        def body():
            clock.sleep(hours * 3600)
            log.append((name, clock.now()))
        return body

    for name, hours in [("c", 5), ("a", 1), ("b", 5), ("d", 2)]:
        _spawn(clock, name, sleeper(name, hours))
    clock.run_until_idle()
    assert log == [("a", T0 + timedelta(hours=1)), ("d", T0 + timedelta(hours=2)),
                   ("c", T0 + timedelta(hours=5)), ("b", T0 + timedelta(hours=5))]


def test_only_one_actor_runs_at_a_time(clock):
    inside, overlaps = [0], [0]
    lock = threading.Lock()

    def body():
        for _ in range(3):
            with lock:
                inside[0] += 1
                overlaps[0] = max(overlaps[0], inside[0])
            with lock:
                inside[0] -= 1
            clock.sleep(60)

    for i in range(8):
        _spawn(clock, f"a{i}", body)
    clock.run_until_idle()
    assert overlaps[0] == 1
    assert clock.now() == T0 + timedelta(minutes=3)


def test_interrupt_wakes_a_sleeper_at_the_current_instant(clock):
    woke: list[datetime] = []
    thread = _spawn(clock, "rescheduled", lambda: (clock.sleep(48 * 3600), woke.append(clock.now())))
    clock.run_for(timedelta(hours=3))
    clock.interrupt(thread.actor)
    clock.run_for(timedelta(0))
    assert woke == [T0 + timedelta(hours=3)]
    assert clock.sleeping == 0


def test_a_sleep_into_the_past_returns_at_once(clock):
    seen: list[datetime] = []
    _spawn(clock, "late", lambda: (clock.sleep_until(T0 - timedelta(hours=1)), seen.append(clock.now())))
    clock.run_for(timedelta(0))
    assert seen == [T0]


def test_the_driver_cannot_sleep_and_time_must_be_aware(clock):
    with pytest.raises(ClockMisuse):
        clock.sleep(1)
    with pytest.raises(ValueError):
        VirtualClock(datetime(2026, 1, 1), drive_wall_clock=False)


def test_run_until_idle_refuses_to_spin_past_its_horizon(clock):
    _spawn(clock, "far", lambda: clock.sleep(timedelta(days=30).total_seconds()))
    with pytest.raises(TimeoutError):
        clock.run_until_idle(horizon=timedelta(days=1))
    clock.run_until_idle()


def _map(clock: VirtualClock, log: list, sleeps: dict[str, float]):
    """A Map's actor in miniature: start one child per item, block until the last one ends, then go on."""
    def body():
        parent = clock.current_actor()
        left = [len(sleeps)]

        def child(name: str, seconds: float):
            def run():
                clock.sleep(seconds)
                log.append((name, clock.now()))
                left[0] -= 1
                if left[0] == 0:
                    clock.release(parent)
            return run

        for name, seconds in sleeps.items():
            _spawn(clock, name, child(name, seconds), parent=parent)
        clock.block()
        log.append(("map", clock.now()))
    return body


def test_a_blocked_actor_gives_up_the_baton_until_released_and_its_children_take_turns(clock):
    log: list[tuple[str, datetime]] = []
    _spawn(clock, "map", _map(clock, log, {"slow": 300, "fast": 60, "mid": 120}))
    _spawn(clock, "other", lambda: (clock.sleep(90), log.append(("other", clock.now()))))
    clock.run_until_idle()
    assert log == [("fast", T0 + timedelta(seconds=60)), ("other", T0 + timedelta(seconds=90)),
                   ("mid", T0 + timedelta(seconds=120)), ("slow", T0 + timedelta(seconds=300)),
                   ("map", T0 + timedelta(seconds=300))]
    assert clock.blocked == []


def test_a_release_before_the_block_makes_the_block_return_at_once(clock):
    seen: list[datetime] = []

    def body():
        clock.release(clock.current_actor())
        clock.block()
        seen.append(clock.now())

    _spawn(clock, "early", body)
    clock.run_until_idle()
    assert seen == [T0]


def test_cancel_wakes_the_children_now_and_their_later_sleeps_return_at_once(clock):
    log: list[tuple[str, datetime]] = []
    thread = _spawn(clock, "map", _map(clock, log, {"a": 3600, "b": 7200}))
    clock.run_for(timedelta(minutes=10))
    assert clock.blocked == ["map"] and clock.sleeping == 2
    clock.cancel(thread.actor)
    clock.run_for(timedelta(0))
    stopped = T0 + timedelta(minutes=10)
    assert log == [("a", stopped), ("b", stopped), ("map", stopped)]
    assert clock.sleeping == 0 and clock.blocked == []


def test_actors_blocked_with_nothing_to_release_them_fail_loudly(clock):
    thread = _spawn(clock, "forgotten", clock.block)
    with pytest.raises(ClockMisuse, match="forgotten"):
        clock.run_until_idle()
    assert clock.blocked == ["forgotten"]
    clock.release(thread.actor)
    clock.run_until_idle()
    thread.join(timeout=5)
    assert not thread.is_alive()
