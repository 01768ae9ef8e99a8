"""ClipUp: normalised gradient steps with heavy-ball momentum and a speed limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim.optimizer import ParamsT

from ._checked_optimizer import CheckedOptimizer
from ._checks import check_lr, check_optional_positive, check_unit_interval
from ._grads import closure_loss, collect_grads, prepare_grads
from ._kernels import clipup_update

__all__ = ["ClipUp"]

_DEFAULTS: dict[str, Any] = {"lr": 0.01, "momentum": 0.9, "max_speed": None, "maximize": False}


def _check_hyperparameters(h: dict[str, Any]) -> None:
    check_lr(h["lr"])
    check_unit_interval("momentum", h["momentum"], low_open=False, high_open=True)
    check_optional_positive("max_speed", h["max_speed"])


class ClipUp(CheckedOptimizer):
    r"""ClipUp (Toklu et al., 2020, "ClipUp: A Simple and Powerful Optimizer for
    Distribution-based Policy Evolution", PPSN XVI, arXiv:2008.02387).

    A heavy-ball momentum step along the *normalised* gradient, with the velocity's norm clipped
    at ``max_speed``. With :math:`g` the gradient of the parameters of one param group taken as a
    single vector (negated when ``maximize``), :math:`\eta` the learning rate ("step size" in the
    paper), :math:`\mu` the momentum and :math:`v_0 = 0`:

    .. math::
        v &\leftarrow \mu v - \eta \, g / \|g\|\\
        v &\leftarrow v \cdot \min(1, v_{\max} / \|v\|)\\
        \theta &\leftarrow \theta + v

    So every step moves the group by at most :math:`v_{\max}` in 2-norm, whatever the scale of
    the gradient: the step size is a distance in parameter space, which suits ES gradient
    estimates whose scale depends on the fitness shaping and on :math:`\sigma`. In ES
    (:class:`~es_opt.ESOptimizer`) ``.grad`` holds :math:`-\hat g`, the negated ascent
    direction, so, as with every torch optimizer, stepping along :math:`-\mathrm{grad}` climbs
    the fitness. A zero gradient adds no push (instead of :math:`0/0`).

    ``max_speed=None`` (the default) means :math:`2\eta`, the paper's recommendation
    (:math:`v_{\max} = 2\eta`, then :math:`\eta` tuned), taken from the group's current ``lr`` at
    every step, so an lr scheduler moves the speed limit with it. The momentum default
    :math:`\mu = 0.9` is the paper's.

    Norms are taken per param group: one group (the usual case, and what the paper describes)
    is one vector; several groups are several independent ClipUp instances that share a
    ``step()``. A parameter without ``.grad`` is left out of the norms and keeps its velocity.
    No step reads a value back from the device.

    Args:
        params: Iterable of parameters or of parameter-group dicts.
        lr: Step size :math:`\eta` (>= 0).
        momentum: :math:`\mu` in [0, 1).
        max_speed: :math:`v_{\max}` (> 0), or ``None`` for ``2 * lr``.
        maximize: Ascend along ``+grad`` instead.

    Example:
        >>> import torch
        >>> from es_opt.optim import ClipUp
        >>> w = torch.nn.Parameter(torch.tensor([3.0, -4.0]))
        >>> opt = ClipUp([w], lr=0.5)  # max_speed = 1.0
        >>> w.grad = torch.tensor([3.0, -4.0])
        >>> _ = opt.step()  # v = -0.5 * (0.6, -0.8)
        >>> w.detach()
        tensor([ 2.7000, -3.6000])
    """

    option_defaults = _DEFAULTS
    check_group = staticmethod(_check_hyperparameters)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 0.01,
        momentum: float = 0.9,
        max_speed: float | None = None,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {"lr": lr, "momentum": momentum, "max_speed": max_speed, "maximize": maximize}
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
        for group in self.param_groups:
            params, grads = collect_grads(group, "ClipUp")
            if not params:
                continue
            velocities = []
            for p in params:
                state = self.state[p]
                if len(state) == 0:
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                velocities.append(state["velocity"])
            max_speed = group["max_speed"]
            clipup_update(
                params,
                prepare_grads(grads, maximize=group["maximize"]),
                velocities,
                lr=group["lr"],
                momentum=group["momentum"],
                max_speed=2 * group["lr"] if max_speed is None else max_speed,
            )
        return loss
