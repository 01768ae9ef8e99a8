"""Classification objectives and samples (es_opt/supervised.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import es_opt
from es_opt import Model, SamplingStrategy
from es_opt.evaluators import evaluate_indices
from es_opt.supervised import (
    Accuracy,
    ClassificationSamples,
    L1Norm,
    MultiObjective,
    NegativeCrossEntropy,
)


def data(n: int = 40, features: int = 6, classes: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return ClassificationSamples(
        torch.randn(n, features, generator=gen), torch.randint(classes, (n,), generator=gen)
    )


def net_with_frozen_layer(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))
    net[2].requires_grad_(False)
    return net


def test_samples_validate_and_draw_seeded_minibatches():
    full = data()
    batch = full.minibatch(10, seed=3, generation=5)
    assert len(batch) == 10 and torch.equal(batch.inputs, full.minibatch(10, 3, 5).inputs)
    assert not torch.equal(batch.targets, full.minibatch(10, 3, 6).targets)
    rows = [int((full.inputs == row).all(1).nonzero()) for row in batch.inputs]
    assert len(set(rows)) == 10 and torch.equal(full.targets[rows], batch.targets)
    assert full.minibatch(40, 0, 0) is full
    with pytest.raises(ValueError, match="size must be a positive int, got 0"):
        full.minibatch(0, 0, 0)
    with pytest.raises(ValueError, match=r"same number of examples.*\(3, 2\) and 4 targets"):
        ClassificationSamples(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class indices, got dtype torch.float32"):
        ClassificationSamples(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(TypeError, match="must be torch tensors, got list"):
        ClassificationSamples([[0.0]], torch.zeros(1, dtype=torch.long))


def test_accuracy_and_cross_entropy_match_references():
    net = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.eye(2))  # predicts the larger coordinate
    inputs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [1.0, 2.0]])
    targets = torch.tensor([0, 1, 1, 1, 0])
    samples = ClassificationSamples(inputs, targets)
    assert Accuracy()(Model(net), samples) == 3 / 5
    expected = -F.cross_entropy(inputs, targets).item()
    assert NegativeCrossEntropy()(Model(net), samples) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("strategy", list(SamplingStrategy))
@pytest.mark.parametrize("objective", [Accuracy, NegativeCrossEntropy, L1Norm])
def test_vectorised_equals_one_at_a_time(objective, strategy):
    net = net_with_frozen_layer()
    model = Model(net, strategy)
    es = es_opt.ESOptimizer(model, objective_fn=objective(), n_samples=20, sigma=0.5)
    samples = data()
    for generation in range(2):
        es.generation = generation
        population = es.ask()
        vec, _ = evaluate_indices(model, objective(max_batch=7), population, samples, range(20))
        one, _ = evaluate_indices(model, objective(vectorize=False), population, samples, range(20))
        vec, one = torch.stack(vec), torch.stack(one)
        if objective is Accuracy:  # counting is exact
            assert torch.equal(vec, one)
        else:
            torch.testing.assert_close(vec, one, rtol=1e-6, atol=1e-7)
        assert vec.std() > 0  # the members really differ


def test_l1_norm_counts_trainable_parameters_only():
    net = net_with_frozen_layer()
    trainable = sum(p.abs().sum().item() for p in net.parameters() if p.requires_grad)
    assert L1Norm()(Model(net), None) == pytest.approx(trainable, rel=1e-6)
    assert trainable < sum(p.abs().sum().item() for p in net.parameters())


def test_multi_objective_stacks_columns_and_vectorises_only_when_all_parts_do():
    net = net_with_frozen_layer()
    samples = data()
    both = MultiObjective(Accuracy(max_batch=9), L1Norm(max_batch=4))
    assert both.vectorize and both.max_batch == 4
    row = both(Model(net), samples)
    assert row.tolist() == [Accuracy()(Model(net), samples), L1Norm()(Model(net), None)]
    assert not MultiObjective(Accuracy(), lambda model, samples: 1.0).vectorize
    es = es_opt.ESOptimizer(net, objective_fn=both, obj_weights=[1.0, -0.1], n_samples=10)
    population = es.ask()
    vec, _ = evaluate_indices(es.model, both, population, samples, range(10))
    one, _ = evaluate_indices(
        es.model, MultiObjective(Accuracy(), L1Norm(vectorize=False)), population, samples,
        range(10),
    )  # fmt: skip
    torch.testing.assert_close(torch.stack(vec), torch.stack(one), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="at least one objective"):
        MultiObjective()
    with pytest.raises(TypeError, match="objective 1 must be callable"):
        MultiObjective(Accuracy(), 3.0)


def test_bad_arguments_and_samples_are_named():
    with pytest.raises(ValueError, match="max_batch must be a positive int or None, got 0"):
        Accuracy(max_batch=0)
    with pytest.raises(TypeError, match="vectorize must be a bool"):
        NegativeCrossEntropy(vectorize="yes")
    net = nn.Linear(6, 3)
    with pytest.raises(TypeError, match=r"Accuracy needs ClassificationSamples\(inputs, targets"):
        Accuracy()(Model(net), (torch.zeros(2, 6), torch.zeros(2)))
    flat = nn.Sequential(nn.Linear(6, 3), nn.Flatten(0))
    with pytest.raises(ValueError, match=r"\[N, n_classes\] logits for N=40 inputs, got shape"):
        NegativeCrossEntropy()(Model(flat), data())


def test_es_on_raw_accuracy_learns_a_separable_problem():
    gen = torch.Generator().manual_seed(1)
    inputs = torch.randn(200, 2, generator=gen)
    samples = ClassificationSamples(inputs, (inputs[:, 0] + inputs[:, 1] > 0).long())
    torch.manual_seed(0)
    net = nn.Linear(2, 2)
    es = es_opt.ESOptimizer(
        net, torch.optim.Adam(net.parameters(), lr=0.1), Accuracy(), sigma=0.2, n_samples=20
    )
    start = Accuracy()(es.model, samples)
    for _ in range(60):
        es.gradient_step(samples)
    assert start < 0.8 and Accuracy()(es.model, samples) >= 0.98  # 1.0 on seeds 0-3


def test_l1_weight_trades_accuracy_for_smaller_weights():
    samples = data(n=120)
    finals = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
        es = es_opt.ESOptimizer(
            net,
            torch.optim.Adam(net.parameters(), lr=0.05),
            MultiObjective(Accuracy(), L1Norm()),
            obj_weights=[1.0, -weight],
            sigma=0.05,
            n_samples=20,
        )
        for _ in range(40):
            es.gradient_step(samples)
        finals[weight] = L1Norm()(es.model, None)
    assert finals[1.0] < 0.7 * finals[0.0]


def test_predicted_class_is_torch_argmax_exactly_with_ties_nans_and_infinities():
    from es_opt.supervised.objectives import _predicted_class

    gen = torch.Generator().manual_seed(7)
    for _ in range(50):
        b, n, c = (int(v) for v in torch.randint(1, 13, (3,), generator=gen))
        scores = torch.randint(-2, 3, (b, n, c), generator=gen).float()  # many ties
        for value in (float("nan"), float("inf"), float("-inf")):
            scores[torch.rand(b, n, c, generator=gen) < 0.05] = value
        for x in (scores, scores.double(), scores.transpose(0, 1)):
            assert torch.equal(_predicted_class(x), x.argmax(dim=-1))


def test_batched_digits_mlp_gives_each_member_the_bits_of_its_own_nn_linear():
    """The stacked first layer (bias added inside the batched product) and the accuracy's argmax
    reproduce evaluating each member alone, bit for bit, on digits-sized work."""
    from es_opt.evaluators.stacked import StackedModel

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    model = Model(net)
    es = es_opt.ESOptimizer(model, objective_fn=Accuracy(), n_samples=12, sigma=0.1)
    samples = data(n=300, features=64, classes=10)
    population = es.ask()
    stacked = StackedModel(model, population, range(12))
    logits = stacked(samples.inputs)
    for index in range(12):
        with population.loaded(net, index), torch.no_grad():
            assert torch.equal(logits[index], net(samples.inputs)), index
    vec, _ = evaluate_indices(model, Accuracy(), population, samples, range(12))
    one, _ = evaluate_indices(model, Accuracy(vectorize=False), population, samples, range(12))
    assert torch.equal(torch.stack(vec), torch.stack(one))
