"""The search environment follows gymnasium's API."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from es_opt.search import load_rule, parse_program
from es_opt.search.env import OptimizerSearchEnv, decode_action, encode_program
from es_opt.search.evaluate import INVALID_REWARD, SuiteEvaluator
from es_opt.search.program import CONSTANTS, OPS, SLOTS, WRITABLE
from es_opt.search.tasks import make_task


def tiny_reward():
    task = make_task("ill_conditioned", steps=9)
    evaluator = SuiteEvaluator({task.name: 1.0}, (task,), lrs=(0.01, 0.1), early_stopping=None)
    return lambda program: evaluator(program).reward


def action(kind, position, op, dst, *args):
    tokens = [
        SLOTS.index(a) if isinstance(a, str) else len(SLOTS) + CONSTANTS.index(a) for a in args
    ]
    tokens += [0] * (3 - len(tokens))
    return np.array([kind, position, list(OPS).index(op), WRITABLE.index(dst), *tokens])


def test_gymnasium_env_checker_passes():
    check_env(
        OptimizerSearchEnv(tiny_reward(), max_edits=3, render_mode="ansi"), skip_render_check=False
    )


def test_invalid_edit_is_penalised_and_rolled_back():
    env = OptimizerSearchEnv(tiny_reward(), load_rule("sgd_momentum"))
    obs, info = env.reset(seed=0)
    # remove statement 40 of a 3-statement program
    obs2, reward, terminated, truncated, info2 = env.step(action(1, 40, "abs", "t0", "g"))
    assert reward == INVALID_REWARD and not info2["valid"]
    assert info2["error"] == "cannot remove statement 40: the program has 3"
    assert np.array_equal(obs, obs2) and info2["program"] == info["program"]
    # reading a temporary nobody assigned
    _, reward, *_ = env.step(action(0, 0, "add", "t0", "t5", "g"))
    assert reward == INVALID_REWARD


def test_valid_edit_is_rewarded_with_the_rule_reward_and_episode_truncates():
    reward_fn = tiny_reward()
    env = OptimizerSearchEnv(reward_fn, load_rule("sgd_momentum"), max_edits=2)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action(2, 2, "sign", "update", "v1"))
    expected = parse_program("v1 = mul(v1, 0.9)\nv1 = add(v1, g)\nupdate = sign(v1)")
    assert info["program"] == str(expected)
    assert reward == reward_fn(expected) and reward > 0
    assert np.array_equal(obs, encode_program(expected))
    assert (terminated, truncated) == (False, False)
    *_, truncated, _ = env.step(action(1, 0, "abs", "t0", "g"))
    assert truncated


def test_random_start_is_seeded():
    env = OptimizerSearchEnv(tiny_reward())
    a = env.reset(seed=3)[1]["program"]
    b = env.reset(seed=3)[1]["program"]
    c = env.reset(seed=4)[1]["program"]
    assert a == b != c


def test_decode_action_uses_constants_and_ignores_unused_arguments():
    kind, position, statement = decode_action(action(0, 5, "sqrt", "t3", 0.9, "g", "w"))
    assert (kind, position, str(statement)) == ("add", 5, "t3 = sqrt(0.9)")


def test_env_arguments():
    with pytest.raises(TypeError, match="reward_fn must be callable, got int"):
        OptimizerSearchEnv(3)
    with pytest.raises(ValueError, match="max_edits must be a positive int, got 0"):
        OptimizerSearchEnv(tiny_reward(), max_edits=0)
