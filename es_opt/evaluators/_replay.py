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

The population still travels with its σ and its distribution's state (PGPE's and SNES's ``[d]``
σ; CMA-ES's σ, paths and covariance factors), since a worker draws the members from them.

This module holds the whole protocol: what the main process records after an update
(:func:`update_record`), what it sends (:func:`replay_message`), what a worker runs
(:func:`replay_update`) and checks (:func:`replayed_center`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from ..population import Population
from ..update import apply_update, selected_center

__all__ = [
    "ReplayMismatch",
    "digest",
    "group_hyperparameters",
    "replay_message",
    "replay_update",
    "replayable",
    "replayed_center",
    "update_record",
]


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


def replayable(population: Population, held: Population | None) -> bool:
    """Whether the workers hold ``population`` (the last one sent): only then can they replay
    the update of its fitness."""
    return (
        held is not None
        and population.generation == held.generation
        and population.seed == held.seed
        and population.n_evals == held.n_evals
    )


def update_record(
    step_id: int, population: Population, fitness: torch.Tensor, rule: Any, optimizer: Any
) -> dict[str, Any]:
    """What the main process notes after an update: all a worker needs to repeat it."""
    return {
        "step": step_id,
        "generation": population.generation,
        "fitness": fitness.detach().cpu().clone(),
        "rule": rule,
        "groups": group_hyperparameters(optimizer),
    }


def replay_message(record: dict[str, Any], center: torch.Tensor) -> dict[str, Any]:
    """The replay a step message carries in place of the centre: the record and the digest of
    the centre the update must produce."""
    return {**record, "digest": digest(center)}


def replay_update(
    model: Any, optimizer: Any, previous: Population | None, replay: dict[str, Any]
) -> None:
    """The main process's last update, on a worker's replica ``optimizer`` of the inner
    optimizer (the very :func:`~es_opt.update.apply_update`).

    Raises:
        ReplayMismatch: the worker has no replica or does not hold the population the update is
            for.
    """
    if (
        optimizer is None
        or previous is None
        or previous.generation != replay["generation"]
        or previous.n_evals != replay["fitness"].shape[0]
    ):
        raise ReplayMismatch("this worker does not hold the population the update is for")
    for group, values in zip(optimizer.param_groups, replay["groups"], strict=True):
        group.update(values)
    params = model.named_trainable_parameters()
    apply_update(params, optimizer, replay["rule"], previous, replay["fitness"])


def replayed_center(
    model: Any, names: tuple[str, ...], replay: dict[str, Any], step_id: int
) -> torch.Tensor:
    """The worker's centre after a replay, checked against the main process's digest.

    Raises:
        ReplayMismatch: the digests differ.
    """
    center = selected_center(model.named_trainable_parameters(), names)
    if digest(center) != replay["digest"]:
        raise ReplayMismatch(f"the replayed centre of step {step_id} differs")
    return center
