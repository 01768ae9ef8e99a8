"""Counter-based noise: ``(key, generation, pair, tensor, index) -> N(0, 1)``, in any order.

A counter-based generator (Salmon, Moraes, Dror & Shaw 2011, "Parallel Random Numbers: As Easy as
1, 2, 3", SC'11) is a keyed bijection of a counter: the numbers for counter ``c`` under key ``k``
are ``philox(c, k)``, with no state carried from one draw to the next. Any process, on any device,
computes any member's noise directly, many members in one vectorised call, in any order.

Layout. For the run's ``seed`` the key is 64 bits derived with BLAKE2b (:func:`philox_key`). The
128-bit counter of one Philox block (four 32-bit words, giving four normals) is::

    (block, tensor, pair, generation)      each a 32-bit word

so, for one seed, two different (generation, pair, tensor, block) never share a counter and so
never share numbers: Philox is a bijection of the counter for a fixed key. There are no seed
collisions at any run length below 2³² generations, pairs, tensors and blocks (16·10⁹ numbers per
tensor). Different seeds give different keys (a 64-bit hash: two seeds share a key with probability
2⁻⁶⁴).

Normals. The four 32-bit words ``(w0, w1, w2, w3)`` of a block become four normals by the
Box–Muller transform (Box & Muller 1958) on the two pairs ``(w0, w1)`` and ``(w2, w3)``::

    u = ((w0 >> 8) + 1) · 2⁻²⁴ ∈ (0, 1]     v = (w1 >> 8) · 2⁻²⁴ ∈ [0, 1)      (float32)
    z = √(−2 ln u) · (cos 2πv, sin 2πv)

(float64 uses all 32 bits: ``u = (w0 + 1)·2⁻³²``, ``v = w1·2⁻³²``). Element ``i`` of a tensor is
normal ``i % 4`` of block ``i // 4``, so a tensor's numbers never depend on its length.

Across processes the numbers are identical bit for bit on the same kind of device: the integer
part is exact everywhere, and the floating-point part (a log, a square root, a cosine and a sine)
is computed by the same kernels. Between a CPU and a GPU the integer words are identical and the
normals agree to a few ulps (the transcendental functions are implemented differently).
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Sequence

import torch

__all__ = ["COUNTER_STREAM", "LOW_PRECISION", "counter_normals", "philox4x32", "philox_key"]

COUNTER_STREAM = 4
"""Stream number hashed into the Philox key (es_opt.noise uses 0–3 for its per-pair seeds)."""

MASK32 = 0xFFFFFFFF
PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # multipliers of Philox4x32 (Salmon et al. 2011, Table 2)
PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # Weyl key increments (golden ratio, √3 − 1)
LIMIT = 1 << 32


@functools.lru_cache(maxsize=1024)
def philox_key(seed: int, stream: int = COUNTER_STREAM) -> tuple[int, int]:
    """The 64-bit Philox key ``(k0, k1)`` (two 32-bit words) of a run's ``seed``.

    Example:
        >>> philox_key(0) == philox_key(0) != philox_key(1)
        True
    """
    digest = hashlib.blake2b(struct.pack("<2Q", int(seed), int(stream)), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value & MASK32, value >> 32


@functools.lru_cache(maxsize=64)
def _constants(key: tuple[int, int], rounds: int, device: torch.device) -> tuple:
    multipliers = torch.tensor([[PHILOX_M[1]], [PHILOX_M[0]]], dtype=torch.int64, device=device)
    keys = [
        torch.tensor(
            [[(key[0] + r * PHILOX_W[0]) & MASK32], [(key[1] + r * PHILOX_W[1]) & MASK32]],
            dtype=torch.int64,
            device=device,
        )
        for r in range(rounds)
    ]
    return multipliers, keys


def philox4x32(
    counter: Sequence[torch.Tensor | int], key: tuple[int, int], *, rounds: int = 10
) -> torch.Tensor:
    """Philox4x32-``rounds`` of the counters ``(c0, c1, c2, c3)`` under ``key = (k0, k1)``.

    One round maps ``(c0, c1, c2, c3)`` to::

        (hi(M1·c2) ⊕ c1 ⊕ k0,  lo(M1·c2),  hi(M0·c0) ⊕ c3 ⊕ k1,  lo(M0·c0))

    where ``hi``/``lo`` are the upper/lower 32 bits of the 64-bit product, and the key is bumped by
    the Weyl constants ``(W0, W1)`` between rounds (Salmon et al. 2011, §3.3). Words are held in
    int64 tensors (values in ``[0, 2³²)``): the product of two 32-bit words wraps modulo 2⁶⁴ and
    keeps all its bits, so the arithmetic is exact on every device.

    Args:
        counter: four int64 tensors (or ints) that broadcast together, each word in ``[0, 2³²)``.
        key: two 32-bit words.
        rounds: 10 is the published default (Random123's known answers are for 10).

    Returns:
        An int64 tensor ``[*broadcast_shape, 4]`` of 32-bit words ``(c0, c1, c2, c3)``.

    Example (Random123's known answer for a zero counter and key):
        >>> [hex(int(w)) for w in philox4x32([0, 0, 0, 0], (0, 0))]
        ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    words = [torch.as_tensor(c, dtype=torch.int64) for c in counter]
    device = next((w.device for w in words if w.dim()), words[0].device)
    words = torch.broadcast_tensors(*(w.to(device) for w in words))
    evens, odds = _rounds(
        torch.stack([words[2], words[0]]).reshape(2, -1).contiguous(),
        torch.stack([words[1], words[3]]).reshape(2, -1).contiguous(),
        key,
        rounds,
    )
    out = torch.stack([evens[0], odds[0], evens[1], odds[1]], dim=-1)
    return out.reshape(*words[0].shape, 4)


def _rounds(
    flipped: torch.Tensor,
    odds: torch.Tensor,
    key: tuple[int, int],
    rounds: int,
    work: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Philox rounds on ``flipped = (c2, c0)`` and ``odds = (c1, c3)``, each ``[2, N]``
    (not modified); returns ``(c0, c2)`` and ``(c1, c3)`` (views of ``work``, a ``[4, 2, ≥ N]``
    int64 scratch buffer, allocated when not given).

    Every operation writes into a buffer allocated once: on a CPU, allocating a fresh tensor per
    operation cost more than the arithmetic (page faults on every large allocation)."""
    multipliers, keys = _constants((int(key[0]), int(key[1])), rounds, flipped.device)
    n = flipped.shape[1]
    if work is None:
        work = torch.empty(4, 2, n, dtype=torch.int64, device=flipped.device)
    product, swapped = work[0, :, :n], work[1, :, :n]
    lows = (work[2, :, :n], work[3, :, :n])
    # the lane swap as two row copies between views made once (no indexing inside the loop)
    moves = ((swapped[0], product[1]), (swapped[1], product[0]))
    for r in range(rounds):
        torch.mul(flipped, multipliers, out=product)  # (M1·c2, M0·c0): hi and lo in 64 bits
        low = lows[r % 2]
        torch.bitwise_and(product, MASK32, out=low)
        torch.bitwise_right_shift(product, 32, out=product).bitwise_and_(MASK32)
        product.bitwise_xor_(odds).bitwise_xor_(keys[r])  # (hi1 ⊕ c1 ⊕ k0, hi0 ⊕ c3 ⊕ k1)
        odds = low  # (lo1, lo0)
        if r + 1 < rounds:
            for target, source in moves:
                target.copy_(source)
            flipped = swapped
    return product, odds


def _box_muller(
    evens: torch.Tensor, odds: torch.Tensor, dtype: torch.dtype, out: torch.Tensor
) -> None:
    """Words ``(c0, c2)`` and ``(c1, c3)`` (``[2, N]``) → normals written to ``out`` (``[N, 4]``),
    ordered ``(r0 cos θ0, r0 sin θ0, r1 cos θ1, r1 sin θ1)`` (see the module docstring).
    ``evens`` and ``odds`` are overwritten."""
    if dtype == torch.float64:
        radius = evens.add_(1).to(dtype).mul_(2.0**-32)
        angle = odds.to(dtype).mul_(2.0**-32 * 2.0 * torch.pi)
    else:
        radius = evens.bitwise_right_shift_(8).add_(1).to(torch.float32).mul_(2.0**-24)
        angle = odds.bitwise_right_shift_(8).to(torch.float32).mul_(2.0**-24 * 2.0 * torch.pi)
    radius.log_().mul_(-2.0).sqrt_()
    pairs = out.view(-1, 2, 2)  # [N, lane, (cos, sin)]
    trig = torch.empty_like(radius)
    torch.cos(angle, out=trig).mul_(radius)
    pairs[:, :, 0].copy_(trig.t())
    torch.sin(angle, out=trig).mul_(radius)
    pairs[:, :, 1].copy_(trig.t())


def _check_word(name: str, value: int) -> int:
    if not 0 <= int(value) < LIMIT:
        raise ValueError(f"{name} must be in [0, 2**32) for counter-based noise, got {value}")
    return int(value)


LOW_PRECISION = (torch.float16, torch.bfloat16)
"""Dtypes whose normals are drawn in float32 and rounded once to the dtype (as EGGROLL and the
2025 LLM-ES code draw their noise in float32 for bf16 models): a normal from 8 (bfloat16) or 11
(float16) bits of mantissa would need its own Box–Muller arithmetic, accurate to the dtype, for
no gain, while the float32 draw rounded once is the nearest low-precision value to the float32
normal, the same on every device kind that draws the float32 one."""

CHUNK_BLOCKS = 1 << 14
"""Philox blocks computed per pass: the int64 intermediates (a few × 256 KiB) stay in cache."""


def _layout(
    blocks: tuple[int, ...], tensor_ids: tuple[int, ...], rows: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The counter words of ``rows`` pair rows that do not depend on the pair: for every block,
    its index within its tensor and its tensor's id (cached for small layouts)."""
    if rows * sum(blocks) <= CHUNK_BLOCKS:
        return _small_layout(blocks, tensor_ids, rows, device)
    return _build_layout(blocks, tensor_ids, rows, device)


def _build_layout(blocks, tensor_ids, rows, device):
    block_word = torch.cat([torch.arange(b, dtype=torch.int64) for b in blocks])
    tensor_word = torch.repeat_interleave(
        torch.tensor(tensor_ids, dtype=torch.int64), torch.tensor(blocks, dtype=torch.int64)
    )
    return block_word.repeat(rows).to(device), tensor_word.repeat(rows).to(device)


_small_layout = functools.lru_cache(maxsize=64)(_build_layout)


def counter_normals(
    seed: int,
    generation: int,
    pairs: Sequence[int] | torch.Tensor,
    sizes: Sequence[int],
    tensor_ids: Sequence[int] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> list[torch.Tensor]:
    """Standard normals for every pair and tensor, from vectorised Philox calls.

    Args:
        seed: the run's seed (hashed into the key).
        generation: the ES generation (a counter word).
        pairs: the antithetic pair indices ``j`` (a counter word), any order, repeats allowed.
        sizes: how many numbers each tensor needs per pair.
        tensor_ids: the tensors' counter words (default ``0, 1, …``); a tensor keeps its numbers
            whichever other tensors are drawn with it.
        dtype: float32 or float64, or float16 / bfloat16: drawn in float32 and rounded once to
            the low-precision dtype (see :data:`LOW_PRECISION`).
        device: where the numbers are computed (and returned).

    Returns:
        One ``[len(pairs), sizes[t]]`` tensor per tensor ``t`` (views of one buffer); row ``r``
        depends only on ``(seed, generation, pairs[r], tensor_ids[t])``, and element ``i`` is
        word ``i % 4`` of block ``i // 4`` (so a longer draw extends a shorter one).

    Example:
        >>> a = counter_normals(0, 3, [5, 1], [6])[0]
        >>> torch.equal(a[1], counter_normals(0, 3, [1], [6])[0][0])
        True
    """
    if dtype in LOW_PRECISION:
        wide = counter_normals(
            seed, generation, pairs, sizes, tensor_ids, dtype=torch.float32, device=device
        )
        return [normals.to(dtype) for normals in wide]
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32, float64, float16 or bfloat16, got {dtype}")
    tensor_ids = list(range(len(sizes))) if tensor_ids is None else list(tensor_ids)
    if len(tensor_ids) != len(sizes):
        raise ValueError(f"tensor_ids has {len(tensor_ids)} entries for {len(sizes)} sizes")
    generation = _check_word("generation", generation)
    device = torch.device(device)
    pairs_t = torch.as_tensor(pairs, dtype=torch.int64).reshape(-1)
    if pairs_t.numel() and (int(pairs_t.min()) < 0 or int(pairs_t.max()) >= LIMIT):
        raise ValueError(f"pair indices must be in [0, 2**32), got {pairs_t.tolist()[:8]}")
    for tensor_id in tensor_ids:
        _check_word("tensor id", tensor_id)
    blocks = [-(-int(size) // 4) for size in sizes]
    _check_word("blocks per tensor", max(blocks, default=0))
    total, n_pairs = sum(blocks), pairs_t.numel()
    buffer = torch.empty(n_pairs, 4 * total, dtype=dtype, device=device)
    if total and n_pairs:
        key = philox_key(int(seed))
        work = torch.empty(
            4, 2, min(CHUNK_BLOCKS, total * n_pairs), dtype=torch.int64, device=device
        )
        if total <= CHUNK_BLOCKS:  # several whole pair rows per pass
            rows = min(n_pairs, max(1, CHUNK_BLOCKS // total))
            n = rows * total
            block_word, tensor_word = _layout(tuple(blocks), tuple(tensor_ids), rows, device)
            odds = torch.stack([tensor_word, torch.full_like(tensor_word, generation)])
            flipped = torch.empty(2, n, dtype=torch.int64, device=device)
            flipped[1] = block_word
            pairs_t = pairs_t.to(device)
            for start in range(0, n_pairs, rows):
                count = min(rows, n_pairs - start) * total
                flipped[0, :count].view(-1, total).copy_(
                    pairs_t[start : start + count // total].unsqueeze(1).expand(-1, total)
                )
                out = buffer[start : start + count // total].view(-1, 4)
                words = _rounds(flipped[:, :count], odds[:, :count], key, 10, work)
                _box_muller(*words, dtype, out)
        else:  # one pair row in several passes
            block_word, tensor_word = _layout(tuple(blocks), tuple(tensor_ids), 1, device)
            for row, pair in enumerate(pairs_t.tolist()):
                for start in range(0, total, CHUNK_BLOCKS):
                    stop = min(total, start + CHUNK_BLOCKS)
                    c0, c1 = block_word[start:stop], tensor_word[start:stop]
                    flipped = torch.stack([torch.full_like(c0, pair), c0])
                    odds = torch.stack([c1, torch.full_like(c1, generation)])
                    out = buffer[row, 4 * start : 4 * stop].view(-1, 4)
                    _box_muller(*_rounds(flipped, odds, key, 10, work), dtype, out)
    out, offset = [], 0
    for size, n_blocks in zip(sizes, blocks, strict=True):
        out.append(buffer[:, 4 * offset : 4 * offset + int(size)])
        offset += n_blocks
    return out
