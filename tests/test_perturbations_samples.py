"""The sample scripts' --perturbation flag (sample_scripts/supervised.py)."""

from __future__ import annotations

import re

import pytest
import torch

from .test_sample_supervised import load_script, run


def test_low_rank_flag_trains_records_the_family_and_resumes_bit_for_bit(tmp_path, capsys):
    tiny = ("--n-samples", "10", "--quiet", "--checkpoint-every", "1", "--batch-size", "128",
            "--perturbation", "lowrank(2)")  # fmt: skip
    out = run(capsys, "--generations", "3", "--out", str(tmp_path / "straight"), *tiny)
    assert "after 3 generations, 30 evaluations" in out
    run(capsys, "--generations", "2", "--out", str(tmp_path / "resumed"), *tiny)
    checkpoint = tmp_path / "resumed" / "checkpoint.pt"
    # resumed without the flag: the checkpoint's family decides
    run(capsys, "--generations", "3", "--out", str(tmp_path / "resumed"), "--resume",
        str(checkpoint), "--n-samples", "10", "--quiet", "--checkpoint-every", "1",
        "--batch-size", "128")  # fmt: skip
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(checkpoint, weights_only=True)
    assert straight["es"]["perturbation"] == resumed["es"]["perturbation"] == "lowrank(2)"
    assert straight["es"]["noise"] == "philox"
    for name, value in straight["net"].items():
        assert torch.equal(value, resumed["net"][name]), name
    run(capsys, "--generations", "3", "--out", str(tmp_path / "dense"), *tiny[:-2])
    dense = torch.load(tmp_path / "dense" / "checkpoint.pt", weights_only=True)
    assert dense["es"]["perturbation"] == "dense" and dense["es"]["noise"] == "mt19937"
    # same seed and data, other family: another trajectory
    assert any(not torch.equal(v, dense["net"][n]) for n, v in straight["net"].items())


def test_bad_perturbation_flag_is_rejected():
    for bad in ("lowrank(0)", "lowrank:"):
        message = f"--perturbation: perturbation must be .* got {re.escape(repr(bad))}"
        with pytest.raises(ValueError, match=message):
            load_script().parse_args(["--perturbation", bad])


def test_rl_sample_low_rank_resumes_exactly_and_keeps_its_family(tmp_path, capsys):
    from es_opt.training.checkpoint import load_checkpoint

    from .test_sample_rl import _run

    flags = ["--env", "Pendulum-v1", "--max-episode-steps", "25", "--n-samples", "6",
             "--eval-episodes", "1", "--eval-every", "2", "--target", "1e9",
             "--perturbation", "lowrank"]  # fmt: skip
    _run(capsys, *flags, "--generations", "4", "--out", tmp_path / "straight")
    _run(capsys, *flags, "--generations", "2", "--out", tmp_path / "split")
    first = tmp_path / "split" / "Pendulum-v1" / "policy.pt"
    # --resume takes the run's settings, the family included, from the checkpoint
    _run(capsys, "--resume", first, "--generations", "4", "--out", tmp_path / "resumed")
    a = load_checkpoint(tmp_path / "straight" / "Pendulum-v1" / "policy.pt")
    b = load_checkpoint(tmp_path / "resumed" / "Pendulum-v1" / "policy.pt")
    assert a["config"]["perturbation"] == b["config"]["perturbation"] == "lowrank"
    assert b["es"]["perturbation"] == "lowrank(1)" and b["es"]["generation"] == 4
    for name, tensor in a["net"].items():
        assert torch.equal(tensor, b["net"][name]), name
