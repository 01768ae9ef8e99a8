"""Canonical hash, pruning, liveness, triviality."""

from __future__ import annotations

import pytest
import torch

from es_opt.search import (
    RULES,
    ProgramOptimizer,
    canonical_hash,
    depends_on_gradient,
    live_states,
    load_rule,
    parse_program,
    prune,
)

LION = load_rule("lion")


def variant(text: str) -> str:
    return canonical_hash(parse_program(text))


def test_hash_ignores_renaming_dead_code_order_and_commutative_arguments():
    base = canonical_hash(LION)
    renamed = str(LION).replace("t0", "t9").replace("t1", "t4").replace("t2", "t13")
    dead = str(LION) + "\nt14 = exp(w)\nv2 = sign(t14)"
    swapped_states = str(LION).replace("v1", "v2")
    commuted = (
        str(LION)
        .replace("t0 = add(t0, t1)", "t0 = add(t1, t0)")
        .replace("t0 = mul(v1, 0.9)", "t0 = mul(0.9, v1)")
    )
    # (1 - beta1) g computed before beta1 m: independent statements reordered
    lines = str(LION).splitlines()
    reordered = "\n".join(lines[1:3] + lines[0:1] + lines[3:])
    folded = str(LION).replace(
        "t1 = sub(1.0, 0.9)\nt1 = mul(g, t1)", "t1 = mul(g, 0.09999999999999998)"
    )
    for text in (renamed, dead, swapped_states, commuted, reordered, folded):
        assert variant(text) == base, text


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("t0 = mul(v1, 0.9)", "t0 = mul(v1, 0.8)"),  # another constant
        ("update = sign(t0)", "update = abs(t0)"),  # another op
        ("t0 = add(t0, t1)", "t0 = sub(t0, t1)"),  # a non-commutative op
        ("t1 = mul(g, t1)", "t1 = mul(w, t1)"),  # another input
    ],
)
def test_hash_differs_for_different_programs(old, new):
    assert old in str(LION)
    assert variant(str(LION).replace(old, new)) != canonical_hash(LION)


def test_sub_argument_order_matters_but_fma_factors_commute():
    assert variant("update = sub(g, w)") != variant("update = sub(w, g)")
    assert variant("update = fma(g, w, v1)") == variant("update = fma(w, g, v1)")
    assert variant("update = fma(g, w, v1)") != variant("update = fma(g, v1, w)")


def test_all_shipped_rules_hash_differently():
    assert len({canonical_hash(load_rule(n)) for n in RULES}) == len(RULES)


def test_live_states_and_pruning():
    program = parse_program(
        "t0 = mul(v2, 0.5)\nv1 = add(v1, g)\nv2 = add(t0, g)\nt3 = exp(w)\nupdate = sign(v2)"
    )
    assert live_states(program) == ("v2",)
    assert str(prune(program)) == "t0 = mul(v2, 0.5)\nv2 = add(t0, g)\nupdate = sign(v2)"
    assert live_states(load_rule("adamw")) == ("v1", "v2")
    # a state read only by a dead state is dead too
    assert live_states(parse_program("v2 = add(v2, v1)\nv1 = add(v1, g)\nupdate = sign(g)")) == ()


def test_pruned_program_steps_identically():
    program = parse_program(str(load_rule("adamw")) + "\nt14 = exp(g)\nt13 = log(t14)")
    assert len(prune(program).statements) == len(program.statements) - 2
    results = []
    for rule in (program, prune(program)):
        gen = torch.Generator().manual_seed(0)
        p = torch.nn.Parameter(torch.randn(50, generator=gen))
        opt = ProgramOptimizer([p], rule, lr=0.01)
        for _ in range(5):
            p.grad = torch.randn(50, generator=gen)
            opt.step()
        results.append(p.detach().clone())
    assert torch.equal(*results)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("update = mul(w, 0.5)", False),
        ("update = sign(g)", True),
        ("v1 = add(v1, g)\nupdate = mul(v1, 2.0)", True),  # through a state, same step
        ("update = mul(v1, 2.0)\nv1 = add(v1, g)", True),  # through a state, next step
        ("update = mul(v2, 2.0)\nv2 = mul(v1, 2.0)\nv1 = add(v1, g)", True),  # two steps later
        ("t0 = sign(g)\nt0 = exp(w)\nupdate = add(t0, v1)", False),  # g overwritten before use
    ],
)
def test_depends_on_gradient(text, expected):
    assert depends_on_gradient(parse_program(text)) is expected
