"""es_opt's side: the library's own ready-made pieces, configured exactly as its sample scripts
configure them by default.

- CartPole-v1 and Pendulum-v1: ``sample_scripts/rl.py``'s preset for the environment (policy,
  sigma, n_samples, inner optimizer and its learning rate, action mapping, observation
  normalisation), built by the script's own ``parse_args`` and ``build``: an
  :class:`es_opt.rl.EpisodeReturn` objective with vectorised rollouts (one batched policy forward
  per time step over the whole population) and :class:`es_opt.rl.EpisodeSamples` reset seeds
  (common random numbers within a generation).
- Digits: ``sample_scripts/supervised.py``'s defaults (network, optimizer, sigma, n_samples,
  full training set or minibatches), built by the script's ``build_net`` / ``build_objective`` /
  ``build_optimizer``: the vectorised :class:`es_opt.supervised.Accuracy` objective on the shared
  split of :func:`tasks.load_digits_data`.

The scripts are loaded from their files, so the benchmark always runs the settings the library
ships. What is shared with the other sides is unchanged: the trackers of ``tasks.py`` (clock
started first thing, greedy evaluation of the centre on the unseen seeds, schedule). Training
episode seeds are reduced below ``tasks.TRAIN_SEED_LIMIT`` so they never meet an evaluation seed.

Reproducibility: the optimizer gets the run's seed; the scripts' network initialisation seeds
torch's global generator, which this side wraps in ``torch.random.fork_rng``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from benchmarks.peers import tasks

SIDE = "es_opt"
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "sample_scripts"


@cache
def sample_script(name: str) -> ModuleType:
    """``sample_scripts/<name>.py``, imported from its file."""
    spec = importlib.util.spec_from_file_location(
        f"_es_opt_sample_{name}", SAMPLES_DIR / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def _rl_args(env_id: str, seed: int, flags: tuple[str, ...] = ()) -> Any:
    argv = ["--env", env_id, "--seed", str(seed), "--quiet", *flags]
    return sample_script("rl").parse_args(argv)


def _rl_settings(env_id: str, flags: tuple[str, ...] = ()) -> dict[str, Any]:
    args = _rl_args(env_id, 0, flags)
    keys = ("policy", "hidden", "sigma", "n_samples", "lr", "optimizer", "betas", "episodes",
            "action", "normalize", "strategy", "backend")  # fmt: skip
    out = {k: getattr(args, k) for k in keys}
    if out["policy"] == "linear":
        out.pop("hidden")
        out["policy"] = "linear (zero init)"
    else:
        out["policy"] = f"mlp {out.pop('hidden')} tanh (zero-initialised output layer)"
    out["betas"] = "default" if out["betas"] is None else tuple(out["betas"])
    out["vectorized_rollouts"] = True
    out["source"] = f"sample_scripts/rl.py --env {env_id} {' '.join(flags)}".rstrip()
    if not flags:
        out["source"] += " (its defaults)"
    out["distribution"] = getattr(args, "distribution", "openai")
    return out


def _digits_settings(flags: tuple[str, ...] = ()) -> dict[str, Any]:
    args = sample_script("supervised").parse_args(list(flags))
    return {
        "network": f"64-{args.hidden}-10 tanh ({args.model})",
        "objective": f"{args.objective} (es_opt.supervised, vectorised)",
        "sigma": args.sigma,
        "n_samples": args.n_samples,
        "lr": args.lr,
        "lr_schedule": f"cosine to {args.lr_final} x lr over {args.decay_generations} generations",
        "optimizer": args.optimizer,
        "batch": "full training set" if args.batch_size <= 0 else f"minibatch {args.batch_size}",
        "backend": args.backend,
        "source": f"sample_scripts/supervised.py {' '.join(flags) or '(its defaults)'}",
        "distribution": getattr(args, "distribution", "openai"),
    }


def _settings() -> dict[str, dict[str, Any]]:
    try:
        return {
            tasks.CARTPOLE: _rl_settings(tasks.CARTPOLE_ENV),
            tasks.PENDULUM: _rl_settings(tasks.PENDULUM_ENV),
            tasks.DIGITS: _digits_settings(),
        }
    except Exception as exc:  # reported by the runs themselves; keep the module importable
        return {task: {"error": f"{type(exc).__name__}: {exc}"} for task in tasks.TASKS}


SETTINGS = _settings()


def _train_seeds(seed: int, generation: int, episodes: int):
    """The sample script's reset seeds for the generation, reduced below the evaluation seeds."""
    from es_opt.rl import EpisodeSamples

    seeds = EpisodeSamples.for_generation(seed, generation, episodes).seeds
    return EpisodeSamples(tuple(s % tasks.TRAIN_SEED_LIMIT for s in seeds))


# --- SWITCH POINT (CartPole, Pendulum): es_opt.rl as sample_scripts/rl.py builds it ----------
def _run_rl(task: str, env_id: str, tracker, seed: int, flags=(), settings=None) -> dict:
    rl = sample_script("rl")
    args = _rl_args(env_id, seed, flags)
    with torch.random.fork_rng(devices=[]):
        objective, net, es = rl.build(args)
    try:
        while not tracker.done():
            es.gradient_step(_train_seeds(seed, es.generation, args.episodes))
            if tracker.due():
                policy = objective.policy(net)  # greedy, with the current frozen normaliser
                tracker.evaluate(
                    policy.act,
                    train_steps=objective.steps,
                    train_episodes=es.generation * args.n_samples * args.episodes,
                )
    finally:
        es.close()
    return tracker.result(SETTINGS[task] if settings is None else settings)


def run_cartpole(seed: int, budget_s: float) -> dict:
    tracker = tasks.CartPoleTracker(budget_s)
    return _run_rl(tasks.CARTPOLE, tasks.CARTPOLE_ENV, tracker, seed)


def run_pendulum(seed: int, budget_s: float) -> dict:
    tracker = tasks.PendulumTracker(budget_s)
    return _run_rl(tasks.PENDULUM, tasks.PENDULUM_ENV, tracker, seed)


# --- SWITCH POINT (digits): es_opt.supervised as sample_scripts/supervised.py builds it -------
def run_digits(seed: int, budget_s: float, flags=(), settings=None) -> dict:
    tracker = tasks.DigitsTracker(budget_s)
    from es_opt.supervised import ClassificationSamples

    sup = sample_script("supervised")
    args = sup.parse_args(["--seed", str(seed), "--quiet", *flags])
    data = tracker.data
    train = ClassificationSamples(data.x_train, data.y_train.long())
    with torch.random.fork_rng(devices=[]):  # the script seeds the global generator
        es = sup.build(args, train.inputs.shape[1], int(train.targets.max()) + 1)
    net = es.model.net
    schedule = sup.CosineLR(args.lr, args.lr_final, args.decay_generations)  # as the script does
    try:
        while not tracker.done():
            if args.batch_size <= 0:
                samples = train
            else:
                samples = train.minibatch(args.batch_size, seed=seed, generation=es.generation)
            result = es.gradient_step(samples)
            if args.lr_final != 1.0:
                schedule.on_step(es, result)
            if tracker.due():
                tracker.evaluate(net)
    finally:
        es.close()
    return tracker.result(SETTINGS[tasks.DIGITS] if settings is None else settings, net)


RUNNERS = {
    tasks.CARTPOLE: run_cartpole,
    tasks.DIGITS: run_digits,
    tasks.PENDULUM: run_pendulum,
}


def version() -> str:
    import importlib.metadata

    return importlib.metadata.version("es_opt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=tasks.TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=None)
    args = parser.parse_args()
    budget = args.budget or tasks.BUDGETS[args.task].budget_s
    print(json.dumps(RUNNERS[args.task](args.seed, budget), indent=1))


if __name__ == "__main__":
    main()
