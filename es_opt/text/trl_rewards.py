"""Rewards with TRL's signature, combined as TRL's ``GRPOTrainer`` combines them.

A Hugging Face TRL reward function is called on a batch of completions,
``func(prompts=..., completions=..., completion_ids=..., **columns) -> list[float | None]``, with
the dataset's other columns as keyword arguments (one value per completion); a reward model is a
sequence-classification ``transformers.PreTrainedModel`` whose first logit on
``prompt + completion`` is the reward. ``GRPOTrainer(reward_funcs=[f_1, …, f_K],
args=GRPOConfig(reward_weights=[w_1, …, w_K]))`` scores completion ``i`` by

.. math::

    r_i = \\sum_{k:\\, r_{ik} \\ne \\mathrm{None}} w_k \\, r_{ik}

(its default ``multi_objective_aggregation="sum_then_normalize"``; a function returns ``None`` for
a completion it does not apply to, and a completion every function skips is unscorable).
:class:`RewardFunctions` computes exactly this, so the same functions drive
:class:`~es_opt.text.TRLReward` (the ES fitness is the mean of ``r_i`` over the step's prompts).
Reference: von Werra et al., *TRL: Transformer Reinforcement Learning* (GRPOTrainer,
``_calculate_rewards``); Shao et al. 2024, *DeepSeekMath* (GRPO), arXiv 2402.03300.

Nothing here imports ``transformers`` or ``trl``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["RewardFunctions", "reward_model_scores"]

RewardFunction = Callable[..., Sequence[Any]]


class RewardFunctions:
    """Reward functions and reward models with TRL's signature, and their weights.

    Args:
        reward_funcs: one, or a list of: callables ``(prompts, completions, completion_ids,
            **columns) -> list[float | None]`` (TRL's signature: accept ``**kwargs``), or
            sequence-classification models (``transformers.PreTrainedModel`` or any
            ``nn.Module`` returning ``.logits``; the reward is ``logits[:, 0]``).
        weights: ``GRPOConfig.reward_weights``: one weight per function (default: all 1).
        processing_classes: ``GRPOTrainer``'s ``reward_processing_classes``: the tokenizer of
            each reward model (``None`` for a plain function). As TRL does, a tokenizer without
            a padding token gets its end-of-text token, and the model's ``config.pad_token_id``
            is set to the tokenizer's (the model scores the last non-padding token).

    Example:
        >>> def exact(prompts, completions, answer, **kwargs):
        ...     return [float(c == a) for c, a in zip(completions, answer)]
        >>> def short(completions, **kwargs):
        ...     return [None if c == "" else -0.1 * len(c) for c in completions]
        >>> rewards = RewardFunctions([exact, short], weights=[1.0, 0.5])
        >>> rewards(["1+1="] * 2, ["2", "11"], columns={"answer": ["2", "2"]}).tolist()
        [0.95, -0.1]
    """

    def __init__(
        self,
        reward_funcs: RewardFunction | nn.Module | Sequence[RewardFunction | nn.Module],
        *,
        weights: Sequence[float] | None = None,
        processing_classes: Any = None,
    ):
        funcs = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
        if not funcs:
            raise ValueError("reward_funcs must hold at least one reward function or model")
        for index, func in enumerate(funcs):
            if isinstance(func, str):
                raise TypeError(
                    f"reward_funcs[{index}] is the model name {func!r}: nothing is downloaded "
                    "here; load the model (AutoModelForSequenceClassification.from_pretrained("
                    "..., num_labels=1, local_files_only=True)) and pass it with its tokenizer "
                    "in processing_classes"
                )
            if not callable(func):
                raise TypeError(
                    f"reward_funcs[{index}] must be a callable (prompts, completions, **kwargs) "
                    f"-> list[float] or a sequence-classification model, got {func!r}"
                )
        weights = [1.0] * len(funcs) if weights is None else list(weights)
        if len(weights) != len(funcs):
            raise ValueError(
                f"weights has {len(weights)} values for {len(funcs)} reward functions (one "
                "weight per function, as GRPOConfig.reward_weights)"
            )
        for index, weight in enumerate(weights):
            if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
                raise TypeError(f"weights[{index}] must be a real number, got {weight!r}")
            if not math.isfinite(weight):
                raise ValueError(f"weights[{index}] must be finite, got {weight}")
        if processing_classes is None:
            classes = [None] * len(funcs)
        elif isinstance(processing_classes, (list, tuple)):
            classes = list(processing_classes)
        else:
            classes = [processing_classes]
        if len(classes) != len(funcs):
            raise ValueError(
                f"processing_classes has {len(classes)} entries for {len(funcs)} reward "
                "functions (one per function, None for a plain function)"
            )
        for index, (func, tokenizer) in enumerate(zip(funcs, classes, strict=True)):
            if isinstance(func, nn.Module):
                _prepare_reward_model(index, func, tokenizer)
        self.funcs, self.weights, self.processing_classes = funcs, weights, classes
        self.names = [_name(func) for func in funcs]

    def per_function(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        *,
        completion_ids: Sequence[Sequence[int]] | None = None,
        columns: Mapping[str, Sequence[Any]] | None = None,
    ) -> torch.Tensor:
        """``[N, K]`` float64 rewards of each completion by each function, ``NaN`` where a
        function returned ``None``.

        Args:
            prompts: the prompt of each completion (a string, or a list of chat messages).
            completions: the completions (strings, or ``[{"role": "assistant", "content": …}]``
                for conversational prompts).
            completion_ids: the generated token ids of each completion (TRL's
                ``completion_ids``); ``None`` passes nothing.
            columns: the dataset's other columns, one value per completion each.
        """
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"got {len(prompts)} prompts for {n} completions")
        kwargs: dict[str, Any] = {}
        for key, values in (columns or {}).items():
            if key in ("prompts", "completions", "completion_ids"):
                raise ValueError(f"a column may not be named {key!r} (a reward function argument)")
            if len(values) != n:
                raise ValueError(f"column {key!r} has {len(values)} values for {n} completions")
            kwargs[key] = list(values)
        if completion_ids is not None:
            kwargs["completion_ids"] = [list(ids) for ids in completion_ids]
        out = torch.empty(n, len(self.funcs), dtype=torch.float64)
        pairs = zip(self.funcs, self.processing_classes, strict=True)
        for k, (func, tokenizer) in enumerate(pairs):
            if isinstance(func, nn.Module):
                values = reward_model_scores(func, tokenizer, prompts, completions)
            else:
                values = func(prompts=list(prompts), completions=list(completions), **kwargs)
            out[:, k] = torch.tensor(_checked(self.names[k], values, n), dtype=torch.float64)
        return out

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        *,
        completion_ids: Sequence[Sequence[int]] | None = None,
        columns: Mapping[str, Sequence[Any]] | None = None,
    ) -> torch.Tensor:
        """``[N]`` float64 rewards ``r_i = Σ_k w_k r_ik`` over the functions that scored
        completion ``i``; ``NaN`` where every function returned ``None`` (arguments as
        :meth:`per_function`)."""
        scores = self.per_function(
            prompts, completions, completion_ids=completion_ids, columns=columns
        )
        weights = torch.tensor(self.weights, dtype=torch.float64)
        combined = (scores * weights).nansum(dim=1)
        return combined.masked_fill(scores.isnan().all(dim=1), math.nan)

    def __repr__(self) -> str:
        return f"RewardFunctions({self.names}, weights={self.weights})"


def reward_model_scores(
    model: nn.Module, tokenizer: Any, prompts: Sequence[Any], completions: Sequence[Any]
) -> list[float]:
    """A sequence-classification model's reward for each completion, as ``GRPOTrainer`` computes
    it: ``logits[:, 0]`` of ``prompt + completion`` (conversational: the tokenizer's chat
    template over the prompt's messages and the completion's), tokenized with right padding and
    no special tokens added, without gradients.

    Example:
        >>> import transformers
        >>> from es_opt.text import char_tokenizer_fast
        >>> tokenizer = char_tokenizer_fast("0123456789+=")
        >>> config = transformers.GPT2Config(vocab_size=14, n_positions=16, n_embd=8, n_layer=1,
        ...                                  n_head=2, num_labels=1, pad_token_id=0)
        >>> model = transformers.GPT2ForSequenceClassification(config).eval()
        >>> scores = reward_model_scores(model, tokenizer, ["1+1=", "12+3="], ["2", "15"])
        >>> alone = model(tokenizer("1+1=2", return_tensors="pt")["input_ids"]).logits[0, 0]
        >>> abs(scores[0] - alone.item()) < 1e-6
        True
    """
    config = getattr(model, "config", None)
    if config is not None:
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        if text_config.pad_token_id != tokenizer.pad_token_id:
            raise ValueError(
                f"the reward model's config.pad_token_id ({text_config.pad_token_id}) is not the "
                f"tokenizer's ({tokenizer.pad_token_id}): the model would score a padding token "
                "(RewardFunctions sets it, as GRPOTrainer does)"
            )
    if _conversational(prompts[0]):
        texts = [
            tokenizer.apply_chat_template(list(p) + list(c), tokenize=False)
            for p, c in zip(prompts, completions, strict=True)
        ]
    else:
        texts = [p + c for p, c in zip(prompts, completions, strict=True)]
    inputs = tokenizer(
        text=texts,
        return_tensors="pt",
        padding=True,
        padding_side="right",
        add_special_tokens=False,
    )
    device = next(iter(model.parameters())).device
    with torch.inference_mode():
        logits = model(**{key: value.to(device) for key, value in inputs.items()}).logits
    return logits[:, 0].double().tolist()


def _prepare_reward_model(index: int, model: nn.Module, tokenizer: Any) -> None:
    if tokenizer is None:
        raise ValueError(
            f"reward_funcs[{index}] is a model: give its tokenizer in processing_classes[{index}] "
            "(nothing is downloaded, so it cannot be looked up by the model's name)"
        )
    if not callable(tokenizer):
        raise TypeError(
            f"processing_classes[{index}] must be a transformers tokenizer (callable on text), "
            f"got {tokenizer!r}"
        )
    if getattr(tokenizer, "pad_token_id", None) is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = getattr(model, "config", None)
    if config is not None:
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        text_config.pad_token_id = tokenizer.pad_token_id


def _checked(name: str, values: Any, n: int) -> list[float]:
    """``values`` as floats (``None`` → NaN), or a clear error naming the function."""
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)):
        raise TypeError(
            f"reward function {name!r} must return a list of rewards (one per completion), "
            f"got {type(values).__name__} {values!r:.60}"
        )
    if len(values) != n:
        raise ValueError(
            f"reward function {name!r} returned {len(values)} rewards for {n} completions (one "
            "per completion)"
        )
    out = []
    for index, value in enumerate(values):
        if value is None:
            out.append(math.nan)
            continue
        if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"reward function {name!r} returned {type(value).__name__} {value!r:.40} for "
                f"completion {index}: a reward is a real number, or None to skip the completion"
            )
        if not math.isfinite(value):
            raise ValueError(
                f"reward function {name!r} returned {value} for completion {index}: return None "
                "to skip a completion"
            )
        out.append(float(value))
    return out


def _conversational(prompt: Any) -> bool:
    """TRL's ``is_conversational``: a list of ``{"role": …, "content": …}`` messages."""
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], dict)


def _name(func: Any) -> str:
    if isinstance(func, nn.Module):
        config = getattr(func, "config", None)
        return str(getattr(config, "_name_or_path", "") or type(func).__name__).split("/")[-1]
    return getattr(func, "__name__", None) or type(func).__name__
