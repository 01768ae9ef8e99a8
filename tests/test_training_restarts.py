"""Restarts of an ESOptimizer run: the one IPOP/BIPOP schedule (reference values of the BIPOP
draws, shared with `Restarts`), `ESOptimizer.restart` (the state of a fresh optimizer, the
generation counting on, float32 master weights, arguments checked before anything changes), the
`RestartOnStop` callback (IPOP doubles λ, BIPOP follows `Restarts`' schedule, the history of
every run, start points), an exact resume mid-sequence, and the sample scripts' flags."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from es_opt import ESOptimizer, Model
from es_opt.distributions import CMAES
from es_opt.distributions.restart_schedule import RestartSchedule
from es_opt.distributions.restarts import Restarts
from es_opt.distributions.stopping import StopConditions
from es_opt.optim import Lookahead, RangerLite
from es_opt.precision import stepped_parameters
from es_opt.training import Callback, Checkpoint, RestartOnStop
from es_opt.training.checkpoint import load_checkpoint

from .conftest import Quadratic, make_mlp, trainable_state

pytestmark = pytest.mark.usefixtures("one_thread")


def assert_same(a, b, where="state"):
    """Equal nested values, tensors bit for bit."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, a.keys(), b.keys())
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# -- the schedule ------------------------------------------------------------------------------
def test_bipop_schedule_reference_values():
    """Values the schedule gave before it was split out of `Restarts` (seed 0, λ₀ = 8, σ₀ = 2,
    d = 4): run 2 after a small and a large run, run 5 after two of each; λ₀ (2^k)^{U'²} with
    k = 1 and 2 large runs, σ₀ 10^{−2U}, and at most half the large evaluations."""
    schedule = RestartSchedule("bipop", 8, 2.0, dim=4, seed=0, max_restarts=2)
    maxiter0 = 100 + 150 * 7**2 / math.sqrt(8)
    assert schedule.next_run([]) == ("small", 8, 2.0, maxiter0)
    runs = [{"regime": "small", "evaluations": 800}, {"regime": "large", "evaluations": 2000}]
    assert schedule.next_run(runs) == ("small", 10, 1.1776457412046715, 100.0)
    runs += [{"regime": "small", "evaluations": 900}, {"regime": "large", "evaluations": 5000}]
    runs += [{"regime": "small", "evaluations": 600}]
    assert schedule.next_run(runs) == ("small", 23, 1.5952108077297271, 0.5 * 7000 / 23)
    mirrored = RestartSchedule("bipop", 8, 2.0, dim=4, seed=0, antithetic=True)
    assert mirrored.next_run(runs)[1] == 24  # rounded up to whole pairs
    runs += [{"regime": "small", "evaluations": 7000}]  # the small regime caught up: large
    assert schedule.next_run(runs) == ("large", 64, 2.0, maxiter0)  # λ₀ 2^{2+1}
    assert not schedule.spent(runs[:3]) and schedule.spent(runs[:4])
    ipop = RestartSchedule("ipop", 6, 0.5, dim=2, max_restarts=2)
    assert [ipop.next_run([{}] * k)[1] for k in range(4)] == [6, 12, 24, 48]
    assert not ipop.spent([{"regime": "large"}] * 2) and ipop.spent([{"regime": "large"}] * 3)
    with pytest.raises(ValueError, match="strategy must be one of 'ipop', 'bipop', got 'lpop'"):
        RestartSchedule("lpop", 8, 2.0, dim=4)


def test_restarts_uses_the_schedule():
    search = Restarts(CMAES(), torch.zeros(4), 2.0, strategy="bipop", n_samples=8, seed=0)
    assert isinstance(search.schedule, RestartSchedule)
    assert (search.n_samples0, search.sigma0, search.maxiter0) == (
        8,
        2.0,
        100 + 150 * 49 / math.sqrt(8),
    )
    assert search._run["regime"] == "small" and search._run["n_samples"] == 8


# -- ESOptimizer.restart -----------------------------------------------------------------------
def fresh_es(distribution, net, *, sigma, n_samples, optimizer="rangerlite", seed=0):
    inner = RangerLite(net.parameters(), lr=0.05)
    if optimizer == "lookahead":
        inner = Lookahead(torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9), sync_period=2)
    return ESOptimizer(Model(net), inner, objective_fn=Quadratic(), sigma=sigma,
                       n_samples=n_samples, seed=seed, distribution=distribution)  # fmt: skip


@pytest.mark.parametrize(
    ("distribution", "optimizer"),
    [("openai", "rangerlite"), ("snes", "lookahead"), ("cma", "rangerlite"),
     ("sep_cma", "rangerlite"), ("cem", "lookahead")],
)  # fmt: skip
def test_restart_gives_a_fresh_optimizers_state(distribution, optimizer):
    """After three steps and a restart, the state is a new ESOptimizer's with that σ, λ and
    centre (distribution state, σ vector, empty optimizer state) but for the generation, and
    the next steps equal that optimizer's steps from the same generation, bit for bit."""
    net = make_mlp(0)
    es = fresh_es(distribution, net, sigma=0.1, n_samples=6, optimizer=optimizer)
    for _ in range(3):
        es.gradient_step()
    assert es.optimizer.state_dict()["state"]  # moments (and slow weights) to clear
    center = trainable_state(make_mlp(7))
    es.restart(sigma=0.3, n_samples=10, center=center)
    assert es.generation == 3 and es.sigma == 0.3 and es.n_samples == 10
    other = make_mlp(7)
    reference = fresh_es(distribution, other, sigma=0.3, n_samples=10, optimizer=optimizer)
    assert_same(trainable_state(net), trainable_state(other), "parameters")
    assert_same(es.optimizer.state_dict(), reference.optimizer.state_dict(), "optimizer")
    ours, theirs = es.state_dict(), reference.state_dict()
    assert (ours.pop("generation"), theirs.pop("generation")) == (3, 0)
    assert (ours.pop("n_objectives"), theirs.pop("n_objectives")) == (1, None)
    assert_same(ours, theirs)
    reference.load_state_dict({**reference.state_dict(), "generation": 3})
    for _ in range(2):
        a, b = es.gradient_step(), reference.gradient_step()
        assert a.generation == b.generation and torch.equal(a.fitness, b.fitness)
    assert_same(trainable_state(net), trainable_state(other), "parameters after two steps")
    assert_same(es.state_dict(), reference.state_dict(), "after two steps")


def test_restart_keeps_what_is_not_given_and_can_keep_the_optimizer():
    net = make_mlp(0)
    es = fresh_es("cma", net, sigma=0.2, n_samples=6)
    es.gradient_step()
    before, moments = trainable_state(net), es.optimizer.state_dict()
    es.restart(reset_optimizer=False)
    assert_same(trainable_state(net), before, "parameters")
    assert_same(es.optimizer.state_dict(), moments, "optimizer")
    assert (es.sigma, es.n_samples, es.generation) == (0.2, 6, 1)
    assert float(es.state.distribution_state["sigma"]) == 0.2
    assert torch.equal(es.state.distribution_state["C"], torch.eye(26))


def test_restart_of_a_bfloat16_net_sets_the_float32_master_weights():
    """The float32 master copy takes the centre's full value (here 1 + 2⁻¹², which bfloat16
    rounds to 1), the net its cast, and the next step starts from the master copy."""
    net = make_mlp(0, dtype=torch.bfloat16)
    es = fresh_es("openai", net, sigma=0.1, n_samples=4)
    es.gradient_step()
    center = {name: torch.full(p.shape, 1 + 2**-12) for name, p in net.named_parameters()}
    es.restart(center=center)
    master = stepped_parameters(es)
    for name, p in net.named_parameters():
        assert master[name].dtype == torch.float32 and torch.equal(master[name], center[name])
        assert p.dtype == torch.bfloat16 and bool((p == 1).all())
    population = es.ask()
    assert torch.equal(population.center, torch.full_like(population.center, 1 + 2**-12))


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"n_samples": 7}, ValueError, "n_samples must be an even int >= 2, got 7"),
        ({"sigma": 0.0}, ValueError, "sigma must be a finite number > 0, got 0.0"),
        ({"sigma": -1.0}, ValueError, "sigma must be a finite number > 0"),
        ({"center": {"0.weight": torch.zeros(4, 3)}}, ValueError,
         r"missing \['0.bias', '2.bias', '2.weight'\], unexpected \[\]"),
        ({"center": "zeros"}, TypeError, "center must be a mapping name -> tensor"),
        ({"center": "shape"}, ValueError,
         r"center\['2.weight'\] must have the parameter's shape \(2, 4\), got \(4, 2\)"),
        ({"center": "extra"}, ValueError, r"missing \[\], unexpected \['3.weight'\]"),
        ({"center": "nan"}, ValueError, r"center\['0.bias'\] must be finite"),
        ({"center": "list"}, TypeError, r"center\['0.bias'\] must be a tensor, got list"),
        ({"reset_optimizer": "yes"}, TypeError, "reset_optimizer must be True or False"),
    ],
)  # fmt: skip
def test_bad_restart_arguments_change_nothing(changes, error, match):
    net = make_mlp(0)
    es = fresh_es("openai", net, sigma=0.1, n_samples=4)
    es.gradient_step()
    good = trainable_state(make_mlp(3))
    bad = {
        "shape": {**good, "2.weight": torch.zeros(4, 2)},
        "extra": {**good, "3.weight": torch.zeros(1)},
        "nan": {**good, "0.bias": torch.full((4,), math.nan)},
        "list": {**good, "0.bias": [0.0] * 4},
    }
    if isinstance(changes.get("center"), str) and changes["center"] in bad:
        changes = {"center": bad[changes["center"]]}
    before, params = es.state_dict(), trainable_state(net)
    with pytest.raises(error, match=match):
        es.restart(**{"sigma": 0.5, "n_samples": 8, "center": good, **changes})
    assert_same(es.state_dict(), before)
    assert_same(trainable_state(net), params, "parameters")


# -- the callback ------------------------------------------------------------------------------
class Bowl:
    """(w − 0.5)² + b² of an nn.Linear(1, 1), to minimise (obj_weights = [−1])."""

    def __call__(self, model, samples):
        return float((model.net.weight - 0.5).square().sum() + model.net.bias.square().sum())


class Starts(Callback):
    """The parameters each run starts from (after the step that restarted it)."""

    def __init__(self):
        self.starts, self.size = [], None

    def on_step(self, es, result):
        if es.n_samples != self.size:
            self.starts.append(trainable_state(es.model.net))
            self.size = es.n_samples


def bowl_es(seed=0, init=0):
    net = nn.Linear(1, 1)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(init)
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    es = ESOptimizer(Model(net), torch.optim.SGD(net.parameters(), lr=1.0), objective_fn=Bowl(),
                     obj_weights=[-1.0], sigma=0.3, n_samples=6, seed=seed,
                     distribution="cma")  # fmt: skip
    return es, net


def test_ipop_doubles_the_population_and_keeps_every_runs_history():
    es, net = bowl_es()
    start = trainable_state(net)
    restarts, starts = RestartOnStop("ipop", max_restarts=3), Starts()
    history = es.fit(generations=5000, callbacks=[restarts, starts])
    runs = restarts.runs
    assert [run["n_samples"] for run in runs] == [6, 12, 24, 48]
    assert [run["regime"] for run in runs] == ["large"] * 4
    assert all(run["sigma0"] == 0.3 and run["stop"] for run in runs)
    assert restarts.current is None and es.state.restarts["done"]
    assert history.stop_reason.startswith("RestartOnStop: run 3 (large, λ=48) stopped (")
    assert history.stop_reason.endswith("and the 3 restarts are spent")
    generation = 0
    for run in runs:  # consecutive runs, each generation's values from the fitness
        assert run["start_generation"] == generation and run["generations"] == len(run["best"])
        results = history.results[generation : generation + len(run["best"])]
        assert [r.n_evals for r in results] == [run["n_samples"]] * len(results)
        assert run["best"] == [float(r.fitness.min()) for r in results]
        assert run["median"] == [float(r.fitness[:, 0].median()) for r in results]
        assert run["evaluations"] == sum(r.n_evals for r in results)
        assert run["best_value"] == min(run["best"]) < 1e-10
        generation += len(run["best"])
    assert generation == len(history) == es.generation
    assert len(starts.starts) == 4  # every run started from the first run's start
    for state in starts.starts[1:]:
        assert_same(state, start, "start")
    again = es.fit(generations=10, callbacks=[restarts])  # spent: one step, then it stops
    assert len(again) == 1 and again.stop_reason == (
        f"RestartOnStop: the restarts were spent before generation {generation + 1}"
    )


def test_bipop_follows_the_schedule_of_restarts():
    """The callback's runs are those `Restarts` schedules from the same records, seed, λ₀, σ₀
    and dimension; the small runs' draws come from the given seed."""
    es, _ = bowl_es(seed=11)
    restarts = RestartOnStop("bipop", max_restarts=2, seed=3)
    es.fit(generations=5000, callbacks=[restarts])
    runs = restarts.runs
    reference = Restarts(CMAES(), torch.zeros(2), 0.3, strategy="bipop", n_samples=6, seed=3,
                         max_restarts=2).schedule  # fmt: skip
    for k, run in enumerate(runs):
        scheduled = (run["regime"], run["n_samples"], run["sigma0"], run["maxiter"])
        assert reference.next_run(runs[:k]) == scheduled
    assert runs[0]["regime"] == "small" and any(r["regime"] == "small" for r in runs[1:])
    assert [r["regime"] for r in runs].count("large") == 2 and reference.spent(runs)
    small = [r for r in runs[1:] if r["regime"] == "small"]
    assert all(r["sigma0"] < 0.3 and len(r["best"]) <= math.ceil(r["maxiter"]) for r in small)


def test_restarts_from_x0_drawn_from_seeded_generators():
    def x0(generator):
        return {"weight": torch.rand(1, 1, generator=generator), "bias": torch.zeros(1)}

    es, _ = bowl_es()
    starts = Starts()
    es.fit(generations=5000, callbacks=[RestartOnStop("ipop", max_restarts=2, x0=x0, seed=4),
                                        starts])  # fmt: skip
    assert es.state.restarts["start"] is None and len(starts.starts) == 3
    schedule = RestartSchedule("ipop", 6, 0.3, dim=2, seed=4)
    for run, state in enumerate(starts.starts[1:], start=1):
        assert_same(state, x0(schedule.generator(run, 0)), f"start of run {run}")


@pytest.mark.parametrize("where", ["mid-run", "at-a-restart"])
def test_a_resumed_sequence_continues_bit_for_bit(tmp_path, where):
    """A straight run against one stopped mid-sequence, saved (es.state_dict() and the net's
    weights; and a Checkpoint file), loaded into a new optimizer and net, and continued."""
    straight, straight_net = bowl_es()
    done = RestartOnStop("ipop", max_restarts=3)
    total = len(straight.fit(generations=5000, callbacks=[done]))
    cut = done.runs[1]["start_generation"] + (7 if where == "mid-run" else 0)
    first, first_net = bowl_es()
    path = tmp_path / "run.pt"
    first.fit(generations=cut, callbacks=[RestartOnStop("ipop", max_restarts=3),
                                          Checkpoint(path, every=4)])  # fmt: skip
    assert len(first.state.restarts["runs"]) == 1
    buffer = io.BytesIO()
    torch.save({"es": first.state_dict(), "net": first_net.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    for resume in ("state_dict", "checkpoint"):
        second, second_net = bowl_es(seed=5, init=9)  # everything comes from the saved state
        if resume == "state_dict":
            second_net.load_state_dict(saved["net"])
            second.load_state_dict(saved["es"])
        else:
            load_checkpoint(path, second)
        assert second.generation == cut
        again = RestartOnStop("ipop", max_restarts=3)
        history = second.fit(generations=5000, callbacks=[again])
        assert cut + len(history) == total == second.generation
        assert_same(trainable_state(second_net), trainable_state(straight_net), "parameters")
        assert_same(second.state_dict(), straight.state_dict(), resume)
        assert_same(again.runs, done.runs, "runs")


def test_resume_refuses_bookkeeping_that_does_not_continue_this_callback(tmp_path):
    es, _ = bowl_es()
    path = tmp_path / "early.pt"  # the checkpoint saved before the restarts saw the step
    es.fit(generations=30, callbacks=[Checkpoint(path, every=1), RestartOnStop("ipop")])
    other, _ = bowl_es()
    load_checkpoint(path, other)
    with pytest.raises(ValueError, match="list RestartOnStop before Checkpoint"):
        other.fit(generations=1, callbacks=[RestartOnStop("ipop")])
    with pytest.raises(ValueError, match="restarts with strategy='ipop', this RestartOnStop "
                                         "with strategy='bipop'"):  # fmt: skip
        es.fit(generations=1, callbacks=[RestartOnStop("bipop")])
    with pytest.raises(ValueError, match="restarts from the first run's parameters: pass x0"):
        es.fit(generations=1, callbacks=[RestartOnStop("ipop", x0=lambda g: {})])
    with pytest.raises(ValueError, match="max_restarts must be an int >= 0, got -1"):
        RestartOnStop("ipop", max_restarts=-1)
    with pytest.raises(TypeError, match="conditions must be a StopConditions"):
        RestartOnStop("ipop", conditions={"tolx": 1e-3})


def test_state_dicts_without_restarts_are_unchanged_and_load():
    es, _ = bowl_es()
    plain = es.state_dict()
    assert "restarts" not in plain  # a run without restarts saves what it always saved
    es.fit(generations=3, callbacks=[RestartOnStop("ipop", conditions=StopConditions(maxiter=2))])
    saved = es.state_dict()
    assert saved["restarts"]["runs"][0]["stop"] == ["maxiter"] and saved["n_samples"] == 12
    es.load_state_dict(plain)
    assert es.state.restarts is None and es.n_samples == 6
    with pytest.raises(ValueError, match="restarts must be None or a dict with str keys"):
        es.load_state_dict({**saved, "restarts": [1, 2]})
    assert es.state.restarts is None


# -- the sample scripts ------------------------------------------------------------------------
def test_supervised_script_restarts(tmp_path, capsys):
    """σ = 1e-10 has no effect on float32 weights (noeffectcoord), so every run stops after one
    generation: λ 10, 20, 40 and the two restarts are spent."""
    from .test_sample_supervised import load_script

    script = load_script()
    flags = ["--generations", "6", "--n-samples", "10", "--sigma", "1e-10", "--hidden", "8",
             "--restarts", "ipop", "--max-restarts", "2", "--out", str(tmp_path),
             "--quiet"]  # fmt: skip
    assert script.main(flags) == 0
    assert "after 3 generations, 70 evaluations" in capsys.readouterr().out
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert (saved["config"]["restarts"], saved["config"]["max_restarts"]) == ("ipop", 2)
    runs = saved["es"]["restarts"]["runs"]
    assert [r["n_samples"] for r in runs] == [10, 20, 40]
    assert all(r["stop"] == ["noeffectcoord"] for r in runs)
    with pytest.raises(ValueError, match="--record cannot replay a run with --restarts ipop"):
        script.parse_args(["--restarts", "ipop", "--record", str(tmp_path / "run.record")])
    with pytest.raises(ValueError, match="--max-restarts must be >= 0, got -1"):
        script.parse_args(["--max-restarts", "-1"])


def test_supervised_script_caps_each_run_with_restart_generations(tmp_path, capsys):
    """With an ordinary σ no criterion holds in a few generations; ``--restart-generations 2``
    ends every run after two (``maxiter``), so 6 generations are three runs of λ 10, 20, 40."""
    from .test_sample_supervised import load_script

    script = load_script()
    flags = ["--generations", "6", "--n-samples", "10", "--hidden", "8", "--restarts", "ipop",
             "--max-restarts", "2", "--restart-generations", "2", "--out", str(tmp_path),
             "--quiet"]  # fmt: skip
    assert script.main(flags) == 0
    runs = load_checkpoint(tmp_path / "checkpoint.pt")["es"]["restarts"]["runs"]
    assert [(r["n_samples"], r["generations"], r["stop"]) for r in runs] == [
        (10, 2, ["maxiter"]),
        (20, 2, ["maxiter"]),
        (40, 2, ["maxiter"]),
    ]
    with pytest.raises(ValueError, match="--restart-generations must be >= 1, got 0"):
        script.parse_args(["--restarts", "ipop", "--restart-generations", "0"])


def test_rl_script_resumes_a_restart_sequence(tmp_path, capsys):
    """Five generations straight against two, then --resume to five: the same net, optimizer
    state and restart bookkeeping (λ 6, 12, 24, 48 and 96: σ = 1e-10 stops every run at once)."""
    from .test_sample_rl import _run

    flags = ["--env", "Pendulum-v1", "--max-episode-steps", "25", "--n-samples", "6",
             "--eval-episodes", "1", "--eval-every", "2", "--target", "1e9", "--sigma", "1e-10",
             "--restarts", "ipop"]  # fmt: skip
    out = _run(capsys, *flags, "--generations", "5", "--out", tmp_path / "straight")
    assert "5 generations, 4650 environment steps" in out  # (6 + 12 + 24 + 48 + 96) × 25
    _run(capsys, *flags, "--generations", "2", "--out", tmp_path / "split")
    first = tmp_path / "split" / "Pendulum-v1" / "policy.pt"
    _run(capsys, "--resume", first, "--generations", "5", "--out", tmp_path / "resumed")
    a = load_checkpoint(tmp_path / "straight" / "Pendulum-v1" / "policy.pt")
    b = load_checkpoint(tmp_path / "resumed" / "Pendulum-v1" / "policy.pt")
    assert b["config"]["restarts"] == "ipop" and b["config"]["max_restarts"] == 9
    assert [r["n_samples"] for r in b["es"]["restarts"]["runs"]] == [6, 12, 24, 48, 96]
    assert_same(a["net"], b["net"], "net")
    assert_same(a["es"], b["es"], "es")
