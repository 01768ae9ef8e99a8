"""How the element-wise work of one step is scheduled: buckets, chunks and scratch memory.

Nothing here changes the arithmetic of an update: buckets only decide how the same element-wise
operations are scheduled (per tensor or as ``torch._foreach_*`` calls over lists), and on CPU every
``torch._foreach_*`` call runs the same per-tensor kernel as the plain operation, so results are
identical whichever schedule is chosen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

try:  # torch's own default rule (the function its optimizers call for foreach=None)
    from torch.optim.optimizer import _default_to_fused_or_foreach
except ImportError:  # pragma: no cover - a torch without it
    _default_to_fused_or_foreach = None

__all__ = [
    "CHUNK_NUMEL",
    "OWN_BUCKET_NUMEL",
    "Bucket",
    "Scratch",
    "buckets",
    "scratch_of",
    "torch_default_foreach",
]

# A tensor with at least this many elements gets its own bucket (per-tensor in-place ops on
# reused scratch memory); smaller ones are batched into one ``_foreach`` call sequence, where the
# saved Python overhead matters more than cache locality.
OWN_BUCKET_NUMEL = 1 << 16
# Large contiguous CPU tensors are processed in chunks of this many elements, so that the dozen
# passes of one update stay in the last-level cache and the scratch memory stays bounded.
CHUNK_NUMEL = 1 << 19


def torch_default_foreach(params: list[Tensor]) -> bool:
    """The variant torch's own optimizers pick for ``foreach=None`` on these tensors.

    torch's rule: the multi-tensor (foreach) path when every tensor is on a device with foreach
    kernels (CUDA, ...), else the single-tensor path (always on CPU).
    """
    if _default_to_fused_or_foreach is not None:
        return _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)[1]
    return all(p.device.type not in ("cpu", "meta") for p in params)  # pragma: no cover


class Bucket:
    """A slice of the work of one step: parallel lists of tensors (or chunks of them).

    ``rows[i]`` holds the tensors of one parameter (param, grad, state...) as views of the same
    shape; ``index[i]`` is that parameter's position in the caller's lists (for per-parameter
    scalars such as bias corrections).
    """

    __slots__ = ("index", "rows", "single")

    def __init__(self, rows: list[tuple[Tensor, ...]], index: list[int], single: bool) -> None:
        self.rows = rows
        self.index = index
        self.single = single

    def column(self, k: int) -> list[Tensor]:
        return [row[k] for row in self.rows]


def buckets(columns: Sequence[Sequence[Tensor]]) -> Iterator[Bucket]:
    """Split parallel tensor lists (``columns[k][i]``: k-th tensor of parameter i) into buckets.

    CPU: a tensor with ``OWN_BUCKET_NUMEL`` elements or more is its own bucket (chunked into
    flat views of ``CHUNK_NUMEL`` elements when all its tensors are contiguous); smaller tensors of
    one dtype share a bucket. Other devices: one bucket per (device, dtype), so the fused
    ``_foreach`` kernels see every tensor at once. The split never changes results.
    """
    n_params = len(columns[0])
    small: dict[tuple[torch.device, torch.dtype], Bucket] = {}
    for i in range(n_params):
        row = tuple(column[i] for column in columns)
        p = row[0]
        key = (p.device, p.dtype)
        if p.device.type != "cpu" or p.numel() < OWN_BUCKET_NUMEL:
            small.setdefault(key, Bucket([], [], single=False))
            small[key].rows.append(row)
            small[key].index.append(i)
            continue
        if p.numel() > CHUNK_NUMEL and all(t.is_contiguous() for t in row):
            flat = [t.view(-1) for t in row]
            for start in range(0, p.numel(), CHUNK_NUMEL):
                chunk = tuple(t[start : start + CHUNK_NUMEL] for t in flat)
                yield Bucket([chunk], [i], single=True)
        else:
            yield Bucket([row], [i], single=True)
    yield from small.values()


class Scratch:
    """Reusable CPU scratch memory for single-tensor buckets (not optimizer state).

    Allocating a few megabytes per step costs page faults on every step; keeping the buffers
    between steps avoids that. It holds no information: it is dropped on copy and pickle (torch's
    ``Optimizer.__getstate__`` keeps only defaults, state and param_groups) and rebuilt on demand.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[torch.dtype, int], Tensor] = {}
        self._views: dict[tuple[torch.dtype, int, torch.Size], Tensor] = {}

    def get(self, like: Tensor, slot: int) -> Tensor:
        """A tensor shaped like ``like`` (contents undefined); distinct slots do not overlap."""
        view = self._views.get((like.dtype, slot, like.shape))
        if view is not None:
            return view
        key = (like.dtype, slot)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < like.numel():
            buffer = torch.empty(max(like.numel(), 1), dtype=like.dtype)
            self._buffers[key] = buffer
            self._views = {k: v for k, v in self._views.items() if k[:2] != key}
        view = buffer[: like.numel()].view(like.shape)
        if len(self._views) < 64:
            self._views[(like.dtype, slot, like.shape)] = view
        return view


def scratch_of(optimizer: Any) -> Scratch:
    """The optimizer's scratch memory, created on first use (kept out of its pickled state)."""
    scratch = optimizer.__dict__.get("_scratch")
    if scratch is None:
        scratch = Scratch()
        optimizer.__dict__["_scratch"] = scratch
    return scratch
