"""The full local cloud's speed: generated scenarios of N appointments played end to end, per appointment.

Each N is played in a fresh local cloud (deploy included, as ``medspa simulate`` does), so the figures show
both the fixed cost of a deploy and the cost per appointment as N grows. Prints a table; asserts nothing.

    make bench            # or: python benchmarks/local_cloud.py --sizes 10 40 160
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time

from localcloud.generate import generated_scenario
from localcloud.simulate import run_scenario


def play(n: int, seed: int) -> dict[str, float]:
    began = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        report = run_scenario(generated_scenario(n, seed=seed))
    real = time.perf_counter() - began
    return {"n": n, "real": real, "deploy": report["deploy_seconds"], "run": report["run_seconds"],
            "transitions": report["summary"]["state_transitions"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 40, 160])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"full local cloud, generated scenarios (seed {args.seed}, {sys.version.split()[0]})")
    print(f"{'appointments':>12}{'transitions':>13}{'deploy s':>10}{'run s':>9}{'appts/s':>9}{'run ms/appt':>13}")
    for n in args.sizes:
        r = play(n, args.seed)
        print(f"{n:>12}{r['transitions']:>13}{r['deploy']:>10.2f}{r['run']:>9.2f}{n / r['real']:>9.2f}"
              f"{1000 * r['run'] / n:>13.0f}", flush=True)


if __name__ == "__main__":
    main()
