"""es_opt.training.callbacks: what each callback reports, resumes, writes and stops on."""

from __future__ import annotations

import copy
import csv
import io

import pytest
import torch

from es_opt import ESOptimizer, StepResult
from es_opt.training.callbacks import (
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    ProgressBar,
    TensorBoardLogger,
)
from es_opt.training.checkpoint import load_checkpoint
from tests.conftest import Quadratic, make_mlp


class TwoObjectives(Quadratic):
    def __call__(self, model, samples):
        return [super().__call__(model, samples), float(model.net[0].bias.sum())]


def make_es(n_objectives: int = 1, seed: int = 0) -> ESOptimizer:
    net = make_mlp(seed)
    objective = Quadratic() if n_objectives == 1 else TwoObjectives()
    return ESOptimizer(
        net,
        objective_fn=objective,
        obj_weights=[1.0] * n_objectives,
        sigma=0.05,
        n_samples=6,
        seed=seed,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9),
    )


def result(generation: int, mean: float, high: float | None = None) -> StepResult:
    high = mean if high is None else high
    return StepResult(generation, 4, (mean,), (high,), (mean - 1,), 1.0, 0.5, 0.6, ("0",))


# -- ProgressBar ---------------------------------------------------------------------------------
def test_progress_bar_shows_fitness_per_objective_speed_and_extra():
    out = io.StringIO()
    bar = ProgressBar(["dist", "bias"], extra=lambda r: {"test": 0.5, "note": "ok"}, file=out)
    history = make_es(2).fit(generations=4, callbacks=[bar])
    last = history[-1]
    expected = {
        "mean dist": f"{last.fitness_mean[0]:.4g}",
        "max dist": f"{last.fitness_max[0]:.4g}",
        "mean bias": f"{last.fitness_mean[1]:.4g}",
        "max bias": f"{last.fitness_max[1]:.4g}",
        "evals/s": f"{last.evals_per_second:.4g}",
        "test": "0.5",
        "note": "ok",
    }
    assert bar.postfix(last) == expected
    text = out.getvalue()
    assert "4/4" in text and "gen" in text
    assert f"mean dist={expected['mean dist']}" in text
    assert bar.bar is None  # closed at the end


def test_progress_bar_single_objective_labels_and_name_mismatch():
    bar = ProgressBar(file=io.StringIO())
    assert list(bar.postfix(result(0, 1.5, 2.0))) == ["mean", "max", "evals/s"]
    with pytest.raises(ValueError, match=r"objective_names has 2 name\(s\) \['a', 'b'\]"):
        ProgressBar(["a", "b"]).postfix(result(0, 1.0))
    with pytest.raises(TypeError, match="extra must be a callable result -> dict"):
        ProgressBar(extra={"a": 1})


# -- CSVLogger -----------------------------------------------------------------------------------
def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class RowCounter(Callback):
    """Reads the CSV after every step: the logger must have flushed the row already."""

    def __init__(self, path):
        self.path, self.counts = path, []

    def on_step(self, es, result):
        self.counts.append(len(read_rows(self.path)))


def test_csv_logger_writes_and_flushes_one_row_per_generation(tmp_path):
    path = tmp_path / "logs" / "run.csv"
    counter = RowCounter(path)
    history = make_es(2).fit(
        generations=3, callbacks=[CSVLogger(path, extra=lambda r: {"acc": 0.25}), counter]
    )
    assert counter.counts == [1, 2, 3]
    rows = read_rows(path)
    for row, r in zip(rows, history, strict=True):
        expected = {k: str(v) for k, v in r.as_dict().items()}
        expected["acc"] = "0.25"
        assert row == expected
    assert float(rows[2]["fitness_mean_1"]) == history[2].fitness_mean[1]  # exact round trip


def test_csv_logger_appends_on_resume_and_drops_generations_that_run_again(tmp_path):
    path = tmp_path / "run.csv"
    es = make_es()
    es.fit(generations=3, callbacks=[CSVLogger(path)])
    net_at_3 = copy.deepcopy(es.model.net.state_dict())
    state_at_3 = copy.deepcopy(es.state_dict())
    es.fit(generations=2, callbacks=[CSVLogger(path)])  # the run goes on to generation 4 ...
    reference = read_rows(path)
    assert [int(r["generation"]) for r in reference] == [0, 1, 2, 3, 4]

    resumed = make_es(seed=1)  # ... and is resumed from the state saved at generation 3
    resumed.model.net.load_state_dict(net_at_3)
    resumed.load_state_dict(state_at_3)
    resumed.fit(generations=2, callbacks=[CSVLogger(path)])

    rows = read_rows(path)
    assert [int(r["generation"]) for r in rows] == [0, 1, 2, 3, 4]
    assert rows[:3] == reference[:3]  # the rows before the resume point are kept as they were
    for row, ref in zip(rows[3:], reference[3:], strict=True):  # the others are rerun exactly
        assert row["fitness_mean_0"] == ref["fitness_mean_0"]
        assert row["grad_norm"] == ref["grad_norm"]


def test_csv_logger_starting_at_generation_zero_overwrites(tmp_path):
    path = tmp_path / "run.csv"
    make_es().fit(generations=4, callbacks=[CSVLogger(path)])
    make_es().fit(generations=2, callbacks=[CSVLogger(path)])
    assert [r["generation"] for r in read_rows(path)] == ["0", "1"]


def test_csv_logger_refuses_changed_columns(tmp_path):
    path = tmp_path / "run.csv"
    es = make_es()
    es.fit(generations=1, callbacks=[CSVLogger(path)])
    with pytest.raises(ValueError, match=r"run.csv has the columns \['generation'"):
        es.fit(generations=1, callbacks=[CSVLogger(path, extra=lambda r: {"acc": 1.0})])


# -- TensorBoardLogger ---------------------------------------------------------------------------
def scalars_in(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_tensorboard_logger_writes_every_scalar(tmp_path):
    pytest.importorskip("tensorboard")
    logger = TensorBoardLogger(tmp_path, objective_names=["dist", "bias"], extra=lambda r: {"a": 2})
    history = make_es(2).fit(generations=3, callbacks=[logger])
    scalars = scalars_in(tmp_path)
    assert set(scalars) == {
        "fitness/dist/mean", "fitness/dist/max", "fitness/dist/min",
        "fitness/bias/mean", "fitness/bias/max", "fitness/bias/min",
        "grad_norm", "evals_per_second", "time/eval", "time/step", "extra/a",
    }  # fmt: skip
    assert [s for s, _ in scalars["fitness/bias/max"]] == [0, 1, 2]
    values = [v for _, v in scalars["fitness/dist/mean"]]
    assert values == pytest.approx([r.fitness_mean[0] for r in history], rel=1e-6)
    assert [v for _, v in scalars["extra/a"]] == [2.0, 2.0, 2.0]


# -- Checkpoint ----------------------------------------------------------------------------------
def test_checkpoint_callback_saves_every_n_and_at_the_end(tmp_path):
    path = tmp_path / "ck" / "run.pt"
    callback = Checkpoint(path, every=2, config={"lr": 0.05, "name": "quad"})
    es = make_es()
    es.fit(generations=5, callbacks=[callback])
    assert callback.saved_generations == [2, 4, 5]
    raw = torch.load(path, weights_only=True)
    assert raw["es"]["generation"] == 5 and raw["config"] == {"lr": 0.05, "name": "quad"}
    for name, tensor in es.model.net.state_dict().items():
        assert torch.equal(raw["net"][name], tensor)


def test_checkpoint_callback_does_not_save_the_end_of_a_failed_run(tmp_path):
    path = tmp_path / "run.pt"
    callback = Checkpoint(path, every=2)

    class Boom(Callback):
        def on_step(self, es, result):
            if result.generation == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_es().fit(generations=6, callbacks=[callback, Boom()])
    assert callback.saved_generations == [2]
    assert load_checkpoint(path)["es"]["generation"] == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(every=0), "every must be a positive int or None, got 0"),
        (dict(every=2.5), "every must be a positive int or None, got 2.5"),
        (dict(config=lambda: 1), "config must be a dict, a dataclass instance or an argparse"),
        (dict(config={"f": print}), r"config\['f'\] is a builtins.builtin_function_or_method"),
    ],
)
def test_checkpoint_callback_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        Checkpoint(tmp_path / "x.pt", **kwargs)


# -- EarlyStopping -------------------------------------------------------------------------------
def run_stopper(stopper: EarlyStopping, means: list[float]) -> int | None:
    stopper.on_start(None, len(means))
    for g, mean in enumerate(means):
        if stopper.on_step(None, result(g, mean)):
            return g
    return None


def test_early_stopping_on_threshold():
    stopper = EarlyStopping(threshold=10.0)
    assert run_stopper(stopper, [1.0, 9.9, 10.0, 11.0]) == 2
    assert stopper.reason == (
        "EarlyStopping: fitness_mean[0] = 10 reached the threshold 10 at generation 2"
    )
    assert run_stopper(EarlyStopping(threshold=0.5, mode="min"), [3.0, 1.0, 0.4]) == 2
    assert run_stopper(EarlyStopping(threshold=5.0, metric="max"), [1.0, 2.0]) is None


def test_early_stopping_on_patience():
    # best 3.0 at generation 1; 2.5, 3.0, 2.9 do not beat it: the third of them stops the run
    stopper = EarlyStopping(patience=3)
    assert run_stopper(stopper, [1.0, 3.0, 2.5, 3.0, 2.9, 9.0]) == 4
    assert stopper.reason == (
        "EarlyStopping: fitness_mean[0] has not improved on 3 for 3 generations (generation 4)"
    )
    assert run_stopper(EarlyStopping(patience=2, min_delta=0.5), [1.0, 1.4, 1.2, 5.0]) == 2
    assert run_stopper(EarlyStopping(patience=2, mode="min"), [5.0, 4.0, 4.5, 4.0]) == 3
    stopper.on_start(None, 3)  # a new run forgets the previous best
    assert stopper.best is None and stopper.wait == 0


def test_early_stopping_stops_fit_with_its_reason():
    es = make_es()
    history = es.fit(generations=50, callbacks=[EarlyStopping(threshold=-1e9)])
    assert len(history) == 1 and history.stop_reason.startswith("EarlyStopping: fitness_mean[0]")
    with pytest.raises(ValueError, match="watches objective 1 but the objective returns 1"):
        es.fit(generations=1, callbacks=[EarlyStopping(threshold=0.0, objective=1)])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(), "EarlyStopping needs a threshold=, a patience=, or both"),
        (dict(patience=0), "patience must be a positive int or None, got 0"),
        (dict(threshold=float("nan")), "threshold must be a finite number or None, got nan"),
        (dict(threshold=1.0, mode="maximise"), "mode must be 'max' or 'min', got 'maximise'"),
        (dict(threshold=1.0, metric="median"), "metric must be 'mean', 'max' or 'min'"),
        (dict(threshold=1.0, objective=-1), "objective must be a non-negative int index, got -1"),
        (dict(patience=2, min_delta=-0.1), "min_delta must be a number >= 0, got -0.1"),
    ],
)
def test_early_stopping_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**kwargs)
