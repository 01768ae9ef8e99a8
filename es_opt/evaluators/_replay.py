"""``sync="replay"``: workers recompute each update of the centre instead of receiving it.

With ``sync="center"`` (the default) every step message carries the centre of the selected
parameters: ``4·d`` bytes per worker and step, which for a language model (``d`` ≈ 10⁸–10⁹) is
what limits a cluster. With ``sync="replay"`` the main process ships, once, a replica of the inner
optimizer with the model (pickled together, so that the replica's parameter groups hold the
worker's own parameters), and then, per step, only what the update is a function of:

- the previous generation's checked fitness (``n_evals × n_objectives`` floats), its generation
  and seed (the worker still holds that population: its noise is rebuilt from the seeds),
- the :class:`~es_opt.update.UpdateRule` (objective weights, shaping, search distribution) and the
  hyperparameters of every parameter group (a learning-rate schedule changes them),
- a 128-bit BLAKE2 digest of the new centre.

The worker runs :func:`~es_opt.update.apply_update`, the very function the main process ran, on
its replica, then compares the digest of its parameters with the main process's. Equal digests
mean the worker evaluates exactly the main process's centre. Anything else (parameters changed
between steps by the user, a replica that computes differently, e.g. on another device or with a
reduction that depends on the thread count, a worker that missed a step) is a mismatch: the
worker answers ``("resync", indices)`` and the scheduler sends it the full state, centre and
optimizer state included, then runs the chunk again. Replay therefore never changes a result,
only what travels; ``ParallelEvaluator.sync_stats`` counts replays and resyncs.

A search distribution that adapts σ per parameter (PGPE, SNES) still sends its ``[d]`` σ.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

__all__ = ["ReplayMismatch", "digest", "group_hyperparameters"]


class ReplayMismatch(RuntimeError):
    """A worker's replayed centre is not the main process's: it needs the full state."""


def digest(center: torch.Tensor) -> str:
    """BLAKE2b-128 of the tensor's bytes (on the CPU): equal digests mean equal bits.

    Example:
        >>> zero = digest(torch.zeros(3))
        >>> zero == digest(torch.zeros(3)), zero == digest(-torch.zeros(3))  # -0.0 has other bits
        (True, False)
    """
    flat = center.detach().reshape(-1).cpu().contiguous()
    return hashlib.blake2b(flat.view(torch.uint8).numpy().tobytes(), digest_size=16).hexdigest()


def group_hyperparameters(optimizer: Any) -> list[dict[str, Any]]:
    """Every parameter group's settings but its parameters (the learning rate a scheduler sets)."""
    return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
