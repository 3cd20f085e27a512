"""Reads policy packs from TOML files.

Packs are edited by people, so an invalid one must say exactly which file and which field is
wrong (``bijoux.toml: fees.schedule[2].amount: Input should be a valid integer``) instead of
surfacing a stack trace at the first fee charged under it.
"""

from __future__ import annotations

import tomllib
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


def load_pack(path: str | Path) -> PolicyPack:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise PolicyPackError(f"{path.name}: {err}") from err
    try:
        return PolicyPack.model_validate(data)
    except ValidationError as err:
        lines = [f"{path.name}: {_field_path(e['loc'])}: {e['msg']}" for e in err.errors()]
        raise PolicyPackError("\n".join(lines)) from err


def load_packs(directory: str | Path | None = None) -> dict[str, PolicyPack]:
    """All packs in ``directory`` (default: the packs shipped with the layer), by location id.

    The file name must be the location id, so the pack that governs a location is found by
    name and two files can never claim the same location.
    """
    packs: dict[str, PolicyPack] = {}
    for path in sorted(Path(directory or PACKS_DIR).glob("*.toml")):
        pack = load_pack(path)
        if pack.location_id != path.stem:
            raise PolicyPackError(f"{path.name}: location.id: {pack.location_id!r} must match the file name")
        packs[pack.location_id] = pack
    return packs
