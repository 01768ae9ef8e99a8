"""es_opt's PGPE update against evosax's on identical samples, then generations to 96 % on digits.

    benchmarks/peers/.venv/bin/python benchmarks/peers/pgpe_update_check.py --part updates
    benchmarks/peers/.venv/bin/python benchmarks/peers/pgpe_update_check.py --part generations \
        --seeds 0 1 2 3 4

**updates**: the ``es_opt-pgpe`` side's digits setting (64-32-10 tanh from the sample script's
seeded initialisation, 60 members, σ₀ 0.0458, ClipUp lr 0.1125 / speed limit 0.15, σ lr 0.1,
σ change ≤ 20 %). Each generation es_opt's ``ask`` draws one population, its 60 members' raw
training accuracy is scored once, and the same members, fitness, centre and σ go to both
updates: es_opt's own step (``tell``: shaping, PGPE, ClipUp) and evosax 0.3's ``PGPE.tell``
(members in its order, plus half first; fitness negated, since evosax minimises; its ClipUp
velocity its own). evosax restarts every generation from es_opt's centre and σ, so each
generation compares the two rules on the same input. Printed per generation: the largest
difference of the new centres and σ, the centre's step, and how many members tie. Run once with
average tie ranks (evosax's rule) and once with ordinal ranks (the side's preset).

**generations**: generations until the centre's test accuracy first reaches 96 % (checked every
5 generations, at most ``--max-generations``), per seed, for es_opt with ordinal and with average
tie ranks and for evosax's PGPE (average ties, its own threefry noise) from the same initial
weights. Generations do not depend on the machine's load; the wall time does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch

from benchmarks.peers import es_opt_side, tasks
from benchmarks.peers.es_opt_pgpe_side import FLAGS


def build(seed: int, shaping: str):
    """The side's es_opt optimizer with ``--shaping`` replaced, and its training samples."""
    from es_opt.supervised import ClassificationSamples

    data = tasks.load_digits_data()
    flags = list(FLAGS[tasks.DIGITS])
    flags[flags.index("--shaping") + 1] = shaping
    sup = es_opt_side.sample_script("supervised")
    args = sup.parse_args(["--seed", str(seed), "--quiet", "--distribution", "pgpe", *flags])
    with torch.random.fork_rng(devices=[]):
        es = sup.build(args, 64, 10)
    return es, ClassificationSamples(data.x_train, data.y_train.long()), data


def compare_updates(generations: int, seed: int) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks.peers import evosax_side
    from benchmarks.peers.flat_nets import FlatMLP, digits_accuracy

    print("| shaping | generation | max abs Δ centre (es_opt − evosax) | max abs Δ σ | "
          "max abs centre step | tied members |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for shaping in ("centered_ranks", "centered_ranks_ordinal"):
        es, train, _ = build(seed, shaping)
        algo, params, _ = evosax_side.make_algorithm("pgpe", tasks.DIGITS, es.ask().dim)
        state = algo.init(jax.random.key(seed), jnp.asarray(es.ask().center.numpy()), params)
        for generation in range(generations):
            population = es.ask()
            members = population.stacked_parameters(range(population.n_evals))
            accuracy = digits_accuracy(FlatMLP((64, 32, 10)), members, train.inputs,
                                       train.targets).double()  # fmt: skip
            tied = int(accuracy.numel() - torch.unique(accuracy).numel())
            # evosax from es_opt's centre and σ (and its own ClipUp velocity): plus members
            # first, then minus; it minimises
            order = list(range(0, population.n_evals, 2)) + list(range(1, population.n_evals, 2))
            state = state.replace(
                mean=jnp.asarray(population.center.numpy()),
                std=jnp.asarray(population.sigma.numpy()),
            )
            state, _ = algo.tell(
                jax.random.key(generation),
                jnp.asarray(members[order].numpy()),
                jnp.asarray(-accuracy[order].numpy(), dtype=jnp.float32),
                state,
                params,
            )
            es.tell(accuracy.unsqueeze(-1))  # es_opt's own step: shaping, PGPE, ClipUp
            after = es.ask()
            d_center = (after.center - torch.from_numpy(np.array(state.mean))).abs().max()
            d_sigma = (after.sigma - torch.from_numpy(np.array(state.std))).abs().max()
            step = (after.center - population.center).abs().max()
            print(f"| {shaping} | {generation} | {float(d_center):.2e} | {float(d_sigma):.2e} | "
                  f"{float(step):.2e} | {tied} of {accuracy.numel()} |")  # fmt: skip


def generations_to_target(
    seed: int, shaping: str, max_generations: int
) -> tuple[int | None, float]:
    es, train, data = build(seed, shaping)
    net = es.model.net
    for generation in range(1, max_generations + 1):
        es.gradient_step(train)
        if generation % 5 == 0:
            with torch.no_grad():
                acc = float((net(data.x_test).argmax(-1) == data.y_test).float().mean())
            if acc >= tasks.DIGITS_TARGET:
                return generation, acc
    return None, acc


def evosax_generations(seed: int, max_generations: int) -> tuple[int | None, float]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks.peers import evosax_side
    from benchmarks.peers.flat_nets import FlatMLP

    data = tasks.load_digits_data()
    net = FlatMLP((64, 32, 10))
    algo, params, _ = evosax_side.make_algorithm("pgpe", tasks.DIGITS, net.dim)
    x, y = jnp.asarray(data.x_train.numpy()), jnp.asarray(data.y_train.numpy())
    step_fn, forward = evosax_side.digits_step_fn(algo, params, x, y)
    step = jax.jit(step_fn)
    key, key_init = jax.random.split(jax.random.key(seed))
    state = algo.init(key_init, jnp.asarray(net.init_vector(seed).numpy()), params)
    x_test, y_test = data.x_test.numpy(), data.y_test.numpy()
    for generation in range(1, max_generations + 1):
        key, state = step(key, state)
        if generation % 5 == 0:
            pred = np.asarray(forward(state.mean, x_test)).argmax(-1)
            acc = float((pred == y_test).mean())
            if acc >= tasks.DIGITS_TARGET:
                return generation, acc
    return None, acc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("updates", "generations"), default="updates")
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--max-generations", type=int, default=800)
    parser.add_argument("--variants", nargs="+", default=["ordinal", "average", "evosax"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part == "updates":
        compare_updates(args.generations, args.seeds[0])
        return 0
    print("load average:", " / ".join(f"{v:.1f}" for v in os.getloadavg()))
    counts: dict[str, list[int | None]] = {}
    for seed in args.seeds:
        for variant in args.variants:
            if variant == "evosax":
                gens, acc = evosax_generations(seed, args.max_generations)
            else:
                shaping = "centered_ranks_ordinal" if variant == "ordinal" else "centered_ranks"
                gens, acc = generations_to_target(seed, shaping, args.max_generations)
            counts.setdefault(variant, []).append(gens)
            print(f"seed {seed} {variant}: {gens if gens else '>' + str(args.max_generations)} "
                  f"generations (test accuracy {100 * acc:.1f} %)", flush=True)  # fmt: skip
    print()
    print("| variant | reached 96 % | generations, median (per seed) |")
    print("|---|---|---|")
    for variant, values in counts.items():
        reached = [v for v in values if v is not None]
        cap = float(args.max_generations + 5)
        median = statistics.median([cap if v is None else v for v in values])
        shown = ", ".join(str(v) if v else f">{args.max_generations}" for v in values)
        print(f"| {variant} | {len(reached)}/{len(values)} | {median:.0f} ({shown}) |")
    print("load average after:", " / ".join(f"{v:.1f}" for v in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
