"""A discrete-event virtual clock that lets a month of appointments run in seconds, the same way every run.

Step Functions executions run on moto's threads and sleep in Wait states and retry back-offs. Shifting
time forward by each wait is wrong once many executions overlap (waits would add up), and letting the
threads race makes outcomes depend on the scheduler. So every execution thread is an *actor* of this
clock and only one actor runs at a time (it holds the baton):

- an execution that reaches a Wait registers its wake-up time and hands the baton on;
- a Map state's iteration workers are actors too, children of the execution's actor; while they run, the
  Map's actor is *blocked* (no wake-up time) and is released when its pool of iterations ends;
- new executions queue in the order they were started;
- when nothing is runnable, the driver (the thread that owns the clock: a test, the demo) runs its idle
  hooks (event-source pollers, the scheduler), then moves time to the earliest wake-up and releases the
  actors due then, in the order they went to sleep.

Wall-clock reads (``datetime.now()``, ``time.time()``) across the process follow the virtual time through
time-machine, so moto's execution history, SQS visibility timeouts and the fake Stripe's 24-hour
idempotency window all see the same instant.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import time_machine


class IdleHook(Protocol):
    """Work the driver does when every actor is blocked: deliver queued messages, fire schedules."""

    def poll(self, now: datetime) -> bool:
        """Do what is due at ``now``; return True if anything was done (it may have woken actors)."""

    def next_due(self, now: datetime) -> datetime | None:
        """The earliest future instant this hook has work, or None."""


class ClockMisuse(RuntimeError):
    """A thread that is not an actor of the clock tried to sleep on it, or actors block with nothing to release them."""


@dataclass(eq=False)
class Actor:
    name: str
    parent: Actor | None = None
    sleeping_since_seq: int | None = None
    blocked: bool = False
    released_early: bool = False
    cancelled: bool = False
    done: bool = False
    wakeups: int = field(default=0)

    def lineage(self) -> list[Actor]:
        """This actor, the actor that started it (a Map iteration's: the Map's), and so on up."""
        actor: Actor | None = self
        line = []
        while actor is not None:
            line.append(actor)
            actor = actor.parent
        return line


class VirtualClock:
    def __init__(self, start: datetime, *, drive_wall_clock: bool = True) -> None:
        if start.tzinfo is None:
            raise ValueError("the virtual clock starts at an aware UTC datetime")
        self._now = start.astimezone(UTC)
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._ready: deque[Actor] = deque()
        self._sleepers: list[tuple[datetime, int, Actor]] = []
        self._blocked: list[Actor] = []
        self._local = threading.local()
        self._driver = Actor("driver")
        self._running: Actor | None = self._driver
        self._local.actor = self._driver
        self._hooks: list[IdleHook] = []
        self._traveller = time_machine.travel(self._now, tick=False) if drive_wall_clock else None
        self._coordinates = self._traveller.start() if self._traveller else None

    # ------------------------------------------------------------------ reading time
    def now(self) -> datetime:
        return self._now

    def add_idle_hook(self, hook: IdleHook) -> None:
        self._hooks.append(hook)

    # ------------------------------------------------------------------ actors (execution threads)
    def register(self, name: str, *, parent: Actor | None = None) -> Actor:
        """Called by the thread that starts an execution (or a Map iteration worker, with the actor that runs
        the Map as ``parent``), before the new thread exists: actors first run in the order they register."""
        with self._cv:
            actor = Actor(name, parent=parent)
            self._ready.append(actor)
            return actor

    def enter(self, actor: Actor) -> None:
        """First call on the actor's own thread: block until it is this actor's turn."""
        self._local.actor = actor
        with self._cv:
            self._cv.wait_for(lambda: self._running is actor)

    def exit(self) -> None:
        with self._cv:
            actor = self._current()
            actor.done = True
            self._hand_on(actor)

    def sleep(self, seconds: float) -> None:
        self.sleep_until(self._now + timedelta(seconds=seconds))

    def current_actor(self) -> Actor:
        with self._cv:
            return self._current()

    def sleep_until(self, when: datetime) -> None:
        with self._cv:
            actor = self._current()
            if actor is self._driver:
                raise ClockMisuse("the driver advances time with run_until(), it does not sleep")
            if when <= self._now or any(a.cancelled for a in actor.lineage()):
                return
            seq = next(self._seq)
            actor.sleeping_since_seq = seq
            heapq.heappush(self._sleepers, (when, seq, actor))
            self._hand_on(actor)
            self._cv.wait_for(lambda: self._running is actor)

    def block(self) -> None:
        """The running actor gives up the baton with no wake-up time until ``release`` (a Map's actor while its
        iterations run: time may pass, but only the iterations know when the Map goes on)."""
        with self._cv:
            actor = self._current()
            if actor is self._driver:
                raise ClockMisuse("the driver advances time with run_until(), it does not block")
            if actor.released_early:
                actor.released_early = False
                return
            actor.blocked = True
            self._blocked.append(actor)
            self._hand_on(actor)
            self._cv.wait_for(lambda: self._running is actor)

    def release(self, actor: Actor) -> None:
        """Make a blocked actor ready; a release that comes first makes its next ``block`` return at once."""
        with self._cv:
            if actor.done:
                return
            if actor.blocked:
                actor.blocked = False
                self._blocked.remove(actor)
                self._ready.append(actor)
            else:
                actor.released_early = True

    def interrupt(self, actor: Actor) -> None:
        """Wake a sleeping actor now (StopExecution during a Wait ends it at once, as on AWS)."""
        with self._cv:
            self._wake_now(lambda a: a is actor)

    def cancel(self, actor: Actor) -> None:
        """The actor's execution was stopped: wake it and its Map iterations now, and let any later sleep of
        theirs return at once (a stopped run only winds down, it never waits again)."""
        with self._cv:
            actor.cancelled = True
            self._wake_now(lambda a: actor in a.lineage())

    # ------------------------------------------------------------------ the driver
    def run_until(self, until: datetime) -> None:
        """Let everything due up to ``until`` happen, in virtual-time order, then stand at ``until``."""
        until = until.astimezone(UTC)
        while True:
            self._drain()
            if any(hook.poll(self._now) for hook in list(self._hooks)):
                continue
            due = self._next_due()
            if due is None or due > until:
                if until > self._now:
                    self._move_to(until)
                return
            self._advance_to(due)

    def run_for(self, delta: timedelta) -> None:
        self.run_until(self._now + delta)

    def run_until_idle(self, *, horizon: timedelta = timedelta(days=400)) -> None:
        """Run until no actor sleeps and no hook has work, bounded so a runaway loop cannot hang a test.

        A hook's ``next_work`` (when it has one) says which of its dues are work: a daily schedule always has a
        next fire, so it fires on the way to other work but never keeps the clock busy on its own."""
        limit = self._now + horizon
        while True:
            self._drain()
            if any(hook.poll(self._now) for hook in list(self._hooks)):
                continue
            due = self._next_due() if self._next_work() is not None else None
            if due is None:
                if self._blocked:
                    raise ClockMisuse(f"blocked with nothing left to release them: {self.blocked}")
                return
            if due > limit:
                raise TimeoutError(f"still busy at the horizon {limit.isoformat()}: next wake-up {due}")
            self._advance_to(due)

    @property
    def sleeping(self) -> int:
        with self._cv:
            return len(self._sleepers)

    @property
    def blocked(self) -> list[str]:
        with self._cv:
            return [a.name for a in self._blocked]

    def close(self) -> None:
        if self._traveller is not None:
            self._traveller.stop()
            self._traveller = None

    # ------------------------------------------------------------------ internals
    def _current(self) -> Actor:
        """The actor the calling thread works for.

        moto evaluates an execution's program and each Task on child threads of the execution thread
        while it waits for them, so a thread that is no actor itself works for the baton holder.
        """
        actor = getattr(self._local, "actor", None) or self._running
        if actor is None:
            raise ClockMisuse(f"thread {threading.current_thread().name!r} waits on the clock with no actor running")
        if actor.sleeping_since_seq is not None or actor.blocked:
            raise ClockMisuse(
                f"{actor.name}: two branches of one execution wait at once (a Wait or a Retry back-off inside "
                "Parallel branches is not supported by the local cloud; inside Map iterations it is)"
            )
        return actor

    def _wake_now(self, which: Callable[[Actor], bool]) -> None:
        """Wake the chosen sleepers in the order they went to sleep."""
        woken = sorted((s for s in self._sleepers if which(s[2])), key=lambda s: s[1])
        if not woken:
            return
        self._sleepers = [s for s in self._sleepers if not which(s[2])]
        heapq.heapify(self._sleepers)
        for _, _, actor in woken:
            actor.sleeping_since_seq = None
            self._ready.append(actor)

    def _hand_on(self, actor: Actor) -> None:
        if self._running is actor:
            self._running = self._ready.popleft() if self._ready else None
            self._cv.notify_all()

    def _drain(self) -> None:
        """Hand the baton to the queued actors and take it back when none is runnable."""
        with self._cv:
            if self._running is self._driver:
                self._running = self._ready.popleft() if self._ready else None
                self._cv.notify_all()
            self._cv.wait_for(lambda: self._running is None and not self._ready)
            self._running = self._driver

    def _next_due(self) -> datetime | None:
        candidates = [self._sleepers[0][0]] if self._sleepers else []
        candidates += [d for hook in self._hooks if (d := hook.next_due(self._now)) is not None]
        return min(candidates, default=None)

    def _next_work(self) -> datetime | None:
        candidates = [self._sleepers[0][0]] if self._sleepers else []
        candidates += [d for hook in self._hooks
                       if (d := getattr(hook, "next_work", hook.next_due)(self._now)) is not None]
        return min(candidates, default=None)

    def _advance_to(self, when: datetime) -> None:
        with self._cv:
            if when > self._now:
                self._move_to(when)
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, actor = heapq.heappop(self._sleepers)
                actor.sleeping_since_seq = None
                actor.wakeups += 1
                self._ready.append(actor)

    def _move_to(self, when: datetime) -> None:
        self._now = when
        if self._coordinates is not None:
            self._coordinates.move_to(when)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


__all__ = ["Actor", "ClockMisuse", "IdleHook", "VirtualClock", "utc"]
