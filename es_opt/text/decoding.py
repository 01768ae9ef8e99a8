"""Decoding for a population: many members × many prompts in one batched forward per token.

Rows are laid out member-major: row ``m · P + p`` is member ``m`` answering prompt ``p``, so a
module that applies a different perturbation to each member (:func:`es_opt.text.batched_members`)
reshapes its input to ``[M, rows per member, …]``.

Two kinds of model are decoded:

- a ``transformers`` ``PreTrainedModel`` (any causal LM): prompts are left-padded, with an
  attention mask and explicit position ids, and decoded with its key/value cache (one token per
  forward after the prompt);
- a plain ``nn.Module`` LM, called as ``net(input_ids)`` with ``input_ids`` a ``LongTensor[B, T]``
  and returning the logits ``[B, T, V]`` (or a tuple, or an object with ``.logits``, holding
  them). It has no cache: each token recomputes the whole sequence, and prompts are grouped by
  length so that a plain LM never sees padding.

Greedy decoding takes the arg-max token. Sampled decoding at temperature ``τ`` takes
``argmax(logits/τ + G)`` with Gumbel noise ``G`` (the Gumbel-max trick: a draw from
``softmax(logits/τ)``), drawn from a ``torch.Generator`` seeded with
``derive_seed(seed, prompt)``: each prompt has its own stream, shared by all members (common
random numbers, so members differ only through their parameters), and a row's tokens do not
depend on which other rows are decoded with it. No global random state is touched.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..noise import derive_seed

__all__ = ["generate", "is_transformers_model", "logits_of"]

GUMBEL_STREAM = 101
"""Stream number hashed with the decoding seed (es_opt.noise uses small numbers for its own)."""


def is_transformers_model(net: nn.Module) -> bool:
    """Whether ``net`` is a ``transformers`` ``PreTrainedModel`` (never imports transformers: a
    model of that kind can only exist once the user has imported it).

    Example:
        >>> is_transformers_model(nn.Linear(2, 2))
        False
    """
    transformers = sys.modules.get("transformers")
    if transformers is None:
        return False
    return isinstance(net, transformers.PreTrainedModel)


def logits_of(output: Any) -> torch.Tensor:
    """The logits in what a forward returned: a tensor, a tuple (first element), or an object
    with ``.logits``."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(
        "a language model must return logits [B, T, V] (a tensor, a tuple starting with it, or "
        f"an object with .logits), got {type(output).__name__}"
    )


@contextmanager
def _eval_mode(net: nn.Module):
    """Dropout off while decoding (train mode would draw from the global generator)."""
    was_training = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was_training)


def generate(
    net: nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    n_members: int = 1,
    eos_token_id: int | None = None,
    pad_token_id: int = 0,
    temperature: float = 0.0,
    seed: int = 0,
) -> torch.Tensor:
    """Completes every prompt for every member in batched forwards.

    Args:
        net: the language model (see the module docstring for the two kinds).
        prompts: token ids of each prompt.
        max_new_tokens: tokens generated per row at most.
        n_members: members decoded together (rows ``m · P + p``); the net itself must make the
            members differ (:func:`es_opt.text.batched_members`), or they are identical.
        eos_token_id: a row stops at this token (later positions hold ``pad_token_id``).
        pad_token_id: left padding of prompts and filler after the end.
        temperature: 0 for greedy decoding, > 0 for seeded sampling.
        seed: seeds the sampling noise (with the prompt's index).

    Returns:
        ``LongTensor[n_members, len(prompts), max_new_tokens]`` of generated ids.

    Example:
        >>> class Next(nn.Module):  # logits that always favour token (last + 1) mod 5
        ...     def forward(self, ids):
        ...         return torch.nn.functional.one_hot((ids + 1) % 5, 5).float()
        >>> generate(Next(), [[0], [3, 4]], max_new_tokens=3, eos_token_id=2).tolist()
        [[[1, 2, 0], [0, 1, 2]]]
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    device = _device(net)
    out = torch.full(
        (n_members, len(prompts), max_new_tokens), pad_token_id, dtype=torch.long, device=device
    )
    hugging_face = is_transformers_model(net)
    groups = [list(range(len(prompts)))] if hugging_face else _by_length(prompts)
    with torch.no_grad(), _eval_mode(net):
        for group in groups:
            noise = _gumbel(seed, group, temperature)
            decode = _decode_cached if hugging_face else _decode_plain
            tokens = decode(
                net,
                [prompts[p] for p in group],
                n_members,
                max_new_tokens,
                _Chooser(temperature, noise, n_members, eos_token_id, pad_token_id),
                pad_token_id,
            )
            out[:, group] = tokens.view(n_members, len(group), max_new_tokens)
    return out


def _device(net: nn.Module) -> torch.device:
    for tensor in (*net.parameters(), *net.buffers()):
        return tensor.device
    return torch.device("cpu")


def _by_length(prompts: Sequence[Sequence[int]]) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for index, prompt in enumerate(prompts):
        groups.setdefault(len(prompt), []).append(index)
    return list(groups.values())


def _gumbel(seed: int, group: list[int], temperature: float) -> list[torch.Generator] | None:
    if temperature == 0:
        return None
    return [torch.Generator().manual_seed(derive_seed(seed, GUMBEL_STREAM, p)) for p in group]


class _Chooser:
    """Picks the next token of every row and tracks which rows have ended."""

    def __init__(self, temperature, generators, n_members, eos_token_id, pad_token_id):
        self.temperature, self.generators = temperature, generators
        self.n_members, self.eos, self.pad = n_members, eos_token_id, pad_token_id
        self.done: torch.Tensor | None = None

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.generators is not None:
            vocab = logits.shape[-1]
            # one Exp(1) draw per prompt and step, the same for every member: -log E is Gumbel
            draws = torch.stack(
                [torch.empty(vocab).exponential_(generator=g) for g in self.generators]
            )
            gumbel = draws.clamp_min(torch.finfo(torch.float32).tiny).log_().neg_()
            gumbel = gumbel.to(logits.device).repeat(self.n_members, 1)
            logits = logits / self.temperature + gumbel
        tokens = logits.argmax(-1)
        if self.done is None:
            self.done = torch.zeros_like(tokens, dtype=torch.bool)
        tokens = tokens.masked_fill(self.done, self.pad)
        if self.eos is not None:
            self.done = self.done | (tokens == self.eos)
        return tokens

    @property
    def finished(self) -> bool:
        return self.done is not None and bool(self.done.all())


def _left_padded(prompts, n_members, pad_token_id, device):
    length = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), length), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, length - len(prompt) :] = torch.as_tensor(list(prompt), dtype=torch.long)
        mask[row, length - len(prompt) :] = 1
    return ids.repeat(n_members, 1).to(device), mask.repeat(n_members, 1).to(device)


def _decode_cached(net, prompts, n_members, max_new_tokens, choose, pad_token_id):
    device = _device(net)
    ids, mask = _left_padded(prompts, n_members, pad_token_id, device)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    parameters = inspect.signature(net.forward).parameters
    cache_name = "cache" if "cache" in parameters else "past_key_values"
    extra = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
    output = net(
        input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **extra
    )
    tokens = torch.empty(ids.shape[0], max_new_tokens, dtype=torch.long, device=device)
    for step in range(max_new_tokens):
        tokens[:, step] = choose(logits_of(output)[:, -1])
        if step + 1 == max_new_tokens or choose.finished:
            tokens[:, step + 1 :] = pad_token_id
            break
        cache = getattr(output, "cache", None)
        if cache is None:
            cache = output.past_key_values
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        positions = positions[:, -1:] + 1
        output = net(
            input_ids=tokens[:, step : step + 1],
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{cache_name: cache},
            **extra,
        )
    return tokens


def _decode_plain(net, prompts, n_members, max_new_tokens, choose, pad_token_id):
    device = _device(net)
    ids = torch.as_tensor([list(p) for p in prompts], dtype=torch.long, device=device)
    ids = ids.repeat(n_members, 1)
    tokens = torch.empty(ids.shape[0], max_new_tokens, dtype=torch.long, device=device)
    for step in range(max_new_tokens):
        tokens[:, step] = choose(logits_of(net(ids))[:, -1])
        if step + 1 == max_new_tokens or choose.finished:
            tokens[:, step + 1 :] = pad_token_id
            break
        ids = torch.cat([ids, tokens[:, step : step + 1]], dim=1)
    return tokens
