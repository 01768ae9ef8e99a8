"""Two-digit addition as a text task: problems from seeds, and an exact-match reward.

A problem is ``"ab+cd="`` (operands zero-padded to two digits) and its answer the three-digit,
zero-padded sum (``"07+45="`` → ``"052"``). Problems split by whether the units carry, which lets a
small model be pre-trained on mostly carry-free sums and then fine-tuned on the sums that carry
(a shifted, harder distribution), as in ``sample_scripts/finetune.py``.

Example:
    >>> problems = addition_problems(3, seed=0, carry=True)
    >>> [(p, answer(p)) for p in problems][:1]
    [('69+56=', '125')]
    >>> exact_match("07+45=", "052"), exact_match("07+45=", "52")
    (1.0, 0.0)
"""

from __future__ import annotations

import torch

from ..noise import derive_seed

__all__ = [
    "ALPHABET",
    "addition_problems",
    "answer",
    "exact_match",
    "has_carry",
    "held_out",
]

ALPHABET = "0123456789+="
TASK_STREAM = 103


def answer(prompt: str) -> str:
    """The zero-padded three-digit sum of a prompt ``"ab+cd="``."""
    left, right = prompt.rstrip("=").split("+")
    return f"{int(left) + int(right):03d}"


def has_carry(a: int, b: int) -> bool:
    return a % 10 + b % 10 >= 10


def exact_match(prompt: str, completion: str) -> float:
    """1.0 when ``completion`` is exactly the answer, else 0.0."""
    return float(completion == answer(prompt))


def held_out(a: int, b: int) -> bool:
    """Whether ``a + b`` belongs to the held-out fifth of the 10,000 problems (a fixed
    pseudo-random split: training never sees a held-out problem)."""
    return derive_seed(0, TASK_STREAM, a, b) % 5 == 0


def addition_problems(
    n: int,
    seed: int,
    *,
    carry: bool | None = None,
    carry_fraction: float | None = None,
    split: str = "train",
) -> list[str]:
    """``n`` prompts drawn from a generator seeded with ``seed``.

    Args:
        carry: only sums whose units carry (``True``), only carry-free sums (``False``), or any.
        carry_fraction: instead of ``carry``, the fraction of carrying sums in the draw.
        split: ``"train"`` or ``"test"`` (see :func:`held_out`).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    gen = torch.Generator().manual_seed(derive_seed(seed, TASK_STREAM))
    out: list[str] = []
    while len(out) < n:
        a, b, coin = torch.randint(0, 100, (3,), generator=gen).tolist()
        want = carry if carry_fraction is None else coin < 100 * carry_fraction
        if want is not None and has_carry(a, b) != want:
            continue
        if held_out(a, b) != (split == "test"):
            continue
        out.append(f"{a:02d}+{b:02d}=")
    return out
