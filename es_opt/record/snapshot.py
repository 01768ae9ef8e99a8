"""What a run record says about an :class:`~es_opt.ESOptimizer`, read through its public API only
(``state_dict``, ``optimizer.param_groups``, ``model``): the settings the update depends on, the
digest of the centre, the parameter table, the inner optimizer's class and groups, and the
environment (versions, device kind) that computed the update.

The centre's digest is the one ``sync="replay"`` checks (:func:`es_opt.evaluators._replay.digest`)
taken over every trainable parameter, flattened in the model's order.
"""

from __future__ import annotations

import platform
from typing import Any

import torch

from ..evaluators._replay import digest, group_hyperparameters
from ..precision import stepped_parameters
from ..update import selected_center
from .codec import encode, value_digest

__all__ = [
    "SETTINGS",
    "center_digest",
    "changed",
    "class_name",
    "device_kind",
    "environment",
    "merged",
    "objective_state",
    "optimizer_spec",
    "parameter_table",
    "settings",
    "start_digest",
]

SETTINGS = (
    "seed",
    "sigma",
    "n_samples",
    "obj_weights",
    "shaping",
    "perturbation",
    "noise",
    "distribution",
    "strategy",
)
"""The keys of ``ESOptimizer.state_dict()`` that are settings (a user or a callback may change
them between generations); the rest (counters, σ vectors, paths, the inner optimizer's moments)
evolves with the update and is covered by the start state's digest."""


def settings(es: Any) -> dict[str, Any]:
    """The settings the next update depends on, encoded (:mod:`es_opt.record.codec`): the
    :data:`SETTINGS` of ``es.state_dict()`` and every parameter group's hyperparameters."""
    state = es.state_dict()
    out = {key: encode(state[key], key) for key in SETTINGS if key in state}
    out["groups"] = encode(group_hyperparameters(es.optimizer), "optimizer.param_groups")
    return out


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``after`` that differ from ``before`` (both encoded settings); of the
    parameter groups, only the hyperparameters that changed (``[{"lr": 0.01}, {}]``)."""
    out = {key: value for key, value in after.items() if before.get(key) != value}
    old, new = before.get("groups"), out.get("groups")
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out["groups"] = [
            {k: v for k, v in b.items() if a.get(k) != v} for a, b in zip(old, new, strict=True)
        ]
    return out


def merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``current`` settings updated by :func:`changed`'s ``changes``."""
    out = {**current, **changes}
    old, new = current.get("groups"), changes.get("groups")
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out["groups"] = [{**a, **b} for a, b in zip(old, new, strict=True)]
    return out


def center_digest(es: Any) -> str:
    """BLAKE2b-128 of every trainable parameter, flattened in the model's order."""
    params = es.model.named_trainable_parameters()
    return digest(selected_center(params, tuple(params)))


def start_digest(es: Any) -> str:
    """BLAKE2b-128 of the whole ``state_dict()`` but the generation counter: σ vectors and paths,
    the inner optimizer's state, the objective's state."""
    state = {k: v for k, v in es.state_dict().items() if k != "generation"}
    return value_digest(state, "ESOptimizer.state_dict()")


def objective_state(es: Any) -> Any:
    """The objective's state (e.g. an observation normaliser), encoded; ``{}`` when it has none."""
    objective = es.objective_fn
    if not hasattr(objective, "state_dict"):
        return {}
    return encode(objective.state_dict(), "objective.state_dict()")


def parameter_table(es: Any) -> list[list[Any]]:
    """``[name, shape, dtype]`` of every trainable parameter, in the model's order."""
    return [
        [name, list(param.shape), str(param.dtype).removeprefix("torch.")]
        for name, param in es.model.named_trainable_parameters().items()
    ]


def optimizer_spec(es: Any) -> dict[str, Any]:
    """The inner optimizer's class (``module.QualName``) and the parameters of each of its groups
    by name: with the groups' hyperparameters in the settings, all it takes to build it again."""
    names = {id(p): n for n, p in stepped_parameters(es).items()}  # float32 master copies
    return {
        "class": class_name(type(es.optimizer)),
        "groups": [[names[id(p)] for p in group["params"]] for group in es.optimizer.param_groups],
    }


def class_name(cls: type) -> str:
    """``torch.optim.Adam``, ``es_opt.optim.RangerLite``: the public name when the class is
    exported by its package (a record survives a module's renaming), else ``module.QualName``."""
    import importlib

    for package in ("torch.optim", "es_opt.optim"):
        if cls.__module__.startswith(package + "."):
            if getattr(importlib.import_module(package), cls.__qualname__, None) is cls:
                return f"{package}.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def device_kind(es: Any) -> str:
    """Where the update is computed: ``"cpu"``, or ``"cuda (NVIDIA H100 80GB HBM3)"``."""
    device = next(iter(es.model.named_trainable_parameters().values())).device
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def environment(es: Any) -> dict[str, str]:
    """What computed the update: versions, CPU architecture, device kind. Replay on another
    environment may compute other bits; a mismatch names the differences."""
    from .. import __version__

    return {
        "es_opt": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "device": device_kind(es),
    }
