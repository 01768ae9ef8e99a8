"""A checkpoint at any generation from a run record and its start checkpoint, without the run's
code: what ``python -m es_opt.record`` does.

The replay needs the trainable parameters, not the network's forward: the start checkpoint's
weights go into a module tree with the same parameter names (and so the same layers for layer
sampling); the inner optimizer is rebuilt from the class the record names — only a class of
``torch.optim`` or ``es_opt.optim``, imported, never unpickled — and its groups; the start
checkpoint's ``ESOptimizer`` state restores every setting and the optimizer's state. Runs with a
custom shaping function, a search-distribution object or an inner optimizer that cannot be built
this way replay in Python instead (:func:`es_opt.record.replay` on an optimizer built as the
run's was).

The checkpoint written at generation ``k`` holds the start checkpoint's net state with the
replayed trainable parameters (tied aliases follow them; buffers and frozen parameters are the
start's: ES does not change them), the replayed ``ESOptimizer`` state and the start checkpoint's
configuration, so it loads into the run's own network and resumes as a checkpoint saved at ``k``.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..model import Model
from ..optimizer import ESOptimizer
from ..training.checkpoint import load_checkpoint, save_checkpoint
from .codec import decode
from .format import Record, read_record
from .replay import replay, start_checkpoint

__all__ = ["checkpoint_at", "optimizer_from_record"]

_OPTIMIZER_MODULES = ("torch.optim", "es_opt.optim")


class _Tree(nn.Module):
    """Holds parameters and buffers under given dotted names; it has no forward."""


class _NoEvaluation:
    """The objective of a replay: never called; keeps the recorded objective state."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __call__(self, model: Any, samples: Any) -> float:
        raise RuntimeError("a replayed ESOptimizer does not evaluate: it has no objective")

    def state_dict(self) -> dict[str, Any]:
        return self.state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = dict(state)


def checkpoint_at(
    record: Record | str | os.PathLike[str],
    generation: int | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    start: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> ESOptimizer:
    """Replays ``record`` from its start checkpoint to ``generation`` (default: the last) and
    writes the checkpoint at that generation to ``output`` (when given).

    Args:
        record: the run record or its path.
        generation: the generation of the checkpoint (``es.generation`` in it).
        output: the checkpoint file to write (:func:`es_opt.training.save_checkpoint`).
        start: θ₀'s checkpoint (default: the one the record names).
        device: where the update is recomputed; the record's own device kind replays exactly.

    Returns:
        the replayed optimizer (its ``model.net`` holds the parameters by name, no forward).

    Raises:
        RecordError: as :func:`es_opt.record.replay`, or the run cannot be rebuilt without its
            code (the message says why and what to do).
    """
    record = record if isinstance(record, Record) else read_record(record)
    path = start_checkpoint(record) if start is None else Path(start)
    saved = load_checkpoint(path)
    es = build(record, saved, torch.device(device))
    replay(es, record, generation)
    if output is not None:
        save_checkpoint(
            output,
            es,
            config=saved.get("config"),
            extra={"replayed_from": str(record.path), "start_checkpoint": str(path)},
        )
    return es


def build(record: Record, saved: dict[str, Any], device: torch.device) -> ESOptimizer:
    """The optimizer of the recorded run at its start, from the start checkpoint ``saved``."""
    header = record.header
    trainable = [row[0] for row in header["parameters"]]
    net = _tree(record, saved["net"], trainable, device)
    settings = {key: decode(value) for key, value in header["settings"].items()}
    model = Model(net, strategy=settings.get("strategy", "all"))
    optimizer = optimizer_from_record(record, net)
    try:
        es = ESOptimizer(
            model,
            optimizer,
            objective_fn=_NoEvaluation(),
            obj_weights=settings["obj_weights"],
            sigma=settings["sigma"],
            n_samples=settings["n_samples"],
            seed=settings["seed"],
            shaping=settings["shaping"],
            perturbation=settings["perturbation"],
            noise=settings["noise"],
            distribution=settings["distribution"]["name"],
        )
        es.load_state_dict(saved["es"])
    except (ValueError, TypeError, KeyError) as exc:
        raise record.error(
            None,
            f"the run cannot be rebuilt from the record alone ({type(exc).__name__}: {exc}); "
            "replay it in Python: es_opt.record.replay on an ESOptimizer built as the run's was",
        ) from None
    return es


def _tree(
    record: Record, state: dict[str, torch.Tensor], trainable: list[str], device: torch.device
) -> nn.Module:
    missing = [name for name in trainable if name not in state]
    if missing:
        raise record.error(
            None, f"its start checkpoint lacks the parameters {missing[:3]}: another model"
        )
    root = _Tree()
    params: dict[str, nn.Parameter] = {}
    for name in trainable:
        params[name] = nn.Parameter(state[name].detach().clone().to(device))
        _place(root, name, params[name])
    storages = {_storage_key(state[name]): name for name in trainable}
    for name, tensor in state.items():
        if name in params:
            continue
        alias = storages.get(_storage_key(tensor))
        if alias is not None:  # a tied weight: the same parameter under a second name
            _place(root, name, params[alias])
        else:  # buffers and frozen parameters: ES never changes them
            _place(root, name, tensor.detach().clone().to(device), buffer=True)
    names = [n for n, p in root.named_parameters()]
    if names != trainable:
        raise record.error(None, "its start checkpoint's parameters do not rebuild the model")
    return root


def _storage_key(tensor: torch.Tensor) -> tuple[Any, ...]:
    return (
        tensor.untyped_storage().data_ptr(),
        tensor.storage_offset(),
        tuple(tensor.shape),
        tuple(tensor.stride()),
        tensor.dtype,
    )


def _place(root: nn.Module, name: str, value: torch.Tensor, *, buffer: bool = False) -> None:
    *path, leaf = name.split(".")
    module = root
    for part in path:
        if part not in module._modules:
            module.add_module(part, _Tree())
        module = module._modules[part]
    if buffer:
        module.register_buffer(leaf, value)
    else:
        module.register_parameter(leaf, value)


def optimizer_from_record(record: Record, net: nn.Module) -> torch.optim.Optimizer:
    """The inner optimizer the record names, over ``net``'s parameters, in the recorded groups
    (its hyperparameters and state come from the start checkpoint)."""
    spec = record.header["optimizer"]
    qualified = spec["class"]
    module_name, _, class_name = qualified.rpartition(".")
    if not any(module_name == m or module_name.startswith(m + ".") for m in _OPTIMIZER_MODULES):
        raise record.error(
            None,
            f"its inner optimizer {qualified} is not a class of torch.optim or es_opt.optim, "
            "which is all a record rebuilds (it imports nothing else): replay it in Python",
        )
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise record.error(None, f"{qualified} is not a torch optimizer in this es_opt")
    params = dict(net.named_parameters())
    groups = [{"params": [params[n] for n in names]} for names in spec["groups"]]
    hyper = decode(record.header["settings"]["groups"])[0]
    accepted = inspect.signature(cls.__init__).parameters
    options = {k: v for k, v in hyper.items() if k in accepted and k != "params"}
    try:
        return cls(groups, **options)
    except (TypeError, ValueError) as exc:
        raise record.error(
            None, f"its inner optimizer {qualified} cannot be rebuilt from its groups ({exc})"
        ) from None
