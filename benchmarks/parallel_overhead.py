"""Parallel overhead: wall time per generation of the serial, multiprocess and Ray backends against
the objective's own time, measured in the same run.

Two objectives of known cost, n_samples = 100:

- ``cpu``: a CPU-bound task of ~5 ms (a fixed number of small matrix products, calibrated here);
- ``cartpole``: one CartPole-v1 episode (at most 500 steps) with a 4-32-2 MLP policy.

For each backend: ``ratio = wall time per generation / ideal``, where ``ideal`` is the sum of the
objective's own time (measured inside the objective, in whichever process runs it) divided by the
number of workers. Goals on a 2-core machine: serial <= 1.03, multiprocess (2 workers) <= 1.10,
Ray (2 actors) <= 1.25 after start-up, which is reported separately.

Then the per-generation overhead (wall minus objective time, per worker) against the parameter
count (10k, 100k, 1M, 4M; a near-free objective), the bytes of a step message and the workers'
resident memory, for each parallel backend with ``sync="center"`` (the new centre travels every
step) and ``sync="replay"`` (the workers recompute it; only the update's scalars travel).

Usage::

    python benchmarks/parallel_overhead.py                 # everything (a few minutes)
    python benchmarks/parallel_overhead.py --skip-ray --generations 3
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from torch import nn

from es_opt import ESOptimizer, Model, Objective, Samples

N_SAMPLES = 100


@dataclass
class EpisodeSeed(Samples):
    seed: int


class Timed(Objective):
    """Measures its own time per evaluation (sent back as stats and summed in the main process)."""

    def __init__(self):
        self.total = 0.0
        self._last = 0.0

    def __call__(self, model, samples):
        start = time.perf_counter()
        value = self.work(model, samples)
        self._last = time.perf_counter() - start
        return value

    def collect_stats(self):
        return self._last

    def merge_stats(self, stats):
        self.total += sum(stats)


class CpuTask(Timed):
    """A CPU-bound task of a fixed amount of work (``repeats`` products of 64x64 matrices)."""

    def __init__(self, repeats: int):
        super().__init__()
        self.repeats = repeats

    def work(self, model, samples):
        x = torch.full((64, 64), 0.01)
        for _ in range(self.repeats):
            x = torch.tanh(x @ x)
        return float(model.net.weight.sum()) + float(x[0, 0])


class CartPole(Timed):
    """One CartPole-v1 episode with the net as a greedy policy; the environment is created lazily
    in the process that runs it (environments are not shipped)."""

    def __init__(self):
        super().__init__()
        self.env = None

    def __getstate__(self):
        return {**self.__dict__, "env": None}

    def work(self, model, samples):
        import gymnasium as gym

        if self.env is None:
            self.env = gym.make("CartPole-v1")
        obs, _ = self.env.reset(seed=samples.seed)
        total, done = 0.0, False
        with torch.no_grad():
            while not done:
                action = int(model(torch.as_tensor(obs, dtype=torch.float32)).argmax())
                obs, reward, terminated, truncated, _ = self.env.step(action)
                total += float(reward)
                done = terminated or truncated
        return total


class Free(Timed):
    def work(self, model, samples):
        return float(next(model.net.parameters())[0, 0])


def calibrate_repeats(target_s: float = 0.005) -> int:
    torch.set_num_threads(1)  # as in the workers (worker_threads=1)
    task = CpuTask(50)
    net = Model(nn.Linear(4, 1))
    task(net, None)
    start = time.perf_counter()
    for _ in range(10):
        task(net, None)
    per = (time.perf_counter() - start) / 10
    return max(1, round(50 * target_s / per))


def wide_net(n_params: int) -> nn.Module:
    hidden = max(1, n_params // 34)  # Linear(32, h) + Linear(h, 1): 34 h + 1 parameters
    return nn.Sequential(nn.Linear(32, hidden), nn.Tanh(), nn.Linear(hidden, 1))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(
    backend, net, objective, samples, generations, n_workers, sync="center", perturbation="dense"
):
    options = {} if backend == "serial" else {"n_workers": n_workers, "sync": sync}
    es = ESOptimizer(
        Model(net), objective_fn=objective, n_samples=N_SAMPLES, sigma=0.02, seed=0,
        backend=backend, perturbation=perturbation, **options,
    )  # fmt: skip
    try:
        start = time.perf_counter()
        es.gradient_step(samples(0))
        first = time.perf_counter() - start
        objective.total = 0.0
        start = time.perf_counter()
        for generation in range(1, generations + 1):
            es.gradient_step(samples(generation))
        wall = (time.perf_counter() - start) / generations
        own = objective.total / generations
        workers = 1 if backend == "serial" else n_workers
        evaluator = es.evaluator
        if backend == "multiprocess":
            pids = evaluator.worker_pids()
        elif backend == "ray":
            pids = [info["pid"] for info in evaluator.worker_info()]
        else:
            pids = []
        memory = max((rss_mb(p) for p in pids), default=float("nan"))
        message = evaluator._messages.payload_bytes if backend != "serial" else 0
        return {
            "message": message,
            "startup": first - wall,
            "wall": wall,
            "own": own,
            "ideal": own / workers,
            "ratio": wall / (own / workers),
            "overhead": wall - own / workers,
            "rss": memory,
        }
    finally:
        es.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=5, help="timed generations per run")
    parser.add_argument("--workers", type=int, default=2, help="workers / actors")
    parser.add_argument("--skip-ray", action="store_true", help="leave the Ray backend out")
    parser.add_argument("--skip-scaling", action="store_true", help="leave the 10k-4M table out")
    parser.add_argument("--skip-tasks", action="store_true", help="only the 10k-4M table")
    parser.add_argument(
        "--perturbation", default="dense", help="family of the 10k-4M table (dense, lowrank)"
    )
    args = parser.parse_args()
    backends = ["serial", "multiprocess"] + ([] if args.skip_ray else ["ray"])
    goals = {"serial": 1.03, "multiprocess": 1.10, "ray": 1.25}
    repeats = calibrate_repeats()
    if not args.skip_ray:
        import logging

        import ray

        from es_opt.evaluators.ray_backend import _loopback_only, _quiet_token_notice

        start = time.perf_counter()
        # one private Ray for every run below, started as the backend starts it
        with _loopback_only(ray), _quiet_token_notice():
            ray.init(num_cpus=args.workers, include_dashboard=False, logging_level=logging.WARNING)
        print(f"Ray start-up (ray.init, {args.workers} CPUs): {time.perf_counter() - start:.1f} s")

    def policy():
        gen = torch.Generator().manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        return net

    tasks = {
        "cpu ~5 ms": (lambda: nn.Linear(4, 1), lambda: CpuTask(repeats), lambda g: None),
        "cartpole": (policy, CartPole, EpisodeSeed),
    }
    print(f"n_samples={N_SAMPLES}, {args.workers} workers, {args.generations} generations/run")
    print(f"{'task':<11}{'backend':<14}{'wall/gen s':>11}{'own s':>9}{'ideal s':>9}"
          f"{'ratio':>7}{'goal':>6}{'start-up s':>11}")  # fmt: skip
    # start-up: the first generation's extra time (starting workers / actors, shipping the model)
    for task, (make_net, make_objective, samples) in tasks.items() if not args.skip_tasks else ():
        for backend in backends:
            r = measure(
                backend, make_net(), make_objective(), samples, args.generations, args.workers
            )
            print(
                f"{task:<11}{backend:<14}{r['wall']:>11.3f}{r['own']:>9.3f}{r['ideal']:>9.3f}"
                f"{r['ratio']:>7.2f}{goals[backend]:>6.2f}{r['startup']:>11.2f}"
            )
    if args.skip_scaling:
        return
    print(
        "\nper-generation overhead (wall - own/workers) against parameters, near-free objective, "
        f"{args.perturbation} perturbations"
    )
    print(f"{'params':>9}{'backend':>22}{'wall/gen s':>11}{'overhead s':>11}{'x 10k':>7}"
          f"{'message KB':>11}{'worker RSS MB':>14}")  # fmt: skip
    syncs = ("center", "replay")
    runs = [("serial", "center")] + [(b, sync) for b in backends[1:] for sync in syncs]
    for backend, sync in runs:
        base = None
        name = backend if backend == "serial" else f"{backend} ({sync})"
        for n_params in (10_000, 100_000, 1_000_000, 4_000_000):
            net = wide_net(n_params)
            r = measure(
                backend, net, Free(), lambda g: None, args.generations, args.workers, sync,
                args.perturbation,
            )  # fmt: skip
            base = base or r["overhead"]
            print(
                f"{sum(p.numel() for p in net.parameters()):>9}{name:>22}{r['wall']:>11.3f}"
                f"{r['overhead']:>11.3f}{r['overhead'] / base:>7.1f}{r['message'] / 1024:>11.1f}"
                f"{r['rss']:>14.0f}"
            )


if __name__ == "__main__":
    main()
