"""es_opt.training.plot: learning curves from a History or a CSV log, and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from es_opt import ESOptimizer
from es_opt.training import History
from es_opt.training.callbacks import CSVLogger
from es_opt.training.plot import main, plot_history, read_csv
from tests.conftest import Quadratic, make_mlp

pytest.importorskip("matplotlib")
ROOT = Path(__file__).resolve().parents[1]


class TwoObjectives(Quadratic):
    def __call__(self, model, samples):
        return [super().__call__(model, samples), float(model.net[0].bias.sum())]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A short two-objective run, logged to CSV."""
    folder = tmp_path_factory.mktemp("run")
    net = make_mlp(0)
    es = ESOptimizer(
        net,
        torch.optim.SGD(net.parameters(), lr=0.05),
        TwoObjectives(),
        obj_weights=[1.0, 0.5],
        sigma=0.05,
        n_samples=6,
    )
    history = es.fit(generations=12, callbacks=[CSVLogger(folder / "run.csv")])
    return history, folder / "run.csv"


def line_data(ax) -> np.ndarray:
    (line,) = ax.get_lines()
    return np.asarray(line.get_ydata(), dtype=np.float64)


def assert_nothing_clipped(fig) -> None:
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    artists = [*fig.axes, *([fig._suptitle] if fig._suptitle else [])]
    for artist in artists:
        box = artist.get_tightbbox(renderer)
        assert box.x0 >= -0.5 and box.y0 >= -0.5, f"{artist} sticks out left/bottom: {box}"
        assert box.x1 <= width + 0.5 and box.y1 <= height + 0.5, f"{artist} sticks out: {box}"


def test_plot_from_history_labels_every_panel_and_draws_the_data(run, tmp_path):
    history, _ = run
    png = tmp_path / "figs" / "curve.png"
    fig = plot_history(history, png, title="Quadratic", objective_names=["distance", "bias"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    image = imread(png)
    assert image.shape[0] > 800 and image.shape[1] == 960  # 8 in × 120 dpi
    assert image[..., :3].std() > 0.05  # not a blank canvas
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == [
        "distance",
        "bias",
        "gradient norm",
        "evaluations / s",
    ]
    assert axes[-1].get_xlabel() == "generation"
    assert fig._suptitle.get_text() == "Quadratic"
    for k in range(2):
        assert np.array_equal(line_data(axes[k]), history.fitness_mean[:, k])
        (band,) = axes[k].collections
        ys = np.concatenate([path.vertices[:, 1] for path in band.get_paths()])
        assert ys.min() == pytest.approx(history.fitness_min[:, k].min())
        assert ys.max() == pytest.approx(history.fitness_max[:, k].max())
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["min–max", "mean"]
    assert np.array_equal(line_data(axes[2]), history.grad_norm)
    assert np.array_equal(line_data(axes[3]), history.evals_per_second)
    assert_nothing_clipped(fig)


def test_plot_from_csv_matches_the_history(run):
    history, csv_path = run
    from_csv = plot_history(csv_path)
    from_history = plot_history(history)
    for a, b in zip(from_csv.axes, from_history.axes, strict=True):
        assert np.array_equal(line_data(a), line_data(b))
        assert a.get_ylabel() == b.get_ylabel()
    assert [ax.get_ylabel() for ax in from_csv.axes[:2]] == ["fitness 0", "fitness 1"]
    columns = read_csv(csv_path)
    assert np.array_equal(columns["generation"], np.arange(12.0))
    assert "layers" not in columns  # text column skipped
    assert_nothing_clipped(from_csv)


def test_plot_errors_name_the_problem(run, tmp_path):
    history, csv_path = run
    with pytest.raises(ValueError, match="the history is empty"):
        plot_history(History())
    with pytest.raises(FileNotFoundError, match="no CSV log at"):
        plot_history(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("step,loss\n0,1.0\n")
    with pytest.raises(
        ValueError, match=r"has no 'generation' column \(columns: \['step', 'loss'\]\)"
    ):
        plot_history(bad)
    with pytest.raises(ValueError, match=r"objective_names has 1 name\(s\) but the log holds 2"):
        plot_history(history, objective_names=["only"])
    with pytest.raises(TypeError, match="history must be a History or a CSV path, got list"):
        plot_history([1, 2])


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "es_opt.training.plot", *args],
        capture_output=True,
        text=True,
        env=env,
    )


def test_command_line_writes_the_png(run, tmp_path):
    _, csv_path = run
    out = tmp_path / "curve.png"
    done = run_cli(str(csv_path), "-o", str(out), "--objective-names", "distance,bias")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {out}"
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_command_line_reports_errors_without_a_traceback(run, tmp_path, capsys):
    _, csv_path = run
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "nope.csv")])
    assert info.value.code == 2
    assert "error: no CSV log at" in capsys.readouterr().err
    assert main([str(csv_path), "--title", "T"]) == 0  # default output: the CSV's name, .png
    assert capsys.readouterr().out.strip() == f"wrote {csv_path.with_suffix('.png')}"
    assert csv_path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_the_first_panel_shows_what_decides_solved(run, tmp_path):
    """The centre's evaluation (finite values only) and the target, in the legend too; from a
    dict or from a CSV column, on the command line as well."""
    history, csv_path = run
    evaluation = {3: -1.0, 7: float("nan"), 11: -0.5}
    fig = plot_history(history, evaluation=evaluation, evaluation_label="greedy", target=-0.25)
    mean, evaluated, target = fig.axes[0].get_lines()
    assert np.array_equal(mean.get_ydata(), history.fitness_mean[:, 0])
    assert list(evaluated.get_xdata()) == [3, 11] and list(evaluated.get_ydata()) == [-1.0, -0.5]
    assert list(target.get_ydata()) == [-0.25, -0.25]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["min–max", "mean", "greedy", "target -0.25"]
    assert len(fig.axes[1].get_lines()) == 1  # only the first objective's panel
    lines = csv_path.read_text().splitlines()
    rows = [f"{line},{'nan' if i % 4 else -i}" for i, line in enumerate(lines[1:])]
    logged = tmp_path / "with_eval.csv"
    logged.write_text("\n".join([lines[0] + ",eval", *rows]) + "\n")
    _, from_csv = plot_history(logged, evaluation="eval", target=1.0).axes[0].get_lines()[:2]
    assert list(from_csv.get_xdata()) == [0, 4, 8] and list(from_csv.get_ydata()) == [0, -4, -8]
    assert main([str(logged), "--evaluation", "eval", "--target", "1", "-o",
                 str(tmp_path / "c.png")]) == 0  # fmt: skip
    with pytest.raises(ValueError, match=r"evaluation='accuracy' is not a numeric column"):
        plot_history(logged, evaluation="accuracy")
    with pytest.raises(TypeError, match=r"evaluation must be a \{generation: value\} dict"):
        plot_history(history, evaluation=[1.0, 2.0])
