"""Which evaluator ``backend``, ``n_workers``, ``devices`` and the backend options ask for: one rule
for every combination, checked before anything starts."""

from __future__ import annotations

import importlib.util
from typing import Any

from .._validation import check_optional_int
from ..errors import MissingExtraError
from ._options import Options, check_devices, check_sync
from .base import Evaluator

__all__ = ["BACKENDS", "BACKEND_OPTIONS", "resolve_backend"]

BACKENDS = ("serial", "multiprocess", "ray")

BACKEND_OPTIONS = ("ray_address", "max_retries", "eval_timeout", "worker_threads", "sync")
"""Options of the parallel backends, besides ``n_workers`` and ``devices``."""

_PARALLEL_DEFAULTS = {"max_retries": 1, "eval_timeout": None, "worker_threads": 1, "sync": "center"}


def resolve_backend(
    backend: str | Evaluator | None,
    n_workers: int | None = None,
    devices: Any = None,
    **backend_options: Any,
) -> tuple[str | Evaluator, dict[str, Any]]:
    """The evaluator that the arguments ask for, as ``(backend, options)`` to pass on to
    :func:`make_evaluator` (``make_evaluator(backend, **options)``). Checks everything and starts
    nothing.

    The rule:

    - ``backend=None`` chooses: ``"ray"`` when ``ray_address`` is given; else ``"multiprocess"``
      when ``devices`` is given (``n_workers`` then defaults to ``len(devices)``) or
      ``n_workers > 1``; else ``"serial"``.
    - ``"serial"`` evaluates in this process, where the model is: ``n_workers`` other than 1,
      ``devices`` or a parallel option contradicts it (``ValueError``); ``sync="center"``, what
      it does, is accepted as on every backend.
    - ``"multiprocess"`` and ``"ray"`` take ``n_workers`` (at least ``len(devices)``), ``devices``,
      ``max_retries``, ``eval_timeout``, ``worker_threads`` and ``sync``; ``ray_address`` is
      Ray's alone.
    - An :class:`Evaluator` instance is used as it is: configure it, not the arguments here.
    - Every device must exist on this machine (``"cuda:0"`` without CUDA is a ``ValueError``).

    Raises:
        TypeError: an unknown option, or an argument of the wrong kind (named, with its value).
        ValueError: a bad value, an absent device or a contradiction (named, with the value).
        MissingExtraError: ``"ray"`` without Ray installed.

    Example:
        >>> resolve_backend(None, n_workers=2)
        ('multiprocess', {'n_workers': 2})
        >>> resolve_backend(None, devices=["cpu", "cpu"])
        ('multiprocess', {'n_workers': 2, 'devices': ('cpu', 'cpu')})
        >>> resolve_backend("serial", n_workers=2)
        Traceback (most recent call last):
        ...
        ValueError: n_workers=2 contradicts backend='serial', which evaluates in this process: pass backend='multiprocess' or 'ray', or leave n_workers out
    """  # noqa: E501
    unknown = sorted(set(backend_options) - set(BACKEND_OPTIONS))
    if unknown:
        raise TypeError(
            f"got unexpected keyword argument(s) {unknown}; backend options are "
            f"{', '.join(BACKEND_OPTIONS)}"
        )
    _check_backend(backend)
    n_workers = check_optional_int("n_workers", n_workers, low=1)
    checked_devices = check_devices(devices)
    given = {name: value for name, value in backend_options.items() if value is not None}
    if "ray_address" in given:
        address = given["ray_address"]
        if not isinstance(address, str) or not address:
            raise ValueError(f"ray_address must be 'auto', 'host:port' or None, got {address!r}")

    if isinstance(backend, Evaluator):
        extra = dict(given, n_workers=n_workers, devices=devices)
        for name, value in extra.items():
            if value is not None:
                raise ValueError(
                    f"{name}={value!r} does not apply to an Evaluator instance passed as backend "
                    f"({type(backend).__name__}): configure the instance itself"
                )
        return backend, {}
    if backend is None:
        if "ray_address" in given:
            backend = "ray"
        elif checked_devices is not None or (n_workers or 1) > 1:
            backend = "multiprocess"
        else:
            backend = "serial"

    if backend == "serial":
        if given.get("sync") is not None and check_sync(given["sync"]) == "center":
            del given["sync"]  # the serial backend evaluates on the model: "center" is its way
        _refuse_for_serial(n_workers, devices, given)
        return "serial", {}
    if backend == "multiprocess" and "ray_address" in given:
        raise ValueError(
            f"ray_address={given['ray_address']!r} applies to backend='ray' only, got "
            "backend='multiprocess'"
        )
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise MissingExtraError("ray", "ray", "the Ray backend")
    parallel = {name: given.get(name, default) for name, default in _PARALLEL_DEFAULTS.items()}
    # Checks n_workers against the devices and the options' values, as the backend will.
    Options.check(n_workers, checked_devices, default_workers=1, **parallel)
    if n_workers is None and checked_devices is not None:
        n_workers = len(checked_devices)
    options: dict[str, Any] = {"n_workers": n_workers, "devices": checked_devices, **given}
    return backend, {name: value for name, value in options.items() if value is not None}


def _check_backend(backend: Any) -> None:
    if backend is None or isinstance(backend, Evaluator) or backend in BACKENDS:
        return
    if isinstance(backend, type) and issubclass(backend, Evaluator):
        raise TypeError(
            f"backend must be an Evaluator instance, got the class {backend.__name__}: build it "
            f"first, e.g. backend={backend.__name__}()"
        )
    listed = ", ".join(repr(name) for name in BACKENDS)
    raise ValueError(f"backend must be one of {listed} or an Evaluator instance, got {backend!r}")


def _refuse_for_serial(n_workers: int | None, devices: Any, given: dict[str, Any]) -> None:
    how = "evaluates in this process"
    if n_workers is not None and n_workers != 1:
        raise ValueError(
            f"n_workers={n_workers} contradicts backend='serial', which {how}: pass "
            "backend='multiprocess' or 'ray', or leave n_workers out"
        )
    if devices is not None:
        raise ValueError(
            f"devices={devices!r} contradicts backend='serial', which {how}, where the model is: "
            "move the model with model.net.to(device), or pass backend='multiprocess' or 'ray'"
        )
    for name, value in given.items():
        raise ValueError(
            f"{name}={value!r} applies to the parallel backends, not backend='serial': pass "
            "backend='multiprocess' or 'ray', or leave it out"
        )
