"""``StepResult``: what one ES step reports (for progress bars, loggers and callbacks)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["StepResult"]


@dataclass(frozen=True)
class StepResult:
    """One generation's summary.

    Attributes:
        generation: the generation this step completed (0 for the first step).
        n_evals: evaluations run (``n_samples``).
        fitness_mean, fitness_max, fitness_min: raw fitness per objective over the population.
        grad_norm: Euclidean norm of the gradient estimate handed to the inner optimizer.
        eval_time: seconds spent evaluating the population.
        step_time: seconds for the whole step (evaluation, shaping, estimate, optimizer step).
        layers: names of the layers perturbed this step.
        fitness: the raw ``[n_evals, n_objectives]`` fitness matrix (float64, CPU).
        nonfinite: under ``ESOptimizer(nonfinite="worst")``, how many members had a NaN or ±inf
            value (the fitness statistics are then over the finite members; when all are
            non-finite the step changed nothing and ``grad_norm`` is 0); ``None`` under
            ``"raise"``.

    Example:
        >>> r = StepResult(0, 2, (1.0,), (2.0,), (0.0,), 0.5, 0.01, 0.02, ("0",))
        >>> r.evals_per_second
        200.0
    """

    generation: int
    n_evals: int
    fitness_mean: tuple[float, ...]
    fitness_max: tuple[float, ...]
    fitness_min: tuple[float, ...]
    grad_norm: float
    eval_time: float
    step_time: float
    layers: tuple[str, ...]
    fitness: torch.Tensor | None = field(default=None, repr=False, compare=False)
    nonfinite: int | None = None

    @classmethod
    def of(
        cls,
        generation: int,
        fitness: torch.Tensor,
        gradient: torch.Tensor,
        eval_time: float,
        step_time: float,
        layers: tuple[str, ...],
        bad: torch.Tensor | None = None,
    ) -> StepResult:
        """The summary of a step from its raw ``[n_evals, n_objectives]`` fitness and gradient;
        ``bad``, the mask of non-finite members under ``nonfinite="worst"``, leaves them out of
        the statistics (which are NaN when no member is finite)."""
        finite = fitness if bad is None else fitness[~bad]
        if finite.shape[0] == 0:
            nan = (float("nan"),) * fitness.shape[1]
            mean = high = low = nan
        else:
            mean = tuple(finite.mean(0).tolist())
            high, low = tuple(finite.max(0).values.tolist()), tuple(finite.min(0).values.tolist())
        return cls(
            generation=generation,
            n_evals=fitness.shape[0],
            fitness_mean=mean,
            fitness_max=high,
            fitness_min=low,
            grad_norm=float(gradient.norm()),
            eval_time=eval_time,
            step_time=step_time,
            layers=layers,
            fitness=fitness,
            nonfinite=None if bad is None else int(bad.sum()),
        )

    @property
    def evals_per_second(self) -> float:
        return self.n_evals / self.eval_time if self.eval_time > 0 else float("inf")

    def as_dict(self) -> dict[str, float | int | str]:
        """A flat dict (one column per objective) for CSV/TensorBoard loggers."""
        row: dict[str, float | int | str] = {"generation": self.generation, "n_evals": self.n_evals}
        for k, (mean, high, low) in enumerate(
            zip(self.fitness_mean, self.fitness_max, self.fitness_min, strict=True)
        ):
            row[f"fitness_mean_{k}"] = mean
            row[f"fitness_max_{k}"] = high
            row[f"fitness_min_{k}"] = low
        row.update(
            grad_norm=self.grad_norm,
            eval_time=self.eval_time,
            step_time=self.step_time,
            evals_per_second=self.evals_per_second,
            layers="|".join(self.layers),
        )
        if self.nonfinite is not None:  # a column of every row of a nonfinite="worst" run
            row["nonfinite"] = self.nonfinite
        return row
