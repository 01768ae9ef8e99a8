"""Rule DSL: parsing, printing, checks, scalar semantics."""

from __future__ import annotations

import math

import pytest

from es_opt.search import RULES, Program, ProgramError, Statement, format_program, parse_program
from es_opt.search.program import MAX_STATEMENTS, evaluate_scalar


@pytest.mark.parametrize("name", sorted(RULES))
def test_shipped_rules_round_trip(name):
    program = parse_program(RULES[name])
    text = format_program(program)
    assert parse_program(text) == program
    assert format_program(parse_program(text)) == text


def test_round_trip_keeps_constants_and_init_exactly():
    program = Program(
        (
            Statement("t0", "mul", ("g", 0.09999999999999998)),
            Statement("update", "lerp", ("t0", "v1", 1e-300)),
        ),
        state_init=1e-8,
    )
    text = format_program(program)
    assert text.splitlines()[0] == "@init 1e-08"
    assert parse_program(text) == program


def test_comments_and_blank_lines_are_skipped():
    program = parse_program("# header\n\n  update = sign(g)   # the sign\n")
    assert program.statements == (Statement("update", "sign", ("g",)),)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("update = foo(g)", r"statement 1 \(update = foo\(g\)\): unknown op 'foo'"),
        ("update = add(g)", r"add takes 2 argument\(s\), got 1"),
        ("t0 = add(g, t1)\nupdate = sign(t0)", r"statement 1 .*: t1 is read before it is assigned"),
        ("g = sign(w)\nupdate = sign(g)", r"cannot assign to the input 'g'"),
        ("x7 = sign(w)\nupdate = sign(g)", r"unknown slot 'x7'"),
        ("update = add(g, q)", r"unknown slot 'q'"),
        ("t0 = sign(g)", r"the program never assigns update"),
        ("update = add(g, nan)", r"line 1: constant 'nan' is not finite"),
        ("update = add(g, 1e999)", r"line 1: constant '1e999' is not finite"),
        ("update = add(g, 2x)", r"line 1: '2x' is neither a slot nor a number"),
        ("v1 = g", r"line 1: cannot parse 'v1 = g'"),
        ("@init inf\nupdate = sign(g)", r"line 1: constant 'inf' is not finite"),
        ("update = sign(update)", r"update is read before it is assigned"),
    ],
)
def test_invalid_texts_raise_with_the_reason(text, match):
    with pytest.raises(ProgramError, match=match):
        parse_program(text)


def test_program_length_is_limited():
    lines = ["t0 = sign(g)"] * MAX_STATEMENTS + ["update = sign(t0)"]
    with pytest.raises(
        ProgramError, match=f"at most {MAX_STATEMENTS} statements, got {MAX_STATEMENTS + 1}"
    ):
        parse_program("\n".join(lines))


def test_parse_rejects_non_text():
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        parse_program(b"update = sign(g)")


def test_program_error_is_a_value_error():
    assert issubclass(ProgramError, ValueError)


@pytest.mark.parametrize(
    ("op", "args", "expected"),
    [
        ("div", (1.0, 0.0), math.inf),
        ("div", (-1.0, 0.0), -math.inf),
        ("reciprocal", (0.0,), math.inf),
        ("exp", (1000.0,), math.inf),
        ("pow", (0.9, 3.0), 0.9**3.0),
        ("sub", (1.0, 0.9), 0.09999999999999998),
        ("lerp", (1.0, 3.0, 0.25), 1.5),
        ("fma", (2.0, 3.0, 1.0), 7.0),
        ("sign", (-2.0,), -1.0),
        ("sign", (0.0,), 0.0),
        ("sqrt", (2.0,), 2.0**0.5),
    ],
)
def test_scalar_operations_follow_ieee(op, args, expected):
    assert evaluate_scalar(op, args) == expected


@pytest.mark.parametrize(
    ("op", "args"),
    [("log", (-1.0,)), ("sqrt", (-1.0,)), ("div", (0.0, 0.0)), ("pow", (-8.0, 1 / 3))],
)
def test_scalar_operations_without_a_real_result_give_nan(op, args):
    assert math.isnan(evaluate_scalar(op, args))
