"""es_opt.training.mlflow_logger: an RL sample run logged to a real local MLflow store (sqlite)
holds the CSV log's numbers, the run's settings and the run record, read back with MlflowClient;
without mlflow the logger says which extra to install; ``import es_opt`` never imports it."""

from __future__ import annotations

import csv
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from es_opt import ESOptimizer, MissingExtraError
from es_opt.training import History

from .conftest import Quadratic, make_mlp

ROOT = Path(__file__).resolve().parents[1]


def rl_sample():
    spec = importlib.util.spec_from_file_location(
        "sample_rl_mlflow", ROOT / "sample_scripts" / "rl.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_rl_sample(tmp_path, *flags):
    threads = torch.get_num_threads()
    try:
        argv = ["--generations", "4", "--max-episode-steps", "30", "--eval-every", "2",
                "--eval-episodes", "2", "--n-samples", "6", "--out", str(tmp_path), "--quiet",
                "--record", str(tmp_path / "run.record"), *flags]  # fmt: skip
        assert rl_sample().main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    with open(tmp_path / "CartPole-v1" / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def logged_like_the_csv(rows, logged):
    """``logged[column][generation]`` holds every finite CSV value, and nothing else."""
    for row in rows:
        generation = int(row["generation"])
        for column, text in row.items():
            if column in ("generation", "layers"):
                continue
            value = float(text)
            if math.isfinite(value):
                assert logged[column][generation] == value, (column, generation)
            else:
                assert generation not in logged.get(column, {}), (column, generation)


@pytest.mark.slow
def test_the_rl_sample_logs_the_csv_numbers_settings_and_record(tmp_path, monkeypatch):
    pytest.importorskip("gymnasium")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow keeps a sqlite store's artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rows = run_rl_sample(tmp_path, "--mlflow", uri)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("CartPole-v1").experiment_id])
    assert run.info.status == "FINISHED"
    logged = {
        key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
        for key in run.data.metrics
    }
    assert {"fitness_mean_0", "grad_norm", "eval_return", "target"} <= logged.keys()
    assert "layers" not in logged and "generation" not in logged
    logged_like_the_csv(rows, logged)
    assert sorted(logged["eval_return"]) == [1, 3]  # evaluated every 2 generations
    params = run.data.params
    assert params["config/env"] == "CartPole-v1" and params["es/n_samples"] == "6"
    assert params["es/optimizer"] == "RangerLite"
    (artifact,) = client.list_artifacts(run.info.run_id, "run_record")
    assert artifact.path == "run_record/run.record"
    local = client.download_artifacts(run.info.run_id, artifact.path, str(tmp_path / "back"))
    assert Path(local).read_bytes() == (tmp_path / "run.record").read_bytes()


def test_without_mlflow_the_logger_names_the_extra(monkeypatch):
    from es_opt.training.mlflow_logger import MLflowLogger

    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingExtraError, match=r'mlflow is needed for MLflowLogger: pip install '
                       r'"es_opt\[mlflow\]"'):  # fmt: skip
        MLflowLogger("sqlite:///mlflow.db")


def test_bad_arguments_are_refused_before_anything_is_logged():
    pytest.importorskip("mlflow")
    from es_opt.training.mlflow_logger import MLflowLogger

    with pytest.raises(ValueError, match="experiment must be a non-empty str, got ''"):
        MLflowLogger(experiment="")
    with pytest.raises(TypeError, match="extra must be a callable result -> dict or None"):
        MLflowLogger(extra={"a": 1})
    with pytest.raises(TypeError, match="config must be a dict, a dataclass"):
        MLflowLogger(config=[1, 2])
    es = ESOptimizer(make_mlp(0), objective_fn=Quadratic(), n_samples=4)
    logger = MLflowLogger()
    with pytest.raises(RuntimeError, match="on_step called before on_start"):
        logger.on_step(es, es.gradient_step())
    logger.on_end(es, History())  # never started: nothing to close


def test_import_es_opt_never_imports_the_trackers():
    code = (
        "import sys, es_opt, es_opt.training, es_opt.record\n"
        "import es_opt.training.mlflow_logger, es_opt.training.wandb_logger\n"
        "print(sorted(m for m in ('mlflow', 'wandb') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
