"""A ``torch.optim.Optimizer`` base whose own methods never import ``torch._dynamo`` eagerly.

Why: torch decorates ``Optimizer.add_param_group``, ``zero_grad``, ``state_dict`` and
``load_state_dict`` with ``torch._disable_dynamo`` (so that ``torch.compile`` does not trace
them). That wrapper imports ``torch._dynamo`` on its first call, and ``Optimizer.__init__`` calls
``add_param_group``: constructing any torch optimizer therefore costs the import of the compiler
stack (seconds on CPU), also in programs that never compile anything. (``step`` is not affected:
``Optimizer.profile_hook_step`` only records a profiler range and runs the step hooks.)

How: ``torch._disable_dynamo`` keeps the undecorated function as ``__wrapped__``
(``functools.wraps``). Outside compilation this class calls those undecorated functions (the very
same code, so behaviour is unchanged); while ``torch.compile`` traces (``torch.compiler.
is_compiling()``, which imports nothing) it calls torch's decorated methods, so a compiled program
sees exactly what it sees with torch's own optimizers. The optimizers stay real
``torch.optim.Optimizer`` subclasses: hooks, schedulers and ``isinstance`` checks are untouched.

Only es_opt's own methods are covered: a torch optimizer built by the user (``torch.optim.Adam``
inside :class:`~es_opt.optim.Lookahead`, say) still imports ``torch._dynamo`` when constructed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim.optimizer import Optimizer

__all__ = ["DynamoFreeOptimizer"]


def _undecorated(method: Callable[..., Any]) -> Callable[..., Any]:
    """The function torch's ``_disable_dynamo`` wraps (the method itself if it is not wrapped)."""
    return getattr(method, "__wrapped__", method)


_ADD_PARAM_GROUP = _undecorated(Optimizer.add_param_group)
_ZERO_GRAD = _undecorated(Optimizer.zero_grad)
_STATE_DICT = _undecorated(Optimizer.state_dict)
_LOAD_STATE_DICT = _undecorated(Optimizer.load_state_dict)


class DynamoFreeOptimizer(Optimizer):
    """``torch.optim.Optimizer`` with ``torch._dynamo`` imported only when a program compiles.

    See the module docstring for why and how; the methods below behave as torch's.
    """

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group (see ``torch.optim.Optimizer.add_param_group``)."""
        if torch.compiler.is_compiling():
            super().add_param_group(param_group)
        else:
            _ADD_PARAM_GROUP(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients (see ``torch.optim.Optimizer.zero_grad``)."""
        if torch.compiler.is_compiling():
            super().zero_grad(set_to_none)
        else:
            _ZERO_GRAD(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """The optimizer state (see ``torch.optim.Optimizer.state_dict``)."""
        if torch.compiler.is_compiling():
            return super().state_dict()
        return _STATE_DICT(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load optimizer state (see ``torch.optim.Optimizer.load_state_dict``)."""
        if torch.compiler.is_compiling():
            super().load_state_dict(state_dict)
        else:
            _LOAD_STATE_DICT(self, state_dict)
