"""Regenerate docs/events/ (JSON Schemas and examples) from the booking-site event models.

Run after changing anything in ``medspa.events``:

    .venv/bin/python tools/publish_event_schemas.py          # write
    .venv/bin/python tools/publish_event_schemas.py --check  # exit 1 if docs/events is stale

``tests/unit/test_event_catalogue.py`` performs the same comparison, so a stale copy fails the tests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "shared" / "python"))

from medspa.events.schemas import render  # noqa: E402 - after the path it lives on

OUT = ROOT / "docs" / "events"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale: list[str] = []
    files = render()
    for relative, text in files.items():
        path = OUT / relative
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(relative)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    # Files for detail-types that no longer exist would mislead a booking site.
    known = set(files) | {"README.md"}
    orphans = [
        str(p.relative_to(OUT)) for p in OUT.rglob("*.json") if str(p.relative_to(OUT)) not in known
    ] if OUT.exists() else []
    if args.check:
        for relative in stale + orphans:
            print(f"stale: docs/events/{relative}", file=sys.stderr)
        return 1 if stale or orphans else 0
    for relative in orphans:
        (OUT / relative).unlink()
        print(f"removed docs/events/{relative}")
    print(f"wrote {len(files)} files to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
