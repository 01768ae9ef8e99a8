"""Replay: every centre of a recorded run, rebuilt from θ₀ and the record without evaluating
anything.

An ES update is a deterministic function of the centre, the seeds, the settings and the
generation's fitness: for each recorded generation ``g`` the replay applies the settings that
changed, asks the optimizer for its population (which rebuilds the noise from the seeds),
checks that the sampled layers are the recorded ones, tells it the recorded fitness and checks
the digest of the new centre against the record's. It uses only :class:`~es_opt.ESOptimizer`'s
public ``ask``, ``tell``, ``state_dict``, ``load_state_dict``, settings and
``optimizer.param_groups``: the very code of the run, so equal bits by construction on the same
environment. When a digest differs the error names the generation and what differs from the
environment that wrote the record (torch version, device kind, ...).

Everything is checked before anything changes (the record, the model, the configuration, θ₀),
and a replay that fails half-way puts the optimizer back as it was.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..model import SamplingStrategy
from . import snapshot
from .codec import decode
from .format import Record, RecordError, read_record
from .writer import settings_at

if TYPE_CHECKING:
    from ..optimizer import ESOptimizer

__all__ = ["replay", "resume_from_record", "check_matches", "start_checkpoint"]

_SETTERS = ("seed", "sigma", "n_samples", "obj_weights")


def _as_record(record: Record | str | os.PathLike[str]) -> Record:
    return record if isinstance(record, Record) else read_record(record)


def _target(record: Record, generation: int | None) -> int:
    if generation is None:
        return record.end
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise TypeError(f"generation must be an int or None, got {generation!r}")
    if not record.start <= generation <= record.end:
        raise record.error(
            generation,
            f"cannot replay to it: the record holds {record.span()}, so it replays to "
            f"generations {record.start} to {record.end}",
        )
    return generation


def replay(
    es: ESOptimizer, record: Record | str | os.PathLike[str], generation: int | None = None
) -> Record:
    """Moves ``es`` from the generation it is at (the record's start, or any generation the
    record holds) to ``generation`` (default: the last recorded) by replaying the record; the
    centre's digest is checked at every generation.

    Args:
        es: the optimizer, built as the run's was (same model, inner optimizer, settings) and at
            θ₀ (e.g. loaded from the record's start checkpoint) or at a recorded generation.
        record: the record or its path.
        generation: the generation to stop at: ``es.generation`` becomes ``generation``.

    Returns:
        the record as read.

    Raises:
        RecordError: the record is damaged, does not reach ``generation``, was written for
            another model, inner optimizer, configuration or θ₀, or a replayed centre differs
            from the recorded one (the message says at which generation and what differs from
            the environment that wrote it). ``es`` is then exactly as before.
    """
    record = _as_record(record)
    target = _target(record, generation)
    check_matches(es, record)
    saved = _snapshot(es)
    try:
        _run(es, record, target)
    except BaseException:
        _restore(es, saved)
        raise
    return record


def resume_from_record(
    es: ESOptimizer,
    record: Record | str | os.PathLike[str],
    generation: int | None = None,
    *,
    start: str | os.PathLike[str] | None = None,
) -> Record:
    """Loads θ₀ (the record's start checkpoint, or ``start``) into ``es`` and replays the record
    to ``generation``: ``es`` then continues the run from there (or branches from it: set
    ``es.seed`` to another seed before the next step).

    Args:
        es: an optimizer built as the run's was.
        record: the record or its path.
        generation: where to resume (default: after the last recorded generation).
        start: the checkpoint of θ₀ (default: the one the record names).

    Raises:
        RecordError, CheckpointError: as :func:`replay` and
            :func:`~es_opt.training.load_checkpoint`; ``es`` is then exactly as before.
    """
    from ..training.checkpoint import load_checkpoint

    record = _as_record(record)
    target = _target(record, generation)
    path = start_checkpoint(record) if start is None else Path(start)
    saved = _snapshot(es)
    try:
        load_checkpoint(path, es)
        check_matches(es, record)
        _run(es, record, target)
    except BaseException:
        _restore(es, saved)
        raise
    return record


def start_checkpoint(record: Record) -> Path:
    """The checkpoint of θ₀ the record names (relative paths are relative to the record)."""
    name = record.header["start"].get("checkpoint")
    if name is None:
        raise record.error(
            None,
            "it names no start checkpoint (written with start=None): pass start= the "
            "checkpoint of θ₀",
        )
    path = Path(name)
    return path if path.is_absolute() else record.path.parent / path


def check_matches(es: ESOptimizer, record: Record) -> None:
    """Raises :class:`RecordError` unless ``es`` is the recorded run at a recorded generation:
    the same trainable parameters (names, shapes, dtypes), inner optimizer and groups, centre
    and, at the record's start, the same settings and whole state."""
    header = record.header
    table = snapshot.parameter_table(es)
    if table != header["parameters"]:
        raise record.error(None, _model_difference(header["parameters"], table))
    spec = snapshot.optimizer_spec(es)
    if spec["class"] != header["optimizer"]["class"]:
        raise record.error(
            None,
            f"written with the inner optimizer {header['optimizer']['class']}, but this "
            f"ESOptimizer uses {spec['class']}: build it with the same optimizer",
        )
    if spec["groups"] != header["optimizer"]["groups"]:
        raise record.error(
            None, "the inner optimizer's parameter groups hold other parameters than the record's"
        )
    g = es.generation
    if not record.start <= g <= record.end:
        raise record.error(
            g, f"this ESOptimizer is at generation {g}, but the record holds {record.span()}"
        )
    if g == record.start:
        _check_start(es, record)
    elif snapshot.center_digest(es) != record.line(g - 1)["theta"]:
        raise record.error(
            g - 1, "this ESOptimizer's centre is not the one the record holds after it"
        )


def _check_start(es: ESOptimizer, record: Record) -> None:
    start = record.header["start"]
    if snapshot.center_digest(es) != start["theta"]:
        raise record.error(
            record.start,
            "θ₀ differs from the record's (its digest does not match): an edited θ₀, or "
            "another start checkpoint or initialisation than the recorded run's",
        )
    current = snapshot.settings(es)
    recorded = record.header["settings"]
    for key in sorted(set(current) | set(recorded)):
        if current.get(key) != recorded.get(key):
            raise record.error(
                record.start,
                f"this ESOptimizer's {key} is {decode(current.get(key))!r} but the record's is "
                f"{decode(recorded.get(key))!r}: build it with the recorded configuration",
            )
    if snapshot.start_digest(es) != start["state"]:
        raise record.error(
            record.start,
            "this ESOptimizer's state (the inner optimizer's moments, σ vector, objective "
            "state) differs from the record's start: load the record's start checkpoint",
        )


def _model_difference(recorded: list[list[Any]], table: list[list[Any]]) -> str:
    theirs = {row[0]: row[1:] for row in recorded}
    ours = {row[0]: row[1:] for row in table}
    for name in theirs:  # the first difference in the model's order
        if name in ours and theirs[name] != ours[name]:
            (shape, dtype), (here, here_dtype) = theirs[name], ours[name]
            return (
                f"written for another model: parameter {name!r} is {dtype} of shape "
                f"{tuple(shape)} in the record but {here_dtype} of shape {tuple(here)} here"
            )
    missing, extra = sorted(theirs.keys() - ours.keys()), sorted(ours.keys() - theirs.keys())
    if missing or extra:
        return (
            "written for another model: "
            + (f"parameters {missing[:3]} are missing here; " if missing else "")
            + (f"parameters {extra[:3]} are not in the record" if extra else "")
        ).rstrip("; ")
    return "written for another model: its trainable parameters are in another order"


def _run(es: ESOptimizer, record: Record, target: int) -> None:
    if es.generation > record.start:  # the settings as recorded, whatever es carries
        _apply(es, record, es.generation, settings_at(record, es.generation))
    layers = record.header["layers"]
    for g in range(es.generation, target):
        line = record.line(g)
        population = es.ask()
        chosen = [layers[i] for i in line.get("layers", range(len(layers)))]
        expected = {n for layer in es.model.layers if layer.name in chosen for n in layer.names}
        if set(population.names) != expected:
            raise record.error(
                g,
                f"the replay samples the layers {_layers_of(es, population.names)} but the "
                f"record {chosen}: another layer-sampling strategy or seed",
            )
        try:
            es.tell(record.fitness(g))
        except ValueError as exc:
            raise record.error(g, f"its fitness does not fit this generation ({exc})") from None
        if "objective" in line and hasattr(es.objective_fn, "load_state_dict"):
            es.objective_fn.load_state_dict(decode(line["objective"]))
        if snapshot.center_digest(es) != line["theta"]:
            raise _mismatch(es, record, g)
        if "set" in line:  # what the callbacks changed for the next generation
            _apply(es, record, g, line["set"])


def _layers_of(es: ESOptimizer, names: tuple[str, ...]) -> list[str]:
    return [layer.name for layer in es.model.layers if set(layer.names) & set(names)]


def _apply(es: ESOptimizer, record: Record, g: int, changes: dict[str, Any]) -> None:
    """Sets the recorded settings ``changes`` (encoded) through the public API."""
    rest = {}
    current = snapshot.settings(es)
    for key, encoded in changes.items():
        if current.get(key) == encoded:
            continue
        value = decode(encoded)
        if key in _SETTERS:
            setattr(es, key, value)
        elif key == "strategy":
            es.model.strategy = SamplingStrategy(value)
        elif key == "groups":
            groups = es.optimizer.param_groups
            if len(value) != len(groups):
                raise record.error(
                    g, f"it sets {len(value)} parameter groups, the optimizer has {len(groups)}"
                )
            for group, hyperparameters in zip(groups, value, strict=True):
                group.update(hyperparameters)
        else:
            rest[key] = value
    if rest:  # shaping, family, distribution: through the state dict, validated as a whole
        es.load_state_dict({**es.state_dict(), **rest})


def _mismatch(es: ESOptimizer, record: Record, g: int) -> RecordError:
    here = snapshot.environment(es)
    there = record.header.get("environment", {})
    differences = [
        f"{key} {there.get(key)} there, {value} here"
        for key, value in here.items()
        if there.get(key) != value
    ]
    if differences:
        cause = (
            "this replay runs on another environment than the one that wrote the record ("
            + "; ".join(differences)
            + "), which computes other bits"
        )
    else:
        cause = (
            "on the environment that wrote the record, so the recorded settings do not "
            "reproduce the update: a callback after RunRecord changed σ or a learning rate, "
            "or the parameters were changed outside the update"
        )
    return record.error(
        g, f"the replayed centre differs from the recorded one (digest mismatch): {cause}"
    )


def _snapshot(es: ESOptimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    net = {k: v.detach().clone() for k, v in es.model.net.state_dict().items()}
    return net, copy.deepcopy(es.state_dict())


def _restore(es: ESOptimizer, saved: tuple[dict[str, torch.Tensor], dict[str, Any]]) -> None:
    net, state = saved
    es.load_state_dict(state)
    with torch.no_grad():
        es.model.net.load_state_dict(net)
