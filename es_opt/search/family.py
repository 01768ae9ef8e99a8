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
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from es_opt import ESOptimizer, Model, Objective

from .cache import atomic_torch_save
from .evaluate import SuiteEvaluator
from .program import Program, parse_program

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
    """Suite reward of the family member in the model, at its own learning rate."""

    def __init__(self, evaluator: SuiteEvaluator) -> None:
        self.evaluator = evaluator

    def __call__(self, model: Model, samples: Any) -> float:
        phi = model.net.phi.detach()
        lr = 10 ** float(phi[5])
        evaluator = dataclasses.replace(self.evaluator, lrs=(lr,), early_stopping=None)
        return float(evaluator(family_program(phi)).reward)


class FamilySearch:
    """ES over the family's six parameters, seeded and resumable.

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
        self.history: list[dict[str, Any]] = []

    @property
    def phi(self) -> torch.Tensor:
        return self.net.phi.detach().clone()

    def center_reward(self) -> float:
        """Suite reward of the current centre."""
        return self.objective(Model(self.net), None)

    def step(self) -> dict[str, Any]:
        """One ES generation; returns its record (mean and best member reward, the centre)."""
        result = self.es.gradient_step()
        record = {
            "generation": result.generation,
            "mean_reward": result.fitness_mean[0],
            "max_reward": result.fitness_max[0],
            **family_values(self.net.phi),
        }
        self.history.append(record)
        return record

    def run(
        self,
        *,
        generations: int | None = None,
        budget_seconds: float | None = None,
        callback: Callable[[FamilySearch, dict[str, Any]], None] | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Run generations until either limit; checkpoint after each if asked."""
        if generations is None and budget_seconds is None:
            raise ValueError("give generations or budget_seconds")
        start = time.monotonic()
        done = 0
        while (generations is None or done < generations) and (
            budget_seconds is None or time.monotonic() - start < budget_seconds
        ):
            record = self.step()
            done += 1
            if checkpoint_path is not None:
                self.save(checkpoint_path)
            if callback is not None:
                callback(self, record)
        return self.history

    def state_dict(self) -> dict[str, Any]:
        return {"phi": self.phi, "es": self.es.state_dict(), "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.net.phi.copy_(state["phi"])
        self.es.load_state_dict(state["es"])
        self.history = list(state["history"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomic ``torch.save`` of :meth:`state_dict`."""
        atomic_torch_save(path, self.state_dict())

    def load(self, path: str | os.PathLike[str]) -> None:
        self.load_state_dict(torch.load(path, weights_only=True))

    def close(self) -> None:
        self.es.close()
