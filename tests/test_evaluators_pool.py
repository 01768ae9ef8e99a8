"""The multiprocess pool: options, messages, chunking, objective hooks, workers' lifetime."""

from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import dataclass

import pytest
import torch

from es_opt import ESOptimizer, Model, Objective, Samples, SamplingStrategy
from es_opt.evaluators import make_evaluator
from es_opt.evaluators._chunks import ChunkQueue
from es_opt.evaluators._messages import StepMessages, loads_step
from es_opt.evaluators._options import assign_devices
from es_opt.evaluators.pool import PoolEvaluator
from es_opt.population import Population

from .conftest import make_mlp, trainable_state


# -- shared by the evaluator test files -------------------------------------------------------
@dataclass
class Batch(Samples):
    inputs: torch.Tensor
    targets: torch.Tensor


def batch(generation: int, n: int = 16) -> Batch:
    gen = torch.Generator().manual_seed(1000 + generation)
    return Batch(torch.randn(n, 3, generator=gen), torch.randn(n, 2, generator=gen))


class Regression(Objective):
    """−MSE of the net on the batch, plus an offset that the main process moves each generation
    (so the workers must receive ``generation_state``); the stats echo what each evaluation saw."""

    def __init__(self):
        self.offset = 0.0
        self.merged: list = []
        self._last = None

    def __call__(self, model, samples):
        score = -float((model(samples.inputs) - samples.targets).square().mean()) + self.offset
        self._last = (score, self.offset)
        return score

    def generation_state(self):
        return self.offset

    def set_generation_state(self, state):
        self.offset = state

    def collect_stats(self):
        return self._last

    def merge_stats(self, stats):
        self.merged.append(list(stats))
        self.offset += 0.25


def make_es(backend="serial", *, strategy=SamplingStrategy.ALL, objective=None, **options):
    net = make_mlp(sizes=(3, 5, 4, 2))
    return ESOptimizer(
        Model(net, strategy),
        optimizer=torch.optim.Adam(net.parameters(), lr=0.05),
        objective_fn=Regression() if objective is None else objective,
        sigma=0.05,
        n_samples=12,
        seed=3,
        backend=backend,
        **options,
    )


def run(es, steps, first=0):
    for generation in range(first, first + steps):
        es.gradient_step(batch(generation))
    return trainable_state(es.model.net)


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pids, timeout=10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


# -- options -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, error, match",
    [
        (dict(n_workers=0), ValueError, "n_workers must be an int >= 1, got 0"),
        (dict(n_workers="2"), TypeError, "n_workers must be an int >= 1, got str '2'"),
        (dict(n_workers=True), TypeError, "n_workers"),
        (dict(max_retries=-1), ValueError, "max_retries must be an int >= 0, got -1"),
        (dict(worker_threads=0), ValueError, "worker_threads must be an int >= 1, got 0"),
        (dict(eval_timeout=0), ValueError, "eval_timeout must be .* > 0 or None, got 0"),
        (dict(eval_timeout=math.nan), ValueError, "eval_timeout .* got nan"),
        (dict(eval_timeout="1"), TypeError, "eval_timeout .* got str '1'"),
        (dict(devices=[]), ValueError, "devices must be a non-empty list"),
        (dict(devices=["cpu", "gpu0"]), ValueError, "unknown device 'gpu0' in devices"),
        (dict(devices=[3]), TypeError, "devices must hold device names .* got int 3"),
    ],
)
def test_bad_options_are_rejected_by_name(options, error, match):
    with pytest.raises(error, match=match):
        make_evaluator("multiprocess", **options)


def test_unavailable_cuda_device_is_rejected():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="device 'cuda:0' in devices is not available"):
        PoolEvaluator(devices=["cpu", "cuda:0"])


def test_devices_are_assigned_round_robin_and_set_the_default_worker_count():
    assert assign_devices(["cuda:0", "cuda:1"], 5) == ["cuda:0", "cuda:1"] * 2 + ["cuda:0"]
    assert assign_devices(None, 2) == [None, None]
    evaluator = PoolEvaluator(devices=["cpu", torch.device("cpu"), "cpu:0"])
    assert evaluator.n_workers == 3
    assert [evaluator.options.device_of(k) for k in range(3)] == ["cpu", "cpu", "cpu:0"]
    wider = PoolEvaluator(n_workers=4, devices=["cpu", "cpu:0"])
    assert [wider.options.device_of(k) for k in range(4)] == ["cpu", "cpu:0"] * 2
    evaluator.close(), wider.close()


def test_optimizer_passes_backend_options_through():
    es = make_es("multiprocess", n_workers=3, max_retries=4, eval_timeout=2.5, worker_threads=2)
    evaluator = es.evaluator
    assert isinstance(evaluator, PoolEvaluator)
    assert (evaluator.n_workers, evaluator.options.max_retries) == (3, 4)
    assert (evaluator.options.eval_timeout, evaluator.options.worker_threads) == (2.5, 2)
    assert evaluator.worker_pids() == []  # nothing starts before the first evaluation
    es.close()


# -- chunks and messages ---------------------------------------------------------------------
@pytest.mark.parametrize("n_evals, n_workers", [(2, 1), (12, 2), (100, 2), (100, 3), (40, 16)])
def test_chunks_cover_every_evaluation_once_with_pairs_together(n_evals, n_workers):
    queue = ChunkQueue(n_evals, n_workers)
    chunks = []
    while (chunk := queue.next()) is not None:
        chunks.append(chunk.indices)
    assert sorted(i for c in chunks for i in c) == list(range(n_evals))
    assert all(c[0] % 2 == 0 and len(c) % 2 == 0 for c in chunks)
    sizes = [len(c) for c in chunks]
    assert sizes == sorted(sizes, reverse=True)  # big first, small at the end
    assert len(chunks) >= min(n_evals // 2, 2 * n_workers)  # every worker gets several
    assert sizes[-1] == 2 or n_evals // 2 <= n_workers


def test_a_retried_chunk_comes_first_and_counts_its_attempts():
    queue = ChunkQueue(8, 2)
    first = queue.next()
    queue.retry(first)
    again = queue.next()
    assert (again.indices, again.attempt) == (first.indices, 1)
    second = queue.next()
    queue.requeue(second)  # sent but never started: no attempt is counted
    assert (queue.next(), queue.next().indices) == (second, [4, 5])


def test_step_messages_send_the_center_and_only_what_changed():
    net = make_mlp(sizes=(3, 5, 2))
    model = Model(net, SamplingStrategy.BOTTOM_UP)
    messages = StepMessages()
    names = ("0.weight", "0.bias")

    def population(generation):
        chosen = dict(net.named_parameters())
        center = torch.cat([chosen[n].detach().reshape(-1) for n in names])
        shapes = tuple(chosen[n].shape for n in names)
        return Population(generation, 0, 0.1, 4, names, shapes, center)

    messages.begin(model, Regression(), population(0), batch(0))
    first = loads_step(messages.payload_for(None))
    assert first["base"] is None and set(first["tensors"]) == {"2.weight", "2.bias"}
    messages.begin(model, Regression(), population(1), batch(1))
    delta = loads_step(messages.payload_for(1))
    assert delta["base"] == 1 and delta["tensors"] == {}  # nothing moved between the steps
    with torch.no_grad():
        net[2].bias.add_(1.0)
    messages.begin(model, Regression(), population(2), batch(2))
    delta = loads_step(messages.payload_for(2))
    assert list(delta["tensors"]) == ["2.bias"]
    assert torch.equal(delta["tensors"]["2.bias"], net[2].bias.detach())
    full = loads_step(messages.payload_for(None))  # a new worker gets everything
    assert full["base"] is None and set(full["tensors"]) == {"2.weight", "2.bias"}
    assert torch.equal(full["center"], population(2).center)
    assert torch.equal(full["samples"].inputs, batch(2).inputs)


class CountedBatch(Batch):
    pickled = 0

    def __reduce__(self):
        CountedBatch.pickled += 1
        return (CountedBatch, (self.inputs, self.targets))


def test_samples_are_pickled_once_per_step_not_per_task_or_worker():
    es = make_es("multiprocess", n_workers=2)
    CountedBatch.pickled = 0
    for generation in range(3):
        b = batch(generation)
        es.gradient_step(CountedBatch(b.inputs, b.targets))
    assert CountedBatch.pickled == 3  # 6 pairs in >= 4 chunks on 2 workers, 3 steps
    es.close()


# -- results ---------------------------------------------------------------------------------
def test_pool_matches_serial_with_hooks_stats_and_a_lambda():
    reference = make_es()
    expected = run(reference, 3)
    es = make_es("multiprocess", n_workers=2)
    assert_equal_states(run(es, 3), expected)
    assert es.objective_fn.merged == reference.objective_fn.merged
    assert [s[1] for s in es.objective_fn.merged[2]] == [0.5] * 12  # the offset reached workers
    es.close()
    target = torch.tensor(0.3)  # a lambda closing over a tensor travels with dill
    lam = make_es(
        "multiprocess",
        n_workers=2,
        objective=lambda m, s: -float(m(s.inputs).sub(target).abs().sum()),
    )
    ref = make_es(objective=lambda m, s: -float(m(s.inputs).sub(target).abs().sum()))
    assert_equal_states(run(lam, 2), run(ref, 2))
    lam.close()


class Threads(Objective):
    def __call__(self, model, samples):
        return [-float(model(samples.inputs).square().sum()), float(torch.get_num_threads())]


def test_workers_use_worker_threads():
    es = make_es(
        "multiprocess", n_workers=2, worker_threads=1, objective=Threads(), obj_weights=(1.0, 0.0)
    )
    result = es.gradient_step(batch(0))
    assert result.fitness[:, 1].tolist() == [1.0] * 12
    es.close()


def assert_equal_states(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# -- lifetime --------------------------------------------------------------------------------
def test_close_twice_and_context_manager_stop_the_workers():
    with make_es("multiprocess", n_workers=2) as es:
        es.gradient_step(batch(0))
        pids = es.evaluator.worker_pids()
        assert len(pids) == 2 and all(alive(p) for p in pids) and os.getpid() not in pids
    assert wait_dead(pids) == []
    es.close()
    with pytest.raises(RuntimeError, match="closed"):
        es.gradient_step(batch(1))


def test_garbage_collected_optimizer_and_evaluator_leave_no_process():
    es = make_es("multiprocess", n_workers=2)
    es.gradient_step(batch(0))
    pids = es.evaluator.worker_pids()
    del es
    gc.collect()
    assert wait_dead(pids) == []
    reference = make_es()
    population = reference.ask()
    evaluator = PoolEvaluator(n_workers=1)
    evaluator.bind(reference.model, reference.objective_fn)
    evaluator.evaluate(population, batch(0))
    pids = evaluator.worker_pids()
    del evaluator
    gc.collect()
    assert wait_dead(pids) == []
