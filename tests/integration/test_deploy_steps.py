"""The README's deploy section, walked against the template (issue 12): the steps an operator copies must deploy
this template as it is, not the one the README was written for."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from localcloud.deploy import load_template

ROOT = Path(__file__).resolve().parents[2]


def deploy_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Deploying to a real AWS account"):]
    block = section[section.index("```bash\n") + 8:]
    return block[:block.index("\n```")]


def commands(block: str) -> list[list[str]]:
    """Each shell command of the block as its words (continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line) for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def option(words: list[str], name: str) -> list[str]:
    """The values after ``name``, up to the next option."""
    if name not in words:
        return []
    values = []
    for word in words[words.index(name) + 1:]:
        if word.startswith("--"):
            break
        values.append(word)
    return values


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def steps() -> list[list[str]]:
    return commands(deploy_block())


def sam_deploy(steps: list[list[str]]) -> list[str]:
    [words] = [w for w in steps if w[:2] == ["sam", "deploy"]]
    return words


def overrides(steps: list[list[str]]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in option(sam_deploy(steps), "--parameter-overrides"))


def test_every_parameter_given_is_declared_with_an_allowed_value(template, steps):
    declared = template["Parameters"]
    given = overrides(steps)
    assert given and set(given) <= set(declared)
    for name, value in given.items():
        assert value in [str(v) for v in declared[name].get("AllowedValues", [value])], name


def test_every_secret_the_stack_reads_is_named_for_its_stage_and_put_in_ssm(template, steps):
    """A prod stack left on a default would read the dev secrets; a name given but never put fails the first
    charge, email link or API call. Only the webhook secret may be put after the deploy (its endpoint's address
    is the stack's output)."""
    given = overrides(steps)
    stage = given["Stage"]
    secrets = [n for n, p in template["Parameters"].items() if "SSM SecureString" in p.get("Description", "")]
    assert len(secrets) == 4
    deploy_at = steps.index(sam_deploy(steps))
    put = {option(w, "--name")[0]: i for i, w in enumerate(steps) if w[:3] == ["aws", "ssm", "put-parameter"]}
    for name in secrets:
        assert given[name].startswith(f"/medspa/{stage}/"), name
        assert given[name] in put, f"{name}: {given[name]} is never put"
        if name != "StripeWebhookSecretParameter":
            assert put[given[name]] < deploy_at, f"{name} is put after the deploy"
    assert "--type" in steps[put[given["StripeApiKeyParameter"]]] and "SecureString" in steps[
        put[given["StripeApiKeyParameter"]]]


def test_the_capabilities_are_the_ones_the_template_needs(template, steps):
    capabilities = set(option(sam_deploy(steps), "--capabilities"))
    named = [n for n, r in template["Resources"].items() if r["Type"].startswith("AWS::IAM::")
             and any(k in r.get("Properties", {}) for k in ("RoleName", "ManagedPolicyName", "UserName", "GroupName"))]
    assert capabilities == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"} | (
        {"CAPABILITY_NAMED_IAM"} if named else set())
    assert template["Transform"] == "AWS::Serverless-2016-10-31"  # what CAPABILITY_AUTO_EXPAND is for


def test_the_admin_cli_is_pointed_at_the_stack_deployed_and_the_outputs_quoted_exist(template, steps):
    stack = option(sam_deploy(steps), "--stack-name")
    admin = [w for w in steps if w[:2] == ["medspa", "admin"]]
    assert admin and all(option(w, "--stack") == stack for w in admin)
    quoted = set(re.findall(r"<(\w+)>", deploy_block()))
    assert {"OnCallTopicArn", "HttpApiUrl"} <= quoted <= set(template["Outputs"])
    sender = overrides(steps)["EmailFromAddress"]
    assert [w for w in steps if w[:3] == ["aws", "sesv2", "create-email-identity"]
            and option(w, "--email-identity") == [sender]], "the sender the stack uses is the one verified"
