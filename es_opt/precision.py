"""float32 master weights for float16 and bfloat16 models, so that small updates accumulate.

An ES step moves a weight by ``lr``-sized amounts (RangerLite's default ``lr = 0.01``; PGPE's
step carries a factor σ²). A bfloat16 weight keeps 8 significant bits: near 1.0 its spacing is
2⁻⁷ ≈ 0.008, so any step below half of it, ≈ 0.004, rounds back to the same weight, every step,
and the run stands still without an error (float16: 11 bits, spacing 2⁻¹⁰ near 1.0). Mixed-precision
training keeps a float32 copy of every weight for exactly this reason (Micikevicius et al. 2018,
"Mixed Precision Training", §3.1; torch AMP; the 2025 ES fine-tuning of language models,
Qiu et al. arXiv 2509.24372 and OpenRLHF's ES trainer, upcast to float32 for the same reason).

With master weights, for every trainable low-precision parameter ``w`` the optimizer keeps
``m = float32(w)``, and one step is::

    θ = m                                      the centre of the population (float32)
    member i = cast(θ ± σ ε_j)                 built in float32, rounded once to w's dtype
    m ← inner_optimizer.step(m, grad = −g)     the inner optimizer steps the float32 copies
    w ← cast(m)                                the net receives the rounded copy

so ``m`` accumulates steps far below w's spacing and ``w`` moves as soon as their sum crosses
half a spacing. The inner optimizer's state (moments, slow weights) is float32 as well.
Memory: 4 bytes per trainable parameter for ``m``, plus the optimizer's state in float32 instead
of the parameters' dtype (RangerLite: 3 tensors, 12 bytes per parameter instead of 6).

The net stays the reference: whenever a parameter holds something other than ``cast(m)`` (its
weights were loaded or edited between steps), ``m`` is read from it again.

Without master weights (``master_weights=False``) the inner optimizer steps the low-precision
parameters themselves, and a step that changes no weight at all although its gradient is not
zero gives a :class:`RoundedAwayWarning` (a ``RuntimeWarning``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .model import Model
from .population import Population
from .update import UpdateRule, apply_update

__all__ = ["LOW_PRECISION", "MasterWeights", "RoundedAwayWarning", "stepped_parameters"]

LOW_PRECISION = (torch.float16, torch.bfloat16)
"""Dtypes that get float32 master weights by default."""


class RoundedAwayWarning(RuntimeWarning):
    """An update of low-precision weights without master weights changed no weight."""


def stepped_parameters(es: Any) -> dict[str, nn.Parameter]:
    """The parameters an :class:`~es_opt.ESOptimizer`'s inner optimizer holds, by name: the
    float32 master copies of a low-precision model, else the model's own."""
    return es._master.parameters()


def _sync_of(backend: Any, backend_options: Mapping[str, Any] | None) -> str | None:
    """The ``sync`` option of a backend given by name and options, or of an evaluator instance."""
    if backend_options and "sync" in backend_options:
        return backend_options["sync"]
    return getattr(getattr(backend, "options", None), "sync", None)


def _check_option(master_weights: Any) -> bool | None:
    if master_weights is not None and not isinstance(master_weights, bool):
        raise TypeError(f"master_weights must be True, False or None, got {master_weights!r}")
    return master_weights


class MasterWeights:
    """The parameters the inner optimizer steps: the net's own, or their float32 copies.

    Args:
        model: the model whose trainable parameters are stepped.
        optimizer: the inner torch optimizer, built over the net's parameters. With master
            weights its parameter groups are made to hold the float32 copies instead (its state,
            if any, is carried over in float32).
        master_weights: ``True``: float32 copies of every float16 / bfloat16 trainable
            parameter (float32 and float64 ones need none); ``False``: none; ``None`` (the
            default): ``True`` when a trainable parameter is float16 or bfloat16.
        backend, backend_options: the evaluation backend (a name or an evaluator) and its
            options, as :func:`es_opt.evaluators.resolve_backend` returns them: ``sync="replay"``
            cannot be combined with master weights.

    Example:
        >>> net = nn.Linear(2, 1).to(torch.bfloat16)
        >>> opt = torch.optim.SGD(net.parameters(), lr=1e-4)
        >>> master = MasterWeights(Model(net), opt, None)
        >>> master.enabled, master.parameters()["weight"].dtype
        (True, torch.float32)
    """

    def __init__(
        self,
        model: Model,
        optimizer: torch.optim.Optimizer,
        master_weights: bool | None = None,
        backend: Any = None,
        backend_options: Mapping[str, Any] | None = None,
    ):
        option = _check_option(master_weights)
        params = model.named_trainable_parameters()
        low = [name for name, p in params.items() if p.dtype in LOW_PRECISION]
        self.model = model
        self.low_precision = bool(low)
        self.enabled = bool(low) and option is not False
        self._master: dict[str, nn.Parameter] = {}
        self._versions: dict[str, int | None] = {}
        if not self.enabled:
            return
        if _sync_of(backend, backend_options) == "replay":
            raise ValueError(
                "sync='replay' replays each update on the workers' nets, which does not cover "
                "float32 master weights (on by default for float16/bfloat16 models): pass "
                "master_weights=False, or keep sync='center'"
            )
        self._master = {
            name: nn.Parameter(params[name].detach().to(torch.float32).clone()) for name in low
        }
        self._versions = dict.fromkeys(low)
        _swap_parameters(optimizer, {id(params[n]): m for n, m in self._master.items()})

    def parameters(self) -> dict[str, nn.Parameter]:
        """The trainable parameters by name, in the net's order, as the inner optimizer steps
        them: the float32 master copy where there is one, else the net's parameter. A master
        copy whose net parameter no longer holds its cast (loaded or edited since) is read from
        the net again first."""
        params = self.model.named_trainable_parameters()
        if not self.enabled:
            return params
        with torch.no_grad():
            for name, master in self._master.items():
                param = params.get(name)
                if param is None or param._version == self._versions[name]:
                    continue
                if not torch.equal(param, master.to(param.dtype)):
                    master.copy_(param)
                self._versions[name] = param._version
        return {name: self._master.get(name, param) for name, param in params.items()}

    def update(
        self, optimizer: Any, rule: UpdateRule, population: Population, fitness: torch.Tensor
    ) -> Any:
        """:func:`es_opt.update.apply_update` on :meth:`parameters`, all or nothing as it is,
        then the master copies cast into the net (their ``.grad`` too). Without master weights
        on a low-precision net, a :class:`RoundedAwayWarning` when no weight changed although
        the gradient was not zero."""
        params = self.parameters()
        if self.enabled:
            result = apply_update(params, optimizer, rule, population, fitness)
            self.push()
            return result
        if not self.low_precision:
            return apply_update(params, optimizer, rule, population, fitness)
        before = [p.detach().clone() for p in params.values()]
        result = apply_update(params, optimizer, rule, population, fitness)
        gradient = getattr(result, "gradient", None)
        moved = any(not torch.equal(b, p) for b, p in zip(before, params.values(), strict=True))
        if not moved and gradient is not None and bool(gradient.ne(0).any()):
            dtypes = sorted({str(p.dtype) for p in params.values()})
            warnings.warn(
                f"the update changed no weight of this {', '.join(dtypes)} model: every step "
                "was below half the spacing of the weights' dtype and rounded away. Keep "
                "float32 master weights (ESOptimizer(master_weights=True), the default for "
                "float16/bfloat16 models) so that small steps accumulate",
                RoundedAwayWarning,
                stacklevel=4,  # the caller of gradient_step() or tell()
            )
        return result

    def push(self) -> None:
        """Casts every master copy (and its ``.grad``) into the net's parameter."""
        params = self.model.named_trainable_parameters()
        with torch.no_grad():
            for name, master in self._master.items():
                param = params[name]
                param.copy_(master)
                param.grad = None if master.grad is None else master.grad.to(param.dtype)
                self._versions[name] = param._version

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{"master_weights": {name: float32 copy}}`` to merge into
        :meth:`es_opt.ESOptimizer.state_dict` (empty without master weights): the values the run
        continues from, which the net's rounded weights no longer hold."""
        if not self.enabled:
            return {}
        current = self.parameters()
        return {"master_weights": {name: current[name].detach().clone() for name in self._master}}

    def load_state_dict(self, saved: dict[str, torch.Tensor] | None) -> None:
        """Restores :meth:`state_dict`; checked before anything changes. ``None`` (a state
        saved without master weights) leaves the copies to be read from the net. The copies are
        kept only while the net holds their cast (load the net's weights too, as
        :func:`es_opt.training.load_checkpoint` does)."""
        if not self.enabled or saved is None:
            return
        if not isinstance(saved, dict) or set(saved) != set(self._master):
            found = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
            raise ValueError(
                f"master_weights must hold the float32 copies of {sorted(self._master)}, "
                f"got {found}"
            )
        for name, value in saved.items():
            master = self._master[name]
            if not isinstance(value, torch.Tensor) or value.shape != master.shape:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else value
                raise ValueError(
                    f"master_weights[{name!r}] must be a tensor of shape {tuple(master.shape)}, "
                    f"got {shape}"
                )
        with torch.no_grad():
            for name, value in saved.items():
                self._master[name].copy_(value)
                self._versions[name] = None  # compared with the net at the next step


def _swap_parameters(optimizer: torch.optim.Optimizer, replacement: dict[int, nn.Parameter]):
    """Makes ``optimizer``'s groups hold the replacements of the parameters they hold (in place,
    so a wrapper sharing the groups, e.g. Lookahead, follows); any state is carried over by a
    ``state_dict`` round trip, which casts it to the new parameters' dtype."""
    saved = optimizer.state_dict() if len(optimizer.state) else None
    for group in optimizer.param_groups:
        group["params"][:] = [replacement.get(id(p), p) for p in group["params"]]
    if saved is not None:
        optimizer.load_state_dict(saved)
