"""Optimizer-search measurements: searches under a wall-clock budget, baselines on the suite,
the held-out task, early-stopping savings and fidelity, parallel speed-up.

Each subcommand prints one JSON line (and writes it to ``--out`` if given)::

    python benchmarks/optimizer_search.py evolution --start random --minutes 30 --out evo.json
    python benchmarks/optimizer_search.py evolution --start lion --minutes 20
    python benchmarks/optimizer_search.py family --minutes 25
    python benchmarks/optimizer_search.py agent --minutes 10
    python benchmarks/optimizer_search.py compare --rules evo.json family.json
    python benchmarks/optimizer_search.py references --suite-seeds 0 1 2 3 4
    python benchmarks/optimizer_search.py early-stopping --n-rules 40
    python benchmarks/optimizer_search.py parallel --n-rules 16
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from es_opt.search import RULES, ProgramOptimizer, load_rule, parse_program
from es_opt.search.evaluate import LRS, SuiteEvaluator, run_grid, tune
from es_opt.search.evolution import RegularizedEvolution
from es_opt.search.mutation import mutate, random_program
from es_opt.search.parallel import Evaluations
from es_opt.search.tasks import HELD_OUT, SUITE

REFERENCES = {
    "sgd_momentum": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
    "sgd_momentum_0.8": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.8),
    "sgd_momentum_0.95": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.95),
    "sgd_nesterov": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True),
    "adam": lambda p, lr: torch.optim.Adam(p, lr=lr),
    "adam_beta2_0.99": lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.9, 0.99)),
    "adam_eps_1e-3": lambda p, lr: torch.optim.Adam(p, lr=lr, eps=1e-3),
    "adamw": lambda p, lr: torch.optim.AdamW(p, lr=lr),
    "adamw_0.1": lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.1),
    "nadam": lambda p, lr: torch.optim.NAdam(p, lr=lr),
    "radam": lambda p, lr: torch.optim.RAdam(p, lr=lr),
    "adamax": lambda p, lr: torch.optim.Adamax(p, lr=lr),
    "rmsprop_momentum": lambda p, lr: torch.optim.RMSprop(p, lr=lr, momentum=0.9),
    "adagrad": lambda p, lr: torch.optim.Adagrad(p, lr=lr),
}
"""torch's optimizers, each tuned over the suite's grid, to see which beat SGD-momentum."""

BASELINES = {name: REFERENCES[name] for name in ("adam", "sgd_momentum")}
"""Optimizers whose tuned loss scores 1 on a task. Against SGD-momentum a task score above 1
means a lower loss than SGD-momentum there, so ``--aggregate min`` above 1 means better on every
task."""


def tuned_losses(name: str = "adam", seed: int = 0) -> dict[str, float]:
    """The named baseline's best loss per suite task over the learning-rate grid."""
    return {task: r.loss for task, r in tune(BASELINES[name], SUITE, LRS, seed).items()}


def adam_baselines(seed: int = 0) -> dict[str, float]:
    return tuned_losses("adam", seed)


def baselines_for(name: str, seeds: list[int] | None) -> dict[str, float]:
    """The named baseline tuned on seed 0, or on each of ``seeds`` (keys ``task@seed``)."""
    if not seeds:
        return tuned_losses(name)
    return {f"{task}@{s}": loss for s in seeds for task, loss in tuned_losses(name, s).items()}


def emit(result: dict, out: str | None) -> None:
    line = json.dumps(result)
    print(line, flush=True)
    if out:
        Path(out).write_text(line + "\n")


def statuses(history: list[dict]) -> dict[str, int]:
    """How many evaluations ended with each status (ok, funnel, hopeless, trivial, diverged)."""
    return dict(Counter(status for record in history for status in record["statuses"]))


def cmd_evolution(args: argparse.Namespace) -> None:
    evaluator = SuiteEvaluator(
        baselines_for(args.baseline, args.seeds),
        early_stopping=args.early_stopping,
        aggregate=args.aggregate,
        seeds=tuple(args.seeds) if args.seeds else None,
        funnel=args.funnel,
    )
    start = None if args.start == "random" else [load_rule(args.start)]
    cache = args.cache or tempfile.mkdtemp(prefix="search-cache-")
    t0 = time.monotonic()
    with Evaluations(evaluator, cache, n_workers=args.workers) as evaluations:
        evolution = RegularizedEvolution(
            evaluations,
            population_size=args.population,
            sample_size=5,
            batch_size=args.batch_size,
            seed=args.seed,
            start=start,
            novelty_tries=args.novelty_tries,
            rewire=args.rewire,
            state_recurrence=args.state_recurrence,
        )
        evolution.run(max_seconds=args.minutes * 60, checkpoint_path=args.checkpoint)
        elapsed = time.monotonic() - t0
        program, reward = evolution.best()
        emit(
            {
                "search": "evolution",
                "start": args.start,
                "seed": args.seed,
                "minutes": elapsed / 60,
                "workers": args.workers,
                "aggregate": args.aggregate,
                "baseline": args.baseline,
                "reward_seeds": args.seeds or [0],
                "novelty_tries": args.novelty_tries,
                "funnel": args.funnel,
                "rewire": args.rewire,
                "state_recurrence": args.state_recurrence,
                "batch_size": args.batch_size,
                "statuses": statuses(evolution.history),
                "distinct_rules": len(evolution.seen),
                "evaluations": evolution.evaluations,
                "trained": evaluations.evaluated,
                "cache_hit_rate": evaluations.hit_rate,
                "evaluations_per_hour": evolution.evaluations / elapsed * 3600,
                "best_reward": reward,
                "best_rule": str(program),
                "curve": [[h["evaluations"], h["best_reward"]] for h in evolution.history],
            },
            args.out,
        )


def cmd_family(args: argparse.Namespace) -> None:
    from es_opt.search.family import FamilySearch, family_program, family_values

    evaluator = SuiteEvaluator(adam_baselines(), early_stopping=None)
    search = FamilySearch(
        evaluator, seed=args.seed, n_workers=args.workers, n_samples=args.n_samples
    )
    t0 = time.monotonic()
    curve = []

    def report(s: FamilySearch, record: dict) -> None:
        if record["generation"] % 10 == 0:
            curve.append([record["generation"], time.monotonic() - t0, s.center_reward()])
            print(json.dumps({"progress": curve[-1], **record}), flush=True)

    with search:
        search.run(max_seconds=args.minutes * 60, on_step=report, checkpoint_path=args.checkpoint)
    final = search.center_reward()
    best_program, best_reward = search.best()
    emit(
        {
            "search": "family",
            "seed": args.seed,
            "minutes": (time.monotonic() - t0) / 60,
            "generations": search.generation,
            "center_reward": final,
            "best_member_reward": best_reward,
            "best_member_lr": 10 ** float(search.best_phi[5]),
            "best_member_rule": str(best_program),
            "values": family_values(search.phi),
            "curve": curve,
            "best_rule": str(family_program(search.phi)),
            "lr": 10 ** float(search.phi[5]),
        },
        args.out,
    )


def cmd_agent(args: argparse.Namespace) -> None:
    from es_opt.search.agent import ESAgentSearch

    evaluator = SuiteEvaluator(adam_baselines(), early_stopping="halving")
    cache = args.cache or tempfile.mkdtemp(prefix="search-cache-")
    start = (
        random_program(np.random.default_rng(args.seed))
        if args.start == "random"
        else load_rule(args.start)
    )
    search = ESAgentSearch(evaluator, start, cache, seed=args.seed, n_workers=args.workers)
    t0 = time.monotonic()
    with search:
        search.run(max_seconds=args.minutes * 60, checkpoint_path=args.checkpoint)
    program, reward = search.best()
    emit(
        {
            "search": "agent",
            "start": args.start,
            "seed": args.seed,
            "minutes": (time.monotonic() - t0) / 60,
            "workers": args.workers,
            "generations": search.generation,
            "best_reward": reward,
            "best_rule": str(program),
            "history": search.history,
        },
        args.out,
    )


def score_table(make_optimizers: dict, tasks, seeds) -> dict:
    table = {}
    for name, make in make_optimizers.items():
        table[name] = {}
        for task in tasks:
            losses = [run_grid(make, task, LRS, s, None)[0].loss for s in seeds]
            table[name][task.name] = losses
    return table


def cmd_compare(args: argparse.Namespace) -> None:
    makers = {name: REFERENCES[name] for name in ("sgd_momentum", "adam", "adamw", "sgd_nesterov")}
    lion = load_rule("lion")
    makers["lion"] = lambda p, lr, r=lion: ProgramOptimizer(p, r, lr=lr, foreach=True)
    for path in args.rules:
        found = json.loads(Path(path).read_text())
        rule = parse_program(found["best_rule"])
        label = f"{found['search']}:{found.get('start', '')}:{Path(path).stem}"
        makers[label] = lambda p, lr, r=rule: ProgramOptimizer(p, r, lr=lr, foreach=True)
    suite = score_table(makers, SUITE, args.suite_seeds)
    held = score_table(makers, HELD_OUT, list(range(args.seeds)))
    key = "suite_seed0" if args.suite_seeds == [0] else "suite"
    emit(
        {
            key: suite,
            "suite_seeds": args.suite_seeds,
            "against_sgd_momentum": against(suite, "sgd_momentum"),
            "held_out": held,
        },
        args.out,
    )


def against(table: dict, reference: str) -> dict:
    """Per optimizer and task: seeds with a lower loss than ``reference``, and the ratio of the
    mean losses over the seeds (below 1: lower on average)."""
    ref = table[reference]
    return {
        name: {
            task: {
                "wins": sum(a < b for a, b in zip(losses, ref[task], strict=True)),
                "of": len(losses),
                "mean_loss_ratio": float(np.mean(losses) / np.mean(ref[task])),
            }
            for task, losses in tasks.items()
        }
        for name, tasks in table.items()
    }


def cmd_references(args: argparse.Namespace) -> None:
    table = score_table(REFERENCES, SUITE, args.suite_seeds)
    emit(
        {
            "suite": table,
            "suite_seeds": args.suite_seeds,
            "against_sgd_momentum": against(table, "sgd_momentum"),
        },
        args.out,
    )


def cmd_early_stopping(args: argparse.Namespace) -> None:
    baselines = adam_baselines()
    rng = np.random.default_rng(args.seed)
    rules = [load_rule(n) for n in RULES]
    while len(rules) < args.n_rules:
        parent = rules[int(rng.integers(len(RULES)))] if rng.random() < 0.7 else random_program(rng)
        rules.append(mutate(parent, rng))
    out = {}
    rewards = {}
    for mode in (None, "halving", "curve"):
        evaluator = SuiteEvaluator(baselines, early_stopping=mode)
        t0 = time.monotonic()
        results = [evaluator(r) for r in rules]
        rewards[mode] = [r.reward for r in results]
        out[str(mode)] = {
            "seconds": time.monotonic() - t0,
            "steps": sum(r.steps_run for r in results),
            "steps_full": sum(r.steps_full for r in results if r.status != "trivial"),
        }
    full = np.array(rewards[None])
    for mode in ("halving", "curve"):
        est = np.array(rewards[mode])
        rank_full, rank_est = full.argsort().argsort(), est.argsort().argsort()
        spearman = float(np.corrcoef(rank_full, rank_est)[0, 1])
        top = int(np.argmax(est))
        out[mode].update(
            {
                "spearman_vs_full": spearman,
                "top1_regret": float(full.max() - full[top]),
                "mean_abs_error": float(np.abs(full - est).mean()),
            }
        )
    emit({"n_rules": len(rules), **out}, args.out)


def cmd_parallel(args: argparse.Namespace) -> None:
    evaluator = SuiteEvaluator(adam_baselines(), early_stopping="halving")
    rng = np.random.default_rng(args.seed)
    rules = [mutate(load_rule("lion"), rng) for _ in range(args.n_rules)]
    rates = {}
    for workers in (1, 2):
        with Evaluations(evaluator, None, n_workers=workers) as evaluations:
            # warm every worker up (imports, data) before timing
            evaluations([mutate(load_rule("adamw"), rng) for _ in range(4 * workers)])
            t0 = time.monotonic()
            evaluations(rules)
            rates[workers] = args.n_rules / (time.monotonic() - t0) * 60
    emit({"candidates_per_minute": rates, "speedup": rates[2] / rates[1]}, args.out)


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    evo = sub.add_parser("evolution")
    evo.add_argument("--start", default="random", help="random or a shipped rule name")
    evo.add_argument("--minutes", type=float, default=30.0)
    evo.add_argument("--seed", type=int, default=0)
    evo.add_argument("--workers", type=int, default=1)
    evo.add_argument("--population", type=int, default=20)
    evo.add_argument("--early-stopping", default="halving")
    evo.add_argument("--aggregate", default="mean", help="mean or min of the task scores")
    evo.add_argument(
        "--baseline",
        default="adam",
        choices=tuple(BASELINES),
        help="the tuned optimizer whose loss scores 1 on each task",
    )
    evo.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="score every rule on these seeds (a task's score: its mean over them)",
    )
    evo.add_argument(
        "--funnel",
        type=float,
        default=None,
        help="with --seeds: train the other seeds only if the first seed's reward reaches this",
    )
    evo.add_argument("--batch-size", type=int, default=2, help="children drawn per cycle")
    evo.add_argument("--rewire", action="store_true", help="also mutate by redrawing one argument")
    evo.add_argument(
        "--state-recurrence",
        type=float,
        default=0.0,
        help="chance that a drawn statement writing a state reads it first",
    )
    evo.add_argument(
        "--novelty-tries", type=int, default=20, help="redraws of an already-drawn child (0: none)"
    )
    evo.add_argument("--cache", default=None)
    evo.add_argument("--checkpoint", default=None)
    fam = sub.add_parser("family")
    fam.add_argument("--minutes", type=float, default=25.0)
    fam.add_argument("--seed", type=int, default=0)
    fam.add_argument("--workers", type=int, default=1)
    fam.add_argument("--n-samples", type=int, default=8)
    fam.add_argument("--checkpoint", default=None)
    agent = sub.add_parser("agent")
    agent.add_argument("--start", default="random")
    agent.add_argument("--minutes", type=float, default=10.0)
    agent.add_argument("--seed", type=int, default=0)
    agent.add_argument("--workers", type=int, default=1)
    agent.add_argument("--cache", default=None)
    agent.add_argument("--checkpoint", default=None)
    comp = sub.add_parser("compare")
    comp.add_argument("--rules", nargs="*", default=[])
    comp.add_argument("--seeds", type=int, default=5, help="seeds of the held-out task")
    comp.add_argument(
        "--suite-seeds", type=int, nargs="+", default=[0], help="seeds of the suite's tasks"
    )
    ref = sub.add_parser("references")
    ref.add_argument("--suite-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    es = sub.add_parser("early-stopping")
    es.add_argument("--n-rules", type=int, default=40)
    es.add_argument("--seed", type=int, default=0)
    par = sub.add_parser("parallel")
    par.add_argument("--n-rules", type=int, default=16)
    par.add_argument("--seed", type=int, default=0)
    for p in (evo, fam, agent, comp, ref, es, par):
        p.add_argument("--out", default=None)
    args = parser.parse_args()
    {
        "evolution": cmd_evolution,
        "family": cmd_family,
        "agent": cmd_agent,
        "compare": cmd_compare,
        "references": cmd_references,
        "early-stopping": cmd_early_stopping,
        "parallel": cmd_parallel,
    }[args.command](args)


if __name__ == "__main__":
    main()
