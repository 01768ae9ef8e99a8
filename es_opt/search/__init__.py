"""Optimizer search: update rules as programs, compiled to torch optimizers, searched by
regularised evolution, by an ES-trained editing policy, and by ES over a continuous rule family.

Not imported by ``import es_opt``; ``gymnasium`` and ``scikit-learn`` are imported only by the
modules that need them (the environment, the digits tasks).
"""

from .canonical import canonical_hash, depends_on_gradient, live_states, prune
from .compiler import ProgramOptimizer, compile_rule, optimizer_source
from .program import Program, ProgramError, Statement, format_program, parse_program
from .rules import RULES, load_rule

__all__ = [
    "Program",
    "ProgramError",
    "ProgramOptimizer",
    "RULES",
    "Statement",
    "canonical_hash",
    "compile_rule",
    "depends_on_gradient",
    "format_program",
    "live_states",
    "load_rule",
    "optimizer_source",
    "parse_program",
    "prune",
]
