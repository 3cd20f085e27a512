"""The shared package's layers only point down (``../shared/DESIGN.md``), and the pure ones touch no cloud.

money -> policy -> domain -> events, messages -> ports -> adapters -> services. A module may import its own layer
and the layers below it, never one above: a state type the fold needs lives in ``domain``, not in the store, and the pack
schema's money comes from ``medspa.money``, not from ``domain``. The pure layers read no environment and import
no AWS or Stripe SDK, so they run the same in a Lambda, a test and a backtest. Services reach the outside only
through ``ports``: which adapter serves a port (AWS, or in memory for a test or a backtest) is the caller's choice.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "shared" / "python" / "medspa"
RANK = {"money": 0, "policy": 1, "domain": 2, "events": 3, "messages": 3, "ports": 4, "adapters": 5, "services": 6}
PURE = {"money", "policy", "domain", "events", "messages", "ports"}
CLOUD_SDKS = {"boto3", "botocore", "pynamodb", "stripe", "requests", "aws_lambda_powertools"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "medspa" else None


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts and p != PACKAGE / "__init__.py")


def _own_layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = ".".join(("medspa", *path.relative_to(PACKAGE).parent.parts))
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.append((node.lineno, f"{base}.{node.module}" if node.module else base))
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{line}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    own = _own_layer(path)
    assert own in RANK, f"{own}: a new package needs its place in RANK (and in DESIGN.md's picture)"
    upward = [f"{_where(path, line)} imports {name}" for line, name in _imports(path)
              if (layer := _layer(name)) is not None and RANK.get(layer, 99) > RANK[own]]
    assert upward == []


@pytest.mark.parametrize("path", [p for p in _modules() if _own_layer(p) in PURE],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_layers_import_no_cloud_sdk_and_read_no_environment(path: Path) -> None:
    sdks = [f"{_where(path, line)} imports {name}" for line, name in _imports(path)
            if name.split(".")[0] in CLOUD_SDKS]
    text = path.read_text(encoding="utf-8")
    assert sdks == []
    assert "os.environ" not in text and "getenv(" not in text


@pytest.mark.parametrize("path", [p for p in _modules() if _own_layer(p) == "services"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_services_import_ports_and_never_an_adapter(path: Path) -> None:
    concrete = [f"{_where(path, line)} imports {name}" for line, name in _imports(path) if _layer(name) == "adapters"]
    assert concrete == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """A canary: the scan must catch the arrow this layout once had (the fold importing the store's types)."""
    sample = tmp_path / "sample.py"
    sample.write_text("import json\nfrom medspa.adapters.store.appointments import Violation\n"
                      "def later():\n    from medspa.services import lifecycle\n", encoding="utf-8")
    above_events = [name for _, name in _imports(sample) if RANK.get(_layer(name) or "", -1) > RANK["events"]]
    assert above_events == ["medspa.adapters.store.appointments", "medspa.services"]
