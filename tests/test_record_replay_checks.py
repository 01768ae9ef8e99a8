"""es_opt.record.replay refuses a record that is not this run's (another model, θ₀, inner
optimizer, configuration, start state) and names the generation and the cause when a replayed
centre stops matching; the optimizer is left exactly as it was."""

from __future__ import annotations

import json
import re

import pytest
import torch

from es_opt import Callback, ESOptimizer, Model
from es_opt.optim import Ligi, RangerLite
from es_opt.record import RecordError, RunRecord, replay, resume_from_record
from es_opt.record.format import sealed_line
from es_opt.training.checkpoint import load_checkpoint, save_checkpoint

from .conftest import Quadratic, make_mlp


def build(sizes=(3, 4, 2), sigma=0.2, seed=2, optimizer=RangerLite, net_seed=0):
    net = make_mlp(net_seed, sizes=sizes)
    return ESOptimizer(Model(net), optimizer(net.parameters(), lr=0.05), objective_fn=Quadratic(),
                       sigma=sigma, n_samples=4, seed=seed)  # fmt: skip


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    path = tmp_path_factory.mktemp("record") / "run.record"
    build().fit(generations=5, callbacks=[RunRecord(path)])
    return path


def frozen(es):
    return {k: v.clone() for k, v in es.model.net.state_dict().items()}, json.dumps(
        {k: str(v) for k, v in es.state_dict().items()}
    )


def refused(es, call, generation, reason):
    before = frozen(es)
    where = "" if generation is None else f", generation {generation}"
    with pytest.raises(RecordError, match=re.escape(where + ":") + ".*" + reason) as info:
        call()
    after = frozen(es)
    assert after[1] == before[1]
    for name, value in after[0].items():
        assert torch.equal(value, before[0][name]), name
    return info.value


@pytest.mark.parametrize(
    "options, generation, reason",
    [
        (dict(sizes=(3, 5, 2)), None, r"another model: parameter '0.weight' is float32 of "
         r"shape \(4, 3\) in the record but float32 of shape \(5, 3\) here"),
        (dict(optimizer=Ligi), None, "inner optimizer es_opt.optim.RangerLite, but this "
         "ESOptimizer uses es_opt.optim.Ligi"),
        (dict(net_seed=1), 0, "θ₀ differs from the record's"),
        (dict(sigma=0.3), 0, "sigma is 0.3 but the record's is 0.2"),
        (dict(seed=3), 0, "seed is 3 but the record's is 2"),
    ],
    ids=["other-model", "other-optimizer", "edited-theta0", "other-sigma", "other-seed"],
)  # fmt: skip
def test_a_record_of_another_run_is_refused(record, options, generation, reason):
    es = build(**options)
    refused(es, lambda: replay(es, record, 3), generation, reason)


def test_another_start_state_is_refused(record):
    es = build()
    es.optimizer.state[next(iter(es.model.parameters()))]["step"] = torch.tensor(1.0)
    refused(es, lambda: replay(es, record, 3), 0, "state .* differs from the record's start")


def test_an_edited_start_checkpoint_is_refused_and_nothing_changes(record, tmp_path):
    saved = load_checkpoint(record.with_name("run.start.pt"))
    es = build()
    with torch.no_grad():
        es.model.net[0].bias.add_(1e-6)  # one edited weight in θ₀
    save_checkpoint(tmp_path / "edited.pt", es)
    fresh = build()
    refused(fresh, lambda: resume_from_record(fresh, record, 3, start=tmp_path / "edited.pt"), 0,
            "θ₀ differs")  # fmt: skip
    assert fresh.generation == 0 and saved["es"]["generation"] == 0


def test_an_optimizer_at_an_unrecorded_generation_is_refused(record):
    es = build()
    es.fit(generations=2)
    with torch.no_grad():
        es.model.net[2].bias.mul_(2)
    refused(es, lambda: replay(es, record, 4), 1, "centre is not the one the record holds")


class SlowerAfterRecord(Callback):
    def on_step(self, es, result):
        for group in es.optimizer.param_groups:
            group["lr"] *= 0.5


def test_a_setting_changed_behind_the_records_back_is_named_at_its_generation(tmp_path):
    """A schedule placed after RunRecord: the record misses the first change, and the replay
    says at which generation it diverges and that the environment is the same."""
    path = tmp_path / "run.record"
    build().fit(generations=4, callbacks=[RunRecord(path), SlowerAfterRecord()])
    es = build()
    error = refused(es, lambda: resume_from_record(es, path, 4), 1,
                    "differs from the recorded one .*a callback after RunRecord")  # fmt: skip
    assert error.generation == 1 and error.path == str(path)


def test_another_environment_is_named_when_the_centre_differs(record, tmp_path):
    """A record whose header says another torch and device: a digest that differs is put down to
    them (simulated: the header and generation 2's digest rewritten, every sum resealed)."""
    lines = record.read_bytes().split(b"\n")[:-1]
    bodies = [json.loads(line) for line in lines]
    for body in bodies:
        body.pop("sum")
    bodies[0]["environment"].update(torch="2.0.0", device="cuda (NVIDIA A100-SXM4-80GB)")
    bodies[3]["theta"] = "f" * 32
    text, previous = b"", None
    for body in bodies:
        line, previous = sealed_line(body, previous)
        text += line
    path = tmp_path / "run.record"
    path.write_bytes(text)
    (tmp_path / "run.start.pt").write_bytes(record.with_name("run.start.pt").read_bytes())
    es = build()
    refused(es, lambda: resume_from_record(es, path, 5), 2,
            r"another environment .*torch 2\.0\.0 there, .* here; device cuda \(NVIDIA "
            r"A100-SXM4-80GB\) there, cpu here")  # fmt: skip
    resume_from_record(es, path, 2)  # up to there it replays
    assert es.generation == 2


def test_a_bad_generation_is_refused(record):
    es = build()
    with pytest.raises(TypeError, match="generation must be an int or None, got '3'"):
        replay(es, record, "3")
    refused(es, lambda: replay(es, record, -1), -1, "cannot replay to it")
