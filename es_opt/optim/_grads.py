"""Gradient preparation shared by the optimizers: collection, global norm, clipping, sign.

``p.grad`` is never written: every transformation works on copies, so a caller (or the ES step,
which writes ``.grad`` itself) sees its gradients unchanged after ``step()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["closure_loss", "collect_grads", "global_grad_norm", "prepare_grads"]


def closure_loss(closure: Any) -> Any:
    """Runs a step's ``closure`` with gradients enabled (the step itself runs under ``no_grad``) and
    returns its loss, or ``None`` without a closure, as torch's optimizers do."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def collect_grads(group: dict[str, Any], name: str) -> tuple[list[Tensor], list[Tensor]]:
    """Return the parameters of ``group`` that have a gradient, and those gradients.

    Raises:
        RuntimeError: A gradient is sparse or a parameter is complex (``name`` says who refuses).
    """
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
    r"""The 2-norm :math:`\sqrt{\sum_i \|g_i\|^2}` of all tensors together, as a tensor.

    No host synchronisation: the result stays on the device (of the first tensor, in the widest
    floating dtype among them). ``None`` for an empty list.
    """
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
    r"""Apply norm clipping, value clipping and ``maximize`` on copies; ``p.grad`` is never written.

    The norm clip follows ``torch.nn.utils.clip_grad_norm_``: grads are scaled by
    :math:`\min(1, c / (\|g\| + 10^{-6}))` with ``total_norm`` :math:`= \|g\|`, a tensor, so
    nothing waits for the device. The value clip clamps to :math:`[-v, v]`; ``maximize`` negates.
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
