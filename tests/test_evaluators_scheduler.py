"""The scheduling loop's search for the member that killed a worker, on a scripted transport.

A Ray actor that finishes a task and is killed in the next one can take the finished task's reply
with it: Ray then fails both tasks, and the oldest failed task is not the one that was running.
On a real cluster that happens only under load, by chance (it made
``test_past_max_retries_a_killed_actor_fails_the_step_cleanly`` in ``test_evaluators_ray.py``
name member 0 or 1 instead of 2); the transport below makes it happen every time, so that the
scheduler's answer to it is checked deterministically.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from es_opt import EvaluationError
from es_opt.evaluators._options import Options
from es_opt.evaluators._scheduler import Lost, Reply, Scheduler, Stopped

N_EVALS = 12  # 6 pairs on 2 workers: worker 0 holds evaluations 0..3 and 6..7 at first


class ReplyLosingWorkers:
    """``n_workers`` in-process workers, each running its tasks in the order sent; the lowest busy
    worker answers first. A worker dies running a task that holds ``killer`` (while ``kills``
    lasts: ``None`` is forever) and, dying, loses the reply of the task it finished just before
    (``lose_reply``), as a Ray actor can. With ``names_member`` it reports which member it was
    running, as the pool's workers do."""

    def __init__(self, n_workers, killer, *, kills=None, lose_reply=True, names_member=False):
        self.n_workers = n_workers
        self.killer = killer
        self.kills = kills
        self.lose_reply = lose_reply
        self.names_member = names_member
        self.tasks: list[list[list[int]]] = [[] for _ in range(n_workers)]
        self.deaths = 0
        self.shared_after_a_death = []  # single-member tasks sent behind another after a death

    def send(self, slot, step, payload, indices):
        if self.deaths and len(indices) == 1 and self.tasks[slot]:
            self.shared_after_a_death.append((self.tasks[slot][-1], indices))
        self.tasks[slot].append(list(indices))

    def _kills(self, task):
        return task is not None and self.killer in task and self.kills != 0

    def wait(self, slots, timeout):
        slot = min(slots)
        head, *behind = self.tasks[slot]
        running = head if not behind or not self.lose_reply else behind[0]
        if self._kills(head) or self._kills(running):
            self.deaths += 1
            self.kills = None if self.kills is None else self.kills - 1
            return [Lost(slot)]
        self.tasks[slot].pop(0)
        return [Reply(slot, ("ok", head, [[float(i)] for i in head], [None] * len(head)))]

    def replace(self, slot):
        self.tasks[slot].clear()
        return Stopped("the test worker", "died", self.killer if self.names_member else None)


def schedule(transport, max_retries):
    options = Options.check(
        n_workers=transport.n_workers,
        devices=None,
        max_retries=max_retries,
        eval_timeout=None,
        worker_threads=1,
    )
    step = SimpleNamespace(step_id=1, replays_for=lambda last: False, payload_for=lambda last: b"")
    return Scheduler(transport, options).run(step, N_EVALS, per_worker=2)


@pytest.mark.parametrize("names_member", [False, True])
@pytest.mark.parametrize("max_retries", [0, 2])
def test_the_error_names_the_member_that_killed_the_worker_not_one_whose_reply_died(
    max_retries, names_member
):
    workers = ReplyLosingWorkers(2, killer=2, names_member=names_member)
    with pytest.raises(EvaluationError) as info:
        schedule(workers, max_retries)
    assert info.value.index == 2
    assert str(info.value) == (
        f"the test worker died while running evaluation 2, which was already retried "
        f"{max_retries} time(s) (max_retries={max_retries})"
    )
    # a worker that names its member is charged at once; otherwise one uncharged death sends
    # every member it held to run alone, and then only member 2's own deaths count
    assert workers.deaths == (1 if names_member else 2) + max_retries
    assert workers.shared_after_a_death == []


def test_a_death_that_does_not_repeat_charges_no_member():
    # the worker finishes 0..3 and dies once, in 6..7, taking the reply of 0..3 with it
    workers = ReplyLosingWorkers(2, killer=6, kills=1)
    evaluation = schedule(workers, max_retries=0)
    assert evaluation.fitness.flatten().tolist() == [float(i) for i in range(N_EVALS)]
    assert workers.deaths == 1


def test_a_member_that_kills_every_time_ends_the_step_after_its_own_retries():
    # first met behind a finished chunk (0..3 ran, then 6..7 killed the worker): its own
    # attempts are counted only once it runs alone
    workers = ReplyLosingWorkers(2, killer=6)
    with pytest.raises(EvaluationError, match="while running evaluation 6, which was already "):
        schedule(workers, max_retries=1)
    assert workers.deaths == 1 + 2
