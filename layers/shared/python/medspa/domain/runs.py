"""AppointmentLifecycle executions, named for the booking version they were started for (a run goes on
through later versions that leave its next step as it was), so an admin finds them in the console.

The name is derived from the spa, the appointment id and the booking version (``bijoux.a-123-v2``), so
StartExecution is idempotent: a duplicate booking event starts nothing new (same name, same input), and
the console lists each version's run under a name that says which spa, appointment and version it is;
two spas' appointments "a-123" never share a name. Spa ids are slugs without dots, so the first dot ends
the spa. Step Functions names are at most 80 characters from a restricted alphabet; a long or exotic
booking-site id keeps a readable prefix plus a short hash so two ids never collide.
"""

from __future__ import annotations

import hashlib
import re

from medspa.domain.keys import split_key

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.\-]")
_COUNT = re.compile(r"\d+")
MAX_NAME = 80


def execution_name(appointment_id: str, booking_version: int | None = None, *, revision: int | None = None,
                   suffix: str | None = None) -> str:
    """``<spa>.<appointment>-v<version>`` (``-r<revision>`` after a late refold), or ``<spa>.<appointment>-<suffix>``.

    ``appointment_id`` is the stored key, ``<spa>#<booking site's id>``.
    """
    spa_id, appointment = split_key(appointment_id)
    if suffix is None:
        suffix = f"-v{booking_version}" + (f"-r{revision}" if revision is not None else "")
    else:
        suffix = f"-{_NOT_ALLOWED.sub('_', suffix)}"
    readable = f"{spa_id}.{appointment}"
    safe = _NOT_ALLOWED.sub("_", readable)
    if safe == readable and len(safe) + len(suffix) <= MAX_NAME:
        return safe + suffix
    digest = hashlib.sha256(appointment_id.encode()).hexdigest()[:10]
    room = MAX_NAME - len(suffix) - len(digest) - 1
    return f"{safe[:room]}~{digest}{suffix}".replace("~", "-")


def run_name(appointment_id: str, booking_version: int, revision: int, version_revision: int) -> str:
    """``<appointment>-v<version>``; a refold at the same version (an older event arrived late) adds ``-r<revision>``."""
    if revision and revision != version_revision:
        return execution_name(appointment_id, booking_version, revision=revision)
    return execution_name(appointment_id, booking_version)


def continued(name: str, continuation: int) -> str:
    """The name of the ``continuation``-th run after ``name`` handed over (``-c1``, ``-c2``...)."""
    return name if not continuation else f"{name[:MAX_NAME - 4]}-c{continuation}"


def runs_for(name: str, candidate: str | None) -> bool:
    """Is ``candidate`` the run named ``name`` or one of its continuations?"""
    if candidate == name:
        return True
    prefix = f"{name[:MAX_NAME - 4]}-c"  # a pattern built per name would be compiled per appointment
    return bool(candidate and candidate.startswith(prefix) and _COUNT.fullmatch(candidate, len(prefix)))
