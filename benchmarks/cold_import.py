"""Cold import time of every Lambda handler, beside ``import boto3`` alone, in fresh interpreters.

A cold start pays for every module a handler imports at load time, so each handler module is imported in
a new interpreter (as Lambda's init phase does), ``--runs`` times, each time right after a bare ``import boto3``
in a new interpreter, and the ratio is the median of those pairs' ratios: on a shared machine whose load drifts
over a run, a boto3 measured once at the start would flatter the first handlers and blame the last. Prints a table, the target (issue 10: every handler at
most ``TARGET`` times a bare ``import boto3``) and whether each handler meets it; asserts nothing.

    make bench            # or: python benchmarks/cold_import.py --runs 15
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_IMPORT_HANDLER = """
import importlib.util, sys, time
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(time.perf_counter() - started)
"""
_IMPORT_BOTO3 = "import time; s = time.perf_counter(); import boto3; print(time.perf_counter() - s)"
TARGET = 1.25  # x a bare ``import boto3``, in the same run


def function_environments() -> dict[Path, dict[str, str]]:
    """Each handler's environment as template.yaml gives it; intrinsic values become placeholders."""
    from localcloud.deploy import load_template

    template = load_template(ROOT / "template.yaml")
    shared = template["Globals"]["Function"]["Environment"]["Variables"]
    defaults = {name: p.get("Default", "") for name, p in template.get("Parameters", {}).items()}

    pseudo = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::StackName": "bench",
              "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}

    def value_of(name: str, value: object) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and value.get("Ref") in defaults:
            return str(defaults[value["Ref"]])
        if name.endswith("_URL"):
            return f"https://bench.example.com/{name.lower()}"  # a URL the handler checks at cold start
        if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
            # ${Parameter} and pseudo parameters resolve as deployed; ${Resource.Attr} becomes a placeholder
            return re.sub(r"\$\{([^}]+)\}",
                          lambda m: str(defaults.get(m[1], pseudo.get(m[1], m[1].split(".")[0].lower()))),
                          value["Fn::Sub"])
        return f"arn:aws:bench:us-east-1:123456789012:{name.lower()}"

    environments = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        variables = {**shared, **props.get("Environment", {}).get("Variables", {})}
        environments[ROOT / props["CodeUri"] / "app.py"] = {
            name: value_of(name, value) for name, value in variables.items()
        } | {"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    return environments


def _sample_seconds(args: list[str], function_env: dict[str, str] | None = None) -> float:
    env = {**os.environ, **(function_env or {}), "PYTHONDONTWRITEBYTECODE": "0"}
    return float(subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, check=True,
                                env=env).stdout.strip())


def _median_seconds(args: list[str], runs: int, function_env: dict[str, str] | None = None) -> float:
    return statistics.median(_sample_seconds(args, function_env) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="fresh interpreters per module (>= 10)")
    args = parser.parse_args()
    environments = function_environments()
    handlers = sorted(environments)
    for handler in handlers:  # warm the bytecode cache so every run measures the same thing
        _median_seconds([_IMPORT_HANDLER, str(handler)], 1, environments[handler])
    boto3_samples: list[float] = []
    pairs: dict[Path, list[tuple[float, float]]] = {handler: [] for handler in handlers}
    for _ in range(args.runs):  # each handler beside a boto3 import made just before it: a busy machine's drift
        for handler in handlers:  # over the run weighs on both alike
            boto3 = _sample_seconds([_IMPORT_BOTO3])
            boto3_samples.append(boto3)
            pairs[handler].append((_sample_seconds([_IMPORT_HANDLER, str(handler)], environments[handler]), boto3))
    print(f"cold import, median of {args.runs} fresh interpreters ({sys.version.split()[0]}), each handler's ratio "
          f"the median of its imports over the boto3 import made just before each")
    print(f"{'module':<28}{'ms':>9}{'x boto3':>10}   target <= {TARGET:.2f}x")
    print(f"{'import boto3':<28}{statistics.median(boto3_samples) * 1000:>9.1f}{1.0:>10.2f}")
    missed = []
    for handler in handlers:
        seconds = statistics.median(h for h, _ in pairs[handler])
        ratio = statistics.median(h / b for h, b in pairs[handler])
        if ratio > TARGET:
            missed.append(handler.parent.name)
        print(f"{'functions/' + handler.parent.name:<28}{seconds * 1000:>9.1f}{ratio:>10.2f}   "
              f"{'meets' if ratio <= TARGET else 'misses'}")
    print(f"target (every handler <= {TARGET:.2f}x import boto3): "
          + (f"missed by {len(missed)} of {len(handlers)}: {', '.join(missed)}" if missed else
             f"met by all {len(handlers)}"))

if __name__ == "__main__":
    main()
