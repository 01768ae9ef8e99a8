"""es_opt.record: replaying a record rebuilds θ_k bit for bit, equal to the checkpoint saved at k
(CartPole, digits with PGPE, low-rank on the pool with sync="replay", a TextReward run); resume
and branch from a record; a resumed run continues its record; settings that move are replayed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from es_opt import Callback, ESOptimizer, LowRank, Model, SamplingStrategy
from es_opt.optim import ClipUp, Ligi, RangerLite
from es_opt.record import RunRecord, checkpoint_at, read_record, replay, resume_from_record
from es_opt.training.checkpoint import load_checkpoint, save_checkpoint

from .conftest import Quadratic, make_mlp


class SaveAt(Callback):
    """Saves a checkpoint after each generation in ``generations`` (``k.pt``: ``es.generation``
    is ``k``)."""

    def __init__(self, folder, generations):
        self.folder, self.generations = folder, set(generations)

    def on_step(self, es, result):
        if es.generation in self.generations:
            save_checkpoint(self.folder / f"{es.generation}.pt", es)


def assert_same(a, b, where="state"):
    """Equal nested values, tensors bit for bit."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert torch.equal(torch.as_tensor(a), torch.as_tensor(b)), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_at_checkpoint(es, path):
    """``es``'s trainable parameters and whole ``state_dict`` (generation, settings, inner
    optimizer, σ vector, objective) are the checkpoint's, bit for bit."""
    saved = load_checkpoint(path)
    for name, param in es.model.named_trainable_parameters().items():
        assert torch.equal(param.detach(), saved["net"][name]), name
    ours = es.state_dict()
    if saved["es"]["objective"] == {}:
        ours["objective"] = {}  # a replay without the objective keeps no state of it
    assert_same(ours, saved["es"])


def record_run(tmp_path, build, generations, samples=None, extra=()):
    es = build()
    keep = [generations // 3, 2 * generations // 3, generations]
    record = tmp_path / "run.record"
    with es:
        es.fit(samples, generations, callbacks=[*extra, SaveAt(tmp_path, keep), RunRecord(record)])
    return record, keep


def check_replays(tmp_path, build, record, keep):
    for k in keep:
        es = build()
        resume_from_record(es, record, k)
        assert_at_checkpoint(es, tmp_path / f"{k}.pt")


# -- the runs the issue names ---------------------------------------------------------------
def test_cartpole_run_replays_to_every_saved_checkpoint(tmp_path):
    pytest.importorskip("gymnasium")
    from es_opt.rl import EpisodeReturn, EpisodeSamples

    def build():
        torch.manual_seed(0)
        net = nn.Linear(4, 2)
        objective = EpisodeReturn("CartPole-v1", max_episode_steps=60)
        return ESOptimizer(Model(net), objective_fn=objective, sigma=0.1, n_samples=8, seed=3)

    def samples(generation):
        return EpisodeSamples.for_generation(3, generation)

    record, keep = record_run(tmp_path, build, 6, samples)
    check_replays(tmp_path, build, record, keep)
    # without the run's code: the record and its start checkpoint alone
    rebuilt = checkpoint_at(record, keep[1], tmp_path / "out.pt")
    assert_at_checkpoint(rebuilt, tmp_path / f"{keep[1]}.pt")


def test_digits_pgpe_run_replays_with_its_sigma_vector(tmp_path):
    pytest.importorskip("sklearn")
    from es_opt.supervised import Accuracy
    from es_opt.supervised.datasets import load_digits

    train, _ = load_digits(seed=0)

    def build():
        net = make_mlp(1, sizes=(64, 8, 10))
        return ESOptimizer(
            Model(net), Ligi(net.parameters(), lr=0.05), objective_fn=Accuracy(),
            sigma=0.1, n_samples=10, seed=5, distribution="pgpe",
        )  # fmt: skip

    record, keep = record_run(tmp_path, build, 6, lambda g: train)
    check_replays(tmp_path, build, record, keep)
    assert_at_checkpoint(checkpoint_at(record, 6), tmp_path / "6.pt")


@pytest.mark.slow
def test_low_rank_pool_run_with_replayed_sync_replays(tmp_path):
    def build():
        net = make_mlp(2, sizes=(3, 6, 4))
        return ESOptimizer(
            Model(net), ClipUp(net.parameters(), lr=0.05, momentum=0.9),
            objective_fn=Quadratic(), sigma=0.1, n_samples=8, seed=7,
            perturbation=LowRank(rank=1), backend="multiprocess", n_workers=2, sync="replay",
        )  # fmt: skip

    record, keep = record_run(tmp_path, build, 6)
    check_replays(tmp_path, build, record, keep)  # replays evaluate nothing: no pool starts


class TinyLM(nn.Module):
    """Embedding, a hidden Linear and an output Linear: a language model es_opt.text batches."""

    def __init__(self, vocab: int):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.embed = nn.Embedding(vocab, 8)
        self.hidden = nn.Linear(8, 8)
        self.out = nn.Linear(8, vocab)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))

    def forward(self, ids):
        return self.out(torch.tanh(self.hidden(self.embed(ids).cumsum(1))))


def digit_sum(prompt: str, completion: str) -> float:
    return float(sum(int(c) for c in completion if c.isdigit()))


def test_text_reward_run_replays(tmp_path):
    from es_opt.text import CharTokenizer, Prompts, TextReward

    tokenizer = CharTokenizer("0123456789+=")
    prompts = Prompts(["12+34=", "50+05=", "99+01="])

    def build():
        net = TinyLM(tokenizer.vocab_size)
        objective = TextReward(tokenizer, digit_sum, max_new_tokens=3)
        return ESOptimizer(
            Model(net), torch.optim.Adam(net.parameters(), lr=0.02), objective_fn=objective,
            sigma=0.3, n_samples=6, seed=2, perturbation=LowRank(rank=1), noise="philox",
        )  # fmt: skip

    record, keep = record_run(tmp_path, build, 6, lambda g: prompts)
    check_replays(tmp_path, build, record, keep)


# -- what moves between generations ---------------------------------------------------------
class Schedules(Callback):
    """Moves σ, the learning rate and the seed between generations, as schedules and users do."""

    def on_step(self, es, result):
        es.sigma = es.sigma * 0.9
        for group in es.optimizer.param_groups:
            group["lr"] = group["lr"] * 0.8
        if es.generation == 3:
            es.seed = 11


def build_quadratic(strategy=SamplingStrategy.ALL, seed=1):
    net = make_mlp(0, sizes=(3, 5, 5, 2))
    optimizer = RangerLite(
        [{"params": net[0].parameters()}, {"params": [*net[2].parameters(), *net[4].parameters()]}],
        lr=0.05,
    )
    return ESOptimizer(Model(net, strategy), optimizer, objective_fn=Quadratic(), sigma=0.2,
                       n_samples=6, seed=seed)  # fmt: skip


@pytest.mark.parametrize("strategy", [SamplingStrategy.ALL, SamplingStrategy.RANDOM])
def test_moving_settings_and_layer_sampling_replay(tmp_path, strategy):
    record, keep = record_run(tmp_path, lambda: build_quadratic(strategy), 6, extra=[Schedules()])
    check_replays(tmp_path, lambda: build_quadratic(strategy), record, keep)
    lines = read_record(record).lines
    # each line holds what changed after its generation: what the next one runs with
    assert set(lines[0]["set"]) == {"sigma", "groups"}
    assert lines[0]["set"]["groups"] == [{"lr": 0.05 * 0.8}, {"lr": 0.05 * 0.8}]
    assert lines[2]["set"]["seed"] == 11 and "seed" not in lines[3]["set"]
    assert ("layers" in lines[0]) == (strategy is SamplingStrategy.RANDOM)
    rebuilt = checkpoint_at(record, 6)  # the groups and settings rebuilt from the record
    assert_at_checkpoint(rebuilt, tmp_path / "6.pt")
    assert rebuilt.optimizer.param_groups[1]["lr"] == 0.05 * 0.8**6


def test_replay_moves_an_optimizer_on_from_a_recorded_generation(tmp_path):
    record, keep = record_run(tmp_path, build_quadratic, 6, extra=[Schedules()])
    es = build_quadratic()
    load_checkpoint(tmp_path / f"{keep[0]}.pt", es)
    replay(es, record, keep[2])
    assert_at_checkpoint(es, tmp_path / f"{keep[2]}.pt")


def test_resume_continues_the_run_and_a_branch_differs(tmp_path):
    straight = build_quadratic()
    record = tmp_path / "run.record"
    straight.fit(generations=8, callbacks=[RunRecord(record)])

    resumed = build_quadratic()
    resume_from_record(resumed, record, 4)
    resumed.fit(generations=4)
    for a, b in zip(resumed.model.parameters(), straight.model.parameters(), strict=True):
        assert torch.equal(a, b)

    branches = []
    for _ in range(2):
        branch = build_quadratic()
        resume_from_record(branch, record, 4)
        branch.seed = 99
        branch.fit(generations=4)
        branches.append(torch.cat([p.detach().reshape(-1) for p in branch.model.parameters()]))
    assert torch.equal(branches[0], branches[1])  # a branch is reproducible too
    final = torch.cat([p.detach().reshape(-1) for p in straight.model.parameters()])
    assert not torch.equal(branches[0], final)


def test_a_resumed_run_continues_its_record(tmp_path):
    record = tmp_path / "run.record"
    first = build_quadratic()
    first.fit(generations=5, callbacks=[SaveAt(tmp_path, [3]), RunRecord(record)])
    assert read_record(record).end == 5
    second = build_quadratic()
    load_checkpoint(tmp_path / "3.pt", second)  # generations 3 and 4 run again
    second.fit(generations=4, callbacks=[SaveAt(tmp_path, [7]), RunRecord(record)])
    assert read_record(record).end == 7
    es = build_quadratic()
    resume_from_record(es, record, 7)
    assert_at_checkpoint(es, tmp_path / "7.pt")


class TwoObjectives(Quadratic):
    def __call__(self, model, samples):
        return [super().__call__(model, samples), float(model.net[0].bias.sum())]


@pytest.mark.parametrize(
    "options",
    [
        dict(distribution="snes", shaping="z_score"),
        dict(distribution="cma"),
        dict(distribution="sep_cma"),
        dict(distribution="cem"),
        dict(perturbation="lowrank", noise=None, shaping="top_pairs(2)"),
        dict(noise="philox", shaping="centered_ranks_ordinal"),
    ],
    ids=["snes-z-score", "cma", "sep-cma", "cem", "lowrank-top-pairs", "philox-ordinal"],
)
def test_families_distributions_shapings_and_two_objectives_replay(tmp_path, options):
    def build():
        net = make_mlp(3)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.5)
        return ESOptimizer(Model(net), optimizer, objective_fn=TwoObjectives(), sigma=0.1,
                           obj_weights=[1.0, -0.5], n_samples=8, seed=4, **options)  # fmt: skip

    record, keep = record_run(tmp_path, build, 6)
    check_replays(tmp_path, build, record, keep)
    assert_at_checkpoint(checkpoint_at(record, 6), tmp_path / "6.pt")
