"""Runs one (side, task, seed) in this process and writes its metrics as JSON.

    python -m benchmarks.peers.worker evotorch cartpole --seed 0 --budget 60 --out result.json

A failure (the side cannot be imported, or raises) is written as ``{"error": ...}`` with the
traceback, and the exit status is 1. ``run.py`` starts one of these per run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
import traceback
from pathlib import Path

SIDE_MODULES = {
    "es_opt": "benchmarks.peers.es_opt_side",
    "evotorch": "benchmarks.peers.evotorch_side",
    "pytorch-optimize": "benchmarks.peers.pytorch_optimize_side",
    # one search distribution on every task, each against its counterpart
    "evotorch-pgpe": "benchmarks.peers.evotorch_pgpe_side",
    "evotorch-snes": "benchmarks.peers.evotorch_snes_side",
    "es_opt-pgpe": "benchmarks.peers.es_opt_pgpe_side",
    "es_opt-snes": "benchmarks.peers.es_opt_snes_side",
    # the CMA-ES family: full CMA-ES (not on digits) and separable CMA-ES
    "es_opt-cma": "benchmarks.peers.es_opt_cma_side",
    "es_opt-sep_cma": "benchmarks.peers.es_opt_sep_cma_side",
    **{f"evotorch-{v}": f"benchmarks.peers.evotorch_cma_side:{v}" for v in ("cma", "sep_cma")},
    # "module:variant": the module's runners(variant) (one module, several algorithms)
    **{
        f"evosax-{v}": f"benchmarks.peers.evosax_side:{v}"
        for a in ("openes", "pgpe", "snes")
        for v in (a, f"{a}-jit")
    },
    **{f"evox-{a}": f"benchmarks.peers.evox_side:{a}" for a in ("openes", "snes")},
}


def _preload_torch_lazy_imports() -> None:
    """The first ``torch.optim.Optimizer`` a process builds imports ``torch._dynamo`` (~2 s
    here): an import, so it is paid here, outside the clock, for every side alike (EvoTorch's
    own optimizers never build one; es_opt's and pytorch-optimize's do)."""
    import torch

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)


def run_one(side: str, task: str, seed: int, budget_s: float) -> dict:
    start = time.perf_counter()
    try:
        _preload_torch_lazy_imports()
        path, _, variant = SIDE_MODULES[side].partition(":")
        module = importlib.import_module(path)
        runners = module.runners(variant) if variant else module.RUNNERS
    except Exception:
        return {"error": "import failed:\n" + traceback.format_exc(), "phase": "import"}
    import_s = time.perf_counter() - start
    try:
        version = module.version()
    except Exception as exc:  # a version lookup must not sink the run
        version = f"unknown ({exc})"
    try:
        result = runners[task](seed, budget_s)
    except Exception:
        return {"error": traceback.format_exc(), "phase": "run", "version": version}
    result.update(version=version, import_s=round(import_s, 3), python=platform.python_version())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description="Run one benchmark run and write JSON.")
    parser.add_argument("side", choices=sorted(SIDE_MODULES))
    parser.add_argument("task")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = run_one(args.side, args.task, args.seed, args.budget)
    result.update(side=args.side, task=args.task, seed=args.seed)
    args.out.write_text(json.dumps(result, indent=1))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    raise SystemExit(main())
