"""IPOP and BIPOP restarts: the population schedule (against a transcription of pycma's
`fmin(..., bipop=True)` bookkeeping), each run's stop reasons and history, the termination
criteria one by one, and an exact resume from a checkpoint loaded with weights_only=True."""

from __future__ import annotations

import io
import math

import pytest
import torch

from es_opt.distributions import CEM, CMAES, SepCMAES
from es_opt.distributions.cma import cma_initial_state
from es_opt.distributions.restarts import Restarts
from es_opt.distributions.stopping import StopConditions, stop_reasons


def rastrigin(x):
    return 10 * x.shape[1] + (x**2 - 10 * torch.cos(2 * math.pi * x)).sum(dim=1)


def uniform(generator):
    return 8 * torch.rand(4, generator=generator, dtype=torch.float64) - 4


def test_ipop_doubles_the_population_at_every_restart():
    search = Restarts(CMAES(), uniform, 2.0, strategy="ipop", max_restarts=3, seed=1,
                      max_evaluations=60_000)  # fmt: skip
    result = search.run(rastrigin)
    sizes = [run["n_samples"] for run in result["runs"]]
    assert sizes == [8 * 2**k for k in range(len(sizes))] and len(sizes) >= 2
    assert all(run["stop"] for run in result["runs"])
    assert result["evaluations"] == sum(run["evaluations"] for run in result["runs"])
    assert result["best_value"] == min(run["best_value"] for run in result["runs"])
    for run in result["runs"]:
        assert len(run["best"]) == run["evaluations"] // run["n_samples"]


def test_bipop_interleaves_regimes_as_pycma_does():
    """Regime and budget bookkeeping of pycma's fmin: the first run counts as small; a small
    run follows whenever the small regime has used fewer evaluations than the large one; large
    runs double λ₀ per large run; small runs have λ₀ ≤ λ ≤ λ₀ 2^k, σ ∈ [σ₀/100, σ₀] and at most
    half the large budget."""
    search = Restarts(CMAES(), uniform, 2.0, strategy="bipop", max_restarts=3, seed=2,
                      max_evaluations=100_000)  # fmt: skip
    runs = search.run(rastrigin)["runs"]
    assert runs[0]["regime"] == "small" and runs[0]["n_samples"] == 8
    small = large = 0
    for k, run in enumerate(runs):
        if k:
            expected = "small" if small < max(1, large) else "large"
            assert run["regime"] == expected
        large_runs = sum(r["regime"] == "large" for r in runs[:k])
        if run["regime"] == "large":
            assert run["n_samples"] == 8 * 2 ** (large_runs + 1) and run["sigma0"] == 2.0
            large += run["evaluations"]
        else:
            if k:
                assert 8 <= run["n_samples"] <= 8 * 2**large_runs
                assert 0.02 <= run["sigma0"] <= 2.0
                assert len(run["best"]) <= max(1, 0.5 * large / run["n_samples"]) + 1
            small += run["evaluations"]
    assert any(r["regime"] == "small" for r in runs[1:]) and any(
        r["regime"] == "large" for r in runs
    )


def test_target_stops_everything():
    search = Restarts(SepCMAES(), uniform, 2.0, strategy="ipop", target=1e-8, seed=0,
                      max_evaluations=200_000)  # fmt: skip
    result = search.run(lambda x: (x**2).sum(dim=1))
    assert result["best_value"] <= 1e-8 and result["runs"][-1]["stop"][-1] == "target"
    assert len(result["runs"]) == 1


@pytest.mark.parametrize("distribution", [CMAES(), CEM()], ids=["cma", "cem"])
def test_resume_from_a_checkpoint_is_exact(distribution):
    def fresh():
        return Restarts(distribution, uniform, 2.0, strategy="bipop", max_restarts=2, seed=3,
                        max_evaluations=20_000)  # fmt: skip

    straight = fresh().run(rastrigin)
    first = fresh()
    for _ in range(700):  # past the first restart
        first.step(rastrigin)
    assert len(first.runs) >= 1
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = fresh()
    second.load_state_dict(torch.load(buffer, weights_only=True))
    resumed = second.run(rastrigin)
    assert resumed["best_value"] == straight["best_value"]
    assert torch.equal(resumed["best_x"], straight["best_x"])
    assert [r["best"] for r in resumed["runs"]] == [r["best"] for r in straight["runs"]]
    with pytest.raises(ValueError, match="strategy"):
        Restarts(distribution, uniform, 2.0, strategy="ipop", seed=3).load_state_dict(
            first.state_dict()
        )


def criteria(state, *, mean=None, best=(1.0,), median=(1.0,), current_range=1.0, n=6):
    mean = torch.zeros(state["p_c"].numel(), dtype=torch.float64) if mean is None else mean
    return stop_reasons(StopConditions(), state=state, sigma=float(state["sigma"]), mean=mean,
                        best=list(best), median=list(median), current_range=current_range,
                        n_samples=n)  # fmt: skip


def test_each_termination_criterion():
    state = cma_initial_state(2, 1.0)
    assert criteria(state) == []
    history = 10 + math.ceil(30 * 2 / 6)
    assert criteria(state, best=[1.0] * history, current_range=0.0) == ["tolfun"]
    assert criteria(state, best=[1.0] * (history - 1), current_range=0.0) == []
    assert "tolx" in criteria(cma_initial_state(2, 1e-12))
    assert criteria(state, mean=torch.tensor([1e17, 1e17], dtype=torch.float64)) == [
        "noeffectaxis",
        "noeffectcoord",
    ]
    ill = dict(state, D=torch.tensor([1.0, 1e8], dtype=torch.float64))
    assert criteria(ill) == ["conditioncov"]
    long = 200
    stalled = criteria(state, best=[1.0] * long, median=[2.0] * long)
    improving = criteria(state, best=[1.0 / (g + 1) for g in range(long)],
                         median=[2.0 / (g + 1) for g in range(long)])  # fmt: skip
    assert stalled == ["tolstagnation"] and improving == []
    maxiter = int(100 + 150 * 25 / math.sqrt(6)) + 1
    assert "maxiter" in criteria(state, best=[1.0 / (g + 1) for g in range(maxiter)],
                                 median=[1.0 / (g + 1) for g in range(maxiter)])  # fmt: skip


def test_bad_arguments():
    with pytest.raises(ValueError, match="strategy"):
        Restarts(CMAES(), uniform, 1.0, strategy="lpop")
    with pytest.raises(ValueError, match="sigma0"):
        Restarts(CMAES(), uniform, 0.0)
    with pytest.raises(ValueError, match="at least 2 mirrored pairs"):
        Restarts(CMAES(antithetic=True), uniform, 1.0, n_samples=1)
