"""Search for an optimizer: update rules as programs, trained on a suite of small tasks.

    python sample_scripts/optimizer_search.py                       # evolution from random, ~13 min
    python sample_scripts/optimizer_search.py --start lion          # evolution from Lion
    python sample_scripts/optimizer_search.py --method agent        # ES-trained editing policy
    python sample_scripts/optimizer_search.py --method family       # ES over a rule family
    python sample_scripts/optimizer_search.py --tiny --max-generations 3   # smoke test

Prints the best rule as text and as an importable optimizer (also written to
``OUT_DIR/found_rule.py``), plots the best reward against the number of candidates scored
(``OUT_DIR/reward.png``), and compares the rule with AdamW and Lion on the held-out task.

The limits (``--max-seconds``, ``--max-generations``, ``--max-evaluations``) are totals over the
whole search, resumed parts included: an interrupted run resumed with the same flags plus
``--resume`` stops where the uninterrupted run would have.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from es_opt.cli import arg, parse_config, run_main
from es_opt.search import RULES, ProgramOptimizer, load_rule, optimizer_source, prune
from es_opt.search.evaluate import LRS, SuiteEvaluator, run_grid, tune
from es_opt.search.parallel import Evaluations
from es_opt.search.tasks import HELD_OUT, SUITE, make_task

METHODS = ("evolution", "agent", "family")


@dataclass
class Args:
    method: str = arg(
        "evolution",
        "evolution (regularised evolution), agent (an editing policy trained by ES) or family "
        "(ES over a continuous family of rules)",
        choices=METHODS,
    )
    start: str = arg(
        "random", "the rule to start from: random programs, or a shipped rule",
        choices=("random", *RULES),
    )  # fmt: skip
    max_seconds: float = arg(600.0, "seconds of search in all, resumed parts included")
    max_generations: int | None = arg(None, "generations in all (default: no limit)")
    max_evaluations: int | None = arg(
        None, "rules (evolution) or ES members (agent, family) scored in all (default: no limit)"
    )
    budget_seconds: float | None = arg(
        None, "deprecated: seconds for this invocation only; use --max-seconds"
    )
    workers: int = arg(2, "evaluation processes")
    seed: int = arg(0, "seed of the search")
    early_stopping: str = arg(
        "halving", "learning-rate runs stopped early: successive halving, a learning-curve "
        "predictor, or none", choices=("halving", "curve", "none"),
    )  # fmt: skip
    aggregate: str = arg(
        "mean", "reward from the task scores: their mean, or the worst task (better everywhere)",
        choices=("mean", "min"),
    )  # fmt: skip
    novelty_tries: int = arg(
        20, "evolution: redraws of a child whose rule was already drawn (0: keep duplicates)"
    )
    rewire: bool = arg(False, "evolution: also mutate by redrawing one argument of a statement")
    state_recurrence: float = arg(
        0.0, "evolution: chance that a drawn statement writing a state reads it first"
    )
    held_out_seeds: int = arg(3, "seeds of the held-out comparison")
    out_dir: str = arg("runs/optimizer_search", "where the cache, checkpoint, plot and rule go")
    tiny: bool = arg(
        False, "two short tasks (no data set to load) and three learning rates: a smoke test"
    )
    resume: bool = arg(False, "continue the search from OUT_DIR's checkpoint")

    def __post_init__(self) -> None:
        for name in ("workers", "held_out_seeds"):
            if getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be >= 1, got {getattr(self, name)}")
        for name in ("max_seconds", "max_generations", "max_evaluations", "budget_seconds"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if self.novelty_tries < 0:
            raise ValueError(f"--novelty-tries must be >= 0, got {self.novelty_tries}")
        if not 0.0 <= self.state_recurrence <= 1.0:
            raise ValueError(f"--state-recurrence must be in [0, 1], got {self.state_recurrence}")


def parse_args(argv: list[str] | None = None) -> Args:
    return parse_config(Args, argv, description=__doc__)


def build_search(args: Args, evaluator: SuiteEvaluator, evaluations: Evaluations | None, out: Path):
    """The searcher ``--method`` names (evolution scores its rules through ``evaluations``)."""
    start = None if args.start == "random" else load_rule(args.start)
    if args.method == "evolution":
        from es_opt.search.evolution import RegularizedEvolution

        return RegularizedEvolution(
            evaluations,
            population_size=20,
            seed=args.seed,
            start=None if start is None else [start],
            novelty_tries=args.novelty_tries,
            rewire=args.rewire,
            state_recurrence=args.state_recurrence,
        )
    if args.method == "agent":
        from es_opt.search.agent import ESAgentSearch

        return ESAgentSearch(
            evaluator,
            start or load_rule("sgd_momentum"),
            out / "cache",
            seed=args.seed,
            n_workers=args.workers,
        )
    from es_opt.search.family import FamilySearch

    return FamilySearch(evaluator, seed=args.seed, n_workers=args.workers)


def report(search, record: dict) -> None:
    """A line for the first two generations, then each time the number of candidates scored
    passes a multiple of 50."""
    if (
        search.generation > 1
        and record["evaluations"] // 50 == (record["evaluations"] - len(record["rewards"])) // 50
    ):
        return
    print(
        f"generation {record['generation']}, {record['evaluations']} scored: mean "
        f"{record['mean_reward']:.3f}, best rule {record['best_reward']:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
    limits = {
        "max_seconds": args.max_seconds,
        "max_generations": args.max_generations,
        "max_evaluations": args.max_evaluations,
    }
    if args.budget_seconds is not None:
        print("--budget-seconds is deprecated: use --max-seconds (a total, resumes included)")
        limits = {**limits, "max_seconds": None, "budget_seconds": args.budget_seconds}

    evaluations = None
    if args.method == "evolution":  # the ES searchers score rules inside their own workers
        evaluations = Evaluations(evaluator, out / "cache", n_workers=args.workers)
    try:
        with build_search(args, evaluator, evaluations, out) as search:
            if args.resume and checkpoint.exists():
                search.load(checkpoint)
                print(f"resumed at generation {search.generation} ({search.evaluations} scored)")
            search.run(**limits, on_step=report, checkpoint_path=checkpoint)
    finally:
        if evaluations is not None:
            evaluations.close()
    best, reward = search.best()
    curve = [(h["evaluations"], h["best_reward"]) for h in search.history]
    if evaluations is not None:
        n, trained, rate = search.evaluations, evaluations.evaluated, evaluations.hit_rate
        print(f"{n} evaluations, {trained} trained, cache hit rate {rate:.2f}")

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
    ax.set_xlabel("rules scored" if args.method == "evolution" else "ES members scored")
    ax.set_ylabel("best reward")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "reward.png")
    print(f"plot: {out / 'reward.png'}; total {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
