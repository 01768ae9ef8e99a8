"""Side-by-side benchmark of es_opt against EvoTorch, evosax, EvoX and pytorch-optimize.

    bash benchmarks/peers/setup_env.sh                      # once: the peers' own venv
    benchmarks/peers/.venv/bin/python benchmarks/peers/run.py            # full suite
    benchmarks/peers/.venv/bin/python benchmarks/peers/run.py --quick    # one seed, short caps
    benchmarks/peers/.venv/bin/python benchmarks/peers/run.py --sides evotorch --tasks digits
    benchmarks/peers/.venv/bin/python benchmarks/peers/run.py --sides active --quick  # all peers

Every run is a fresh subprocess (``benchmarks.peers.worker``) with a timeout, so a crash, a
failed import or a hang of one side is reported with its error text and the suite goes on.
Runs are ordered seed by seed (every task and side for seed 0, then seed 1, ...), one at a
time, so each side meets the same machine load. With ``--max-minutes`` (default 30) a
(seed, task) group whose runs could not all finish in time is skipped for every side and
reported as such.

The report (tables, ratios, plot, machine and settings) is built by
:mod:`benchmarks.peers.report`.

Time arithmetic of the default suite (3 sides, 5 seeds): digits and Pendulum run their full
budgets, 15 x 30 s + 15 x 60 s = 22.5 min; each run also pays 3-10 s of interpreter start and
imports outside its clock (~4-6 min in all); CartPole stops when solved (cap 60 s). On an idle
machine that is about 30 min; under load the limit drops the last seed's late tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peers import pairs, tasks  # noqa: E402
from benchmarks.peers.report import load_average, plot, report  # noqa: E402
from benchmarks.peers.worker import SIDE_MODULES  # noqa: E402

SIDES = tuple(pairs.GROUPS["classic"])
# Interpreter start and imports (torch, gymnasium, the side's library) outside each run's clock:
# 3-10 s per run measured on 2 busy cores.
START_OVERHEAD_S = 8.0
TIMEOUT_GRACE_S = 60.0  # a generation that started before the deadline may finish
# JIT compilation before the clock (evosax: 3-10 s per run here, more under load).
COMPILE_ALLOWANCE_S = {"evosax": 60.0}
# Typical CartPole solve times on 2 cores (for the up-front estimate only).
TYPICAL_CARTPOLE_S = {"es_opt": 10.0, "evotorch": 20.0, "pytorch-optimize": 20.0}


@dataclass(frozen=True)
class RunSpec:
    side: str
    task: str
    seed: int
    budget_s: float


def plan(sides, task_names, n_seeds: int, quick: bool) -> list[RunSpec]:
    runs = []
    for seed in range(n_seeds):
        for task in task_names:
            cap = tasks.BUDGETS[task].quick_budget_s if quick else tasks.BUDGETS[task].budget_s
            for side in sides:
                runs.append(RunSpec(side, task, seed, cap))
    return runs


def estimate_s(runs: list[RunSpec]) -> tuple[float, float]:
    """(typical, worst case) seconds for the plan."""
    typical = worst = 0.0
    for r in runs:
        worst += r.budget_s + START_OVERHEAD_S
        if r.task == tasks.CARTPOLE:
            typical += min(r.budget_s, TYPICAL_CARTPOLE_S.get(r.side, r.budget_s))
        else:
            typical += r.budget_s
        typical += START_OVERHEAD_S
    return typical, worst


def execute(
    run: RunSpec, python: str, threads: int, grace_s: float = TIMEOUT_GRACE_S
) -> dict[str, Any]:
    """One run in a fresh subprocess; always returns a dict (with ``error`` on failure)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            python,
            "-m",
            "benchmarks.peers.worker",
            run.side,
            run.task,
            "--seed",
            str(run.seed),
            "--budget",
            str(run.budget_s),
            "--out",
            str(out),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if threads > 0:
            # The same for every side. Tiny networks gain nothing from intra-op threads, and on
            # a loaded 2-core machine two OpenMP threads per process make each forward pass
            # ~5x slower (measured: 0.8 ms against 0.2 ms for a 4-50-2 network).
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[var] = str(threads)
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=run.budget_s
                + grace_s
                + START_OVERHEAD_S
                + COMPILE_ALLOWANCE_S.get(run.side.split("-")[0], 0.0),
            )
        except subprocess.TimeoutExpired as exc:
            tail = (exc.stderr or b"")[-1500:]
            tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
            return {"error": f"timed out after {exc.timeout:.0f} s\n{tail}", "phase": "timeout"}
        wall = time.perf_counter() - start
        if out.exists():
            result = json.loads(out.read_text())
        else:
            result = {
                "error": f"exit status {proc.returncode}, no result\n{proc.stderr[-2000:]}",
                "phase": "crash",
            }
        result["process_wall_s"] = round(wall, 2)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed per task, short caps")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per task (full mode)")
    parser.add_argument(
        "--sides",
        nargs="+",
        default=list(SIDES),
        choices=sorted(SIDE_MODULES) + sorted(pairs.GROUPS),
        help="sides, or a group: classic (the default) or active (es_opt's three algorithms "
        "against EvoTorch's, evosax's and EvoX's)",
    )
    parser.add_argument("--tasks", nargs="+", default=list(tasks.TASKS), choices=tasks.TASKS)
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results.md",
        help="markdown report; the plot (.png) and raw results (.json) go beside",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter for the runs")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="OMP/MKL threads per run, the same for every side (0: leave unset)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=30.0,
        help="skip (and report) runs that could not finish within this",
    )
    parser.add_argument(
        "--timeout-grace",
        type=float,
        default=TIMEOUT_GRACE_S,
        help="seconds a run may take beyond its budget and the start allowance before it is "
        "killed (raise it on a loaded machine, where imports alone can take a minute)",
    )
    args = parser.parse_args()
    args.sides = list(dict.fromkeys(s for g in args.sides for s in pairs.GROUPS.get(g, [g])))
    n_seeds = 1 if args.quick else args.seeds
    runs = plan(args.sides, args.tasks, n_seeds, args.quick)
    typical, worst = estimate_s(runs)
    print(
        f"{len(runs)} runs; expected about {typical / 60:.1f} min "
        f"(worst case {worst / 60:.1f} min, stopped at {args.max_minutes:.0f} min)",
        flush=True,
    )

    load_before = load_average()
    suite_start = time.perf_counter()
    results = []
    skipping: set[tuple[int, str]] = set()
    for i, run in enumerate(runs, 1):
        elapsed = time.perf_counter() - suite_start
        label = f"[{i}/{len(runs)}] {run.side:16s} {run.task:9s} seed {run.seed}"
        group = [r for r in runs if (r.seed, r.task) == (run.seed, run.task)]
        if run is group[0]:
            # Start a (seed, task) group only if all its sides fit in the worst case, so that
            # a time limit drops the same runs for every side.
            worst = sum(r.budget_s + START_OVERHEAD_S for r in group)
            if elapsed + worst > args.max_minutes * 60:
                skipping.add((run.seed, run.task))
        if (run.seed, run.task) in skipping:
            result = {"skipped": f"skipped: suite time limit of {args.max_minutes:.0f} min"}
        else:
            result = execute(run, args.python, args.torch_threads, args.timeout_grace)
        result.update(side=run.side, task=run.task, seed=run.seed)
        result.setdefault("budget_s", run.budget_s)
        results.append(result)
        print(f"{label}  {summary_line(result)}", flush=True)
    wall = time.perf_counter() - suite_start

    args.load_before, args.load_after = load_before, load_average()
    text, by_task = report(results, args, args.python, wall)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    try:
        plot(by_task, args.out.with_suffix(".png"))
    except Exception as exc:  # a missing matplotlib must not lose the tables
        print(f"plot failed: {exc}")
    print()
    print(text)
    print(f"written: {args.out}, {args.out.with_suffix('.png')}, {args.out.with_suffix('.json')}")
    return 0


def summary_line(r: dict) -> str:
    if "skipped" in r:
        return r["skipped"]
    if "error" in r:
        return "FAILED: " + r["error"].strip().splitlines()[-1][:160]
    if r["task"] == tasks.CARTPOLE:
        if r["solved"]:
            return f"solved in {r['time_s']:.1f} s, {r['steps']} steps, {r['episodes']} episodes"
        best = r.get("best_eval_mean") or r.get("best_eval_lower_bound")
        late = r.get("solved_after_cap_s")
        return f"not solved in {r['budget_s']:.0f} s (best eval ≥ {best})" + (
            f", solved at {late:.1f} s after the cap" if late else ""
        )
    if r["task"] == tasks.DIGITS:
        t96 = r["time_to_96_s"]
        return f"test acc {100 * r['final_test_acc']:.1f} %, to 96 %: " + (
            f"{t96:.1f} s" if t96 is not None else "not reached"
        )
    return f"best return {r['best_return']:.1f} (final {r['final_return']:.1f})"


if __name__ == "__main__":
    raise SystemExit(main())
