"""The Ray backend on a real two-node cluster started on 127.0.0.1 (one cluster for the module:
Ray's start-up is slow)."""

from __future__ import annotations

import os

import pytest
import torch

from es_opt import EvaluationError

from .test_evaluators_faults import (
    Faulty,
    arm,
    assert_the_lowest_index_is_reported,
    assert_untouched,
    snapshot,
)
from .test_evaluators_pool import batch, make_es, run

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    from es_opt.evaluators.ray_backend import WORKER_NICENESS, _loopback_only

    assert not ray.is_initialized()
    cluster = None
    try:
        with _loopback_only(ray):  # the nodes and this driver on 127.0.0.1 only
            cluster = Cluster(
                initialize_head=True,
                head_node_args={
                    "num_cpus": 1,
                    "include_dashboard": False,
                    # as a private Ray of es_opt: actors at normal priority, not starved by
                    # whatever else keeps the machine busy
                    "_system_config": {"worker_niceness": WORKER_NICENESS},
                },
            )
            cluster.add_node(num_cpus=1)
            ray.init(address=cluster.address, logging_level="WARNING")
        yield cluster
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


@pytest.fixture(scope="module")
def serial_run():
    es = make_es()
    return run(es, 3), es.objective_fn.merged


def assert_same(a, b):
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_actors_run_on_both_nodes_and_the_result_equals_serial(cluster, serial_run):
    nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert len(nodes) == 2
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    with make_es("ray", n_workers=2, ray_address=cluster.address) as es:
        state = run(es, 3)
        info = es.evaluator.worker_info()
        assert {i["node_id"] for i in info} == nodes
        assert all(i["pid"] != os.getpid() for i in info)
        assert_same(state, serial_run[0])
        assert es.objective_fn.merged == serial_run[1]
    assert ray.is_initialized()  # a cluster the evaluator joined is left running


def test_objective_error_in_an_actor_changes_nothing(cluster, tmp_path):
    es = make_es("ray", n_workers=2, objective=Faulty("raise", marker=str(tmp_path / "m")))
    run(es, 1)
    arm(es, 9)
    before = snapshot(es)
    with pytest.raises(EvaluationError, match="boom in the objective") as info:
        es.gradient_step(batch(1))
    assert info.value.index == 9 and "raise_from_the_objective" in info.value.worker_traceback
    assert_untouched(es, before)
    es.gradient_step(batch(1))
    assert es.generation == 2
    es.close()


def test_the_error_of_the_lowest_index_is_reported(cluster):
    assert_the_lowest_index_is_reported("ray", n_workers=2)


def test_killed_actor_is_replaced_and_the_step_completes_identically(cluster, tmp_path, serial_run):
    es = make_es("ray", n_workers=2, objective=Faulty("kill", marker=str(tmp_path / "m")))
    run(es, 1)
    pids = {i["pid"] for i in es.evaluator.worker_info()}
    arm(es, 6)
    state = run(es, 2, first=1)
    assert os.path.exists(tmp_path / "m")
    assert len(pids - {i["pid"] for i in es.evaluator.worker_info()}) == 1
    assert_same(state, serial_run[0])
    es.close()


def test_past_max_retries_a_killed_actor_fails_the_step_cleanly(cluster):
    es = make_es("ray", n_workers=2, max_retries=0, objective=Faulty("kill"))
    run(es, 1)
    arm(es, 2)
    before = snapshot(es)
    with pytest.raises(EvaluationError, match=r"actor died .*\(max_retries=0\)") as info:
        es.gradient_step(batch(1))
    # every member the dead actor held (evaluations 0..3 and 6..7) ran again alone to find the
    # culprit (tests/test_evaluators_scheduler.py: why the first held chunk is not enough)
    assert info.value.index == 2 and "while running evaluation 2," in str(info.value)
    assert_untouched(es, before)
    es.objective_fn.trigger = None
    es.gradient_step(batch(1))
    assert es.generation == 2
    es.close()


def test_replayed_updates_on_the_cluster_equal_serial(cluster, serial_run):
    # sync="replay": after the first step only the update's scalars reach the actors
    with make_es("ray", n_workers=2, ray_address=cluster.address, sync="replay") as es:
        assert_same(run(es, 3), serial_run[0])
        assert es.objective_fn.merged == serial_run[1]
        assert es.evaluator.sync_stats == {"sent": 2, "replayed": 4, "resynced": 0}


def test_a_private_ray_is_started_even_beside_a_running_cluster(cluster, serial_run):
    """Without ``ray_address`` es_opt starts its own Ray instance: ``ray.init`` alone would join
    the cluster it finds on this machine (and refuse ``num_cpus`` for it)."""
    from es_opt.evaluators.ray_backend import _loopback_only

    ray.shutdown()  # the module's driver leaves; the cluster keeps running
    try:
        with make_es("ray", n_workers=1) as es:
            assert_same(run(es, 3), serial_run[0])
            # its actors run at normal priority (Ray's default niceness, 15, starves them)
            assert [
                os.getpriority(os.PRIO_PROCESS, i["pid"]) for i in es.evaluator.worker_info()
            ] == [0]
    finally:
        ray.shutdown()
        with _loopback_only(ray):  # back on the module's cluster for any later test
            ray.init(address=cluster.address, logging_level="WARNING")
