"""A gymnasium environment whose actions edit an update rule and whose reward scores it.

Observation: the program as a ``(MAX_STATEMENTS, 5)`` integer array, one row per statement
(``[op, dst, arg0, arg1, arg2]``; 0 marks an empty row or argument; a constant is shown as the
nearest entry of :data:`~es_opt.search.program.CONSTANTS`).

Action: ``[kind, position, op, dst, arg0, arg1, arg2]``: ``kind`` is add / remove / replace
(:data:`~es_opt.search.mutation.EDITS`); an argument index below ``len(SLOTS)`` names a slot, above
it a constant; unused arguments are ignored.

Reward: :data:`~es_opt.search.evaluate.INVALID_REWARD` for an edit that makes no valid program
(the edit is rolled back), otherwise the reward of the edited rule (0 for a trivial one). An
episode ends (truncated) after ``max_edits`` edits. This is RLOS's environment with the suite
reward of :mod:`es_opt.search.evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .evaluate import INVALID_REWARD
from .mutation import EDITS, apply_edit, random_program
from .program import (
    CONSTANTS,
    MAX_STATEMENTS,
    OPS,
    SLOTS,
    WRITABLE,
    Program,
    ProgramError,
    Statement,
    format_program,
)

__all__ = ["OptimizerSearchEnv", "decode_action", "encode_program"]

OP_NAMES = tuple(OPS)
ARG_TOKENS = len(SLOTS) + len(CONSTANTS)


def _arg_token(arg: str | float) -> int:
    if isinstance(arg, str):
        return 1 + SLOTS.index(arg)
    nearest = min(range(len(CONSTANTS)), key=lambda k: abs(CONSTANTS[k] - float(arg)))
    return 1 + len(SLOTS) + nearest


def encode_program(program: Program) -> np.ndarray:
    """The observation of ``program`` (see the module docstring)."""
    obs = np.zeros((MAX_STATEMENTS, 5), dtype=np.int64)
    for row, s in zip(obs, program.statements, strict=False):
        row[0] = 1 + OP_NAMES.index(s.op)
        row[1] = 1 + SLOTS.index(s.dst)
        for k, arg in enumerate(s.args):
            row[2 + k] = _arg_token(arg)
    return obs


def decode_action(action: np.ndarray) -> tuple[str, int, Statement]:
    """``(kind, position, statement)`` of an action."""
    kind, position, op_index, dst_index, *arg_indices = (int(a) for a in action)
    op = OP_NAMES[op_index]
    args: list[str | float] = []
    for index in arg_indices[: OPS[op]]:
        args.append(SLOTS[index] if index < len(SLOTS) else CONSTANTS[index - len(SLOTS)])
    return EDITS[kind], position, Statement(WRITABLE[dst_index], op, tuple(args))


class OptimizerSearchEnv(gym.Env):
    """Edit a rule, get its suite reward.

    Args:
        reward_fn: ``program -> reward`` (e.g. ``lambda p: evaluations([p])[0].reward``).
        start: the program each episode starts from; ``None`` draws a random program of
            ``n_statements`` statements from the environment's seeded generator.
        max_edits: edits per episode.
        n_statements: size of random starting programs.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        reward_fn: Callable[[Program], float],
        start: Program | None = None,
        *,
        max_edits: int = 10,
        n_statements: int = 6,
        render_mode: str | None = None,
    ) -> None:
        if not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable, got {type(reward_fn).__name__}")
        if not isinstance(max_edits, int) or max_edits < 1:
            raise ValueError(f"max_edits must be a positive int, got {max_edits!r}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.reward_fn = reward_fn
        self.start = start
        self.max_edits = max_edits
        self.n_statements = n_statements
        self.render_mode = render_mode
        rows = np.array([[len(OPS) + 1, len(SLOTS) + 1] + [ARG_TOKENS + 1] * 3] * MAX_STATEMENTS)
        self.observation_space = spaces.MultiDiscrete(rows)
        self.action_space = spaces.MultiDiscrete(
            [
                len(EDITS),
                MAX_STATEMENTS,
                len(OPS),
                len(WRITABLE),
                ARG_TOKENS,
                ARG_TOKENS,
                ARG_TOKENS,
            ]
        )
        self.program: Program | None = None
        self.edits = 0
        self.best_reward = -np.inf

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self.start is not None:
            self.program = self.start
        else:
            self.program = random_program(self.np_random, self.n_statements)
        self.edits = 0
        self.best_reward = -np.inf
        return encode_program(self.program), {"program": format_program(self.program)}

    def step(self, action: np.ndarray):
        if self.program is None:
            raise RuntimeError("call reset() before step()")
        kind, position, statement = decode_action(np.asarray(action))
        self.edits += 1
        try:
            edited = apply_edit(self.program, kind, position, statement)
        except ProgramError as error:
            reward, valid, message = INVALID_REWARD, False, str(error)
        else:
            self.program = edited
            reward, valid, message = float(self.reward_fn(edited)), True, ""
            self.best_reward = max(self.best_reward, reward)
        info = {
            "valid": valid,
            "error": message,
            "program": format_program(self.program),
            "best_reward": float(self.best_reward),
        }
        truncated = self.edits >= self.max_edits
        return encode_program(self.program), reward, False, truncated, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return format_program(self.program) if self.program is not None else ""
        return None
