"""template.yaml is the single source of the infrastructure: what it names exists, and deploys whole."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from localcloud.cloud import LocalCloud
from localcloud.clock import utc
from localcloud.deploy import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]


def _of_type(kind: str) -> dict[str, dict]:
    return {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == kind}


@pytest.mark.parametrize("name,props", _of_type("AWS::Serverless::StateMachine").items())
def test_every_asl_placeholder_is_substituted_and_every_substitution_used(name, props):
    definition = (ROOT / props["DefinitionUri"]).read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", definition))
    assert placeholders == set(props.get("DefinitionSubstitutions", {})), name


@pytest.mark.parametrize("name,props", _of_type("AWS::Serverless::Function").items())
def test_every_function_has_its_handler_and_its_own_least_privilege_policies(name, props):
    module, _, attribute = props["Handler"].rpartition(".")
    source = ROOT / props["CodeUri"] / f"{module}.py"
    assert f"def {attribute}(" in source.read_text(), f"{name}: {source}"
    assert props.get("Policies"), f"{name} has no policies of its own"
    assert "AdministratorAccess" not in str(props["Policies"])


def test_runtime_pins_are_the_same_in_pyproject_and_the_lambda_layer():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    layer = [line for line in (ROOT / "layers/shared/requirements.txt").read_text().splitlines() if line]
    assert sorted(project) == sorted(layer)
    assert all("==" in pin for pin in project)


def test_the_whole_template_deploys_into_the_local_cloud_with_nothing_skipped():
    with LocalCloud(utc(2026, 1, 1)) as cloud:
        deployment = cloud.deploy()
    assert set(deployment.not_emulated.values()) <= {"AWS::SQS::QueuePolicy"}
    assert set(deployment.functions) == set(_of_type("AWS::Serverless::Function"))
    assert set(deployment.state_machines) == {f"{n}" for n in _of_type("AWS::Serverless::StateMachine")}
    tables = {n for n, t in deployment.resource_types.items() if t == "AWS::DynamoDB::Table"}
    assert tables == set(_of_type("AWS::DynamoDB::Table"))
