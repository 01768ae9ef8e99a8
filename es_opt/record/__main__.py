"""``python -m es_opt.record``: check a run record, or turn it into a checkpoint at generation k.

    python -m es_opt.record --record runs/rl/CartPole-v1/run.record
    python -m es_opt.record --record run.record --generation 40 --output gen40.pt
    python -m es_opt.record --record run.record --start theta0.pt --device cuda

Without ``--output`` it replays the record (to ``--generation``, default the last) and says what
it holds; with it, it also writes the checkpoint at that generation, which loads into the run's
network and resumes like a checkpoint saved there (``--resume`` of the sample scripts). Nothing is
evaluated: the replay recomputes each update from the recorded fitness and checks every centre
against the record.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..cli import arg, parse_config, run_main
from .format import read_record
from .rebuild import checkpoint_at


@dataclass
class Args:
    record: Path | None = arg(None, "the run record (written by es_opt.record.RunRecord)")
    generation: int | None = arg(None, "the generation to replay to (default: the last)")
    output: Path | None = arg(None, "write the checkpoint at that generation here")
    start: Path | None = arg(None, "the checkpoint of θ₀ (default: the one the record names)")
    device: str = arg("cpu", "where the updates are recomputed")


def main(argv: list[str] | None = None) -> int:
    args = parse_config(Args, argv, description=__doc__)
    if args.record is None:
        raise ValueError("--record is required: the run record to replay")
    record = read_record(args.record)
    environment = record.header.get("environment", {})
    print(
        f"{args.record}: {record.span()}; written by es_opt {environment.get('es_opt')}, torch "
        f"{environment.get('torch')} on {environment.get('device')}"
    )
    begin = time.perf_counter()
    es = checkpoint_at(record, args.generation, args.output, start=args.start, device=args.device)
    seconds = time.perf_counter() - begin
    if es.generation > record.start:
        print(
            f"replayed generations {record.start} to {es.generation - 1} in {seconds:.2f} s: "
            "every centre matches the record"
        )
    else:
        print(f"generation {es.generation} is the record's start: θ₀ matches the record")
    if args.output is not None:
        print(f"checkpoint at generation {es.generation}: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
