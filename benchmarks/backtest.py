"""The backtest's speed: a generated scenario of N appointments played in process, in appointments per second.

The owner's question ("what would this policy have done to last year?") is tens of thousands of bookings; the
issue's bar is 500 appointments per second on the shared 2-core machine. The whole run is timed, reading and
checking the scenario and building the report included, as ``medspa backtest`` does it. Prints; asserts nothing.

    make bench            # or: python benchmarks/backtest.py --sizes 1000 5000
"""

from __future__ import annotations

import argparse
import sys
import time

from localcloud.backtest import run_backtest
from localcloud.generate import generated_scenario

TARGET = 500  # appointments per second (issue 8, "Done means")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"backtest, generated scenarios (seed {args.seed}, {sys.version.split()[0]}); target {TARGET} appts/s")
    print(f"{'appointments':>12}{'messages':>10}{'ledger':>8}{'real s':>9}{'appts/s':>9}")
    for n in args.sizes:
        scenario = generated_scenario(n, seed=args.seed)
        began = time.perf_counter()
        report = run_backtest(scenario)
        real = time.perf_counter() - began
        print(f"{n:>12}{len(report['messages']):>10}{len(report['ledger']):>8}{real:>9.2f}{n / real:>9.0f}",
              flush=True)


if __name__ == "__main__":
    main()
