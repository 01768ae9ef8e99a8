"""Population-batched forward and generation equal member-by-member with materialised weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from es_opt.text import (
    DenseNoise,
    LowRankNoise,
    UncoveredModuleError,
    batched_members,
    generate,
    population_noise,
)

transformers = pytest.importorskip("transformers")

N_MEMBERS = 4


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_gpt2(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # transformers initialises weights from the global generator
    config = transformers.GPT2Config(
        n_layer=2,
        n_embd=32,
        n_head=2,
        vocab_size=40,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=True,
    )
    return transformers.GPT2LMHeadModel(config).eval()


def materialised(net: nn.Module, noise: dict, member: int) -> nn.Module:
    """A copy of ``net`` with member ``member``'s weights written in."""
    copy_ = copy.deepcopy(net)
    params = dict(copy_.named_parameters())
    with torch.no_grad():
        for name, value in noise.items():
            params[name].add_(value.delta(member).reshape(params[name].shape))
    return copy_


@pytest.fixture(scope="module")
def gpt2_and_noise():
    net = tiny_gpt2()
    params = dict(net.named_parameters())
    noise = population_noise(
        params, seed=3, generation=1, indices=range(N_MEMBERS), sigma=0.05, rank=2
    )
    return net, noise


def test_gpt2_covers_conv1d_linear_embedding_layernorm(gpt2_and_noise):
    net, noise = gpt2_and_noise
    kinds = {type(m).__name__ for m in net.modules() if any(True for _ in m.parameters(False))}
    assert kinds == {"Conv1D", "Embedding", "LayerNorm", "Linear"}
    assert net.lm_head.weight is net.transformer.wte.weight  # tied: one noise, used twice
    assert isinstance(noise["transformer.h.0.attn.c_attn.weight"], LowRankNoise)
    assert isinstance(noise["transformer.h.0.ln_1.bias"], DenseNoise)


def test_batched_logits_equal_materialised_members(gpt2_and_noise):
    net, noise = gpt2_and_noise
    ids = torch.randint(0, 40, (3, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), batched_members(net, noise, N_MEMBERS):
        rows = ids.repeat(N_MEMBERS, 1)
        positions = torch.arange(7).expand_as(rows)  # per row: the batch is split by member
        batched = net(rows, position_ids=positions).logits.view(N_MEMBERS, 3, 7, 40)
    moved = 0.0
    for member in range(N_MEMBERS):
        with torch.no_grad():
            alone = materialised(net, noise, member)(ids).logits
            moved = max(moved, float((alone - net(ids).logits).abs().max()))
        torch.testing.assert_close(batched[member], alone, atol=2e-5, rtol=1e-5)
    assert moved > 1e-2  # the members really differ from the centre
    assert all(not hasattr(m, "forward") or "forward" not in vars(m) for m in net.modules())


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_batched_generation_equals_member_by_member(gpt2_and_noise, temperature):
    net, noise = gpt2_and_noise
    prompts = [[5, 6, 7], [9], [1, 2, 3, 4, 5]]  # different lengths: left padding
    kwargs = dict(max_new_tokens=6, eos_token_id=0, pad_token_id=39, temperature=temperature)
    with batched_members(net, noise, N_MEMBERS):
        batched = generate(net, prompts, n_members=N_MEMBERS, seed=11, **kwargs)
    for member in range(N_MEMBERS):
        alone = generate(materialised(net, noise, member), prompts, seed=11, **kwargs)
        assert torch.equal(batched[member], alone[0])
    assert len({tuple(batched[m].flatten().tolist()) for m in range(N_MEMBERS)}) > 1


def test_left_padding_does_not_change_a_prompts_completion(gpt2_and_noise):
    net, _ = gpt2_and_noise
    together = generate(net, [[5, 6, 7], [1, 2, 3, 4, 5]], max_new_tokens=5)
    alone = generate(net, [[5, 6, 7]], max_new_tokens=5)
    assert torch.equal(together[0, 0], alone[0, 0])


def test_sampled_tokens_follow_the_seed_not_the_batch(gpt2_and_noise):
    net, _ = gpt2_and_noise
    # prompt p draws from its own stream, derive_seed(seed, stream, p): others do not shift it
    a = generate(net, [[5], [6]], max_new_tokens=8, temperature=1.0, seed=1)
    b = generate(net, [[5]], max_new_tokens=8, temperature=1.0, seed=1)
    c = generate(net, [[5]], max_new_tokens=8, temperature=1.0, seed=2)
    assert torch.equal(a[0, 0], b[0, 0]) and not torch.equal(b, c)
    assert not torch.equal(generate(net, [[5]], max_new_tokens=8)[0, 0], c[0, 0])


class PlainLM(nn.Module):
    """A plain LM: embedding, one Linear with a LayerNorm, an output Linear."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(12, 8)
        self.norm = nn.LayerNorm(8)
        self.hidden = nn.Linear(8, 8)
        self.out = nn.Linear(8, 12)

    def forward(self, ids):
        h = self.embed(ids).cumsum(1)
        return self.out(torch.tanh(self.hidden(self.norm(h))))


def test_plain_module_batched_generation_equals_member_by_member():
    torch.manual_seed(0)
    net = PlainLM()
    noise = population_noise(
        dict(net.named_parameters()), seed=0, generation=0, indices=range(6), sigma=0.5, rank=1
    )
    prompts = [[3, 4], [5], [6, 7]]
    with batched_members(net, noise, 6):
        batched = generate(net, prompts, max_new_tokens=5, n_members=6)
    for member in range(6):
        alone = generate(materialised(net, noise, member), prompts, max_new_tokens=5)
        assert torch.equal(batched[member], alone[0])
    assert len({tuple(batched[m].flatten().tolist()) for m in range(6)}) > 1


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x * self.gain


def test_an_uncovered_module_is_named():
    net = nn.Sequential(nn.Linear(3, 3), Scaled())
    noise = population_noise(
        dict(net.named_parameters()), seed=0, generation=0, indices=range(2), sigma=0.1
    )
    with pytest.raises(UncoveredModuleError, match=r"module '1' \(Scaled\) holds perturbed"):
        with batched_members(net, noise, 2):
            pass
    assert "forward" not in vars(net[0])  # the Linear wrapped before the error is unwrapped


def test_rows_must_split_between_members():
    net = nn.Linear(3, 2)
    noise = population_noise(
        dict(net.named_parameters()), seed=0, generation=0, indices=range(2), sigma=0.1
    )
    with batched_members(net, noise, 2), pytest.raises(ValueError, match="3 rows .* 2 members"):
        net(torch.ones(3, 3))
    with pytest.raises(ValueError, match="for 2 members, not 3"):
        with batched_members(net, noise, 3):
            pass
