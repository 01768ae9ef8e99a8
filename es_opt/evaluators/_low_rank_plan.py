"""One linear layer of the direct MLP path for low-rank members (:mod:`.stacked`).

Member ``i`` of the stack uses ``W + s_i A_i B_iᵀ/√r`` and ``b + s_i δ_i`` (``s_i = ±σ``), and its
output is computed without building that weight::

    y_i = x_i Wᵀ + b + (s_i/√r) (x_i B_i) A_iᵀ + s_i δ_i

(:func:`es_opt.perturbations.low_rank_linear`; Sarkar et al. 2025, arXiv 2511.16652, §4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..perturbations import LowRank, low_rank_linear

__all__ = ["low_rank_linear_step"]


def low_rank_linear_step(
    prefix: str,
    module: nn.Module,
    family: LowRank,
    center: dict[str, torch.Tensor],
    shared: dict[str, torch.Tensor],
    noise: dict[str, torch.Tensor],
    rows: Sequence[int],
    scale: torch.Tensor,
) -> Callable[[torch.Tensor, slice], torch.Tensor]:
    """The step ``(x, members) -> y`` of the ``nn.Linear`` at ``prefix``.

    Args:
        center: the selected parameters' center values, by name.
        shared: the values of the parameters that are not perturbed, by name.
        noise: each selected parameter's noise, ``[pairs, size]``, by name.
        rows: for each stacked member, its pair's row in ``noise``.
        scale: ``[B]``, each member's signed σ.
    """
    name_w, name_b = prefix + "weight", prefix + "bias"
    weight = center[name_w] if name_w in center else shared[name_w].detach()
    bias = None
    if module.bias is not None:
        bias = center[name_b] if name_b in center else shared[name_b].detach()
    index = torch.tensor(list(rows), dtype=torch.int64, device=scale.device)
    factors = None
    if name_w in noise:
        a, b = family.factors(noise[name_w], weight.shape)
        factors = (a[index], b[index])  # [B, m, r], [B, n, r]
    bias_delta = noise[name_b][index] if name_b in noise else None  # [B, m]

    def step(x: torch.Tensor, members: slice) -> torch.Tensor:
        s = scale[members]
        if factors is not None:
            a, b = factors[0][members], factors[1][members]
            delta = None if bias_delta is None else bias_delta[members]
            return low_rank_linear(x, weight, bias, a, b, s, delta)
        out = torch.matmul(x, weight.t())
        out = out if bias is None else out + bias
        if bias_delta is not None:  # only the bias is perturbed
            out = out + (s.unsqueeze(1) * bias_delta[members]).unsqueeze(1)
        return out

    return step
