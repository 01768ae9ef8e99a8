"""python -m es_opt.record: a record and its start checkpoint become the checkpoint at generation
k without the run's code; that checkpoint resumes the run exactly; tied weights follow; a
damaged record or a run it cannot rebuild is one line on stderr and exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from es_opt import Callback, ESOptimizer, Model
from es_opt.cli import run_main
from es_opt.optim import RangerLite
from es_opt.record import RunRecord
from es_opt.record.__main__ import main
from es_opt.training.checkpoint import load_checkpoint, save_checkpoint

from .conftest import Quadratic, make_mlp

ROOT = Path(__file__).resolve().parents[1]


class SaveAt(Callback):
    def __init__(self, path, generation):
        self.path, self.generation = path, generation

    def on_step(self, es, result):
        if es.generation == self.generation:
            save_checkpoint(self.path, es, config={"note": "saved"})


class Tied(nn.Module):
    """An embedding whose weight is also the output layer's (as GPT-2's), and a buffer."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.mix = nn.Linear(3, 3)
        self.head = nn.Linear(3, 5, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, ids):
        return self.head(torch.tanh(self.mix(self.embed(ids)))) * self.scale


def build(net=None):
    net = net if net is not None else make_mlp(0, sizes=(3, 4, 2))
    return ESOptimizer(Model(net), RangerLite(net.parameters(), lr=0.05),
                       objective_fn=Quadratic(), sigma=0.2, n_samples=4, seed=2)  # fmt: skip


def test_a_checkpoint_at_k_resumes_the_run_exactly(tmp_path, capsys):
    straight = build()
    record = tmp_path / "run.record"
    saving = SaveAt(tmp_path / "3.pt", 3)
    straight.fit(generations=6, callbacks=[saving, RunRecord(record, config={"note": "start"})])
    assert main(["--record", str(record), "--generation", "3", "--output",
                 str(tmp_path / "out.pt")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "generations 0 to 5" in out and "replayed generations 0 to 2" in out
    written, saved = load_checkpoint(tmp_path / "out.pt"), load_checkpoint(tmp_path / "3.pt")
    assert written["config"] == {"note": "start"} and written["es"]["generation"] == 3
    for name, tensor in saved["net"].items():
        assert torch.equal(written["net"][name], tensor), name
    resumed = build()
    load_checkpoint(tmp_path / "out.pt", resumed)  # the run's own net and optimizer
    resumed.fit(generations=3)
    for a, b in zip(resumed.model.parameters(), straight.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_tied_weights_and_buffers_follow_into_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    net = Tied()
    es = build(net)
    record = tmp_path / "run.record"
    es.fit(generations=3, callbacks=[RunRecord(record)])
    assert main(["--record", str(record), "--output", str(tmp_path / "out.pt")]) == 0
    written = load_checkpoint(tmp_path / "out.pt")["net"]
    assert written.keys() == net.state_dict().keys()
    for name, tensor in net.state_dict().items():
        assert torch.equal(written[name], tensor), name
    assert torch.equal(written["head.weight"], written["embed.weight"])


def test_errors_are_one_line_and_exit_status_2(tmp_path, capsys):
    record = tmp_path / "run.record"
    build().fit(generations=2, callbacks=[RunRecord(record, start=None)])
    assert run_main(main, ["--record", str(record)]) == 2
    err = capsys.readouterr().err
    assert f"run record '{record}': it names no start checkpoint" in err
    record.write_bytes(record.read_bytes()[:-30] + b"X" * 29 + b"\n")
    assert run_main(main, ["--record", str(record)]) == 2
    err = capsys.readouterr().err
    assert "generation 1: the line is not valid JSON" in err and len(err.splitlines()) == 2
    assert run_main(main, ["--generation", "3"]) == 2
    assert "--record is required" in capsys.readouterr().err


def test_a_custom_shaping_function_cannot_be_rebuilt_without_the_code(tmp_path, capsys):
    net = make_mlp(0)
    es = ESOptimizer(net, objective_fn=Quadratic(), n_samples=4, shaping=lambda f: f - f.mean())
    record = tmp_path / "run.record"
    es.fit(generations=2, callbacks=[RunRecord(record)])
    assert run_main(main, ["--record", str(record)]) == 2
    assert "cannot be rebuilt from the record alone" in capsys.readouterr().err


@pytest.mark.slow
def test_the_module_runs_as_a_command(tmp_path):
    record = tmp_path / "run.record"
    build().fit(generations=2, callbacks=[RunRecord(record)])
    done = subprocess.run(
        [sys.executable, "-m", "es_opt.record", "--record", str(record), "--output",
         str(tmp_path / "out.pt")], capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(tmp_path / "out.pt")["es"]["generation"] == 2


@pytest.mark.slow
def test_the_finetune_samples_es_phase_rebuilds_from_its_record(tmp_path):
    """GPT-2 (tied embedding and head), rank-1 perturbations, TextReward: the record of the
    sample's ES phase rebuilds its final checkpoint bit for bit, without the sample's code."""
    pytest.importorskip("transformers")
    record = tmp_path / "es.record"
    done = subprocess.run(
        [sys.executable, str(ROOT / "sample_scripts" / "finetune.py"), "--smoke", "--out",
         str(tmp_path), "--record", str(record)], capture_output=True, text=True, cwd=ROOT,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert main(["--record", str(record), "--output", str(tmp_path / "replayed.pt")]) == 0
    written, saved = (
        load_checkpoint(tmp_path / "replayed.pt"),
        load_checkpoint(tmp_path / "checkpoint.pt"),
    )
    assert written["es"]["generation"] == saved["es"]["generation"] == 2
    assert written["net"].keys() == saved["net"].keys()
    for name, tensor in saved["net"].items():
        assert torch.equal(written["net"][name], tensor), name
    assert written["config"]["smoke"] is True  # the sample's configuration, for --resume


def test_the_supervised_samples_record_replays_its_learning_rate_schedule(tmp_path, capsys):
    """The sample's cosine learning-rate schedule runs before RunRecord: the record holds every
    lr and its replay ends on the sample's last checkpoint, schedule state included."""
    pytest.importorskip("sklearn")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "sample_supervised_record", ROOT / "sample_scripts" / "supervised.py"
    )
    sample = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = sample
    spec.loader.exec_module(sample)
    record = tmp_path / "run.record"
    argv = ["--generations", "4", "--n-samples", "6", "--hidden", "8", "--decay-generations", "4",
            "--out", str(tmp_path), "--record", str(record), "--quiet"]  # fmt: skip
    assert sample.main(argv) == 0
    capsys.readouterr()
    assert main(["--record", str(record), "--output", str(tmp_path / "replayed.pt")]) == 0
    written, saved = (
        load_checkpoint(tmp_path / "replayed.pt"),
        load_checkpoint(tmp_path / "checkpoint.pt"),
    )
    assert written["es"]["generation"] == saved["es"]["generation"] == 4
    for name, tensor in saved["net"].items():
        assert torch.equal(written["net"][name], tensor), name
    lrs = [g["lr"] for g in written["es"]["optimizer"]["param_groups"]]
    assert lrs == [g["lr"] for g in saved["es"]["optimizer"]["param_groups"]] and lrs[0] < 0.05
