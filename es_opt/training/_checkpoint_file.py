"""The checkpoint file on disk: written atomically with a SHA-256 digest, read back only after
the digest (or, for a file without one, each zip record's CRC-32) checks out.

A checkpoint is the zip archive ``torch.save`` writes; es_opt adds one thing: the archive's
comment (the free-text field at the very end of a zip, which torch neither writes nor reads)
holds ``es_opt.checkpoint sha256=<64 hex digits>``, the SHA-256 of every byte of the file that
comes before the comment's length field. So the file stays a plain ``torch.save`` zip that
``torch.load(weights_only=True)`` reads as before, and es_opt can verify it before a single record
is unpickled.

Why a digest over the file's bytes:

- **torch ignores the zip's CRC-32s.** Its reader takes a record's bytes as they are, so a few
  flipped bytes in a tensor's data load without complaint and a resumed run trains from garbage.
- **The CRCs would not be enough even if they were checked.** Each covers one record's data,
  not the local headers, the central directory or the CRC fields themselves, nor which records
  the archive holds; a CRC-32 is 32 bits per record. One digest over all the bytes covers the
  whole file, and it is checked before anything is unpickled or applied.
- **Over the bytes, not over the loaded values**: what is verified is exactly what was written,
  whatever a later torch does when it serialises the same values (it writes a random
  serialisation id, and its layout may change between versions), and nothing has to re-serialise
  the values to check them.
- **SHA-256** is in every Python (``hashlib``), hardware-accelerated on current x86 and ARM CPUs,
  and far beyond what accidental corruption can collide with. It guards against accidents (bad
  disks, cut copies, editors), not against an attacker, who could recompute it; what keeps a
  malicious file from running code is ``weights_only=True``.

A file without the comment (written before es_opt wrote digests, or rewritten with ``torch.save``,
e.g. to edit its ``config``) is checked against the CRC-32 of each of its records instead, which
still catches flipped bytes in tensor data.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from ..errors import CheckpointError

__all__ = ["atomic_write", "write_checkpoint_file", "read_checkpoint_file"]

DIGEST_PREFIX = b"es_opt.checkpoint "
DIGEST_TAG = DIGEST_PREFIX + b"sha256="

_LOCAL_HEADER = b"PK\x03\x04"
_END_RECORD = b"PK\x05\x06"
_END_RECORD_SIZE = 22  # the end-of-central-directory record, without its comment
_MAX_COMMENT = 0xFFFF
_CHUNK = 1 << 20


# -- writing ---------------------------------------------------------------------------------
def write_checkpoint_file(payload: Any, path: Path) -> None:
    """``torch.save(payload)`` to ``path`` with its digest, atomically (:func:`atomic_write`)."""

    def write(f: IO[bytes]) -> None:
        torch.save(payload, f)
        _seal(f)

    atomic_write(path, write)


def atomic_write(path: str | os.PathLike[str], data: bytes | Callable[[IO[bytes]], None]) -> None:
    """Writes ``data`` (bytes, or a function that writes to the open binary file) to ``path`` so
    that no reader ever sees a partial file: a temporary file in the same folder, ``fsync``, then
    ``os.replace`` (atomic on POSIX and Windows; a process killed while writing leaves the
    previous file intact). The folder is created if missing. es_opt's one atomic writer
    (checkpoints, the optimizer search's evaluation cache)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file readable by its owner only; give it the usual permissions.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "w+b") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _seal(f: IO[bytes]) -> None:
    """Writes the digest into the zip comment of the archive ``torch.save`` just wrote to ``f``."""
    f.flush()
    size = f.seek(0, os.SEEK_END)
    f.seek(size - _END_RECORD_SIZE)
    end = f.read(_END_RECORD_SIZE)
    if end[:4] != _END_RECORD or end[20:22] != b"\x00\x00":
        raise RuntimeError("torch.save did not end the archive with a comment-less zip end record")
    comment = DIGEST_TAG + _digest(f, size - 2).encode("ascii")
    f.seek(size - 2)
    f.write(len(comment).to_bytes(2, "little") + comment)


def _digest(f: IO[bytes], end: int) -> str:
    """SHA-256 of the bytes ``[0, end)`` of ``f``."""
    f.seek(0)
    digest = hashlib.sha256()
    remaining = end
    while remaining > 0:
        chunk = f.read(min(_CHUNK, remaining))
        if not chunk:
            break
        digest.update(chunk)
        remaining -= len(chunk)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Makes the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading ---------------------------------------------------------------------------------
def read_checkpoint_file(path: Path, map_location: Any) -> Any:
    """What ``torch.load(path, weights_only=True)`` returns, once the file's integrity is
    verified; every failure to read it is a :class:`~es_opt.errors.CheckpointError` naming the
    file and the cause (``FileNotFoundError`` if there is no file)."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    # One open file for the checks and the load: what is verified is what is loaded, even if the
    # path is replaced meanwhile.
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(4)
        if size == 0:
            raise CheckpointError(path, "the file is empty")
        if head != _LOCAL_HEADER:
            raise CheckpointError(path, _not_a_zip(f))
        end_record, comment = _find_end_record(f, size)
        if end_record is None:
            raise CheckpointError(
                path,
                f"truncated: the zip archive has no end record ({size} bytes; was the write or "
                "the copy cut short?)",
            )
        if comment.startswith(DIGEST_PREFIX):
            _check_digest(f, path, end_record, comment)
        else:
            _check_crcs(f, path)
        f.seek(0)
        try:
            return torch.load(f, map_location=map_location, weights_only=True)
        except Exception as exc:  # every torch failure becomes one es_opt error
            # ``from None``: torch's message may advise weights_only=False, which would run any
            # code the file holds.
            raise CheckpointError(path, _torch_cause(exc)) from None


def _not_a_zip(f: IO[bytes]) -> str:
    f.seek(0)
    start = f.read(16)
    if start[:1] == b"\x80":
        kind = "a pickle (e.g. a torch file in the legacy, pre-zip format)"
    elif _is_text(start):
        kind = "a text file"
    else:
        kind = "another kind of file"
    return (
        f"not a zip archive, so not a torch checkpoint: it is {kind} (it starts with {start!r}; "
        "es_opt checkpoints are written by es_opt.training.save_checkpoint)"
    )


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _find_end_record(f: IO[bytes], size: int) -> tuple[int | None, bytes]:
    """The offset of the zip's end record and its comment; ``(None, b"")`` if there is none."""
    start = max(0, size - _END_RECORD_SIZE - _MAX_COMMENT)
    f.seek(start)
    tail = f.read()
    at = tail.rfind(_END_RECORD)
    while at >= 0:
        record = tail[at : at + _END_RECORD_SIZE]
        if len(record) == _END_RECORD_SIZE:
            length = int.from_bytes(record[20:22], "little")
            if at + _END_RECORD_SIZE + length == len(tail):  # a real end record ends the file
                return start + at, tail[at + _END_RECORD_SIZE :]
        at = tail.rfind(_END_RECORD, 0, at)
    return None, b""


def _check_digest(f: IO[bytes], path: Path, end_record: int, comment: bytes) -> None:
    if not comment.startswith(DIGEST_TAG):
        raise CheckpointError(
            path,
            f"written by a newer es_opt: its integrity record {comment[:40]!r} is of a kind this "
            "es_opt does not know; upgrade es_opt to read it",
        )
    expected = comment[len(DIGEST_TAG) :].decode("ascii", "replace")
    actual = _digest(f, end_record + 20)
    if actual != expected:
        raise CheckpointError(
            path,
            "corrupted: its bytes do not match the SHA-256 digest written with it (stored "
            f"{expected[:16]}..., computed {actual[:16]}...); restore it from a copy or use an "
            "earlier checkpoint",
        )


def _check_crcs(f: IO[bytes], path: Path) -> None:
    """Reads every record so that zipfile checks its CRC-32 (torch does not)."""
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as archive:
            names = archive.namelist()
            if not any(name.endswith("/data.pkl") and name.count("/") == 1 for name in names):
                raise CheckpointError(
                    path,
                    f"a zip archive but not a torch checkpoint (it holds {names[:3]!r}..., not the "
                    "records torch.save writes)",
                )
            for info in archive.infolist():
                with archive.open(info) as record:
                    while record.read(_CHUNK):
                        pass
    except CheckpointError:
        raise
    except zipfile.BadZipFile as exc:
        raise CheckpointError(
            path,
            f"corrupted: {exc} (the file has no es_opt digest: it was written before es_opt "
            "wrote digests, or rewritten with torch.save)",
        ) from None
    except (OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise CheckpointError(path, f"corrupted: its zip structure is damaged ({exc})") from None


def _torch_cause(exc: BaseException) -> str:
    message = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "WeightsUnpickler error:" in message:
        detail = message.split("WeightsUnpickler error:", 1)[1].strip().split("\n", 1)[0]
        detail = detail.split(". ")[0].rstrip(".")
        return (
            f"not an es_opt checkpoint: it holds objects that a weights-only load refuses "
            f"({detail}); es_opt checkpoints hold only tensors, numbers, strings, lists and dicts"
        )
    first = message.strip().split("\n", 1)[0]
    if "weights_only" in first:  # never pass on advice to turn the safe loader off
        first = "the weights-only loader refused it"
    return f"corrupted: torch could not read it ({type(exc).__name__}: {first[:300]})"
