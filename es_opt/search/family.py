r"""A continuous family of update rules that holds Adam, Lion and Ligi, meta-trained by ES.

With :math:`\sigma` the logistic function, the family's parameters :math:`\phi` give
:math:`\beta_i = \sigma(\phi_i)` (i = 1, 2, 3), :math:`\gamma = \sigma(\phi_4)`,
:math:`\rho = \sigma(\phi_5)` and the learning rate :math:`\eta = 10^{\phi_6}`; per step

.. math::
    b_t &= \beta_1 (1 - \beta_2^{t-1}) + 1 - \beta_1,\qquad
    c = \frac{\beta_1 m + (1 - \beta_1) g}{b_t}\\
    m &\leftarrow \beta_2 m + (1 - \beta_2) g,\qquad v \leftarrow \beta_3 v + (1 - \beta_3) g^2,
    \qquad \hat v = v / (1 - \beta_3^t)\\
    \mathrm{update} &= \frac{c}{\gamma |c| + (1 - \gamma)(\rho \sqrt{\hat v} + (1 - \rho)|g|)
    + \epsilon}

Adam is :math:`\beta_1 = \beta_2, \gamma = 0, \rho = 1` (then :math:`c = \hat m`); Lion is
:math:`\gamma = 1` (``update = sign(c)``, up to :math:`\epsilon`); Ligi is :math:`\rho = 0`.
Every member is a program (:func:`family_program`), compiled like any searched rule, and the
meta-objective is the suite reward at the member's own learning rate (no grid), maximised with
es_opt's :class:`~es_opt.ESOptimizer` (Salimans et al. 2017).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from es_opt import ESOptimizer, Model, Objective

from .evaluate import SuiteEvaluator
from .program import Program, format_program, parse_program
from .searcher import Searcher, es_record

__all__ = ["FAMILY_NAMES", "FamilyObjective", "FamilySearch", "family_program", "family_values"]

FAMILY_NAMES = ("beta1", "beta2", "beta3", "gamma", "rho", "log10_lr")
EPS = 1e-8


def family_values(phi: torch.Tensor) -> dict[str, float]:
    """The named hyperparameters of the family member ``phi`` (6 numbers)."""
    phi = phi.detach().double()
    if phi.shape != (len(FAMILY_NAMES),):
        raise ValueError(f"phi must have shape ({len(FAMILY_NAMES)},), got {tuple(phi.shape)}")
    values = {n: float(torch.sigmoid(x)) for n, x in zip(FAMILY_NAMES[:5], phi[:5], strict=True)}
    values["log10_lr"] = float(phi[5])
    return values


def logits_for(
    beta1: float, beta2: float, beta3: float, gamma: float, rho: float, lr: float
) -> torch.Tensor:
    """The ``phi`` of given hyperparameters (each in (0, 1); ``lr`` > 0)."""

    def logit(p: float) -> float:
        return math.log(p / (1 - p))

    return torch.tensor(
        [logit(beta1), logit(beta2), logit(beta3), logit(gamma), logit(rho), math.log10(lr)]
    )


def family_program(phi: torch.Tensor) -> Program:
    """The member ``phi`` as a program (its learning rate is not part of the program)."""
    v = family_values(phi)
    b1, b2, b3, gamma, rho = (v[n] for n in FAMILY_NAMES[:5])
    return parse_program(
        f"""
        t0 = sub(1.0, {b1!r})
        t1 = lerp(v1, g, t0)
        t2 = sub(step, 1.0)
        t2 = pow({b2!r}, t2)
        t2 = sub(1.0, t2)
        t2 = mul({b1!r}, t2)
        t2 = add(t2, t0)
        t1 = div(t1, t2)
        v1 = lerp(v1, g, {1 - b2!r})
        t3 = square(g)
        v2 = lerp(v2, t3, {1 - b3!r})
        t4 = pow({b3!r}, step)
        t4 = sub(1.0, t4)
        t4 = div(v2, t4)
        t4 = sqrt(t4)
        t5 = abs(g)
        t5 = lerp(t5, t4, {rho!r})
        t6 = abs(t1)
        t5 = lerp(t5, t6, {gamma!r})
        t5 = add(t5, {EPS!r})
        update = div(t1, t5)
        """
    )


class _Phi(nn.Module):
    def __init__(self, phi: torch.Tensor) -> None:
        super().__init__()
        self.phi = nn.Parameter(phi.detach().clone().float())


class FamilyObjective(Objective):
    """Suite reward of the family member in the model, at its own learning rate.

    ``collect_stats`` reports each member's reward and parameters, so the search can keep the
    best member it has scored.
    """

    def __init__(self, evaluator: SuiteEvaluator) -> None:
        self.evaluator = evaluator
        self._last: tuple[float, list[float]] | None = None
        self.member_stats: list[tuple[float, list[float]]] = []

    def __call__(self, model: Model, samples: Any) -> float:
        phi = model.net.phi.detach()
        lr = 10 ** float(phi[5])
        evaluator = dataclasses.replace(self.evaluator, lrs=(lr,), early_stopping=None)
        reward = float(evaluator(family_program(phi)).reward)
        self._last = (reward, phi.tolist())
        return reward

    def collect_stats(self) -> Any:
        return self._last

    def merge_stats(self, stats: list[Any]) -> None:
        self.member_stats = [s for s in stats if s is not None]


class FamilySearch(Searcher):
    """ES over the family's six parameters, seeded and resumable.

    One generation is one ES step of ``n_samples`` members, each scored at its own learning rate;
    :meth:`~es_opt.search.searcher.Searcher.run` takes the budget (totals over the whole search,
    resumed parts included). :meth:`best` is the best *member* scored (its parameters, learning
    rate included, in :attr:`best_phi`); :meth:`center_reward` scores the current centre. Each
    history record adds the centre's hyperparameters (:data:`FAMILY_NAMES`) to the shared keys.

    Args:
        evaluator: scores rules (its ``lrs`` and ``early_stopping`` are ignored).
        phi0: starting parameters (default: all betas, gamma and rho at 0.5, lr 1e-2).
        sigma: ES perturbation scale in parameter space.
        n_samples: evaluations per generation.
        lr: step size of the inner Adam on the ES gradient.
        seed: ES seed.
        n_workers: evaluation processes (es_opt's ``multiprocess`` backend when > 1).
    """

    def __init__(
        self,
        evaluator: SuiteEvaluator,
        phi0: torch.Tensor | None = None,
        *,
        sigma: float = 0.3,
        n_samples: int = 8,
        lr: float = 0.1,
        seed: int = 0,
        n_workers: int = 1,
    ) -> None:
        phi0 = phi0 if phi0 is not None else torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, -2.0])
        self.net = _Phi(phi0)
        self.objective = FamilyObjective(evaluator)
        self.es = ESOptimizer(
            Model(self.net),
            optimizer=torch.optim.Adam(self.net.parameters(), lr=lr),
            objective_fn=self.objective,
            sigma=sigma,
            n_samples=n_samples,
            seed=seed,
            n_workers=n_workers if n_workers > 1 else None,
        )
        self._settings = {"sigma": sigma, "n_samples": n_samples, "lr": lr, "seed": seed}
        self.history: list[dict[str, Any]] = []
        self.seconds = 0.0
        self._best: tuple[float, list[float]] | None = None

    @property
    def phi(self) -> torch.Tensor:
        """The centre's parameters."""
        return self.net.phi.detach().clone()

    @property
    def best_phi(self) -> torch.Tensor:
        """The parameters of the best member scored (its learning rate is ``10 ** phi[5]``)."""
        if self._best is None:
            raise RuntimeError("nothing evaluated yet")
        return torch.tensor(self._best[1])

    def best(self) -> tuple[Program, float]:
        """The best member scored, as a program, and its reward (at its own learning rate)."""
        phi = self.best_phi  # raises before the first generation
        return family_program(phi), self._best[0]

    def center_reward(self) -> float:
        """Suite reward of the current centre (one more evaluation)."""
        return self.objective(Model(self.net), None)

    def step(self) -> dict[str, Any]:
        """One ES generation; returns its record."""
        result = self.es.gradient_step()
        for reward, phi in self.objective.member_stats:
            if self._best is None or reward > self._best[0]:
                self._best = (reward, phi)
        record = {**es_record(self, result, self._best[0]), **family_values(self.net.phi)}
        self.history.append(record)
        return record

    def _config(self) -> dict[str, Any]:
        return dict(self._settings)

    def _state(self) -> dict[str, Any]:
        best = None
        if self._best is not None:
            program, reward = self.best()
            best = [format_program(program), reward]
        return {
            "phi": self.phi,
            "es": self.es.state_dict(),
            "best": best,
            "best_phi": None if best is None else list(self._best[1]),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.net.phi.copy_(state["phi"])
        self.es.load_state_dict(state["es"])
        best, phi = state["best"], state["best_phi"]
        self._best = None if best is None else (float(best[1]), [float(x) for x in phi])

    def _legacy_record(self, record: dict[str, Any]) -> dict[str, Any]:
        return record  # the former keys are all still there

    def close(self) -> None:
        """Closes the ES optimizer's worker processes."""
        self.es.close()
