"""Exceptions raised by es_opt."""

from __future__ import annotations

__all__ = ["CheckpointError", "EvaluationError", "MissingExtraError"]


class EvaluationError(RuntimeError):
    """An objective failed (raised, hung, or returned something unusable) while evaluating one
    perturbation.

    The step that raised it changed nothing: parameters, their ``.grad`` and the inner optimizer's
    state are exactly as they were before the call, and the next step can run.

    Attributes:
        index: the evaluation index within the generation (pair ``index // 2``; even indices are
            the ``+σε`` member, odd the ``−σε`` member), or ``None`` when not tied to one.
        worker_traceback: the traceback text of the failure, formatted where it happened (in a
            worker process or Ray actor for the parallel backends).

    Example:
        >>> err = EvaluationError("objective raised ValueError", index=3, worker_traceback="...")
        >>> err.index
        3
    """

    def __init__(self, message: str, *, index: int | None = None, worker_traceback: str = ""):
        detail = message
        if worker_traceback:
            detail = f"{message}\n\n--- traceback of the failed evaluation ---\n{worker_traceback}"
        super().__init__(detail)
        self.index = index
        self.worker_traceback = worker_traceback

    def __reduce__(self):  # keep the keyword arguments across pickling (worker -> main process)
        return (_rebuild_evaluation_error, (self.args[0], self.index, self.worker_traceback))


def _rebuild_evaluation_error(detail: str, index: int | None, worker_traceback: str):
    err = EvaluationError.__new__(EvaluationError)
    RuntimeError.__init__(err, detail)
    err.index = index
    err.worker_traceback = worker_traceback
    return err


class CheckpointError(ValueError):
    """A checkpoint could not be read or does not fit: the file is not a zip archive (e.g. a text
    file), is truncated, is corrupted (its bytes do not match the digest written with it, or a
    record fails its CRC-32), is not an es_opt checkpoint, was written by a newer es_opt, or was
    written for another net or inner optimizer. Nothing was changed when it is raised.

    Attributes:
        path: the checkpoint file, as given.
        reason: the cause, without the file name.

    Example:
        >>> err = CheckpointError("runs/run.pt", "truncated")
        >>> str(err), err.reason
        ("cannot load the checkpoint 'runs/run.pt': truncated", 'truncated')
    """

    def __init__(self, path: object, reason: str):
        super().__init__(f"cannot load the checkpoint {str(path)!r}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):
        return (CheckpointError, (self.path, self.reason))


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message says which extra to install.

    Example:
        >>> raise MissingExtraError("gymnasium", "rl")  # doctest: +SKIP
        MissingExtraError: gymnasium is needed for this feature: pip install "es_opt[rl]"
    """

    def __init__(self, package: str, extra: str, feature: str = "this feature"):
        super().__init__(f'{package} is needed for {feature}: pip install "es_opt[{extra}]"')
        self.package = package
        self.extra = extra


def require(module: str, extra: str, feature: str = "this feature", *, package: str | None = None):
    """Imports ``module`` or raises :class:`MissingExtraError` naming the extra to install.

    ``package`` is the name to report (defaults to the module's top-level name; pass it when they
    differ, e.g. ``require("torch.utils.tensorboard", "tensorboard", package="tensorboard")``).
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(package or module.split(".")[0], extra, feature) from exc
