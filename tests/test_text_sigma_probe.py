"""The σ probe: its fractions on constructed outputs, against members decoded one at a time, and
its verdicts."""

from __future__ import annotations

import copy
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from es_opt.text import (
    CharTokenizer,
    Prompts,
    SigmaProbeRow,
    TextReward,
    generate,
    population_noise,
    probe_sigma,
    recommend_sigma,
)

TOKENIZER = CharTokenizer("01+=")


def test_fractions_on_a_constructed_case():
    # 4 members × 3 prompts; the centre writes [1], [2], [3] and earns 1, 0, 0
    centre_tokens = [[1], [2], [3]]
    centre = torch.tensor([1.0, 0.0, 0.0])
    members = [
        [[1], [2], [3]],  # as the centre
        [[1], [2], [4]],  # one completion differs
        [[5], [2], [3]],  # one completion differs
        [[1], [2], [3]],  # as the centre
    ]
    rewards = torch.tensor(
        [[1.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, math.nan]]
    )
    row = SigmaProbeRow.from_outputs(0.01, centre_tokens, centre, members, rewards)
    assert row.members_changed == 0.5
    assert row.completions_changed == pytest.approx(2 / 12)
    # prompt 0 varies (1, 1, 0, 1), prompt 1 never, prompt 2 does (0, 1, 0, unscored)
    assert row.prompts_with_signal == pytest.approx(2 / 3)
    assert row.centre_reward == pytest.approx(1 / 3)
    assert row.member_reward == pytest.approx(4 / 11)  # 4 rewarded of 11 scored
    assert row.reward_drop == pytest.approx(1 / 3 - 4 / 11)


def _net(seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Embedding(6, 8), nn.Tanh(), nn.Linear(8, 6))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return net


def _reward(prompt: str, completion: str) -> float:
    return float(completion[:1] == prompt[0])


def test_probe_equals_members_decoded_one_at_a_time():
    net = _net()
    objective = TextReward(TOKENIZER, _reward, max_new_tokens=3, members_per_batch=4)
    samples = Prompts(["0+1=", "1+1=", "1+0=", "0+0=", "01=", "10="])
    sigmas = [1e-4, 0.3, 3.0]
    probe = probe_sigma(net, objective, samples, sigmas, n_members=6, seed=7)
    params = dict(net.named_parameters())
    encoded = [TOKENIZER.encode(p) for p in samples.prompts]

    def decode(model):
        tokens = generate(model, encoded, max_new_tokens=3, eos_token_id=1)[0].tolist()
        return tokens, objective.score(samples, tokens)

    centre_tokens, centre = decode(net)
    for sigma, row in zip(sigmas, probe.rows, strict=True):
        noise = population_noise(params, seed=7, generation=0, indices=range(6), sigma=sigma)
        member_tokens, member_rewards = [], []
        for m in range(6):
            member = copy.deepcopy(net)
            with torch.no_grad():
                for name, p in member.named_parameters():
                    p.add_(noise[name].delta(m).reshape(p.shape))
            tokens, rewards = decode(member)
            member_tokens.append(tokens)
            member_rewards.append(rewards)
        expected = SigmaProbeRow.from_outputs(
            sigma, centre_tokens, centre, member_tokens, torch.stack(member_rewards)
        )
        assert row == expected
    assert probe.rows[0].completions_changed == 0.0  # σ = 1e-4 changes nothing
    assert probe.rows[2].completions_changed > probe.rows[1].completions_changed > 0.0
    assert torch.equal(params["2.weight"], _net()[2].weight)  # the centre is untouched


def _row(sigma, changed, completions, signal, member, centre=0.5):
    return SigmaProbeRow(sigma, changed, completions, signal, centre, member)


def test_verdicts_and_the_recommended_sigma():
    rows = [
        _row(1e-3, 0.10, 0.01, 0.05, 0.50),  # too small
        _row(3e-3, 0.60, 0.10, 0.40, 0.49),  # usable
        _row(1e-2, 0.95, 0.40, 0.60, 0.40),  # usable, most signal
        _row(3e-2, 1.00, 0.97, 0.70, 0.45),  # rewrites almost every completion
        _row(1e-1, 1.00, 0.90, 0.80, 0.20),  # keeps 40% of the centre's reward
    ]
    probe = recommend_sigma(rows)
    assert probe.sigma == 1e-2
    assert probe.reasons[1e-3].startswith("rejected: too small (10% of members")
    assert probe.reasons[3e-3] == "usable, 40% of prompts with signal"
    assert probe.reasons[1e-2] == (
        "recommended: the smallest usable sigma with 90% of the most prompts with signal "
        "(60% of 60%)"
    )
    assert probe.reasons[3e-2].startswith("rejected: collapses (97% of completions differ")
    assert probe.reasons[1e-1] == (
        "rejected: collapses (members keep 40% of the centre reward, need 50%)"
    )
    assert recommend_sigma(rows, keep=0.9).sigma == 3e-3  # 1e-2 keeps only 80%
    # a smaller sigma with nearly as much signal wins: it blurs the estimate less
    rows[1] = _row(3e-3, 0.60, 0.10, 0.55, 0.49)
    assert recommend_sigma(rows).sigma == 3e-3
    assert recommend_sigma(rows, signal_tolerance=0.95).sigma == 1e-2
    assert "1e-2" not in probe.table() and "0.01" in probe.table()


def test_without_a_usable_sigma_the_nearest_side_of_the_band():
    small = [_row(1e-3, 0.0, 0.0, 0.0, 0.5), _row(1e-2, 0.1, 0.0, 0.0, 0.5)]
    assert recommend_sigma(small).sigma == 1e-2
    assert "try larger sigmas" in recommend_sigma(small).reasons[1e-2]
    collapsed = [_row(1e-1, 1.0, 1.0, 0.0, 0.0), _row(1.0, 1.0, 1.0, 0.0, 0.0)]
    assert recommend_sigma(collapsed).sigma == 1e-1
    assert "try smaller sigmas" in recommend_sigma(collapsed).reasons[1e-1]
    both = [small[0], collapsed[0]]
    assert "the band lies above it" in recommend_sigma(both).reasons[1e-3]


def test_bad_arguments():
    net, samples = _net(), Prompts(["0="])
    objective = TextReward(TOKENIZER, _reward, max_new_tokens=1)
    with pytest.raises(ValueError, match="n_members must be an even number >= 2, got 3"):
        probe_sigma(net, objective, samples, [0.1], n_members=3)
    with pytest.raises(ValueError, match="every sigma must be > 0, got 0.0"):
        probe_sigma(net, objective, samples, [0.1, 0.0])
    with pytest.raises(ValueError, match="keep must be in"):
        recommend_sigma([_row(1.0, 1, 1, 1, 1)], keep=2.0)
    with pytest.raises(ValueError, match="at least one probe row"):
        recommend_sigma([])


@pytest.mark.slow
def test_the_sample_script_probes_and_trains_with_the_recommended_sigma(tmp_path):
    pytest.importorskip("transformers")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [
            sys.executable,
            str(root / "sample_scripts" / "finetune.py"),
            "--smoke",
            "--out",
            str(tmp_path),
            "--regime",
            "--probe-sigma",
            "0.001,100",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(root)),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"regime '\w+': greedy pass", done.stdout)
    assert re.search(r"100 .*rejected: collapses", done.stdout)
    assert re.search(r"ES: 2 generations, .*sigma 0\.001,", done.stdout)
