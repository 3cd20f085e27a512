"""Published policy versions are immutable and never deleted; ``packs/versions.lock`` holds them to it.

A client accepts a pack's ``policy_version`` when booking, and the visit is judged by that version for as
long as it lives (``PolicyPacks.for_visit``). That promise only holds if a published version's text can
never change under the same name, and never disappear. So the lock maps every version ever published,
``<location_id>@<policy_version>``, to the SHA-256 of its file, and the check (a unit test, and
``python -m medspa.policy.versions check``) fails when

* a locked version's file changed: an edit needs a new ``policy_version`` (any byte counts, comments
  included: what was published is the file, and the hash anyone can recompute with ``sha256sum``);
* a locked version has no file: superseded versions move to ``packs/history``, they are never deleted;
* a pack file's version is not in the lock yet: run ``lock`` so the new version is pinned as published.

Changing a pack, step by step (``make archive-pack LOCATION=...`` and ``make lock-packs`` wrap the first
and last steps):

1. ``python -m medspa.policy.versions archive <location_id>`` copies the current file, unchanged, to
   ``packs/history/<location_id>/<policy_version>.toml``;
2. edit ``packs/<location_id>.toml`` and give it a new ``policy_version``;
3. ``python -m medspa.policy.versions lock`` adds the new version's hash. It refuses to re-hash a
   version already locked, so it cannot be used to bless an edit made without a new version. On the shipped
   packs it also writes ``packs/prevalidated.pickle``, what a cold start loads (``medspa.policy.loader``).

The lock is TOML (one table, written here without a TOML writer: keys and hashes are plain ASCII) so it
reads like the packs it pins.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from medspa.policy import loader
from medspa.policy.loader import HISTORY, PolicyPackError, load_pack, load_packs

LOCK_FILE = "versions.lock"
_HEADER = """\
# Every published policy version and the SHA-256 of its file: <location_id>@<policy_version> = sha256.
# A published version is immutable and never deleted (medspa/policy/versions.py). Do not edit by hand:
# add a new version with `make lock-packs` (python -m medspa.policy.versions lock).
"""


class VersionLockError(ValueError):
    """A published version changed or went missing, or a pack's version is not locked."""


def _root(directory: str | Path | None) -> Path:
    return Path(directory or loader.PACKS_DIR)


def version_key(location_id: str, policy_version: str) -> str:
    return f"{location_id}@{policy_version}"


def pack_files(directory: str | Path | None = None) -> dict[str, Path]:
    """Every pack file, current and superseded, by ``location@version`` (read from the file itself)."""
    root = _root(directory)
    found: dict[str, Path] = {}
    for path in [*sorted(root.glob("*.toml")), *sorted((root / HISTORY).glob("*/*.toml"))]:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            key = version_key(data["location"]["id"], data["policy_version"])
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as err:
            raise PolicyPackError(f"{path.relative_to(root)}: {err}") from err
        if key in found:
            raise VersionLockError(f"{path.relative_to(root)}: {key} is also {found[key].relative_to(root)}; "
                                   "one version, one file")
        found[key] = path
    return found


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_lock(directory: str | Path | None = None) -> dict[str, str]:
    path = _root(directory) / LOCK_FILE
    if not path.exists():
        return {}
    return dict(tomllib.loads(path.read_text(encoding="utf-8")).get("versions", {}))


def _broken(root: Path, locked: dict[str, str], files: dict[str, Path]) -> list[str]:
    """Published versions whose file changed or is gone: nothing but a new version (or a restore) mends these."""
    found: list[str] = []
    for key, digest in sorted(locked.items()):
        path = files.get(key)
        if path is None:
            location, _, version = key.partition("@")
            found.append(f"{key}: published but no file holds it; versions are never deleted: restore it as "
                         f"{HISTORY}/{location}/{version}.toml")
        elif sha256_of(path) != digest:
            found.append(f"{path.relative_to(root)}: {key} changed after it was published; an edit needs a new "
                         "policy_version (and the old file kept in history)")
    return found


def problems(directory: str | Path | None = None) -> list[str]:
    """What breaks the promise, one line each naming the version and the file; empty when all is well."""
    root, locked, files = _root(directory), read_lock(directory), pack_files(directory)
    return _broken(root, locked, files) + [
        f"{path.relative_to(root)}: {key} is not in {LOCK_FILE}; run `make lock-packs`"
        for key, path in sorted(files.items()) if key not in locked]


def lock(directory: str | Path | None = None) -> list[str]:
    """Pin every version not yet locked and return their keys; refuse if any locked one changed or went missing.

    Every file must load and validate first: a version is published as a working pack or not at all.
    """
    root, locked = _root(directory), read_lock(directory)
    load_packs(root)  # validates current and history files, and the history layout
    files = pack_files(directory)
    refused = _broken(root, locked, files)
    if refused:
        raise VersionLockError("\n".join(refused))
    added = {key: sha256_of(path) for key, path in files.items() if key not in locked}
    if added:
        lines = [f'"{key}" = "{digest}"' for key, digest in sorted({**locked, **added}.items())]
        (root / LOCK_FILE).write_text(_HEADER + "\n[versions]\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return sorted(added)


def archive(location_id: str, directory: str | Path | None = None) -> Path:
    """Copy the current pack, byte for byte, to its place in history, before it is edited."""
    root = _root(directory)
    current = root / f"{location_id}.toml"
    pack = load_pack(current)
    target = root / HISTORY / location_id / f"{pack.policy_version}.toml"
    if target.exists():
        if target.read_bytes() != current.read_bytes():
            raise VersionLockError(f"{target.relative_to(root)} already holds {pack.policy_version} with other "
                                   f"content; {current.name} was edited without a new policy_version")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(current, target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medspa.policy.versions",
                                     description="Keep published policy versions immutable (packs/versions.lock).")
    parser.add_argument("--packs", type=Path, default=None, help="the packs directory (default: the shipped packs)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="fail if a published version changed, went missing, or is not locked")
    commands.add_parser("lock", help="pin new versions (refuses to re-hash a published one)")
    keep = commands.add_parser("archive", help="copy a location's current pack into history before editing it")
    keep.add_argument("location_id")
    args = parser.parse_args(argv)
    try:
        if args.command == "archive":
            print(f"kept {archive(args.location_id, args.packs)}")
        elif args.command == "lock":
            added = lock(args.packs)
            print("locked " + ", ".join(added) if added else "nothing new to lock")
            if args.packs is None:  # the shipped packs: what a cold start loads, validated now (medspa.policy.loader)
                current = loader.prevalidated_is_current()  # left alone then: its bytes vary from run to run
                print(f"{loader.PREVALIDATED.name} is current" if current else f"wrote {loader.write_prevalidated().name}")
        else:
            found = problems(args.packs)
            if found:
                print("\n".join(found), file=sys.stderr)
                return 1
            print("every published policy version is intact")
    except (VersionLockError, PolicyPackError) as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
