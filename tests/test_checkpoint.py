"""es_opt.training.checkpoint: contents, weights_only loading, exact resume, atomic writes."""

from __future__ import annotations

import argparse
import copy
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import es_opt.training.checkpoint as checkpoint_module
from es_opt import CheckpointError, ESOptimizer, Model, Objective, SamplingStrategy
from es_opt.training.callbacks import Checkpoint
from es_opt.training.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import Quadratic, assert_same_params, make_mlp

ROOT = Path(__file__).resolve().parents[1]


class Drifting(Objective):
    """An objective with state that shapes future steps (as observation statistics do): the
    target moves with the number of evaluations merged so far."""

    def __init__(self):
        self.count = torch.zeros((), dtype=torch.int64)

    def __call__(self, model, samples):
        target = 0.01 * float(self.count % 7)
        return -float(sum((p - target).square().sum() for p in model.net.parameters()))

    def collect_stats(self):
        return 1

    def merge_stats(self, stats):
        self.count += sum(stats)

    def state_dict(self):
        return {"count": self.count.clone()}

    def load_state_dict(self, state):
        self.count = state["count"].clone()


def make_es(seed: int = 0, sizes=(3, 4, 2), optimizer=None) -> ESOptimizer:
    net = make_mlp(seed, sizes)
    model = Model(net, SamplingStrategy.RANDOM)
    return ESOptimizer(model, optimizer, Drifting(), sigma=0.05, n_samples=6, seed=3)


def optimizer_states_equal(a: dict, b: dict) -> None:
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        for name, value in a["state"][key].items():
            other = b["state"][key][name]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other


def test_checkpoint_holds_weights_state_and_config_and_loads_weights_only(tmp_path):
    es = make_es()
    es.fit(generations=2)
    path = tmp_path / "run.pt"
    save_checkpoint(path, es, config={"sigma": 0.05, "layers": [3, 4, 2]}, extra={"best": 1.5})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "es_opt.checkpoint" and raw["format_version"] == 2
    assert raw["config"] == {"sigma": 0.05, "layers": [3, 4, 2]}
    assert raw["extra"] == {"best": 1.5}
    assert raw["optimizer_class"] == type(es.optimizer).__name__
    assert raw["es"]["generation"] == 2 and raw["es"]["seed"] == 3
    assert raw["es"]["strategy"] == "random"
    assert torch.equal(raw["es"]["objective"]["count"], torch.tensor(12))
    for name, tensor in es.model.net.state_dict().items():
        assert torch.equal(raw["net"][name], tensor)
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's owner-only 0o600


def test_resume_continues_bit_for_bit(tmp_path):
    straight = make_es()
    straight.fit(generations=6)

    first = make_es()
    first.fit(generations=3)
    save_checkpoint(tmp_path / "run.pt", first)
    resumed = make_es(seed=9)  # other initial weights: everything must come from the file
    resumed.model.strategy = SamplingStrategy.ALL
    load_checkpoint(tmp_path / "run.pt", resumed)
    assert resumed.generation == 3 and resumed.model.strategy is SamplingStrategy.RANDOM
    resumed.fit(generations=3)

    assert_same_params(straight.model.net, resumed.model.net)
    optimizer_states_equal(straight.optimizer.state_dict(), resumed.optimizer.state_dict())
    assert torch.equal(straight.objective_fn.count, resumed.objective_fn.count)
    assert straight.generation == resumed.generation == 6


def test_resume_from_the_checkpoint_callback_matches_an_uninterrupted_fit(tmp_path):
    straight = make_es()
    reference = straight.fit(generations=5)
    path = tmp_path / "run.pt"
    make_es().fit(generations=4, callbacks=[Checkpoint(path, every=2, config={"run": "a"})])
    resumed = make_es(seed=5)
    assert load_checkpoint(path, resumed)["config"] == {"run": "a"}
    last = resumed.fit(generations=1)
    assert last[0].fitness_mean == reference[4].fitness_mean
    assert_same_params(straight.model.net, resumed.model.net)


def test_other_architecture_is_refused_naming_the_parameter_and_nothing_changes(tmp_path):
    path = tmp_path / "run.pt"
    save_checkpoint(path, make_es(sizes=(3, 4, 2)))
    wider = make_es(sizes=(3, 5, 2))
    wider.fit(generations=1)
    before_params = copy.deepcopy(wider.model.net.state_dict())
    before_state = copy.deepcopy(wider.state_dict())
    with pytest.raises(
        CheckpointError,
        match=r"run.pt': parameter '0.weight' has shape \(4, 3\) in the checkpoint but \(5, 3\)",
    ):
        load_checkpoint(path, wider)
    assert_same_params(before_params, wider.model.net.state_dict())
    assert wider.generation == before_state["generation"] == 1

    deeper = make_es(sizes=(3, 4, 4, 2))
    with pytest.raises(ValueError, match=r"missing from the checkpoint: \['4.weight', '4.bias'\]"):
        load_checkpoint(path, deeper)
    save_checkpoint(path, deeper)
    with pytest.raises(ValueError, match=r"in the checkpoint but not in the model: \['4.weight'"):
        load_checkpoint(path, make_es())


def test_other_inner_optimizer_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    save_checkpoint(path, make_es())
    net = make_mlp(0)
    es = ESOptimizer(net, torch.optim.SGD(net.parameters(), lr=0.1), Quadratic(), n_samples=4)
    with pytest.raises(CheckpointError, match=r"holds the state of a \w+ inner optimizer but "):
        load_checkpoint(path, es)


def test_not_a_checkpoint_and_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="plain.pt': not an es_opt checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


@dataclass
class RunConfig:
    lr: float
    out: Path


def test_config_forms_are_stored_as_plain_values(tmp_path):
    es = make_es()
    path = tmp_path / "run.pt"
    save_checkpoint(path, es, config=RunConfig(lr=0.1, out=tmp_path))
    assert load_checkpoint(path)["config"] == {"lr": 0.1, "out": str(tmp_path)}
    args = argparse.Namespace(
        env="CartPole-v1", sigma=np.float64(0.1), strategy=SamplingStrategy.ALL
    )
    save_checkpoint(path, es, config=args)
    config = load_checkpoint(path)["config"]
    assert config == {"env": "CartPole-v1", "sigma": 0.1, "strategy": "all"}
    assert type(config["sigma"]) is float


def test_unloadable_contents_are_refused_before_writing(tmp_path):
    path = tmp_path / "run.pt"
    es = make_es()
    save_checkpoint(path, es, config={"version": 1})
    with pytest.raises(TypeError, match=r"config\['mean'\] is a numpy.ndarray"):
        save_checkpoint(path, es, config={"mean": np.zeros(3)})
    es.objective_fn.state_dict = lambda: {"count": np.zeros(2)}  # e.g. NumPy running stats
    with pytest.raises(TypeError, match=r"es\['objective'\]\['count'\] is a numpy.ndarray"):
        save_checkpoint(path, es)
    assert load_checkpoint(path)["config"] == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]


def test_a_write_interrupted_by_an_exception_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    es = make_es()
    save_checkpoint(path, es, config={"version": 1})
    real_save = torch.save

    def save_then_fail(obj, f):  # a full disk: the bytes are written, then the write fails
        real_save(obj, f)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", save_then_fail)
    es.fit(generations=1)
    with pytest.raises(OSError, match="No space left on device"):
        save_checkpoint(path, es, config={"version": 2})
    monkeypatch.undo()
    saved = load_checkpoint(path)
    assert saved["config"] == {"version": 1} and saved["es"]["generation"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temporary file left


WRITER = textwrap.dedent(
    """
    import sys, torch
    from es_opt import ESOptimizer
    from es_opt.training.checkpoint import save_checkpoint
    es = ESOptimizer(torch.nn.Linear(3, 1), objective_fn=lambda m, s: 0.0, n_samples=4)
    save_checkpoint(sys.argv[1], es, config={"version": 1})
    print("saved", flush=True)
    big = torch.ones(60_000_000)  # 240 MB: the write takes long enough to be killed during it
    save_checkpoint(sys.argv[1], es, config={"version": 2}, extra={"big": big})
    print("done", flush=True)
    """
)


def test_a_process_killed_while_writing_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout.readline().strip() == "saved"
        deadline = time.monotonic() + 60
        partial: list[Path] = []
        while time.monotonic() < deadline and child.poll() is None:
            partial = [p for p in tmp_path.glob(".run.pt.*.tmp") if p.stat().st_size > 1 << 20]
            if partial:
                break
            time.sleep(0.001)
        assert partial, "the child finished before its temporary file could be seen"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    saved = load_checkpoint(path)
    assert saved["config"] == {"version": 1} and saved["extra"] == {}
