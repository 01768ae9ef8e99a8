"""Time and environment steps for sample_scripts/rl.py to solve its task, over several seeds.

    python benchmarks/rl.py                       # CartPole-v1, 5 seeds, 3 evaluation modes
    python benchmarks/rl.py --seeds 2 --modes vectorised
    python benchmarks/rl.py --env HalfCheetah-v5 --seeds 1 --modes multiprocess --budget 300

Each run is the sample script in a fresh process with its defaults (plus the mode's flags), so
the numbers are what a user sees. ``train_s`` is the script's own clock: from the first step
(the evaluator and its worker processes are started lazily, so their start-up counts) to the
evaluation that found the task solved, greedy evaluations included. ``process_s`` adds the
interpreter start and the imports. Steps are training environment steps (evaluation episodes
excluded; with worker processes they are not counted, but the trajectory is the serial one, so
the serial count holds). Goal (docs/rl.md): CartPole-v1 median ≤ 3 s on 2 cores, defaults.
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


def overhead(env: str, members: int, steps: int) -> None:
    """µs per environment step: a bare gymnasium loop (one env, a constant action, the reference)
    against es_opt's vectorised rollout (linear policy, observation normalisation and statistics),
    measured in the same process, interleaved, best of 3."""
    import gymnasium as gym
    import torch

    import es_opt
    from es_opt.evaluators.stacked import StackedModel
    from es_opt.rl import EpisodeReturn, EpisodeSamples

    torch.set_num_threads(1)
    objective = EpisodeReturn(env, max_episode_steps=steps, normalize_observations=True)
    net = torch.nn.Linear(objective.obs_dim, objective.action_map.n_outputs)
    torch.nn.init.zeros_(net.weight)
    es = es_opt.ESOptimizer(net, objective_fn=objective, n_samples=members, sigma=0.03)
    population = es.ask()
    raw = gym.make(env, max_episode_steps=steps)
    action = raw.action_space.sample() * 0
    best_raw = best_es = float("inf")
    for _ in range(3):
        raw.reset(seed=0)
        start, n = time.perf_counter(), 0
        for _ in range(members):
            raw.reset(seed=n)
            done = False
            while not done:
                _, _, terminated, truncated, _ = raw.step(action)
                done, n = terminated or truncated, n + 1
        best_raw = min(best_raw, (time.perf_counter() - start) / n * 1e6)
        start = time.perf_counter()
        stacked = StackedModel(es.model, population, range(members))
        objective.evaluate_population(stacked, EpisodeSamples((1,)))
        took = sum(steps for steps, _ in objective.collect_stats())
        best_es = min(best_es, (time.perf_counter() - start) / took * 1e6)
    print(
        f"{env}: bare gymnasium loop {best_raw:.1f} µs/step, es_opt vectorised rollout "
        f"{best_es:.1f} µs/step ({members} members): overhead x{best_es / best_raw:.2f}"
    )


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (range {min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0 .. seeds-1")
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    p.add_argument("--budget", type=float, default=120.0, help="generations cap in seconds")
    p.add_argument("--overhead", action="store_true", help="only measure µs per env step")
    p.add_argument("flags", nargs="*", help="extra flags for the script (after --)")
    args = p.parse_args(argv)
    if args.overhead:
        overhead(args.env, members=48, steps=1000)
        return 0
    runs: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    for seed in range(args.seeds):  # modes interleaved: a load change hits them all alike
        for mode in args.modes:
            run = run_once(args.env, seed, MODES[mode] + args.flags, args.budget)
            runs[mode].append(run)
            print(f"  {mode:14s} seed {seed}: {run}", flush=True)
    for mode, mode_runs in runs.items():
        solved = [r for r in mode_runs if r["solved"]]
        print(f"{args.env} {mode}: solved {len(solved)}/{len(mode_runs)}")
        if solved:
            print(f"  train wall s   {summary([r['train_s'] for r in solved])}")
            print(f"  process wall s {summary([r['process_s'] for r in solved])}")
            if any(
                r["steps"] for r in solved
            ):  # workers' steps are not counted in the main process
                print(f"  env steps      {summary([r['steps'] for r in solved])}")
            print(f"  generations    {summary([r['generations'] for r in solved])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
