"""Reads policy packs from TOML files.

Packs are edited by people, so an invalid one must say exactly which file and which field is
wrong (``bijoux.toml: fees.schedule[2].amount: Input should be a valid integer``) instead of
surfacing a stack trace at the first fee charged under it.

A location's pack changes over time, but a visit is judged by the version its client accepted when
booking (DESIGN: "that is the policy the client accepted"). So the current pack is
``packs/<location_id>.toml`` and every version it superseded is kept, byte for byte, as
``packs/history/<location_id>/<policy_version>.toml``; ``packs/versions.lock`` pins each published
version's file (``medspa.policy.versions``). :class:`PolicyPacks` serves both: by location it is the
current pack (what a new booking accepts, and what governs the client and the location as a whole),
and :meth:`PolicyPacks.for_visit` is the version one appointment was booked under.

Validated at build time, loaded ready at cold start: validating every pack (and the holiday calendars its
special days name) costs a cold start about 100 ms, so ``make lock-packs`` also writes the shipped packs,
validated, to ``packs/prevalidated.pickle`` (:func:`write_prevalidated`), headed by a fingerprint of what they
were made from: every pack file, the code that validates them (this package and ``medspa.money``) and the
pydantic version. ``load_packs()`` loads that file when its fingerprint is the current one, and
validates the TOML files as before when it is not, so a stale file costs time, never a wrong policy; a test
fails the build when it is stale (``tests/unit/test_policy_packs.py``). The file is this package's own
output, read only from beside this module (pickle runs whatever a file says: never load one from elsewhere).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from medspa.policy.schema import PolicyPack

PACKS_DIR = Path(__file__).parent / "packs"
PREVALIDATED = PACKS_DIR / "prevalidated.pickle"
# The code whose classes the prevalidated packs are made of, or that decides what a valid pack is.
_VALIDATING_SOURCES = (Path(__file__).parent, Path(__file__).parents[1] / "money.py")
HISTORY = "history"  # PACKS_DIR / HISTORY / <location_id> / <policy_version>.toml: the versions a pack superseded
UNKNOWN_VERSION = "unknown"  # what the fold records for a booking at a location it had no pack for


class PolicyPackError(ValueError):
    """A pack file is unreadable, invalid, or clashes with another pack."""


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "<pack>"


def load_pack(path: str | Path, today: date | None = None) -> PolicyPack:
    """Read and validate one pack; with ``today``, also refuse one whose dated overrides have all
    lapsed (:meth:`Cancellation.lapsed_overrides`).

    ``today`` is the caller's: this package never reads a clock. The tests and CI pass the real
    date, so a lapsing pack fails the build; the Lambda functions pass none, so a running system
    keeps enforcing the pack it was deployed with instead of failing every cold start at midnight.
    """
    import tomllib  # here: a cold start loads the packs validated at build time (:data:`PREVALIDATED`)

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise PolicyPackError(f"{path.name}: {err}") from err
    try:
        pack = PolicyPack.model_validate(data)
    except ValidationError as err:
        lines = [f"{path.name}: {_field_path(e['loc'])}: {e['msg']}" for e in err.errors()]
        raise PolicyPackError("\n".join(lines)) from err
    lapsed = pack.cancellation.lapsed_overrides(today) if today is not None else []
    if lapsed:
        overrides = pack.cancellation.overrides
        raise PolicyPackError("\n".join(
            f"{path.name}: cancellation.overrides[{i}].{'last' if overrides[i].last else 'first'}: "
            f"{overrides[i].name!r} ended on {overrides[i].last_day}, and no dated override is still ahead of "
            f"{today}; give days that come back every year a calendar rule and remove the ones that are over"
            for i in lapsed))
    return pack


class Visit(Protocol):
    """An appointment as far as its policy is concerned: where, and under which version it was booked."""

    @property
    def location_id(self) -> str: ...

    @property
    def policy_version(self) -> str: ...


class PolicyPacks(Mapping[str, PolicyPack]):
    """The current pack of every location, plus every version those packs superseded.

    As a mapping it is the current pack by location id, so code about a location or a client (keyword
    sets, contact lines, tenants, the requirements of a booking being made now) reads ``packs[location]``.
    Code about one appointment reads :meth:`for_visit`: reminders, the confirmation deadline, the no-show
    time, late-cancel and late-reschedule judgements, fees and their settlement order, whether a violation
    is a strike, the prepayment credit. That is the policy the client accepted; a spa's later edit never
    changes the rules of a visit already booked.
    """

    def __init__(self, current: Mapping[str, PolicyPack], superseded: Iterable[PolicyPack] = ()) -> None:
        self._current = dict(current)
        self._versions = {(p.location_id, p.policy_version): p for p in (*superseded, *self._current.values())}

    @classmethod
    def of(cls, packs: Mapping[str, PolicyPack]) -> PolicyPacks:
        """Packs as given, or a plain ``{location: pack}`` (tests, tools) taken as current packs with no history."""
        return packs if isinstance(packs, PolicyPacks) else cls(packs)

    def __getitem__(self, location_id: str) -> PolicyPack:
        return self._current[location_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current)

    def __len__(self) -> int:
        return len(self._current)

    def __repr__(self) -> str:
        return f"PolicyPacks({sorted(f'{loc}@{ver}' for loc, ver in self._versions)})"

    def accepted(self, location_id: str, policy_version: str | None) -> PolicyPack:
        """The version a client accepted at ``location_id``.

        A version this deployment does not hold falls back to the location's current pack, which is what
        a visit was judged by before versions were kept: ``unknown`` (booked where no pack was loaded), or a
        version older than the retained history. Published versions are never deleted
        (``medspa.policy.versions`` fails the build if one goes missing), so for a visit booked under a
        shipped pack the fallback does not happen. ``KeyError`` when the location has no pack at all.
        """
        kept = self._versions.get((location_id, policy_version or ""))
        return kept if kept is not None else self._current[location_id]

    def for_visit(self, visit: Visit) -> PolicyPack:
        """The pack ``visit`` is judged by: the version its client accepted when booking."""
        return self.accepted(visit.location_id, visit.policy_version)

    def knows(self, location_id: str, policy_version: str) -> bool:
        return (location_id, policy_version) in self._versions

    def versions(self, location_id: str) -> tuple[str, ...]:
        """Every version held for the location, sorted by name (the current one included)."""
        return tuple(sorted(v for loc, v in self._versions if loc == location_id))


def _history(directory: Path, current: Mapping[str, PolicyPack]) -> list[PolicyPack]:
    """Superseded versions, each where its name says: ``history/<location_id>/<policy_version>.toml``.

    They are validated like a current pack but never against ``today``: a lapsed dated override in an old
    version is history, and that version still judges the visits booked under it.
    """
    superseded: list[PolicyPack] = []
    for path in sorted((directory / HISTORY).glob("*/*.toml")):
        pack = load_pack(path)
        where = f"{HISTORY}/{path.parent.name}/{path.name}"
        if pack.location_id != path.parent.name:
            raise PolicyPackError(f"{where}: location.id: {pack.location_id!r} must match the folder name")
        if pack.policy_version != path.stem:
            raise PolicyPackError(f"{where}: policy_version: {pack.policy_version!r} must match the file name")
        now_current = current.get(pack.location_id)
        if now_current is not None and now_current.policy_version == pack.policy_version:
            raise PolicyPackError(f"{where}: policy_version: {pack.policy_version!r} is the current version of "
                                  f"{pack.location_id}.toml; a new edit needs a new policy_version")
        superseded.append(pack)
    return superseded


def load_packs(directory: str | Path | None = None, today: date | None = None) -> PolicyPacks:
    """All packs in ``directory`` (default: the packs shipped with the layer), by location id, with the
    versions they superseded.

    The file name must be the location id, so the pack that governs a location is found by
    name and two files can never claim the same location. History is loaded and validated here too, so a
    broken old version fails the deploy, not a fee years later. The shipped packs without ``today`` (what a
    function loads at cold start) come validated from the build when that is current (:data:`PREVALIDATED`).
    """
    if directory is None and today is None:
        ready = _prevalidated()
        if ready is not None:
            return ready
    return _validated(Path(directory or PACKS_DIR), today)


def _validated(root: Path, today: date | None) -> PolicyPacks:
    packs: dict[str, PolicyPack] = {}
    for path in sorted(root.glob("*.toml")):
        pack = load_pack(path, today)
        if pack.location_id != path.stem:
            raise PolicyPackError(f"{path.name}: location.id: {pack.location_id!r} must match the file name")
        packs[pack.location_id] = pack
    return PolicyPacks(packs, _history(root, packs))


def packs_fingerprint(directory: str | Path | None = None) -> str:
    """What validated packs were made from: the pack files, the code that validated them, and pydantic's version
    (whose models the file holds). The holidays library only decides whether a pack is valid, and nothing it
    computes is kept in the file; the test that the file is current validates the TOML files again anyway.

    Sources are hashed by their path under ``medspa``, so a copy of the layer elsewhere (the build) has the same
    fingerprint. About a millisecond at cold start."""
    from pydantic.version import VERSION

    root = Path(directory or PACKS_DIR)
    package = Path(__file__).parents[1]
    digest = hashlib.sha256(f"pydantic {VERSION}\n".encode())
    files = [("packs", path.relative_to(root)) for path in sorted(root.rglob("*.toml"))]
    for source in _VALIDATING_SOURCES:
        found = sorted(source.glob("*.py")) if source.is_dir() else [source]
        files += [("medspa", path.relative_to(package)) for path in found]
    for kind, name in files:
        path = (root if kind == "packs" else package) / name
        digest.update(f"{kind}/{name.as_posix()}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def write_prevalidated(target: Path = PREVALIDATED) -> Path:
    """Validate the shipped packs and write them, ready to load, under their fingerprint (``make lock-packs``)."""
    packs = _validated(PACKS_DIR, None)
    target.write_bytes(packs_fingerprint().encode() + b"\n" + pickle.dumps(packs, protocol=5))
    return target


def prevalidated_is_current(target: Path = PREVALIDATED) -> bool:
    try:
        head = target.read_bytes()[:64]
    except OSError:
        return False
    return head == packs_fingerprint().encode()


def _prevalidated() -> PolicyPacks | None:
    """The shipped packs as the build validated them, or ``None`` when the file is missing or not current."""
    try:
        data = PREVALIDATED.read_bytes()
    except OSError:
        return None
    fingerprint, _, body = data.partition(b"\n")
    if fingerprint != packs_fingerprint().encode():
        return None
    packs = _PackUnpickler(io.BytesIO(body)).load()
    return packs if isinstance(packs, PolicyPacks) else None


class _PackUnpickler(pickle.Unpickler):
    """Unpickles packs and nothing else: a class from anywhere but the policy package, ``medspa.money`` and the
    date and time types is refused (``UnpicklingError``), so the file can only ever hold what packs are made of."""

    _MODULES = frozenset({"datetime", "zoneinfo", "medspa.money"})

    def find_class(self, module: str, name: str) -> type:
        if module in self._MODULES or module.startswith("medspa.policy."):
            found: type = super().find_class(module, name)
            return found
        raise pickle.UnpicklingError(f"{PREVALIDATED.name}: {module}.{name} is not part of a policy pack")
