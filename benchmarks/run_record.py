"""Run records: their size per generation, and replay time against running the generations.

    python benchmarks/run_record.py                 # all three parts
    python benchmarks/run_record.py --part size     # or: cartpole, finetune

- **size**: bytes per generation of a record by population size (one objective, and three), for
  the CartPole sample's linear policy, against one checkpoint of the same run (the reference a
  record replaces: a full checkpoint per generation you may want back).
- **cartpole**: a 1,000-generation CartPole run (the sample's settings, 16 evaluations per
  generation, episodes capped at 50 steps to keep the recording short) is recorded, then replayed
  from θ₀ to generation 1,000 (``es_opt.record.resume_from_record``: no evaluation, every centre
  checked) and rebuilt without the run's code (``checkpoint_at``); ratio against running it.
- **finetune**: the finetune sample's ES phase (a small pre-trained GPT-2, rank-1 perturbations,
  population 32, 32 prompts per generation), recorded, then replayed; ratio against running it.

Every replayed centre is checked against the record; the final one against the run's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from es_opt import ESOptimizer, Model, Objective
from es_opt.record import RunRecord, checkpoint_at, read_record, resume_from_record
from es_opt.training.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


class Objectives(Objective):
    """k cheap objectives of the parameters (the size of a record does not depend on them)."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, model, samples):
        flat = torch.cat([p.detach().reshape(-1) for p in model.net.parameters()])
        return [float(-(flat - j).square().sum()) for j in range(self.k)]


def record_size(folder: Path) -> None:
    print("bytes per generation (linear 4 -> 2 policy; a checkpoint of it for reference)")
    print(f"{'n_samples':>10} {'objectives':>10} {'bytes/gen':>10} {'vs checkpoint':>14}")
    for k in (1, 3):
        for n in (10, 30, 100, 300):
            torch.manual_seed(0)
            net = nn.Linear(4, 2)
            es = ESOptimizer(Model(net), objective_fn=Objectives(k), n_samples=n, sigma=0.1,
                             obj_weights=[1.0] * k)  # fmt: skip
            path = folder / f"size_{k}_{n}.record"
            es.fit(generations=20, callbacks=[RunRecord(path, start=None)])
            lines = path.read_bytes().split(b"\n")[1:-1]
            per_generation = sum(len(line) + 1 for line in lines) / len(lines)
            save_checkpoint(folder / "one.pt", es)
            checkpoint = (folder / "one.pt").stat().st_size
            print(f"{n:>10} {k:>10} {per_generation:>10.0f} {per_generation / checkpoint:>13.3f}x")
    header = len((folder / "size_1_30.record").read_bytes().split(b"\n")[0])
    print(f"header: {header} bytes (once per record)")


def cartpole(folder: Path, generations: int = 1000) -> None:
    from es_opt.rl import EpisodeReturn, EpisodeSamples

    def build():
        net = nn.Linear(4, 2)
        nn.init.zeros_(net.weight)
        nn.init.zeros_(net.bias)
        from es_opt.optim import RangerLite

        objective = EpisodeReturn("CartPole-v1", max_episode_steps=50)
        return ESOptimizer(Model(net), RangerLite(net.parameters(), lr=0.1, betas=(0.9, 0.9)),
                           objective_fn=objective, sigma=0.1, n_samples=16, seed=0)  # fmt: skip

    es, path = build(), folder / "cartpole.record"
    start = time.perf_counter()
    es.fit(lambda g: EpisodeSamples.for_generation(0, g), generations, callbacks=[RunRecord(path)])
    run = time.perf_counter() - start
    replayed = build()
    start = time.perf_counter()
    resume_from_record(replayed, path)
    replay = time.perf_counter() - start
    start = time.perf_counter()
    rebuilt = checkpoint_at(path)
    rebuild = time.perf_counter() - start
    for a, b, c in zip(es.model.parameters(), replayed.model.parameters(),
                       rebuilt.model.parameters(), strict=True):  # fmt: skip
        assert torch.equal(a, b) and torch.equal(a, c)
    size = path.stat().st_size
    print(f"CartPole, {generations} generations x 16 evaluations (episodes <= 50 steps)")
    print(f"  run (evaluating, recording): {run:.2f} s; record {size / 1e3:.0f} kB")
    print(f"  replay with the run's code:  {replay:.2f} s ({replay / run:.3f} of the run)")
    print(f"  rebuilt without it (CLI):    {rebuild:.2f} s ({rebuild / run:.3f} of the run)")


def finetune(folder: Path, generations: int) -> None:
    spec = importlib.util.spec_from_file_location("finetune", ROOT / "sample_scripts/finetune.py")
    sample = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = sample
    spec.loader.exec_module(sample)
    argv = ["--out", str(folder / "finetune"), "--pretrain-steps", "200", "--pretrain-seconds",
            "60"]  # fmt: skip
    args = sample.parse_config(sample.Args, argv)
    torch.set_num_threads(args.threads)
    net, tokenizer, how = sample.load_model(args)
    theta0 = {k: v.clone() for k, v in net.state_dict().items()}
    es = sample.build_es(args, net, tokenizer)
    path = folder / "finetune.record"

    def samples(generation):
        seed = sample.derive_seed(args.seed, 11, generation)
        problems = sample.addition_problems(args.prompts, seed, carry=True)
        return sample.Prompts(problems, seed=seed)

    start = time.perf_counter()
    es.fit(samples, generations, callbacks=[RunRecord(path)])
    run = time.perf_counter() - start
    net.load_state_dict(theta0)
    again = sample.build_es(args, net, tokenizer)
    start = time.perf_counter()
    resume_from_record(again, path)
    replay = time.perf_counter() - start
    for a, b in zip(es.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(a, b)
    n_params = sum(p.numel() for p in net.parameters())
    lines = path.read_bytes().split(b"\n")[1:-1]
    per_generation = sum(len(line) + 1 for line in lines) / len(lines)
    start_size = (folder / "finetune.start.pt").stat().st_size
    print(f"finetune ES phase: {how}")
    print(f"  {n_params:,} parameters, {generations} generations x {args.n_samples} evaluations")
    print(f"  run: {run:.2f} s; replay: {replay:.2f} s ({replay / run:.3f} of the run)")
    print(
        f"  record {per_generation:.0f} bytes/generation; one checkpoint "
        f"{start_size / 1e3:.0f} kB ({start_size / per_generation:.0f} generations of record)"
    )
    assert read_record(path).end == generations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "size", "cartpole", "finetune"), default="all")
    parser.add_argument("--cartpole-generations", type=int, default=1000)
    parser.add_argument("--finetune-generations", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.part in ("all", "size"):
            record_size(folder)
        if args.part in ("all", "cartpole"):
            cartpole(folder, args.cartpole_generations)
        if args.part in ("all", "finetune"):
            finetune(folder, args.finetune_generations)


if __name__ == "__main__":
    main()
