"""pytest fixtures for the data layer: template tables in moto, and a ``Store`` bound to them.

Import them into a test module (``from tests.support.fixtures import dynamo_tables, store``) or a
conftest (``pytest_plugins = ["tests.support.fixtures"]``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest
from moto import mock_aws

from medspa.adapters.store import Store, TableNames

from .tables import create_tables, table_names

REGION = "us-east-1"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and no endpoint override, so nothing can reach a real AWS account."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")


@pytest.fixture
def template_tables(aws_credentials: None) -> Iterator[dict[str, str]]:
    """Every table of the template in moto: logical id -> table name."""
    with mock_aws():
        yield create_tables(boto3.client("dynamodb", region_name=REGION))


@pytest.fixture
def dynamo_tables(template_tables: dict[str, str]) -> TableNames:
    return table_names(template_tables)


@pytest.fixture
def store(dynamo_tables: TableNames) -> Store:
    return Store(dynamo_tables, REGION)


_ENDPOINT_VARS = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
                  "AWS_ENDPOINT_URL_DYNAMODB")


@contextmanager
def module_tables() -> Iterator[dict[str, str]]:
    """One set of template tables for a whole module (moto takes ~0.3 s to create them), logical id -> table name,
    with the same credentials hygiene as ``aws_credentials``; the module's tests must use their own ids."""
    with pytest.MonkeyPatch.context() as env:
        for var in _ENDPOINT_VARS:
            env.delenv(var, raising=False)
        for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                           ("AWS_DEFAULT_REGION", REGION), ("AWS_REGION", REGION),
                           ("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")):
            env.setenv(var, value)
        with mock_aws():
            yield create_tables(boto3.client("dynamodb", region_name=REGION))


@contextmanager
def module_store() -> Iterator[Store]:
    """A ``Store`` on :func:`module_tables`."""
    with module_tables() as created:
        yield Store(table_names(created), REGION)
