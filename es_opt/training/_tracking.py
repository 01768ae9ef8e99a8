"""What the tracking loggers (MLflow, Weights & Biases) record: a run's parameters, and for every
step the CSV log's columns as floats.

A row is :meth:`StepResult.as_dict <es_opt.StepResult.as_dict>` plus the ``extra`` values, as the
:class:`~es_opt.training.CSVLogger` writes it; the generation becomes the step, the ``layers``
text is not a metric, and a value that is not finite (an evaluation not run this generation,
written as ``nan`` in the CSV; ``inf`` evaluations per second of an instant step) is left out.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from ..result import StepResult

__all__ = ["metric_row", "check_extra", "flat_params", "run_params"]

ExtraFn = Callable[[StepResult], dict[str, Any]]


def check_extra(extra: Any) -> ExtraFn | None:
    if extra is not None and not callable(extra):
        raise TypeError(f"extra must be a callable result -> dict or None, got {extra!r}")
    return extra


def metric_row(result: StepResult, extra: ExtraFn | None) -> dict[str, float]:
    """The CSV row of ``result`` without ``generation`` and ``layers``, finite numbers only."""
    row: dict[str, Any] = dict(result.as_dict())
    if extra is not None:
        values = extra(result)
        if not isinstance(values, dict):
            raise TypeError(
                f"extra(result) must return a dict of name -> value, got {values!r:.60}"
            )
        row.update(values)
    out = {}
    for key, value in row.items():
        if key in ("generation", "layers") or isinstance(value, bool):
            continue
        if isinstance(value, numbers.Real) and math.isfinite(float(value)):
            out[str(key)] = float(value)
    return out


def flat_params(values: dict[str, Any], prefix: str = "", *, text: bool = True) -> dict[str, Any]:
    """A nested dict of settings as ``{"a/b": value}`` (``str(value)`` with ``text``: MLflow
    stores parameters as strings)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_params(value, f"{name}/", text=text))
        else:
            out[name] = str(value) if text else value
    return out


def run_params(es: Any, config: dict[str, Any], *, text: bool = True) -> dict[str, Any]:
    """The run's parameters: the ES settings (``es/sigma``, ``es/n_samples``, ``es/seed``,
    ``es/shaping``, ``es/perturbation``, ``es/distribution``, ``es/optimizer``) and ``config``
    (``config/<key>``)."""
    state = es.state_dict()
    settings = {
        key: state[key]
        for key in ("sigma", "n_samples", "seed", "shaping", "perturbation", "obj_weights")
        if key in state
    }
    settings["distribution"] = state.get("distribution", {}).get("name", "openai")
    settings["optimizer"] = type(es.optimizer).__name__
    return {**flat_params(settings, "es/", text=text), **flat_params(config, "config/", text=text)}
