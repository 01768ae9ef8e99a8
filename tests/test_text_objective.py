"""TextReward: rewards on completions, group fitness, population-batched members, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from es_opt.text import CharTokenizer, Prompts, TextReward, generate, population_noise


class Copier(nn.Module):
    """Predicts the character two places back: completes "ab=" with "ab" (a tiny exact LM)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.sharpness = nn.Parameter(torch.tensor(10.0))
        self.mix = nn.Linear(vocab, vocab)
        with torch.no_grad():
            self.mix.weight.copy_(torch.eye(vocab))
            self.mix.bias.zero_()

    def forward(self, ids):
        back = torch.cat([ids[:, :1], ids[:, :1], ids[:, :-2]], dim=1)[:, : ids.shape[1]]
        return self.mix(nn.functional.one_hot(back, self.vocab).float()) * self.sharpness


TOKENIZER = CharTokenizer("ab=")


def exact(prompt: str, completion: str) -> float:
    return float(completion == prompt[:2])


def test_rewards_mean_and_groups():
    net = Copier(TOKENIZER.vocab_size)
    samples = Prompts(["ab=", "ba=", "aa=", "bb="])
    objective = TextReward(TOKENIZER, exact, max_new_tokens=2)
    assert objective.completions(net, samples) == [["ab", "ba", "aa", "bb"]]
    assert objective(net, samples) == 1.0
    grouped = TextReward(TOKENIZER, lambda p, c: float(p[0] == "a"), max_new_tokens=2, group_size=2)
    assert grouped(net, samples).tolist() == [0.5, 0.5]
    assert grouped.obj_weights(4) == [0.5, 0.5]
    per_prompt = TextReward(TOKENIZER, lambda p, c: float(p[0] == "a"), group_size=1)
    assert per_prompt.fitness(torch.tensor([1.0, 0.0, 1.0])).tolist() == [1.0, 0.0, 1.0]


def test_evaluate_members_equals_one_at_a_time():
    torch.manual_seed(0)
    net = Copier(TOKENIZER.vocab_size)
    samples = Prompts(["ab=", "ba=", "aa="])

    def matching(prompt: str, completion: str) -> float:
        return sum(a == b for a, b in zip(prompt[:2], completion, strict=False)) / 2

    objective = TextReward(TOKENIZER, matching, max_new_tokens=3, members_per_batch=3)
    params = {n: p for n, p in net.named_parameters() if n.startswith("mix")}
    noise = population_noise(params, seed=0, generation=0, indices=range(8), sigma=0.4, rank=1)
    batched = objective.evaluate_members(net, samples, noise)
    assert batched.shape == (8, 1)
    for member in range(8):
        with torch.no_grad():
            saved = [p.clone() for p in params.values()]
            for name, p in params.items():
                p.add_(noise[name].delta(member).reshape(p.shape))
            alone = objective(net, samples)
            for p, s in zip(params.values(), saved, strict=True):
                p.copy_(s)
        assert batched[member, 0] == alone
    assert len(set(batched[:, 0].tolist())) > 1


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="encode"):
        TextReward(object(), exact)
    with pytest.raises(ValueError, match="max_new_tokens"):
        TextReward(TOKENIZER, exact, max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        TextReward(TOKENIZER, exact, temperature=-1.0)
    with pytest.raises(ValueError, match="group_size"):
        TextReward(TOKENIZER, exact, group_size=0)
    objective = TextReward(TOKENIZER, lambda p, c: float("nan"), max_new_tokens=1)
    with pytest.raises(ValueError, match=r"reward returned nan for prompt 'ab='"):
        objective(Copier(5), Prompts(["ab="]))
    with pytest.raises(TypeError, match="Prompts samples"):
        objective(Copier(5), None)
    with pytest.raises(ValueError, match="3 prompts cannot be split into groups of group_size=2"):
        TextReward(TOKENIZER, exact, group_size=2).fitness(torch.zeros(3))
    with pytest.raises(ValueError, match="'c' of 'c' is not in the tokenizer's alphabet"):
        TOKENIZER.encode("c")


def test_sampled_decoding_is_seeded_and_leaves_the_global_generator_alone():
    net = Copier(TOKENIZER.vocab_size)
    with torch.no_grad():
        net.sharpness.fill_(0.3)  # flat logits: sampling matters
    state = torch.get_rng_state()
    runs = [
        generate(net, [[2, 3]] * 4, max_new_tokens=6, temperature=1.0, seed=s) for s in (0, 0, 1)
    ]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert torch.equal(torch.get_rng_state(), state)
    # each prompt has its own stream: four copies of one prompt are four different samples
    assert len({tuple(row) for row in runs[0][0].tolist()}) > 1


def _same(a, b) -> bool:
    """Equal nested state (dicts, lists, tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("value", ["1", True, None])
@pytest.mark.parametrize("evaluation", ["batched", "in_place", "one_at_a_time"])
def test_a_reward_that_is_not_a_number_is_refused_and_changes_nothing(evaluation, value):
    """As core objectives refuse strings and booleans: "1" is not converted to 1.0."""
    from es_opt import ESOptimizer
    from es_opt.errors import EvaluationError

    net = Copier(TOKENIZER.vocab_size)
    net.sharpness.requires_grad_(evaluation != "batched")  # batched: Linear layers only
    mode = "in_place" if evaluation == "in_place" else "batched"
    objective = TextReward(TOKENIZER, exact, max_new_tokens=2, evaluation=mode)
    objective.vectorize = evaluation != "one_at_a_time"
    es = ESOptimizer(net, objective_fn=objective, n_samples=4, seed=0, perturbation="lowrank")
    samples = Prompts(["ab=", "ba="])
    es.gradient_step(samples)  # optimizer state to protect
    weights = {n: p.detach().clone() for n, p in net.named_parameters()}
    state = es.state_dict()
    objective.reward = lambda prompt, completion: value
    message = rf"reward must return a real number, got {type(value).__name__} {value!r}"
    with pytest.raises((TypeError, EvaluationError), match=message + " for prompt 'ab='"):
        es.gradient_step(samples)
    assert all(torch.equal(p, weights[n]) for n, p in net.named_parameters())
    assert _same(es.state_dict(), state)
