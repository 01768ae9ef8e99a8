"""sample_scripts/rl.py: solves CartPole-v1 with its defaults, every flag runs on a tiny budget, and
--resume continues a run exactly."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from es_opt.cli import ConfigError
from es_opt.training.checkpoint import load_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "sample_scripts" / "rl.py"


def _script():
    spec = importlib.util.spec_from_file_location("sample_rl", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building Args
    spec.loader.exec_module(module)
    return module


def _run(capsys, *argv):
    threads = torch.get_num_threads()
    try:
        assert _script().main([*map(str, argv), "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr().out


def _greedy_return(out):
    line = [x for x in out.splitlines() if "greedy return" in x][-1]
    return float(line.split("greedy return ")[1].split()[0])


@pytest.mark.slow
def test_defaults_solve_cartpole(tmp_path, capsys):
    out = _run(capsys, "--out", tmp_path)
    assert "solved in" in out and "(solved)" in out
    assert _greedy_return(out) >= 475
    run = tmp_path / "CartPole-v1"
    assert (run / "curve.png").stat().st_size > 1000
    checkpoint = load_checkpoint(run / "policy.pt")
    assert checkpoint["config"]["env"] == "CartPole-v1" and checkpoint["extra"]["solved"]
    # the saved policy is what --eval-only evaluates, on the same unseen seeds
    again = _run(capsys, "--eval-only", run / "policy.pt", "--out", tmp_path / "eval")
    assert _greedy_return(again) == _greedy_return(out)


@pytest.mark.parametrize(
    "flags",
    [
        ["--env", "Pendulum-v1", "--optimizer", "adam", "--policy", "linear", "--action", "tanh"],
        ["--env", "Acrobot-v1", "--optimizer", "sgd", "--strategy", "bottom_up", "--episodes", "2"],
        ["--env", "MountainCarContinuous-v0", "--optimizer", "ligi", "--no-vectorize"],
        [
            "--policy",
            "mlp",
            "--hidden",
            "4",
            "--sigma",
            "0.3",
            "--n-samples",
            "6",
            "--no-normalize",
        ],
    ],
    ids=["pendulum-adam-tanh", "acrobot-sgd-bottom-up", "mountaincar-ligi-serial", "cartpole-mlp"],
)
def test_tiny_budget_runs_of_the_flags(tmp_path, capsys, flags):
    out = _run(capsys, *flags, "--generations", "2", "--max-episode-steps", "30", "--target", "1e9",
               "--eval-episodes", "2", "--out", tmp_path)  # fmt: skip
    env = flags[1] if flags[0] == "--env" else "CartPole-v1"
    saved = load_checkpoint(tmp_path / env / "policy.pt")
    assert saved["es"]["generation"] == 2
    assert saved["config"]["max_episode_steps"] == 30
    assert "after 2 generations" in out and "over 2 unseen episodes" in out
    if "--hidden" in flags:
        assert saved["net"]["0.weight"].shape == (4, 4) and saved["es"]["sigma"] == 0.3


@pytest.mark.slow
def test_multiprocess_backend_runs(tmp_path, capsys):
    out = _run(capsys, "--backend", "multiprocess", "--workers", "2", "--generations", "2",
               "--max-episode-steps", "30", "--out", tmp_path)  # fmt: skip
    assert "after 2 generations" in out


@pytest.mark.slow
def test_mujoco_preset_is_ars_and_counts_every_workers_steps(tmp_path, capsys):
    pytest.importorskip("mujoco")
    out = _run(capsys, "--env", "HalfCheetah-v5", "--generations", "2", "--max-episode-steps",
               "20", "--eval-episodes", "1", "--out", tmp_path)  # fmt: skip
    config = load_checkpoint(tmp_path / "HalfCheetah-v5" / "policy.pt")["config"]
    assert config["shaping"] == "top_pairs(4)" and config["optimizer"] == "sgd"
    assert config["momentum"] == 0.0 and config["lr"] == pytest.approx(2 * 0.03 * 0.02)
    assert config["backend"] == "multiprocess"
    # HalfCheetah never terminates: 2 generations x 64 evaluations x 20 steps, played by workers
    assert "2 generations, 2560 environment steps" in out


def test_reward_shift_reaches_the_training_fitness_not_the_evaluation(tmp_path, capsys):
    import csv

    # CartPole pays +1 per step: with a shift of -1 every training return is exactly 0
    out = _run(capsys, "--reward-shift", "-1", "--generations", "2", "--max-episode-steps", "40",
               "--eval-episodes", "2", "--target", "1e9", "--out", tmp_path)  # fmt: skip
    with open(tmp_path / "CartPole-v1" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    for row in rows:
        assert float(row["fitness_min_0"]) == float(row["fitness_max_0"]) == 0.0, row
    assert _greedy_return(out) >= 8.0  # evaluation plays the real rewards (every episode >= 8)
    config = load_checkpoint(tmp_path / "CartPole-v1" / "policy.pt")["config"]
    assert config["reward_shift"] == -1.0


def test_resume_continues_exactly(tmp_path, capsys):
    flags = ["--env", "Pendulum-v1", "--max-episode-steps", "25", "--n-samples", "6",
             "--eval-episodes", "1", "--eval-every", "2", "--target", "1e9"]  # fmt: skip
    _run(capsys, *flags, "--generations", "5", "--out", tmp_path / "straight")
    _run(capsys, *flags, "--generations", "2", "--out", tmp_path / "split")
    first = tmp_path / "split" / "Pendulum-v1" / "policy.pt"
    assert load_checkpoint(first)["es"]["generation"] == 2
    _run(capsys, "--resume", first, "--generations", "5", "--out", tmp_path / "resumed")
    a = load_checkpoint(tmp_path / "straight" / "Pendulum-v1" / "policy.pt")
    b = load_checkpoint(tmp_path / "resumed" / "Pendulum-v1" / "policy.pt")
    assert b["es"]["generation"] == 5
    for name, tensor in a["net"].items():
        assert torch.equal(tensor, b["net"][name]), name
    assert a["es"]["objective"] == b["es"]["objective"]  # the observation statistics
    assert a["es"]["objective"]["obs_normalizer"]["count"] == 5 * 6 * 25


@pytest.mark.slow
def test_resuming_a_checkpoint_saved_before_the_newer_settings(tmp_path, capsys):
    """A checkpoint whose config lacks shaping/momentum/reward_shift resumes with what it ran
    with (centered ranks, 0.9, no shift), not with the environment's newer preset (Hopper's
    preset shifts rewards by -1)."""
    pytest.importorskip("mujoco")
    flags = ["--env", "Hopper-v5", "--max-episode-steps", "200", "--eval-episodes", "1",
             "--backend", "serial", "--target", "1e9"]  # fmt: skip
    old = ["--reward-shift", "0", "--shaping", "centered_ranks", "--momentum", "0.9"]
    _run(capsys, *flags, *old, "--generations", "3", "--out", tmp_path / "straight")
    _run(capsys, *flags, *old, "--generations", "1", "--out", tmp_path / "split")
    saved = tmp_path / "split" / "Hopper-v5" / "policy.pt"
    checkpoint = torch.load(saved, weights_only=False)
    for key in ("shaping", "momentum", "reward_shift"):
        del checkpoint["config"][key]
    torch.save(checkpoint, saved)
    _run(capsys, "--resume", saved, "--generations", "3", "--out", tmp_path / "resumed")
    a = load_checkpoint(tmp_path / "straight" / "Hopper-v5" / "policy.pt")
    b = load_checkpoint(tmp_path / "resumed" / "Hopper-v5" / "policy.pt")
    assert b["es"]["generation"] == 3 and b["config"]["reward_shift"] == 0.0
    for name, tensor in a["net"].items():
        assert torch.equal(tensor, b["net"][name]), name


def test_eval_only_and_render_without_the_rendering_extra(tmp_path, capsys):
    _run(capsys, "--generations", "1", "--max-episode-steps", "20", "--out", tmp_path)
    saved = tmp_path / "CartPole-v1" / "policy.pt"
    out = _run(capsys, "--eval-only", saved, "--eval-episodes", "3")
    assert "over 3 unseen episodes" in out and "after 1 generations" in out
    try:
        import pygame  # noqa: F401

        has_pygame = True
    except ImportError:
        has_pygame = False
    gif = tmp_path / "cartpole.gif"
    if has_pygame:
        _run(capsys, "--eval-only", saved, "--render", gif)
        assert gif.stat().st_size > 0
    else:
        with pytest.raises(SystemExit, match=r'rendering extra: pip install "es_opt\[render\]"'):
            _run(capsys, "--eval-only", saved, "--render", gif)


def test_bad_flags_fail_before_training(tmp_path, capsys):
    with pytest.raises(ConfigError, match="argument --optimizer: invalid choice: 'lbfgs'"):
        _script().main(["--optimizer", "lbfgs"])
    with pytest.raises(ValueError, match="unknown environment id 'CartPol-v1'"):
        _run(capsys, "--env", "CartPol-v1", "--out", tmp_path)
    with pytest.raises(ValueError, match="n_samples must be an even int"):
        _run(capsys, "--n-samples", "5", "--out", tmp_path)
    with pytest.raises(ValueError, match="shaping must be one of .*'top_pairs\\(k\\)'.*'softmax'"):
        _run(capsys, "--shaping", "softmax", "--out", tmp_path)
    assert not (tmp_path / "CartPole-v1").exists()
