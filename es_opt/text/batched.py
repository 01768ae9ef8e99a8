"""Population-batched forward: every member's perturbation applied to its own rows of one batch.

With low-rank perturbations (EGGROLL, Sarkar et al. 2025, arXiv 2511.16652, §4) member ``m``'s
weight matrix is ``W + s_m A_m B_mᵀ/√r`` (``W`` of shape ``[p, q]``, ``A_m: [p, r]``,
``B_m: [q, r]``, ``s_m = ±σ``: the numbers of :class:`~es_opt.perturbations.LowRank`). Its
product with the member's inputs never needs the perturbed matrix (write ``c = s/√r``):

    nn.Linear (y = x Wᵀ + b):         x (W + c A Bᵀ)ᵀ = x Wᵀ + c (x B) Aᵀ
    GPT-2 Conv1D (y = x W + b):        x (W + c A Bᵀ)  = x W  + c (x A) Bᵀ
    nn.Embedding (y = W[i]):           (W + c A Bᵀ)[i] = W[i] + c A[i] Bᵀ

so the whole batch shares one GEMM with ``W`` and each member adds two skinny products, like
batched LoRA inference: Linear and Conv1D call :func:`es_opt.perturbations.low_rank_linear`, the
forward that :class:`~es_opt.StackedModel` uses for low-rank MLPs. Vectors (biases, LayerNorm
scales) and any parameter given a :class:`DenseNoise` get the member's full perturbation
``s_m ε_m``.

:func:`batched_members` swaps the ``forward`` of the modules that hold perturbed parameters for
the duration of a ``with`` block. Covered modules: ``nn.Linear``, ``transformers``' ``Conv1D``
(GPT-2, GPT), ``nn.Embedding`` and ``nn.LayerNorm``; a perturbed parameter held by any other
module is a :class:`UncoveredModuleError` naming it. A parameter shared by several modules (GPT-2
ties ``wte.weight`` and ``lm_head.weight``) gets the same perturbation in each.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..perturbations import low_rank_delta, low_rank_linear

__all__ = [
    "COVERED_MODULES",
    "DenseNoise",
    "LowRankNoise",
    "UncoveredModuleError",
    "batched_members",
]

COVERED_MODULES = ("nn.Linear", "transformers Conv1D", "nn.Embedding", "nn.LayerNorm")


@dataclass(frozen=True)
class LowRankNoise:
    """Members' low-rank perturbations of one matrix ``W: [p, q]``: member ``m`` adds
    ``scale[m] · a[m] @ b[m]ᵀ / √r`` (:class:`~es_opt.perturbations.LowRank`'s ``E = A Bᵀ/√r``).

    Attributes:
        a: ``[M, p, r]``.
        b: ``[M, q, r]``.
        scale: ``[M]``, the member's signed σ (``+σ`` or ``−σ`` in its antithetic pair).
    """

    a: torch.Tensor
    b: torch.Tensor
    scale: torch.Tensor

    def delta(self, member: int) -> torch.Tensor:
        """Member ``member``'s perturbation as a dense ``[p, q]`` matrix (the arithmetic of
        :class:`~es_opt.Population`'s members: ``E`` first, then times ``scale``)."""
        e = low_rank_delta(self.a[member : member + 1], self.b[member : member + 1])[0]
        return e * self.scale[member]


@dataclass(frozen=True)
class DenseNoise:
    """Members' dense perturbations of one parameter: member ``m`` adds ``scale[m] · eps[m]``.

    Attributes:
        eps: ``[M, *shape]``.
        scale: ``[M]``.
    """

    eps: torch.Tensor
    scale: torch.Tensor

    def delta(self, member: int) -> torch.Tensor:
        """Member ``member``'s perturbation, of the parameter's shape."""
        return self.eps[member] * self.scale[member]


Noise = LowRankNoise | DenseNoise


class UncoveredModuleError(TypeError):
    """A perturbed parameter belongs to a module type the population-batched forward does not
    cover."""


def _conv1d_type() -> type | None:
    module = sys.modules.get("transformers.pytorch_utils")
    return getattr(module, "Conv1D", None)


@contextmanager
def batched_members(net: nn.Module, noise: Mapping[str, Noise], n_members: int):
    """Within the block, ``net`` computes member ``m``'s output on rows ``[m·R/M, (m+1)·R/M)`` of
    every batch of ``R`` rows, each member with its own perturbation.

    Args:
        net: the model; its parameters are not changed.
        noise: parameter name (as in ``net.named_parameters()``) → the members' perturbations.
        n_members: ``M``; every batch the net sees must have a multiple of ``M`` rows.

    Example:
        >>> net = nn.Linear(3, 2)
        >>> a = torch.tensor([[[1.0], [-2.0]], [[0.5], [1.0]]])  # [members, out, rank]
        >>> b = torch.tensor([[[1.0], [0.0], [2.0]], [[3.0], [1.0], [-1.0]]])  # [members, in, rank]
        >>> noise = {"weight": LowRankNoise(a, b, torch.tensor([0.1, -0.1]))}
        >>> x = torch.ones(4, 3)  # rows 0-1: member 0, rows 2-3: member 1
        >>> with batched_members(net, noise, 2):
        ...     y = net(x)
        >>> w1 = net.weight + noise["weight"].delta(1)
        >>> torch.allclose(y[3], x[3] @ w1.T + net.bias)
        True
    """
    if n_members < 1:
        raise ValueError(f"n_members must be at least 1, got {n_members}")
    params = dict(net.named_parameters(remove_duplicate=False))
    by_param: dict[int, Noise] = {}
    for name, value in noise.items():
        if name not in params:
            raise KeyError(f"the net has no parameter named {name!r}")
        size = value.a.shape[0] if isinstance(value, LowRankNoise) else value.eps.shape[0]
        if size != n_members or value.scale.shape != (n_members,):
            raise ValueError(f"the noise of {name!r} is for {size} members, not {n_members}")
        by_param[id(params[name])] = value
    wrapped = []
    try:
        for module_name, module in net.named_modules(remove_duplicate=False):
            own = {
                key: by_param[id(p)]
                for key, p in module.named_parameters(recurse=False)
                if id(p) in by_param
            }
            if not own:
                continue
            forward = _member_forward(module_name, module, own, n_members)
            module.forward = forward
            wrapped.append(module)
        yield net
    finally:
        for module in wrapped:
            del module.forward


def _member_forward(name: str, module: nn.Module, own: dict[str, Noise], n_members: int):
    conv1d = _conv1d_type()
    if type(module) is nn.Linear:
        return _matrix_forward(module, own, n_members, transposed=True)
    if conv1d is not None and type(module) is conv1d:
        return _matrix_forward(module, own, n_members, transposed=False)
    if type(module) is nn.Embedding:
        return _embedding_forward(name, module, own, n_members)
    if type(module) is nn.LayerNorm:
        return _layer_norm_forward(name, module, own, n_members)
    raise UncoveredModuleError(
        f"module {name!r} ({type(module).__name__}) holds perturbed parameters "
        f"{sorted(own)}, but the population-batched forward covers only "
        f"{', '.join(COVERED_MODULES)}: leave its parameters out of the perturbation, or "
        "evaluate members one at a time (es_opt.text.perturbed_in_place)"
    )


def _by_member(x: torch.Tensor, n_members: int) -> torch.Tensor:
    if x.shape[0] % n_members:
        raise ValueError(
            f"a batch of {x.shape[0]} rows cannot be split between {n_members} members (rows "
            "are member-major; inputs broadcast over the batch, such as position ids of shape "
            "[1, T], must be given per row)"
        )
    return x.reshape(n_members, -1, x.shape[-1])


def _vector(own: dict[str, Noise], key: str, base: torch.Tensor | None, n_members: int):
    """``[M, 1, d]`` per-member copies of a vector parameter, or the shared one."""
    noise = own.get(key)
    if noise is None:
        return base
    if not isinstance(noise, DenseNoise):
        raise TypeError(f"the vector parameter {key!r} needs DenseNoise, got {type(noise)}")
    scale = noise.scale.to(base.dtype).view(-1, 1)
    return (base + noise.eps.to(base.dtype).reshape(n_members, -1) * scale).unsqueeze(1)


def _per_dtype(prepare):
    """``prepare(dtype)`` computed once per dtype for the life of one ``batched_members`` block:
    the members' factors do not change between the forwards of a generation (one per token)."""
    cache: dict[torch.dtype, object] = {}

    def get(dtype: torch.dtype):
        if dtype not in cache:
            cache[dtype] = prepare(dtype)
        return cache[dtype]

    return get


def _matrix_forward(module: nn.Module, own: dict[str, Noise], n_members: int, transposed: bool):
    """``y = x Wᵀ + b`` (Linear, ``transposed``) or ``x W + b`` (Conv1D, ``W`` stored
    ``[in, out]``) for every member. Low-rank: :func:`~es_opt.perturbations.low_rank_linear` (one
    shared ``addmm`` over all rows, one ``baddbmm`` of each member's ``(x B) Aᵀ``, its bias
    perturbation added with the shared product). Dense: the shared ``addmm`` and one ``baddbmm``
    of ``x · s εᵀ``.

    The members' factors are cast and laid out once per block, not once per forward: decoding
    calls the forward once per new token."""
    weight_noise, bias_noise = own.get("weight"), own.get("bias")

    def prepare(dtype: torch.dtype):
        low_rank = dense = bias = None
        if isinstance(weight_noise, LowRankNoise):
            # Linear's W is [out, in], low_rank_linear's own layout; Conv1D's is [in, out], its
            # transpose, whose factors are (B, A)
            a, b = weight_noise.a.to(dtype), weight_noise.b.to(dtype)
            low_rank = [*((a, b) if transposed else (b, a)), weight_noise.scale.to(dtype), None]
            if bias_noise is not None and torch.equal(bias_noise.scale, weight_noise.scale):
                low_rank[3] = bias_noise.eps.to(dtype).view(n_members, -1)
        elif isinstance(weight_noise, DenseNoise):
            eps = weight_noise.eps.to(dtype)
            eps = eps.transpose(1, 2) if transposed else eps
            dense = (eps * weight_noise.scale.to(dtype).view(-1, 1, 1)).contiguous()
        if bias_noise is not None and (low_rank is None or low_rank[3] is None):
            bias_scale = bias_noise.scale.to(dtype).view(-1, 1, 1)
            bias = bias_noise.eps.to(dtype).view(n_members, 1, -1) * bias_scale
        return low_rank, dense, bias

    factors = _per_dtype(prepare)

    def forward(x: torch.Tensor) -> torch.Tensor:
        members = _by_member(x, n_members)
        weight = module.weight if transposed else module.weight.T  # [out, in]
        low_rank, dense, bias = factors(x.dtype)
        if low_rank is not None:
            out = low_rank_linear(members, weight, module.bias, *low_rank)
        else:
            flat, bias_ = members.reshape(-1, members.shape[-1]), module.bias
            out = flat @ weight.T if bias_ is None else torch.addmm(bias_, flat, weight.T)
            out = out.view(n_members, -1, weight.shape[0])
            if dense is not None:
                out = torch.baddbmm(out, members, dense)
        if bias is not None:
            out = out + bias
        return out.reshape(*x.shape[:-1], out.shape[-1])

    return forward


def _embedding_forward(name: str, module: nn.Embedding, own: dict[str, Noise], n_members: int):
    if module.max_norm is not None:
        raise UncoveredModuleError(
            f"module {name!r} (Embedding with max_norm) renormalises its weight in place; the "
            "population-batched forward does not cover it"
        )
    noise = own["weight"]

    def forward(ids: torch.Tensor) -> torch.Tensor:
        out = F.embedding(ids, module.weight, module.padding_idx)
        flat = _by_member(ids.unsqueeze(-1), n_members).squeeze(-1)
        rows = torch.arange(n_members, device=ids.device).unsqueeze(1)
        scale = noise.scale.to(out.dtype).view(-1, 1, 1)
        if isinstance(noise, LowRankNoise):  # the rows of E = A Bᵀ/√r, then times ±σ
            picked = noise.a.to(out.dtype)[rows, flat]  # [M, N, r]
            delta = low_rank_delta(picked, noise.b.to(out.dtype)) * scale
        else:
            delta = noise.eps.to(out.dtype)[rows, flat] * scale
        return out + delta.reshape(out.shape)

    return forward


def _layer_norm_forward(name: str, module: nn.LayerNorm, own: dict[str, Noise], n_members: int):
    if len(module.normalized_shape) != 1:
        raise UncoveredModuleError(
            f"module {name!r} (LayerNorm over {len(module.normalized_shape)} dims): the "
            "population-batched forward covers LayerNorm over the last dimension only"
        )

    vectors = _per_dtype(
        lambda dtype: (
            _vector(own, "weight", module.weight, n_members),
            _vector(own, "bias", module.bias, n_members),
        )
    )

    def forward(x: torch.Tensor) -> torch.Tensor:
        members = _by_member(x, n_members)
        out = F.layer_norm(members, module.normalized_shape, None, None, module.eps)
        weight, bias = vectors(x.dtype)
        if weight is not None:
            out = out * weight
        if bias is not None:
            out = out + bias
        return out.reshape(x.shape)

    return forward
