r"""An editing policy for :class:`~es_opt.search.env.OptimizerSearchEnv`, trained by es_opt's ES.

ES is an RL algorithm (Salimans et al. 2017): each member of the population is the policy with
perturbed weights, its fitness is the return of one episode of edits, and the ES gradient moves
the policy toward members whose edits found better rules. Rule evaluations inside episodes go
through the shared on-disk cache, so members (and worker processes) that reach the same rule
train it once.

The policy reads bag-of-tokens features of the program (operation counts, slot and constant
usage, length, the last reward, the edit number) and outputs one softmax per action component;
actions are sampled with a generator seeded by (generation seed, edit), so all members of a
generation share their random numbers (common random numbers reduce ES variance).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import skip_init

from es_opt import ESOptimizer, Model, Objective, Samples

from .env import ARG_TOKENS, OptimizerSearchEnv
from .evaluate import SuiteEvaluator
from .mutation import EDITS
from .parallel import Evaluations
from .program import (
    CONSTANTS,
    MAX_STATEMENTS,
    OPS,
    SLOTS,
    WRITABLE,
    Program,
    format_program,
    parse_program,
)
from .searcher import Searcher, es_record

__all__ = ["EditPolicy", "EditingObjective", "EpisodeSeed", "ESAgentSearch"]

N_FEATURES = len(OPS) + len(SLOTS) + len(CONSTANTS) + 3
HEADS = (len(EDITS), MAX_STATEMENTS, len(OPS), len(WRITABLE), ARG_TOKENS, ARG_TOKENS, ARG_TOKENS)


def program_features(obs: np.ndarray, last_reward: float, edit: int) -> torch.Tensor:
    """Normalised token counts of an observation, plus length, last reward and edit number."""
    ops = np.bincount(obs[:, 0], minlength=len(OPS) + 1)[1:]
    args = np.bincount(obs[:, 2:].ravel(), minlength=ARG_TOKENS + 1)[1:]
    length = int((obs[:, 0] > 0).sum())
    features = np.concatenate([ops, args, [length, 10 * last_reward, edit]]).astype(np.float32)
    return torch.from_numpy(features / 10.0)


class EditPolicy(nn.Module):
    """A two-layer network from program features to one logit vector per action component."""

    def __init__(self, hidden: int = 32, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        # skip_init: no draw from the global generator; the weights come from ``gen`` below
        self.body = skip_init(nn.Linear, N_FEATURES, hidden)
        self.head = skip_init(nn.Linear, hidden, sum(HEADS))
        with torch.no_grad():
            for layer in (self.body, self.head):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.1)
                layer.bias.zero_()

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(self.head(torch.tanh(self.body(features))), HEADS))

    def act(self, features: torch.Tensor, gen: torch.Generator) -> np.ndarray:
        """Sample an action (one categorical draw per component)."""
        with torch.no_grad():
            logits = self.forward(features)
        return np.array(
            [int(torch.multinomial(torch.softmax(x, -1), 1, generator=gen)) for x in logits]
        )


@dataclass
class EpisodeSeed(Samples):
    """The generation's episode seed (the same for every member)."""

    seed: int


class EditingObjective(Objective):
    """Return of one episode of edits from ``start`` under the member's policy.

    The objective is sent once to each worker; each process opens the shared cache itself.
    ``collect_stats`` reports the best rule an episode reached, so the search can keep it.
    """

    def __init__(
        self, evaluator: SuiteEvaluator, start: Program, cache_dir: str | None, max_edits: int = 5
    ) -> None:
        self.evaluator = evaluator
        self.start_text = str(start)
        self.cache_dir = cache_dir
        self.max_edits = max_edits
        self._evaluations: Evaluations | None = None
        self._last: tuple[float, str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_evaluations": None, "_last": None}

    def _evaluate(self, program: Program) -> float:
        if self._evaluations is None:
            self._evaluations = Evaluations(self.evaluator, self.cache_dir)
        return self._evaluations([program])[0].reward

    def __call__(self, model: Model, samples: EpisodeSeed) -> float:
        env = OptimizerSearchEnv(
            self._evaluate, parse_program(self.start_text), max_edits=self.max_edits
        )
        obs, info = env.reset(seed=samples.seed)
        gen = torch.Generator().manual_seed(samples.seed)
        total, last, best = 0.0, 0.0, (-np.inf, info["program"])
        for edit in range(self.max_edits):
            action = model.net.act(program_features(obs, last, edit), gen)
            obs, reward, _, truncated, info = env.step(action)
            total += reward
            last = reward
            if info["valid"] and reward > best[0]:
                best = (reward, info["program"])
            if truncated:
                break
        self._last = best
        return total / self.max_edits

    def collect_stats(self) -> Any:
        return self._last

    def merge_stats(self, stats: list[Any]) -> None:
        self.episode_bests = [s for s in stats if s is not None]


class ESAgentSearch(Searcher):
    """Train an :class:`EditPolicy` with :class:`~es_opt.ESOptimizer`; keep the best rule seen.

    One generation is one ES step of ``n_samples`` episodes (the members; a member's reward in
    the history is its episode's return); :meth:`~es_opt.search.searcher.Searcher.run` takes the
    budget (totals over the whole search, resumed parts included). :meth:`best` is the best rule
    any episode reached, with its reward.

    Args:
        evaluator: scores rules.
        start: the program every episode starts from.
        cache_dir: the shared evaluation cache.
        max_edits: edits per episode.
        n_samples: ES population size (episodes per generation).
        sigma: ES perturbation scale.
        lr: inner Adam's learning rate.
        seed: seed of the policy's initial weights, the ES noise and the episodes.
        n_workers: evaluation processes (es_opt's ``multiprocess`` backend when > 1).
    """

    def __init__(
        self,
        evaluator: SuiteEvaluator,
        start: Program,
        cache_dir: str | os.PathLike[str],
        *,
        max_edits: int = 5,
        n_samples: int = 8,
        sigma: float = 0.1,
        lr: float = 0.03,
        seed: int = 0,
        n_workers: int = 1,
    ) -> None:
        self.policy = EditPolicy(seed=seed)
        self.objective = EditingObjective(evaluator, start, str(cache_dir), max_edits)
        self.seed = seed
        self.es = ESOptimizer(
            Model(self.policy),
            optimizer=torch.optim.Adam(self.policy.parameters(), lr=lr),
            objective_fn=self.objective,
            sigma=sigma,
            n_samples=n_samples,
            seed=seed,
            n_workers=n_workers if n_workers > 1 else None,
        )
        self._settings = {
            "start": format_program(start),
            "max_edits": max_edits,
            "n_samples": n_samples,
            "sigma": sigma,
            "lr": lr,
            "seed": seed,
        }
        self.history: list[dict[str, Any]] = []
        self.seconds = 0.0
        self._best: tuple[float, str] | None = None

    def best(self) -> tuple[Program, float]:
        """The best rule an episode reached, and its reward."""
        if self._best is None:
            raise RuntimeError("nothing evaluated yet")
        return parse_program(self._best[1]), self._best[0]

    def step(self) -> dict[str, Any]:
        """One generation; returns its record."""
        seed = int(np.random.default_rng([self.seed, self.generation]).integers(2**31))
        result = self.es.gradient_step(EpisodeSeed(seed))
        for reward, text in getattr(self.objective, "episode_bests", []):
            if self._best is None or reward > self._best[0]:
                self._best = (reward, text)
        record = es_record(self, result, self._best[0] if self._best else -np.inf)
        self.history.append(record)
        return record

    def _config(self) -> dict[str, Any]:
        return dict(self._settings)

    def _state(self) -> dict[str, Any]:
        best = self._best
        return {
            "policy": self.policy.state_dict(),
            "es": self.es.state_dict(),
            "best": None if best is None else [best[1], float(best[0])],
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.es.load_state_dict(state["es"])
        best = state["best"]
        self._best = None if best is None else (float(best[1]), str(best[0]))

    def _legacy_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record the deprecated ``callback=`` received."""
        return {
            "generation": record["generation"],
            "mean_return": record["mean_reward"],
            "max_return": record["max_reward"],
            "best_reward": record["best_reward"],
        }

    def close(self) -> None:
        """Closes the ES optimizer's worker processes."""
        self.es.close()
