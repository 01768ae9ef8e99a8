"""Time and environment steps for sample_scripts/rl.py to solve its task, over several seeds.

    python benchmarks/rl.py                       # CartPole-v1, 5 seeds, 3 evaluation modes
    python benchmarks/rl.py --seeds 2 --modes vectorised
    python benchmarks/rl.py --env HalfCheetah-v5 --seeds 1 --modes multiprocess --budget 300

Each run is the sample script in a fresh process with its defaults (plus the mode's flags), so
the numbers are what a user sees. ``train_s`` is the script's own clock: from the first step
(the evaluator and its worker processes are started lazily, so their start-up counts) to the
evaluation that found the task solved, greedy evaluations included. ``process_s`` adds the
interpreter start and the imports. Steps are training environment steps (evaluation episodes
excluded). Goal (docs/rl.md): CartPole-v1 median ≤ 3 s on a 2-core machine with the defaults.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "sample_scripts" / "rl.py"
MODES = {
    "vectorised": [],
    "one-at-a-time": ["--no-vectorize"],
    "multiprocess": ["--backend", "multiprocess", "--workers", "2"],
}
SOLVED = re.compile(r"(solved|not solved) in ([\d.]+)s, (\d+) generations, (\d+) environment steps")
FINAL = re.compile(r"greedy return (-?[\d.]+)")


def run_once(env: str, seed: int, flags: list[str], budget: float) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, str(SCRIPT), "--env", env, "--seed", str(seed), "--quiet",
                   "--out", out, "--time-limit", str(budget), *flags]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, timeout=budget + 120)
        process_s = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    solved = SOLVED.search(proc.stdout)
    final = FINAL.search(proc.stdout)
    return {
        "seed": seed,
        "solved": solved.group(1) == "solved",
        "train_s": float(solved.group(2)),
        "process_s": process_s,
        "generations": int(solved.group(3)),
        "steps": int(solved.group(4)),
        "final_return": float(final.group(1)),
    }


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (range {min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0 .. seeds-1")
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    p.add_argument("--budget", type=float, default=120.0, help="generations cap in seconds")
    p.add_argument("flags", nargs="*", help="extra flags for the script (after --)")
    args = p.parse_args(argv)
    for mode in args.modes:
        runs = []
        for seed in range(args.seeds):
            run = run_once(args.env, seed, MODES[mode] + args.flags, args.budget)
            runs.append(run)
            print(f"  {mode:14s} seed {seed}: {run}", flush=True)
        solved = [r for r in runs if r["solved"]]
        print(f"{args.env} {mode}: solved {len(solved)}/{len(runs)}")
        if solved:
            print(f"  train wall s   {summary([r['train_s'] for r in solved])}")
            print(f"  process wall s {summary([r['process_s'] for r in solved])}")
            print(f"  env steps      {summary([r['steps'] for r in solved])}")
            print(f"  generations    {summary([r['generations'] for r in solved])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
