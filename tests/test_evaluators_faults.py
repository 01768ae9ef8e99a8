"""Faults in the multiprocess pool: nothing half-done, nothing left behind.

The faulty objective acts on one chosen member of the population, recognised by its parameters
(``trigger``, sent to the workers with the generation's state). With a ``marker`` file it acts only
once, whichever process meets the member first, so that the retried or next step runs clean.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from es_opt import EvaluationError

from .test_evaluators_pool import Regression, batch, make_es, run, trainable_state, wait_dead


class Faulty(Regression):
    def __init__(self, action: str, *, marker: str | None = None):
        super().__init__()
        self.action = action
        self.marker = marker
        self.trigger: torch.Tensor | None = None
        self.main_pid = os.getpid()

    def __call__(self, model, samples):
        flat = torch.cat([p.detach().reshape(-1) for p in model.net.parameters()])
        if self.trigger is not None and torch.equal(flat, self.trigger) and self._arm():
            if self.action == "raise":
                raise_from_the_objective()
            if self.action == "kill" and os.getpid() != self.main_pid:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.action == "sleep":  # far longer than any test may wait: a hang
                time.sleep(600)
            if self.action == "junk":
                return "not a number"
        return super().__call__(model, samples)

    def _arm(self) -> bool:
        if self.marker is None:
            return True
        try:
            with open(self.marker, "x"):
                return True
        except FileExistsError:
            return False

    def generation_state(self):
        return (self.offset, self.trigger)

    def set_generation_state(self, state):
        self.offset, self.trigger = state


def raise_from_the_objective():
    raise ArithmeticError("boom in the objective")


def snapshot(es):
    return (
        trainable_state(es.model.net),
        [None if p.grad is None else p.grad.clone() for p in es.model.net.parameters()],
        copy.deepcopy(es.optimizer.state_dict()),
        es.generation,
    )


def assert_untouched(es, before):
    params, grads, optimizer, generation = snapshot(es)
    assert es.generation == before[3] == generation
    for name in params:
        assert torch.equal(params[name], before[0][name]), name
    for a, b in zip(grads, before[1], strict=True):
        assert (a is None and b is None) or torch.equal(a, b)
    assert str(optimizer) == str(before[2])


def arm(es, index: int):
    """Points the objective at evaluation ``index`` of the coming generation."""
    es.objective_fn.trigger = es.ask().parameters(index).clone()


def test_objective_error_carries_traceback_and_index_and_changes_nothing(tmp_path):
    es = make_es("multiprocess", n_workers=2, objective=Faulty("raise", marker=str(tmp_path / "m")))
    run(es, 1)
    arm(es, 7)
    before = snapshot(es)
    with pytest.raises(EvaluationError, match="ArithmeticError: boom in the objective") as info:
        es.gradient_step(batch(1))
    assert info.value.index == 7
    assert "raise_from_the_objective" in info.value.worker_traceback
    assert_untouched(es, before)
    es.gradient_step(batch(1))  # the next step works, with the same workers
    assert es.generation == 2
    es.close()


class FailsAt(Regression):
    """Raises at the members whose parameters are in ``triggers``; at the first one only after a
    pause, so that with several workers a higher index's error reaches the main process first."""

    def __init__(self):
        super().__init__()
        self.triggers: list[torch.Tensor] = []

    def __call__(self, model, samples):
        flat = torch.cat([p.detach().reshape(-1) for p in model.net.parameters()])
        for rank, trigger in enumerate(self.triggers):
            if torch.equal(flat, trigger):
                if rank == 0:
                    time.sleep(0.5)
                raise ArithmeticError(f"boom at trigger {rank}")
        return super().__call__(model, samples)

    def generation_state(self):
        return (self.offset, self.triggers)

    def set_generation_state(self, state):
        self.offset, self.triggers = state


def assert_the_lowest_index_is_reported(backend, **options):
    """An objective failing at evaluations 3 and 9 reports 3, as the serial evaluator does."""
    es = make_es(backend, objective=FailsAt(), **options)
    population = es.ask()
    es.objective_fn.triggers = [population.parameters(3).clone(), population.parameters(9).clone()]
    before = snapshot(es)
    with pytest.raises(EvaluationError, match="boom at trigger 0") as info:
        es.gradient_step(batch(0))
    assert info.value.index == 3
    assert_untouched(es, before)
    es.close()


@pytest.mark.parametrize(
    "backend, n_workers",
    [("serial", None), ("multiprocess", 1), ("multiprocess", 2), ("multiprocess", 3)],
)
def test_the_error_of_the_lowest_index_is_reported_whatever_the_worker_count(backend, n_workers):
    assert_the_lowest_index_is_reported(backend, n_workers=n_workers)


def test_unusable_return_value_raises_like_serial(tmp_path):
    errors = []
    for backend, options in (("serial", {}), ("multiprocess", {"n_workers": 2})):
        marker = str(tmp_path / backend)
        es = make_es(backend, objective=Faulty("junk", marker=marker), **options)
        arm(es, 4)
        before = snapshot(es)
        with pytest.raises(TypeError) as info:
            es.gradient_step(batch(0))
        errors.append(str(info.value))
        assert_untouched(es, before)
        es.close()
    assert errors[0] == errors[1] and "evaluation 4" in errors[0]


def test_killed_worker_is_replaced_and_the_step_completes_identically(tmp_path):
    expected = run(make_es(), 3)
    es = make_es("multiprocess", n_workers=2, objective=Faulty("kill", marker=str(tmp_path / "m")))
    run(es, 1)
    pids = es.evaluator.worker_pids()
    arm(es, 5)
    run(es, 2, first=1)
    assert os.path.exists(tmp_path / "m")  # a worker really was killed
    replaced = set(pids) - set(es.evaluator.worker_pids())
    assert len(replaced) == 1 and wait_dead(replaced) == []
    assert_equal(trainable_state(es.model.net), expected)
    es.close()


@pytest.mark.parametrize("max_retries", [0, 2])
def test_past_max_retries_a_clear_error_and_untouched_state(max_retries):
    es = make_es("multiprocess", n_workers=2, max_retries=max_retries, objective=Faulty("kill"))
    run(es, 1)
    arm(es, 3)
    before = snapshot(es)
    with pytest.raises(EvaluationError, match="killed by signal 9") as info:
        es.gradient_step(batch(1))
    assert f"retried {max_retries} time(s) (max_retries={max_retries})" in str(info.value)
    # the worker recorded which evaluation it was on: the error names that one, not the lost
    # chunk (6 pairs on 2 workers: the first chunk holds evaluations 0..3)
    assert info.value.index == 3 and "while running evaluation 3," in str(info.value)
    assert_untouched(es, before)
    es.objective_fn.trigger = None
    es.gradient_step(batch(1))
    assert es.generation == 2
    es.close()


def test_hanging_objective_times_out_and_the_next_step_works(tmp_path):
    es = make_es(
        "multiprocess",
        n_workers=2,
        eval_timeout=1.0,
        objective=Faulty("sleep", marker=str(tmp_path / "m")),
    )
    run(es, 1)
    arm(es, 10)
    before = snapshot(es)
    start = time.monotonic()
    with pytest.raises(EvaluationError, match=r"eval_timeout=1.0 s per evaluation") as info:
        es.gradient_step(batch(1))
    assert time.monotonic() - start < 200  # it did not wait for the 600 s hang
    assert info.value.index == 10
    assert_untouched(es, before)
    es.gradient_step(batch(1))
    es.close()


def test_a_hang_inside_a_chunk_names_the_evaluation_that_hangs(tmp_path):
    es = make_es(
        "multiprocess",
        n_workers=2,
        eval_timeout=1.0,
        objective=Faulty("sleep", marker=str(tmp_path / "m")),
    )
    arm(es, 3)  # the last of the first chunk (evaluations 0..3)
    with pytest.raises(EvaluationError, match="evaluation 3 did not finish") as info:
        es.gradient_step(batch(0))
    assert info.value.index == 3
    es.close()


def descendants() -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_keyboard_interrupt_terminates_workers_and_leaves_state_untouched(tmp_path):
    es = make_es("multiprocess", n_workers=2, objective=Faulty("sleep", marker=str(tmp_path / "m")))
    run(es, 1)
    workers = set(es.evaluator.worker_pids())
    others = descendants() - workers  # e.g. the fork server, which outlives any one pool
    assert workers <= descendants()
    arm(es, 0)
    before = snapshot(es)
    sleeping = tmp_path / "m"  # written by the member as it starts to sleep

    def press_ctrl_c():
        deadline = time.monotonic() + 20
        while not sleeping.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    # A process started in the background by a non-interactive shell (`cmd &`, as a CI runner or
    # nohup may start the suite) inherits SIGINT ignored, and Python then leaves it ignored: give
    # the step the handler an interactive Ctrl-C meets.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    start = time.monotonic()
    try:
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            es.gradient_step(batch(1))
    finally:
        presser.join()
        signal.signal(signal.SIGINT, inherited)
    assert time.monotonic() - start < 200  # it did not wait for the 600 s hang
    assert wait_dead(workers, timeout=30) == []
    assert descendants() - others == set()
    assert_untouched(es, before)
    es.gradient_step(batch(1))  # fresh workers
    assert es.generation == 2 and not workers & set(es.evaluator.worker_pids())
    es.close()


HANGING_SCRIPT = """
import os, pathlib, sys, time
import torch
from es_opt import ESOptimizer

folder = pathlib.Path(sys.argv[1])


def hang(model, samples):
    (folder / str(os.getpid())).touch()
    time.sleep(600)
    return 0.0


es = ESOptimizer(torch.nn.Linear(2, 1), objective_fn=hang, n_samples=4, n_workers=2)
es.gradient_step()
"""


@pytest.mark.slow
def test_killing_the_main_process_mid_evaluation_leaves_no_worker(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(HANGING_SCRIPT)
    main = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    try:
        deadline = time.monotonic() + 120
        while len(workers := [int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()]) < 2:
            assert main.poll() is None and time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
    finally:
        main.kill()
        main.wait()
    assert wait_dead(workers, timeout=10) == []  # both were inside a 600 s evaluation


class Unloadable(Regression):
    def __reduce__(self):
        return (_refuse, ())


def _refuse():
    raise RuntimeError("cannot be rebuilt here")


def test_objective_that_cannot_load_in_a_worker_is_reported():
    es = make_es("multiprocess", n_workers=1, objective=Unloadable())
    with pytest.raises(EvaluationError, match="could not load the model and the objective") as info:
        es.gradient_step(batch(0))
    assert "cannot be rebuilt here" in info.value.worker_traceback
    es.close()


class Unpicklable(Regression):
    def __init__(self):
        super().__init__()
        self.stream = (i for i in range(3))


def test_unpicklable_objective_is_a_type_error_that_says_what_to_do():
    es = make_es("multiprocess", n_workers=1, objective=Unpicklable())
    with pytest.raises(TypeError, match="must be picklable .* 'multiprocess' backend"):
        es.gradient_step(batch(0))
    assert es.generation == 0
    es.close()


def assert_equal(a, b):
    for name in a:
        assert torch.equal(a[name], b[name]), name
