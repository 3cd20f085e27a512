"""Reads policy packs from TOML files.

Packs are edited by people, so an invalid one must say exactly which file and which field is
wrong (``bijoux.toml: fees.schedule[2].amount: Input should be a valid integer``) instead of
surfacing a stack trace at the first fee charged under it.
"""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from medspa.policy.schema import PolicyPack

PACKS_DIR = Path(__file__).parent / "packs"


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


def load_packs(directory: str | Path | None = None, today: date | None = None) -> dict[str, PolicyPack]:
    """All packs in ``directory`` (default: the packs shipped with the layer), by location id.

    The file name must be the location id, so the pack that governs a location is found by
    name and two files can never claim the same location.
    """
    packs: dict[str, PolicyPack] = {}
    for path in sorted(Path(directory or PACKS_DIR).glob("*.toml")):
        pack = load_pack(path, today)
        if pack.location_id != path.stem:
            raise PolicyPackError(f"{path.name}: location.id: {pack.location_id!r} must match the file name")
        packs[pack.location_id] = pack
    return packs
