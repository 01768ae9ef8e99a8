"""float32 master weights for a bfloat16 model: what they buy, and what they cost per step.

    python benchmarks/master_weights.py                   # 150 generations
    python benchmarks/master_weights.py --generations 50

``f(θ) = −Σ (θ − 1.3)²`` over a 64×16 matrix (entries in [1, 1.5)) and a 16-vector of ones
(1,040 weights), σ = 0.05, 20 evaluations per generation, the default inner optimizer
(RangerLite, lr 0.01), for OpenAI-ES (dense and low-rank noise), PGPE and SNES. Each row runs the
same problem three times in this process: in float32 (the reference), in bfloat16 with float32
master weights (``ESOptimizer``'s default for bf16 models) and in bfloat16 without them
(``master_weights=False``), and prints each bf16 run's final loss and time per step as a ratio
to the float32 run's. Near 1.3 a bf16 weight's spacing is 2⁻⁷ ≈ 0.008: a step below half of it
rounds away, so without master weights the run stalls once the steps become small.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from torch import nn

from es_opt import ESOptimizer, Objective

TARGET = 1.3


class Net(nn.Module):
    def __init__(self, dtype: torch.dtype):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter((1.0 + 0.5 * torch.rand(64, 16, generator=gen)).to(dtype))
        self.bias = nn.Parameter(torch.ones(16).to(dtype))


def loss(net: nn.Module) -> float:
    return float(sum((p.detach().double() - TARGET).square().sum() for p in net.parameters()))


class Closeness(Objective):
    def __call__(self, model, samples):
        return -loss(model.net)


def run(dtype: torch.dtype, master: bool | None, distribution: str, perturbation: str, gens: int):
    net = Net(dtype)
    es = ESOptimizer(
        net,
        objective_fn=Closeness(),
        sigma=0.05,
        n_samples=20,
        seed=0,
        distribution=distribution,
        perturbation=perturbation,
        master_weights=master,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the RoundedAwayWarning of the run without master weights
        es.fit(generations=gens)
    return loss(net), (time.perf_counter() - start) / gens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generations", type=int, default=150, help="generations per run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"loss at the start {loss(Net(torch.float32)):.2f}; {args.generations} generations")
    print(
        f"{'distribution':12} {'noise':8} {'f32 loss':>9} {'bf16+master':>12} {'bf16 alone':>11}"
        f" {'time+master':>12} {'time alone':>11}   (bf16 columns: ratio to float32)"
    )
    for distribution, perturbation in [
        ("openai", "dense"),
        ("openai", "lowrank"),
        ("pgpe", "dense"),
        ("snes", "dense"),
    ]:
        reference, t_ref = run(torch.float32, None, distribution, perturbation, args.generations)
        kept, t_kept = run(torch.bfloat16, True, distribution, perturbation, args.generations)
        alone, t_alone = run(torch.bfloat16, False, distribution, perturbation, args.generations)
        print(
            f"{distribution:12} {perturbation:8} {reference:9.3f} {kept / reference:12.3f} "
            f"{alone / reference:11.3f} {t_kept / t_ref:12.2f} {t_alone / t_ref:11.2f}"
        )


if __name__ == "__main__":
    main()
