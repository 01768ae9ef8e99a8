"""Train a policy on a gymnasium environment with evolution strategies.

    python sample_scripts/rl.py                        # CartPole-v1, solved in a few seconds
    python sample_scripts/rl.py --env Pendulum-v1
    python sample_scripts/rl.py --env HalfCheetah-v5   # needs: pip install "es_opt[mujoco]"
    python sample_scripts/rl.py --eval-only runs/rl/CartPole-v1/policy.pt --render cartpole.gif

Each environment has tuned defaults (PRESETS below); every flag overrides them. Training stops
when the greedy policy (the current center, no perturbation) reaches the target mean return over
``--eval-episodes`` episodes on seeds never used in training. The run writes a checkpoint
(policy.pt: weights, optimizer state, observation normaliser, configuration), a CSV log and a
learning curve (curve.png) to ``--out/<env>``, and prints the final evaluation.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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
from es_opt.rl import EpisodeReturn, EpisodeSamples, greedy_returns
from es_opt.training.callbacks import Callback, Checkpoint, CSVLogger, ProgressBar
from es_opt.training.checkpoint import load_checkpoint, save_checkpoint
from es_opt.training.restarts import RestartOnStop

EVAL_SEEDS_START = 10**9  # training seeds are 63-bit hashes: these are never trained on

# Tuned per environment (measured on a 2-core laptop-class CPU; see docs/rl.md).
PRESETS: dict[str, dict] = {
    # RangerLite's RAdam rectification ramps its step up over ~2/(1-beta2) steps: beta2=0.9 lets
    # short runs move from the first generations.
    "CartPole-v1": dict(
        policy="linear", sigma=0.1, n_samples=16, lr=0.1, betas=(0.9, 0.9), normalize=False
    ),
    "Acrobot-v1": dict(
        policy="linear", sigma=0.1, n_samples=16, lr=0.1, betas=(0.9, 0.9), normalize=True
    ),
    # Pendulum: large steps (sigma 0.5, lr 0.6) swing up within a minute (-220 to -290 over
    # seeds 0-2); sigma 0.1-0.3 or lr 0.05-0.2 (RangerLite or Adam) stayed near -1,000.
    "Pendulum-v1": dict(
        policy="mlp",
        hidden=32,
        sigma=0.5,
        n_samples=40,
        lr=0.6,
        betas=(0.9, 0.9),
        action="tanh",
        normalize=True,
        target=-200.0,
    ),
    "MountainCarContinuous-v0": dict(
        policy="linear", sigma=0.5, n_samples=20, lr=0.1, betas=(0.9, 0.9), normalize=True
    ),
    # MuJoCo: ARS V2-t (Mania et al. 2018, their HalfCheetah settings): a linear policy from zero,
    # observation normalisation, 32 directions of which the best 4 make the step, returns divided
    # by their std, plain SGD with lr = 2 σ α (α = 0.02). 1,000-step episodes make a generation
    # long enough for worker processes to pay.
    "HalfCheetah-v5": dict(
        policy="linear",
        sigma=0.03,
        n_samples=64,
        shaping="top_pairs(4)",
        optimizer="sgd",
        momentum=0.0,
        lr=2 * 0.03 * 0.02,
        normalize=True,
        target=3000.0,
        backend="multiprocess",
    ),
    # ARS's Hopper settings (V2-t: 8 directions, best 4, α 0.01, σ 0.025, reward shift −1: the
    # bonus for staying up would otherwise reward standing still).
    "Hopper-v5": dict(
        reward_shift=-1.0,
        policy="linear",
        sigma=0.025,
        n_samples=16,
        shaping="top_pairs(4)",
        optimizer="sgd",
        momentum=0.0,
        lr=2 * 0.025 * 0.01,
        normalize=True,
        backend="multiprocess",
    ),
    # ARS's Swimmer settings (V1: one direction, α 0.02, σ 0.01, no normalisation).
    "Swimmer-v5": dict(
        policy="linear",
        sigma=0.01,
        n_samples=2,
        shaping="top_pairs(1)",
        optimizer="sgd",
        momentum=0.0,
        lr=2 * 0.01 * 0.02,
        normalize=False,
        target=325.0,
    ),
}
BACKENDS = ("serial", "multiprocess", "ray")
STRATEGIES = tuple(s.value for s in es_opt.SamplingStrategy)


@dataclass
class Args:
    env: str = arg("CartPole-v1", "gymnasium environment id (selects the preset)")
    seed: int = arg(0, "seed of the whole run")
    sigma: float = arg(0.1, "perturbation standard deviation")
    perturbation: str = arg("dense", "perturbation family: dense, lowrank or 'lowrank(R)' (rank R)")
    distribution: str = arg("openai", "search distribution: openai (scalar sigma), pgpe, "
                            "snes, cem (sigma per parameter), cma or sep_cma (adapted covariance)",
                            choices=tuple(DISTRIBUTIONS))  # fmt: skip
    n_samples: int = arg(40, "evaluations per generation (even)")
    lr: float = arg(0.02, "learning rate of the inner optimizer")
    generations: int = arg(1000, "most generations to run")
    time_limit: float | None = arg(None, "stop training after this many seconds")
    optimizer: str = arg("rangerlite", "inner optimizer", choices=OPTIMIZERS)
    momentum: float = arg(0.9, "momentum of --optimizer sgd or clipup")
    max_speed: float | None = arg(None, "speed limit of --optimizer clipup (default: 2 * lr)")
    betas: tuple[float, float] | None = arg(None, "betas of --optimizer rangerlite")
    shaping: str = arg(
        "centered_ranks",
        "centered_ranks, centered_ranks_ordinal, z_score, raw or top_pairs(k) (ARS)",
    )
    strategy: str = arg("all", "which layers each generation perturbs", choices=STRATEGIES)
    backend: str = arg(
        "auto",
        "where evaluations run (auto: a pool when --workers > 1)",
        choices=("auto", *BACKENDS),
    )
    workers: int | None = arg(None, "worker processes (multiprocess, ray)")
    policy: str = arg("mlp", "policy network", choices=("linear", "mlp"))
    hidden: int = arg(32, "hidden units of the mlp policy")
    episodes: int = arg(1, "episodes per evaluation")
    max_episode_steps: int | None = arg(None, "step cap of training episodes")
    reward_shift: float = arg(0.0, "added to every training reward (ARS's; not in evaluation)")
    normalize: bool = arg(True, "observation normalisation")
    action: str = arg("clip", "mapping of Box actions", choices=("clip", "tanh"))
    vectorize: bool = arg(True, "all evaluations' episodes in one batched rollout")
    target: float | None = arg(
        None, "solved at this mean greedy return (default: the env's threshold)"
    )
    eval_episodes: int = arg(10, "greedy evaluation episodes")
    eval_every: int = arg(10, "evaluate at least this often")
    out: Path = arg(Path("runs/rl"), "output folder")
    record: Path | None = arg(None, "write a run record here (replay: python -m es_opt.record)")
    mlflow: str | None = arg(None, "log to this MLflow tracking URI (e.g. sqlite:///mlflow.db)")
    wandb: str | None = arg(None, "log to this Weights & Biases project (WANDB_MODE=offline)")
    resume: Path | None = arg(None, "continue the run saved in this checkpoint")
    eval_only: Path | None = arg(None, "evaluate (and --render) a saved policy")
    render: Path | None = arg(None, "save an animation of the trained policy (.gif)")
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


RUN_SETTINGS = (  # what --resume and --eval-only take from the checkpoint
    "env", "seed", "sigma", "n_samples", "lr", "optimizer", "strategy", "policy", "hidden",
    "episodes", "max_episode_steps", "normalize", "action", "target", "eval_every", "betas",
    "shaping", "momentum", "max_speed", "reward_shift", "perturbation", "distribution",
    "restarts", "max_restarts", "restart_generations",
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> Args:
    """The flags; a flag not given takes the --env preset's value, else the field's default."""
    return parse_config(Args, argv, description=__doc__, presets=PRESETS, preset_by="env")


def build_net(args: Args, obs_dim: int, n_outputs: int) -> nn.Module:
    torch.manual_seed(args.seed)  # the initial weights are part of the run's seed
    if args.policy == "linear":
        net = nn.Linear(obs_dim, n_outputs)
        nn.init.zeros_(net.weight)  # ARS-style: start from the zero policy
        nn.init.zeros_(net.bias)
        return net
    net = nn.Sequential(
        nn.Linear(obs_dim, args.hidden), nn.Tanh(), nn.Linear(args.hidden, n_outputs)
    )
    nn.init.zeros_(net[2].weight)  # every member starts near the same (neutral) policy
    nn.init.zeros_(net[2].bias)
    return net


def build(args: Args):
    objective = EpisodeReturn(
        args.env,
        episodes=args.episodes,
        max_episode_steps=args.max_episode_steps,
        action=args.action,
        normalize_observations=args.normalize,
        vectorize=args.vectorize,
        reward_shift=args.reward_shift,
    )
    net = build_net(args, objective.obs_dim, objective.action_map.n_outputs)
    model = es_opt.Model(net, strategy=args.strategy)
    es = es_opt.ESOptimizer(
        model,
        build_optimizer(
            args.optimizer,
            net.parameters(),
            args.lr,
            betas=args.betas,
            momentum=args.momentum,
            max_speed=args.max_speed,
        ),
        objective_fn=objective,
        sigma=args.sigma,
        n_samples=args.n_samples,
        n_workers=args.workers,
        seed=args.seed,
        shaping=args.shaping,
        distribution=args.distribution,
        backend=None if args.backend == "auto" else args.backend,
        perturbation=args.perturbation,
    )
    return objective, net, es


def target_of(args: Args, objective: EpisodeReturn) -> float | None:
    if args.target is not None:
        return args.target
    probe = objective.make_env()
    threshold = getattr(probe.spec, "reward_threshold", None)
    probe.close()
    return threshold


class SolvedCheck(Callback):
    """Evaluates the greedy center when it may be solved (some member reached the target) or
    every ``every`` generations, and stops the run once its mean return reaches the target."""

    def __init__(self, objective, net, env, seeds, target, every):
        self.objective, self.net, self.env, self.seeds = objective, net, env, seeds
        self.target, self.every = target, every
        self.last_eval, self.last_mean, self.solved = -1, float("nan"), False
        self.returns, self.evaluated_after = None, -1  # the last returns, es.generation then
        self.evaluations: dict[int, float] = {}  # generation -> mean greedy return

    def evaluate(self) -> np.ndarray:
        policy = self.objective.policy(self.net)
        return greedy_returns(policy, self.env, self.seeds)  # full episodes, whatever the cap

    def on_step(self, es, result) -> bool:
        promising = self.target is not None and result.fitness_max[0] >= self.target
        if promising or result.generation - self.last_eval >= self.every:
            self.last_eval = result.generation
            self.returns, self.evaluated_after = self.evaluate(), es.generation
            self.last_mean = float(self.returns.mean())
            self.evaluations[result.generation] = self.last_mean
            self.solved = self.target is not None and self.last_mean >= self.target
        return self.solved

    def returns_of(self, es) -> np.ndarray | None:
        """The returns of the center ``es`` holds now if this check already measured it (a run
        that stopped solved), else None: the final report need not play them again."""
        return self.returns if self.evaluated_after == es.generation else None


def check_render(args: Args, objective: EpisodeReturn) -> None:
    """Fails before training when rendering cannot work (missing extra)."""
    import gymnasium as gym

    try:
        import PIL  # noqa: F401

        env = objective.make_env(render_mode="rgb_array")
        env.reset(seed=0)
        env.render()
        env.close()
    except (ImportError, gym.error.DependencyNotInstalled) as exc:
        sys.exit(f'--render needs the rendering extra: pip install "es_opt[render]" ({exc})')
    except Exception as exc:  # e.g. no OpenGL context on a headless machine (MuJoCo)
        sys.exit(
            f"--render could not draw {args.env}: {type(exc).__name__}: {exc} (MuJoCo on a "
            "machine without a display: set MUJOCO_GL=egl or MUJOCO_GL=osmesa)"
        )


def render(path: Path, objective: EpisodeReturn, net: nn.Module, seed: int) -> None:
    from PIL import Image

    policy = objective.policy(net)
    env = objective.make_env(render_mode="rgb_array")
    obs, _ = env.reset(seed=seed)
    frames, done = [env.render()], False
    while not done and len(frames) < 1000:
        obs, _, terminated, truncated, _ = env.step(policy.act(np.asarray(obs, np.float32)))
        frames.append(env.render())
        done = terminated or truncated
    env.close()
    images = [Image.fromarray(frame) for frame in frames[::2]]
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)
    print(f"animation: {path} ({len(frames)} frames)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # tiny policies: threads cost more than they give
    saved = args.eval_only or args.resume
    if saved is not None:  # the saved run's settings; this command chooses only how to run it
        config = load_checkpoint(saved)["config"]
        for key in RUN_SETTINGS:
            # A checkpoint saved before shaping/momentum/reward_shift existed keeps the defaults
            # (centered ranks, 0.9, no shift): what it ran with. No --env here, so no preset.
            if key in config:
                setattr(args, key, config[key])
    objective, net, es = build(args)
    if args.render is not None:
        check_render(args, objective)
    out = args.out / args.env
    seeds = tuple(range(EVAL_SEEDS_START, EVAL_SEEDS_START + args.eval_episodes))
    target = target_of(args, objective)
    if saved is not None:
        load_checkpoint(saved, es)
    returns = None
    if args.eval_only is None:
        returns = train(args, objective, net, es, out, seeds, target).returns_of(es)
    if returns is None:
        returns = greedy_returns(objective.policy(net), args.env, seeds)
    verdict = "" if target is None else (" (solved)" if returns.mean() >= target else "")
    print(
        f"{args.env}: greedy return {returns.mean():.1f} ± {returns.std():.1f} over "
        f"{len(returns)} unseen episodes{verdict} after {es.generation} generations"
    )
    if args.render is not None:
        render(args.render, objective, net, seeds[0])
    es.close()
    return 0


def train(args, objective, net, es, out: Path, seeds, target) -> SolvedCheck:
    config = dataclasses.asdict(args)  # paths are saved as strings
    check = SolvedCheck(objective, net, args.env, seeds, target, args.eval_every)
    start = time.perf_counter()

    def solved_metrics(result) -> dict[str, float]:  # what decides "solved", in every log
        evaluated = check.evaluations.get(result.generation, math.nan)
        return {"eval_return": evaluated, "target": math.nan if target is None else target}

    callbacks: list[Callback] = [check, CSVLogger(out / "log.csv", extra=solved_metrics)]
    if not args.quiet:
        callbacks.insert(
            0,
            ProgressBar(
                objective_names=["return"],
                extra=lambda r: {
                    "episodes": (r.generation + 1) * args.n_samples * args.episodes,
                    "eval": check.last_mean,
                    "elapsed": f"{time.perf_counter() - start:.1f}s",
                },
                desc=args.env,
            ),
        )
    if args.restarts != "none":  # before the checkpoint, which then holds its bookkeeping
        callbacks.append(
            RestartOnStop(
                args.restarts,
                max_restarts=args.max_restarts,
                conditions=StopConditions(maxiter=args.restart_generations),
            )
        )
    callbacks.append(Checkpoint(out / "policy.pt", every=50, config=config))
    callbacks += tracking(args, config, solved_metrics)
    history = es.fit(
        lambda generation: EpisodeSamples.for_generation(args.seed, generation, args.episodes),
        generations=max(0, args.generations - es.generation),
        callbacks=callbacks,
        stop_when=lambda r: (
            args.time_limit is not None and time.perf_counter() - start > args.time_limit
        ),
    )
    elapsed = time.perf_counter() - start
    state = "solved" if check.solved else "not solved"
    print(
        f"{state} in {elapsed:.1f}s, {es.generation} generations, {objective.steps} environment "
        f"steps; checkpoint {out / 'policy.pt'}"
    )
    save_checkpoint(out / "policy.pt", es, config=config, extra={"solved": check.solved})
    try:
        from es_opt.training.plot import plot_history

        plot_history(
            history, out / "curve.png", title=f"{args.env} (ES)", objective_names=["return"],
            evaluation=check.evaluations, evaluation_label="greedy return", target=target,
        )  # fmt: skip
        print(f"learning curve: {out / 'curve.png'}")
    except ImportError as exc:
        print(f"no learning curve ({exc})")
    return check


def tracking(args: Args, config: dict, metrics) -> list[Callback]:
    """--mlflow, --wandb and --record: the trackers (which attach the record) and the run record
    (last: it reads the settings after the other callbacks)."""
    from es_opt.record import RunRecord

    record = None if args.record is None else RunRecord(args.record, config=config)
    callbacks: list[Callback] = []
    if args.mlflow is not None:
        from es_opt.training.mlflow_logger import MLflowLogger

        callbacks.append(MLflowLogger(args.mlflow, experiment=args.env, config=config,
                                      extra=metrics, record=record))  # fmt: skip
    if args.wandb is not None:
        from es_opt.training.wandb_logger import WandbLogger

        callbacks.append(WandbLogger(args.wandb, dir=args.out / args.env, config=config,
                                     extra=metrics, record=record))  # fmt: skip
    return callbacks + ([record] if record is not None else [])


if __name__ == "__main__":
    sys.exit(run_main(main))
