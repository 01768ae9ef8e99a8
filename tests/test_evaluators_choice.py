"""Which evaluator ``backend``, ``n_workers``, ``devices`` and the backend options choose: every
combination either builds what the docs say or is refused at construction, naming the argument."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch

from es_opt import ESOptimizer
from es_opt.evaluators import SerialEvaluator, resolve_backend
from es_opt.evaluators.pool import PoolEvaluator

from .conftest import Quadratic, make_mlp

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="the ray extra is not installed")
INSTANCE = SerialEvaluator()

# (backend, n_workers, devices, options) -> (backend built, options passed to make_evaluator)
CHOICES = [
    pytest.param(None, None, None, {}, "serial", {}, id="nothing: serial"),
    pytest.param(None, 1, None, {}, "serial", {}, id="one worker: serial"),
    pytest.param(None, 2, None, {}, "multiprocess", {"n_workers": 2}, id="n_workers>1: pool"),
    pytest.param(
        None, None, ["cpu", "cpu"], {}, "multiprocess",
        {"n_workers": 2, "devices": ("cpu", "cpu")}, id="devices alone: pool of len(devices)",
    ),
    pytest.param(
        None, None, "cpu", {}, "multiprocess", {"n_workers": 1, "devices": ("cpu",)},
        id="one device name: pool of 1",
    ),
    pytest.param(
        None, 3, ["cpu", torch.device("cpu")], {}, "multiprocess",
        {"n_workers": 3, "devices": ("cpu", "cpu")}, id="more workers than devices: round-robin",
    ),
    pytest.param(
        None, None, None, {"max_retries": None, "eval_timeout": None}, "serial", {},
        id="options left at None: ignored",
    ),
    pytest.param("serial", None, None, {}, "serial", {}, id="serial"),
    pytest.param("serial", 1, None, {}, "serial", {}, id="serial with one worker"),
    pytest.param("serial", None, None, {"sync": "center"}, "serial", {}, id="serial, sync=center"),
    pytest.param(None, None, None, {"sync": "center"}, "serial", {}, id="sync=center alone"),
    pytest.param("multiprocess", None, None, {}, "multiprocess", {}, id="pool: default workers"),
    pytest.param(
        "multiprocess", 2, None, {"max_retries": 3, "eval_timeout": 2.5, "worker_threads": 2},
        "multiprocess",
        {"n_workers": 2, "max_retries": 3, "eval_timeout": 2.5, "worker_threads": 2},
        id="pool with options",
    ),
    pytest.param(
        "ray", 2, None, {}, "ray", {"n_workers": 2}, id="ray", marks=needs_ray,
    ),
    pytest.param(
        None, None, None, {"ray_address": "auto"}, "ray", {"ray_address": "auto"},
        id="ray_address alone: ray", marks=needs_ray,
    ),
    pytest.param(
        "ray", None, ["cpu"], {"ray_address": "127.0.0.1:6379"}, "ray",
        {"n_workers": 1, "devices": ("cpu",), "ray_address": "127.0.0.1:6379"},
        id="ray on a cluster with devices", marks=needs_ray,
    ),
    pytest.param(INSTANCE, None, None, {}, INSTANCE, {}, id="an Evaluator instance as is"),
]  # fmt: skip


@pytest.mark.parametrize("backend, n_workers, devices, options, chosen, passed", CHOICES)
def test_the_arguments_choose_the_documented_backend(
    backend, n_workers, devices, options, chosen, passed
):
    assert resolve_backend(backend, n_workers, devices, **options) == (chosen, passed)


ABSENT_DEVICES = [
    pytest.param(["cuda:7"], "device 'cuda:7' in devices is not available", id="cuda:7"),
    pytest.param(
        ["cpu", "cuda:0"],
        "device 'cuda:0' in devices is not available",
        id="cuda:0",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
    ),
    pytest.param(["gpu0"], "unknown device 'gpu0' in devices", id="garbage"),
    pytest.param(["cpu", "nonsense:3"], "unknown device 'nonsense:3' in devices", id="garbage:3"),
    pytest.param([], "devices must be a non-empty list", id="empty"),
]
ALL_BACKENDS = [
    None,
    "serial",
    "multiprocess",
    pytest.param("ray", marks=needs_ray),
    pytest.param(INSTANCE, id="instance"),
]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("devices, match", ABSENT_DEVICES)
def test_an_absent_or_unknown_device_is_refused_whatever_the_backend(backend, devices, match):
    with pytest.raises(ValueError, match=match):
        resolve_backend(backend, devices=devices)


REFUSED = [
    ("serial", 2, None, {}, ValueError, r"n_workers=2 contradicts backend='serial'"),
    ("serial", None, ["cpu"], {}, ValueError, r"devices=\['cpu'\] contradicts backend='serial'"),
    ("serial", None, None, {"max_retries": 2}, ValueError, "max_retries=2 applies to the parallel"),
    ("serial", None, None, {"sync": "replay"}, ValueError, "sync='replay' applies to the parallel"),
    ("serial", None, None, {"sync": "centre"}, ValueError, "sync must be one of .* got 'centre'"),
    (None, None, None, {"eval_timeout": 5}, ValueError, "eval_timeout=5 applies to the parallel"),
    ("multiprocess", 2, None, {"ray_address": "auto"}, ValueError, "ray_address='auto' applies"),
    (None, 1, ["cpu", "cpu"], {}, ValueError, r"n_workers=1 is fewer than the 2 devices"),
    (None, 0, None, {}, ValueError, "n_workers must be an int >= 1 or None, got int 0"),
    (None, "2", None, {}, TypeError, "n_workers must be an int >= 1 or None, got str '2'"),
    (None, True, None, {}, TypeError, "n_workers must be an int >= 1 or None, got bool True"),
    (None, None, [3], {}, TypeError, "devices must hold device names .* got int 3"),
    ("mpi", None, None, {}, ValueError, "backend must be one of 'serial', .* got 'mpi'"),
    (SerialEvaluator, None, None, {}, TypeError, "got the class SerialEvaluator: build it"),
    (INSTANCE, 2, None, {}, ValueError, "n_workers=2 does not apply to an Evaluator instance"),
    (INSTANCE, None, None, {"max_retries": 0}, ValueError, "max_retries=0 does not apply"),
    ("multiprocess", 2, None, {"n_worker": 2}, TypeError, r"unexpected .*\(s\) \['n_worker'\]"),
    ("multiprocess", 2, None, {"max_retries": -1}, ValueError, "max_retries must be an int >= 0"),
    ("multiprocess", 2, None, {"eval_timeout": 0}, ValueError, "eval_timeout must be .* got 0"),
    ("multiprocess", 2, None, {"worker_threads": 1.5}, TypeError, "worker_threads must be an int"),
    ("ray", 2, None, {"ray_address": ""}, ValueError, "ray_address must be 'auto', 'host:port'"),
]


@pytest.mark.parametrize("backend, n_workers, devices, options, error, match", REFUSED)
def test_contradictions_and_bad_values_are_refused_by_name(
    backend, n_workers, devices, options, error, match
):
    with pytest.raises(error, match=match):
        resolve_backend(backend, n_workers, devices, **options)


def test_resolving_starts_nothing_and_imports_no_ray():
    code = (
        "import multiprocessing, sys\n"
        "from es_opt.evaluators import resolve_backend\n"
        "resolve_backend('ray', n_workers=2, max_retries=0)\n"
        "resolve_backend(None, devices=['cpu', 'cpu'])\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
        "assert multiprocessing.active_children() == []\n"
        "import multiprocess\n"
        "assert multiprocess.active_children() == []\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# -- through ESOptimizer, which calls resolve_backend at construction -----------------------------
def make_es(**options):
    net = make_mlp()
    return ESOptimizer(net, objective_fn=Quadratic(), n_samples=4, seed=0, **options)


ESOPTIMIZER_REFUSED = [
    (dict(devices=["cuda:7"]), "device 'cuda:7' in devices is not available"),
    (dict(devices=["cuda:7"], backend="ray"), "device 'cuda:7' in devices is not available"),
    (dict(n_workers=2, backend="serial"), r"n_workers=2 contradicts backend='serial'"),
    (dict(devices=["gpu0"], n_workers=2), "unknown device 'gpu0'"),
]


@pytest.mark.parametrize("options, match", ESOPTIMIZER_REFUSED)
def test_esoptimizer_refuses_at_construction(options, match):
    if "cuda" in match and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(ValueError, match=match):
        make_es(**options)


def test_esoptimizer_with_devices_alone_builds_a_pool_of_len_devices():
    with make_es(devices=["cpu", "cpu"]) as es:
        evaluator = es.evaluator  # built, not started: workers start at the first step
        assert isinstance(evaluator, PoolEvaluator)
        assert evaluator.n_workers == 2 and evaluator.options.devices == ("cpu", "cpu")
        assert evaluator.worker_pids() == []


def test_every_backend_takes_sync_center_the_serial_one_included():
    plain, explicit = make_es(), make_es(backend="serial", sync="center")
    assert isinstance(explicit.evaluator, SerialEvaluator)
    for es in (plain, explicit):
        for _ in range(2):
            es.gradient_step()
    for a, b in zip(plain.model.net.parameters(), explicit.model.net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert SerialEvaluator(sync="center").sync == "center"
    with pytest.raises(ValueError, match="sync='replay' applies to the parallel backends, not Se"):
        SerialEvaluator(sync="replay")
    with pytest.raises(ValueError, match="sync must be one of 'center', 'replay', got 'seeds'"):
        SerialEvaluator(sync="seeds")
