"""The artifacts ``sam build`` produced (``make package``) import, each handler from its own directory and the
layer alone: no source tree, no site-packages, as the Lambda runtime sees them (issue 12).

Each function is imported in a fresh interpreter (``-I -S``) with only its built directory and the layer's
``python/`` on the path, and the environment the template gives it (references filled with names of the right
shape), so a module-level import, a settings model or a data file the layer lacks fails here, not at the first
cold start in an account.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
REGION, ACCOUNT = "us-east-1", "123456789012"
DEV_ONLY = {"localcloud", "fakestripe", "moto", "pytest", "typer", "rich", "hypothesis", "cfnlint", "samcli", "mypy",
            "ruff", "croniter"}


def built_template() -> dict[str, Any]:
    path = BUILD / "template.yaml"
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: run `make package` (make test runs it first)")
    return cfn_yaml.load(str(path))


def _value(value: Any, template: dict[str, Any]) -> str:
    """A stand-in of the right shape for what CloudFormation would resolve."""
    if not isinstance(value, dict):
        return str(value)
    (function, argument), = value.items()
    if function == "Ref":
        parameter = template.get("Parameters", {}).get(argument)
        if parameter:
            return str(parameter.get("Default", "x"))
        kind = template["Resources"][argument]["Type"]
        if kind in ("AWS::Serverless::StateMachine", "AWS::SNS::Topic"):  # Ref gives these an ARN
            return f"arn:aws:{kind.split('::')[1].lower()}:{REGION}:{ACCOUNT}:{argument}"
        if kind == "AWS::SQS::Queue":  # ...and a queue its URL
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{argument}"
        return f"medspa-dev-{argument}"
    if function == "Fn::GetAtt":
        name = argument[0] if isinstance(argument, list) else argument.split(".")[0]
        kind = template["Resources"][name]["Type"].split("::")[1].lower()
        return f"arn:aws:{kind}:{REGION}:{ACCOUNT}:{name}"
    if function == "Fn::Sub":
        text = argument if isinstance(argument, str) else argument[0]
        return text.replace("${AWS::Region}", REGION).replace("${AWS::AccountId}", ACCOUNT).replace("${", "").replace(
            "}", "")
    return "x"


def environment(name: str, template: dict[str, Any]) -> dict[str, str]:
    variables = {**template["Globals"]["Function"].get("Environment", {}).get("Variables", {}),
                 **template["Resources"][name]["Properties"].get("Environment", {}).get("Variables", {})}
    return {"PATH": os.environ.get("PATH", ""), "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_LAMBDA_FUNCTION_NAME": name,
            **{key: _value(value, template) for key, value in variables.items()}}


def functions() -> list[str]:
    template = cfn_yaml.load(str(ROOT / "template.yaml"))
    return sorted(n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function")


def layer_dir() -> Path:
    return BUILD / "SharedLayer" / "python"


@pytest.mark.parametrize("name", functions())
def test_each_handler_imports_from_its_built_directory_and_the_layer_alone(name: str) -> None:
    template = built_template()
    props = template["Resources"][name]["Properties"]
    module, _, handler = props["Handler"].rpartition(".")
    probe = (f"import sys; sys.path[:0] = {[str(BUILD / props['CodeUri']), str(layer_dir())]!r}; "
             f"import {module}; import medspa; "
             f"assert callable({module}.{handler}); "
             f"assert medspa.__file__.startswith({str(layer_dir())!r}), medspa.__file__; "
             "import json; print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True,
                          env=environment(name, template), cwd=BUILD, timeout=120)
    assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
    assert not DEV_ONLY & set(json.loads(done.stdout)), f"{name} imported development tooling"


def test_the_layer_holds_the_package_its_data_and_only_runtime_dependencies() -> None:
    built_template()
    layer = layer_dir()
    assert (layer / "medspa" / "__init__.py").exists(), "the package sits at python/medspa, where Lambda looks"
    assert not (layer / "python").exists(), "no python/python/ nesting"
    for data in ("policy/packs/massageluxe-austin.toml", "policy/packs/versions.lock", "policy/packs/prevalidated.pickle",
                 "messages/templates/default.toml", "policy/spas/bijoux.toml"):
        assert (layer / "medspa" / data).exists(), data
    shipped = {p.name.split("-")[0].lower() for p in layer.iterdir()}
    assert not DEV_ONLY & shipped, sorted(DEV_ONLY & shipped)
    assert {"boto3", "pynamodb", "stripe", "pydantic", "aws_lambda_powertools", "holidays"} <= shipped


def test_the_layer_loads_its_packs_as_the_build_validated_them() -> None:
    """A cold start loads ``prevalidated.pickle`` (medspa.policy.loader) only when its fingerprint matches the
    layer's own pack files and code: where the layer is built to must not make it stale."""
    built_template()
    probe = (f"import sys; sys.path[:0] = {[str(layer_dir())]!r}; "
             "from medspa.policy import loader; "
             "assert loader.prevalidated_is_current(), 'stale in the layer'; "
             "packs = loader.load_packs(); "
             "assert 'tomllib' not in sys.modules and 'holidays' not in sys.modules, 'validated at cold start'; "
             "print(len(packs))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, cwd=BUILD,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) == len(list((layer_dir() / "medspa" / "policy" / "packs").glob("*.toml")))
