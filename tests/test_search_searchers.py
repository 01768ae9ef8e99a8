"""Searchers are seeded, evolution's novelty and mutations do what they say, the family contains
Adam and Lion (the shared shell — budgets, checkpoints, resume — is in test_search_searcher.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from es_opt.search import ProgramOptimizer, canonical_hash, load_rule
from es_opt.search.evaluate import RuleResult, SuiteEvaluator
from es_opt.search.evolution import RegularizedEvolution
from es_opt.search.family import family_program, family_values, logits_for
from es_opt.search.mutation import mutate, random_program
from es_opt.search.tasks import make_task


def hashed_reward(programs):
    """A cheap deterministic stand-in for training: a reward from the canonical hash."""
    return [
        RuleResult(int(canonical_hash(p)[:6], 16) / 16**6 - len(p.statements) / 50, "ok")
        for p in programs
    ]


def tiny_evaluator():
    task = make_task("ill_conditioned", steps=9)
    return SuiteEvaluator({task.name: 1.0}, (task,), lrs=(0.01,), early_stopping=None)


def test_evolution_is_seeded_and_improves():
    runs = []
    for seed in (0, 0, 1):
        evolution = RegularizedEvolution(
            hashed_reward, population_size=10, sample_size=3, seed=seed
        )
        evolution.run(max_evaluations=80)
        runs.append([r for h in evolution.history for r in h["rewards"]])
    assert runs[0] == runs[1] != runs[2]
    assert max(runs[0][10:]) > max(runs[0][:10])  # children beat the random population


def test_evolution_arguments():
    with pytest.raises(ValueError, match="sample_size must be in \\[1, population_size\\], got 30"):
        RegularizedEvolution(hashed_reward, population_size=20, sample_size=30)
    with pytest.raises(ValueError, match="novelty_tries must be an int >= 0, got -1"):
        RegularizedEvolution(hashed_reward, novelty_tries=-1)
    with pytest.raises(ValueError, match=r"state_recurrence must be in \[0, 1\], got 1.5"):
        RegularizedEvolution(hashed_reward, state_recurrence=1.5)
    with pytest.raises(TypeError, match="rewire must be a bool, got 'yes'"):
        RegularizedEvolution(hashed_reward, rewire="yes")
    with pytest.raises(ValueError, match=r"state_recurrence must be in \[0, 1\], got -0.1"):
        mutate(load_rule("lion"), np.random.default_rng(0), state_recurrence=-0.1)


def test_evolution_redraws_children_it_has_already_drawn():
    def drawn(novelty_tries):
        keys = []

        def reward(programs):
            keys.extend(canonical_hash(p) for p in programs)
            return hashed_reward(programs)

        evolution = RegularizedEvolution(
            reward, population_size=10, sample_size=3, seed=0, novelty_tries=novelty_tries
        )
        evolution.run(max_evaluations=200)
        return keys

    plain, novel = drawn(0), drawn(20)
    assert len(plain) == len(novel) == 200
    # without redraws the run collapses onto a few rules (24 distinct of 200 here); with them a
    # duplicate is kept only when 20 redraws of the same parent all fail (178 distinct)
    assert len(set(plain)) < 50
    assert len(set(novel)) > 150


def test_mutations_are_valid_seeded_and_change_the_rule():
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    parent = load_rule("adamw")
    children = [mutate(parent, rng_a) for _ in range(30)]
    assert [str(c) for c in children] == [str(mutate(parent, rng_b)) for _ in range(30)]
    assert sum(str(c) != str(parent) for c in children) == 30
    assert len(random_program(np.random.default_rng(1), 7).statements) == 7


def _state_writes(program):
    return [s for s in program.statements if s.dst in ("v1", "v2") and len(s.args) > 1]


def test_state_recurrence_makes_drawn_state_writes_read_the_state():
    rng = np.random.default_rng(0)
    programs = [random_program(rng, 12, state_recurrence=1.0) for _ in range(40)]
    lion = load_rule("lion")
    programs += [mutate(lion, rng, state_recurrence=1.0) for _ in range(200)]
    drawn = [s for p in programs for s in _state_writes(p) if s not in lion.statements]
    assert len(drawn) > 40
    assert all(s.args[0] == s.dst for s in drawn)
    rng = np.random.default_rng(0)
    plain = [random_program(rng, 12) for _ in range(40)]
    assert sum(s.args[0] != s.dst for p in plain for s in _state_writes(p)) > 10
    # at 0 nothing extra is drawn: the same programs as without the argument
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    assert [str(random_program(rng_a, 9)) for _ in range(20)] == [
        str(random_program(rng_b, 9, state_recurrence=0.0)) for _ in range(20)
    ]


def _rewired(parent, child):
    """Whether ``child`` is ``parent`` with one argument of one statement set to a slot."""
    if len(parent.statements) != len(child.statements):
        return False
    diffs = [(a, b) for a, b in zip(parent.statements, child.statements, strict=True) if a != b]
    if len(diffs) != 1 or (diffs[0][0].dst, diffs[0][0].op) != (diffs[0][1].dst, diffs[0][1].op):
        return False
    changed = [(x, y) for x, y in zip(diffs[0][0].args, diffs[0][1].args, strict=True) if x != y]
    return len(changed) == 1 and isinstance(changed[0][1], str)


def test_rewire_redraws_one_argument_and_keeps_the_rest():
    parent = load_rule("adamw")
    rng = np.random.default_rng(0)
    with_rewire = [mutate(parent, rng, rewire=True) for _ in range(300)]
    rng = np.random.default_rng(0)
    without = [mutate(parent, rng) for _ in range(300)]
    # add / remove / replace / nudge almost never change exactly one argument to a slot
    assert sum(_rewired(parent, c) for c in without) == 0
    assert sum(_rewired(parent, c) for c in with_rewire) > 30  # about one child in five


def test_family_contains_adam():
    # beta1 = beta2 = 0.9, beta3 = 0.999, gamma -> 0, rho -> 1: Adam up to float32 round-off
    phi = logits_for(0.9, 0.9, 0.999, 1e-12, 1 - 1e-12, 1e-2)
    assert family_values(phi)["beta1"] == pytest.approx(0.9, rel=1e-6)
    gen = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(50, generator=gen))
    q = torch.nn.Parameter(p.detach().clone())
    adam, rule = torch.optim.Adam([p], lr=1e-2), ProgramOptimizer([q], family_program(phi), lr=1e-2)
    for _ in range(30):
        p.grad = torch.randn(50, generator=gen)
        q.grad = p.grad.clone()
        adam.step()
        rule.step()
    torch.testing.assert_close(q, p, rtol=0, atol=1e-6)


def test_family_with_gamma_one_is_lion_up_to_eps():
    phi = logits_for(0.9, 0.99, 0.5, 1 - 1e-12, 0.5, 1e-2)
    gen = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(50, generator=gen))
    q = torch.nn.Parameter(p.detach().clone())
    lion, rule = (
        ProgramOptimizer([p], load_rule("lion"), lr=1e-2),
        ProgramOptimizer([q], family_program(phi), lr=1e-2),
    )
    for _ in range(10):
        p.grad = torch.randn(50, generator=gen)
        q.grad = p.grad.clone()
        lion.step()
        rule.step()
    torch.testing.assert_close(q, p, rtol=0, atol=1e-5)
