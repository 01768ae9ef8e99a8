"""The run-record file: JSON lines, each generation checksummed and chained to the one before.

A record is UTF-8 text, one JSON object per line:

1. the **header**: format and version, the es_opt / torch / Python versions and the device kind
   that wrote it, the trainable parameters' names, shapes and dtypes, the inner optimizer's class
   and parameter groups, every setting the update depends on (:mod:`es_opt.record.snapshot`),
   the digests of θ₀ and of the whole start state, and where the start checkpoint is;
2. one line per **generation** ``g``: the checked fitness matrix (``"fitness"``: base64 of its
   little-endian float64 bytes, ``"shape"``: ``[n_evals, n_objectives]``), the settings that
   changed after it, which the next generation runs with (``"set"``), the sampled layers when
   not all (``"layers"``: indices), the objective's state when it changed (``"objective"``) and the
   BLAKE2b-128 digest of the trainable parameters after the update (``"theta"``).

Every line ends with ``"sum"``: BLAKE2b-128 of the previous line's ``sum`` followed by the
line's canonical JSON (without ``sum``). A flipped bit breaks its line's sum; a removed, repeated
or reordered line breaks the chain, and a line's ``"g"`` must be the next generation. A record is
only ever appended to, one whole line per write, so a run killed while writing leaves at most a
last line without its newline: the reader drops that line (``Record.cut``) and keeps every
complete generation. Anything else that does not check out is one :class:`RecordError` naming
the file and the generation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .codec import canonical, tensor_bytes

__all__ = ["FORMAT", "VERSION", "Record", "RecordError", "read_record"]

FORMAT = "es_opt.run_record"
VERSION = 1
_SEED = FORMAT.encode() + b"\n"  # what the header's sum is chained to
_BODY_KEYS = {"g", "fitness", "shape", "theta", "set", "layers", "objective"}


class RecordError(ValueError):
    """A run record that cannot be used: not a record, a newer format, corrupted (a flipped bit,
    lines removed, repeated or reordered), cut before the generation asked for, or written for
    another model, θ₀ or configuration; or a replay whose centre stops matching the record.
    Nothing was changed when it is raised.

    Attributes:
        path: the record file.
        generation: the generation at fault, or ``None`` (the header, the file as a whole).
        reason: the cause, without the file name and the generation.

    Example:
        >>> str(RecordError("run.record", 12, "its checksum does not match"))
        "run record 'run.record', generation 12: its checksum does not match"
    """

    def __init__(self, path: object, generation: int | None, reason: str):
        where = f"run record {str(path)!r}"
        if generation is not None:
            where += f", generation {generation}"
        super().__init__(f"{where}: {reason}")
        self.path, self.generation, self.reason = str(path), generation, reason

    def __reduce__(self):
        return (RecordError, (self.path, self.generation, self.reason))


def _chain(previous: bytes, body: dict[str, Any]) -> str:
    return hashlib.blake2b(previous + canonical(body), digest_size=16).hexdigest()


def sealed_line(body: dict[str, Any], previous: str | None) -> tuple[bytes, str]:
    """``body`` as one line (newline included) with its chained ``sum``; returns the line and the
    sum (``previous=None``: the header)."""
    seed = _SEED if previous is None else previous.encode()
    checksum = _chain(seed, body)
    return canonical({**body, "sum": checksum}) + b"\n", checksum


def encode_fitness(fitness: torch.Tensor) -> dict[str, Any]:
    """``{"fitness", "shape"}`` of a checked ``[n_evals, n_objectives]`` fitness matrix."""
    matrix = fitness.detach().to(torch.float64)
    data = base64.b64encode(tensor_bytes(matrix)).decode("ascii")
    return {"fitness": data, "shape": list(matrix.shape)}


@dataclass(frozen=True)
class Record:
    """A run record read and checked by :func:`read_record`.

    Attributes:
        path: the file.
        header: the header (JSON data; settings encoded by :mod:`es_opt.record.codec`).
        lines: one JSON object per complete generation, in order.
        cut: the file ended with a cut line (a write interrupted), which was dropped.
    """

    path: Path
    header: dict[str, Any]
    lines: tuple[dict[str, Any], ...]
    cut: bool = False

    @property
    def start(self) -> int:
        """The generation the record starts at (θ₀ is the centre before it)."""
        return int(self.header["start"]["generation"])

    @property
    def end(self) -> int:
        """The generation after the last complete one: the record replays to ``start..end``."""
        return self.start + len(self.lines)

    def line(self, generation: int) -> dict[str, Any]:
        """The line of ``generation``."""
        if not self.start <= generation < self.end:
            raise self.error(generation, f"not in the record (it holds {self.span()})")
        return self.lines[generation - self.start]

    def fitness(self, generation: int) -> torch.Tensor:
        """The checked fitness matrix of ``generation`` (float64, CPU)."""
        line = self.line(generation)
        shape = line["shape"]
        raw = bytearray(base64.b64decode(line["fitness"]))
        return torch.frombuffer(raw, dtype=torch.float64).reshape(shape).clone()

    def span(self) -> str:
        cut = "; its last line was cut and dropped" if self.cut else ""
        if not self.lines:
            return f"no generation yet, it starts at {self.start}{cut}"
        return f"generations {self.start} to {self.end - 1}{cut}"

    def error(self, generation: int | None, reason: str) -> RecordError:
        return RecordError(self.path, generation, reason)


def read_record(path: str | os.PathLike[str]) -> Record:
    """Reads and checks a whole run record: the header, then every line's checksum, chain and
    generation number, and the fitness data's size. A last line without its newline (a write cut
    short) is dropped; anything else that does not check out raises :class:`RecordError`.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        RecordError: the file is not a run record, is of a newer format, or is corrupted.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no run record at {str(path)!r}")
    data = path.read_bytes()
    lines = data.split(b"\n")
    cut = lines[-1] != b""  # a file written whole ends with a newline
    lines = lines[:-1]
    if not lines:
        reason = "the file is empty" if not data else "its header is cut short (no newline)"
        raise RecordError(path, None, reason)
    header = _header(path, lines[0])
    start = header["start"]["generation"]
    previous = header["sum"]
    bodies = []
    for i, raw in enumerate(lines[1:]):
        generation = start + i
        body = _parse(path, generation, raw)
        if body.get("g") != generation:
            raise RecordError(
                path,
                generation,
                f"the line where generation {generation} belongs holds generation "
                f"{body.get('g')!r}: lines were removed, repeated or reordered",
            )
        checksum = body.pop("sum", None)
        if checksum != _chain(previous.encode(), body):
            raise RecordError(
                path,
                generation,
                "its checksum does not match: the line was changed (a flipped bit?) or a line "
                "before it was removed or reordered",
            )
        _check_body(path, generation, body)
        bodies.append(body)
        previous = checksum
    return Record(path=path, header=header, lines=tuple(bodies), cut=cut)


def _parse(path: Path, generation: int | None, raw: bytes) -> dict[str, Any]:
    what = "the header" if generation is None else "the line"
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RecordError(
            path, generation, f"{what} is not valid JSON (a flipped bit or a cut in the file)"
        ) from None
    if not isinstance(value, dict):
        raise RecordError(path, generation, f"{what} is not a JSON object")
    return value


def _header(path: Path, raw: bytes) -> dict[str, Any]:
    if not raw.startswith(b"{"):
        raise RecordError(path, None, f"not a run record (it starts with {raw[:16]!r})")
    header = _parse(path, None, raw)
    if header.get("format") != FORMAT:
        raise RecordError(path, None, f"not an es_opt run record (format {header.get('format')!r})")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError(path, None, f"its version is {version!r}, not a positive int")
    if version > VERSION:
        raise RecordError(
            path,
            None,
            f"written in run-record format {version} (by es_opt "
            f"{header.get('environment', {}).get('es_opt', '(unknown)')}); this "
            f"es_opt reads up to format {VERSION}: upgrade es_opt",
        )
    checksum = header.pop("sum", None)
    if checksum != _chain(_SEED, header):
        raise RecordError(path, None, "the header's checksum does not match: it was changed")
    header["sum"] = checksum
    start = header.get("start")
    if not isinstance(start, dict) or not _is_int(start.get("generation")):
        raise RecordError(path, None, "the header has no start generation")
    return header


def _check_body(path: Path, generation: int, body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - _BODY_KEYS)
    if unknown:
        raise RecordError(path, generation, f"the line has unknown fields {unknown}")
    shape = body.get("shape")
    if not (
        isinstance(shape, list) and len(shape) == 2 and all(_is_int(n) and n > 0 for n in shape)
    ):
        raise RecordError(path, generation, f"the fitness shape {shape!r} is not [n, k]")
    try:
        size = len(base64.b64decode(body.get("fitness", ""), validate=True))
    except (TypeError, ValueError):
        raise RecordError(path, generation, "the fitness is not base64 data") from None
    if size != 8 * math.prod(shape):
        raise RecordError(
            path, generation, f"the fitness holds {size} bytes, not {shape[0]}×{shape[1]} float64"
        )
    if not isinstance(body.get("theta"), str):
        raise RecordError(path, generation, "the line has no digest of the centre")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
