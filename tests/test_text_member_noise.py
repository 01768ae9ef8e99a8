"""Every member the text evaluators apply is the core's member (``es_opt.Population``) of the
same ``(seed, generation, index)``, bit for bit: population-batched and in place, dense and
low-rank, in Linear, GPT-2 Conv1D, Embedding and LayerNorm; and the batched Linear / Conv1D is
``es_opt.perturbations.low_rank_linear`` itself."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from es_opt import ESOptimizer, Population
from es_opt.distributions.cma import CMAES, cma_initial_state
from es_opt.distributions.sep_cma import SepCMAES, sep_cma_initial_state
from es_opt.perturbations import Dense, LowRank, low_rank_linear
from es_opt.text import (
    LowRankNoise,
    Prompts,
    TextReward,
    batched_members,
    member_deltas,
    member_deltas_of,
    member_values_of,
    perturbed_in_place,
    population_members,
    population_noise,
)
from tests.text_fixture import TOKENIZER, digit_reward, plain_lm
from tests.text_fixture import tiny_gpt2 as gpt2

pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLES = Prompts(["12+34=", "50+05=", "99+01="])
SHUFFLED = [5, 0, 3, 2, 1, 4]  # any order, pairs split


def tiny_gpt2() -> nn.Module:
    return gpt2(n_layer=1, n_embd=16, n_positions=16)


def asked(net: nn.Module, family, distribution: str = "openai") -> Population:
    """Generation 1 of a run (after one step: PGPE's σ differs between parameters)."""
    objective = TextReward(TOKENIZER, digit_reward, max_new_tokens=2)
    es = ESOptimizer(
        net, torch.optim.SGD(net.parameters(), lr=1e-2), objective_fn=objective, sigma=0.2,
        n_samples=6, seed=4, perturbation=family, distribution=distribution,
    )  # fmt: skip
    es.gradient_step(SAMPLES)
    return es.ask()


def members(population: Population, index: int) -> dict[str, torch.Tensor]:
    return population.unflatten(population.parameters(index))


CASES = {
    "gpt2_lowrank1": (tiny_gpt2, LowRank(rank=1), "openai"),
    "gpt2_lowrank2": (tiny_gpt2, LowRank(rank=2), "openai"),
    "gpt2_dense_philox": (tiny_gpt2, Dense(noise="philox"), "openai"),
    "gpt2_dense_pgpe": (tiny_gpt2, Dense(noise="philox"), "pgpe"),
    "plain_lowrank2": (plain_lm, LowRank(rank=2), "openai"),
    "plain_dense_snes": (plain_lm, Dense(noise="philox"), "snes"),
}


@pytest.mark.parametrize("case", sorted([*CASES, "gpt2_dense_mt19937"]))
def test_batched_members_are_the_population_members(case):
    make, family, distribution = CASES.get(case, (tiny_gpt2, Dense(), "openai"))
    population = asked(make(), family, distribution)
    noise = population_members(population, SHUFFLED)
    center = population.unflatten(population.center)
    for row, index in enumerate(SHUFFLED):
        member = members(population, index)
        for name in population.names:
            assert torch.equal(center[name] + noise[name].delta(row), member[name]), name
    if isinstance(family, LowRank):  # the factors are the family's own numbers
        draws = population.noise([population.draw_index(i) for i in SHUFFLED])
        for name, drawn, shape in zip(population.names, draws, population.shapes, strict=True):
            if isinstance(noise[name], LowRankNoise):
                a, b = family.factors(drawn, shape)
                assert torch.equal(noise[name].a, a) and torch.equal(noise[name].b, b)
                signs = torch.tensor([population.sign(i) * 0.2 for i in SHUFFLED])
                assert torch.equal(noise[name].scale, signs)


@pytest.mark.parametrize("family", [LowRank(rank=1), LowRank(rank=2), Dense(noise="philox")])
def test_batched_gpt2_modules_compute_with_the_population_members(family):
    net = tiny_gpt2()
    population = asked(net, family)
    noise = population_members(population, range(6))
    block = net.transformer.h[0]
    ids = torch.randint(
        0, TOKENIZER.vocab_size, (12, 5), generator=torch.Generator().manual_seed(1)
    )
    x = torch.randn(12, 5, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), batched_members(net, noise, 6):
        embedded = net.transformer.wte(ids).view(6, 2, 5, 16)
        normed = block.ln_1(x).view(6, 2, 5, 16)
        attn = block.attn.c_attn(x).view(6, 10, 48)
        logits = net.lm_head(x).view(6, 10, -1)
    with torch.no_grad():
        for m in range(6):
            member = members(population, m)
            rows = slice(2 * m, 2 * m + 2)
            wte = member["transformer.wte.weight"]  # Embedding, tied to lm_head (a Linear)
            if isinstance(family, LowRank) and family.rank > 1:
                # row i of A Bᵀ is a length-r dot product, which BLAS may sum in another order
                # for the looked-up rows than for the whole matrix: equal up to rounding
                torch.testing.assert_close(embedded[m], F.embedding(ids[rows], wte))
            else:  # one product per entry (rank 1) or no product (dense): the member's bits
                assert torch.equal(embedded[m], F.embedding(ids[rows], wte))
            w, b = member["transformer.h.0.ln_1.weight"], member["transformer.h.0.ln_1.bias"]
            expected = F.layer_norm(x[rows], (16,), None, None, block.ln_1.eps) * w + b
            assert torch.equal(normed[m], expected)
            c_attn = x[rows] @ member["transformer.h.0.attn.c_attn.weight"]
            c_attn = c_attn + member["transformer.h.0.attn.c_attn.bias"]
            torch.testing.assert_close(attn[m], c_attn.view(10, 48), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(
                logits[m], x[rows].reshape(10, 16) @ wte.T, atol=1e-5, rtol=0
            )
    if isinstance(family, LowRank):  # the shared-base forward of StackedModel, bit for bit
        weight, bias = block.attn.c_attn.weight, block.attn.c_attn.bias
        c, d = (
            noise["transformer.h.0.attn.c_attn.weight"],
            noise["transformer.h.0.attn.c_attn.bias"],
        )
        with torch.no_grad():
            core = low_rank_linear(x.view(6, 10, 16), weight.T, bias, c.b, c.a, c.scale, d.eps)
            lm = noise["transformer.wte.weight"]
            head = low_rank_linear(
                x.view(6, 10, 16), net.lm_head.weight, None, lm.a, lm.b, lm.scale
            )
        assert torch.equal(attn, core) and torch.equal(logits, head)


def _seen_in_forward(net: nn.Module) -> tuple[list[tuple[str, str, torch.Tensor]], list]:
    """``(module type, parameter name, value)`` for every parameter as its module computes with
    it (hooks that run after ``perturbed_in_place``'s own; a tied parameter once per module)."""
    name_of = {id(p): n for n, p in net.named_parameters()}
    seen: list[tuple[str, str, torch.Tensor]] = []

    def record(module, args):
        for p in module.parameters(recurse=False):
            seen.append((type(module).__name__, name_of[id(p)], p.detach().clone()))

    handles = [m.register_forward_pre_hook(record) for m in net.modules()]
    return seen, handles


IN_PLACE = ["gpt2_lowrank2", "gpt2_dense_philox", "gpt2_dense_pgpe", "plain_lowrank2"]


@pytest.mark.parametrize("case", IN_PLACE + ["gpt2_lowrank2_bf16", "gpt2_dense_philox_bf16"])
def test_in_place_members_are_the_population_members(case):
    """What TextReward(evaluation="in_place") runs: each module computes with the member's
    values (bfloat16: float32 master weights, the member rounded once, as Population.loaded)."""
    make, family, distribution = CASES[case.removesuffix("_bf16")]
    low = case.endswith("_bf16")
    net = make().to(torch.bfloat16) if low else make()
    population = asked(net, family, distribution)
    assert population.center.dtype == torch.float32  # master weights of the bfloat16 net
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    ids = torch.randint(0, TOKENIZER.vocab_size, (2, 5), generator=torch.Generator().manual_seed(3))
    ways = [(member_values_of, True)] + ([] if low else [(member_deltas_of, False)])
    for index, (way, values) in itertools.product((3, 4), ways):
        member = members(population, index)
        with torch.no_grad(), perturbed_in_place(net, way(population, index), values=values):
            seen, handles = _seen_in_forward(net)
            net(ids)  # every module rebuilds its member at every call (one per token)
            out = net(ids)
            for handle in handles:
                handle.remove()
        assert {name for _, name, _ in seen} == set(population.names)
        for kind, name, value in seen:
            assert torch.equal(value, member[name].to(value.dtype)), (kind, name)
        loaded = copy.deepcopy(net)
        with torch.no_grad(), population.loaded(loaded, index):
            reference = loaded(ids)
        assert torch.equal(getattr(out, "logits", out), getattr(reference, "logits", reference))
        assert all(torch.equal(p, before[n]) for n, p in net.named_parameters())
    kinds = {kind for kind, _, _ in seen}
    expected = {"Embedding", "LayerNorm", "Linear"} | ({"Conv1D"} if "gpt2" in case else set())
    assert kinds == expected


def _mapped_population(distribution, state) -> Population:
    net = plain_lm()
    params = dict(net.named_parameters())
    center = torch.cat([p.detach().reshape(-1) for p in params.values()])
    return Population(
        generation=2, seed=5, sigma=0.3, n_evals=5, names=tuple(params),
        shapes=tuple(p.shape for p in params.values()), center=center,
        family=Dense(noise="philox"), distribution=distribution, state=state,
    )  # fmt: skip


def test_distributions_that_map_the_noise_are_evaluated_batched():
    dim = sum(p.numel() for p in plain_lm().parameters())
    gen = torch.Generator().manual_seed(0)
    full = cma_initial_state(dim, 0.3)
    full["B"] = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))[0]
    full["D"] = torch.rand(dim, generator=gen, dtype=torch.float64) + 0.5
    separable = sep_cma_initial_state(dim, 0.3)
    separable["D"] = torch.rand(dim, generator=gen, dtype=torch.float64) + 0.5
    for population in (
        _mapped_population(CMAES(), full),
        _mapped_population(SepCMAES(), separable),
    ):
        assert not population.antithetic and population.noise_map is not None
        noise = population_members(population, [4, 1, 2])
        center = population.unflatten(population.center)
        # y = A z for a batch of draws is one matrix product, whose bits may depend on how many
        # rows it has: the reference is the core's members of the same batch
        batch = population.unflatten(population.stacked_parameters([4, 1, 2]))
        for row in range(3):
            for name in population.names:
                assert torch.equal(center[name] + noise[name].delta(row), batch[name][row])
        with pytest.raises(ValueError, match="maps the noise of all tensors together"):
            member_deltas_of(population, 0)


def test_seed_only_members_are_a_population_of_the_parameters():
    net = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8))
    params = dict(net.named_parameters())
    center = torch.cat([p.detach().reshape(-1) for p in params.values()])
    shapes = tuple(p.shape for p in params.values())
    for rank, family in ((2, LowRank(rank=2)), (None, Dense(noise="philox"))):
        population = Population(2, 3, 0.1, 7, tuple(params), shapes, center, family=family)
        noise = population_noise(params, seed=3, generation=2, indices=[6, 3], sigma=0.1, rank=rank)
        for row, index in enumerate([6, 3]):
            member = members(population, index)
            deltas = member_deltas(params, seed=3, generation=2, index=index, sigma=0.1, rank=rank)
            for name, p in params.items():
                assert torch.equal(p + noise[name].delta(row), member[name])
                assert torch.equal(p + deltas[name](), member[name])


def test_same_shaped_layers_get_independent_noise():
    params = dict(
        nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)).named_parameters()
    )
    for rank in (None, 1, 4):
        noise = population_noise(params, seed=0, generation=0, indices=[0], sigma=1.0, rank=rank)
        deltas = [noise[f"{i}.weight"].delta(0).flatten() for i in range(3)]
        biases = [noise[f"{i}.bias"].delta(0) for i in range(3)]
        for i in range(3):
            for j in range(i + 1, 3):
                assert not torch.equal(biases[i], biases[j])
                # independent, not merely shifted: the correlation of two 64-element draws
                assert abs(float(torch.corrcoef(torch.stack([deltas[i], deltas[j]]))[0, 1])) < 0.5


def test_pairs_are_antithetic_and_draws_do_not_depend_on_other_members():
    params = {"w": torch.zeros(6, 5), "b": torch.zeros(6)}
    noise = population_noise(params, seed=3, generation=2, indices=[4, 5, 6], sigma=0.1, rank=2)
    again = population_noise(params, seed=3, generation=2, indices=[6], sigma=0.1, rank=2)
    w = noise["w"]
    assert torch.equal(w.delta(0), -w.delta(1))
    assert torch.equal(w.delta(2), again["w"].delta(0))
    other = population_noise(params, seed=3, generation=3, indices=[4], sigma=0.1, rank=2)
    assert not torch.equal(w.delta(0), other["w"].delta(0))
    # rank-r noise E = A Bᵀ/√r has unit variance per element, like dense noise
    big = population_noise(
        {"w": torch.zeros(200, 300)}, seed=0, generation=0, indices=[0], sigma=1.0, rank=4
    )
    assert abs(float(big["w"].delta(0).var()) - 1.0) < 0.05


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="params must name at least one parameter"):
        population_noise({}, seed=0, generation=0, indices=[0], sigma=0.1)
    params = {"w": torch.zeros(2, 2)}
    with pytest.raises(IndexError, match="evaluation index -1 out of range"):
        member_deltas(params, seed=0, generation=0, index=-1, sigma=0.1)
    population = Population(0, 0, 0.1, 4, ("w",), (torch.Size([2, 2]),), torch.zeros(4))
    with pytest.raises(IndexError, match="evaluation index 4 out of range for 4"):
        population_members(population, [0, 4])
    with pytest.raises(ValueError, match="original MT19937 scheme cannot"):
        member_deltas_of(population, 0)
    conv = {"w": torch.zeros(2, 2, 3)}
    with pytest.raises(ValueError, match=r"'w' of shape \(2, 2, 3\).*evaluate in place"):
        population_noise(conv, seed=0, generation=0, indices=[0], sigma=0.1, rank=1)
