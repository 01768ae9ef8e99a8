"""Helpers for command-line entry points (the sample scripts,
``python -m es_opt.training.plot``): one-line user errors, flags from a dataclass, and the inner
optimizer a ``--optimizer`` flag names.

A script declares its settings as a dataclass, one field per flag, each with its default and one
line of help (:func:`arg`); :func:`parse_config` turns it into an argparse parser and back into an
instance. Adding a flag is adding a field.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar

from .errors import EvaluationError, MissingExtraError

__all__ = [
    "ConfigError",
    "OPTIMIZERS",
    "RESTARTS",
    "USER_ERRORS",
    "arg",
    "build_optimizer",
    "check_restarts",
    "config_parser",
    "parse_config",
    "run_main",
]

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, MissingExtraError, EvaluationError)
"""Errors a user can cause with flags, files or a missing extra: reported in one line."""

OPTIMIZERS = ("rangerlite", "adam", "sgd", "ligi", "clipup")
"""The names :func:`build_optimizer` knows (the choices of the scripts' ``--optimizer``)."""

RESTARTS = ("none", "ipop", "bipop")
"""The choices of the scripts' ``--restarts`` (:class:`es_opt.training.restarts.RestartOnStop`)."""

C = TypeVar("C")


class ConfigError(ValueError):
    """A command line the parser refuses: an unknown flag, a value of the wrong type, a value
    outside the choices. :func:`run_main` reports it in one line."""


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Runs ``main(argv)``; a user error ends with ``prog: error: message`` on stderr and exit
    status 2 instead of a traceback (set ``ES_OPT_DEBUG=1`` to see the traceback).

    Example:
        >>> def main(argv):
        ...     raise ValueError("--sigma must be > 0, got -1.0")
        >>> run_main(main, [])  # doctest: +SKIP
        rl.py: error: --sigma must be > 0, got -1.0
        2
    """
    try:
        return main(argv)
    except USER_ERRORS as exc:
        if os.environ.get("ES_OPT_DEBUG"):
            raise
        prog = Path(sys.argv[0]).name or "es_opt"
        print(f"{prog}: error: {exc}", file=sys.stderr)
        if isinstance(exc, ConfigError):  # the traceback of a typo helps nobody
            print(f"{prog}: (--help lists every flag)", file=sys.stderr)
        else:
            print(f"{prog}: (set ES_OPT_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 2


def arg(default: Any, help: str, *, choices: Iterable[Any] | None = None) -> Any:
    """A dataclass field that is a command-line flag: its default and one line of help.

    Example:
        >>> @dataclasses.dataclass
        ... class Args:
        ...     sigma: float = arg(0.1, "perturbation standard deviation")
        ...     backend: str = arg("serial", "where evaluations run", choices=("serial", "ray"))
    """
    metadata: dict[str, Any] = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    return dataclasses.field(default=default, metadata=metadata)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # one line through run_main, no usage dump
        raise ConfigError(message)


def config_parser(
    cls: type, *, description: str | None = None, preset_fields: Iterable[str] = ()
) -> argparse.ArgumentParser:
    """The parser of the dataclass ``cls``: ``--field-name`` per field, typed by its annotation.

    ``bool`` becomes ``--flag/--no-flag``; ``int``, ``float``, ``str`` and paths take one value;
    ``X | None`` takes an ``X`` (None: not given); ``tuple[X, X]`` takes two values and
    ``tuple[X, ...]`` one or more; ``Literal[...]`` or ``arg(choices=...)`` restrict the values.
    The defaults stay out of the namespace (``argparse.SUPPRESS``): it holds only the flags on
    the command line, which is what lets :func:`parse_config` tell them from preset values.
    """
    parser = _Parser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(cls)
    preset_fields = set(preset_fields)
    for f in dataclasses.fields(cls):
        kwargs = _argument(cls, f.name, hints[f.name], f.metadata)
        default = _default(cls, f)
        help_text = f.metadata.get("help", "")
        if default is not None:
            help_text += f" (default: {_shown(default)}"
            help_text += "; presets may change it)" if f.name in preset_fields else ")"
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=argparse.SUPPRESS,
            help=help_text.replace("%", "%%"),
            **kwargs,
        )
    return parser


def parse_config(
    cls: type[C],
    argv: Sequence[str] | None = None,
    *,
    description: str | None = None,
    presets: Mapping[Any, Mapping[str, Any]] | None = None,
    preset_by: str | None = None,
) -> C:
    """Parses ``argv`` into an instance of the dataclass ``cls`` (see :func:`config_parser`).

    Each field's value is, by precedence: the flag on the command line, else the preset's value
    (``presets[value of the field preset_by]``, e.g. the environment's tuned settings), else the
    field's default. Values the parser refuses raise :class:`ConfigError`; checks in
    ``cls.__post_init__`` raise their own errors.
    """
    presets = presets or {}
    if presets and preset_by is None:
        raise TypeError("parse_config: presets need preset_by (the field that selects one)")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key, preset in presets.items():
        unknown = sorted(set(preset) - names)
        if unknown:
            raise TypeError(
                f"preset {key!r} sets {unknown}, which are not fields of {cls.__name__}"
            )
    preset_fields = {name for preset in presets.values() for name in preset}
    parser = config_parser(cls, description=description, preset_fields=preset_fields)
    given = vars(parser.parse_args(argv))
    values = {f.name: _default(cls, f) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if preset_by is not None:
        values.update(presets.get(given.get(preset_by, values[preset_by]), {}))
    values.update(given)
    return cls(**values)


def _argument(cls: type, name: str, hint: Any, metadata: Mapping[str, Any]) -> dict[str, Any]:
    kind = _without_none(hint)
    origin, type_args = typing.get_origin(kind), typing.get_args(kind)
    if kind is bool:
        kwargs: dict[str, Any] = {"action": argparse.BooleanOptionalAction}
    elif origin is tuple:
        many = len(type_args) == 2 and type_args[1] is Ellipsis
        items = set(type_args[:1] if many else type_args)
        if len(items) != 1 or not _is_scalar(next(iter(items))):
            raise TypeError(f"{cls.__name__}.{name}: a tuple flag needs one scalar item type")
        item = items.pop()
        kwargs = {"type": item, "nargs": "+" if many else len(type_args), "action": _TupleAction}
    elif origin is Literal:
        kwargs = {"type": type(type_args[0]), "choices": type_args}
    elif _is_scalar(kind):
        kwargs = {"type": kind}
    else:
        raise TypeError(f"{cls.__name__}.{name}: no command-line form for the type {hint!r}")
    if "choices" in metadata:
        kwargs["choices"] = metadata["choices"]
    return kwargs


class _TupleAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, tuple(values))


def _without_none(hint: Any) -> Any:
    """``X`` for ``X | None`` and ``Optional[X]``; ``hint`` otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def _is_scalar(kind: Any) -> bool:
    return kind in (int, float, str) or (isinstance(kind, type) and issubclass(kind, PurePath))


def _default(cls: type, f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"{cls.__name__}.{f.name} needs a default to be a flag")


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)  # paths without PosixPath(...)


def check_restarts(
    restarts: str, max_restarts: int, record: Any, run_generations: int | None = None
) -> None:
    """The scripts' ``--restarts`` / ``--max-restarts`` / ``--restart-generations`` flags: a
    count ≥ 0, a cap on each run's generations ≥ 1 (or none), and no run record
    (``--record``) of a run that restarts: a record replays one run's updates, and a restart's
    new centre, σ and optimizer state are not an update.

    Example:
        >>> check_restarts("ipop", -1, None)
        Traceback (most recent call last):
        ...
        ValueError: --max-restarts must be >= 0, got -1
    """
    if max_restarts < 0:
        raise ValueError(f"--max-restarts must be >= 0, got {max_restarts}")
    if run_generations is not None and run_generations < 1:
        raise ValueError(f"--restart-generations must be >= 1, got {run_generations}")
    if restarts != "none" and record:
        raise ValueError(
            f"--record cannot replay a run with --restarts {restarts}: a restart's new centre, "
            "sigma and optimizer state are not an update (drop one of the two flags)"
        )


def build_optimizer(
    name: str,
    params: Any,
    lr: float,
    *,
    betas: tuple[float, float] | None = None,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    max_speed: float | None = None,
) -> Any:
    """The inner optimizer a script's ``--optimizer`` names, in the scripts' one convention.

    Args:
        name: one of :data:`OPTIMIZERS`.
        params: the parameters to optimize.
        lr: the learning rate.
        betas: RangerLite's betas (None: RangerLite's default); the other optimizers keep their
            own betas, so a preset tuned for RangerLite does not change Adam or Ligi.
        momentum: the momentum of SGD and ClipUp.
        weight_decay: L2 penalty (decoupled in RangerLite); ClipUp has none and refuses it.
        max_speed: ClipUp's speed limit (None: ``2 * lr``, the paper's); the other optimizers
            have none and refuse it.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(2, 1)
        >>> build_optimizer("sgd", net.parameters(), 0.1, momentum=0.5).defaults["momentum"]
        0.5
    """
    import torch

    from .optim import ClipUp, Ligi, RangerLite

    if max_speed is not None and name != "clipup":
        raise ValueError(f"max_speed is ClipUp's speed limit; optimizer {name!r} has none")
    if name == "rangerlite":
        options = {} if betas is None else {"betas": tuple(betas)}
        return RangerLite(params, lr=lr, weight_decay=weight_decay, **options)
    if name == "ligi":
        return Ligi(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "clipup":
        if weight_decay:
            raise ValueError(f"optimizer 'clipup' has no weight_decay, got {weight_decay}")
        return ClipUp(params, lr=lr, momentum=momentum, max_speed=max_speed)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
