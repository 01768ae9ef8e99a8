"""The options every parallel backend accepts, and the devices they name, checked before anything
starts."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validation import check_int, is_real

__all__ = ["Options", "assign_devices", "check_devices", "check_sync", "default_n_workers"]


def default_n_workers() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


SYNCS = ("center", "replay")
"""How a worker gets each step's centre: sent by the main process (``"center"``), or recomputed
from the previous step's fitness by a replica of the inner optimizer and checked against the
centre's digest (``"replay"``: only scalars travel; see :mod:`es_opt.evaluators._replay`). The
serial backend evaluates on the model itself: ``"center"`` is what it does."""


def check_sync(sync: Any) -> str:
    """``sync`` if it is one of :data:`SYNCS`, else a ``ValueError``.

    Example:
        >>> check_sync("center")
        'center'
    """
    if not isinstance(sync, str) or sync not in SYNCS:
        raise ValueError(f"sync must be one of {', '.join(map(repr, SYNCS))}, got {sync!r}")
    return sync


@dataclass(frozen=True)
class Options:
    """The options every parallel backend accepts, checked before anything starts."""

    n_workers: int
    devices: tuple[str, ...] | None
    max_retries: int
    eval_timeout: float | None
    worker_threads: int
    sync: str = "center"

    @classmethod
    def check(
        cls,
        n_workers: Any,
        devices: Any,
        max_retries: Any,
        eval_timeout: Any,
        worker_threads: Any,
        default_workers: int | None = None,
        sync: Any = "center",
    ) -> Options:
        checked_devices = check_devices(devices)
        if n_workers is None:
            if checked_devices is not None:
                n_workers = len(checked_devices)
            else:
                n_workers = default_workers if default_workers is not None else default_n_workers()
        n_workers = check_int("n_workers", n_workers, low=1)
        if checked_devices is not None and n_workers < len(checked_devices):
            raise ValueError(
                f"n_workers={n_workers} is fewer than the {len(checked_devices)} devices "
                f"{list(checked_devices)}: devices {list(checked_devices[n_workers:])} would stay "
                "unused; pass n_workers >= len(devices) or fewer devices"
            )
        max_retries = check_int("max_retries", max_retries, low=0)
        worker_threads = check_int("worker_threads", worker_threads, low=1)
        timeout = check_timeout(eval_timeout)
        sync = check_sync(sync)
        return cls(n_workers, checked_devices, max_retries, timeout, worker_threads, sync)

    def device_of(self, worker: int) -> str | None:
        return assign_devices(self.devices, worker + 1)[worker] if self.devices else None


def check_timeout(eval_timeout: Any) -> float | None:
    """``eval_timeout``: seconds > 0, or ``None``."""
    if eval_timeout is None:
        return None
    what = "eval_timeout must be a number of seconds > 0 or None, got"
    if not is_real(eval_timeout):
        raise TypeError(f"{what} {type(eval_timeout).__name__} {eval_timeout!r}")
    if not math.isfinite(eval_timeout) or eval_timeout <= 0:
        raise ValueError(f"{what} {eval_timeout!r}")
    return float(eval_timeout)


def check_devices(devices: Any) -> tuple[str, ...] | None:
    """The device names, normalised (``"cuda"`` → ``"cuda:0"``), each one present on this machine.

    Example:
        >>> check_devices(["cpu", torch.device("cpu")])
        ('cpu', 'cpu')
        >>> check_devices(["cuda:7"])  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        ValueError: device 'cuda:7' in devices is not available: this machine has 0 CUDA device(s)
    """
    if devices is None:
        return None
    if isinstance(devices, (str, torch.device)):
        devices = [devices]
    if not isinstance(devices, Sequence) or not devices:
        raise ValueError(f"devices must be a non-empty list of device names, got {devices!r}")
    return tuple(_check_device(device) for device in devices)


def _check_device(device: Any) -> str:
    if not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"devices must hold device names such as 'cpu' or 'cuda:0', got "
            f"{type(device).__name__} {device!r}"
        )
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"unknown device {device!r} in devices: use names such as 'cpu' or 'cuda:0'"
        ) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count()
        index = parsed.index or 0
        if index >= count:
            raise ValueError(
                f"device {device!r} in devices is not available: this machine has {count} CUDA "
                "device(s)"
            )
        return f"cuda:{index}"
    if parsed.type != "cpu" and not _backend_available(parsed.type):
        raise ValueError(f"device {device!r} in devices is not available on this machine")
    return str(parsed)


def _backend_available(kind: str) -> bool:
    module = getattr(torch, kind, None)
    is_available = getattr(module, "is_available", None)
    return bool(is_available()) if callable(is_available) else False


def assign_devices(devices: Sequence[str] | None, n_workers: int) -> list[str | None]:
    """Worker ``k`` runs on ``devices[k % len(devices)]`` (round-robin), or where the model is.

    Example:
        >>> assign_devices(["cuda:0", "cuda:1"], 3)
        ['cuda:0', 'cuda:1', 'cuda:0']
    """
    if not devices:
        return [None] * n_workers
    return [devices[k % len(devices)] for k in range(n_workers)]
