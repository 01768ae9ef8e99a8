"""What a program computes, independent of how it is written: live code, a canonical hash,
whether the update can depend on the gradient at all.

The hash follows the functional hashing of Lion's search (google/automl ``hero``): every value is
the md5 of its operation and its arguments' hashes, so temporaries' names, statement order and
dead statements do not change it; the arguments of commutative operations are sorted; values of
constant-only expressions are folded (so ``sub(1.0, 0.9)`` and ``0.09999999999999998`` hash
alike). The states ``v1`` and ``v2`` feed back from one step to the next, so they are named by
their role, not their slot: the hash is the smallest over the orderings of the live states.

Example:
    >>> from es_opt.search.program import parse_program
    >>> a = parse_program("t0 = mul(g, 2.0)\\nt1 = exp(w)\\nupdate = add(t0, v1)")
    >>> b = parse_program("t5 = mul(2.0, g)\\nupdate = add(v2, t5)")
    >>> canonical_hash(a) == canonical_hash(b)
    True
"""

from __future__ import annotations

import hashlib
import itertools

from .program import COMMUTATIVE, INPUTS, OUTPUT, STATES, Program, evaluate_scalar

__all__ = ["canonical_hash", "depends_on_gradient", "live_statements", "live_states", "prune"]


def _backward(program: Program, outputs: set[str]) -> tuple[list[bool], set[str]]:
    """Statements needed for the final values of ``outputs``, and the slots read at entry."""
    needed = set(outputs)
    live = [False] * len(program.statements)
    for j in range(len(program.statements) - 1, -1, -1):
        s = program.statements[j]
        if s.dst in needed:
            live[j] = True
            needed.discard(s.dst)
            needed.update(a for a in s.args if isinstance(a, str))
    return live, needed


def live_states(program: Program) -> tuple[str, ...]:
    """The states whose value carried from the previous step can reach ``update``."""
    states: set[str] = set()
    while True:
        _, entry = _backward(program, {OUTPUT} | states)
        grown = states | (entry & set(STATES))
        if grown == states:
            return tuple(s for s in STATES if s in states)
        states = grown


def live_statements(program: Program) -> list[bool]:
    """For each statement, whether it can influence ``update`` in this or a later step."""
    return _backward(program, {OUTPUT, *live_states(program)})[0]


def prune(program: Program) -> Program:
    """The program without its dead statements (same updates, step for step)."""
    live = live_statements(program)
    return program.replace([s for s, keep in zip(program.statements, live, strict=True) if keep])


def depends_on_gradient(program: Program) -> bool:
    """Whether ``update`` can depend on ``g`` in some step (through the states too).

    A rule whose update never sees the gradient is *trivial*: it cannot train anything.
    """
    tainted = {"g"}
    for _ in range(len(STATES) + 2):
        carried = {s for s in STATES if s in tainted}
        current = {"g"} | carried
        for s in program.statements:
            if any(isinstance(a, str) and a in current for a in s.args):
                current.add(s.dst)
            else:
                current.discard(s.dst)
        if OUTPUT in current:
            return True
        tainted = {"g"} | carried | {s for s in STATES if s in current}
    return False


def _digest(*parts: str) -> str:
    return hashlib.md5("|".join(parts).encode()).hexdigest()


def _constant(value: float) -> tuple[str, float]:
    return _digest("const", repr(float(value))), float(value)


def canonical_hash(program: Program) -> str:
    """A hex digest equal for programs that compute the same values the same way.

    Invariant to dead statements, to renaming temporaries, to swapping ``v1`` with ``v2``, to the
    order of independent statements and of commutative arguments (``add``, ``mul``, ``max``,
    ``min``, the two factors of ``fma``). Different for programs that differ in an operation, a
    constant or the data flow.
    """
    states = live_states(program)
    live = live_statements(program)
    best = None
    for order in itertools.permutations(states):
        values: dict[str, tuple[str, float | None]]
        values = {x: (_digest("in", x), None) for x in INPUTS}
        for rank, state in enumerate(order):
            values[state] = (_digest("state", str(rank)), None)
        for s, keep in zip(program.statements, live, strict=True):
            if not keep:
                continue
            args = [values[a] if isinstance(a, str) else _constant(a) for a in s.args]
            if all(v is not None for _, v in args):
                values[s.dst] = _constant(evaluate_scalar(s.op, tuple(v for _, v in args)))
                continue
            keys = [h for h, _ in args]
            if s.op in COMMUTATIVE:
                keys.sort()
            elif s.op == "fma":
                keys[:2] = sorted(keys[:2])
            values[s.dst] = (_digest(s.op, *keys), None)
        finals = [values[OUTPUT][0]] + [values[state][0] for state in order]
        init = repr(float(program.state_init)) if states else ""
        digest = _digest("program", init, *finals)
        best = digest if best is None or digest < best else best
    return best
