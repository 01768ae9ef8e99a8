"""``RunRecord``: the callback that writes a run record (:mod:`es_opt.record.format`).

It writes the header when the run starts (and, by default, θ₀ with the whole optimizer state as a
checkpoint next to the record), then one checksummed line per generation: the checked fitness
matrix, the settings that changed, the sampled layers, the objective's state when it changed and
the digest of the centre after the update. Nothing else is needed to rebuild every later centre
bit for bit (:func:`es_opt.record.replay`).

**Where to put it among the callbacks.** It reads the settings (σ, each parameter group's
learning rate, ...) after the callbacks before it in the list have run: the values it sees after
generation ``g`` are recorded as generation ``g + 1``'s. Put it after every callback that changes
them (a learning-rate schedule); a replay that does not reproduce the centre says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..loop import Callback
from ..result import StepResult
from ..training.checkpoint import atomic_write, plain_config, save_checkpoint
from . import snapshot
from .format import FORMAT, VERSION, Record, RecordError, encode_fitness, read_record, sealed_line

if TYPE_CHECKING:
    from ..history import History
    from ..optimizer import ESOptimizer

__all__ = ["RunRecord", "start_checkpoint_path", "settings_at"]


def start_checkpoint_path(path: Path) -> Path:
    """Where :class:`RunRecord` saves θ₀ by default: ``run.record`` → ``run.start.pt``."""
    return path.with_name(f"{path.stem}.start.pt")


def settings_at(record: Record, generation: int) -> dict[str, Any]:
    """The settings (encoded) in effect for ``generation``: the header's, updated by the changes
    every line before it recorded."""
    current = dict(record.header["settings"])
    for g in range(record.start, min(generation, record.end)):
        current = snapshot.merged(current, record.line(g).get("set", {}))
    return current


class RunRecord(Callback):
    """Writes a run record: θ₀'s digest and the run's settings, then a few hundred bytes per
    generation, from which :func:`es_opt.record.replay` rebuilds every centre bit for bit.

    Args:
        path: the record file (its folder is created). A run that starts at generation 0
            overwrites it; a resumed run continues it when the file records this run up to the
            generation it resumed from (the lines after that are dropped, since those
            generations run again), and raises :class:`~es_opt.record.RecordError` otherwise.
        start: θ₀, which a replay starts from: ``"save"`` (default) writes it, with the whole
            optimizer state, as a checkpoint next to the record (``run.record`` →
            ``run.start.pt``, through :func:`es_opt.training.save_checkpoint`); a path names a
            checkpoint that already holds it (its digest is checked at replay); ``None`` records
            only its digest (replay then needs the optimizer at θ₀, or ``start=``).
        config: the run's configuration, kept in the start checkpoint (a dict, dataclass or
            ``argparse.Namespace`` of plain values), as :class:`~es_opt.training.Checkpoint` does.
        fsync: ``fsync`` after every generation, so that a power cut loses no complete
            generation (a killed process never does: each line is flushed whole).

    Put it after the callbacks that change σ or learning rates (see the module's note). In a
    hand-written loop, call ``on_start(es, n)`` once, ``on_step(es, result)`` after every
    ``es.gradient_step`` (or ``tell``) and ``close()`` at the end. Each generation costs one
    BLAKE2b digest of the trainable parameters (the one ``sync="replay"`` takes) and a line of
    text.

    Example:
        >>> record = RunRecord("runs/cartpole.record")  # doctest: +SKIP
        >>> es.fit(samples_fn, generations=100, callbacks=[lr_schedule, record])  # doctest: +SKIP
        >>> es_opt.record.checkpoint_at("runs/cartpole.record", 40, "gen40.pt")  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        start: str | os.PathLike[str] | None = "save",
        config: Any = None,
        fsync: bool = False,
    ):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {path!r}")
        if start is not None and not isinstance(start, (str, os.PathLike)):
            raise TypeError(f"start must be 'save', a checkpoint path or None, got {start!r}")
        self.path = Path(path)
        self.start = start
        self.config = plain_config(config)
        self.fsync = bool(fsync)
        self._file: Any = None
        self._sum: str | None = None
        self._next = 0
        self._settings: dict[str, Any] = {}
        self._objective: Any = None

    # -- the callback -------------------------------------------------------------------------
    def on_start(self, es: ESOptimizer, generations: int) -> None:
        self.close()
        if es.generation > 0 and self.path.exists():
            self._continue(es)
        else:
            self._create(es)
        self._file = open(self.path, "ab")

    def on_step(self, es: ESOptimizer, result: StepResult) -> None:
        if self._file is None:
            raise RuntimeError("RunRecord.on_step called before on_start")
        if result.generation != self._next:
            raise ValueError(
                f"RunRecord expected generation {self._next} but was given {result.generation}: "
                "it must see every generation, in order"
            )
        if result.fitness is None:
            raise ValueError(
                f"the result of generation {result.generation} carries no fitness matrix; a run "
                "record needs ESOptimizer's own StepResult"
            )
        body: dict[str, Any] = {"g": result.generation, **encode_fitness(result.fitness)}
        body["theta"] = snapshot.center_digest(es)
        current = snapshot.settings(es)  # what the next generation runs with
        delta = snapshot.changed(self._settings, current)
        if delta:
            body["set"] = delta
            self._settings = current
        layers = [layer.name for layer in es.model.layers]
        if list(result.layers) != layers:
            body["layers"] = [layers.index(name) for name in result.layers]
        objective = snapshot.objective_state(es)
        if objective != self._objective:
            body["objective"] = objective
            self._objective = objective
        self._write(body)
        self._next = result.generation + 1

    def on_end(self, es: ESOptimizer, history: History) -> None:
        self.close()

    def close(self) -> None:
        """Closes the file (every complete generation is already in it)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- writing ------------------------------------------------------------------------------
    def _write(self, body: dict[str, Any]) -> None:
        line, self._sum = sealed_line(body, self._sum)
        self._file.write(line)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def _create(self, es: ESOptimizer) -> None:
        settings = snapshot.settings(es)
        header = {
            "format": FORMAT,
            "version": VERSION,
            "environment": snapshot.environment(es),
            "parameters": snapshot.parameter_table(es),
            "layers": [layer.name for layer in es.model.layers],
            "optimizer": snapshot.optimizer_spec(es),
            "settings": settings,
            "objective": snapshot.objective_state(es),
            "start": {
                "generation": es.generation,
                "theta": snapshot.center_digest(es),
                "state": snapshot.start_digest(es),
                "checkpoint": self._start_checkpoint(es),
            },
        }
        line, checksum = sealed_line(header, None)
        atomic_write(self.path, line)
        self._sum, self._next = checksum, es.generation
        self._settings = settings
        self._objective = header["objective"]

    def _start_checkpoint(self, es: ESOptimizer) -> str | None:
        if self.start is None:
            return None
        if self.start == "save":
            where = start_checkpoint_path(self.path)
            save_checkpoint(where, es, config=self.config)
        else:
            where = Path(self.start)
        try:
            return str(where.resolve().relative_to(self.path.resolve().parent))
        except ValueError:
            return str(where.resolve())

    def _continue(self, es: ESOptimizer) -> None:
        """Keeps the record's generations before ``es.generation`` after checking that ``es``
        continues this record; drops the later ones (they run again)."""
        record = read_record(self.path)
        g = es.generation
        if not record.start <= g <= record.end:
            raise RecordError(
                self.path,
                g,
                f"this run resumes at generation {g}, which does not continue the record (it "
                f"holds {record.span()}): record the resumed run in a new file",
            )
        if snapshot.parameter_table(es) != record.header["parameters"]:
            raise RecordError(self.path, None, "written for another model: record in a new file")
        expected = (
            record.header["start"]["theta"] if g == record.start else record.line(g - 1)["theta"]
        )
        if snapshot.center_digest(es) != expected:
            raise RecordError(
                self.path,
                g,
                "the resumed centre is not the recorded one: this run does not continue the "
                "record (record it in a new file)",
            )
        kept = record.lines[: g - record.start]
        text = sealed_line(_without_sum(record.header), None)[0]
        previous = record.header["sum"]
        for body in kept:
            line, previous = sealed_line(body, previous)
            text += line
        atomic_write(self.path, text)
        self._sum, self._next = previous, g
        self._settings = settings_at(record, g)
        self._objective = record.header["objective"]
        for body in kept:
            self._objective = body.get("objective", self._objective)


def _without_sum(header: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in header.items() if k != "sum"}
