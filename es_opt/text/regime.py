"""The regime report: does sampling from the base model ever find the reward?

GRPO (Shao et al. 2024, arXiv 2402.03300) samples a group of ``G`` completions per prompt and
moves the policy by the advantages ``(r_i − mean_group r) / std_group r``: a group whose rewards
are all equal contributes nothing. Before any training, :func:`regime_report` samples ``n``
completions per prompt at a temperature and reports

- ``greedy_pass``: the fraction of prompts the greedy completion passes (reward ≥ ``threshold``);
- ``pass_at_k``: the unbiased pass@k of Chen et al. 2021 (arXiv 2107.03374),
  ``1 − C(n − c, k) / C(n, k)`` averaged over prompts, ``c`` passing samples out of ``n``;
- ``groups_with_variance``: the fraction of prompts whose ``n`` sampled rewards are not all equal
  (GRPO's groups that carry a gradient when ``G = n``).

What the regime predicts (measured in docs/text.md): when most groups carry a gradient
(``"sampled"``), the policy gradient assigns credit token by token and beats ES at equal
compute; when almost none do (``"sparse"``, below ``sparse_below``), GRPO's advantages are
zero until it samples a rare success, while ES members, which differ in their parameters rather
than in their sampled tokens, can still find rewarded answers (Qiu et al. 2025, arXiv
2509.24372: Countdown, where PPO and GRPO stay near the base model). GRPO stalls only while
pass@1 times the number of completions it samples stays well below 1: estimate pass@1 with a
large ``n_samples``. ``"solved"``: the greedy model passes nearly everything already.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import torch

from .objective import Prompts, TextReward

__all__ = ["RegimeReport", "pass_at_k", "regime_report"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of ``k`` of ``n`` samples, ``c`` of which pass, passes:
    ``1 − C(n − c, k) / C(n, k)`` (Chen et al. 2021).

    Example:
        >>> pass_at_k(8, 1, 1), pass_at_k(8, 1, 8), pass_at_k(4, 2, 2)
        (0.125, 1.0, 0.8333333333333334)
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass(frozen=True)
class RegimeReport:
    """The base model's numbers on one batch of prompts (see the module docstring)."""

    greedy_pass: float
    pass_at_k: dict[int, float]
    groups_with_variance: float
    n_samples: int
    temperature: float
    regime: str

    def summary(self) -> str:
        """One paragraph: the numbers and what the regime predicts for ES against GRPO."""
        passes = ", ".join(f"pass@{k} {v:.1%}" for k, v in self.pass_at_k.items())
        prediction = {
            "solved": "the greedy model already passes nearly every prompt: little to learn",
            "sampled": "sampling finds the reward in most groups: GRPO's token-level credit "
            "assignment is expected to beat ES at equal compute",
            "sparse": "sampling almost never finds the reward: GRPO's group advantages stay "
            "zero until it samples a rare success, so it stalls only while pass@1 times the "
            "completions it samples is well below 1; ES members differ in their weights and "
            "may find rewarded answers sampling does not (check with the sigma probe)",
            "mixed": "some groups carry a gradient: GRPO learns from those; measure both",
        }[self.regime]
        return (
            f"regime {self.regime!r}: greedy pass {self.greedy_pass:.1%}; at temperature "
            f"{self.temperature:g} with {self.n_samples} samples per prompt: {passes}; "
            f"{self.groups_with_variance:.1%} of prompt groups have reward variance. "
            f"{prediction}."
        )


def regime_report(
    net: torch.nn.Module,
    objective: TextReward,
    samples: Prompts,
    *,
    n_samples: int = 8,
    temperature: float = 1.0,
    ks: tuple[int, ...] = (1, 8),
    threshold: float = 1.0,
    sparse_below: float = 0.05,
    sampled_above: float = 0.5,
    solved_above: float = 0.95,
) -> RegimeReport:
    """Samples ``n_samples`` completions per prompt of ``samples`` (seeded by ``samples.seed``:
    each copy of a prompt has its own Gumbel stream) and classifies the regime.

    Args:
        net: the base model.
        objective: the ES objective (its decoding, tokenizer and reward; its own temperature is
            used for ``greedy_pass``).
        samples: prompts (:class:`~es_opt.text.Prompts` or
            :class:`~es_opt.text.DatasetPrompts`).
        n_samples: completions per prompt (GRPO's group size ``G``).
        temperature: sampling temperature.
        ks: the k of pass@k (each at most ``n_samples``).
        threshold: a completion passes when its reward is at least this.
        sparse_below / sampled_above: fractions of groups with variance that bound the
            ``"sparse"`` and ``"sampled"`` regimes (``"mixed"`` between them).
        solved_above: a greedy pass rate at or above this is ``"solved"``.

    Example:
        >>> from torch import nn
        >>> from es_opt.text import CharTokenizer
        >>> net = nn.Sequential(nn.Embedding(4, 4), nn.Linear(4, 4))
        >>> objective = TextReward(CharTokenizer("01"), lambda p, c: float(c == "1"),
        ...                        max_new_tokens=1)
        >>> report = regime_report(net, objective, Prompts(["0", "1"]), ks=(1, 4))
        >>> sorted(report.pass_at_k)
        [1, 4]
    """
    if int(n_samples) < 2:
        raise ValueError(f"n_samples must be at least 2 (a group), got {n_samples}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    for k in ks:
        if not 1 <= k <= n_samples:
            raise ValueError(f"every k must be in [1, n_samples={n_samples}], got {k}")
    greedy = objective.score(samples, objective.generated_tokens(net, samples)[0])
    sampler = copy.copy(objective)
    sampler.temperature = float(temperature)
    repeated = _repeat(samples, n_samples)
    rewards = sampler.score(repeated, sampler.generated_tokens(net, repeated)[0])
    rewards = rewards.view(-1, n_samples)
    passed = (rewards >= threshold).sum(dim=1).tolist()
    at_k = {
        int(k): sum(pass_at_k(n_samples, int(c), int(k)) for c in passed) / len(passed) for k in ks
    }
    finite = rewards.nan_to_num(0.0)
    varied = float((finite != finite[:, :1]).any(dim=1).float().mean())
    greedy_pass = float((greedy >= threshold).float().mean())
    if greedy_pass >= solved_above:
        regime = "solved"
    elif varied < sparse_below:
        regime = "sparse"
    elif varied >= sampled_above:
        regime = "sampled"
    else:
        regime = "mixed"
    return RegimeReport(greedy_pass, at_k, varied, int(n_samples), float(temperature), regime)


def _repeat(samples: Prompts, n: int) -> Prompts:
    """Each prompt ``n`` times in a row (and every per-prompt field of the samples with it)."""
    changes = {}
    for item in dataclasses.fields(samples):
        value = getattr(samples, item.name)
        if item.name == "columns" and isinstance(value, dict):
            changes[item.name] = {k: [v for v in vs for _ in range(n)] for k, vs in value.items()}
        elif isinstance(value, list) and len(value) == len(samples.prompts):
            changes[item.name] = [v for v in value for _ in range(n)]
    return dataclasses.replace(samples, **changes)
