r"""Compile a rule program into a real ``torch.optim.Optimizer``.

Each statement is bound once to a closure over lists of tensors (one per parameter of a group;
``torch._foreach_*`` kernels where they exist and ``foreach`` allows, a loop otherwise), so a step
runs no parser and no dispatch on op names. Statements whose arguments are all constants or the
step count are evaluated on Python floats, exactly as torch's optimizers compute
``1 - beta1 ** step``; dead statements are dropped (:func:`~es_opt.search.canonical.prune`).

A step, per parameter group, with :math:`\eta` the group's ``lr`` and :math:`\lambda` its
``weight_decay``:

.. math::
    w \leftarrow w (1 - \eta\lambda);\quad \text{run the program};\quad
    w \leftarrow w - \eta\,\mathrm{update}

The last subtraction is fused the way torch's optimizers write it: ``update = div(x, s)`` or
``mul(x, s)`` with a scalar ``s`` becomes the step size :math:`\eta / s` (or :math:`\eta s`), and
``x = div(a, b)`` becomes ``w.addcdiv_(a, b, value=-step_size)``. With that, the shipped AdamW,
Lion and Ligi programs give bit-identical parameters to ``torch.optim.AdamW``, a Lion
transcription and ``es_opt.optim.Ligi``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from .canonical import live_states, prune
from .program import OUTPUT, STATES, Program, evaluate_scalar, format_program, parse_program

__all__ = ["ProgramOptimizer", "compile_rule", "optimizer_source"]

Value = list[Tensor] | float

_UNARY_FOREACH = {
    "abs": torch._foreach_abs,
    "exp": torch._foreach_exp,
    "log": torch._foreach_log,
    "sign": torch._foreach_sign,
    "sqrt": torch._foreach_sqrt,
    "reciprocal": torch._foreach_reciprocal,
}
_UNARY = {
    "abs": torch.abs,
    "exp": torch.exp,
    "log": torch.log,
    "sign": torch.sign,
    "exp2": torch.exp2,
    "square": torch.square,
    "sqrt": torch.sqrt,
    "reciprocal": torch.reciprocal,
}
_BINARY = {
    "add": (torch.add, torch._foreach_add),
    "sub": (torch.sub, torch._foreach_sub),
    "mul": (torch.mul, torch._foreach_mul),
    "div": (torch.div, torch._foreach_div),
    "max": (torch.maximum, torch._foreach_maximum),
    "min": (torch.minimum, torch._foreach_minimum),
}


def _scalar_first(op: str, s: float, t: Tensor) -> Tensor:
    """``op(s, t)`` for a Python float ``s`` and a tensor ``t``."""
    if op in ("add", "mul"):
        return _BINARY[op][0](t, s)
    if op == "max":
        return torch.clamp_min(t, s)
    if op == "min":
        return torch.clamp_max(t, s)
    if op == "sub":
        return torch.rsub(t, s)
    if op == "pow":
        return torch.pow(s, t)
    return torch.div(torch.scalar_tensor(s, dtype=t.dtype, device=t.device), t)


def _binary(op: str, a: Value, b: Value, foreach: bool) -> list[Tensor]:
    if isinstance(a, float):
        return [_scalar_first(op, a, t) for t in b]  # type: ignore[union-attr]
    if op == "pow":
        return [torch.pow(x, y) for x, y in zip(a, _expand(b, a), strict=True)]
    if isinstance(b, float) and op in ("max", "min"):
        clamp = torch.clamp_min if op == "max" else torch.clamp_max
        return [clamp(x, b) for x in a]
    single, multi = _BINARY[op]
    if foreach:
        return list(multi(a, b))
    return [single(x, y) for x, y in zip(a, _expand(b, a), strict=True)]


def _expand(value: Value, like: list[Tensor]) -> list[Any]:
    return [value] * len(like) if isinstance(value, float) else value


def _ternary(op: str, a: Value, b: Value, c: Value, like: list[Tensor]) -> list[Tensor]:
    def full(v: Value) -> list[Tensor]:
        if isinstance(v, float):
            return [torch.full_like(t, v) for t in like]
        return v

    if op == "lerp":
        return [
            torch.lerp(x, y, w) for x, y, w in zip(full(a), full(b), _expand(c, like), strict=True)
        ]
    # fma(a, b, c) = a * b + c, as torch.addcmul(c, a, b)
    if isinstance(a, float) and isinstance(b, float):
        return [torch.add(t, a * b) for t in full(c)]
    if isinstance(a, float) or isinstance(b, float):
        tensor, scale = (b, a) if isinstance(a, float) else (a, b)
        ones = [torch.ones_like(t) for t in tensor]  # type: ignore[union-attr]
        return [
            torch.addcmul(z, x, y, value=scale)
            for z, x, y in zip(full(c), tensor, ones, strict=True)
        ]  # type: ignore[arg-type]
    return [torch.addcmul(z, x, y) for z, x, y in zip(full(c), a, b, strict=True)]


def run_statement(op: str, args: list[Value], like: list[Tensor], foreach: bool) -> Value:
    """One operation on floats or lists of tensors (a float result when all inputs are floats)."""
    if all(isinstance(a, float) for a in args):
        return evaluate_scalar(op, tuple(args))  # type: ignore[arg-type]
    if len(args) == 1:
        (a,) = args
        if foreach and op in _UNARY_FOREACH:
            return list(_UNARY_FOREACH[op](a))
        if foreach and op == "square":
            return list(torch._foreach_mul(a, a))
        return [_UNARY[op](t) for t in a]  # type: ignore[union-attr]
    if len(args) == 2:
        return _binary(op, args[0], args[1], foreach)
    return _ternary(op, args[0], args[1], args[2], like)


class _Plan:
    """The pruned program and how its final subtraction is fused (see the module docstring)."""

    def __init__(self, program: Program) -> None:
        self.program = prune(program)
        self.states = live_states(self.program)
        statements = self.program.statements
        last = max(j for j, s in enumerate(statements) if s.dst == OUTPUT)
        read_later = any(OUTPUT in s.args for s in statements[last + 1 :])
        # producer[j][k]: index of the statement whose value argument k of statement j reads
        producer: list[list[int | None]] = []
        current: dict[str, int] = {}
        for j, s in enumerate(statements):
            producer.append([current.get(a) if isinstance(a, str) else None for a in s.args])
            current[s.dst] = j
        self.final = last
        self.fused = not read_later
        self.producer = producer
        self.keep_args: set[int] = set()
        if self.fused:
            self.keep_args.add(last)
            s = statements[last]
            if s.op in ("div", "mul") and len(s.args) == 2:
                for k in (0, 1):
                    j = producer[last][k]
                    if j is not None and statements[j].op == "div":
                        self.keep_args.add(j)


class ProgramOptimizer(Optimizer):
    r"""A rule program as a torch optimizer: param_groups, per-parameter state (``step`` and the
    live states ``v1``/``v2``) in ``state_dict``, lr schedulers, closures.

    Args:
        params: iterable of parameters or of parameter-group dicts.
        program: a :class:`~es_opt.search.program.Program` or its text. Subclasses made by
            :func:`compile_rule` fix it.
        lr: learning rate :math:`\eta` (>= 0).
        weight_decay: decoupled weight decay :math:`\lambda` (>= 0).
        maximize: ascend instead of descend (the program sees :math:`-g`).
        foreach: use ``torch._foreach_*`` kernels over a group's tensors (fewer dispatches; same
            results). ``None`` means on for CUDA tensors, off on CPU, like torch.

    Example:
        >>> from es_opt.search import load_rule
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = ProgramOptimizer([w], load_rule("adamw"), lr=0.1)
        >>> for _ in range(100):
        ...     opt.zero_grad()
        ...     (w**2).sum().backward()
        ...     _ = opt.step()
        >>> bool(w.abs().max() < 0.1)
        True
    """

    program: Program | None = None

    def __init__(
        self,
        params: Iterable[Any],
        program: Program | str | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        program = program if program is not None else type(self).program
        if isinstance(program, str):
            program = parse_program(program)
        if not isinstance(program, Program):
            raise TypeError(f"program must be a Program or its text, got {type(program).__name__}")
        if not isinstance(lr, int | float) or not lr >= 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not isinstance(weight_decay, int | float) or not weight_decay >= 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        self.rule = program
        self._plan = _Plan(program)
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "foreach": foreach,
        }
        super().__init__(params, defaults)

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict plus the rule's text (checked by :meth:`load_state_dict`)."""
        state = super().state_dict()
        state["program"] = format_program(self.rule)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict saved by an optimizer running the same rule.

        Raises:
            ValueError: if the state dict was saved for a different rule.
        """
        saved = state_dict.get("program")
        if saved is not None and saved != format_program(self.rule):
            raise ValueError(
                "state_dict was saved by a ProgramOptimizer running a different rule:\n" + saved
            )
        state_dict = {k: v for k, v in state_dict.items() if k != "program"}
        super().load_state_dict(state_dict)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step; returns the closure's loss, or ``None``."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            by_step: dict[int, list[Tensor]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("ProgramOptimizer does not support sparse gradients")
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    for name in self._plan.states:
                        state[name] = torch.full_like(
                            p, float(self.rule.state_init), memory_format=torch.preserve_format
                        )
                state["step"] += 1
                by_step.setdefault(state["step"], []).append(p)
            foreach = group["foreach"]
            for step, params in by_step.items():
                use_foreach = (
                    bool(foreach) if foreach is not None else params[0].device.type == "cuda"
                )
                self._run(params, step, group, use_foreach)
        return loss

    def _run(self, params: list[Tensor], step: int, group: dict[str, Any], foreach: bool) -> None:
        lr, weight_decay = group["lr"], group["weight_decay"]
        grads = [p.grad for p in params]
        if group["maximize"]:
            grads = list(torch._foreach_neg(grads))
        if weight_decay != 0:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        plan = self._plan
        values: dict[str, Value] = {"w": list(params), "g": grads, "step": float(step)}
        for name in STATES:
            if name in plan.states:
                values[name] = [self.state[p][name] for p in params]
            else:
                values[name] = float(self.rule.state_init)
        kept: dict[int, list[Value]] = {}
        for j, s in enumerate(plan.program.statements):
            args = [values[a] if isinstance(a, str) else float(a) for a in s.args]
            if j in plan.keep_args:
                kept[j] = args
            if j == plan.final and plan.fused:
                continue
            values[s.dst] = run_statement(s.op, args, params, foreach)
        if plan.fused:
            self._apply_fused(params, kept, lr)
        else:
            self._apply(params, values[OUTPUT], lr)
        for name in plan.states:
            new = values[name]
            for p, value in zip(params, _expand(new, params), strict=True):
                target = self.state[p][name]
                if isinstance(value, float):
                    target.fill_(value)
                elif value is not target:
                    target.copy_(value)

    def _apply(self, params: list[Tensor], update: Value, scale: float) -> None:
        if isinstance(update, float):
            torch._foreach_add_(params, -scale * update)
        else:
            for p, u in zip(params, update, strict=True):
                p.add_(u, alpha=-scale)

    def _apply_fused(self, params: list[Tensor], kept: dict[int, list[Value]], lr: float) -> None:
        plan = self._plan
        s = plan.program.statements[plan.final]
        args = kept[plan.final]
        scale, operand, source = lr, None, None
        if s.op in ("div", "mul") and isinstance(args[1], float) and not isinstance(args[0], float):
            scale = evaluate_scalar(s.op, (lr, args[1]))  # IEEE: a zero divisor gives inf
            operand, source = args[0], plan.producer[plan.final][0]
        elif s.op == "mul" and isinstance(args[0], float) and not isinstance(args[1], float):
            scale, operand, source = lr * args[0], args[1], plan.producer[plan.final][1]
        elif s.op == "div":
            source = plan.final
        if source is not None and plan.program.statements[source].op == "div":
            a, b = kept[source]
            if not isinstance(a, float) and not isinstance(b, float):
                for p, x, y in zip(params, a, b, strict=True):
                    p.addcdiv_(x, y, value=-scale)
                return
        if operand is None:
            operand = run_statement(s.op, args, params, False)
            scale = lr
        self._apply(params, operand, scale)


def compile_rule(program: Program | str, name: str = "SearchedRule") -> type[ProgramOptimizer]:
    """A :class:`ProgramOptimizer` subclass with the rule fixed, used like any torch optimizer:
    ``compile_rule(text)(model.parameters(), lr=1e-3)``."""
    if isinstance(program, str):
        program = parse_program(program)
    if not name.isidentifier():
        raise ValueError(f"name must be a Python identifier, got {name!r}")
    return type(name, (ProgramOptimizer,), {"program": program, "__doc__": format_program(program)})


def optimizer_source(program: Program, name: str = "SearchedRule") -> str:
    """Python source of a module defining ``name``, an importable optimizer running the rule."""
    if not name.isidentifier():
        raise ValueError(f"name must be a Python identifier, got {name!r}")
    text = format_program(program)
    return (
        f'"""{name}: an update rule found by es_opt.search."""\n\n'
        "from es_opt.search import ProgramOptimizer, parse_program\n\n"
        f"RULE = {text!r}\n\n\n"
        f"class {name}(ProgramOptimizer):\n"
        f'    """The rule, as text::\n\n'
        + "".join(f"        {line}\n" for line in text.splitlines())
        + '    """\n\n    program = parse_program(RULE)\n'
    )
