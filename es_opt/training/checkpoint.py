"""One-file checkpoints: the net's weights, the ES optimizer's state and the run's configuration.

The file loads with ``torch.load(weights_only=True)`` (it holds only tensors, numbers, strings,
lists and dicts), is written atomically (a temporary file in the same folder, ``fsync``, then
``os.replace``: a run killed while writing leaves the previous checkpoint intact), and resuming
from it continues the run bit for bit.

Integrity: the file carries a SHA-256 digest of its bytes (format version 2; why a digest, and
why over the bytes, is in :mod:`es_opt.training._checkpoint_file`), verified before anything is
unpickled. Every failure to read a checkpoint raises one :class:`~es_opt.errors.CheckpointError`
that names the file and the cause (not a zip, truncated, corrupted, not an es_opt checkpoint,
written by a newer es_opt, written for another net or inner optimizer), and changes nothing.
Checkpoints of format version 1 (no digest) still load: they are checked against the CRC-32 of
each zip record instead, as is a file rewritten with ``torch.save``.

Example:
    >>> import torch, es_opt, tempfile, os
    >>> net = torch.nn.Linear(2, 1)
    >>> es = es_opt.ESOptimizer(net, objective_fn=lambda m, s: 0.0, n_samples=4)
    >>> path = os.path.join(tempfile.mkdtemp(), "run.pt")
    >>> save_checkpoint(path, es, config={"sigma": 0.1})
    >>> load_checkpoint(path, es)["config"]
    {'sigma': 0.1}
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import enum
import os
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import CheckpointError
from ._checkpoint_file import atomic_write, read_checkpoint_file, write_checkpoint_file

if TYPE_CHECKING:
    from ..optimizer import ESOptimizer

__all__ = [
    "atomic_write",
    "check_architecture",
    "load_checkpoint",
    "load_state",
    "save_checkpoint",
    "save_state",
]

FORMAT = "es_opt.checkpoint"
FORMAT_VERSION = 2
"""2: the file carries a SHA-256 digest in its zip comment; 1: no digest (still read)."""

_ATOMS = (
    str,
    bytes,
    int,
    float,
    bool,
    complex,
    type(None),
    torch.Tensor,
    torch.dtype,
    torch.device,
)


def save_checkpoint(
    path: str | os.PathLike[str],
    es: ESOptimizer,
    *,
    config: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Writes ``es``'s net weights, its :meth:`~es_opt.ESOptimizer.state_dict` and ``config`` to
    ``path``, atomically.

    Args:
        path: the file to (over)write; its folder is created.
        es: the optimizer (its ``model.net`` weights are saved too).
        config: the run's configuration: a dict, a dataclass instance or an
            ``argparse.Namespace`` of plain values (paths and enums are stored as strings/values).
        extra: anything else to keep (plain values and tensors), returned by
            :func:`load_checkpoint` under ``"extra"``.

    Raises:
        TypeError: something in the checkpoint would not load with ``weights_only=True`` (a NumPy
            array, a function, an arbitrary object); the message names where it is.
    """
    from .. import __version__

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "es_opt_version": __version__,
        "optimizer_class": type(es.optimizer).__name__,
        "net": es.model.net.state_dict(),
        "es": es.state_dict(),
        "config": plain_config(config),
        "extra": plain_config(extra, name="extra"),
    }
    for key in ("net", "es"):
        _check_loadable(payload[key], key)
    write_checkpoint_file(payload, Path(path))


def load_checkpoint(
    path: str | os.PathLike[str],
    es: ESOptimizer | None = None,
    *,
    map_location: str | torch.device | None = "cpu",
) -> dict[str, Any]:
    """Reads a checkpoint (with ``weights_only=True``) and, when ``es`` is given, restores the
    net's weights and the optimizer's state into it, so that its next step continues the saved run.

    The file is verified before anything is unpickled (its SHA-256 digest, or each zip record's
    CRC-32 for a file without one) and its contents before anything is applied: on any failure
    ``es`` (net, optimizer and objective state) is exactly as before.

    Returns:
        the checkpoint: ``{"net", "es", "config", "extra", ...}``.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        CheckpointError: (a ``ValueError``) the file cannot be read or does not fit ``es``: not
            a zip archive, truncated, corrupted, not an es_opt checkpoint, written by a newer
            es_opt, or written for another architecture (the message names the mismatched
            parameter with both shapes, or the missing/unexpected keys) or inner optimizer.
    """
    path = Path(path)
    checkpoint = read_checkpoint_file(path, map_location)
    _check_contents(checkpoint, path)
    if es is not None:
        _restore(es, checkpoint, path)
    return checkpoint


def save_state(path: str | os.PathLike[str], state: Mapping[str, Any], *, kind: str) -> None:
    """Writes the ``state_dict()`` of something other than an :class:`~es_opt.ESOptimizer` (an
    optimizer searcher, :mod:`es_opt.search`) as an es_opt checkpoint: atomically, with its
    SHA-256 digest, loadable with ``torch.load(weights_only=True)``; read it with
    :func:`load_state`.

    Args:
        path: the file to (over)write; its folder is created.
        state: tensors, numbers, strings, lists and dicts.
        kind: whose state it is (e.g. ``"es_opt.search.RegularizedEvolution"``), checked by
            :func:`load_state`.

    Raises:
        TypeError: something in ``state`` would not load with ``weights_only=True`` (the message
            names where).
    """
    from .. import __version__

    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    _check_loadable(state, "state")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "es_opt_version": __version__,
        "kind": str(kind),
        "state": dict(state),
    }
    write_checkpoint_file(payload, Path(path))


def load_state(
    path: str | os.PathLike[str],
    *,
    kind: str,
    map_location: str | torch.device | None = "cpu",
) -> dict[str, Any]:
    """The state :func:`save_state` wrote for ``kind``, returned once the file is verified (its
    SHA-256 digest) and found to be a checkpoint of ``kind``.

    Args:
        path: the file.
        kind: whose state is expected.
        map_location: where tensors are loaded.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        CheckpointError: (a ``ValueError``) not a zip archive, truncated, corrupted, not an
            es_opt checkpoint, written by a newer es_opt, or the checkpoint of something else.
    """
    path = Path(path)
    checkpoint = read_checkpoint_file(path, map_location)
    _check_format(checkpoint, path)
    saved = checkpoint.get("kind")
    if saved != kind:
        what = "an ESOptimizer's (read it with load_checkpoint)" if saved is None else repr(saved)
        raise CheckpointError(path, f"it holds the state of {what}, not of {kind!r}")
    if not isinstance(checkpoint.get("state"), dict):
        raise CheckpointError(path, "its 'state' entry is not a dict")
    return checkpoint["state"]


def _check_contents(checkpoint: Any, path: Path) -> None:
    """Raises :class:`CheckpointError` unless ``checkpoint`` is an es_opt checkpoint this version
    reads, with a state dict of tensors under ``"net"`` and a dict under ``"es"``."""
    _check_format(checkpoint, path)
    if "kind" in checkpoint:
        raise CheckpointError(
            path,
            f"it holds the state of {checkpoint['kind']!r}, not of an ESOptimizer (read it "
            "with load_state or that object's load)",
        )
    net = checkpoint.get("net")
    if not isinstance(net, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in net.items()
    ):
        raise CheckpointError(path, "its 'net' entry is not a state dict of tensors")
    if not isinstance(checkpoint.get("es"), dict):
        raise CheckpointError(path, "its 'es' entry is not an ESOptimizer state dict")


def _check_format(checkpoint: Any, path: Path) -> None:
    """Raises :class:`CheckpointError` unless ``checkpoint`` is an es_opt checkpoint of a format
    version this es_opt reads."""
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(
            path,
            "not an es_opt checkpoint (a torch file without es_opt's 'format' entry; write "
            "checkpoints with es_opt.training.save_checkpoint)",
        )
    version = checkpoint.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(path, f"its format_version is {version!r}, not a positive int")
    if version > FORMAT_VERSION:
        from .. import __version__

        raise CheckpointError(
            path,
            f"written by a newer es_opt ({checkpoint.get('es_opt_version', 'unknown version')}, "
            f"checkpoint format version {version}); es_opt {__version__} reads format versions "
            f"up to {FORMAT_VERSION}: upgrade es_opt",
        )


def check_architecture(net: torch.nn.Module, saved: Mapping[str, torch.Tensor]) -> None:
    """Raises ``ValueError`` if the state dict ``saved`` does not fit ``net``: the message names
    the missing or unexpected keys, or the first parameter whose shape differs (with both shapes).

    Example:
        >>> check_architecture(torch.nn.Linear(2, 3), torch.nn.Linear(2, 4).state_dict())
        Traceback (most recent call last):
        ...
        ValueError: parameter 'weight' has shape (4, 2) in the checkpoint but (3, 2) in the model: \
the checkpoint was written for a different architecture
    """
    current = net.state_dict()
    missing = [k for k in current if k not in saved]
    unexpected = [k for k in saved if k not in current]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {missing}")
        if unexpected:
            parts.append(f"in the checkpoint but not in the model: {unexpected}")
        raise ValueError(
            "the checkpoint was written for a different architecture; " + "; ".join(parts)
        )
    for name, tensor in current.items():
        if tuple(saved[name].shape) != tuple(tensor.shape):
            raise ValueError(
                f"parameter {name!r} has shape {tuple(saved[name].shape)} in the checkpoint but "
                f"{tuple(tensor.shape)} in the model: the checkpoint was written for a different "
                "architecture"
            )


def _restore(es: ESOptimizer, checkpoint: dict[str, Any], path: Path) -> None:
    net = es.model.net
    try:
        check_architecture(net, checkpoint["net"])
    except ValueError as exc:
        raise CheckpointError(path, str(exc)) from None
    saved_class = checkpoint.get("optimizer_class")
    if saved_class is not None and saved_class != type(es.optimizer).__name__:
        raise CheckpointError(
            path,
            f"it holds the state of a {saved_class} inner optimizer but this ESOptimizer uses "
            f"{type(es.optimizer).__name__}: build it with the same optimizer",
        )
    # All or nothing: if loading the ES state fails half-way, put everything back.
    net_before = copy.deepcopy(net.state_dict())
    es_before = copy.deepcopy(es.state_dict())
    try:
        es.load_state_dict(checkpoint["es"])
        net.load_state_dict(checkpoint["net"])
    except BaseException as exc:
        net.load_state_dict(net_before)
        es.load_state_dict(es_before)
        if isinstance(exc, (ValueError, TypeError, KeyError)):
            raise CheckpointError(
                path, f"its state does not fit this ESOptimizer ({type(exc).__name__}: {exc})"
            ) from exc
        raise


def plain_config(config: Any, name: str = "config") -> dict[str, Any]:
    """``config`` as a dict of plain values that ``torch.load(weights_only=True)`` accepts."""
    if config is None:
        return {}
    if isinstance(config, argparse.Namespace):
        config = vars(config)
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        raise TypeError(
            f"{name} must be a dict, a dataclass instance or an argparse.Namespace, "
            f"got {type(config).__name__}"
        )
    plain = {str(k): _plain_value(v, f"{name}[{k!r}]") for k, v in config.items()}
    _check_loadable(plain, name)
    return plain


def _plain_value(value: Any, where: str) -> Any:
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: _plain_value(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_value(v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def _check_loadable(value: Any, where: str) -> None:
    """Raises ``TypeError`` naming the first value that ``weights_only`` loading would refuse."""
    if isinstance(value, _ATOMS) and not _is_numpy_scalar(value):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool, type(None), tuple)):
                raise TypeError(f"{where} has a key of type {type(k).__name__}: {k!r:.60}")
            _check_loadable(v, f"{where}[{k!r}]")
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        for i, v in enumerate(value):
            _check_loadable(v, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__name__}, which a checkpoint cannot "
        "hold (it must load with torch.load(weights_only=True)): store tensors, numbers, strings, "
        "lists and dicts only (e.g. torch.as_tensor(array), float(x), str(path))"
    )


def _is_numpy_scalar(value: Any) -> bool:
    # np.float64 subclasses float but pickles as a NumPy object that weights_only refuses.
    return isinstance(value, np.generic)
