"""evosax 0.3 (JAX) on every task: its OpenAI-ES, PGPE and SNES (sides ``evosax-openes``,
``evosax-pgpe``, ``evosax-snes``; with ``-jit`` appended, the same run with the JIT compilation
inside the clock).

evosax minimises and hands the user a ``[P, d]`` population through ``ask``/``tell``, both
``jax.jit``-compiled. Each run:

- Digits: the whole generation (``ask``, the population's raw training accuracy on the full
  training set with ``vmap`` over the 64-32-10 tanh network, ``tell``) is one ``jax.jit``-compiled
  function, as evosax's examples write a generation. The network starts from ``tasks``' torch
  initialisation of the same shape (the EvoTorch sides' start).
- CartPole-v1 and Pendulum-v1: ``ask`` and ``tell`` compiled; the episodes run on gymnasium with
  :class:`~benchmarks.peers.flat_nets.PopulationRollouts` (one batched policy forward per time
  step; the EvoX side uses the same), policies ``tasks.cartpole_net``/``pendulum_net`` shapes.

**Compilation.** By default every function is compiled (one call on a throw-away state) before
the tracker starts its clock, like an import: ``compile_s`` in the result is that time. The
``-jit`` sides compile on first use, inside the clock, as a user pays it once per process;
``compile_s`` is then the first two generations' extra time over the third's (a step returns a state
whose leaves' weak types differ from the initial one's, so evosax compiles twice).

Settings (``SETTINGS``): evosax's defaults where it documents them (centred ranks with average
ties for OpenAI-ES and PGPE, NES utilities and ``sgd(1.0)`` for SNES, PGPE's ``std_lr`` 0.1 and
``std_max_change`` 0.2), and the other sides' recipes for the rest: PGPE with EvoTorch's ClipUp
recipe (centre lr 0.1125, speed limit 0.15, radius 2.25, i.e. σ₀ = 2.25/√d), SNES with σ₀ 1 and
100 members on digits (es_opt's SNES recipe), OpenAI-ES with es_opt's supervised defaults (σ 0.1,
Adam lr 0.05). JAX runs on one CPU thread when ``OMP_NUM_THREADS=1`` (the harness's default),
like every other side.
"""

from __future__ import annotations

import os

if os.environ.get("OMP_NUM_THREADS") == "1":  # one thread, like the torch sides
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse
import json
import math
import time
from functools import partial
from typing import Any

import numpy as np
import torch

from benchmarks.peers import tasks
from benchmarks.peers.flat_nets import FlatMLP, PopulationRollouts

ALGORITHMS = ("openes", "pgpe", "snes")
NETS = {
    tasks.CARTPOLE: (4, 16, 2),
    tasks.PENDULUM: (3, 16, 1),
    tasks.DIGITS: (64, 32, 10),
}
_PGPE_RL = {
    "optimizer": "clipup(learning_rate=0.1125, max_velocity=0.15)",
    "radius_init": 2.25,
    "std_lr": 0.1,
    "std_max_change": 0.2,
    "fitness_shaping": "centered ranks, average ties (evosax's default)",
}
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "pgpe": {
        tasks.CARTPOLE: {**_PGPE_RL, "popsize": 100},
        tasks.PENDULUM: {**_PGPE_RL, "popsize": 40},
        tasks.DIGITS: {**_PGPE_RL, "popsize": 60},
    },
    "snes": {
        tasks.CARTPOLE: {"popsize": 100, "radius_init": 2.25, "optimizer": "sgd(1.0)"},
        tasks.PENDULUM: {"popsize": 40, "radius_init": 2.25, "optimizer": "sgd(1.0)"},
        tasks.DIGITS: {"popsize": 100, "std_init": 1.0, "optimizer": "sgd(1.0)"},
    },
    "openes": {
        tasks.CARTPOLE: {"popsize": 20, "std": 0.1, "optimizer": "adam(0.05)"},
        tasks.PENDULUM: {"popsize": 40, "std": 0.5, "optimizer": "adam(0.05)"},
        tasks.DIGITS: {"popsize": 100, "std": 0.1, "optimizer": "adam(0.05)"},
    },
}
for _algo, _by_task in SETTINGS.items():
    for _task, _cfg in _by_task.items():
        _cfg["network"] = "-".join(map(str, NETS[_task])) + " tanh (flat_nets.FlatMLP)"
        if _algo == "snes":
            _cfg["fitness_shaping"] = "NES utilities (evosax's default)"
        if _algo == "openes":
            _cfg["fitness_shaping"] = "centered ranks, average ties (evosax's default)"
            _cfg["antithetic"] = True


def _std_init(cfg: dict[str, Any], dim: int) -> float:
    return cfg["std_init"] if "std_init" in cfg else cfg["radius_init"] / math.sqrt(dim)


def make_algorithm(name: str, task: str, dim: int):
    """``(algorithm, params, settings)`` of evosax's ``name`` for ``task``."""
    import jax.numpy as jnp
    import optax
    from evosax.algorithms import PGPE, SNES, Open_ES
    from evosax.core.optimizer import clipup

    cfg = SETTINGS[name][task]
    solution = jnp.zeros(dim)
    if name == "pgpe":
        algo = PGPE(
            cfg["popsize"], solution, optimizer=clipup(learning_rate=0.1125, max_velocity=0.15)
        )
        params = algo.default_params.replace(
            std_init=_std_init(cfg, dim), std_lr=cfg["std_lr"], std_max_change=cfg["std_max_change"]
        )
    elif name == "snes":
        algo = SNES(cfg["popsize"], solution, optimizer=optax.sgd(1.0))
        params = algo.default_params.replace(std_init=jnp.asarray(_std_init(cfg, dim)))
    elif name == "openes":
        algo = Open_ES(
            cfg["popsize"],
            solution,
            optimizer=optax.adam(0.05),
            std_schedule=optax.constant_schedule(cfg["std"]),
        )
        params = algo.default_params
    else:
        raise ValueError(f"unknown evosax algorithm {name!r}")
    return algo, params, {**cfg, "std_init_per_parameter": round(_std_init_any(cfg, dim), 5)}


def _std_init_any(cfg: dict[str, Any], dim: int) -> float:
    return cfg["std"] if "std" in cfg else _std_init(cfg, dim)


def _to_torch(x) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float32).copy())


# ---------------------------------------------------------------------------------- digits --
def _mlp_jax(sizes: tuple[int, ...]):
    """``forward(flat [d], x [N, in]) -> [N, out]`` in JAX, torch's parameter order."""
    import jax.numpy as jnp

    shapes = [(o, i) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]

    def forward(flat, x):
        offset = 0
        for k, (o, i) in enumerate(shapes):
            w = flat[offset : offset + o * i].reshape(o, i)
            offset += o * i
            b = flat[offset : offset + o]
            offset += o
            if k:
                x = jnp.tanh(x)
            x = x @ w.T + b
        return x

    return forward


def digits_step_fn(algo, params, x, y, sizes=NETS[tasks.DIGITS]):
    """The generation as one function ``(key, state) -> (key, state)``, to be ``jax.jit``-ed:
    ask, the population's raw accuracy (negated: evosax minimises), tell."""
    import jax
    import jax.numpy as jnp

    forward = _mlp_jax(sizes)

    def fitness(population):
        logits = jax.vmap(forward, in_axes=(0, None))(population, x)
        return -jnp.mean(jnp.argmax(logits, axis=-1) == y, axis=-1)

    def step(key, state):
        key, key_ask, key_tell = jax.random.split(key, 3)
        population, state = algo.ask(key_ask, state, params)
        state, _ = algo.tell(key_tell, population, fitness(population), state, params)
        return key, state

    return step, forward


def run_digits(name: str, compile_in_clock: bool, seed: int, budget_s: float) -> dict:
    import jax

    if compile_in_clock:
        tracker = tasks.DigitsTracker(budget_s)
    data = tracker.data if compile_in_clock else tasks.load_digits_data()
    net = FlatMLP(NETS[tasks.DIGITS])
    x = jax.numpy.asarray(data.x_train.numpy())
    y = jax.numpy.asarray(data.y_train.numpy())
    algo, params, cfg = make_algorithm(name, tasks.DIGITS, net.dim)
    center0 = jax.numpy.asarray(net.init_vector(seed).numpy())
    step_fn, forward = digits_step_fn(algo, params, x, y)
    step = jax.jit(step_fn)
    center_logits = jax.jit(forward)
    key = jax.random.key(seed)
    key, key_init = jax.random.split(key)
    state = algo.init(key_init, center0, params)
    compile_s = None
    if not compile_in_clock:
        start = time.perf_counter()
        # Compiled for the initial state and again for the state a step returns (its leaves'
        # weak types differ); the results are thrown away.
        jax.block_until_ready(step(*step(key, state)))
        jax.block_until_ready(center_logits(state.mean, data.x_test.numpy()))
        compile_s = time.perf_counter() - start
        tracker = tasks.DigitsTracker(budget_s)

    def logits_fn(x_test: torch.Tensor) -> torch.Tensor:
        return _to_torch(center_logits(state.mean, x_test.numpy()))

    first_steps: list[float] = []
    while not tracker.done():
        start = time.perf_counter()
        key, state = jax.block_until_ready(step(key, state))
        if len(first_steps) < 3:
            first_steps.append(time.perf_counter() - start)
        if tracker.due():
            tracker.evaluate(logits_fn)
    if compile_in_clock and len(first_steps) == 3:  # two compilations, then a plain step
        compile_s = first_steps[0] + first_steps[1] - 2 * first_steps[2]
    result = tracker.result(_settings(cfg, compile_in_clock), logits_fn)
    result["compile_s"] = None if compile_s is None else round(compile_s, 3)
    return result


# ------------------------------------------------------------------------------ RL tasks ----
def _run_rl(name: str, compile_in_clock: bool, task: str, seed: int, budget_s: float) -> dict:
    import jax

    env_id = tasks.CARTPOLE_ENV if task == tasks.CARTPOLE else tasks.PENDULUM_ENV
    tracker_cls = tasks.CartPoleTracker if task == tasks.CARTPOLE else tasks.PendulumTracker
    if compile_in_clock:
        tracker = tracker_cls(budget_s)
    net = FlatMLP(NETS[task])
    algo, params, cfg = make_algorithm(name, task, net.dim)
    rollouts = PopulationRollouts(env_id, net, algo.population_size)
    key = jax.random.key(seed)
    key, key_init = jax.random.split(key)
    state = algo.init(key_init, jax.numpy.asarray(net.init_vector(seed).numpy()), params)
    compile_s = None
    if not compile_in_clock:
        start = time.perf_counter()
        scratch = state  # two throw-away generations: the second state's types differ
        for _ in range(2):
            population, scratch = algo.ask(key, scratch, params)
            fitness = jax.numpy.zeros(algo.population_size)
            scratch, _ = jax.block_until_ready(algo.tell(key, population, fitness, scratch, params))
        compile_s = time.perf_counter() - start
        tracker = tracker_cls(budget_s)
    generation = 0
    overheads: list[float] = []
    while not tracker.done():
        key, key_ask, key_tell = jax.random.split(key, 3)
        start = time.perf_counter()
        population, state = algo.ask(key_ask, state, params)
        members = _to_torch(population)
        ask_s = time.perf_counter() - start
        returns = rollouts.returns(members, seed, generation)
        start = time.perf_counter()
        state, _ = algo.tell(key_tell, population, -jax.numpy.asarray(returns.numpy()), state,
                             params)  # fmt: skip
        jax.block_until_ready(state)
        if len(overheads) < 3:
            overheads.append(ask_s + time.perf_counter() - start)
        generation += 1
        if tracker.due():
            tracker.evaluate(
                rollouts.act_fn(_to_torch(state.mean)),
                train_steps=rollouts.steps,
                train_episodes=rollouts.episodes,
            )
    if compile_in_clock and len(overheads) == 3:  # two compilations, then a plain step
        compile_s = overheads[0] + overheads[1] - 2 * overheads[2]
    result = tracker.result(_settings(cfg, compile_in_clock))
    result["compile_s"] = None if compile_s is None else round(compile_s, 3)
    return result


def _settings(cfg: dict[str, Any], compile_in_clock: bool) -> dict[str, Any]:
    where = "inside the clock" if compile_in_clock else "before the clock (like an import)"
    return {**cfg, "jit_compile": where}


def runners(variant: str) -> dict:
    """``RUNNERS`` of the side ``evosax-<variant>`` (``pgpe``, ``pgpe-jit``, …)."""
    name, _, suffix = variant.partition("-")
    if name not in ALGORITHMS or suffix not in ("", "jit"):
        raise ValueError(f"unknown evosax side variant {variant!r}")
    inside = suffix == "jit"
    return {
        tasks.CARTPOLE: partial(_run_rl, name, inside, tasks.CARTPOLE),
        tasks.PENDULUM: partial(_run_rl, name, inside, tasks.PENDULUM),
        tasks.DIGITS: partial(run_digits, name, inside),
    }


def version() -> str:
    import importlib.metadata as md

    return f"evosax {md.version('evosax')}, jax {md.version('jax')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", help="openes, pgpe, snes, or one of them with -jit")
    parser.add_argument("task", choices=tasks.TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=None)
    args = parser.parse_args()
    budget = args.budget or tasks.BUDGETS[args.task].budget_s
    print(json.dumps(runners(args.variant)[args.task](args.seed, budget), indent=1))


if __name__ == "__main__":
    main()
