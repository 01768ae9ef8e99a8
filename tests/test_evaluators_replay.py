"""``sync="replay"``: pool workers recompute each update with a replica of the inner optimizer,
checked by digest; the results are the serial ones bit for bit, and the centre does not travel."""

from __future__ import annotations

import os

import pytest
import torch

from es_opt import ESOptimizer, Model, SamplingStrategy
from es_opt.evaluators._messages import loads_step
from es_opt.evaluators._replay import digest

from .conftest import make_mlp, trainable_state
from .test_evaluators_faults import Faulty, arm
from .test_evaluators_pool import Regression, batch, make_es, run, wait_dead


def assert_equal(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_replayed_updates_equal_serial_and_no_worker_needs_the_centre_again(n_workers):
    serial = make_es()
    expected = run(serial, 4)
    with make_es("multiprocess", n_workers=n_workers, sync="replay") as es:
        assert_equal(run(es, 4), expected)
        # step 1 sends everything to every worker; steps 2-4 replay on each of them
        assert es.evaluator.sync_stats == {
            "sent": n_workers,
            "replayed": 3 * n_workers,
            "resynced": 0,
        }
        assert es.objective_fn.merged == serial.objective_fn.merged  # stats and generation state


def test_the_step_message_carries_the_update_not_the_centre():
    net = make_mlp(sizes=(3, 200, 100, 2))  # 21,002 parameters: 84 KB of centre
    es = ESOptimizer(
        Model(net),
        torch.optim.Adam(net.parameters(), lr=0.01),
        objective_fn=Regression(),
        sigma=0.05,
        n_samples=8,
        seed=1,
        n_workers=2,
        sync="replay",
    )
    with es:
        run(es, 2)
        center = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        es.gradient_step(batch(2))
        messages = es.evaluator._messages
        message = loads_step(messages.payload_for(messages.step_id - 1))
        assert message["center"] is None and message["tensors"] == {}
        assert message["replay"]["digest"] == digest(center)  # the centre step 3 evaluated
        assert message["replay"]["fitness"].shape == (8, 1)
        assert messages.payload_bytes < 8_000 < center.numel() * 4
        assert es.evaluator.sync_stats == {"sent": 2, "replayed": 4, "resynced": 0}


def test_parameters_changed_between_steps_are_caught_by_the_digest_and_resent():
    def edited(es):
        run(es, 2)
        with torch.no_grad():  # the user changes the model between two steps
            es.model.net[0].weight.mul_(0.5)
        return run(es, 2, first=2)

    expected = edited(make_es())
    with make_es("multiprocess", n_workers=2, sync="replay") as es:
        assert_equal(edited(es), expected)
        stats = es.evaluator.sync_stats
    # step 3: both workers replay step 2's update, miss the edit, and get the full state, once
    assert stats == {"sent": 4, "replayed": 4, "resynced": 2}


def test_a_learning_rate_schedule_and_layer_sampling_replay_exactly():
    def scheduled(es):
        schedule = torch.optim.lr_scheduler.StepLR(es.optimizer, step_size=1, gamma=0.5)
        for generation in range(5):
            es.gradient_step(batch(generation))
            schedule.step()
        return trainable_state(es.model.net)

    expected = scheduled(make_es(strategy=SamplingStrategy.RANDOM))
    with make_es(
        "multiprocess", n_workers=2, sync="replay", strategy=SamplingStrategy.RANDOM
    ) as es:
        assert_equal(scheduled(es), expected)
        assert es.evaluator.sync_stats["resynced"] == 0
        assert es.evaluator.sync_stats["replayed"] == 8


def test_pgpe_replays_with_its_per_parameter_sigma():
    def pgpe(backend, **options):
        net = make_mlp(sizes=(3, 5, 2))
        return ESOptimizer(
            Model(net),
            torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9),
            objective_fn=Regression(),
            sigma=0.1,
            n_samples=10,
            seed=2,
            distribution="pgpe",
            backend=backend,
            **options,
        )

    expected = run(pgpe("serial"), 4)
    with pgpe("multiprocess", n_workers=2, sync="replay") as es:
        assert_equal(run(es, 4), expected)
        assert es.evaluator.sync_stats["replayed"] == 6


def test_a_replacement_worker_gets_the_full_state_and_the_run_stays_exact(tmp_path):
    expected = run(make_es(), 3)
    es = make_es(
        "multiprocess",
        n_workers=2,
        sync="replay",
        objective=Faulty("kill", marker=str(tmp_path / "m")),
    )
    run(es, 1)
    pids = es.evaluator.worker_pids()
    arm(es, 5)
    run(es, 2, first=1)
    assert os.path.exists(tmp_path / "m")  # a worker really was killed
    assert len(set(pids) - set(es.evaluator.worker_pids())) == 1
    assert wait_dead(set(pids) - set(es.evaluator.worker_pids())) == []
    assert_equal(trainable_state(es.model.net), expected)
    stats = es.evaluator.sync_stats
    assert stats["resynced"] == 0 and stats["sent"] == 3  # two at the start, one replacement
    es.close()


def test_sync_is_checked_before_anything_starts():
    with pytest.raises(ValueError, match="sync must be one of 'center', 'replay', got 'seeds'"):
        make_es("multiprocess", n_workers=2, sync="seeds")
    with pytest.raises(ValueError, match="sync='replay' applies to the parallel backends"):
        make_es("serial", sync="replay")
