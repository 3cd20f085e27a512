"""Each handler module is "decorators plus one call": importing it (a Lambda cold start) wires nothing, makes no
AWS client and imports neither ``stripe`` nor boto3 nor the services, nor Powertools' event handler (an HTTP
handler's resolver is built by its first request: ``medspa.adapters.http_routes``); its first invocation wires
them, once.

Every handler is imported in a fresh interpreter with the environment template.yaml gives it (as
``benchmarks/cold_import.py`` measures it), so nothing another test imported hides what the handler imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cold_import import ROOT, function_environments

# handler -> (the cached factory its first invocation calls, the service class it must build)
WIRING = {
    "http_api": ("links", "tuple"),
    "inbound_sms": ("service", "InboundSmsService"),
    "ingest": ("service", "IngestService"),
    "lifecycle": ("service", "LifecycleService"),
    "memberships": ("service", "MembershipService"),
    "outbox": ("sender", "OutboxSender"),
    "privacy": ("service", "PrivacyService"),
    "settlement": ("services", "tuple"),
    "spa_api": ("desk", "SpaDesk"),
    "stripe_events": ("reconciliation", "StripeReconciliation"),
    "stripe_webhook": (None, None),
}

_PROBE = """
import importlib.util, json, sys
import botocore.session

made = []
create_client = botocore.session.Session.create_client
def recording(self, service, *args, **kwargs):
    made.append(service)
    return create_client(self, service, *args, **kwargs)
botocore.session.Session.create_client = recording

spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
at_import = {"stripe": "stripe" in sys.modules, "boto3": "boto3" in sys.modules, "clients": list(made),
             "event_handler": "aws_lambda_powertools.event_handler" in sys.modules,
             "services": sorted(m for m in sys.modules if m.startswith("medspa.services.")
                                and not m.endswith("_errors"))}  # an error module is what a handler catches

wired = None
if sys.argv[2]:
    from aws_lambda_powertools.utilities import parameters
    parameters.get_parameter = lambda name, **kwargs: "sk_test_wiring" if "stripe" in name.lower() else "k" * 32
    factory = getattr(module, sys.argv[2])
    first = factory()
    wired = {"type": type(first).__name__, "once": factory() is first, "clients": list(made),
             "services": sorted(m for m in sys.modules if m.startswith("medspa.services."))}
print(json.dumps({"at_import": at_import, "wired": wired}))
"""


def _probe(handler: str) -> dict:
    path = ROOT / "functions" / handler / "app.py"
    factory = WIRING[handler][0] or ""
    env = {**os.environ, **function_environments()[path],
           "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("layers/shared/python", "infra", "."))}
    done = subprocess.run([sys.executable, "-c", _PROBE, str(path), factory], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_handler_is_covered() -> None:
    assert {Path(p).parent.name for p in function_environments()} == set(WIRING)


@pytest.mark.parametrize("handler", sorted(WIRING))
def test_a_cold_start_wires_nothing_and_the_first_invocation_wires_the_services_once(handler: str) -> None:
    probe = _probe(handler)
    at_import = probe["at_import"]
    assert at_import["clients"] == [], f"{handler} makes an AWS client at import"
    assert not at_import["stripe"], f"{handler} imports stripe at import"
    assert not at_import["boto3"], f"{handler} imports boto3 at import"
    assert not at_import["event_handler"], f"{handler} imports Powertools' event handler at import"
    assert at_import["services"] == [], f"{handler} imports services at import: {at_import['services']}"
    factory, service_type = WIRING[handler]
    if factory is None:
        return
    wired = probe["wired"]
    assert wired["type"] == service_type
    assert wired["once"], f"{handler}.{factory}() wires its services again on every call"
    assert wired["services"], f"{handler}.{factory}() wired no service"
    assert wired["clients"] == [], f"{handler} makes an AWS client before its first API call"
