r"""Update rules as straight-line programs: the operations, the slots, parsing, printing, checks.

A rule is a list of at most :data:`MAX_STATEMENTS` statements ``dst = op(a[, b[, c]])`` over named
slots, as in RLOS (reinforcement-learning optimizer search). Per parameter tensor and per step the
program reads

* ``w`` (the weight), ``g`` (the gradient) and ``step`` (the step count :math:`t`, from 1);
* ``v1`` and ``v2``, two persistent state tensors (their values from the previous step);

and must assign ``update``; the compiled optimizer then applies :math:`w \leftarrow w - \eta\,
\mathrm{update}` (after decoupled weight decay :math:`w \leftarrow w(1 - \eta\lambda)`). The
temporaries ``t0`` … ``t14`` hold intermediate values. Arguments are slots or float constants.

Example (Lion, Chen et al. 2023)::

    t0 = lerp(g, v1, 0.9)
    update = sign(t0)
    v1 = lerp(g, v1, 0.99)

Besides RLOS's twelve operations (add, sub, mul, div, abs, exp, log, sign, exp2, square, sqrt,
reciprocal) five more are defined, each because a known rule needs it:

* ``lerp(a, b, c) = a + c (b - a)``: a moving average in one rounding, as torch's Adam and es_opt's
  Ligi compute it (needed for bit-exact reproductions, and one statement instead of three);
* ``pow(a, b)``: bias corrections :math:`1 - \beta^t` need a power of the step count;
* ``max(a, b)`` and ``min(a, b)``: AMSGrad's running maximum, clipping;
* ``fma(a, b, c) = a b + c``, computed as torch's ``addcmul`` computes it (one rounding where the
  CPU vectorises): Adam's second moment :math:`\beta_2 v + (1 - \beta_2) g^2` is an ``addcmul`` in
  torch, so AdamW is reproduced bit for bit only with it.

Example:
    >>> p = parse_program("t0 = mul(g, 0.5)\nupdate = sign(t0)")
    >>> format_program(p)
    't0 = mul(g, 0.5)\nupdate = sign(t0)'
    >>> p.statements[0]
    Statement(dst='t0', op='mul', args=('g', 0.5))
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "CONSTANTS",
    "INPUTS",
    "MAX_STATEMENTS",
    "OPS",
    "OUTPUT",
    "Program",
    "ProgramError",
    "STATES",
    "Statement",
    "TEMPORARIES",
    "WRITABLE",
    "format_program",
    "parse_program",
]

MAX_STATEMENTS = 50
INPUTS = ("w", "g", "step")
STATES = ("v1", "v2")
OUTPUT = "update"
TEMPORARIES = tuple(f"t{i}" for i in range(15))
WRITABLE = (*STATES, OUTPUT, *TEMPORARIES)
SLOTS = (*INPUTS, *WRITABLE)

# Operation name -> number of arguments. Unary first, then binary, then ternary.
OPS: dict[str, int] = {
    "abs": 1,
    "exp": 1,
    "log": 1,
    "sign": 1,
    "exp2": 1,
    "square": 1,
    "sqrt": 1,
    "reciprocal": 1,
    "add": 2,
    "sub": 2,
    "mul": 2,
    "div": 2,
    "pow": 2,
    "max": 2,
    "min": 2,
    "lerp": 3,
    "fma": 3,
}
COMMUTATIVE = frozenset({"add", "mul", "max", "min"})

CONSTANTS: tuple[float, ...] = (
    0.0,
    1.0,
    -1.0,
    0.5,
    2.0,
    0.1,
    0.01,
    0.001,
    -0.1,
    -0.01,
    -0.001,
    0.9,
    0.99,
    0.999,
    1e-8,
)
"""The constants a random program or a mutation draws from (a parsed program may hold any)."""

_STATEMENT = re.compile(r"^([A-Za-z_]\w*)\s*=\s*([A-Za-z_]\w*)\s*\((.*)\)$")
_FLOAT_WORDS = ("nan", "inf", "infinity")
_INIT = re.compile(r"^@init\s+(\S+)$")


class ProgramError(ValueError):
    """A rule's text cannot be parsed, or the program it describes is not valid."""


@dataclass(frozen=True)
class Statement:
    """One statement ``dst = op(*args)``; an argument is a slot name or a float constant."""

    dst: str
    op: str
    args: tuple[str | float, ...]

    def __str__(self) -> str:
        return f"{self.dst} = {self.op}({', '.join(_format_arg(a) for a in self.args)})"


@dataclass(frozen=True)
class Program:
    """A checked update rule: its statements and the initial value of ``v1`` and ``v2``.

    Args:
        statements: the statements, run in order each step.
        state_init: value of every element of ``v1`` and ``v2`` before the first step (RLOS uses
            a tiny positive value so that random divisions by a state are finite; Adam needs 0).

    Raises:
        ProgramError: naming the statement (1-based) and what is wrong with it.
    """

    statements: tuple[Statement, ...]
    state_init: float = 0.0

    def __post_init__(self) -> None:
        check_statements(self.statements, self.state_init)

    def __str__(self) -> str:
        return format_program(self)

    def replace(self, statements: list[Statement] | tuple[Statement, ...]) -> Program:
        """The same program with other statements (checked)."""
        return Program(tuple(statements), self.state_init)


def _format_arg(arg: str | float) -> str:
    return arg if isinstance(arg, str) else repr(float(arg))


def check_statements(statements: tuple[Statement, ...], state_init: float) -> None:
    """Raise :class:`ProgramError` unless the statements form a valid program.

    Checks: at most :data:`MAX_STATEMENTS` statements, known operations with their number of
    arguments, assignments only to writable slots, no temporary (or ``update``) read before it is
    assigned, finite constants, ``update`` assigned.
    """
    if not isinstance(statements, tuple) or not all(isinstance(s, Statement) for s in statements):
        raise ProgramError(f"statements must be a tuple of Statement, got {type(statements)}")
    if len(statements) > MAX_STATEMENTS:
        raise ProgramError(
            f"a program holds at most {MAX_STATEMENTS} statements, got {len(statements)}"
        )
    if not isinstance(state_init, int | float) or not math.isfinite(state_init):
        raise ProgramError(f"state_init must be a finite float, got {state_init!r}")
    assigned = set(INPUTS) | set(STATES)
    for number, s in enumerate(statements, start=1):
        where = f"statement {number} ({s})"
        if s.op not in OPS:
            raise ProgramError(f"{where}: unknown op {s.op!r}; known ops: {', '.join(OPS)}")
        if len(s.args) != OPS[s.op]:
            raise ProgramError(f"{where}: {s.op} takes {OPS[s.op]} argument(s), got {len(s.args)}")
        for arg in s.args:
            if isinstance(arg, str):
                if arg not in SLOTS:
                    raise ProgramError(f"{where}: unknown slot {arg!r}")
                if arg not in assigned:
                    raise ProgramError(f"{where}: {arg} is read before it is assigned")
            elif isinstance(arg, bool) or not isinstance(arg, int | float):
                raise ProgramError(f"{where}: argument {arg!r} is neither a slot nor a number")
            elif not math.isfinite(arg):
                raise ProgramError(f"{where}: constant {arg!r} is not finite")
        if s.dst in INPUTS:
            raise ProgramError(f"{where}: cannot assign to the input {s.dst!r}")
        if s.dst not in WRITABLE:
            raise ProgramError(f"{where}: unknown slot {s.dst!r}")
        assigned.add(s.dst)
    if OUTPUT not in assigned:
        raise ProgramError("the program never assigns update")


def parse_program(text: str) -> Program:
    """Parse a rule's text: one statement per line; ``#`` starts a comment; blank lines are
    skipped; an optional line ``@init VALUE`` sets ``state_init``.

    Raises:
        ProgramError: naming the line (1-based) that cannot be parsed, or what is invalid.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    statements: list[Statement] = []
    state_init = 0.0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        init = _INIT.match(line)
        if init:
            state_init = _parse_number(init.group(1), number)
            continue
        match = _STATEMENT.match(line)
        if not match:
            raise ProgramError(
                f"line {number}: cannot parse {raw.strip()!r}; expected dst = op(a, b)"
            )
        dst, op, inner = match.groups()
        parts = [part.strip() for part in inner.split(",")] if inner.strip() else []
        args: list[str | float] = []
        for part in parts:
            is_name = re.fullmatch(r"[A-Za-z_]\w*", part) and part.lower() not in _FLOAT_WORDS
            args.append(part if is_name else _parse_number(part, number))
        statements.append(Statement(dst, op, tuple(args)))
    return Program(tuple(statements), state_init)


def _parse_number(text: str, number: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ProgramError(f"line {number}: {text!r} is neither a slot nor a number") from None
    if not math.isfinite(value):
        raise ProgramError(f"line {number}: constant {text!r} is not finite")
    return value


def format_program(program: Program) -> str:
    """The text of a program; ``parse_program(format_program(p)) == p``."""
    lines = [] if program.state_init == 0 else [f"@init {float(program.state_init)!r}"]
    lines.extend(str(s) for s in program.statements)
    return "\n".join(lines)


def evaluate_scalar(op: str, args: tuple[float, ...]) -> float:
    """One operation on Python floats (IEEE doubles), as torch's optimizers compute their scalar
    coefficients (``1 - beta1 ** step``, ``lr / bias_correction``) in Python. Errors give IEEE
    results: ``div(1, 0) = inf``, ``log(-1) = nan``, ``exp(1000) = inf``.
    """
    a = args[0]
    try:
        if op == "abs":
            return abs(a)
        if op == "exp":
            return math.exp(a)
        if op == "log":
            return math.log(a) if a > 0 else (-math.inf if a == 0 else math.nan)
        if op == "sign":
            return float((a > 0) - (a < 0))
        if op == "exp2":
            return 2.0**a
        if op == "square":
            return a * a
        if op == "sqrt":
            # x ** 0.5 as torch's Adam writes bias_correction2 ** 0.5
            return a**0.5 if a >= 0 else math.nan
        if op == "reciprocal":
            return 1.0 / a if a != 0 else math.copysign(math.inf, a)
        b = args[1]
        if op == "add":
            return a + b
        if op == "sub":
            return a - b
        if op == "mul":
            return a * b
        if op == "div":
            if b == 0:
                return math.nan if a == 0 else math.copysign(math.inf, a) * math.copysign(1, b)
            return a / b
        if op == "pow":
            result = a**b
            return result if isinstance(result, float) else math.nan
        if op == "max":
            return max(a, b)
        if op == "min":
            return min(a, b)
        c = args[2]
        if op == "lerp":
            return a + c * (b - a)
        if op == "fma":
            return a * b + c
    except OverflowError:
        return math.inf
    except ZeroDivisionError:
        return math.inf
    raise ProgramError(f"unknown op {op!r}")
