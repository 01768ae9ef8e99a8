"""Every kind of parameter a torch model has trains, or is refused at construction.

0-d, empty, non-contiguous, tied (shared) and partly frozen parameters, in float32, float64,
float16 and bfloat16, on every perturbation family, noise scheme and search distribution; a
property-based test over random module trees of them (a step changes what it should, the process
pool gives the serial bits, a run resumes exactly); and in-place text evaluation restoring bf16
weights bit for bit with low-rank noise.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from es_opt import ESOptimizer, Objective
from es_opt.perturbations import Dense, LowRank
from es_opt.text import CharTokenizer, Prompts, TextReward


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is many times faster than several on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


KINDS = ("scalar", "vector", "empty", "matrix", "conv", "noncontiguous", "tied", "frozen")


class Distance(Objective):
    """−Σ (θ − 0.3)² over every parameter, frozen ones included (module level: picklable)."""

    def __call__(self, model, samples):
        return -float(
            sum((p.detach().double() - 0.3).square().sum() for p in model.net.parameters())
        )


def build(kinds: list[str], nested: list[bool], seed: int, dtype: torch.dtype) -> nn.Module:
    """A module tree with one part per kind; part ``i`` hangs from the root or from a child
    container (``nested[i]``). Values come from an explicit generator."""
    gen = torch.Generator().manual_seed(seed)
    root, box = nn.Module(), nn.Module()
    root.base = nn.Parameter(torch.randn(2, generator=gen))
    last: nn.Parameter = root.base
    for i, (kind, inside) in enumerate(zip(kinds, nested, strict=True)):
        owner, name = (box if inside else root), f"p{i}"
        if kind == "scalar":
            part = nn.Parameter(torch.randn((), generator=gen))
        elif kind == "vector":
            part = nn.Parameter(torch.randn(1 + i % 3, generator=gen))
        elif kind == "empty":
            part = nn.Parameter(torch.zeros(0, 3) if i % 2 else torch.zeros(0))
        elif kind == "noncontiguous":
            part = nn.Parameter(torch.randn(3, 2, generator=gen).t())
            assert not part.is_contiguous()
        elif kind == "tied":
            part = last  # the same Parameter object under a second name
        else:
            part = nn.Conv2d(1, 2, 2) if kind == "conv" else nn.Linear(2 + i % 2, 3)
            with torch.no_grad():
                for p in part.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen))
            if kind == "frozen":
                part.weight.requires_grad_(False)  # partly frozen: the bias still trains
        if isinstance(part, nn.Module):
            owner.add_module(name, part)
            last = part.bias
        else:
            owner.register_parameter(name, part)
            last = part
    root.box = box
    return root.to(dtype)


def trainable(net: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}


def frozen(net: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in net.named_parameters() if not p.requires_grad}


def make(net: nn.Module, family, distribution: str, **options) -> ESOptimizer:
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=0.05)  # a first step of ~lr: visible even in bf16
    return ESOptimizer(
        net,
        optimizer,
        objective_fn=Distance(),
        sigma=0.1,
        n_samples=4,
        seed=7,
        perturbation=family,
        distribution=distribution,
        **options,
    )


def assert_step_changes_what_it_should(net: nn.Module, es: ESOptimizer) -> None:
    before, fixed = trainable(net), frozen(net)
    es.gradient_step()
    after = trainable(net)
    for name, value in before.items():
        if value.numel():
            assert not torch.equal(after[name], value), f"{name} did not move"
    for name, value in frozen(net).items():
        assert torch.equal(value, fixed[name]), f"frozen {name} moved"


FAMILIES = [Dense(), Dense(noise="philox"), LowRank(rank=1), LowRank(rank=2)]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "family, distribution",
    [(f, "openai") for f in FAMILIES] + [(f, d) for f in FAMILIES[:2] for d in ("pgpe", "snes")],
    ids=str,
)
def test_every_kind_trains_on_every_family_noise_and_distribution(dtype, family, distribution):
    net = build(list(KINDS), [i % 2 == 1 for i in range(len(KINDS))], seed=0, dtype=dtype)
    es = make(net, family, distribution)
    assert_step_changes_what_it_should(net, es)
    assert net.p6 is net.box.p5 and not net.p6.is_contiguous()  # still tied, still strided


def test_what_cannot_train_is_refused_at_construction():
    net = nn.Linear(2, 2)
    net.weight = nn.Parameter(torch.zeros(2, 2, dtype=torch.complex64))
    with pytest.raises(TypeError, match="parameter 'weight' is torch.complex64: ES perturbs real"):
        ESOptimizer(net, objective_fn=Distance(), n_samples=4)
    mixed = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).to(torch.bfloat16))
    with pytest.raises(ValueError, match="all trainable parameters must share one dtype"):
        ESOptimizer(mixed, objective_fn=Distance(), n_samples=4)


trees = st.tuples(
    st.lists(st.sampled_from(KINDS), min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=6, max_size=6),
    st.integers(0, 2**16),
    st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
    st.sampled_from(
        [(f, "openai") for f in FAMILIES] + [(Dense(), "pgpe"), (Dense(noise="philox"), "snes")]
    ),
)


@pytest.mark.slow
@given(trees)
@settings(max_examples=10, deadline=None, database=None)
def test_random_trees_step_match_the_pool_and_resume_exactly(tree):
    kinds, nested, seed, dtype, (family, distribution) = tree
    net = build(kinds, nested[: len(kinds)], seed, dtype)
    start = copy.deepcopy(net)
    pool_net, resumed_net = copy.deepcopy(net), copy.deepcopy(net)
    es = make(net, family, distribution)
    assert_step_changes_what_it_should(net, es)
    es.gradient_step()
    buffer = io.BytesIO()
    torch.save({"net": net.state_dict(), "es": es.state_dict()}, buffer)
    for _ in range(2):
        es.gradient_step()

    with make(pool_net, family, distribution, backend="multiprocess", n_workers=2) as pool:
        for _ in range(4):
            pool.gradient_step()
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = make(resumed_net, family, distribution)
    resumed_net.load_state_dict(saved["net"])
    resumed.load_state_dict(saved["es"])
    for _ in range(2):
        resumed.gradient_step()
    final = trainable(net)
    assert final.keys() == trainable(start).keys()
    for other in (pool_net, resumed_net):
        for name, value in trainable(other).items():
            assert torch.equal(value, final[name]), name


class PlainLM(nn.Module):
    """A plain causal LM: logits from an embedding and two linear layers (no cache)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.hidden = nn.Linear(8, 8)
        self.out = nn.Linear(8, vocab)

    def forward(self, ids):
        return self.out(torch.tanh(self.hidden(self.embed(ids))))


def digits(prompt: str, completion: str) -> float:
    return float(sum(c.isdigit() for c in completion))


@pytest.mark.slow
def test_in_place_evaluation_restores_bf16_weights_over_a_thousand_low_rank_members():
    tokenizer = CharTokenizer("0123456789+=")
    torch.manual_seed(0)
    net = PlainLM(tokenizer.vocab_size).to(torch.bfloat16)
    start = {n: p.detach().clone() for n, p in net.named_parameters()}
    objective = TextReward(tokenizer, digits, max_new_tokens=2, evaluation="in_place")
    es = ESOptimizer(
        net,
        torch.optim.SGD(net.parameters(), lr=0.0),  # new members every generation, same centre
        objective_fn=objective,
        sigma=0.05,
        n_samples=40,
        seed=1,
        perturbation="lowrank",
    )
    fitness = set()
    for _ in range(25):  # 25 generations of 40 members: 1,000 perturb/restore cycles
        fitness.update(es.gradient_step(Prompts(["1+2=", "3+4="])).fitness[:, 0].tolist())
        for name, param in net.named_parameters():
            assert torch.equal(param, start[name]), name
    assert len(fitness) > 1  # the members really differed
