"""The vectorised evaluation path: batches of members (es_opt/evaluators/batched.py) on a
stacked model (es_opt/evaluators/stacked.py)."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

import es_opt
from es_opt import EvaluationError, Model, Objective, SamplingStrategy
from es_opt.evaluators import evaluate_indices
from es_opt.evaluators.batched import (
    AUTO_MAX_BATCH,
    DEFAULT_MEMORY_BUDGET,
    batch_grid,
    is_vectorized,
    resolve_max_batch,
)
from es_opt.evaluators.stacked import StackedModel, VectorizationError
from tests.conftest import assert_same_params, trainable_state

W3 = (1.0, 0.5, 0.25)  # weights of OutputSummary's three values


class OutputSummary(Objective):
    """[mean, max, first logit of the first input] of the outputs: sensitive to every weight."""

    def __init__(self, inputs: torch.Tensor, *, vectorize: bool = True, max_batch=None):
        self.inputs, self.vectorize, self.max_batch = inputs, vectorize, max_batch
        self.batches: list[list[int]] = []

    def __call__(self, model, samples):
        out = model(self.inputs)
        return torch.stack([out.mean(), out.max(), out[0, 0]])

    def evaluate_population(self, population, samples):
        self.batches.append(list(population.indices))
        out = population(self.inputs)
        flat = out.reshape(len(population), -1)
        return torch.stack([flat.mean(1), flat.max(1).values, out[:, 0, 0]], dim=1)


def rich_net(seed: int = 0) -> nn.Module:
    """Several layers with biases, a frozen layer and a BatchNorm with non-trivial statistics."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(5, 8),
        nn.BatchNorm1d(8),
        nn.Tanh(),
        nn.Linear(8, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    )
    net[3].requires_grad_(False)
    with torch.no_grad():
        net[1].running_mean.copy_(torch.randn(8))
        net[1].running_var.copy_(torch.rand(8) + 0.5)
        net[1].weight.copy_(torch.rand(8) + 0.5)
    return net.eval()


def population_of(es: es_opt.ESOptimizer, generation: int):
    es.generation = generation
    return es.ask()


@pytest.mark.parametrize("strategy", list(SamplingStrategy))
def test_vectorised_fitness_equals_one_at_a_time_for_every_strategy(strategy):
    net = rich_net()
    inputs = torch.randn(11, 5, generator=torch.Generator().manual_seed(1))
    model = Model(net, strategy)
    es = es_opt.ESOptimizer(
        model, objective_fn=OutputSummary(inputs), n_samples=12, sigma=0.3, obj_weights=W3
    )
    before = trainable_state(net)
    buffers = [b.clone() for b in net.buffers()]
    for generation in range(4):
        population = population_of(es, generation)
        vec = OutputSummary(inputs, max_batch=5)
        rows_v, _ = evaluate_indices(model, vec, population, None, range(12))
        rows_s, _ = evaluate_indices(
            model, OutputSummary(inputs, vectorize=False), population, None, range(12)
        )
        torch.testing.assert_close(torch.stack(rows_v), torch.stack(rows_s), rtol=1e-5, atol=1e-6)
        assert vec.batches == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
        # only the selected layer is stacked; the frozen layer and buffers are shared
        stacked = StackedModel(model, population, [0, 1])
        assert tuple(stacked.stacked) == population.names
        assert "3.weight" not in stacked.stacked and "3.weight" in stacked.shared
        assert "1.running_mean" in stacked.shared
    assert_same_params(net, before)
    assert all(torch.equal(a, b) for a, b in zip(net.buffers(), buffers, strict=True))


@pytest.mark.parametrize("hidden", [32, 128])
def test_member_fitness_does_not_depend_on_its_batch(hidden):
    """Worker-count invariance: bit-identical fitness whatever the batch composition."""
    torch.manual_seed(hidden)
    net = nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 10))
    inputs = torch.randn(300, 64, generator=torch.Generator().manual_seed(2))
    model = Model(net)
    es = es_opt.ESOptimizer(
        model, objective_fn=OutputSummary(inputs), n_samples=200, obj_weights=W3
    )
    population = es.ask()
    whole, _ = evaluate_indices(model, OutputSummary(inputs, max_batch=200), population, None,
                                range(200))  # fmt: skip
    splits = {
        "grid of 7": (OutputSummary(inputs, max_batch=7), range(200)),
        "odd members": (OutputSummary(inputs, max_batch=64), range(1, 200, 2)),
        "a worker's share": (OutputSummary(inputs, max_batch=200), range(57, 143)),
        "reversed": (OutputSummary(inputs, max_batch=33), range(199, -1, -1)),
        "one by one": (OutputSummary(inputs, max_batch=1), range(0, 200, 13)),
    }
    # 300 images: each member's modules output 300 x (h + h + 10 + 10) elements (the Sequential's
    # own output counted too), so the activation budget splits a call into blocks of members
    stacked = StackedModel(model, population, range(200))
    per_member = 300 * (2 * hidden + 20)
    expected = es_opt.evaluators.stacked.ACTIVATION_BUDGET // per_member
    assert 1 < expected < 200 and stacked._members_per_call(inputs, (0, None)) == expected
    for name, (objective, indices) in splits.items():
        rows, _ = evaluate_indices(model, objective, population, None, indices)
        for index, row in zip(indices, rows, strict=True):
            assert torch.equal(row, whole[index]), f"{name}: evaluation {index} differs"


def test_serial_and_two_workers_give_bit_identical_runs():
    from es_opt.supervised import ClassificationSamples, NegativeCrossEntropy

    gen = torch.Generator().manual_seed(0)
    data = ClassificationSamples(torch.randn(64, 6, generator=gen), torch.arange(64) % 3)
    finals = []
    for backend, workers in (("serial", None), ("multiprocess", 2)):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
        with es_opt.ESOptimizer(
            net,
            torch.optim.Adam(net.parameters(), lr=0.05),
            NegativeCrossEntropy(max_batch=6),
            n_samples=30,
            backend=backend,
            n_workers=workers,
        ) as es:
            for _ in range(3):
                es.gradient_step(data)
        finals.append(trainable_state(net))
    assert_same_params(finals[0], finals[1])


def test_stacked_model_matches_loaded_net_per_member_and_per_member_inputs():
    net = rich_net(3)
    model = Model(net)
    es = es_opt.ESOptimizer(
        model, objective_fn=OutputSummary(torch.zeros(1, 5)), n_samples=6, obj_weights=W3
    )
    population = es.ask()
    inputs = torch.randn(6, 4, 5, generator=torch.Generator().manual_seed(4))
    stacked = StackedModel(model, population, range(6))
    shared_out, own_out = stacked(inputs[0]), stacked(inputs, per_member=True)
    for i in range(6):
        with population.loaded(net, i), torch.no_grad():
            torch.testing.assert_close(shared_out[i], net(inputs[0]))
            torch.testing.assert_close(own_out[i], net(inputs[i]))
    member = stacked.member_parameters()
    assert list(member) == list(model.named_trainable_parameters())
    assert torch.equal(member["0.weight"][4], population.unflatten(population.parameters(4))[
        "0.weight"])  # fmt: skip


def test_batch_grid_and_max_batch():
    assert list(batch_grid(range(3, 10), 4)) == [[3], [4, 5, 6, 7], [8, 9]]
    assert list(batch_grid([9, 8, 1, 0], 4)) == [[9, 8], [1, 0]]
    assert list(batch_grid([], 4)) == []
    small = es_opt.Population(0, 0, 0.1, 1000, ("w",), (torch.Size([10]),), torch.zeros(10))
    assert resolve_max_batch(object(), small) == AUTO_MAX_BATCH
    big_dim = 10**6
    big = es_opt.Population(0, 0, 0.1, 100, ("w",), (torch.Size([big_dim]),), torch.zeros(big_dim))
    assert resolve_max_batch(object(), big) == DEFAULT_MEMORY_BUDGET // (4 * big_dim) == 16

    class WithMax:
        max_batch = 3

    assert resolve_max_batch(WithMax(), small) == 3
    for bad, error in ((0, ValueError), (2.5, TypeError), (True, TypeError)):
        WithMax.max_batch = bad
        with pytest.raises(error, match="max_batch must be a positive int or None"):
            resolve_max_batch(WithMax(), small)


def test_dispatch_follows_evaluate_population_and_vectorize():
    inputs = torch.randn(3, 5)
    assert is_vectorized(OutputSummary(inputs))
    assert not is_vectorized(OutputSummary(inputs, vectorize=False))
    assert not is_vectorized(lambda model, samples: 0.0)
    objective = OutputSummary(inputs, vectorize=False)
    net = rich_net()
    es = es_opt.ESOptimizer(net, objective_fn=objective, n_samples=4, obj_weights=W3)
    es.gradient_step()
    assert objective.batches == []  # __call__ was used


class Faulty(OutputSummary):
    def __init__(self, inputs, fault):
        super().__init__(inputs, max_batch=4)
        self.fault = fault

    def evaluate_population(self, population, samples):
        values = super().evaluate_population(population, samples)
        if 4 in population.indices:
            if self.fault == "raise":
                raise KeyError("broken batch")
            if self.fault == "nan":
                values[2, 1] = float("nan")
            if self.fault == "shape":
                values = values[:, :2]
        return values


@pytest.mark.parametrize(
    "fault, error, message",
    [
        ("raise", EvaluationError, r"raised KeyError: 'broken batch' \(evaluations 4\.\.7"),
        ("nan", ValueError, r"non-finite value \(nan\) for evaluation 6"),
        ("shape", ValueError, r"returned 2 values at evaluation 4 but 3"),
    ],
)
def test_failing_batch_changes_nothing(fault, error, message):
    net = rich_net()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    es = es_opt.ESOptimizer(
        net, optimizer, Faulty(torch.randn(3, 5), "none"), n_samples=8, obj_weights=W3
    )
    es.gradient_step()
    es.objective_fn.fault = fault
    before, state = trainable_state(net), repr(optimizer.state_dict())
    with pytest.raises(error, match=message) as info:
        es.gradient_step()
    assert_same_params(net, before)
    assert repr(optimizer.state_dict()) == state and es.generation == 1
    if fault == "raise":
        assert info.value.index == 4 and "KeyError" in info.value.worker_traceback


class StatsPerMember(OutputSummary):
    def __init__(self, inputs, length=None):
        super().__init__(inputs, max_batch=3)
        self.length, self.merged = length, None

    def evaluate_population(self, population, samples):
        self.last = list(population.indices)
        return super().evaluate_population(population, samples)

    def collect_stats(self):
        stats = [f"member {i}" for i in self.last]
        return stats[: self.length] if self.length is not None else stats

    def merge_stats(self, stats):
        self.merged = stats


def test_collect_stats_once_per_batch_in_evaluation_order():
    objective = StatsPerMember(torch.randn(2, 5))
    es = es_opt.ESOptimizer(rich_net(), objective_fn=objective, n_samples=8, obj_weights=W3)
    es.gradient_step()
    assert objective.merged == [f"member {i}" for i in range(8)]
    objective.length = 2
    with pytest.raises(ValueError, match=r"one entry per member of the batch \(3, evaluations 0"):
        es.gradient_step()


class DataDependent(nn.Module):
    def forward(self, x):
        return x if float(x.sum()) > 0 else -x


@pytest.mark.parametrize(
    "layer, name, kind, hint",
    [
        (nn.LSTM(4, 4, batch_first=True), "1", "LSTM", "no batching rule for recurrent"),
        (nn.BatchNorm1d(4), "1", "BatchNorm1d", r"call net.eval\(\)"),
        (nn.Dropout(0.5), "1", "Dropout", r"call net.eval\(\)"),
        (DataDependent(), "1", "DataDependent", "vectorize = False"),
    ],
)
def test_modules_vmap_cannot_handle_are_named(layer, name, kind, hint):
    net = nn.Sequential(nn.Linear(4, 4), layer).train()
    inputs = torch.randn(2, 3, 4) if kind == "LSTM" else torch.randn(3, 4)
    es = es_opt.ESOptimizer(net, objective_fn=OutputSummary(inputs), n_samples=4, obj_weights=W3)
    before = trainable_state(net)
    with pytest.raises(VectorizationError, match=hint) as info:
        es.gradient_step()
    assert f"module {name!r} ({kind})" in str(info.value) and "vectorize = False" in str(info.value)
    assert (info.value.module_name, info.value.module_type) == (name, kind)
    assert_same_params(net, before)
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value) and copy.module_type == kind


def test_fallback_one_at_a_time_works_for_an_lstm():
    class LastStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(3, 4, batch_first=True)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    inputs = torch.randn(5, 6, 3)
    objective = OutputSummary(inputs)
    es = es_opt.ESOptimizer(LastStep(), objective_fn=objective, n_samples=4, obj_weights=W3)
    with pytest.raises(VectorizationError, match=r"module 'rnn' \(LSTM\)"):
        es.gradient_step()
    objective.vectorize = False
    assert es.gradient_step().generation == 0


def test_errors_of_the_net_itself_are_not_blamed_on_vmap():
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(5, 2))  # shapes do not chain
    es = es_opt.ESOptimizer(
        net, objective_fn=OutputSummary(torch.randn(3, 4)), n_samples=4, obj_weights=W3
    )
    with pytest.raises(EvaluationError, match="evaluate_population raised RuntimeError") as info:
        es.gradient_step()
    assert not isinstance(info.value.__cause__, VectorizationError)


def test_buffers_are_restored_after_each_batch():
    class Scribbler(OutputSummary):
        def evaluate_population(self, population, samples):
            population.shared["1.running_mean"].add_(1.0)  # a careless objective
            return super().evaluate_population(population, samples)

    net = rich_net()
    saved = net[1].running_mean.clone()
    objective = Scribbler(torch.randn(3, 5), max_batch=2)
    population = es_opt.ESOptimizer(net, objective_fn=objective, n_samples=4, obj_weights=W3).ask()
    rows, _ = evaluate_indices(Model(net), objective, population, None, range(4))
    assert torch.equal(net[1].running_mean, saved)
    alone, _ = evaluate_indices(Model(net), objective, population, None, [2, 3])
    # the second batch did not see the first batch's change
    assert torch.equal(torch.stack(rows[2:]), torch.stack(alone))


@pytest.mark.parametrize("strategy", list(SamplingStrategy))
def test_direct_mlp_path_equals_vmap_for_every_strategy_and_budget(strategy, monkeypatch):
    torch.manual_seed(5)
    net = nn.Sequential(
        nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 4), nn.Tanh()
    )
    model = Model(net, strategy)
    es = es_opt.ESOptimizer(model, objective_fn=lambda m, s: 0.0, n_samples=10, sigma=0.3)
    # 8 rows: each member's activations fill whole SIMD vectors, so torch's element-wise kernels
    # give the same bits wherever the member sits in a batch (a tail handled by scalar code
    # rounds differently; es_opt's fixed batch grid keeps results worker-invariant regardless)
    shared_inputs = torch.randn(8, 6, generator=torch.Generator().manual_seed(3))
    member_inputs = torch.randn(10, 8, 6, generator=torch.Generator().manual_seed(4))
    for generation in range(3):  # BOTTOM_UP / TOP_DOWN / RANDOM stack different layers
        stacked = StackedModel(model, population_of(es, generation), range(10))
        assert stacked._plan is not None
        for inputs, in_dims in ((shared_inputs, (0, None)), (member_inputs, (0, 0))):
            expected = torch.func.vmap(stacked._call, in_dims=in_dims)(stacked.stacked, inputs)
            got = stacked(inputs, per_member=in_dims[1] == 0)
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
            # a tiny activation budget splits the call: same rows
            monkeypatch.setattr(es_opt.evaluators.stacked, "ACTIVATION_BUDGET", 8 * 100)
            assert torch.equal(stacked(inputs, per_member=in_dims[1] == 0), got)
            monkeypatch.undo()
    with pytest.raises(ValueError, match=r"one batch per member \(10\), got shape \(3, 8, 6\)"):
        stacked(member_inputs[:3], per_member=True)


def test_stacked_parameters_are_the_population_members_bit_for_bit():
    es = es_opt.ESOptimizer(nn.Linear(7, 5), objective_fn=lambda m, s: 0.0, n_samples=12)
    population = es.ask()
    for indices in ([0, 1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11], [1, 2], [3, 2, 5], [6], [2, 3, 6, 7]):
        expected = torch.stack([population.parameters(i) for i in indices])
        assert torch.equal(population.stacked_parameters(list(indices)), expected), indices


@pytest.mark.parametrize(
    "net",
    [
        nn.Linear(5, 3),
        nn.Sequential(nn.Linear(5, 3)),
        nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2), nn.Identity()),
    ],
    ids=["linear", "sequential-of-one", "mlp"],
)
def test_direct_path_splits_calls_like_the_measured_activation_count(net):
    es = es_opt.ESOptimizer(net, objective_fn=lambda m, s: 0.0, n_samples=40)
    stacked = StackedModel(es.model, es.ask(), range(40))
    inputs = torch.randn(20000, 5)
    analytic = es_opt.evaluators.stacked.ACTIVATION_BUDGET // (20000 * sum(stacked._plan.widths))
    assert 1 < analytic < 40  # the budget does split this call
    assert stacked._members_per_call(inputs, (0, None)) == analytic  # the hook-based count
