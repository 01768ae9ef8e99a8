"""Search distributions side by side: what adapting σ costs per step, and what it buys on an
ill-conditioned problem. Ratios are within one run (the machine is shared; absolute times move).

    python benchmarks/distributions.py              # both parts
    python benchmarks/distributions.py --part cost  # update cost only
    python benchmarks/distributions.py --part quadratic

**cost**: the update from shaped scores to (gradient, σ) for ``P`` pairs of ``d`` parameters, with
the noise rebuilt from seeds as in a real step (drawing it is part of every distribution's
update): OpenAI-ES's estimate against PGPE's and SNES's, which add one more product with
``Z ⊙ Z`` and an element-wise σ update.

**quadratic**: ``f(θ) = −Σ c_i θ_i²`` with curvatures spread over ``10^-2 … 10^2`` (d = 100, log
spaced), start ``θ = 1``, 40 pairs, ClipUp on the centre for every distribution (lr 0.05), σ₀ =
0.1: generations until the loss falls below 1e-3 of its start, and the final σ ratio
flat/stiff. OpenAI-ES's σ is fixed, so its step along the flat axes is limited by what the
stiff axes tolerate; PGPE and SNES can widen the flat directions.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch

from es_opt import noise
from es_opt.distributions import PGPE, SNES, OpenAIES
from es_opt.optim import ClipUp
from es_opt.shaping import centered_ranks


def _noise_rows(seed: int, generation: int, dim: int):
    return lambda rows: noise.perturbations(seed, generation, rows, dim)


def cost(repeats: int = 5) -> None:
    print("update cost from shaped scores to (gradient, sigma), noise drawn from seeds")
    print(f"{'d':>9} {'pairs':>6} {'openai ms':>10} {'pgpe/openai':>12} {'snes/openai':>12}")
    for dim, pairs in ((1_000, 50), (100_000, 50), (1_000_000, 20)):
        scores = centered_ranks(torch.randn(2 * pairs, generator=torch.Generator().manual_seed(0)))
        sigma = torch.full((dim,), 0.1)
        times = {}
        for name, dist in (("openai", OpenAIES()), ("pgpe", PGPE()), ("snes", SNES())):
            sig = 0.1 if name == "openai" else sigma
            best = math.inf
            for r in range(repeats):
                start = time.perf_counter()
                dist.step(scores, _noise_rows(0, r, dim), sigma=sig, dim=dim)
                best = min(best, time.perf_counter() - start)
            times[name] = best
        print(
            f"{dim:>9} {pairs:>6} {times['openai'] * 1e3:>10.2f} "
            f"{times['pgpe'] / times['openai']:>12.2f} {times['snes'] / times['openai']:>12.2f}"
        )


def quadratic(generations: int = 400, seeds: int = 3) -> None:
    dim, pairs = 100, 40
    curvature = torch.logspace(-2, 2, dim, dtype=torch.float64)
    start_loss = float(curvature.sum())
    print(f"\nquadratic d={dim}, curvature 1e-2..1e2, {pairs} pairs, ClipUp lr 0.05, sigma0 0.1")
    print(f"{'distribution':>12} {'gens to 1e-3 (per seed)':>28} {'final loss':>12} "
          f"{'sigma flat/stiff':>17}")  # fmt: skip
    for name, dist in (("openai", OpenAIES()), ("pgpe", PGPE(stdev_lr=0.2)), ("snes", SNES())):
        reached, finals, ratios = [], [], []
        for seed in range(seeds):
            theta = torch.nn.Parameter(torch.ones(dim, dtype=torch.float64))
            optimizer = ClipUp([theta], lr=0.05)
            sigma: float | torch.Tensor = (
                0.1 if name == "openai" else torch.full((dim,), 0.1, dtype=torch.float64)
            )
            hit = None
            for g in range(generations):
                z = noise.perturbations(seed, g, range(pairs), dim, dtype=torch.float64)
                members = torch.stack([theta.detach() + sigma * z, theta.detach() - sigma * z], 1)
                f = -(curvature * members.reshape(2 * pairs, dim).square()).sum(1)
                step = dist.step(centered_ranks(f), lambda r, z=z: z[r.start : r.stop],
                                 sigma=sigma, dim=dim, dtype=torch.float64)  # fmt: skip
                theta.grad = -step.gradient
                optimizer.step()
                if step.sigma is not None:
                    sigma = step.sigma
                loss = float((curvature * theta.detach().square()).sum())
                if hit is None and loss < 1e-3 * start_loss:
                    hit = g + 1
            reached.append(hit)
            finals.append(loss)
            if isinstance(sigma, torch.Tensor):
                ratios.append(float(sigma[:10].mean() / sigma[-10:].mean()))
        shown = ", ".join("-" if h is None else str(h) for h in reached)
        ratio = "fixed" if not ratios else ", ".join(f"{r:.1f}" for r in ratios)
        print(f"{name:>12} {shown:>28} {sorted(finals)[len(finals) // 2]:>12.2e} {ratio:>17}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("cost", "quadratic", "both"), default="both")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.1f} (2-core machine shared with other jobs)")
    if args.part in ("cost", "both"):
        cost()
    if args.part in ("quadratic", "both"):
        quadratic()


if __name__ == "__main__":
    main()
