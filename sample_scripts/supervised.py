"""Train a classifier on raw accuracy (no gradient) with evolution strategies.

    python sample_scripts/supervised.py                     # digits, 64-64-10 MLP, ~96 % test
    python sample_scripts/supervised.py --model cnn
    python sample_scripts/supervised.py --l1-weight 0.1     # accuracy vs L1 norm of the weights
    python sample_scripts/supervised.py --data-dir ~/mnist  # MNIST from local IDX files

The default data set is scikit-learn's bundled 8×8 digits (no download), split 80/20 stratified
and standardised. Every generation evaluates ``--n-samples`` perturbed networks on the training
set (or a ``--batch-size`` minibatch) in batched calls (torch.func.vmap), and the test accuracy of
the center is checked every ``--eval-every`` generations. The run prints the final test accuracy,
the time and the number of evaluations, when the test accuracy first reached 96 %, and saves a
CSV log and a learning curve under ``--out``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import es_opt
from es_opt.cli import (
    OPTIMIZERS,
    RESTARTS,
    arg,
    build_optimizer,
    check_restarts,
    parse_config,
    run_main,
)
from es_opt.distributions import DISTRIBUTIONS
from es_opt.distributions.stopping import StopConditions
from es_opt.perturbations import make_perturbation
from es_opt.supervised import Accuracy, L1Norm, MultiObjective, NegativeCrossEntropy
from es_opt.supervised.datasets import load_digits, load_mnist
from es_opt.training.callbacks import Callback, Checkpoint, CSVLogger, ProgressBar
from es_opt.training.checkpoint import load_checkpoint
from es_opt.training.restarts import RestartOnStop

MILESTONE = 0.96  # the test accuracy whose first crossing is reported (and benchmarked)
BACKENDS = ("serial", "multiprocess", "ray")


@dataclass
class Args:
    seed: int = arg(0, "seed of the run (weights, noise, batches)")
    data_dir: str = arg("", "folder of MNIST IDX files (default: digits)")
    model: str = arg("mlp", "network", choices=("mlp", "cnn"))
    hidden: int = arg(64, "hidden units of the mlp")
    activation: str = arg("tanh", "activation of the mlp", choices=("tanh", "relu"))
    objective: str = arg("accuracy", "what ES maximises", choices=("accuracy", "cross_entropy"))
    l1_weight: float = arg(0.0, "> 0: also minimise the L1 norm")
    sigma: float = arg(0.1, "perturbation standard deviation")
    perturbation: str = arg("dense", "perturbation family: dense, lowrank or 'lowrank(R)' (rank R)")
    distribution: str = arg("openai", "search distribution: openai (scalar sigma), pgpe, "
                            "snes, cem (sigma per parameter), cma or sep_cma (adapted covariance)",
                            choices=tuple(DISTRIBUTIONS))  # fmt: skip
    n_samples: int = arg(200, "evaluations per generation (even)")
    shaping: str = arg(
        "centered_ranks", "centered_ranks, centered_ranks_ordinal, z_score, raw or top_pairs(k)"
    )
    lr: float = arg(0.05, "learning rate of the inner optimizer")
    lr_final: float = arg(0.1, "cosine decay of lr to lr*LR_FINAL over --decay-generations")
    decay_generations: int = arg(150, "length of the lr decay (then lr stays at its final value)")
    optimizer: str = arg("adam", "inner optimizer", choices=OPTIMIZERS)
    momentum: float = arg(0.9, "momentum of --optimizer sgd or clipup")
    max_speed: float | None = arg(None, "speed limit of --optimizer clipup (default: 2 * lr)")
    betas: tuple[float, float] = arg((0.9, 0.9), "betas of --optimizer rangerlite")
    batch_size: int = arg(0, "examples per generation (0: all)")
    generations: int = arg(150, "generations to run")
    target: float = arg(0.0, "stop at this test accuracy (0: never)")
    eval_every: int = arg(5, "test the center every N generations")
    backend: str = arg(
        "auto",
        "where evaluations run (auto: a pool when --workers > 1)",
        choices=("auto", *BACKENDS),
    )
    workers: int = arg(0, "workers of the parallel backends (0: auto)")
    max_batch: int = arg(0, "members per batched call (0: auto)")
    vectorize: bool = arg(True, "evaluate the members in batched calls (torch.func.vmap)")
    out: str = arg("runs/supervised", "folder for the checkpoint, log and curve")
    record: str = arg("", "write a run record here (replay: python -m es_opt.record)")
    resume: str = arg("", "continue the run saved in this checkpoint")
    checkpoint_every: int = arg(10, "save a checkpoint every N generations")
    quiet: bool = arg(False, "no progress bar")
    restarts: str = arg("none", "restart the run whenever it stops progressing: ipop (population "
                        "doubled each time) or bipop (Hansen 2009)", choices=RESTARTS)  # fmt: skip
    max_restarts: int = arg(9, "restarts after the first run (--restarts ipop or bipop)")
    restart_generations: int | None = arg(
        None, "with --restarts: end a run after this many generations (default: pycma's "
        "100 + 150 (d + 3)^2 / sqrt(n_samples), far beyond a network's budget)"
    )  # fmt: skip

    def __post_init__(self) -> None:
        check_restarts(self.restarts, self.max_restarts, self.record, self.restart_generations)
        if not 0.0 <= self.lr_final <= 1.0:
            raise ValueError(
                f"--lr-final must be in [0, 1] (a fraction of --lr), got {self.lr_final}"
            )
        if self.decay_generations < 1:
            raise ValueError(f"--decay-generations must be >= 1, got {self.decay_generations}")
        try:
            make_perturbation(self.perturbation)
        except ValueError as exc:
            raise ValueError(f"--perturbation: {exc}") from None


def parse_args(argv: list[str] | None = None) -> Args:
    return parse_config(Args, argv, description=__doc__)


def build_net(args: Args, n_features: int, n_classes: int) -> nn.Module:
    torch.manual_seed(args.seed)  # the initial weights are part of the run's seed
    if args.model == "mlp":
        act = nn.Tanh() if args.activation == "tanh" else nn.ReLU()
        return nn.Sequential(
            nn.Linear(n_features, args.hidden), act, nn.Linear(args.hidden, n_classes)
        )
    side = int(round(n_features**0.5))
    return nn.Sequential(
        nn.Unflatten(1, (1, side, side)),
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * (side // 2) ** 2, n_classes),
    )


def build_objective(args: Args):
    options = dict(max_batch=args.max_batch or None, vectorize=args.vectorize)
    main = Accuracy(**options) if args.objective == "accuracy" else NegativeCrossEntropy(**options)
    if args.l1_weight > 0:
        return MultiObjective(main, L1Norm(**options)), [1.0, -args.l1_weight]
    return main, [1.0]


def build(args: Args, n_features: int, n_classes: int) -> es_opt.ESOptimizer:
    net = build_net(args, n_features, n_classes)
    objective, weights = build_objective(args)
    optimizer = build_optimizer(
        args.optimizer,
        net.parameters(),
        args.lr,
        betas=args.betas,
        momentum=args.momentum,
        max_speed=args.max_speed,
    )
    return es_opt.ESOptimizer(
        es_opt.Model(net),
        optimizer,
        objective_fn=objective,
        obj_weights=weights,
        sigma=args.sigma,
        n_samples=args.n_samples,
        shaping=args.shaping,
        n_workers=args.workers or None,
        seed=args.seed,
        backend=None if args.backend == "auto" else args.backend,
        perturbation=args.perturbation,
        distribution=args.distribution,
    )


class CosineLR(Callback):
    """Sets the inner optimizer's lr for the next generation ``g`` of ``total`` to
    ``lr · (f + (1 − f) · (1 + cos(π g / total)) / 2)``: a function of the generation only, so a
    resumed run follows the same schedule."""

    def __init__(self, lr: float, final: float, total: int):
        self.lr, self.final, self.total = lr, final, max(1, total)

    def on_step(self, es, result) -> None:
        progress = min(1.0, es.generation / self.total)
        scale = self.final + (1.0 - self.final) * (1.0 + math.cos(math.pi * progress)) / 2.0
        for group in es.optimizer.param_groups:
            group["lr"] = self.lr * scale


class TestAccuracy(Callback):
    """Tests the center every ``every`` generations; records when it first reached
    :data:`MILESTONE` and stops the run at ``target``."""

    def __init__(self, model: es_opt.Model, test, every: int, target: float, start: float):
        self.model, self.test, self.every, self.target = model, test, every, target
        self.start, self.accuracy, self.milestone = start, float("nan"), None
        self.generation, self.evaluations = -1, {}  # generation -> test accuracy

    def measure(self) -> float:
        with torch.no_grad():
            self.accuracy = Accuracy()(self.model, self.test)
        self.evaluations[self.generation] = self.accuracy
        if self.milestone is None and self.accuracy >= MILESTONE:
            self.milestone = (time.perf_counter() - self.start, self.generation)
        return self.accuracy

    def on_step(self, es, result) -> bool:
        self.generation = result.generation
        if (result.generation + 1) % self.every == 0:
            self.measure()
        return self.target > 0 and self.accuracy >= self.target


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data_dir:
        train, test = load_mnist(args.data_dir)
    else:
        train, test = load_digits(seed=0)  # a fixed split: runs with different seeds compare
    es = build(args, train.inputs.shape[1], int(train.targets.max()) + 1)

    if args.resume:  # the same flags continue the saved run bit for bit
        load_checkpoint(args.resume, es)

    def samples(generation: int):
        if args.batch_size <= 0:
            return train
        return train.minibatch(args.batch_size, seed=args.seed, generation=generation)

    out = Path(args.out)
    start = time.perf_counter()
    check = TestAccuracy(es.model, test, args.eval_every, args.target, start)
    names = ["accuracy" if args.objective == "accuracy" else "-CE"] + ["L1"] * (args.l1_weight > 0)
    target = args.target if args.target > 0 else MILESTONE

    def solved_metrics(result) -> dict[str, float]:  # the test accuracy against its target
        tested = check.evaluations.get(result.generation, math.nan)
        return {"test_accuracy": tested, "target_accuracy": target}

    restarts = []
    if args.restarts != "none":
        restarts.append(
            RestartOnStop(
                args.restarts,
                max_restarts=args.max_restarts,
                conditions=StopConditions(maxiter=args.restart_generations),
            )
        )
    callbacks: list[Callback] = [
        check,
        CSVLogger(out / "log.csv", extra=solved_metrics),
        *restarts,  # before the checkpoint, which then holds their bookkeeping
        Checkpoint(out / "checkpoint.pt", every=args.checkpoint_every, config=args),
    ]
    if args.lr_final != 1.0:  # before the checkpoint, so a saved state holds the next lr
        callbacks.insert(1, CosineLR(args.lr, args.lr_final, args.decay_generations))
    if args.record:  # last: it records the settings (the lr) after the schedule set them
        from es_opt.record import RunRecord

        callbacks.append(RunRecord(args.record, config=args))
    if not args.quiet:
        extra = lambda result: {"test": f"{check.accuracy:.3f}"}  # noqa: E731
        callbacks.insert(0, ProgressBar(objective_names=names, extra=extra, desc="digits"))
    with es:
        remaining = max(0, args.generations - es.generation)
        history = es.fit(samples, generations=remaining, callbacks=callbacks)
    elapsed = time.perf_counter() - start
    accuracy = check.measure()
    evaluations = sum(result.n_evals for result in history)
    print(
        f"test accuracy {accuracy:.4f} after {len(history)} generations, {evaluations} "
        f"evaluations, {elapsed:.1f} s"
    )
    if check.milestone is not None:
        seconds, generation = check.milestone
        print(f"test accuracy reached {MILESTONE:.0%} at generation {generation}, {seconds:.1f} s")
    print(f"L1 norm of the weights {L1Norm()(es.model, None):.1f}")
    try:
        from es_opt.training.plot import plot_history

        plot_history(
            history, out / "curve.png", title="ES on raw accuracy", objective_names=names,
            evaluation=check.evaluations, evaluation_label="test accuracy", target=target,
        )  # fmt: skip
        print(f"learning curve: {out / 'curve.png'}")
    except ImportError as exc:  # matplotlib is an optional extra
        print(f"no learning curve ({exc})")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
