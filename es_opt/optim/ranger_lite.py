"""RangerLite: RAdam with Lookahead, as one ``torch.optim.Optimizer``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim.optimizer import ParamsT

from ._buckets import scratch_of, torch_default_foreach
from ._checked_optimizer import CheckedOptimizer
from ._checks import (
    check_betas,
    check_lr,
    check_non_negative,
    check_optional_positive,
    check_positive_int,
    check_unit_interval,
)
from ._grads import closure_loss, collect_grads, global_grad_norm, prepare_grads
from ._kernels import lookahead_sync, radam_update

__all__ = ["RangerLite"]

_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "betas": (0.95, 0.999),
    "eps": 1e-5,
    "weight_decay": 0.0,
    "sync_period": 6,
    "sync_alpha": 0.5,
    "decoupled_weight_decay": True,
    "grad_clip_norm": None,
    "grad_clip_value": None,
    "maximize": False,
    "foreach": None,
}


def _check_hyperparameters(h: dict[str, Any]) -> None:
    check_lr(h["lr"])
    check_betas(h["betas"])
    check_non_negative("eps", h["eps"])
    check_non_negative("weight_decay", h["weight_decay"])
    # the messages also name the rangerlite spellings, which users of that package pass
    check_positive_int("sync_period (lookahead_steps)", h["sync_period"])
    check_unit_interval("alpha (sync_alpha, lookahead_alpha)", h["sync_alpha"], low_open=True)
    check_optional_positive("grad_clip_norm", h["grad_clip_norm"])
    check_optional_positive("grad_clip_value", h["grad_clip_value"])


class RangerLite(CheckedOptimizer):
    r"""RAdam with Lookahead (Ranger), with every hyperparameter per parameter group.

    Each parameter takes a RAdam step (Liu et al., 2019, "On the Variance of the Adaptive Learning
    Rate and Beyond", arXiv:1908.03265), computed exactly as ``torch.optim.RAdam`` computes it.
    With :math:`g_t` the gradient (negated when ``maximize``; clipped first if asked), :math:`t`
    the parameter's own step count and :math:`\rho_\infty = 2/(1-\beta_2) - 1`:

    .. math::
        \theta &\leftarrow \theta (1 - \eta\lambda) \quad\text{(decoupled weight decay)}\\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2\\
        \rho_t &= \rho_\infty - 2 t \beta_2^t / (1 - \beta_2^t)\\
        \theta &\leftarrow \theta - \eta \frac{m_t}{1-\beta_1^t}
            \begin{cases}
            r_t \sqrt{1-\beta_2^t} / (\sqrt{v_t} + \epsilon) & \rho_t > 5\\
            1 & \text{otherwise}
            \end{cases}\\
        r_t &= \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}

    Then Lookahead (Zhang et al., 2019, "Lookahead Optimizer: k steps forward, 1 step back",
    arXiv:1907.08610): the slow weights :math:`\phi` start as the parameter before its first
    update; after every ``sync_period``-th update of that parameter

    .. math::
        \theta \leftarrow \phi + \alpha (\theta - \phi), \qquad \phi \leftarrow \theta .

    Steps are counted per parameter: a parameter whose ``.grad`` is ``None`` at a step is not
    updated, its moments, step count and slow weights stay as they are, and its Lookahead period
    keeps counting its own updates only. (With ``decoupled_weight_decay=False`` the decay is the
    L2 form :math:`g_t \leftarrow g_t + \lambda\theta`.)

    Names: ``sync_period`` and ``alpha`` are :class:`~es_opt.optim.Lookahead`'s names, stored in
    each param group as ``"sync_period"`` and ``"sync_alpha"`` (as Lookahead stores them). The
    names of the ``rangerlite`` package, ``lookahead_steps`` and ``lookahead_alpha``, are accepted
    as keyword arguments, in group dicts and in state dicts saved by earlier versions.

    Exactness: ``alpha=1`` gives ``torch.optim.RAdam(..., decoupled_weight_decay=True)``
    bit for bit, with the same arithmetic variant. ``foreach=None`` follows torch's own default
    rule (its single-tensor arithmetic on CPU, its multi-tensor arithmetic on CUDA), so defaults
    equal defaults; ``foreach=False`` forces the single-tensor path, ``foreach=True`` the
    multi-tensor one. The two variants differ only in float rounding. On CPU the single-tensor
    arithmetic runs in place on reused scratch memory, per large tensor in chunks, and in batched
    ``torch._foreach_*`` calls for small tensors, which does not change any bit.
    No step reads a value back from the device: step counts are Python ints in ``state``.

    Args:
        params: Iterable of parameters or of parameter-group dicts.
        lr: Learning rate :math:`\eta`.
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1).
        eps: Added to :math:`\sqrt{v_t}`.
        weight_decay: :math:`\lambda` (>= 0).
        sync_period: Lookahead period k (a positive int).
        alpha: Lookahead step size :math:`\alpha` in (0, 1]; 1 turns Lookahead off.
        decoupled_weight_decay: Decay the weights directly (AdamW style, default) instead of
            adding :math:`\lambda\theta` to the gradient.
        grad_clip_norm: If set, gradients are scaled by ``min(1, grad_clip_norm / (norm + 1e-6))``
            where ``norm`` is the 2-norm of all gradients of this optimizer together (as
            ``torch.nn.utils.clip_grad_norm_``). Each group uses its own threshold with the
            global norm.
        grad_clip_value: If set, gradients are clamped to ``[-grad_clip_value, grad_clip_value]``.
            Clipping works on a copy; ``p.grad`` is left as it is.
        maximize: Ascend the objective instead of descending (``p.grad`` is not modified).
        foreach: Arithmetic variant, see above (``None``: torch's default for the tensors).
        lookahead_steps: The ``rangerlite`` name of ``sync_period`` (give one of the two).
        lookahead_alpha: The ``rangerlite`` name of ``alpha`` (give one of the two).

    Example:
        >>> import torch
        >>> from es_opt.optim import RangerLite
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = RangerLite([w], lr=0.1)
        >>> for _ in range(200):
        ...     opt.zero_grad()
        ...     (w**2).sum().backward()
        ...     _ = opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    option_defaults = _DEFAULTS
    renamed_options = {"lookahead_steps": "sync_period", "lookahead_alpha": "sync_alpha"}
    check_group = staticmethod(_check_hyperparameters)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.95, 0.999),
        eps: float = 1e-5,
        weight_decay: float = 0.0,
        sync_period: int = 6,
        alpha: float = 0.5,
        *,
        decoupled_weight_decay: bool = True,
        grad_clip_norm: float | None = None,
        grad_clip_value: float | None = None,
        maximize: bool = False,
        foreach: bool | None = None,
        lookahead_steps: int | None = None,
        lookahead_alpha: float | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "sync_period": sync_period,
            "sync_alpha": alpha,
            "decoupled_weight_decay": decoupled_weight_decay,
            "grad_clip_norm": grad_clip_norm,
            "grad_clip_value": grad_clip_value,
            "maximize": maximize,
            "foreach": foreach,
        }
        aliases = {"lookahead_steps": (lookahead_steps, "sync_period", sync_period),
                   "lookahead_alpha": (lookahead_alpha, "alpha", alpha)}  # fmt: skip
        for old, (given, name, value) in aliases.items():
            if given is None:
                continue
            key = self.renamed_options[old]
            if value not in (given, _DEFAULTS[key]):  # both names given, with two values
                raise ValueError(
                    f"Invalid {old}: {given!r}; it is the rangerlite name of {name}, given as "
                    f"{value!r}: give one of the two"
                )
            defaults[key] = given
        _check_hyperparameters(defaults)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Also runs inside load_state_dict: fills options that an older RangerLite or a plain
        # torch.optim.RAdam state dict lacks, converts tensor step counts to ints, and starts
        # the slow weights of parameters that have moments but no slow weights at their
        # current value (their next Lookahead sync counts on from the loaded step).
        super().__setstate__(state)
        for group in self.param_groups:
            for p in group["params"]:
                p_state = self.state.get(p)
                if p_state and "slow_param" not in p_state:
                    p_state["slow_param"] = p.detach().clone()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step.

        Args:
            closure: Optional callable that re-evaluates the model and returns the loss.

        Returns:
            The loss returned by ``closure``, or ``None``.
        """
        loss = closure_loss(closure)

        work = [(group, *collect_grads(group, "RangerLite")) for group in self.param_groups]
        total_norm = None
        if any(group["grad_clip_norm"] is not None for group, _, _ in work):
            total_norm = global_grad_norm([g for _, _, grads in work for g in grads])
        scratch = scratch_of(self)

        for group, params, grads in work:
            if not params:
                continue
            exp_avgs, exp_avg_sqs, steps = [], [], []
            for p in params:
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["slow_param"] = p.detach().clone(memory_format=torch.preserve_format)
                state["step"] += 1
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            grads = prepare_grads(
                grads,
                maximize=group["maximize"],
                clip_norm=group["grad_clip_norm"],
                total_norm=total_norm,
                clip_value=group["grad_clip_value"],
            )
            beta1, beta2 = group["betas"]
            foreach = group["foreach"]
            if foreach is None:  # torch's default for these tensors (single-tensor on CPU)
                foreach = torch_default_foreach(params)
            radam_update(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                steps,
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                decoupled_weight_decay=group["decoupled_weight_decay"],
                torch_foreach_math=bool(foreach),
                scratch=scratch,
            )
            period = group["sync_period"]
            syncing = [k for k, step in enumerate(steps) if step % period == 0]
            lookahead_sync(
                [params[k] for k in syncing],
                [self.state[params[k]]["slow_param"] for k in syncing],
                float(group["sync_alpha"]),
            )
        return loss
