"""Search for an optimizer: update rules as programs, trained on a suite of small tasks.

    python sample_scripts/optimizer_search.py                       # evolution from random, ~13 min
    python sample_scripts/optimizer_search.py --start lion          # evolution from Lion
    python sample_scripts/optimizer_search.py --method agent        # ES-trained editing policy
    python sample_scripts/optimizer_search.py --method family       # ES over a rule family
    python sample_scripts/optimizer_search.py --tiny --budget-seconds 5   # smoke test

Prints the best rule as text and as an importable optimizer (also written to
``OUT_DIR/found_rule.py``), plots the best reward against evaluations (``OUT_DIR/reward.png``),
and compares the rule with AdamW and Lion on the held-out task. Resume an interrupted run with
the same arguments plus ``--resume``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from es_opt.search import ProgramOptimizer, load_rule, optimizer_source, prune
from es_opt.search.evaluate import LRS, SuiteEvaluator, run_grid, tune
from es_opt.search.parallel import Evaluations
from es_opt.search.tasks import HELD_OUT, SUITE, make_task


@dataclass
class Args:
    method: str = "evolution"
    """evolution (regularised evolution), agent (ES-trained editing policy) or family (ES)"""
    start: str = "random"
    """random, or a shipped rule to start from: lion, adamw, ligi, sgd_momentum, radam_like"""
    budget_seconds: float = 600.0
    """wall-clock budget of the search itself"""
    workers: int = 2
    """evaluation processes"""
    seed: int = 0
    """seed of the search"""
    early_stopping: str = "halving"
    """halving, curve or none"""
    aggregate: str = "mean"
    """reward from the task scores: mean, or min (the worst task: better everywhere)"""
    novelty_tries: int = 20
    """evolution: redraws of a child whose rule was already drawn (0: keep duplicates)"""
    rewire: bool = False
    """evolution: also mutate by redrawing one argument of a statement"""
    state_recurrence: float = 0.0
    """evolution: chance that a drawn statement writing a state reads it first"""
    held_out_seeds: int = 3
    """seeds of the held-out comparison"""
    out_dir: str = "runs/optimizer_search"
    """where the cache, checkpoint, plot and found rule go"""
    tiny: bool = False
    """two short tasks (no data set to load) and three learning rates, for a smoke test"""
    resume: bool = False
    """continue from OUT_DIR's checkpoint"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in fields(Args):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action="store_true", help=f.metadata.get("help"))
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default)
    return Args(**vars(parser.parse_args()))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        tasks = (make_task("ill_conditioned", 18), make_task("ngram_lm", 18))  # no data to load
        lrs = (0.01, 0.03, 0.1)
        held_out = (make_task("sine_regression", 30),)
    else:
        tasks, lrs, held_out = SUITE, LRS, HELD_OUT
    t0 = time.monotonic()
    adam = tune(lambda p, lr: torch.optim.Adam(p, lr=lr), tasks, lrs)
    baselines = {name: r.loss for name, r in adam.items()}
    print(f"tuned Adam on {len(tasks)} tasks in {time.monotonic() - t0:.1f}s: {baselines}")
    early = None if args.early_stopping == "none" else args.early_stopping
    evaluator = SuiteEvaluator(
        baselines, tasks, lrs, early_stopping=early, aggregate=args.aggregate
    )
    checkpoint = out / f"{args.method}-checkpoint"
    start = None if args.start == "random" else load_rule(args.start)
    curve: list[tuple[int, float]] = []

    if args.method == "evolution":
        from es_opt.search.evolution import RegularizedEvolution

        with Evaluations(evaluator, out / "cache", n_workers=args.workers) as evaluations:
            search = RegularizedEvolution(
                evaluations,
                population_size=20,
                seed=args.seed,
                start=None if start is None else [start],
                novelty_tries=args.novelty_tries,
                rewire=args.rewire,
                state_recurrence=args.state_recurrence,
            )
            if args.resume and checkpoint.exists():
                search.load(checkpoint)

            def report(s, records):
                if len(s.history) % 50 < len(records):
                    best_reward, rate = s.best()[1], evaluations.hit_rate
                    print(f"evaluations {len(s.history)}: best {best_reward:.3f}, hits {rate:.2f}")

            search.run(
                budget_seconds=args.budget_seconds, callback=report, checkpoint_path=checkpoint
            )
            best, reward = search.best()
            curve = [(h["evaluation"], h["best"]) for h in search.history]
            n, trained, rate = len(search.history), evaluations.evaluated, evaluations.hit_rate
            print(f"{n} evaluations, {trained} trained, cache hit rate {rate:.2f}")
    elif args.method == "agent":
        from es_opt.search.agent import ESAgentSearch

        search = ESAgentSearch(
            evaluator,
            start or load_rule("sgd_momentum"),
            out / "cache",
            seed=args.seed,
            n_workers=args.workers,
        )
        if args.resume and checkpoint.exists():
            search.load(checkpoint)
        search.run(
            budget_seconds=args.budget_seconds,
            checkpoint_path=checkpoint,
            callback=lambda s, r: print(
                f"generation {r['generation']}: mean return {r['mean_return']:.3f}, "
                f"best rule {r['best_reward']:.3f}"
            ),
        )
        search.close()
        reward, text = search.best
        from es_opt.search import parse_program

        best = parse_program(text)
        curve = [(r["generation"], r["best_reward"]) for r in search.history]
    elif args.method == "family":
        from es_opt.search.family import FamilySearch, family_program

        search = FamilySearch(evaluator, seed=args.seed, n_workers=args.workers)
        if args.resume and checkpoint.exists():
            search.load(checkpoint)
        search.run(
            budget_seconds=args.budget_seconds,
            checkpoint_path=checkpoint,
            callback=lambda s, r: print(
                f"generation {r['generation']}: mean member reward {r['mean_reward']:.3f}"
            ),
        )
        search.close()
        best, reward = family_program(search.phi), search.center_reward()
        curve = [(r["generation"], r["max_reward"]) for r in search.history]
    else:
        raise SystemExit(f"--method must be evolution, agent or family, got {args.method!r}")

    best = prune(best)  # the same updates without dead statements
    print(f"\nbest reward {reward:.3f} (1.0 = tuned Adam); the rule:\n{best}\n")
    source = optimizer_source(best, "FoundRule")
    (out / "found_rule.py").write_text(source)
    print(f"as an optimizer ({out / 'found_rule.py'}):\n{source}")

    makers = {
        "found": lambda p, lr: ProgramOptimizer(p, best, lr=lr, foreach=True),
        "adamw": lambda p, lr: torch.optim.AdamW(p, lr=lr),
        "lion": lambda p, lr: ProgramOptimizer(p, load_rule("lion"), lr=lr, foreach=True),
    }
    comparison = {}
    for task in held_out:
        for name, make in makers.items():
            losses = [
                run_grid(make, task, lrs, seed, None)[0].loss for seed in range(args.held_out_seeds)
            ]
            comparison[f"{task.name}/{name}"] = losses
            print(f"held-out {task.name} {name}: loss " + ", ".join(f"{x:.4f}" for x in losses))
    (out / "result.json").write_text(
        json.dumps({"reward": reward, "rule": str(best), "held_out": comparison, "curve": curve})
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([x for x, _ in curve], [y for _, y in curve])
    ax.axhline(1.0, color="gray", linestyle="--", label="tuned Adam")
    ax.set_xlabel("evaluations" if args.method == "evolution" else "generations")
    ax.set_ylabel("best reward")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "reward.png")
    print(f"plot: {out / 'reward.png'}; total {time.monotonic() - t0:.0f}s")


if __name__ == "__main__":
    main()
