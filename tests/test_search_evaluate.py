"""Reward, penalties, early stopping, tasks."""

from __future__ import annotations

import math

import pytest
import torch

from es_opt.search import load_rule, parse_program
from es_opt.search.evaluate import (
    DIVERGED_SCORE,
    TRIVIAL_REWARD,
    SuiteEvaluator,
    _predict,
    run_grid,
    tune,
)
from es_opt.search.tasks import HELD_OUT, SUITE, make_task

LRS = (0.003, 0.01, 0.03)


def adam(params, lr):
    return torch.optim.Adam(params, lr=lr)


@pytest.fixture(scope="module")
def small():
    tasks = (make_task("ill_conditioned", steps=27), make_task("digits_logistic", steps=27))
    baselines = {name: r.loss for name, r in tune(adam, tasks, LRS).items()}
    return tasks, baselines


def test_adamw_program_scores_exactly_tuned_adam(small):
    tasks, baselines = small
    result = SuiteEvaluator(baselines, tasks, LRS, early_stopping=None)(load_rule("adamw"))
    # AdamW without decay is Adam, and the program reproduces it bit for bit
    assert result.status == "ok"
    assert [r.score for r in result.tasks] == [1.0, 1.0]
    assert result.reward == 1.0
    assert result.steps_run == result.steps_full == 3 * 27 * 2


def test_min_aggregate_is_the_worst_task_and_keys_the_cache_apart(small):
    tasks, baselines = small
    rule = load_rule("lion")
    mean = SuiteEvaluator(baselines, tasks, LRS, early_stopping=None)
    worst = SuiteEvaluator(baselines, tasks, LRS, early_stopping=None, aggregate="min")
    by_mean, by_min = mean(rule), worst(rule)
    scores = [r.score for r in by_mean.tasks]
    assert [r.score for r in by_min.tasks] == scores  # same training, another reduction
    assert scores[0] != scores[1]
    assert by_mean.reward == sum(scores) / 2 and by_min.reward == min(scores)
    assert mean.fingerprint() != worst.fingerprint()
    with pytest.raises(ValueError, match="aggregate must be one of .* got 'max'"):
        SuiteEvaluator(baselines, tasks, aggregate="max")


def test_several_seeds_score_each_task_by_its_mean_against_each_seeds_baseline(small):
    tasks, _ = small
    per_seed = {}
    for seed in (0, 1):
        for name, r in tune(adam, tasks, LRS, seed).items():
            per_seed[f"{name}@{seed}"] = r.loss
    evaluator = SuiteEvaluator(
        per_seed, tasks, LRS, early_stopping=None, aggregate="min", seeds=(0, 1)
    )
    adamw = evaluator(load_rule("adamw"))  # Adam against each seed's own tuned Adam
    assert [r.score for r in adamw.tasks] == [1.0] * 4 and adamw.reward == 1.0
    assert adamw.steps_run == adamw.steps_full == 3 * 27 * 2 * 2
    lion = evaluator(load_rule("lion"))
    by_task: dict[str, list[float]] = {}
    for r in lion.tasks:  # task-major: ill_conditioned@0, @1, digits_logistic@0, @1
        by_task.setdefault(r.name, []).append(r.score)
    assert list(by_task) == [t.name for t in tasks]
    assert lion.reward == min(sum(v) / 2 for v in by_task.values())
    seed_0 = {t.name: per_seed[f"{t.name}@0"] for t in tasks}
    single = SuiteEvaluator(seed_0, tasks, LRS, early_stopping=None, aggregate="min")
    assert [r.score for r in single(load_rule("lion")).tasks] == [r.score for r in lion.tasks[::2]]
    assert single.fingerprint() != evaluator.fingerprint()
    with pytest.raises(ValueError, match=r"seeds must be a non-empty tuple of ints >= 0, got \(\)"):
        SuiteEvaluator(per_seed, tasks, seeds=())
    with pytest.raises(ValueError, match=r"no loss for task\(s\) \['ill_conditioned@2', "):
        SuiteEvaluator(per_seed, tasks, seeds=(0, 2))


def test_funnel_trains_other_seeds_only_for_rules_that_pass_the_first(small):
    tasks, _ = small
    per_seed = {}
    for seed in (0, 1):
        for name, r in tune(adam, tasks, LRS, seed).items():
            per_seed[f"{name}@{seed}"] = r.loss
    lion = load_rule("lion")
    options = dict(tasks=tasks, lrs=LRS, early_stopping=None, seeds=(0, 1))
    for aggregate in ("mean", "min"):
        plain = SuiteEvaluator(per_seed, aggregate=aggregate, **options)(lion)
        seed_0 = {t.name: per_seed[f"{t.name}@0"] for t in tasks}
        first = SuiteEvaluator(seed_0, tasks, LRS, early_stopping=None, aggregate=aggregate)(lion)
        scores_0 = [r.score for r in first.tasks]
        # a funnel below the first seed's reward: the same reward, every seed trained
        passed = SuiteEvaluator(
            per_seed, aggregate=aggregate, funnel=first.reward - 0.01, **options
        )
        result = passed(lion)
        assert (result.status, result.reward) == ("ok", plain.reward)
        assert result.steps_run == plain.steps_run == 3 * 27 * 2 * 2
        # a funnel above it: only the first seed is trained
        stopped = SuiteEvaluator(
            per_seed, aggregate=aggregate, funnel=first.reward + 0.01, **options
        )
        result = stopped(lion)
        assert result.status == "funnel"
        if aggregate == "mean":
            assert result.reward == first.reward
            assert [r.score for r in result.tasks] == scores_0
        else:  # stops at the first task below the funnel: its score bounds the worst from above
            below = next(k for k, x in enumerate(scores_0) if x < first.reward + 0.01)
            assert [r.score for r in result.tasks] == scores_0[: below + 1]
            assert result.reward == min(scores_0[: below + 1]) >= first.reward
        assert (
            stopped.fingerprint()
            != passed.fingerprint()
            != SuiteEvaluator(per_seed, aggregate=aggregate, **options).fingerprint()
        )
    with pytest.raises(ValueError, match=r"funnel must be a finite number and needs at least two"):
        SuiteEvaluator(per_seed, tasks, seeds=(0,), funnel=0.5)
    with pytest.raises(ValueError, match=r"got funnel=nan with seeds=\(0, 1\)"):
        SuiteEvaluator(per_seed, tasks, seeds=(0, 1), funnel=math.nan)


def test_trivial_rule_is_not_trained(small):
    tasks, baselines = small
    result = SuiteEvaluator(baselines, tasks, LRS)(parse_program("update = mul(w, 0.1)"))
    assert (result.reward, result.status, result.steps_run) == (TRIVIAL_REWARD, "trivial", 0)


def test_diverging_rule_gets_the_diverged_score(small):
    tasks, baselines = small
    rule = parse_program("t0 = exp(g)\nupdate = mul(t0, 1e30)")
    result = SuiteEvaluator(baselines, tasks, LRS, early_stopping=None)(rule)
    assert result.status == "diverged"
    assert result.reward == DIVERGED_SCORE
    assert all(r.score == DIVERGED_SCORE for r in result.tasks)


def test_successive_halving_runs_the_expected_steps(small):
    tasks, baselines = small
    lrs = tuple(10.0**-k for k in range(1, 10))  # nine arms
    result = SuiteEvaluator(baselines, tasks, lrs, early_stopping="halving")(load_rule("lion"))
    # 9 arms to 3 steps, 3 to 9, 1 to 27, per task
    assert result.steps_run == 2 * (9 * 3 + 3 * 6 + 1 * 18)
    assert result.steps_full == 2 * 9 * 27


def test_curve_predictor_stops_a_hopeless_rule_on_the_first_task(small):
    tasks, baselines = small
    rule = parse_program("update = mul(g, 1e-9)")  # moves, but far too little
    result = SuiteEvaluator(baselines, tasks, LRS, early_stopping="curve")(rule)
    assert result.status == "hopeless"
    assert len(result.tasks) == 1
    assert result.steps_run == 3 * (27 // 9)


def test_power_law_prediction_is_exact_on_a_power_law():
    history = [(t, 2.0 * t**-0.5) for t in (2, 4, 8)]
    assert _predict(history, 32) == pytest.approx(2.0 * 32**-0.5, rel=1e-12)
    # a rising curve is predicted flat (its geometric mean), never exploding
    assert _predict([(1, 1.0), (2, 2.0)], 100) == pytest.approx(2.0**0.5, rel=1e-12)
    assert _predict([(1, 1.0), (2, math.inf)], 100) == math.inf


def test_run_grid_picks_the_best_learning_rate():
    task = make_task("ill_conditioned", steps=27)
    best, _ = run_grid(adam, task, (1e-6, 0.1), seed=0, early_stopping=None)
    assert best.lr == 0.1 and best.loss < best.initial_loss


def test_evaluator_arguments(small):
    tasks, baselines = small
    with pytest.raises(ValueError, match="early_stopping must be one of .* got 'fast'"):
        SuiteEvaluator(baselines, tasks, early_stopping="fast")
    with pytest.raises(
        ValueError, match=r"baselines has no loss for task\(s\) \['digits_logistic@0'\]"
    ):
        SuiteEvaluator({"ill_conditioned": 1.0}, tasks)
    with pytest.raises(ValueError, match="name must be one of .* got 'mnist'"):
        make_task("mnist")


def test_tasks_are_seeded_and_distinct():
    for task in (*SUITE, *HELD_OUT):
        a, b, c = task.make(0), task.make(0), task.make(1)
        assert a.loss() == b.loss()
        assert a.loss() != c.loss()
        assert torch.equal(a.batch_loss(3), b.batch_loss(3))


def test_building_tasks_leaves_the_global_generator_alone():
    state = torch.random.get_rng_state()
    for task in (*SUITE, *HELD_OUT):
        task.make(0).loss()
    assert torch.equal(torch.random.get_rng_state(), state)
