"""Lookahead as a wrapper around any ``torch.optim.Optimizer``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from itertools import chain
from typing import Any

import torch
from torch.optim.optimizer import Optimizer

from ._checks import check_positive_int, check_unit_interval
from ._dynamo_free import DynamoFreeOptimizer
from ._kernels import lookahead_sync

__all__ = ["Lookahead"]


class Lookahead(DynamoFreeOptimizer):
    r"""Lookahead (Zhang et al., 2019, arXiv:1907.08610) around any torch optimizer.

    The wrapped ("fast") optimizer steps as usual. Each parameter keeps slow weights
    :math:`\phi`, equal to the parameter before its first update; after every
    ``sync_period``-th update of that parameter

    .. math::
        \theta \leftarrow \phi + \alpha (\theta - \phi), \qquad \phi \leftarrow \theta .

    A parameter counts as updated at a step when its ``.grad`` is not ``None`` after the inner
    step (optimizers skip parameters without a gradient), so parameters that miss steps keep their
    own period, as in :class:`~es_opt.optim.RangerLite`.

    The wrapper shares the inner optimizer's ``param_groups`` (the same list object), so lr
    schedulers and per-group settings act on the inner optimizer whichever of the two they are
    given. ``sync_period`` and ``alpha`` are stored in those groups as ``"sync_period"`` and
    ``"sync_alpha"`` (not ``"alpha"``, which ``torch.optim.RMSprop`` uses for its own smoothing
    constant); a group created with its own ``sync_period``/``sync_alpha`` keeps them. The names
    are :class:`~es_opt.optim.RangerLite`'s too. ``state_dict()`` holds the inner optimizer's
    state dict plus ``"lookahead_state"`` (slow weights and counters); loading a plain inner
    state dict starts the slow weights at the current parameters.

    Args:
        optimizer: The inner ``torch.optim.Optimizer``.
        sync_period: Number k of inner updates between synchronisations (>= 1).
        alpha: Slow step size :math:`\alpha` in (0, 1].

    Example:
        >>> import torch
        >>> from es_opt.optim import Lookahead
        >>> x = torch.nn.Parameter(torch.zeros(1))
        >>> opt = Lookahead(torch.optim.SGD([x], lr=1.0), sync_period=2, alpha=0.5)
        >>> for _ in range(4):
        ...     x.grad = torch.ones(1)
        ...     _ = opt.step()
        ...     print(x.item())
        -1.0
        -1.0
        -2.0
        -2.0
    """

    def __init__(self, optimizer: Optimizer, sync_period: int = 5, alpha: float = 0.5) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"Invalid optimizer: expected a torch.optim.Optimizer, got {type(optimizer)!r}"
            )
        check_positive_int("sync_period", sync_period)
        check_unit_interval("alpha", alpha, low_open=True)
        self.optimizer = optimizer
        # Optimizer.__init__ empties ``param_groups`` (the inner list, emptied in place by the
        # setter below) and adds the inner groups back one by one: ``_adopting`` tells
        # add_param_group that these groups are the inner optimizer's own, to be kept as they are
        # and given the Lookahead defaults, not added to the inner optimizer a second time.
        defaults = {"sync_period": sync_period, "sync_alpha": alpha}
        groups = list(optimizer.param_groups)
        for group in groups:  # refuse before anything changes: adoption then cannot fail
            self._check_group({**defaults, **group})
        self._adopting = True
        try:
            super().__init__(groups, defaults)
        finally:
            del self._adopting

    @staticmethod
    def _check_group(group: dict[str, Any]) -> None:
        check_positive_int("sync_period", group["sync_period"])
        check_unit_interval("sync_alpha", group["sync_alpha"], low_open=True)

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        groups = self.optimizer.param_groups
        if value is not groups:
            groups[:] = value  # in place: whoever holds the inner list keeps seeing the groups

    def __getstate__(self) -> dict[str, Any]:
        return {"defaults": self.defaults, "state": self.state, "optimizer": self.optimizer}

    def __setstate__(self, state: dict[str, Any]) -> None:
        torch_key = "differentiable" in state["defaults"]
        super().__setstate__(state)  # also the hook dicts and the step hooks
        if not torch_key:  # torch adds it to the defaults; here it would leak into new groups
            self.defaults.pop("differentiable", None)

    def __repr__(self) -> str:
        inner = "\n".join("    " + line for line in repr(self.optimizer).splitlines())
        return f"{type(self).__name__} (\n{inner}\n)"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the inner optimizer, with this wrapper's Lookahead defaults."""
        if getattr(self, "_adopting", False):  # an inner group, during __init__
            super().add_param_group(param_group)  # appends it back, fills sync_period/sync_alpha
        else:
            self.optimizer.add_param_group(param_group)
            for key, value in self.defaults.items():
                self.param_groups[-1].setdefault(key, value)
        try:
            self._check_group(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()
            raise

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Step the inner optimizer, then synchronise parameters that reached their period.

        Args:
            closure: Passed to the inner optimizer's ``step``.

        Returns:
            Whatever the inner ``step`` returns (the loss when a closure is given).
        """
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    # Slow weights are the parameter before its first update. Without a closure
                    # only parameters with a gradient can be updated now.
                    if (closure is not None or p.grad is not None) and (
                        "slow_param" not in self.state[p]
                    ):
                        self.state[p]["slow_param"] = p.detach().clone()
                        self.state[p]["step"] = 0
        loss = self.optimizer.step() if closure is None else self.optimizer.step(closure)
        with torch.no_grad():
            for group in self.param_groups:
                fast, slow = [], []
                for p in group["params"]:
                    state = self.state.get(p)
                    if p.grad is None or not state:
                        continue
                    state["step"] += 1
                    if state["step"] % group["sync_period"] == 0:
                        fast.append(p)
                        slow.append(state["slow_param"])
                lookahead_sync(fast, slow, float(group["sync_alpha"]))
        return loss

    def _param_index(self) -> dict[int, int]:
        index: dict[int, int] = {}
        for p in chain.from_iterable(g["params"] for g in self.param_groups):
            index.setdefault(id(p), len(index))
        return index

    def state_dict(self) -> dict[str, Any]:
        """The inner optimizer's state dict plus ``"lookahead_state"`` (slow weights, counters)."""
        for hook in self._optimizer_state_dict_pre_hooks.values():
            hook(self)
        index = self._param_index()
        state_dict = dict(self.optimizer.state_dict())
        state_dict["lookahead_state"] = {
            index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index and s
        }
        for hook in self._optimizer_state_dict_post_hooks.values():
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a dict from :meth:`state_dict` (or a plain inner state dict)."""
        state_dict = dict(state_dict)
        for hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        saved = state_dict.pop("lookahead_state", {})
        self.optimizer.load_state_dict(state_dict)
        params = list(chain.from_iterable(g["params"] for g in self.param_groups))
        by_index = dict(enumerate(_unique(params)))
        self.state = defaultdict(dict)
        for key, value in saved.items():
            p = by_index[int(key)]
            self.state[p] = {
                "step": int(value["step"]),
                "slow_param": value["slow_param"].to(device=p.device, dtype=p.dtype).clone(),
            }
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            self._check_group(group)
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)


def _unique(params: list[torch.Tensor]) -> list[torch.Tensor]:
    seen: set[int] = set()
    unique = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            unique.append(p)
    return unique
