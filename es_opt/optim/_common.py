"""Helpers shared by the optimizers: argument checks, gradient preparation, work buckets.

Nothing here changes the arithmetic of an update: buckets only decide how the same element-wise
operations are scheduled (per tensor or as ``torch._foreach_*`` calls over lists), and on CPU every
``torch._foreach_*`` call runs the same per-tensor kernel as the plain operation, so results are
identical whichever schedule is chosen.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from numbers import Real
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

try:  # torch's own default rule (the function its optimizers call for foreach=None)
    from torch.optim.optimizer import _default_to_fused_or_foreach
except ImportError:  # pragma: no cover - a torch without it
    _default_to_fused_or_foreach = None

# A tensor with at least this many elements gets its own bucket (per-tensor in-place ops on
# reused scratch memory); smaller ones are batched into one ``_foreach`` call sequence, where the
# saved Python overhead matters more than cache locality.
OWN_BUCKET_NUMEL = 1 << 16
# Large contiguous CPU tensors are processed in chunks of this many elements, so that the dozen
# passes of one update stay in the last-level cache and the scratch memory stays bounded.
CHUNK_NUMEL = 1 << 19


def check_lr(lr: Any) -> None:
    if isinstance(lr, Tensor) or not isinstance(lr, Real) or not lr >= 0.0:
        raise ValueError(f"Invalid learning rate (lr): {lr!r}; expected a float >= 0")


def check_betas(betas: Any) -> None:
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"Invalid betas: {betas!r}; expected a pair of floats in [0, 1)") from None
    for index, beta in enumerate((beta1, beta2)):
        if not isinstance(beta, Real) or not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index} (betas): {beta!r}")


def check_non_negative(name: str, value: Any) -> None:
    if not isinstance(value, Real) or not value >= 0.0:
        raise ValueError(f"Invalid {name}: {value!r}; expected a float >= 0")


def check_unit_interval(name: str, value: Any, *, low_open: bool) -> None:
    """Check ``value`` in (0, 1] when ``low_open`` else in [0, 1]."""
    ok = isinstance(value, Real) and (0.0 < value <= 1.0 if low_open else 0.0 <= value <= 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"Invalid {name}: {value!r}; expected a number in {interval}")


def check_positive_int(name: str, value: Any) -> None:
    try:
        as_int = operator.index(value)
    except TypeError:
        as_int = None
    if isinstance(value, bool) or as_int is None or as_int < 1:
        raise ValueError(f"Invalid {name}: {value!r}; expected a positive int")


def check_optional_positive(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, Real) or not value > 0.0):
        raise ValueError(f"Invalid {name}: {value!r}; expected None or a float > 0")


def torch_default_foreach(params: list[Tensor]) -> bool:
    """The variant torch's own optimizers pick for ``foreach=None`` on these tensors.

    torch's rule: the multi-tensor (foreach) path when every tensor is on a device with foreach
    kernels (CUDA, ...), else the single-tensor path (always on CPU).
    """
    if _default_to_fused_or_foreach is not None:
        return _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)[1]
    return all(p.device.type not in ("cpu", "meta") for p in params)  # pragma: no cover


def collect_grads(group: dict[str, Any], name: str) -> tuple[list[Tensor], list[Tensor]]:
    """Return the parameters of ``group`` that have a gradient, and those gradients."""
    params, grads = [], []
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise RuntimeError(f"{name} does not support sparse gradients; use dense gradients")
        if torch.is_complex(p):
            raise RuntimeError(f"{name} does not support complex parameters")
        params.append(p)
        grads.append(p.grad)
    return params, grads


def global_grad_norm(grads: Sequence[Tensor]) -> Tensor | None:
    """The 2-norm of all gradients together, as a tensor (no host synchronisation)."""
    if not grads:
        return None
    norms = torch._foreach_norm(list(grads))
    device = norms[0].device
    dtype = max((n.dtype for n in norms), key=lambda d: torch.finfo(d).bits)
    return torch.linalg.vector_norm(torch.stack([n.to(device=device, dtype=dtype) for n in norms]))


def prepare_grads(
    grads: list[Tensor],
    *,
    maximize: bool,
    clip_norm: float | None = None,
    total_norm: Tensor | None = None,
    clip_value: float | None = None,
) -> list[Tensor]:
    """Apply norm clipping, value clipping and ``maximize`` on copies; ``p.grad`` is never written.

    The norm clip follows ``torch.nn.utils.clip_grad_norm_``: grads are scaled by
    ``min(1, clip_norm / (total_norm + 1e-6))``, a tensor, so nothing waits for the device.
    """
    copied = False
    if clip_norm is not None and total_norm is not None and grads:
        coef = torch.clamp(clip_norm / (total_norm + 1e-6), max=1.0)
        grads = [g * coef.to(device=g.device, dtype=g.dtype) for g in grads]
        copied = True
    if clip_value is not None and grads:
        if copied:
            torch._foreach_clamp_max_(grads, clip_value)
        else:
            grads = torch._foreach_clamp_max(grads, clip_value)
            copied = True
        torch._foreach_clamp_min_(grads, -clip_value)
    if maximize and grads:
        if copied:
            torch._foreach_neg_(grads)
        else:
            grads = torch._foreach_neg(grads)
    return grads


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
    scratch = optimizer.__dict__.get("_scratch")
    if scratch is None:
        scratch = Scratch()
        optimizer.__dict__["_scratch"] = scratch
    return scratch


def lookahead_sync(params: list[Tensor], slows: list[Tensor], alpha: float) -> None:
    """``fast ← slow + alpha·(fast − slow)``, ``slow ← fast`` for every pair (in place)."""
    if not params:
        return
    if alpha == 1.0:
        torch._foreach_copy_(slows, params)
        return
    torch._foreach_lerp_(slows, params, alpha)
    torch._foreach_copy_(params, slows)


class CheckedOptimizer(Optimizer):
    """The shell RangerLite and Ligi share: every param group's hyperparameters are checked when
    the group is added (a bad group is not kept), and loading a state dict fills the options an
    older state dict lacks and turns tensor step counts into ints (no device sync per step)."""

    option_defaults: dict[str, Any] = {}

    @staticmethod
    def check_group(group: dict[str, Any]) -> None:
        raise NotImplementedError

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (see ``torch.optim.Optimizer``); its hyperparameters are checked."""
        super().add_param_group(param_group)
        try:
            self.check_group(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()
            raise

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for key, value in self.option_defaults.items():
            self.defaults.setdefault(key, value)
        for group in self.param_groups:
            for key in self.option_defaults:
                group.setdefault(key, self.defaults[key])
            for p in group["params"]:
                p_state = self.state.get(p)
                if p_state and torch.is_tensor(p_state.get("step")):
                    p_state["step"] = int(p_state["step"])
