"""``TRLReward``: the ES objective built from what a TRL ``GRPOTrainer`` script already has.

A ``GRPOTrainer`` script holds a model, a tokenizer, a dataset with a ``"prompt"`` column and
reward functions with their weights. :class:`TRLReward` takes the same reward functions (and
reward models) and :class:`~es_opt.text.DatasetSampler` the same dataset, so switching the script
to ES changes only the trainer:

.. code-block:: python

    objective = TRLReward(tokenizer, reward_funcs, reward_weights=weights, max_new_tokens=64)
    es = ESOptimizer(model, optimizer, objective_fn=objective, sigma=1e-3, perturbation="lowrank")
    es.fit(DatasetSampler(dataset, tokenizer, batch_size=32), generations=500)

Each member completes the step's prompts (greedy by default), the reward functions score the
completions as ``GRPOTrainer`` does (:class:`~es_opt.text.RewardFunctions`: the prompts as the
dataset holds them, completions as text or as ``[{"role": "assistant", "content": …}]`` for
conversational prompts, the generated ids up to and including the end-of-text token, and every
other column), and the member's fitness is the mean combined reward over the prompts (or per
group of ``group_size`` prompts, :class:`~es_opt.text.TextReward`). A prompt every function
skipped (all returned ``None``) is left out of the mean, as TRL leaves it out of its baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .objective import Prompts, TextReward, _prompt_list
from .trl_rewards import RewardFunction, RewardFunctions

__all__ = ["TRLReward"]


class TRLReward(TextReward):
    """:class:`~es_opt.text.TextReward` whose reward is TRL's: functions with the signature
    ``(prompts, completions, completion_ids, **columns) -> list[float | None]`` and
    sequence-classification reward models, weighted as ``GRPOConfig.reward_weights``.

    Args:
        tokenizer: the policy's tokenizer (``GRPOTrainer``'s ``processing_class``), or any
            ``encode``/``decode`` tokenizer for plain prompts.
        reward_funcs: as ``GRPOTrainer(reward_funcs=...)``: a function, a model, or a list.
        reward_weights: as ``GRPOConfig(reward_weights=...)``.
        reward_processing_classes: as ``GRPOTrainer(reward_processing_classes=...)``: the
            tokenizer of each reward model.
        **kwargs: decoding and evaluation options of :class:`~es_opt.text.TextReward`
            (``max_new_tokens``, ``temperature``, ``group_size``, ``members_per_batch``,
            ``evaluation``, ``eos_token_id``, ``pad_token_id``).

    Samples are :class:`~es_opt.text.DatasetPrompts` (from
    :class:`~es_opt.text.DatasetSampler`), or plain :class:`~es_opt.text.Prompts`, whose
    functions then receive no columns.

    Example:
        >>> from es_opt.text import CharTokenizer
        >>> class Echo(nn.Module):  # always predicts the token "1" (id 3)
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.bias = nn.Parameter(torch.zeros(5))
        ...     def forward(self, ids):
        ...         return self.bias + torch.nn.functional.one_hot(torch.full_like(ids, 3), 5)
        >>> def ones(completions, **kwargs):
        ...     return [float(c.count("1")) for c in completions]
        >>> objective = TRLReward(CharTokenizer("01+"), [ones], reward_weights=[0.5],
        ...                       max_new_tokens=2)
        >>> objective(Echo(), Prompts(["1+0", "0+1"]))
        1.0
    """

    def __init__(
        self,
        tokenizer: Any,
        reward_funcs: RewardFunction | nn.Module | Sequence[RewardFunction | nn.Module],
        *,
        reward_weights: Sequence[float] | None = None,
        reward_processing_classes: Any = None,
        **kwargs: Any,
    ):
        functions = RewardFunctions(
            reward_funcs, weights=reward_weights, processing_classes=reward_processing_classes
        )
        super().__init__(tokenizer, functions, **kwargs)
        self.reward_functions = functions

    def prompt_ids(self, samples: Prompts) -> list[list[int]]:
        """Conversational prompts' ids as the chat template tokenized them; others encoded."""
        ids = getattr(samples, "prompt_ids", None)
        return super().prompt_ids(samples) if ids is None else [list(row) for row in ids]

    def _decode(self, ids: list[int]) -> str:
        """Up to the end-of-text token; special tokens skipped as TRL's ``batch_decode``."""
        ids = _until_eos(ids, self.eos_token_id, keep_eos=False)
        if callable(getattr(self.tokenizer, "batch_decode", None)):
            return self.tokenizer.decode(ids, skip_special_tokens=True)
        return self.tokenizer.decode(ids)

    def score(self, samples: Prompts, tokens: list[list[int]]) -> torch.Tensor:
        """``[P]`` combined rewards of one member's completions (``NaN`` where every function
        skipped the completion)."""
        raw = list(getattr(samples, "raw_prompts", None) or _prompt_list(samples))
        completion_ids = [_until_eos(row, self.eos_token_id, keep_eos=True) for row in tokens]
        texts = [self._decode(row) for row in tokens]
        if _conversational(raw[0]):
            completions: list[Any] = [[{"role": "assistant", "content": t}] for t in texts]
        else:
            completions = texts
        return self.reward_functions(
            raw,
            completions,
            completion_ids=completion_ids,
            columns=getattr(samples, "columns", None),
        )

    def rewards(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        """``[P]`` combined rewards of plain-text prompts and completions (no columns)."""
        return self.reward_functions(list(prompts), list(completions))

    def fitness(self, rewards: torch.Tensor) -> torch.Tensor:
        """Rewards ``[..., P]`` → the mean over each group's scored prompts (``NaN`` left out);
        a group with no scored prompt is a ``ValueError``."""
        groups = self._n_groups(rewards.shape[-1])
        grouped = rewards.reshape(*rewards.shape[:-1], groups, -1)
        if grouped.isnan().all(-1).any():
            raise ValueError(
                "every reward function returned None for every prompt of a group: the member "
                f"cannot be scored (reward functions {self.reward_functions.names})"
            )
        return grouped.nanmean(-1)

    def __repr__(self) -> str:
        return (
            f"TRLReward({self.reward_functions.names}, weights={self.reward_functions.weights}, "
            f"max_new_tokens={self.max_new_tokens}, temperature={self.temperature}, "
            f"group_size={self.group_size}, evaluation={self.evaluation!r})"
        )


def _until_eos(ids: Sequence[int], eos: int | None, *, keep_eos: bool) -> list[int]:
    ids = list(ids)
    if eos is not None and eos in ids:
        return ids[: ids.index(eos) + int(keep_eos)]
    return ids


def _conversational(prompt: Any) -> bool:
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], dict)
