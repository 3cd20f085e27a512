"""The product's own template deployed into the local cloud, and a store bound to its tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from localcloud.cloud import LocalCloud
from localcloud.clock import utc
from medspa.adapters.store import Store, TableNames

if TYPE_CHECKING:
    from tests.e2e.booking_site import BookingSite

pytestmark = pytest.mark.e2e


@pytest.fixture
def cloud(request):
    start = getattr(request, "param", None) or utc(2026, 3, 5, 15)
    with LocalCloud(start) as cloud:
        cloud.deploy({"LogLevel": "WARNING"})
        yield cloud


@pytest.fixture
def store(cloud) -> Store:
    return Store(TableNames.from_env(cloud.function_environment("LifecycleFunction")), region=cloud.region)


@pytest.fixture
def site(cloud) -> "BookingSite":
    from tests.e2e.booking_site import BookingSite

    return BookingSite(cloud)
