"""Optimizers for ES gradient estimates and ordinary training loops.

All four are ``torch.optim.Optimizer`` subclasses: per-group hyperparameters, lr schedulers,
closures, hooks and ``state_dict`` round trips work as with torch's own optimizers. None of them
imports ``torch._dynamo`` unless the program compiles (see ``_dynamo_free.py``).
"""

from .clipup import ClipUp
from .ligi import Ligi
from .lookahead import Lookahead
from .ranger_lite import RangerLite

__all__ = ["ClipUp", "Ligi", "Lookahead", "RangerLite"]
