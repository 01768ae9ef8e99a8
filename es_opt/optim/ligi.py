"""Ligi: the optimizer found by reinforcement-learning optimizer search (RLOS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim.optimizer import ParamsT

from ._buckets import scratch_of
from ._checked_optimizer import CheckedOptimizer
from ._checks import check_betas, check_lr, check_non_negative, check_unit_interval
from ._grads import closure_loss, collect_grads, prepare_grads
from ._kernels import ligi_update

__all__ = ["Ligi"]

_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "betas": (0.9, 0.99),
    "gamma": 0.9,
    "eps": 1e-15,
    "weight_decay": 0.0,
    "maximize": False,
    "foreach": None,
}


def _check_hyperparameters(h: dict[str, Any]) -> None:
    check_lr(h["lr"])
    check_betas(h["betas"])
    check_unit_interval("gamma", h["gamma"], low_open=False)
    check_non_negative("eps", h["eps"])
    check_non_negative("weight_decay", h["weight_decay"])


class Ligi(CheckedOptimizer):
    r"""Ligi, the update rule discovered by reinforcement-learning optimizer search (RLOS).

    With :math:`t` the parameter's own step count (from 1), :math:`m_0 = 0` and :math:`g` the
    gradient (negated when ``maximize``):

    .. math::
        b_t &= \beta_1 (1 - \beta_2^{t-1}) + (1 - \beta_1)\\
        c_t &= (\beta_1 m_{t-1} + (1 - \beta_1) g) / b_t\\
        m_t &= \beta_2 m_{t-1} + (1 - \beta_2) g\\
        \theta &\leftarrow \theta (1 - \eta\lambda)\\
        \theta &\leftarrow \theta - \eta\, c_t / (\gamma |c_t| + (1 - \gamma) |g| + \epsilon)

    :math:`b_t` is the bias correction of the interpolation :math:`c_t`, so the first step is
    :math:`\eta\,\mathrm{sign}(g)`. Every coordinate moves by at most :math:`\eta/\gamma`, like
    Lion's :math:`\eta`: use Lion-scale learning rates (about 3-10x smaller than Adam's) and a
    correspondingly larger ``weight_decay``.

    Unlike the authors' reference implementation this one leaves ``p.grad`` untouched, counts
    steps per parameter (a parameter without gradient is skipped, its step count and momentum
    stay), and supports ``maximize`` and per-group hyperparameters. ``foreach`` only chooses how
    the work is scheduled; results are identical for every value.

    Args:
        params: Iterable of parameters or of parameter-group dicts.
        lr: Learning rate :math:`\eta` (>= 0).
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1).
        gamma: Weight :math:`\gamma` of :math:`|c_t|` in the denominator, in [0, 1].
        eps: Added to the denominator (>= 0).
        weight_decay: Decoupled weight decay :math:`\lambda` (>= 0).
        maximize: Ascend the objective instead of descending.
        foreach: Accepted for API symmetry with torch optimizers.

    Example:
        >>> import torch
        >>> from es_opt.optim import Ligi
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = Ligi([w], lr=0.05)
        >>> for _ in range(100):
        ...     opt.zero_grad()
        ...     (w**2).sum().backward()
        ...     _ = opt.step()
        >>> bool(w.abs().max() < 0.5)
        True
    """

    option_defaults = _DEFAULTS
    check_group = staticmethod(_check_hyperparameters)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.99),
        gamma: float = 0.9,
        eps: float = 1e-15,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "gamma": gamma,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "foreach": foreach,
        }
        _check_hyperparameters(defaults)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step.

        Args:
            closure: Optional callable that re-evaluates the model and returns the loss.

        Returns:
            The loss returned by ``closure``, or ``None``.
        """
        loss = closure_loss(closure)
        scratch = scratch_of(self)
        for group in self.param_groups:
            params, grads = collect_grads(group, "Ligi")
            if not params:
                continue
            exp_avgs, steps = [], []
            for p in params:
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                exp_avgs.append(state["exp_avg"])
                steps.append(state["step"])
            beta1, beta2 = group["betas"]
            ligi_update(
                params,
                prepare_grads(grads, maximize=group["maximize"]),
                exp_avgs,
                steps,
                beta1=beta1,
                beta2=beta2,
                gamma=group["gamma"],
                lr=group["lr"],
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                scratch=scratch,
            )
        return loss
