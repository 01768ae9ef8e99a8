"""Random programs and edits: add, remove or replace a statement, checked before anything trains.

Every draw comes from an explicit ``numpy.random.Generator``. An edit that yields an invalid
program raises :class:`~es_opt.search.program.ProgramError` (the environment rolls it back and
penalises it; evolution draws another).
"""

from __future__ import annotations

import numpy as np

from .program import (
    CONSTANTS,
    INPUTS,
    MAX_STATEMENTS,
    OPS,
    OUTPUT,
    STATES,
    TEMPORARIES,
    WRITABLE,
    Program,
    ProgramError,
    Statement,
)

__all__ = [
    "EDITS",
    "apply_edit",
    "check_state_recurrence",
    "mutate",
    "random_program",
    "random_statement",
]

EDITS = ("add", "remove", "replace")
OP_NAMES = tuple(OPS)
CONSTANT_PROBABILITY = 0.25
"""Chance that an argument after the first is a constant rather than a slot."""


def _readable(statements: tuple[Statement, ...] | list[Statement], position: int) -> list[str]:
    assigned = {s.dst for s in statements[:position]}
    return [*INPUTS, *STATES, *(t for t in (OUTPUT, *TEMPORARIES) if t in assigned)]


def check_state_recurrence(state_recurrence: float) -> None:
    """Raise ``ValueError`` unless ``state_recurrence`` is a probability."""
    if isinstance(state_recurrence, bool) or not (
        isinstance(state_recurrence, int | float) and 0.0 <= state_recurrence <= 1.0
    ):
        raise ValueError(f"state_recurrence must be in [0, 1], got {state_recurrence!r}")


def _random_argument(
    rng: np.random.Generator, readable: list[str], k: int, constant_probability: float
) -> str | float:
    # keep the first argument a slot so most statements are not constant folding
    if k > 0 and rng.random() < constant_probability:
        return CONSTANTS[int(rng.integers(len(CONSTANTS)))]
    return readable[int(rng.integers(len(readable)))]


def random_statement(
    rng: np.random.Generator,
    readable: list[str],
    *,
    dst: str | None = None,
    constant_probability: float = CONSTANT_PROBABILITY,
    state_recurrence: float = 0.0,
) -> Statement:
    """A statement with a random op over ``readable`` slots and :data:`CONSTANTS`.

    With probability ``state_recurrence`` a statement of two or more arguments that writes a state
    reads that state first (``v1 = lerp(v1, ...)``, ``v2 = max(v2, ...)``): a state that never
    reads its old value is only a one-step delay, and the recurrences that make moving averages
    are otherwise rare draws. At 0 no extra number is drawn (earlier draws are reproduced).
    """
    op = OP_NAMES[int(rng.integers(len(OP_NAMES)))]
    args = [_random_argument(rng, readable, k, constant_probability) for k in range(OPS[op])]
    if dst is None:
        dst = WRITABLE[int(rng.integers(len(WRITABLE)))]
    if state_recurrence and dst in STATES and len(args) > 1 and rng.random() < state_recurrence:
        args[0] = dst
    return Statement(dst, op, tuple(args))


def random_program(
    rng: np.random.Generator,
    n_statements: int = 6,
    state_init: float = 1e-8,
    *,
    state_recurrence: float = 0.0,
) -> Program:
    """A valid random program of ``n_statements`` statements whose last assigns ``update``."""
    if not 1 <= n_statements <= MAX_STATEMENTS:
        raise ValueError(f"n_statements must be in [1, {MAX_STATEMENTS}], got {n_statements}")
    check_state_recurrence(state_recurrence)
    statements: list[Statement] = []
    for k in range(n_statements):
        dst = OUTPUT if k == n_statements - 1 else None
        while True:
            s = random_statement(
                rng, _readable(statements, k), dst=dst, state_recurrence=state_recurrence
            )
            if s.dst != OUTPUT or k == n_statements - 1:
                break
        statements.append(s)
    return Program(tuple(statements), state_init)


def apply_edit(program: Program, kind: str, position: int, statement: Statement | None) -> Program:
    """``program`` with one edit: ``add`` inserts ``statement`` before ``position`` (or appends
    when ``position`` is past the end), ``remove`` deletes the statement at ``position``,
    ``replace`` overwrites it.

    Raises:
        ProgramError: if the position does not exist or the result is not a valid program.
    """
    statements = list(program.statements)
    if kind == "add":
        if len(statements) >= MAX_STATEMENTS:
            raise ProgramError(f"cannot add: the program already holds {MAX_STATEMENTS} statements")
        statements.insert(min(position, len(statements)), statement)  # type: ignore[arg-type]
    elif kind in ("remove", "replace"):
        if not 0 <= position < len(statements):
            raise ProgramError(
                f"cannot {kind} statement {position}: the program has {len(statements)}"
            )
        if kind == "remove":
            del statements[position]
        else:
            statements[position] = statement  # type: ignore[call-overload]
    else:
        raise ValueError(f"kind must be one of {EDITS}, got {kind!r}")
    return program.replace(statements)


def mutate(
    program: Program,
    rng: np.random.Generator,
    max_tries: int = 100,
    *,
    rewire: bool = False,
    state_recurrence: float = 0.0,
) -> Program:
    """A valid random edit of ``program`` (as in regularised evolution: one change per child).

    Draws add / remove / replace uniformly, or nudges one constant by a factor in [0.5, 2]; with
    ``rewire`` also, as a fifth equally likely kind, redraws one argument of one statement (keeping
    its op and destination: AutoML-Zero's argument mutation, a smaller step than replacing the
    whole statement). ``state_recurrence`` is passed to :func:`random_statement`.
    """
    check_state_recurrence(state_recurrence)
    for _ in range(max_tries):
        n = len(program.statements)
        choice = int(rng.integers(5 if rewire else 4))
        try:
            if choice == 4:
                if n == 0:
                    continue
                j = int(rng.integers(n))
                s = program.statements[j]
                k = int(rng.integers(len(s.args)))
                args = list(s.args)
                args[k] = _random_argument(
                    rng, _readable(program.statements, j), k, CONSTANT_PROBABILITY
                )
                return apply_edit(program, "replace", j, Statement(s.dst, s.op, tuple(args)))
            if choice == 3:
                with_constants = [
                    j
                    for j, s in enumerate(program.statements)
                    if any(not isinstance(a, str) for a in s.args)
                ]
                if not with_constants:
                    continue
                j = with_constants[int(rng.integers(len(with_constants)))]
                s = program.statements[j]
                ks = [k for k, a in enumerate(s.args) if not isinstance(a, str)]
                k = ks[int(rng.integers(len(ks)))]
                args = list(s.args)
                args[k] = float(args[k]) * float(2 ** rng.uniform(-1, 1))  # type: ignore[arg-type]
                return apply_edit(program, "replace", j, Statement(s.dst, s.op, tuple(args)))
            kind = EDITS[choice]
            position = int(rng.integers(n + 1 if kind == "add" else max(n, 1)))
            statement = random_statement(
                rng, _readable(program.statements, position), state_recurrence=state_recurrence
            )
            return apply_edit(program, kind, position, statement)
        except ProgramError:
            continue
    raise ProgramError(f"no valid mutation found in {max_tries} tries")
