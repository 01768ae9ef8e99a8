"""``TextReward``: a causal language model scored by a reward on the text it generates.

The ES objective of Qiu et al. (2025, arXiv 2509.24372) and EGGROLL (Sarkar et al. 2025, arXiv
2511.16652, §6.3): each member completes the step's prompts (greedy decoding by default, so that
all variation comes from the parameters), a user's ``reward(prompt, completion) -> float`` scores
every completion, and the member's fitness is the mean reward.

Per-prompt normalisation (EGGROLL's ``group_size``, the ES analogue of GRPO's group-relative
advantage). With ``group_size = k`` the fitness is a row of ``P / k`` values, the mean reward of
each group of ``k`` consecutive prompts; give the optimizer one weight per group
(:meth:`TextReward.obj_weights`) and ESOptimizer shapes every column over the population before
it sums them,
``s_i = Σ_g w_g · shape(F[:, g])_i``: each prompt group is compared only across members, so an
easy prompt that every member solves adds nothing and a hard one that one member solves counts
fully. ``shaping="z_score"`` gives EGGROLL's per-group z-score (with a per-group rather than a
global standard deviation); ``"centered_ranks"`` its rank-based counterpart.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..objective import Objective, Samples
from .batched import Noise, batched_members
from .decoding import generate
from .inplace import perturbed_in_place
from .member_noise import member_values_of, population_members

__all__ = ["Prompts", "TextReward"]

Reward = Callable[[str, str], float]


@dataclass
class Prompts(Samples):
    """One step's prompts, and the seed of sampled decoding (unused when greedy).

    Example:
        >>> Prompts(["1+1=", "2+3="], seed=7).prompts
        ['1+1=', '2+3=']
    """

    prompts: list[str] = field(default_factory=list)
    seed: int = 0


class TextReward(Objective):
    """Fitness of a language model = mean ``reward(prompt, completion)`` over the prompts.

    Args:
        tokenizer: ``encode(text) -> list[int]`` and ``decode(ids) -> str`` (a Hugging Face
            tokenizer, or :class:`~es_opt.text.CharTokenizer`).
        reward: ``(prompt, completion) -> float``; completions stop before the end-of-text token.
        max_new_tokens: tokens generated per prompt at most.
        temperature: 0 (default) for greedy decoding, > 0 for sampling seeded by
            ``samples.seed`` (the same draws for every member).
        group_size: ``None`` for one fitness value; ``k`` for one value per group of ``k``
            prompts (per-prompt normalisation, see the module docstring).
        eos_token_id / pad_token_id: default to the tokenizer's (padding falls back to the
            end-of-text token, then 0).
        members_per_batch: members decoded together by :meth:`evaluate_members` (and the
            ``max_batch`` of ESOptimizer's batched path).
        evaluation: how ESOptimizer's members are evaluated (through
            :meth:`evaluate_population`): ``"batched"``, all members of a batch in one
            population-batched forward per token (:func:`~es_opt.text.batched_members`; with a
            low-rank family only the factors are held), or ``"in_place"``, one member at a time
            with its perturbation added in place module by module and restored exactly
            (:func:`~es_opt.text.perturbed_in_place`: the model plus one module's tensors; needs
            a low-rank family or ``noise="philox"``). Set ``vectorize = False`` for ESOptimizer's
            own one-at-a-time path (each member copied into the model).

    Example:
        >>> from es_opt.text import CharTokenizer
        >>> class Echo(nn.Module):  # always predicts the token "1" (id 3)
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.bias = nn.Parameter(torch.zeros(5))
        ...     def forward(self, ids):
        ...         return self.bias + torch.nn.functional.one_hot(torch.full_like(ids, 3), 5)
        >>> objective = TextReward(CharTokenizer("01+"), lambda p, c: float(c == "11"),
        ...                        max_new_tokens=2)
        >>> objective(Echo(), Prompts(["1+0", "0+1"]))
        1.0
    """

    def __init__(
        self,
        tokenizer: Any,
        reward: Reward,
        *,
        max_new_tokens: int = 16,
        temperature: float = 0.0,
        group_size: int | None = None,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        members_per_batch: int = 32,
        evaluation: str = "batched",
    ):
        if not callable(getattr(tokenizer, "encode", None)) or not callable(
            getattr(tokenizer, "decode", None)
        ):
            raise TypeError("tokenizer must have encode(text) and decode(ids) methods")
        if not callable(reward):
            raise TypeError(
                f"reward must be a callable (prompt, completion) -> float, got {reward!r}"
            )
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if not math.isfinite(temperature) or temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
        if group_size is not None and int(group_size) < 1:
            raise ValueError(f"group_size must be None or at least 1, got {group_size}")
        if evaluation not in ("batched", "in_place"):
            raise ValueError(f"evaluation must be 'batched' or 'in_place', got {evaluation!r}")
        if int(members_per_batch) < 1:
            raise ValueError(f"members_per_batch must be at least 1, got {members_per_batch}")
        self.tokenizer, self.reward = tokenizer, reward
        self.max_new_tokens, self.temperature = int(max_new_tokens), float(temperature)
        self.group_size = None if group_size is None else int(group_size)
        self.members_per_batch = int(members_per_batch)
        self.max_batch = self.members_per_batch
        self.evaluation = evaluation
        self.vectorize = True
        if eos_token_id is None:
            eos_token_id = getattr(tokenizer, "eos_token_id", None)
        if pad_token_id is None:
            pad_token_id = getattr(tokenizer, "pad_token_id", None)
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id if pad_token_id is not None else (eos_token_id or 0)

    def obj_weights(self, n_prompts: int) -> list[float]:
        """``obj_weights`` for ESOptimizer: one weight ``1/n_groups`` per prompt group.

        Example:
            >>> from es_opt.text import CharTokenizer
            >>> TextReward(CharTokenizer("ab"), print, group_size=2).obj_weights(4)
            [0.5, 0.5]
        """
        groups = self._n_groups(n_prompts)
        return [1.0 / groups] * groups

    # -- decoding -----------------------------------------------------------------------------
    def completions(self, net: nn.Module, samples: Prompts, n_members: int = 1) -> list[list[str]]:
        """``completions[m][p]``: member ``m``'s text for prompt ``p`` (``net`` makes the members
        differ, e.g. inside :func:`~es_opt.text.batched_members`)."""
        tokens = self.generated_tokens(net, samples, n_members)
        return [[self._decode(row) for row in member] for member in tokens]

    def generated_tokens(
        self, net: nn.Module, samples: Prompts, n_members: int = 1
    ) -> list[list[list[int]]]:
        """``tokens[m][p]``: the ids member ``m`` generated for prompt ``p`` (``max_new_tokens``
        of them; after an end-of-text token, padding)."""
        ids = generate(
            net,
            self.prompt_ids(samples),
            max_new_tokens=self.max_new_tokens,
            n_members=n_members,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            temperature=self.temperature,
            seed=samples.seed,
        )
        return ids.tolist()

    def prompt_ids(self, samples: Prompts) -> list[list[int]]:
        """The token ids each prompt is completed from: ``tokenizer.encode(prompt)``."""
        return [self.tokenizer.encode(p) for p in _prompt_list(samples)]

    def _decode(self, ids: list[int]) -> str:
        if self.eos_token_id is not None and self.eos_token_id in ids:
            ids = ids[: ids.index(self.eos_token_id)]
        return self.tokenizer.decode(ids)

    # -- scores -------------------------------------------------------------------------------
    def score(self, samples: Prompts, tokens: list[list[int]]) -> torch.Tensor:
        """``[P]`` rewards of one member's generated ids ``tokens[p]`` (decoded, then
        :meth:`rewards`); the one place a member's completions are scored."""
        completions = [self._decode(row) for row in tokens]
        return self.rewards(_prompt_list(samples), completions)

    def rewards(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        """``[P]`` float64 rewards. A reward that is not a real number (a string such as
        ``"1"``, a bool, ``None``) is a ``TypeError``, a non-finite one a ``ValueError``, each
        naming the value and the prompt."""
        values = []
        for prompt, completion in zip(prompts, completions, strict=True):
            value = _real(self.reward(prompt, completion), prompt, completion)
            if not math.isfinite(value):
                raise ValueError(
                    f"reward returned {value} for prompt {prompt!r}, completion {completion!r}"
                )
            values.append(value)
        return torch.tensor(values, dtype=torch.float64)

    def fitness(self, rewards: torch.Tensor) -> torch.Tensor:
        """Rewards ``[..., P]`` → fitness ``[..., 1]`` (mean) or ``[..., P/k]`` (group means)."""
        groups = self._n_groups(rewards.shape[-1])
        return rewards.reshape(*rewards.shape[:-1], groups, -1).mean(-1)

    def _n_groups(self, n_prompts: int) -> int:
        if self.group_size is None:
            return 1
        if n_prompts % self.group_size:
            raise ValueError(
                f"{n_prompts} prompts cannot be split into groups of group_size={self.group_size}"
            )
        return n_prompts // self.group_size

    def __call__(self, model: Any, samples: Prompts) -> float | torch.Tensor:
        """The fitness of the model as it is (one member)."""
        net = getattr(model, "net", model)
        fitness = self.fitness(self.score(samples, self.generated_tokens(net, samples)[0]))
        return float(fitness[0]) if self.group_size is None else fitness

    def evaluate_members(
        self, net: nn.Module, samples: Prompts, noise: Mapping[str, Noise]
    ) -> torch.Tensor:
        """``[M, n_objectives]`` fitness of ``M`` members given by their perturbations (see
        :func:`~es_opt.text.batched_members`), decoded ``members_per_batch`` at a time in
        population-batched forwards."""
        n_members = _n_members(noise)
        rows = []
        for start in range(0, n_members, self.members_per_batch):
            stop = min(n_members, start + self.members_per_batch)
            chunk = {name: _slice(value, start, stop) for name, value in noise.items()}
            with batched_members(net, chunk, stop - start):
                tokens = self.generated_tokens(net, samples, stop - start)
            rows.extend(self.fitness(self.score(samples, member)) for member in tokens)
        return torch.stack(rows)

    def evaluate_population(self, population: Any, samples: Prompts) -> torch.Tensor:
        """ESOptimizer's batched path: the fitness ``[B, n_objectives]`` of a batch of its
        members (``population`` is an :class:`~es_opt.StackedModel`: the net at the center, the
        :class:`~es_opt.Population` and the batch's evaluation indices). The members are rebuilt
        from the population's seeds through its perturbation family; no member's weights are
        stacked."""
        pop, indices = population.population, population.indices
        net = population.model.net
        if self.evaluation == "batched":
            return self.evaluate_members(net, samples, population_members(pop, indices))
        rows = []
        for index in indices:
            with perturbed_in_place(net, member_values_of(pop, index), values=True):
                tokens = self.generated_tokens(net, samples)[0]
            rows.append(self.fitness(self.score(samples, tokens)))
        return torch.stack(rows)

    def __repr__(self) -> str:
        return (
            f"TextReward(max_new_tokens={self.max_new_tokens}, temperature={self.temperature}, "
            f"group_size={self.group_size}, evaluation={self.evaluation!r})"
        )


def _real(value: Any, prompt: str, completion: str) -> float:
    """A reward as a float: a real number, or a 0-d tensor or array of one (as core objectives,
    :func:`es_opt.fitness.as_fitness_row`, strings and booleans are refused, not converted)."""
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
        value = value.item()  # a 0-d tensor, array or NumPy scalar
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"reward must return a real number, got {type(value).__name__} {value!r:.40} for "
            f"prompt {prompt!r}, completion {completion!r}"
        )
    return float(value)


def _prompt_list(samples: Any) -> list[str]:
    prompts = getattr(samples, "prompts", None)
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise TypeError(
            "TextReward needs es_opt.text.Prompts samples with a non-empty list of prompts, "
            f"got {type(samples).__name__}"
        )
    return list(prompts)


def _n_members(noise: Mapping[str, Noise]) -> int:
    sizes = {v.scale.shape[0] for v in noise.values()}
    if len(sizes) != 1:
        raise ValueError(f"every parameter's noise must be for the same members, got {sizes}")
    return sizes.pop()


def _slice(value: Noise, start: int, stop: int) -> Noise:
    fields = {k: v[start:stop] for k, v in vars(value).items()}
    return type(value)(**fields)
