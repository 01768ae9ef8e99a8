"""Counter-based noise (es_opt/perturbations/counter_noise.py)."""

import pytest
import torch

from es_opt.perturbations.counter_noise import (
    CHUNK_BLOCKS,
    counter_normals,
    philox4x32,
    philox_key,
)

# Random123's published known answers for Philox4x32-10 (Salmon et al. 2011, kat_vectors)
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("counter", "key", "expected"), PHILOX_KAT)
def test_philox_known_answers(counter, key, expected):
    assert tuple(int(w) for w in philox4x32(counter, key)) == expected


def test_philox_vectorised_rows_equal_single_blocks():
    counters = torch.tensor([[0, 1, 2, 3], [0xFFFFFFFF, 7, 0, 9], [5, 5, 5, 5]])
    batch = philox4x32(tuple(counters.t()), (123, 456))
    for row, counter in zip(batch, counters.tolist(), strict=True):
        assert row.tolist() == philox4x32(counter, (123, 456)).tolist()


def test_same_numbers_every_call_and_in_any_order():
    sizes, ids = [7, 13, 1], [4, 0, 9]
    drawn = counter_normals(3, 11, [3, 1, 2], sizes, ids)
    again = counter_normals(3, 11, [3, 1, 2], sizes, ids)
    for a, b in zip(drawn, again, strict=True):
        assert torch.equal(a, b)
    for row, pair in enumerate([3, 1, 2]):
        single = counter_normals(3, 11, [pair], sizes, ids)
        for t in range(3):
            assert torch.equal(drawn[t][row], single[t][0])


def test_a_tensor_keeps_its_numbers_whatever_is_drawn_with_it():
    alone = counter_normals(0, 2, [5], [10], [7])[0]
    together = counter_normals(0, 2, [5], [3, 10, 4], [1, 7, 2])[1]
    longer = counter_normals(0, 2, [5], [25], [7])[0]
    assert torch.equal(alone, together)
    assert torch.equal(alone, longer[:, :10])  # element i is word i % 4 of block i // 4


def test_chunked_and_unchunked_paths_agree():
    # more blocks than one pass holds: the per-row path; fewer: the whole-rows path
    big = CHUNK_BLOCKS * 4 + 9
    rows = counter_normals(1, 1, [0, 6], [big, 5])
    for r, pair in enumerate([0, 6]):
        alone = counter_normals(1, 1, [pair], [big, 5])
        assert torch.equal(rows[0][r], alone[0][0])
        assert torch.equal(rows[1][r], alone[1][0])
    small = counter_normals(1, 1, range(CHUNK_BLOCKS // 2), [9])[0]  # several passes of rows
    assert torch.equal(small[-1], counter_normals(1, 1, [CHUNK_BLOCKS // 2 - 1], [9])[0][0])


@pytest.mark.parametrize(
    "other",
    [(1, 5, 3, 0), (0, 6, 3, 0), (0, 5, 4, 0), (0, 5, 3, 1)],
    ids=["seed", "generation", "pair", "tensor"],
)
def test_different_seed_generation_pair_or_tensor_give_different_numbers(other):
    base = counter_normals(0, 5, [3], [64], [0])[0]
    seed, generation, pair, tensor = other
    moved = counter_normals(seed, generation, [pair], [64], [tensor])[0]
    assert not torch.equal(base, moved)
    # independent draws: the correlation of 64 pairs of normals is small
    assert abs(float(torch.corrcoef(torch.cat([base, moved]))[0, 1])) < 0.5


def test_standard_normal_moments_and_no_correlation_between_pairs():
    rows = counter_normals(0, 0, range(200), [500])[0]
    # 100k samples: the standard error of the mean is 0.0032 and of the std 0.0022
    assert abs(float(rows.mean())) < 0.015
    assert abs(float(rows.std()) - 1.0) < 0.01
    assert abs(float((rows**4).mean()) - 3.0) < 0.1  # Gaussian kurtosis
    corr = torch.corrcoef(rows[:50]) - torch.eye(50)
    assert float(corr.abs().max()) < 0.25  # 1225 correlations of 500 samples: max ≈ 0.16


def test_float64_matches_float32_to_float32_precision():
    a = counter_normals(9, 1, [0, 1], [1000], dtype=torch.float64)[0]
    b = counter_normals(9, 1, [0, 1], [1000], dtype=torch.float32)[0]
    assert a.dtype == torch.float64
    # the float32 uniforms keep 24 of the 32 bits: the normals agree to ~1e-6 relative
    assert torch.allclose(a.float(), b, rtol=1e-4, atol=1e-4)


def test_keys_are_64_bit_and_distinct():
    keys = {philox_key(seed) for seed in range(1000)}
    assert len(keys) == 1000
    assert all(0 <= k0 < 2**32 and 0 <= k1 < 2**32 for k0, k1 in keys)


def test_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    counter_normals(0, 0, [0, 1], [100])
    assert torch.equal(torch.rand(3), expected)


def test_errors_name_the_argument():
    with pytest.raises(
        ValueError, match=r"generation must be in \[0, 2\*\*32\) for counter-based noise, got -1"
    ):
        counter_normals(0, -1, [0], [4])
    with pytest.raises(ValueError, match="pair indices must be in"):
        counter_normals(0, 0, [2**32], [4])
    with pytest.raises(ValueError, match="tensor_ids has 1 entries for 2 sizes"):
        counter_normals(0, 0, [0], [4, 4], [0])
    with pytest.raises(TypeError, match="dtype must be torch.float32, float64, float16 or bf"):
        counter_normals(0, 0, [0], [4], dtype=torch.int32)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_normals_are_the_float32_normals_rounded_once(dtype):
    wide = counter_normals(5, 1, [3, 0], [7, 0, 33], [2, 0, 9])
    low = counter_normals(5, 1, [3, 0], [7, 0, 33], [2, 0, 9], dtype=dtype)
    for w, lo in zip(wide, low, strict=True):
        assert lo.dtype == dtype and torch.equal(lo, w.to(dtype))


def test_empty_requests():
    assert counter_normals(0, 0, [], [4])[0].shape == (0, 4)
    assert counter_normals(0, 0, [1], [0])[0].shape == (1, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_words_equal_cpu_words_and_normals_agree():
    counter = (torch.arange(1000), torch.ones(1000, dtype=torch.int64), 5, 7)
    cpu = philox4x32(counter, (1, 2))
    gpu = philox4x32(tuple(c.cuda() if isinstance(c, torch.Tensor) else c for c in counter), (1, 2))
    assert torch.equal(cpu, gpu.cpu())
    a = counter_normals(0, 3, [1, 2], [5000])[0]
    b = counter_normals(0, 3, [1, 2], [5000], device="cuda")[0]
    assert b.device.type == "cuda"
    assert torch.allclose(a, b.cpu(), rtol=1e-5, atol=1e-5)
