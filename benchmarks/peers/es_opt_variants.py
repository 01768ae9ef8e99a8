"""Runners for es_opt sides that differ from ``es_opt_side`` only by command-line flags of the
sample scripts (``--distribution pgpe`` and the like): the same loading, clocks and trackers."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from benchmarks.peers import es_opt_side, tasks


def make_runners(
    distribution: str, flags: dict[str, tuple[str, ...]]
) -> tuple[dict[str, Callable[[int, float], dict]], dict[str, dict[str, Any]]]:
    """``(RUNNERS, SETTINGS)`` of a side that runs every task with ``--distribution`` and the
    task's extra flags."""
    argv = {task: ("--distribution", distribution, *flags.get(task, ())) for task in tasks.TASKS}
    try:
        settings = {
            tasks.CARTPOLE: es_opt_side._rl_settings(tasks.CARTPOLE_ENV, argv[tasks.CARTPOLE]),
            tasks.PENDULUM: es_opt_side._rl_settings(tasks.PENDULUM_ENV, argv[tasks.PENDULUM]),
            tasks.DIGITS: es_opt_side._digits_settings(argv[tasks.DIGITS]),
        }
    except Exception as exc:  # reported by the runs themselves; keep the module importable
        settings = {task: {"error": f"{type(exc).__name__}: {exc}"} for task in tasks.TASKS}

    def rl(task: str, env_id: str, tracker_cls, seed: int, budget_s: float) -> dict:
        tracker = tracker_cls(budget_s)
        return es_opt_side._run_rl(task, env_id, tracker, seed, argv[task], settings[task])

    runners = {
        tasks.CARTPOLE: partial(rl, tasks.CARTPOLE, tasks.CARTPOLE_ENV, tasks.CartPoleTracker),
        tasks.PENDULUM: partial(rl, tasks.PENDULUM, tasks.PENDULUM_ENV, tasks.PendulumTracker),
        tasks.DIGITS: lambda seed, budget_s: es_opt_side.run_digits(
            seed, budget_s, argv[tasks.DIGITS], settings[tasks.DIGITS]
        ),
    }
    return runners, settings
