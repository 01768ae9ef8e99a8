"""In-place perturbation with an exact restore and one tensor's copy of extra memory.

For models too big to hold a copy, Qiu et al. (2025, arXiv 2509.24372, §3.2) add ``σε`` to every
weight in place, evaluate, then regenerate ``ε`` and subtract it. In bf16 the subtraction does not
undo the addition: ``round(round(w + δ) − δ) ≠ w`` for a good fraction of the weights (the
rounding of the sum loses the low bits of ``w``), and the errors accumulate over a run
(``tests/test_text_inplace.py`` measures it). Undoing it exactly needs, for every perturbed
weight at once, information the size of the weights: the map ``w ↦ round(w + δ)`` is not
one-to-one.

So :func:`perturbed_in_place` perturbs *just in time*, one module at a time: a forward pre-hook
copies the module's own parameters (the snapshot: one module's tensors), adds the member's
perturbation, and a forward hook copies the snapshot back as soon as the module has run. Every
module computes with its member's weights, at any moment at most one module is perturbed, and
the restore is a copy: bit-exact whatever the dtype. The price is that the perturbation is
rebuilt at every call of the module (once per generated token with a key/value cache); with
low-rank noise that is one small GEMM ``A Bᵀ`` per call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["perturbed_in_place"]

Delta = Callable[[], torch.Tensor]


@contextmanager
def perturbed_in_place(net: nn.Module, deltas: Mapping[str, Delta], *, values: bool = False):
    """Within the block, every forward of ``net`` runs with parameter ``name`` replaced by
    ``parameter + deltas[name]()``; outside the module's own forward the parameters are exactly
    as they were (a copy, not a subtraction, restores them).

    Args:
        net: the model.
        deltas: parameter name → a function returning the perturbation (any dtype that adds to
            the parameter; it is added in the promoted dtype and rounded once to the parameter's).
            It is called each time the owning module runs.
        values: the functions return the parameter's whole value for the forward instead (copied
            in, so rounded once to the parameter's dtype): a member built around a centre of
            higher precision than the parameter, such as the float32 master weights of a
            bfloat16 model (:func:`~es_opt.text.member_values_of`).

    Example:
        >>> net = nn.Linear(2, 1).to(torch.bfloat16)
        >>> before = net.weight.detach().clone()
        >>> delta = {"weight": lambda: torch.full((1, 2), 1e-3)}
        >>> with perturbed_in_place(net, delta):
        ...     y = net(torch.ones(1, 2, dtype=torch.bfloat16))
        >>> torch.equal(net.weight, before)
        True
    """
    params = dict(net.named_parameters(remove_duplicate=False))
    for name in deltas:
        if name not in params:
            raise KeyError(f"the net has no parameter named {name!r}")
    by_param = {id(params[name]): fn for name, fn in deltas.items()}
    handles = []
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []

    def perturb(module: nn.Module, own: list[tuple[nn.Parameter, Delta]]):
        def pre_hook(mod: nn.Module, args) -> None:
            _restore(saved)  # a module re-entered before its hook ran (defensive)
            with torch.no_grad():
                for param, fn in own:
                    saved.append((param, param.detach().clone()))
                    if values:
                        param.copy_(fn())
                    else:
                        param.add_(fn())

        def hook(mod: nn.Module, args, output) -> None:
            _restore(saved)

        return pre_hook, hook

    try:
        for module in net.modules():
            own = [
                (p, by_param[id(p)]) for p in module.parameters(recurse=False) if id(p) in by_param
            ]
            if own:
                pre_hook, hook = perturb(module, own)
                handles.append(module.register_forward_pre_hook(pre_hook))
                handles.append(module.register_forward_hook(hook, always_call=True))
        yield net
    finally:
        _restore(saved)
        for handle in handles:
            handle.remove()


def _restore(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.no_grad():
        while saved:
            param, snapshot = saved.pop()
            param.copy_(snapshot)
