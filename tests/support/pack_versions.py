"""A spa publishing a new version of its pack, the documented way (archive, edit and bump, lock), in a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

from medspa.policy import versions
from medspa.policy.loader import PACKS_DIR, load_pack, load_packs

BIJOUX_V1 = load_packs()["bijoux"].policy_version
BIJOUX_V2 = "bijoux-2026-03-09.1"

# Hypothetical, not the spa's: Bijoux relaxes its window to 24 hours, reminds 24 hours ahead instead of 48, and
# raises the short-injection fee to $80.
_BIJOUX_V2_EDITS = (
    ('name = "48h"\nhours_before = 48', 'name = "24h"\nhours_before = 24'),
    ("window_hours = 48\ncovers", "window_hours = 24\ncovers"),
    ("max_minutes = 30\namount = 5000", "max_minutes = 30\namount = 8000"),
)


def copy_of_the_shipped_packs(into: Path) -> Path:
    """The shipped packs, locked afresh: what these tests publish next does not depend on whether the shipped
    lock is current (``test_policy_versions`` checks that)."""
    packs_dir = Path(shutil.copytree(PACKS_DIR, into / "packs"))
    (packs_dir / versions.LOCK_FILE).unlink(missing_ok=True)
    versions.lock(packs_dir)
    return packs_dir


def publish_bijoux(packs_dir: Path, version: str, *edits: tuple[str, str]) -> None:
    """Bijoux's pack edited (each ``(old, new)`` found exactly once) and published as ``version``: the current
    file kept in history, the edit under the new version, the version locked."""
    versions.archive("bijoux", packs_dir)
    path = packs_dir / "bijoux.toml"
    text = path.read_text(encoding="utf-8")
    current = f'policy_version = "{load_pack(path).policy_version}"'
    for old, new in ((current, f'policy_version = "{version}"'), *edits):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    assert versions.lock(packs_dir) == [f"bijoux@{version}"]


def publish_bijoux_v2(packs_dir: Path) -> None:
    publish_bijoux(packs_dir, BIJOUX_V2, *_BIJOUX_V2_EDITS)
