"""Prompts from a ``datasets.Dataset`` in TRL's format: a ``"prompt"`` column, other columns kept.

TRL's ``GRPOTrainer`` reads a dataset with a ``"prompt"`` column, either plain text
(``"12+34="``) or conversational (``[{"role": "user", "content": "12+34="}]``, rendered with the
tokenizer's chat template and ``add_generation_prompt=True``), and passes every other column to
the reward functions as keyword arguments. :class:`DatasetPrompts` carries one step's rows in that
form (the text to complete, the prompts as the reward functions see them, their token ids, the
other columns); :class:`DatasetSampler` draws one batch per ES generation: the rows of a seeded
permutation of the dataset, ``batch_size`` at a time, a new permutation each epoch
(TRL shuffles its training set the same way), and :func:`dataset_prompts` takes given rows (a
held-out set, in order).

Nothing here imports ``datasets``: anything with ``column_names``, ``len`` and row access by a
list of indices (``dataset[[3, 1]]`` → a dict of columns) works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..noise import derive_seed
from .objective import Prompts

__all__ = ["DatasetPrompts", "DatasetSampler", "dataset_prompts"]

SHUFFLE_STREAM = 105
DECODING_STREAM = 106


@dataclass
class DatasetPrompts(Prompts):
    """One step's rows of a TRL-format dataset.

    Attributes:
        prompts: the text each completion continues (a conversational prompt rendered with the
            chat template).
        seed: seed of sampled decoding (unused when greedy).
        raw_prompts: the ``"prompt"`` column's values, as TRL's reward functions receive them.
        prompt_ids: token ids of conversational prompts (the chat template tokenized, as TRL
            does); ``None`` for plain prompts, which the objective encodes itself.
        columns: every other column, one value per prompt.
    """

    raw_prompts: list[Any] = field(default_factory=list)
    prompt_ids: list[list[int]] | None = None
    columns: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def conversational(self) -> bool:
        """Whether the prompts are lists of chat messages."""
        return bool(self.raw_prompts) and _is_conversational(self.raw_prompts[0])


def dataset_prompts(
    dataset: Any,
    tokenizer: Any = None,
    indices: Sequence[int] | None = None,
    *,
    seed: int = 0,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> DatasetPrompts:
    """The rows ``indices`` (default: all, in order) of ``dataset`` as :class:`DatasetPrompts`.

    Args:
        dataset: a ``datasets.Dataset`` with a ``"prompt"`` column.
        tokenizer: needed for conversational prompts: its ``apply_chat_template`` renders them.
        indices: the rows.
        seed: the samples' decoding seed.
        chat_template_kwargs: extra arguments of ``apply_chat_template`` (``GRPOConfig``'s).

    Example:
        >>> from datasets import Dataset
        >>> data = Dataset.from_dict({"prompt": ["1+1=", "2+2="], "answer": ["2", "4"]})
        >>> rows = dataset_prompts(data, indices=[1])
        >>> rows.prompts, rows.columns
        (['2+2='], {'answer': ['4']})
    """
    names = _column_names(dataset)
    rows = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    if not rows:
        raise ValueError("indices must select at least one row")
    for index in rows:
        if not 0 <= index < len(dataset):
            raise IndexError(f"row {index} is out of range for a dataset of {len(dataset)} rows")
    batch = dataset[rows]
    raw = list(batch["prompt"])
    columns = {name: list(batch[name]) for name in names if name != "prompt"}
    kinds = {_is_conversational(p) for p in raw}
    if len(kinds) > 1:
        raise ValueError("the 'prompt' column mixes plain text and chat messages")
    if kinds == {False}:
        for index, prompt in zip(rows, raw, strict=True):
            if not isinstance(prompt, str):
                raise TypeError(
                    f"row {index}: a prompt is a string or a list of chat messages, got "
                    f"{type(prompt).__name__} {prompt!r:.60}"
                )
        return DatasetPrompts(prompts=raw, seed=seed, raw_prompts=raw, columns=columns)
    if tokenizer is None or not callable(getattr(tokenizer, "apply_chat_template", None)):
        raise ValueError(
            "conversational prompts need a tokenizer with apply_chat_template (a transformers "
            f"tokenizer with a chat template), got {tokenizer!r}"
        )
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            "the tokenizer has no chat template (tokenizer.chat_template is None): set one to "
            "render conversational prompts"
        )
    kwargs = dict(chat_template_kwargs or {})
    texts = [
        tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True, **kwargs)
        for p in raw
    ]
    ids = [
        list(
            tokenizer.apply_chat_template(
                p, tokenize=True, add_generation_prompt=True, return_dict=True, **kwargs
            )["input_ids"]
        )
        for p in raw
    ]
    return DatasetPrompts(
        prompts=texts, seed=seed, raw_prompts=raw, prompt_ids=ids, columns=columns
    )


class DatasetSampler:
    """``sampler(generation)`` → that generation's :class:`DatasetPrompts`, for
    ``ESOptimizer.fit``: batch ``g`` is rows ``[gB, (g+1)B)`` of the concatenated seeded
    permutations of the dataset (epoch ``e`` permuted by a generator seeded with
    ``derive_seed(seed, 105, e)``), so every row is seen once per epoch.

    Args:
        dataset: a ``datasets.Dataset`` with a ``"prompt"`` column.
        tokenizer: for conversational prompts (see :func:`dataset_prompts`).
        batch_size: prompts per generation.
        seed: seeds the permutations and each batch's decoding seed.
        shuffle: ``False`` walks the rows in order.
        chat_template_kwargs: extra arguments of ``apply_chat_template``.

    Example:
        >>> from datasets import Dataset
        >>> sampler = DatasetSampler(Dataset.from_dict({"prompt": list("abc")}), batch_size=2,
        ...                          shuffle=False)
        >>> [sampler(g).prompts for g in range(3)]
        [['a', 'b'], ['c', 'a'], ['b', 'c']]
    """

    def __init__(
        self,
        dataset: Any,
        tokenizer: Any = None,
        *,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        chat_template_kwargs: Mapping[str, Any] | None = None,
    ):
        _column_names(dataset)
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if len(dataset) == 0:
            raise ValueError("the dataset has no rows")
        self.dataset, self.tokenizer = dataset, tokenizer
        self.batch_size, self.seed, self.shuffle = int(batch_size), int(seed), bool(shuffle)
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self._permutation: tuple[int, torch.Tensor] | None = None  # (epoch, its order)
        dataset_prompts(dataset, tokenizer, [0], chat_template_kwargs=self.chat_template_kwargs)

    def indices(self, generation: int) -> list[int]:
        """The rows of ``generation``'s batch."""
        n = len(self.dataset)
        first = generation * self.batch_size
        rows = []
        for position in range(first, first + self.batch_size):
            epoch, offset = divmod(position, n)
            rows.append(int(self._order(epoch)[offset]))
        return rows

    def _order(self, epoch: int) -> torch.Tensor:
        n = len(self.dataset)
        if not self.shuffle:
            return torch.arange(n)
        if self._permutation is None or self._permutation[0] != epoch:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, SHUFFLE_STREAM, epoch))
            self._permutation = (epoch, torch.randperm(n, generator=gen))
        return self._permutation[1]

    def __call__(self, generation: int) -> DatasetPrompts:
        if isinstance(generation, bool) or int(generation) < 0:
            raise ValueError(f"generation must be >= 0, got {generation}")
        return dataset_prompts(
            self.dataset,
            self.tokenizer,
            self.indices(int(generation)),
            seed=derive_seed(self.seed, DECODING_STREAM, int(generation)),
            chat_template_kwargs=self.chat_template_kwargs,
        )


def _column_names(dataset: Any) -> list[str]:
    names = getattr(dataset, "column_names", None)
    if names is None or not callable(getattr(dataset, "__getitem__", None)):
        raise TypeError(
            "dataset must be a datasets.Dataset (column_names, rows by a list of indices), got "
            f"{type(dataset).__name__}"
        )
    if "prompt" not in names:
        raise ValueError(f"the dataset needs a 'prompt' column (TRL's format), has {list(names)}")
    return list(names)


def _is_conversational(prompt: Any) -> bool:
    return (
        isinstance(prompt, list)
        and bool(prompt)
        and isinstance(prompt[0], Mapping)
        and "role" in prompt[0]
    )
