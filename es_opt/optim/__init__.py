"""Optimizers for ES gradient estimates and ordinary training loops.

All three are ``torch.optim.Optimizer`` subclasses: per-group hyperparameters, lr schedulers,
closures, hooks and ``state_dict`` round trips work as with torch's own optimizers.
"""

from .ligi import Ligi
from .lookahead import Lookahead
from .ranger_lite import RangerLite

__all__ = ["Ligi", "Lookahead", "RangerLite"]
