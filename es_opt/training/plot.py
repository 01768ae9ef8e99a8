"""Learning curves from a run's CSV log or :class:`~es_opt.training.History`, saved as a PNG.

One panel per objective (the population's mean fitness, with a band from its min to its max), then
the norm of the gradient estimate and the evaluations per second, all against the generation. The
first objective's panel can also show what decides "solved": an evaluation of the centre (the
greedy return of a policy, the test accuracy of a classifier) and the target it must reach.
Needs the ``plot`` extra (``pip install "es_opt[plot]"``).

From the command line::

    python -m es_opt.training.plot runs/cartpole.csv -o curve.png --title "CartPole-v1"
    python -m es_opt.training.plot runs/rl/CartPole-v1/log.csv --evaluation eval_return --target 475
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import require
from ..history import History

__all__ = ["plot_history", "read_csv", "main"]


def read_csv(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads a :class:`~es_opt.training.callbacks.CSVLogger` file into ``{column: float64 array}``
    (non-numeric columns such as ``layers`` are skipped).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file has no ``generation`` / ``fitness_mean_0`` column, or no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CSV log at {str(path)!r}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    for needed in ("generation", "fitness_mean_0"):
        if needed not in header:
            raise ValueError(
                f"{str(path)!r} has no {needed!r} column (columns: {header}); expected a file "
                "written by es_opt.training.callbacks.CSVLogger"
            )
    if not rows:
        raise ValueError(f"{str(path)!r} has a header but no rows: nothing to plot")
    columns: dict[str, np.ndarray] = {}
    for name in header:
        try:
            columns[name] = np.array([float(row[name]) for row in rows], dtype=np.float64)
        except (TypeError, ValueError):
            continue
    return columns


def _columns(history: History) -> dict[str, np.ndarray]:
    if not len(history):
        raise ValueError("the history is empty: nothing to plot")
    columns = {
        "generation": history.generation.astype(np.float64),
        "grad_norm": history.grad_norm,
        "evals_per_second": history.evals_per_second,
    }
    for k in range(history.n_objectives):
        columns[f"fitness_mean_{k}"] = history.fitness_mean[:, k]
        columns[f"fitness_max_{k}"] = history.fitness_max[:, k]
        columns[f"fitness_min_{k}"] = history.fitness_min[:, k]
    return columns


def plot_history(
    history: History | str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    objective_names: Sequence[str] | None = None,
    dpi: int = 120,
    evaluation: Mapping[int, float] | str | None = None,
    evaluation_label: str = "evaluation",
    target: float | None = None,
) -> Any:
    """Draws the learning curves and saves them to ``path`` (PNG) when given.

    Args:
        history: a :class:`~es_opt.training.History` or the path of a CSV log.
        path: where to save the figure (its folder is created); ``None`` only returns it.
        title: the figure's title.
        objective_names: one name per objective, for the fitness panels' labels.
        dpi: resolution of the saved image.
        evaluation: the centre's evaluation at some generations, drawn on the first objective's
            panel: ``{generation: value}``, or the name of a CSV column (rows without a finite
            value are skipped), e.g. the RL sample's ``eval_return``.
        evaluation_label: its legend entry (e.g. ``"greedy return"``, ``"test accuracy"``).
        target: the value that counts as solved, drawn as a dashed line on that panel.

    Returns:
        the ``matplotlib.figure.Figure`` (drawn without pyplot, so no window opens and no global
        backend is changed).

    Example:
        >>> fig = plot_history("runs/cartpole.csv", "curve.png", title="CartPole")  # doctest: +SKIP
    """
    require("matplotlib", "plot", "es_opt.training.plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(history, History):
        columns = _columns(history)
    elif isinstance(history, (str, os.PathLike)):
        columns = read_csv(history)
    else:
        raise TypeError(f"history must be a History or a CSV path, got {type(history).__name__}")
    n_objectives = sum(1 for name in columns if name.startswith("fitness_mean_"))
    if objective_names is None:
        names = ["fitness"] if n_objectives == 1 else [f"fitness {k}" for k in range(n_objectives)]
    elif len(objective_names) != n_objectives:
        raise ValueError(
            f"objective_names has {len(objective_names)} name(s) but the log holds "
            f"{n_objectives} objective(s)"
        )
    else:
        names = [str(n) for n in objective_names]
    evaluated = _evaluation_points(evaluation, columns)

    n_panels = n_objectives + 2
    height = 2.3 * n_panels + (0.4 if title else 0.0)
    # Fixed margins (in inches, turned into fractions) instead of layout="constrained": the same
    # picture for these labels, and about 0.1 s less per figure.
    fig = Figure(figsize=(8.0, height))
    fig.subplots_adjust(
        left=0.9 / 8.0,
        right=1 - 0.2 / 8.0,
        bottom=0.55 / height,
        top=1 - (0.55 if title else 0.25) / height,
        hspace=0.12 * n_panels / 3,
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_panels, 1, sharex=True, squeeze=False)[:, 0]
    x = columns["generation"]
    for k, (ax, name) in enumerate(zip(axes, names, strict=False)):
        mean, high, low = (columns[f"fitness_{s}_{k}"] for s in ("mean", "max", "min"))
        ax.fill_between(x, low, high, color="C0", alpha=0.2, linewidth=0, label="min–max")
        ax.plot(x, mean, color="C0", linewidth=1.6, label="mean")
        ax.set_ylabel(name)
        if k == 0:
            if evaluated is not None:
                ax.plot(*evaluated, color="C3", marker="o", markersize=3, linewidth=1.2,
                        label=evaluation_label)  # fmt: skip
            if target is not None:
                ax.axhline(float(target), color="C2", linestyle="--", linewidth=1.2,
                           label=f"target {float(target):g}")  # fmt: skip
            solved = evaluated is not None or target is not None
            ax.legend(loc="best" if solved else "upper left", fontsize="small", frameon=False)
    grad_ax, speed_ax = axes[n_objectives], axes[n_objectives + 1]
    grad = columns.get("grad_norm", np.full_like(x, np.nan))
    grad_ax.plot(x, grad, color="C1", linewidth=1.2)
    grad_ax.set_ylabel("gradient norm")
    if _spans_decades(grad):
        grad_ax.set_yscale("log")
    speed = columns.get("evals_per_second", np.full_like(x, np.nan))
    speed = np.where(np.isfinite(speed), speed, np.nan)
    speed_ax.plot(x, speed, color="C2", linewidth=1.2)
    speed_ax.set_ylabel("evaluations / s")
    speed_ax.set_ylim(bottom=0)
    speed_ax.set_xlabel("generation")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


def _evaluation_points(
    evaluation: Mapping[int, float] | str | None, columns: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(generations, values)`` of the finite evaluations, or None."""
    if evaluation is None:
        return None
    if isinstance(evaluation, str):
        if evaluation not in columns:
            raise ValueError(
                f"evaluation={evaluation!r} is not a numeric column of the log (columns: "
                f"{sorted(columns)})"
            )
        x, y = columns["generation"], columns[evaluation]
    elif isinstance(evaluation, Mapping):
        x = np.array(list(evaluation), dtype=np.float64)
        y = np.array([float(v) for v in evaluation.values()], dtype=np.float64)
    else:
        raise TypeError(
            f"evaluation must be a {{generation: value}} dict or a CSV column name, got "
            f"{type(evaluation).__name__}"
        )
    keep = np.isfinite(y)
    return x[keep], y[keep]


def _spans_decades(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(finite.size and finite.min() > 0 and finite.max() / finite.min() > 100)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m es_opt.training.plot RUN.csv -o CURVE.png [--title T]
    [--objective-names a,b]``."""
    parser = argparse.ArgumentParser(
        prog="python -m es_opt.training.plot",
        description="Plot the learning curves of an es_opt run from its CSV log.",
    )
    parser.add_argument("csv", help="the CSV file written by es_opt.training.callbacks.CSVLogger")
    parser.add_argument(
        "-o", "--output", help="the PNG to write (default: the CSV's name with .png)"
    )
    parser.add_argument("--title", help="the figure's title (default: the CSV's file name)")
    parser.add_argument(
        "--objective-names", help="comma-separated names of the objectives, e.g. return,cost"
    )
    parser.add_argument("--dpi", type=int, default=120, help="resolution of the PNG")
    parser.add_argument(
        "--evaluation", help="a column of the centre's evaluations to draw, e.g. eval_return"
    )
    parser.add_argument("--target", type=float, help="the value that counts as solved")
    args = parser.parse_args(argv)
    output = args.output or str(Path(args.csv).with_suffix(".png"))
    names = args.objective_names.split(",") if args.objective_names else None
    try:
        plot_history(
            args.csv,
            output,
            title=args.title or Path(args.csv).name,
            objective_names=names,
            dpi=args.dpi,
            evaluation=args.evaluation,
            evaluation_label=args.evaluation or "evaluation",
            target=args.target,
        )
    except (FileNotFoundError, ValueError, ImportError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(f"wrote {output}")  # the command-line entry point reports; the library does not print
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in the tests
    sys.exit(main())
