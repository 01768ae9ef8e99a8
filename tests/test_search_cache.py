"""Evaluation cache: atomic entries, shared across processes; Evaluations counts hits."""

from __future__ import annotations

import json

import multiprocess
import pytest

from es_opt.search import load_rule, parse_program
from es_opt.search.cache import EvaluationCache, atomic_write_json
from es_opt.search.evaluate import SuiteEvaluator
from es_opt.search.parallel import Evaluations
from es_opt.search.tasks import make_task


def _writer(args):
    directory, worker = args
    cache = EvaluationCache(directory)
    for k in range(30):
        # both workers write keys 10..29: concurrent writers of one key write the same bytes
        key = f"k{k + 10 * worker}"
        cache.put("fp", key, {"key": key, "payload": list(range(200))})
    return worker


def test_put_get_hit_rate_and_no_temporary_files(tmp_path):
    cache = EvaluationCache(tmp_path)
    assert cache.get("fp", "a") is None
    cache.put("fp", "a", {"reward": 1.5})
    assert cache.get("fp", "a") == {"reward": 1.5}
    assert cache.get("other", "a") is None  # the fingerprint is part of the key
    assert (cache.hits, cache.misses, cache.hit_rate) == (1, 2, 1 / 3)
    assert len(cache) == 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.slow
def test_two_processes_share_the_cache(tmp_path):
    with multiprocess.get_context("spawn").Pool(2) as pool:
        assert sorted(pool.map(_writer, [(str(tmp_path), 0), (str(tmp_path), 1)])) == [0, 1]
    cache = EvaluationCache(tmp_path)
    assert len(cache) == 40
    for k in range(40):
        assert cache.get("fp", f"k{k}") == {"key": f"k{k}", "payload": list(range(200))}
    assert not list(tmp_path.rglob("*.tmp"))


def test_cache_type_error():
    with pytest.raises(TypeError, match="directory must be a path, got int"):
        EvaluationCache(3)


def tiny_evaluator():
    task = make_task("ill_conditioned", steps=9)
    return SuiteEvaluator({task.name: 1.0}, (task,), lrs=(0.01, 0.1), early_stopping=None)


def test_evaluations_reuse_the_cache_across_instances_and_duplicates(tmp_path):
    lion = load_rule("lion")
    renamed = parse_program(str(lion).replace("t0", "t7"))
    first = Evaluations(tiny_evaluator(), tmp_path)
    a = first([lion, renamed, load_rule("adamw")])
    assert (first.evaluated, first.cache_hits, first.requested) == (2, 1, 3)
    assert a[0] == a[1]
    second = Evaluations(tiny_evaluator(), tmp_path)
    b = second([load_rule("adamw"), lion])
    assert (second.evaluated, second.hit_rate) == (0, 1.0)
    assert b == [a[2], a[0]]


def test_evaluations_arguments():
    with pytest.raises(ValueError, match="n_workers must be a positive int, got 0"):
        Evaluations(tiny_evaluator(), n_workers=0)
    with pytest.raises(
        ValueError, match="start_method must be 'spawn' or 'forkserver', got 'fork'"
    ):
        Evaluations(tiny_evaluator(), start_method="fork")


@pytest.mark.slow
def test_two_workers_give_the_serial_results(tmp_path):
    rules = [load_rule(n) for n in ("lion", "adamw", "sgd_momentum", "ligi")]
    serial = Evaluations(tiny_evaluator())(rules)
    with Evaluations(tiny_evaluator(), tmp_path, n_workers=2) as pool:
        assert pool(rules) == serial
    assert len(EvaluationCache(tmp_path)) == 4  # the workers wrote the shared cache


def test_two_serial_evaluations_in_one_process_keep_their_own_evaluator():
    short = tiny_evaluator()
    task = make_task("ill_conditioned", steps=18)
    longer = SuiteEvaluator({task.name: 1.0}, (task,), lrs=(0.01, 0.1), early_stopping=None)
    a, b = Evaluations(short), Evaluations(longer)
    rule = load_rule("lion")
    assert b([rule])[0] == longer(rule)
    assert a([rule])[0] == short(rule) != longer(rule)
