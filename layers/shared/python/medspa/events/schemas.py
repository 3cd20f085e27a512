"""The published form of the catalogue: one JSON Schema and one example per detail-type.

``tools/publish_event_schemas.py`` writes ``render()`` to ``docs/events/``; a unit test renders it
again in memory and compares, so the committed documents cannot drift from the models.
"""

from __future__ import annotations

import json
from typing import Any

from .catalogue import DETAIL_TYPES, ENVELOPE_MODELS
from .examples import EXAMPLES

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_for(detail_type: str) -> dict[str, Any]:
    """The JSON Schema of the whole EventBridge event (envelope + detail) for one detail-type."""
    schema = ENVELOPE_MODELS[detail_type].model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": f"{detail_type}.schema.json", **schema}


def _dump(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def render() -> dict[str, str]:
    """Relative path under docs/events -> file text, for every detail-type."""
    files: dict[str, str] = {}
    for detail_type in DETAIL_TYPES:
        files[f"{detail_type}.schema.json"] = _dump(schema_for(detail_type))
        files[f"examples/{detail_type}.json"] = _dump(EXAMPLES[detail_type])
    return files
