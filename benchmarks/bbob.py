"""es_opt's CMA-ES family against pycma on COCO's noiseless BBOB suite (``cocoex``), side by side
in one run, plus the algorithm's own cost per generation and restarts on the multimodal functions.

    python benchmarks/bbob.py --quick     # dims 2, 5, 10; instances 1-2; d ≤ 1000 for the cost
    python benchmarks/bbob.py             # the full run: dims 2, 5, 10, 20; instances 1-15;
                                          # cost up to d = 10,000; restarts on 15 instances

**ecdf**: the 24 functions, each algorithm started from the same uniform point in ``[-4, 4]^d``
with σ₀ = 2 and its default population, one run until ``budget × d`` evaluations, its own
termination criteria or ``f − f_opt ≤ 1e-8``. For each (function, instance) the 51 targets
``f_opt + 10^k``, ``k = 2, 1.8, …, −8``: the ECDF of targets reached against evaluations / d
(COCO's runtime ECDF), drawn into ``docs/img/bbob_ecdf.png``; its area is the mean of the ECDF
over ``log10(evaluations/d)`` from 0 to ``log10(budget)`` (1 = every target at once). Sides:
es_opt ``CMAES()`` and ``SepCMAES()`` (``BlackBoxSearch``), pycma 4 default and
``CMA_diagonal=True``.

**cost**: ask + tell without the function, ms per generation at the default λ, the
eigendecomposition (``eigh`` of a d × d matrix, both sides call it once per ``eigen_interval``
generations) measured apart and amortised.

**restarts**: f15–f24 at d = 10, es_opt IPOP and BIPOP (``Restarts``) against
``cma.fmin(..., restarts=9, bipop=True)``, same x0 rule (uniform in [-4, 4]^d per run), σ₀ = 2,
budget ``restart_budget × d`` evaluations: instances solved to 1e-8.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread for both sides; the machine is shared

import argparse
import math
import tempfile
import time
import warnings
from pathlib import Path

import cma
import cocoex
import numpy as np
import torch

from es_opt.distributions import CEM, CMAES, SepCMAES
from es_opt.distributions.black_box import BlackBoxSearch
from es_opt.distributions.cma_parameters import default_population_size
from es_opt.distributions.restarts import Restarts
from es_opt.distributions.stopping import StopConditions, coordinate_stds, stop_reasons

TARGETS = 10.0 ** np.arange(2, -8.01, -0.2)
IMAGE = Path(__file__).resolve().parents[1] / "docs" / "img" / "bbob_ecdf.png"


class Budget(Exception):
    """The evaluation budget is spent."""


class Recorder:
    """Wraps a BBOB problem: counts evaluations, records the first evaluation reaching each
    target, and stops the caller at the budget or the final target."""

    def __init__(self, problem, f_opt: float, budget: int):
        self.problem, self.f_opt, self.budget = problem, f_opt, budget
        self.evaluations, self.best = 0, math.inf
        self.hits = np.full(TARGETS.size, np.inf)

    def __call__(self, x) -> float:
        if self.evaluations >= self.budget or self.best <= TARGETS[-1]:
            raise Budget
        value = float(self.problem(np.asarray(x, dtype=float)))
        self.evaluations += 1
        delta = value - self.f_opt
        if delta < self.best:
            self.best = delta
            self.hits[(TARGETS >= delta) & np.isinf(self.hits)] = self.evaluations
        return value

    def batch(self, X: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self(x) for x in X.numpy()], dtype=torch.float64)


def f_opt_of(problem, workdir: str) -> float:
    """``f(x_opt)`` from cocoex's printout of the optimum (evaluated on a spare copy)."""
    cwd = os.getcwd()
    try:
        os.chdir(workdir)
        problem._best_parameter("print")
        text = Path(workdir, "._bbob_problem_best_parameter.txt").read_text()
    finally:
        os.chdir(cwd)
    return float(problem(np.array([float(v) for v in text.split()])))


def start(d: int, function: int, instance: int, run: int = 0) -> np.ndarray:
    return np.random.default_rng([d, function, instance, run]).uniform(-4, 4, d)


def run_es_opt(distribution, recorder: Recorder, x0: np.ndarray, seed: int) -> None:
    dim = x0.size
    lam = default_population_size(dim)
    search = BlackBoxSearch(distribution, torch.tensor(x0), 2.0, n_samples=lam, seed=seed)
    best, median = [], []
    try:
        while True:
            values = recorder.batch(search.ask())
            search.tell(values)
            best.append(float(values.min()))
            median.append(float(values.median()))
            sigma = distribution.sigma_of(search.state, search.generation, 2.0)
            if stop_reasons(StopConditions(), state=search.state, sigma=sigma, mean=search.mean,
                            best=best, median=median, n_samples=lam,
                            current_range=float(values.max() - values.min())):  # fmt: skip
                return
    except Budget:
        return


def run_pycma(options: dict, recorder: Recorder, x0: np.ndarray, seed: int) -> None:
    es = cma.CMAEvolutionStrategy(x0, 2.0, {"verbose": -9, "seed": seed + 1, **options})
    try:
        while not es.stop():
            X = es.ask()
            es.tell(X, [recorder(x) for x in X])
    except Budget:
        return


SIDES = {
    "es_opt cma": lambda rec, x0, seed: run_es_opt(CMAES(), rec, x0, seed),
    "es_opt sep_cma": lambda rec, x0, seed: run_es_opt(SepCMAES(), rec, x0, seed),
    "pycma": lambda rec, x0, seed: run_pycma({}, rec, x0, seed),
    "pycma diagonal": lambda rec, x0, seed: run_pycma({"CMA_diagonal": True}, rec, x0, seed),
}


def ecdf(dims, instances, budget: int, hits_dir: Path | None = None, rerun=()) -> dict:
    """Every side on every (function, instance) of each dimension. With ``hits_dir``, each
    dimension's first-hit evaluations are saved there (``hits_d{d}.npz``) once it is done, and
    the sides already saved with the same instances and budget are loaded instead of rerun
    (except those named in ``rerun``, e.g. after a change to that side)."""
    hits = {(side, d): [] for side in SIDES for d in dims}
    workdir = tempfile.mkdtemp()
    for d in dims:
        saved = None if hits_dir is None else hits_dir / f"hits_d{d}.npz"
        todo = dict(SIDES)
        if saved is not None and saved.exists():
            data = np.load(saved)
            if str(data["instances"]) == instances and int(data["budget"]) == budget:
                for side in SIDES:
                    if side in data.files and side not in rerun:
                        hits[(side, d)] = list(data[side])
                        del todo[side]
                print(f"  d={d}: loaded {len(SIDES) - len(todo)} sides from {saved}")
        if not todo:
            continue
        options = f"dimensions: {d} instance_indices: {instances}"
        spare = cocoex.Suite("bbob", "", options)
        suite = cocoex.Suite("bbob", "", options)
        started = time.perf_counter()
        for spare_problem, problem in zip(spare, suite, strict=True):
            f_opt = f_opt_of(spare_problem, workdir)
            fn, inst = problem.id_function, problem.id_instance
            for side, run in todo.items():
                recorder = Recorder(problem, f_opt, budget * d)
                run(recorder, start(d, fn, inst), seed=1000 * fn + inst)
                hits[(side, d)].append(recorder.hits)
        print(f"  d={d}: {len(suite)} problems x {len(todo)} sides in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        if saved is not None:
            saved.parent.mkdir(parents=True, exist_ok=True)
            arrays = {side: np.array(hits[(side, d)]) for side in SIDES}
            np.savez(saved, instances=instances, budget=budget, **arrays)
    return hits


def areas(hits: dict, dims, budget: int) -> dict:
    grid = np.linspace(0, math.log10(budget), 201)
    out = {}
    for (side, d), runs in hits.items():
        runtimes = np.log10(np.concatenate(runs) / d)
        out[(side, d)] = float(np.mean([(runtimes <= g).mean() for g in grid]))
    return out


def plot(hits: dict, dims, budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(dims), figsize=(4 * len(dims), 3.4), sharey=True)
    grid = np.linspace(0, math.log10(budget), 201)
    for ax, d in zip(np.atleast_1d(axes), dims, strict=True):
        for side in SIDES:
            runtimes = np.log10(np.concatenate(hits[(side, d)]) / d)
            ax.plot(grid, [(runtimes <= g).mean() for g in grid], label=side)
        ax.set_title(f"BBOB f1-f24, d={d}")
        ax.set_xlabel("log10(evaluations / d)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("fraction of (function, instance, target) reached")
    np.atleast_1d(axes)[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    IMAGE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMAGE, dpi=110)
    print(f"  ECDF written to {IMAGE}")


def _per_generation(step, values, blocks: int = 5) -> float:
    """The fastest of ``blocks`` equal runs over ``values`` (one generation each), per
    generation: on a loaded machine the minimum is the least disturbed."""
    step(values[-1])
    size = max(1, (len(values) - 1) // blocks)
    best = math.inf
    for b in range(blocks):
        chunk = values[b * size : (b + 1) * size]
        if len(chunk) == 0:
            break
        begin = time.perf_counter()
        for v in chunk:
            step(v)
        best = min(best, (time.perf_counter() - begin) / len(chunk))
    return best


def cost(dims) -> None:
    """Below d = 1000 both sides run their defaults, eigendecompositions included as they
    happen; from d = 1000 on (where one ``eigh`` outweighs many generations, so a short timing
    would depend on how many it happens to contain) a few generations without one plus one
    timed ``eigh`` spread over each side's own interval (pycma: ``1/(10 d (c_1 + c_μ))``
    generations with its own rates; there without active weights, which need fresh
    eigenvectors)."""
    torch.set_num_threads(1)
    print(f"{'d':>6} {'lam':>4} {'es_opt cma ms':>13} {'pycma ms':>9} {'ratio':>6} "
          f"{'es_opt sep ms':>13} {'pycma diag ms':>13} {'ratio':>6} {'eigh s':>7}")  # fmt: skip
    for d in dims:
        lam = default_population_size(d)
        split = d >= 1000
        gens = 10 if split else max(20, min(300, 30_000 // d))
        # random rankings: no systematic selection, so nothing degenerates however long it runs
        values = torch.rand(gens + 1, lam, generator=torch.Generator().manual_seed(d),
                            dtype=torch.float64)  # fmt: skip
        timings = {}
        for name, dist in (
            ("cma", CMAES(max_dim=max(d, 10_000), eigen_interval=10**9 if split else None)),
            ("sep", SepCMAES()),
        ):
            search = BlackBoxSearch(dist, torch.ones(d), 0.5, n_samples=lam, seed=0)
            timings[name] = _per_generation(lambda v, s=search: (s.ask(), s.tell(v)), values)
        for name, options in (("pycma", {}), ("pycma diag", {"CMA_diagonal": True})):
            if split and not options:
                options = {"CMA_active": False, "updatecovwait": 10**9}
            es = cma.CMAEvolutionStrategy(np.ones(d), 0.5, {"verbose": -9, "popsize": lam,
                                                             "seed": 1, **options})  # fmt: skip
            timings[name] = _per_generation(lambda v, es=es: es.tell(es.ask(), list(v)),
                                            values.numpy())  # fmt: skip
        eigh = math.nan
        if split:
            matrix = torch.eye(d, dtype=torch.float64) + 1e-3
            begin = time.perf_counter()
            torch.linalg.eigh(matrix)
            eigh = time.perf_counter() - begin
            params = CMAES().parameters(d, lam)
            timings["cma"] += eigh / params.eigen_interval
            es = cma.CMAEvolutionStrategy(np.ones(d), 0.5, {"verbose": -9, "popsize": lam})
            timings["pycma"] += eigh * (es.sp.c1 + es.sp.cmu) * d * 10
        print(f"{d:>6} {lam:>4} {timings['cma'] * 1e3:>13.3f} {timings['pycma'] * 1e3:>9.3f} "
              f"{timings['cma'] / timings['pycma']:>6.2f} {timings['sep'] * 1e3:>13.3f} "
              f"{timings['pycma diag'] * 1e3:>13.3f} "
              f"{timings['sep'] / timings['pycma diag']:>6.2f} {eigh:>7.1f}")  # fmt: skip


def mirrored(seeds: int = 5, dim: int = 10, budget: int = 50_000) -> None:
    """Independent members against mirrored pairs (pairwise selection for the CMA family) at
    the same λ: median evaluations to f ≤ 1e-8 over ``seeds`` runs (``inf``: not within
    ``budget``), from x0 = 0.5 (sphere, ellipsoid) or 0 (Rosenbrock) with σ₀ = 1; CEM from
    x0 = 3 with σ₀ = 3 and λ = 10 d (with fewer members it stalls)."""
    h = 1e6 ** (torch.arange(dim, dtype=torch.float64) / (dim - 1))
    functions = {
        "sphere": (lambda x: (x**2).sum(1), 0.5),
        "ellipsoid": (lambda x: (x**2 * h).sum(1), 0.5),
        "rosenbrock": (
            lambda x: (100 * (x[:, 1:] - x[:, :-1] ** 2) ** 2 + (1 - x[:, :-1]) ** 2).sum(1),
            0.0,
        ),  # fmt: skip
    }
    lam = 2 * (default_population_size(dim) // 2 + 1)
    sides = {
        "cma": (lambda a: CMAES(antithetic=a), lam, 1.0, None),
        "sep_cma": (lambda a: SepCMAES(antithetic=a), lam, 1.0, None),
        "cem": (lambda a: CEM(antithetic=a), 10 * dim, 3.0, 3.0),
    }
    print(f"d={dim}, {seeds} seeds: median evaluations to 1e-8 (λ {lam}; CEM {10 * dim})")
    print(f"{'function':>11} {'side':>8} {'independent':>12} {'mirrored':>9} {'ratio':>6}")
    for fname, (f, start_at) in functions.items():
        for side, (make, n_samples, sigma0, cem_start) in sides.items():
            medians = []
            for antithetic in (False, True):
                runs = []
                for seed in range(seeds):
                    x0 = torch.full((dim,), cem_start if cem_start else start_at,
                                    dtype=torch.float64)  # fmt: skip
                    search = BlackBoxSearch(make(antithetic), x0, sigma0, n_samples=n_samples,
                                            seed=seed)  # fmt: skip
                    reached = math.inf
                    while search.evaluations < budget:
                        values = f(search.ask())
                        search.tell(values)
                        if float(values.min()) <= 1e-8:
                            reached = search.evaluations
                            break
                        sigma = search.distribution.sigma_of(search.state, 0, 1.0)
                        if float(coordinate_stds(search.state, sigma).max()) < 1e-14:
                            break  # converged elsewhere (CEM can stall)
                    runs.append(reached)
                medians.append(float(np.median(runs)))
            print(f"{fname:>11} {side:>8} {medians[0]:>12.0f} {medians[1]:>9.0f} "
                  f"{medians[1] / medians[0]:>6.2f}")  # fmt: skip


def restarts(instances, budget: int, dim: int = 10) -> None:
    workdir = tempfile.mkdtemp()
    options = f"dimensions: {dim} instance_indices: {instances} function_indices: 15-24"
    spare, suite = cocoex.Suite("bbob", "", options), cocoex.Suite("bbob", "", options)
    solved = {"es_opt ipop": 0, "es_opt bipop": 0, "pycma bipop": 0}
    print(f"{'function':>9} {'instance':>8} " + " ".join(f"{s:>14}" for s in solved))
    for spare_problem, problem in zip(spare, suite, strict=True):
        f_opt = f_opt_of(spare_problem, workdir)
        fn, inst = problem.id_function, problem.id_instance
        row = []
        for side in solved:
            recorder = Recorder(problem, f_opt, budget * dim)
            if side.startswith("es_opt"):
                strategy = side.split()[1]
                search = Restarts(
                    CMAES(), lambda g: 8 * torch.rand(dim, generator=g, dtype=torch.float64) - 4,
                    2.0, strategy=strategy, max_restarts=9, seed=1000 * fn + inst,
                )  # fmt: skip
                try:
                    search.run(recorder.batch)
                except Budget:
                    pass
            else:
                rng = np.random.default_rng([fn, inst])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        cma.fmin(recorder, lambda rng=rng: rng.uniform(-4, 4, dim), 2.0,
                                 {"verbose": -9, "seed": fn * 1000 + inst + 1},
                                 restarts=9, bipop=True)  # fmt: skip
                    except Budget:
                        pass
            reached = recorder.best <= 1e-8
            solved[side] += reached
            row.append(f"{recorder.evaluations if reached else '-':>14}")
        print(f"{fn:>9} {inst:>8} " + " ".join(row))
    print("solved: " + ", ".join(f"{side} {count}" for side, count in solved.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the reduced run")
    parser.add_argument("--part", choices=("all", "ecdf", "cost", "restarts", "mirrored"),
                        default="all")  # fmt: skip
    parser.add_argument("--budget", type=int, default=1000, help="evaluations per dimension")
    parser.add_argument("--restart-budget", type=int, default=None,
                        help="evaluations per dimension with restarts")  # fmt: skip
    parser.add_argument("--dims", type=int, nargs="+", default=None,
                        help="ECDF dimensions (default 2 5 10 20; --quick: 2 5 10)")  # fmt: skip
    parser.add_argument("--instances", default=None,
                        help="instance range, e.g. 1-15 (default; --quick: 1-2)")  # fmt: skip
    parser.add_argument("--hits-dir", type=Path, default=None,
                        help="save each dimension's ECDF hits there and reuse them")  # fmt: skip
    parser.add_argument("--rerun", nargs="+", default=(), choices=list(SIDES),
                        help="sides to run again although --hits-dir holds them")  # fmt: skip
    args = parser.parse_args()
    dims = tuple(args.dims or ((2, 5, 10) if args.quick else (2, 5, 10, 20)))
    instances = args.instances or ("1-2" if args.quick else "1-15")
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; OMP_NUM_THREADS="
          f"{os.environ['OMP_NUM_THREADS']}")  # fmt: skip
    if args.part in ("all", "ecdf"):
        print(f"ECDF: dims {dims}, instances {instances}, budget {args.budget} x d")
        hits = ecdf(dims, instances, args.budget, args.hits_dir, tuple(args.rerun))
        area = areas(hits, dims, args.budget)
        print(f"{'side':>16} " + " ".join(f"{'d=' + str(d):>8}" for d in dims))
        for side in SIDES:
            print(f"{side:>16} " + " ".join(f"{area[(side, d)]:>8.3f}" for d in dims))
        print(f"{'cma / pycma':>16} " + " ".join(
            f"{area[('es_opt cma', d)] / area[('pycma', d)]:>8.3f}" for d in dims))  # fmt: skip
        print(f"{'sep / diagonal':>16} " + " ".join(
            f"{area[('es_opt sep_cma', d)] / area[('pycma diagonal', d)]:>8.3f}" for d in dims
        ))  # fmt: skip
        plot(hits, dims, args.budget)
    if args.part in ("all", "cost"):
        print("cost per generation (ask + tell, no function), eigendecomposition amortised")
        cost((10, 100, 1000) if args.quick else (10, 100, 1000, 10_000))
    if args.part in ("all", "mirrored"):
        print("independent members against mirrored pairs at the same λ")
        mirrored(seeds=3 if args.quick else 10)
    if args.part in ("all", "restarts"):
        budget = args.restart_budget or (20_000 if args.quick else 100_000)
        print(f"restarts: f15-f24, d=10, instances {instances}, budget {budget} x d")
        restarts(instances, budget)
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
