"""The regime report: pass@k, groups with reward variance, and the regimes on models whose
sampling distribution is known."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
import torch
from torch import nn

from es_opt.text import CharTokenizer, Prompts, TextReward, TRLReward, pass_at_k, regime_report

TOKENIZER = CharTokenizer("01")  # pad 0, end 1, "0" 2, "1" 3


class NextByLast(nn.Module):
    """A plain LM whose next-token logits are a table row picked by the last token."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = nn.Parameter(table)

    def forward(self, ids):
        return self.table[ids]


def _model(after_one: tuple[float, float]) -> NextByLast:
    """After "0": "1" for sure; after "1": logits ``after_one`` for ("0", "1")."""
    table = torch.full((4, 4), -30.0)
    table[2, 3] = 30.0
    table[3, 2], table[3, 3] = after_one
    return NextByLast(table)


def test_pass_at_k_is_the_fraction_of_k_subsets_with_a_pass():
    for n, c, k in itertools.product(range(1, 7), range(7), range(1, 7)):
        if c > n or k > n:
            continue
        samples = [True] * c + [False] * (n - c)
        subsets = list(itertools.combinations(samples, k))
        expected = Fraction(sum(any(s) for s in subsets), len(subsets))
        assert pass_at_k(n, c, k) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="need 0 <= c <= n and 1 <= k <= n"):
        pass_at_k(4, 5, 1)


def _ones(prompt: str, completion: str) -> float:
    return float(completion == "1")


def test_a_prompt_always_solved_and_a_coin_flip():
    objective = TextReward(TOKENIZER, _ones, max_new_tokens=1)
    report = regime_report(
        _model((0.0, 0.0)), objective, Prompts(["0", "1"], seed=3), n_samples=16, ks=(1, 16)
    )
    assert report.greedy_pass == 0.5  # "0" → "1"; "1" → the first of two equal logits, "0"
    assert report.groups_with_variance == 0.5  # 16 fair coin flips are not all equal
    assert report.pass_at_k[16] == 1.0
    assert 0.5 < report.pass_at_k[1] < 1.0
    assert report.regime == "sampled"
    assert "regime 'sampled'" in report.summary() and "pass@16 100.0%" in report.summary()


def test_sparse_and_solved():
    never = TextReward(TOKENIZER, lambda p, c: float(c == "1"), max_new_tokens=1)
    report = regime_report(_model((30.0, -30.0)), never, Prompts(["1", "1"]), ks=(1, 8))
    assert report.regime == "sparse"
    assert report.pass_at_k == {1: 0.0, 8: 0.0} and report.groups_with_variance == 0.0
    always = TextReward(TOKENIZER, lambda p, c: 1.0, max_new_tokens=1)
    assert regime_report(_model((0.0, 0.0)), always, Prompts(["1"])).regime == "solved"


def test_dataset_columns_are_repeated_with_their_prompts():
    datasets = pytest.importorskip("datasets")
    from es_opt.text import dataset_prompts

    data = datasets.Dataset.from_dict({"prompt": ["0", "1"], "answer": ["1", "0"]})

    def exact(completions, answer, **kwargs):
        return [float(c == a) for c, a in zip(completions, answer, strict=True)]

    objective = TRLReward(TOKENIZER, exact, max_new_tokens=1)
    report = regime_report(_model((0.0, 0.0)), objective, dataset_prompts(data), n_samples=8)
    # "0" is always answered "1" (right); "1" gets "0" or "1" (varies); greedy answers both right
    assert report.greedy_pass == 1.0 and report.groups_with_variance == 0.5


def test_bad_arguments():
    objective = TextReward(TOKENIZER, _ones, max_new_tokens=1)
    net, samples = _model((0.0, 0.0)), Prompts(["0"])
    with pytest.raises(ValueError, match="n_samples must be at least 2"):
        regime_report(net, objective, samples, n_samples=1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        regime_report(net, objective, samples, temperature=0.0)
    with pytest.raises(ValueError, match=r"every k must be in \[1, n_samples=8\], got 9"):
        regime_report(net, objective, samples, ks=(1, 9))
