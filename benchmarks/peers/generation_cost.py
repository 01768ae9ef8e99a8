"""Where one generation of es_opt's digits PGPE goes, against evosax's jitted step on the same work.

    benchmarks/peers/.venv/bin/python benchmarks/peers/generation_cost.py            # ~2 min
    benchmarks/peers/.venv/bin/python benchmarks/peers/generation_cost.py --compile  # + inductor

The work is the ``es_opt-pgpe`` side's digits generation: 60 members × 2,410 parameters (64-32-10
tanh) × 1,437 training images, raw accuracy, PGPE with ClipUp (``es_opt_pgpe_side.FLAGS``).
Everything runs in this one process on one thread (torch and XLA), the parts interleaved, so the
rows are comparable even on a shared machine. Each row reports the **process CPU time** per call
(median over ``--repeats`` after a warm-up: the time this process computed, which other jobs on
the machine change much less than wall time) and the wall time.

Rows:

- es_opt's ``gradient_step`` (a whole generation), then its parts, timed by calling the same
  library pieces a generation calls: ``ask``; drawing the members' noise and building them
  (``Population.stacked_parameters``); the population forward split by layer (the
  ``StackedModel``'s planned steps, on the blocks of members its activation budget makes); the
  fitness (``Accuracy.score``); the shaping; the search step (``distribution.step``: PGPE's
  update, which draws the pairs' noise again; that redraw alone on its own row); the inner
  optimizer's step. "Python and bookkeeping" is the generation minus the parts.
- evosax 0.3's PGPE on the same shapes, the generation as one ``jax.jit``-compiled function
  (ask, ``vmap``-ed forward, accuracy, tell), as the ``evosax-pgpe`` side runs it; its compile
  time on its own row.
- The floor of the arithmetic: the two layers' products alone in the cheapest layout found here
  (every member's first-layer weights times the shared input as one wide product, the second
  layer as one batched product on its class-major result: ≈ 0.20 GMAC), and the same plus
  torch's ``tanh`` over the hidden activations. This layout gives other bits than evaluating
  one member with ``nn.Linear``, which es_opt's batched path keeps.
- With ``--compile``: the population forward and accuracy under ``torch.compile`` (inductor),
  compile time on its own row.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.peers import es_opt_side, tasks  # noqa: E402
from benchmarks.peers.es_opt_pgpe_side import FLAGS  # noqa: E402

MEMBERS, HIDDEN, CLASSES = 60, 32, 10


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median CPU ms, median wall ms) per call after one warm-up call."""
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return 1e3 * statistics.median(cpu), 1e3 * statistics.median(wall)


def build_es(seed: int = 0):
    from es_opt.supervised import ClassificationSamples

    data = tasks.load_digits_data()
    sup = es_opt_side.sample_script("supervised")
    argv = ["--seed", str(seed), "--quiet", "--distribution", "pgpe", *FLAGS[tasks.DIGITS]]
    args = sup.parse_args(argv)
    with torch.random.fork_rng(devices=[]):
        es = sup.build(args, 64, 10)
    return es, ClassificationSamples(data.x_train, data.y_train.long())


def es_opt_rows(repeats: int) -> list[tuple[str, float, float]]:
    from es_opt.evaluators.stacked import ACTIVATION_BUDGET, StackedModel
    from es_opt.shaping import weighted_scores

    es, train = build_es()
    for _ in range(10):  # past the first generations' one-off costs
        es.gradient_step(train)
    rows = [("es_opt: one generation (gradient_step)", *timed(lambda: es.gradient_step(train),
                                                              repeats))]  # fmt: skip
    population = es.ask()
    indices = range(population.n_evals)
    x, y = train.inputs, train.targets
    objective = es.objective_fn
    parts: list[tuple[str, float, float]] = [("ask", *timed(es.ask, repeats))]
    parts.append(
        (
            "noise + members (stacked_parameters)",
            *timed(lambda: population.stacked_parameters(indices), repeats),
        )  # fmt: skip
    )
    stacked = StackedModel(es.model, population, indices)
    plan = stacked._plan
    per_member = x.shape[0] * sum(plan.widths)
    block = max(1, min(len(indices), ACTIVATION_BUDGET // per_member))
    blocks = [slice(s, min(len(indices), s + block)) for s in range(0, len(indices), block)]
    inputs_of = {}  # each step's input per block, computed once
    for members in blocks:
        act = x
        for k, step in enumerate(plan.steps):
            inputs_of[(k, members.start)] = act
            act = step(act, members)
    names = [
        "forward: layer 1 (64→32, + bias)",
        "forward: tanh",
        "forward: layer 2 (32→10, + bias)",
    ]
    for k, step in enumerate(plan.steps):
        label = names[k] if k < len(names) else f"forward: step {k}"
        parts.append(
            (
                label,
                *timed(
                    lambda k=k, step=step: [step(inputs_of[(k, m.start)], m) for m in blocks],
                    repeats,
                ),
            )  # fmt: skip
        )
    logits = stacked(x)
    parts.append(("fitness (Accuracy: argmax, mean)", *timed(lambda: objective.score(logits, y),
                                                             repeats)))  # fmt: skip
    fitness = objective.score(logits, y).unsqueeze(-1)
    rule = es.update_rule
    parts.append(("shaping", *timed(lambda: weighted_scores(fitness, rule.obj_weights,
                                                            rule.shaping), repeats)))  # fmt: skip
    scores = weighted_scores(fitness, rule.obj_weights, rule.shaping)
    parts.append(
        ("search step (PGPE update, noise redrawn)",
         *timed(lambda: rule.distribution.step(scores, population, population.state), repeats))
    )  # fmt: skip
    parts.append(
        ("  of which: the noise redraw",
         *timed(lambda: population.perturbations(range(population.n_pairs)), repeats))
    )  # fmt: skip
    params = list(es.model.net.parameters())
    for p in params:
        p.grad = torch.zeros_like(p)
    parts.append(("inner optimizer step (ClipUp)", *timed(es.optimizer.step, repeats)))
    counted = [p for p in parts if not p[0].startswith("  ")]
    rest_cpu = rows[0][1] - sum(p[1] for p in counted)
    rest_wall = rows[0][2] - sum(p[2] for p in counted)
    rows += [(f"  {name}", cpu, wall) for name, cpu, wall in parts]
    rows.append(("  Python and bookkeeping (the rest)", rest_cpu, rest_wall))
    return rows


def floor_rows(repeats: int) -> list[tuple[str, float, float]]:
    """The bare products in the cheapest layout found here: the first layer as one wide product
    of every member's weights with the shared input (``[60·32, 64] @ [64, N]``), the second as
    one batched product on that class-major result (``[60, 10, 32] @ [60, 32, N]``)."""
    g = torch.Generator().manual_seed(0)
    n = 1437
    x_t = torch.randn(64, n, generator=g)
    w1 = torch.randn(MEMBERS * HIDDEN, 64, generator=g)
    w2 = torch.randn(MEMBERS, CLASSES, HIDDEN, generator=g)
    h = (w1 @ x_t).view(MEMBERS, HIDDEN, n)

    def products():
        return torch.bmm(w2, (w1 @ x_t).view(MEMBERS, HIDDEN, n))

    def with_tanh():
        return torch.bmm(w2, torch.tanh(w1 @ x_t).view(MEMBERS, HIDDEN, n))

    macs = n * 64 * MEMBERS * HIDDEN + MEMBERS * n * HIDDEN * CLASSES
    rows = [(f"floor: the two products alone ({macs / 1e9:.2f} GMAC)", *timed(products, repeats))]
    rows.append(("floor: products + torch.tanh", *timed(with_tanh, repeats)))
    rows.append(("  torch.tanh over 60 × 1,437 × 32 alone", *timed(lambda: torch.tanh(h), repeats)))
    return rows


def evosax_rows(repeats: int) -> list[tuple[str, float, float]]:
    try:
        import jax
        import jax.numpy as jnp

        from benchmarks.peers import evosax_side
        from benchmarks.peers.flat_nets import FlatMLP
    except ImportError as exc:
        return [(f"evosax: not installed ({exc.name})", float("nan"), float("nan"))]
    data = tasks.load_digits_data()
    net = FlatMLP((64, HIDDEN, CLASSES))
    algo, params, _ = evosax_side.make_algorithm("pgpe", tasks.DIGITS, net.dim)
    x, y = jnp.asarray(data.x_train.numpy()), jnp.asarray(data.y_train.numpy())
    step_fn, _ = evosax_side.digits_step_fn(algo, params, x, y)
    step = jax.jit(step_fn)
    key = jax.random.key(0)
    state = algo.init(key, jnp.asarray(net.init_vector(0).numpy()), params)
    c, w = time.process_time(), time.perf_counter()
    carry = jax.block_until_ready(step(*step(key, state)))  # two compilations (see the side)
    compile_cpu, compile_wall = time.process_time() - c, time.perf_counter() - w

    def one():
        nonlocal carry
        carry = jax.block_until_ready(step(*carry))

    return [
        ("evosax 0.3 PGPE: one generation (jitted step)", *timed(one, repeats)),
        ("  its JIT compilation (once per process)", 1e3 * compile_cpu, 1e3 * compile_wall),
    ]


def compiled_rows(repeats: int) -> list[tuple[str, float, float]]:
    from es_opt.evaluators.stacked import StackedModel

    es, train = build_es()
    population = es.ask()
    stacked = StackedModel(es.model, population, range(population.n_evals))
    objective = es.objective_fn
    x, y = train.inputs, train.targets

    def forward_and_fitness(inputs, targets):
        return objective.score(stacked(inputs), targets)

    compiled = torch.compile(forward_and_fitness, dynamic=False)
    c, w = time.process_time(), time.perf_counter()
    compiled(x, y)
    compile_cpu, compile_wall = time.process_time() - c, time.perf_counter() - w
    same = torch.equal(compiled(x, y), forward_and_fitness(x, y))
    return [
        ("es_opt forward + fitness, eager", *timed(lambda: forward_and_fitness(x, y), repeats)),
        (
            f"es_opt forward + fitness, torch.compile (same fitness: {same})",
            *timed(lambda: compiled(x, y), repeats),
        ),  # fmt: skip
        ("  its compilation (once per process)", 1e3 * compile_cpu, 1e3 * compile_wall),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    ours = es_opt_rows(args.repeats)
    others = evosax_rows(args.repeats) + floor_rows(args.repeats)
    if args.compile:
        others += compiled_rows(args.repeats)
    after = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average before: {load}; after: {after}; torch {torch.__version__}, 1 thread")
    print()
    print("| part | CPU ms | wall ms | share of es_opt's generation (CPU) |")
    print("|---|---|---|---|")
    total = ours[0][1]
    for name, cpu, wall in ours:
        share = f"{100 * cpu / total:.0f} %" if name.startswith("  ") else ""
        print(f"| {name} | {cpu:.2f} | {wall:.2f} | {share} |")
    for name, cpu, wall in others:
        print(f"| {name} | {cpu:.2f} | {wall:.2f} | |")
    evosax = [r for r in others if r[0].startswith("evosax 0.3 PGPE")]
    if evosax and evosax[0][1] == evosax[0][1]:  # not NaN
        print()
        print(
            f"es_opt / evosax, one generation: {total / evosax[0][1]:.2f}× (CPU), "
            f"{ours[0][2] / evosax[0][2]:.2f}× (wall)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
