"""Missing optional packages: every feature that needs one says which extra to install.

The package is hidden by putting ``None`` in ``sys.modules`` (what Python does for a module that
cannot be imported), in this process for features imported lazily, and in a fresh interpreter for
modules that import the package when they are imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from es_opt import MissingExtraError, StepResult
from es_opt.training import History
from es_opt.training.callbacks import ProgressBar, TensorBoardLogger
from es_opt.training.plot import plot_history

ROOT = Path(__file__).resolve().parents[1]


def hide(monkeypatch, *modules: str) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_progress_bar_without_tqdm(monkeypatch):
    hide(monkeypatch, "tqdm")
    with pytest.raises(MissingExtraError) as info:
        ProgressBar()
    assert str(info.value) == 'tqdm is needed for ProgressBar: pip install "es_opt[progress]"'
    assert info.value.extra == "progress" and isinstance(info.value, ImportError)


def test_plot_without_matplotlib(monkeypatch):
    history = History([StepResult(0, 2, (1.0,), (2.0,), (0.0,), 0.5, 0.01, 0.02, ())])
    hide(monkeypatch, "matplotlib", "matplotlib.figure")
    with pytest.raises(
        MissingExtraError,
        match=r'matplotlib is needed for es_opt.training.plot: pip install "es_opt\[plot\]"',
    ):
        plot_history(history, "curve.png")


@pytest.mark.parametrize("hidden", [("torch.utils.tensorboard",), ("tensorboard",)])
def test_tensorboard_logger_without_tensorboard(monkeypatch, hidden):
    if hidden == ("tensorboard",):
        # torch.utils.tensorboard imports the tensorboard package when it is first imported
        for name in [m for m in sys.modules if m.startswith("torch.utils.tensorboard")]:
            monkeypatch.delitem(sys.modules, name)
    hide(monkeypatch, *hidden)
    with pytest.raises(MissingExtraError) as info:
        TensorBoardLogger("runs/tb")
    assert str(info.value) == (
        'tensorboard is needed for TensorBoardLogger: pip install "es_opt[tensorboard]"'
    )


FRESH = textwrap.dedent(
    """
    import json, sys
    for name in sys.argv[1:]:
        sys.modules[name] = None
    import torch
    import es_opt, es_opt.training, es_opt.training.plot
    optional = ("matplotlib", "tensorboard", "ray", "gymnasium", "transformers")  # tqdm: torch
    messages = {"imported": [m for m in optional if sys.modules.get(m) is not None]}
    try:
        from es_opt.rl import EpisodeReturn
        EpisodeReturn("CartPole-v1")
        messages["rl"] = "no error"
    except Exception as exc:
        messages["rl"] = f"{type(exc).__name__}: {exc}"
    from es_opt import ESOptimizer
    try:
        es = ESOptimizer(torch.nn.Linear(2, 1), objective_fn=lambda m, s: 0.0, n_samples=4,
                         backend="ray", n_workers=2)
        es.gradient_step()
        messages["ray"] = "no error"
    except Exception as exc:
        messages["ray"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(messages))
    """
)


def test_rl_and_ray_without_their_packages():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", FRESH, "gymnasium", "ray"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    messages = json.loads(done.stdout.strip().splitlines()[-1])
    assert messages["imported"] == []  # importing es_opt and its callbacks pulls in no extra
    assert messages["rl"].startswith("MissingExtraError: gymnasium is needed for ")
    assert messages["rl"].endswith('pip install "es_opt[rl]"')
    assert messages["ray"].startswith("MissingExtraError: ray is needed for ")
    assert messages["ray"].endswith('pip install "es_opt[ray]"')


def test_plot_command_line_without_matplotlib(tmp_path):
    csv_path = tmp_path / "run.csv"
    csv_path.write_text("generation,fitness_mean_0,fitness_max_0,fitness_min_0\n0,1,2,0\n")
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "from es_opt.training.plot import main; main()"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", code, str(csv_path)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 2
    assert (
        'matplotlib is needed for es_opt.training.plot: pip install "es_opt[plot]"' in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_a_present_extra_is_returned():
    from es_opt.errors import require

    assert require("torch", "core") is torch
    with pytest.raises(
        MissingExtraError, match=r'no_such_pkg is needed for X: pip install "es_opt\[all\]"'
    ):
        require("no_such_pkg.sub", "all", "X")
