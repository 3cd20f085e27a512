"""Cold import time of every Lambda handler, beside ``import boto3`` alone, in fresh interpreters.

A cold start pays for every module a handler imports at load time, so each handler module is imported in
a new interpreter (as Lambda's init phase does), ``--runs`` times, and the median is compared with the
median of a bare ``import boto3`` measured in the same run. Prints a table; asserts nothing.

    make bench            # or: python benchmarks/cold_import.py --runs 15
"""

from __future__ import annotations

import argparse
import os
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

# What the template gives every function; values are placeholders, nothing is called at import.
_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "medspa",
    "POWERTOOLS_METRICS_NAMESPACE": "MedSpa", "CLIENTS_TABLE": "clients", "APPOINTMENTS_TABLE": "appointments",
    "LEDGER_TABLE": "ledger", "IDEMPOTENCY_TABLE": "idempotency", "STAGE": "bench",
}


def _median_seconds(args: list[str], runs: int) -> float:
    env = {**os.environ, **_ENV, "PYTHONDONTWRITEBYTECODE": "0"}
    samples = [
        float(subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, check=True,
                             env=env).stdout.strip())
        for _ in range(runs)
    ]
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="fresh interpreters per module (>= 10)")
    args = parser.parse_args()
    handlers = sorted(ROOT.glob("functions/*/app.py"))
    for handler in handlers:  # warm the bytecode cache so every run measures the same thing
        _median_seconds([_IMPORT_HANDLER, str(handler)], 1)
    boto3_seconds = _median_seconds([_IMPORT_BOTO3], args.runs)
    print(f"cold import, median of {args.runs} fresh interpreters ({sys.version.split()[0]})")
    print(f"{'module':<28}{'ms':>9}{'x boto3':>10}")
    print(f"{'import boto3':<28}{boto3_seconds * 1000:>9.1f}{1.0:>10.2f}")
    for handler in handlers:
        seconds = _median_seconds([_IMPORT_HANDLER, str(handler)], args.runs)
        print(f"{'functions/' + handler.parent.name:<28}{seconds * 1000:>9.1f}{seconds / boto3_seconds:>10.2f}")


if __name__ == "__main__":
    main()
