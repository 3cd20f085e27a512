"""Which spas this deployment serves, and which booking-site sources may speak for each.

EventBridge lets any principal the bus policy admits put any ``source`` and any ``detail``; nothing in
AWS ties a vendor to the spas it works for. So each spa names, in ``policy/spas/<spa_id>.toml`` beside its
policy packs, the event sources allowed to speak for it, and the intake refuses an event whose source is
not on its spa's list. A spa's locations are the packs whose ``spa.id`` is that spa: a booking can only
be made at one of them.

Onboarding a vendor for a spa is two edits, both reviewed: add its account to the bus policy
(``BookingSiteAccountIds`` in ``template.yaml``) and its source (``booking-site.<vendor>``) to the spa's
``event_sources``. Removing a source from the list cuts the vendor off at the next deploy.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from medspa.policy.loader import PolicyPackError, _field_path
from medspa.policy.schema import PolicyPack, Slug, Source

SPAS_DIR = Path(__file__).parent / "spas"
EventSource = Annotated[str, StringConstraints(pattern=r"^booking-site(\.[a-z0-9][a-z0-9-]*)?$")]


class Tenant(BaseModel):
    model_config = ConfigDict(defer_build=True, strict=True, extra="forbid", frozen=True)

    spa_id: Slug
    event_sources: Annotated[list[EventSource], Field(min_length=1)]
    source: Source = Field(description="Why these sources: the spa's contract with its vendor, or an assumption")
    locations: frozenset[str] = frozenset()

    def may_speak(self, event_source: str) -> bool:
        return event_source in self.event_sources


def load_tenants(packs: Mapping[str, PolicyPack], directory: str | Path | None = None) -> dict[str, Tenant]:
    """Every spa with its locations, by spa id; a pack whose spa has no file (or the reverse) is an error."""
    by_spa: dict[str, set[str]] = {}
    for pack in packs.values():
        by_spa.setdefault(pack.spa.id, set()).add(pack.location_id)
    tenants: dict[str, Tenant] = {}
    for path in sorted(Path(directory or SPAS_DIR).glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            tenant = Tenant.model_validate({**data, "locations": frozenset(by_spa.get(str(data.get("spa_id")), ()))})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise PolicyPackError(f"{path.name}: {err}") from err
        except ValidationError as err:
            raise PolicyPackError("\n".join(f"{path.name}: {_field_path(e['loc'])}: {e['msg']}"
                                            for e in err.errors())) from err
        if tenant.spa_id != path.stem:
            raise PolicyPackError(f"{path.name}: spa_id: must match the file name")
        if not tenant.locations:
            raise PolicyPackError(f"{path.name}: spa_id: no policy pack has this spa, so it has no location")
        tenants[tenant.spa_id] = tenant
    unserved = sorted(set(by_spa) - set(tenants))
    if unserved:
        raise PolicyPackError(f"spas {unserved} have packs but no spas/<spa_id>.toml naming their event sources")
    return tenants
