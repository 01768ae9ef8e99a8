"""Separable CMA-ES at a million parameters: its generation against SNES's and OpenAI-ES's at the
same population, and its state growing as O(d). Ratios are within one run (the machine is shared;
absolute times move with the load).

    python benchmarks/large_d.py            # 784-1024-256-10 (1.07 M) and 784-256-256-10 (0.27 M)
    python benchmarks/large_d.py --quick    # fewer repeats

The task: a tanh MLP on synthetic data (256 rows of 784 standard normal features, 10 classes,
seed 0), fitness ``−CE`` (:class:`es_opt.supervised.NegativeCrossEntropy`, one batched call per
generation), population λ = 20, ``torch.optim.SGD`` without momentum as the inner optimizer
(no optimizer state for anyone), σ₀ 0.01. The distributions: ``sep_cma`` (the default
``SepCMAES()``: 20 independent members, so 20 noise rows to draw for the evaluation and again
for the update), ``sep_cma_mirrored`` (``SepCMAES(antithetic=True)``: 10 mirrored pairs, the
better member of each ranked), ``snes`` and ``openai`` (10 mirrored pairs each). For each net
and distribution:

- **generation**: ``es.gradient_step(samples)`` (draw the noise, evaluate the 20 members,
  update), median over the repeats of wall time and process CPU time. The distributions are
  interleaved (one generation of each per repeat), so each meets the same load.
- **ask + tell**: the update without the forward passes, ``es.ask()`` then ``es.tell(f)`` with
  standard normal fitness: what the distribution itself costs (drawing the members' noise again
  for its weighted sums, its state update, the optimizer step).
- **state**: bytes of the tensors the distribution keeps between generations
  (``es.state.distribution_state`` and ``es.state.sigma_vector``) and bytes per parameter, which
  is constant in d when the state is O(d) (separable CMA-ES: σ plus ``p_σ``, ``p_c``, ``C``,
  ``D`` in float64, 32 B/parameter; SNES: σ per parameter; OpenAI-ES: none); and the peak RSS
  of a fresh process that builds the net, the optimizer and runs two generations of that
  distribution alone (``VmHWM``, else ``resource.getrusage``), beside the same process's peak
  before the optimizer was built.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from es_opt import ESOptimizer
from es_opt.distributions import SepCMAES
from es_opt.supervised import ClassificationSamples, NegativeCrossEntropy

NETS = {"784-1024-256-10": (784, 1024, 256, 10), "784-256-256-10": (784, 256, 256, 10)}
# "sep_cma_mirrored": SepCMAES(antithetic=True), mirrored pairs with pairwise selection, so that
# it draws as many noise rows per generation as SNES and OpenAI-ES (λ/2), not λ
DISTRIBUTIONS = ("sep_cma", "sep_cma_mirrored", "snes", "openai")
POPULATION = 20
SIGMA = 0.01
ROWS = 256


def make_net(widths: tuple[int, ...], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # the benchmark's own process: the initial weights are its seed
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(widths) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def synthetic_data(n_features: int, n_classes: int, seed: int = 0) -> ClassificationSamples:
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(ROWS, n_features, generator=g)
    targets = torch.randint(0, n_classes, (ROWS,), generator=g)
    return ClassificationSamples(inputs, targets)


def make_es(widths: tuple[int, ...], distribution: str) -> ESOptimizer:
    net = make_net(widths)
    search = SepCMAES(antithetic=True) if distribution == "sep_cma_mirrored" else distribution
    return ESOptimizer(
        net,
        torch.optim.SGD(net.parameters(), lr=1.0 if distribution != "openai" else 0.01),
        objective_fn=NegativeCrossEntropy(),
        sigma=SIGMA,
        n_samples=POPULATION,
        seed=0,
        distribution=search,
    )


def state_bytes(es: ESOptimizer) -> int:
    """Bytes of the tensors the distribution carries from one generation to the next."""
    tensors = [v for v in es.state.distribution_state.values() if isinstance(v, torch.Tensor)]
    if es.state.sigma_vector is not None:
        tensors.append(es.state.sigma_vector)
    return sum(t.numel() * t.element_size() for t in tensors)


def n_params(widths: tuple[int, ...]) -> int:
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_net(widths: tuple[int, ...], repeats: int) -> dict[str, dict[str, float]]:
    """Median ms per generation and per ask + tell, wall and CPU, the distributions interleaved."""
    samples = synthetic_data(widths[0], widths[-1])
    optimizers = {name: make_es(widths, name) for name in DISTRIBUTIONS}
    fitness = torch.Generator().manual_seed(1)
    for es in optimizers.values():  # warm-up: builds the evaluator, lazily imported torch parts
        es.gradient_step(samples)
    times: dict[str, dict[str, list[float]]] = {
        name: {"gen_wall": [], "gen_cpu": [], "at_wall": [], "at_cpu": []} for name in DISTRIBUTIONS
    }
    for _ in range(repeats):
        for name, es in optimizers.items():
            wall, cpu = _timed(lambda es=es: es.gradient_step(samples))
            times[name]["gen_wall"].append(wall)
            times[name]["gen_cpu"].append(cpu)

            def ask_tell(es=es) -> None:
                es.ask()
                es.tell(torch.randn(POPULATION, generator=fitness))

            wall, cpu = _timed(ask_tell)
            times[name]["at_wall"].append(wall)
            times[name]["at_cpu"].append(cpu)
    out = {}
    for name, es in optimizers.items():
        out[name] = {k: 1e3 * statistics.median(v) for k, v in times[name].items()}
        out[name]["state_bytes"] = state_bytes(es)
        es.close()
    return out


def peak_rss_mb() -> float:
    """This process's peak resident set: ``VmHWM`` where ``/proc`` has it (the peak of this
    program alone), else ``getrusage``'s ``ru_maxrss``, which on Linux keeps the peak of the
    process that started it across ``exec``."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_probe(net: str, distribution: str) -> dict[str, float]:
    """Peak RSS (MB) of this process before and after building the optimizer and running two
    generations of ``distribution`` alone."""
    widths = NETS[net]
    samples = synthetic_data(widths[0], widths[-1])
    make_net(widths)  # the net's and data's memory is in the baseline
    before = peak_rss_mb()
    es = make_es(widths, distribution)
    for _ in range(2):
        es.gradient_step(samples)
    after = peak_rss_mb()
    es.close()
    return {"rss_before_mb": before, "rss_peak_mb": after, "state_bytes": state_bytes(es)}


def probe_in_subprocess(net: str, distribution: str) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--probe", net, distribution]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_uptime() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    parser.add_argument("--probe", nargs=2, metavar=("NET", "DISTRIBUTION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.probe:
        print(json.dumps(memory_probe(*args.probe)))
        return
    repeats = 3 if args.quick else 7
    print(f"load average before: {load_uptime()}; torch threads 1; population {POPULATION}; "
          f"median of {repeats} generations")  # fmt: skip
    memory = {(net, name): probe_in_subprocess(net, name) for net in NETS for name in DISTRIBUTIONS}
    rows = []
    for net, widths in NETS.items():
        timed = time_net(widths, repeats)
        for name in DISTRIBUTIONS:
            rows.append((net, n_params(widths), name, timed[name], memory[(net, name)]))
    print(
        "\n| net | d | distribution | generation wall ms | generation CPU ms | ask+tell wall ms "
        "| ask+tell CPU ms | state MB | state B/param | peak RSS MB (before ES) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for net, d, name, t, m in rows:
        print(
            f"| {net} | {d:,} | {name} | {t['gen_wall']:.0f} | {t['gen_cpu']:.0f} "
            f"| {t['at_wall']:.0f} | {t['at_cpu']:.0f} | {t['state_bytes'] / 1e6:.1f} "
            f"| {t['state_bytes'] / d:.1f} | {m['rss_peak_mb']:.0f} ({m['rss_before_mb']:.0f}) |"
        )
    print("\n| net | ratio | generation wall | generation CPU | ask+tell CPU | state |")
    print("|---|---|---|---|---|---|")
    by = {(net, name): t for net, _, name, t, _ in rows}
    for net in NETS:
        n = by[(net, "snes")]
        for name in ("sep_cma", "sep_cma_mirrored"):
            s = by[(net, name)]
            print(
                f"| {net} | {name} / snes | {s['gen_wall'] / n['gen_wall']:.2f} "
                f"| {s['gen_cpu'] / n['gen_cpu']:.2f} | {s['at_cpu'] / n['at_cpu']:.2f} "
                f"| {s['state_bytes'] / n['state_bytes']:.1f} |"
            )
    big, small = NETS
    growth = by[(big, "sep_cma")]["state_bytes"] / by[(small, "sep_cma")]["state_bytes"]
    ratio = n_params(NETS[big]) / n_params(NETS[small])
    print(f"\nsep_cma state {big} / {small}: {growth:.2f} (d ratio {ratio:.2f})")
    print(f"load average after: {load_uptime()}")


if __name__ == "__main__":
    main()
