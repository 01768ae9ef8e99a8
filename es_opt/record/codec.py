"""Plain values as JSON, bit for bit: what a run record holds instead of pickles.

A run record must load without running anyone's code (as checkpoints load with
``torch.load(weights_only=True)``), so it is text: JSON, whose reader builds only numbers, strings,
lists and dicts. This module maps the values an :class:`~es_opt.ESOptimizer` state holds onto JSON
and back without losing a bit:

- ``None``, ``bool``, ``int``, ``str``, finite ``float`` (Python writes the shortest decimal
  string that reads back to the same double) are themselves;
- a non-finite float is ``{"$float": "nan" | "inf" | "-inf"}``;
- a tensor is ``{"$tensor": [dtype, shape, base64 of its bytes]}`` (little-endian, CPU), a NumPy
  array ``{"$ndarray": [...]}`` in the same form, a ``torch.dtype`` ``{"$dtype": name}``;
- a tuple is ``{"$tuple": [...]}`` (a list stays a list), a dict with a key that is not a string
  (an optimizer state's parameter indices) or that starts with ``$`` is
  ``{"$dict": [[k, v], ...]}``.

Anything else is refused with a ``TypeError`` naming where it is. :func:`canonical` is the one
serialisation digests are taken of (sorted keys, no spaces).

Example:
    >>> value = {"lr": 0.1, "betas": (0.9, 0.999), 0: torch.tensor([1.5, float("nan")])}
    >>> back = decode(json.loads(json.dumps(encode(value))))
    >>> back["betas"], back[0].tolist()[0], torch.isnan(back[0][1]).item()
    ((0.9, 0.999), 1.5, True)
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import sys
from typing import Any

import numpy as np
import torch

__all__ = ["encode", "decode", "canonical", "value_digest", "tensor_bytes"]

_DTYPES = {
    str(dtype).removeprefix("torch."): dtype
    for dtype in (
        torch.float64,
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
        torch.bool,
        torch.complex64,
        torch.complex128,
    )
}


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """The tensor's elements as little-endian bytes, in row-major order, on the CPU."""
    flat = tensor.detach().reshape(-1).cpu().contiguous()
    data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    if sys.byteorder == "big" and flat.element_size() > 1:  # pragma: no cover - no such CI host
        data = np.frombuffer(data, flat.numpy().dtype).byteswap().tobytes()
    return data


def encode(value: Any, where: str = "value") -> Any:
    """``value`` as JSON-ready data (see the module's table); ``TypeError`` naming ``where`` for
    a value that has no plain form (a function, an arbitrary object)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, torch.Tensor):
        name = str(value.dtype).removeprefix("torch.")
        if name not in _DTYPES:
            raise TypeError(
                f"{where} is a tensor of dtype {value.dtype}, which a record cannot hold"
            )
        data = base64.b64encode(tensor_bytes(value)).decode("ascii")
        return {"$tensor": [name, list(value.shape), data]}
    if isinstance(value, np.ndarray):
        return {"$ndarray": encode(torch.from_numpy(np.ascontiguousarray(value)), where)["$tensor"]}
    if isinstance(value, torch.dtype):
        return {"$dtype": str(value).removeprefix("torch.")}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {
            "$dict": [
                [encode(k, f"{where} key"), encode(v, f"{where}[{k!r}]")] for k, v in value.items()
            ]
        }
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__name__}, which a run record cannot "
        "hold: it stores tensors, numbers, strings, tuples, lists and dicts only"
    )


def decode(data: Any) -> Any:
    """The value :func:`encode` turned into ``data``; ``ValueError`` for data it never writes."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        ((tag, inner),) = data.items()
        if tag == "$float":
            if inner not in ("nan", "inf", "-inf"):
                raise ValueError(f"a record's $float must be nan, inf or -inf, got {inner!r}")
            return float(inner)
        if tag in ("$tensor", "$ndarray"):
            tensor = _tensor(inner)
            return tensor.numpy() if tag == "$ndarray" else tensor
        if tag == "$dtype":
            return _dtype(inner)
        if tag == "$tuple":
            return tuple(decode(v) for v in inner)
        if tag == "$dict":
            return {_key(decode(k)): decode(v) for k, v in inner}
    if any(isinstance(k, str) and k.startswith("$") for k in data):
        raise ValueError(f"a record holds an unknown tagged value {sorted(data)[:3]}")
    return {k: decode(v) for k, v in data.items()}


def _key(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def _dtype(name: Any) -> torch.dtype:
    if name not in _DTYPES:
        raise ValueError(f"a record holds a tensor of unknown dtype {name!r}")
    return _DTYPES[name]


def _tensor(spec: Any) -> torch.Tensor:
    if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[1], list)):
        raise ValueError(f"a record's tensor must be [dtype, shape, data], got {str(spec)[:60]}")
    name, shape, data = spec
    dtype = _dtype(name)
    raw = bytearray(base64.b64decode(data, validate=True))
    size = torch.empty((), dtype=dtype).element_size()
    count = math.prod(shape)
    if len(raw) != count * size:
        raise ValueError(
            f"a record's {name} tensor of shape {shape} needs {count * size} bytes, "
            f"holds {len(raw)}"
        )
    if not raw:
        return torch.empty(shape, dtype=dtype)
    if sys.byteorder == "big" and size > 1:  # pragma: no cover - no such CI host
        raw = bytearray(np.frombuffer(raw, f"<u{size}").astype(f">u{size}").tobytes())
    return torch.frombuffer(raw, dtype=torch.uint8).view(dtype).reshape(shape).clone()


def canonical(data: Any) -> bytes:
    """The one serialisation of JSON data that digests and checksums are taken of."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def value_digest(value: Any, where: str = "value") -> str:
    """BLAKE2b-128 of ``value``: equal digests mean equal values, bits included (``-0.0`` and
    ``0.0`` differ, as in a tensor). Tensors are hashed from their bytes, never copied into text,
    so the digest of an optimizer state of any size costs one pass over it; dict entries are taken
    in the order of their keys."""
    digest = hashlib.blake2b(digest_size=16)
    _feed(digest, value, where)
    return digest.hexdigest()


def _feed(digest: Any, value: Any, where: str) -> None:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        name = str(value.dtype).removeprefix("torch.")
        digest.update(canonical(["$tensor", name, list(value.shape)]))
        flat = value.detach().reshape(-1).cpu().contiguous()
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: (type(kv[0]).__name__, repr(kv[0])))
        digest.update(canonical(["$dict", len(items)]))
        for key, item in items:
            digest.update(canonical(encode(key, f"{where} key")))
            _feed(digest, item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        digest.update(canonical(["$tuple" if isinstance(value, tuple) else "$list", len(value)]))
        for i, item in enumerate(value):
            _feed(digest, item, f"{where}[{i}]")
    else:
        digest.update(canonical(encode(value, where)))
