"""sample_scripts/supervised.py end to end: a tiny budget, and the default settings (slow)."""

from __future__ import annotations

import csv
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from es_opt.cli import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "sample_scripts" / "supervised.py"


def load_script():
    spec = importlib.util.spec_from_file_location("supervised_sample", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building Args
    spec.loader.exec_module(module)
    return module


def run(capsys, *argv: str) -> str:
    assert load_script().main(list(argv)) == 0
    return capsys.readouterr().out


def test_tiny_budget_runs_end_to_end(tmp_path, capsys):
    out = run(capsys, "--generations", "4", "--n-samples", "10", "--eval-every", "2",
              "--out", str(tmp_path), "--quiet")  # fmt: skip
    match = re.search(r"test accuracy (\d\.\d+) after 4 generations, 40 evaluations", out)
    assert match, out
    with open(tmp_path / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["generation"]) for row in rows] == [0, 1, 2, 3]
    assert (tmp_path / "curve.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "flags",
    [
        ("--model", "cnn", "--batch-size", "64", "--optimizer", "rangerlite"),
        ("--objective", "cross_entropy", "--optimizer", "ligi", "--no-vectorize"),
        ("--l1-weight", "0.1", "--optimizer", "sgd", "--lr", "0.01"),
        ("--backend", "multiprocess", "--workers", "2"),
    ],
)
def test_flags(tmp_path, capsys, flags):
    out = run(capsys, "--generations", "2", "--n-samples", "6", "--out", str(tmp_path),
              "--quiet", *flags)  # fmt: skip
    assert "after 2 generations, 12 evaluations" in out
    assert re.search(r"L1 norm of the weights \d+\.\d", out)


def test_bad_flags_are_rejected():
    with pytest.raises(ConfigError, match="argument --optimizer: invalid choice: 'lbfgs'"):
        load_script().parse_args(["--optimizer", "lbfgs"])
    with pytest.raises(ConfigError, match="argument --n-samples: invalid int value: 'many'"):
        load_script().parse_args(["--n-samples", "many"])


@pytest.mark.slow
def test_default_settings_reach_90_percent_on_digits(tmp_path, capsys):
    out = run(capsys, "--out", str(tmp_path), "--quiet")
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", out).group(1))
    assert accuracy >= 0.90, out


def test_lr_decay_flags_are_checked_and_the_schedule_is_a_cosine(tmp_path, capsys):
    script = load_script()
    with pytest.raises(ValueError, match=r"--lr-final must be in \[0, 1\].*got 1.5"):
        script.parse_args(["--lr-final", "1.5"])
    with pytest.raises(ValueError, match="--decay-generations must be >= 1, got 0"):
        script.parse_args(["--decay-generations", "0"])

    import torch

    import es_opt

    net = torch.nn.Linear(2, 1)
    es = es_opt.ESOptimizer(net, torch.optim.Adam(net.parameters(), lr=0.05), lambda m, s: 0.0)
    schedule = script.CosineLR(0.05, 0.1, 10)
    lrs = []
    for generation in (0, 5, 10, 25):  # the generation about to run
        es.generation = generation
        schedule.on_step(es, None)
        lrs.append(es.optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.05, 0.05 * 0.55, 0.005, 0.005], rel=1e-12)


def test_resume_continues_the_run_bit_for_bit(tmp_path, capsys):
    import torch

    tiny = ("--n-samples", "10", "--quiet", "--checkpoint-every", "1", "--batch-size", "128")
    run(capsys, "--generations", "4", "--out", str(tmp_path / "straight"), *tiny)
    run(capsys, "--generations", "2", "--out", str(tmp_path / "resumed"), *tiny)
    checkpoint = tmp_path / "resumed" / "checkpoint.pt"
    out = run(capsys, "--generations", "4", "--out", str(tmp_path / "resumed"), "--resume",
              str(checkpoint), *tiny)  # fmt: skip
    assert "after 2 generations, 20 evaluations" in out  # it ran only the missing generations
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(checkpoint, weights_only=True)
    assert resumed["es"]["generation"] == straight["es"]["generation"] == 4
    for name, value in straight["net"].items():
        assert torch.equal(value, resumed["net"][name]), name
    with open(tmp_path / "resumed" / "log.csv") as handle:
        assert [int(row["generation"]) for row in csv.DictReader(handle)] == [0, 1, 2, 3]
