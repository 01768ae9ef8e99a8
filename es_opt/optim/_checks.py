"""Argument checks of the optimizers, in torch's message style.

torch's optimizers raise ``ValueError(f"Invalid learning rate: {lr}")`` for a bad hyperparameter,
whatever its kind, and users of ``torch.optim`` match on that; so every check here raises
``ValueError`` with a message that starts with ``Invalid``, names the argument and shows the value.
What counts as a number comes from the package-wide vocabulary (:func:`es_opt._validation.is_real`,
:func:`es_opt._validation.is_int`: a ``bool`` is neither).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .._validation import is_int, is_real

__all__ = [
    "check_betas",
    "check_lr",
    "check_non_negative",
    "check_optional_positive",
    "check_positive_int",
    "check_unit_interval",
]


def check_lr(lr: Any) -> None:
    """A learning rate: a real number >= 0 (not a tensor)."""
    if isinstance(lr, Tensor) or not is_real(lr) or not lr >= 0.0:
        raise ValueError(f"Invalid learning rate (lr): {lr!r}; expected a float >= 0")


def check_betas(betas: Any) -> None:
    """A pair of coefficients, each in [0, 1)."""
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"Invalid betas: {betas!r}; expected a pair of floats in [0, 1)") from None
    for index, beta in enumerate((beta1, beta2)):
        if not is_real(beta) or not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index} (betas): {beta!r}")


def check_non_negative(name: str, value: Any) -> None:
    """A real number >= 0."""
    if not is_real(value) or not value >= 0.0:
        raise ValueError(f"Invalid {name}: {value!r}; expected a float >= 0")


def check_unit_interval(name: str, value: Any, *, low_open: bool, high_open: bool = False) -> None:
    """A real number in [0, 1], with the ends open as asked (``low_open``: (0, 1], ...)."""
    ok = is_real(value)
    if ok:
        ok = (0.0 < value if low_open else 0.0 <= value) and (
            value < 1.0 if high_open else value <= 1.0
        )
    if not ok:
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ValueError(f"Invalid {name}: {value!r}; expected a number in {interval}")


def check_positive_int(name: str, value: Any) -> None:
    """An int >= 1 (``True`` and ``2.0`` are refused)."""
    if not is_int(value) or value < 1:
        raise ValueError(f"Invalid {name}: {value!r}; expected a positive int")


def check_optional_positive(name: str, value: Any) -> None:
    """``None`` or a real number > 0."""
    if value is not None and (not is_real(value) or not value > 0.0):
        raise ValueError(f"Invalid {name}: {value!r}; expected None or a float > 0")
