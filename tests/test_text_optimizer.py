"""TextReward inside ESOptimizer: both families, batched and in-place members, backends, resume."""

from __future__ import annotations

import copy

import pytest
import torch

from es_opt import ESOptimizer
from es_opt.perturbations import Dense, LowRank
from es_opt.text import Prompts, TextReward
from es_opt.training.checkpoint import load_checkpoint, save_checkpoint
from tests.text_fixture import TOKENIZER, digit_reward, tiny_gpt2

pytest.importorskip("transformers")

SAMPLES = Prompts(["12+34=", "50+05=", "99+01=", "07+70="])


pytestmark = pytest.mark.usefixtures("one_thread")


def make_es(net, family, evaluation="batched", vectorize=True, **options):
    objective = TextReward(TOKENIZER, digit_reward, max_new_tokens=3, evaluation=evaluation)
    objective.vectorize = vectorize
    return ESOptimizer(
        net, torch.optim.SGD(net.parameters(), lr=1e-3), objective_fn=objective, sigma=0.2,
        n_samples=8, seed=4, perturbation=family, **options,
    )  # fmt: skip


@pytest.mark.parametrize(
    "family, evaluation",
    [(LowRank(rank=1), "batched"), (LowRank(rank=2), "in_place"),
     (Dense(noise="philox"), "in_place"), (Dense(noise="philox"), "batched")],
)  # fmt: skip
def test_members_equal_the_one_at_a_time_path(family, evaluation):
    """The same fitness as ESOptimizer's own path, which copies each member into the net."""
    net = tiny_gpt2()
    reference = make_es(copy.deepcopy(net), family, vectorize=False).gradient_step(SAMPLES)
    result = make_es(net, family, evaluation).gradient_step(SAMPLES)
    assert torch.equal(result.fitness, reference.fitness)
    assert len(set(result.fitness[:, 0].tolist())) > 2  # the members really differ


def test_in_place_needs_per_tensor_noise():
    net = tiny_gpt2()
    with pytest.raises(Exception, match="MT19937 scheme cannot"):
        make_es(net, "dense", "in_place").gradient_step(SAMPLES)


def test_resume_is_bit_exact(tmp_path):
    net = tiny_gpt2()
    es = make_es(net, LowRank(rank=1))
    for _ in range(2):
        es.gradient_step(SAMPLES)
    save_checkpoint(tmp_path / "run.pt", es)
    for _ in range(2):
        es.gradient_step(SAMPLES)
    resumed = make_es(tiny_gpt2(), LowRank(rank=1))
    load_checkpoint(tmp_path / "run.pt", resumed)
    for _ in range(2):
        resumed.gradient_step(SAMPLES)
    for a, b in zip(net.parameters(), resumed.model.net.parameters(), strict=True):
        assert torch.equal(a, b)
    start = tiny_gpt2().parameters()
    assert any(not torch.equal(a, b) for a, b in zip(net.parameters(), start, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("workers, sync", [(2, "center"), (3, "replay")])
def test_process_pool_equals_serial_bit_for_bit(workers, sync):
    serial_net, pool_net = tiny_gpt2(), tiny_gpt2()
    serial = make_es(serial_net, LowRank(rank=1))
    options = dict(backend="multiprocess", n_workers=workers, sync=sync)
    with make_es(pool_net, LowRank(rank=1), **options) as pool:
        for _ in range(3):
            a, b = serial.gradient_step(SAMPLES), pool.gradient_step(SAMPLES)
            assert torch.equal(a.fitness, b.fitness)
        if sync == "replay":  # after the first step the workers recompute the model themselves
            assert pool.evaluator.sync_stats == {"sent": 3, "replayed": 6, "resynced": 0}
    for p, q in zip(serial_net.parameters(), pool_net.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_ray_equals_serial_bit_for_bit():
    pytest.importorskip("ray")
    serial_net, ray_net = tiny_gpt2(), tiny_gpt2()
    serial = make_es(serial_net, LowRank(rank=1), "in_place")
    options = dict(backend="ray", n_workers=2, sync="replay")
    with make_es(ray_net, LowRank(rank=1), "in_place", **options) as remote:
        for _ in range(3):
            a, b = serial.gradient_step(SAMPLES), remote.gradient_step(SAMPLES)
            assert torch.equal(a.fitness, b.fitness)
        assert remote.evaluator.sync_stats == {"sent": 2, "replayed": 4, "resynced": 0}
    for p, q in zip(serial_net.parameters(), ray_net.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("evaluation", ["batched", "in_place"])
def test_a_model_on_cuda_trains_and_is_restored_exactly(evaluation):
    net = tiny_gpt2().to("cuda").to(torch.bfloat16)
    es = make_es(net, LowRank(rank=1), evaluation)
    objective = es.objective_fn
    before = [p.detach().clone() for p in net.parameters()]
    population = es.ask()
    fitness = objective.evaluate_population(_Batch(es.model, population, range(8)), SAMPLES)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before, strict=True))
    result = es.tell(fitness)
    assert result.fitness.shape == (8, 1)


class _Batch:
    """What ESOptimizer's batched path hands to evaluate_population."""

    def __init__(self, model, population, indices):
        self.model, self.population, self.indices = model, population, list(indices)
