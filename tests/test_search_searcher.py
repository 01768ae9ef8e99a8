"""The searchers' shared shell (es_opt/search/searcher.py): one budget vocabulary whose limits are
totals over the whole search, resumed parts included; the same history keys and ``best()`` for
the three searchers; checkpoints written and verified by es_opt's checkpoint files; an evolution
checkpoint of the earlier JSON format resuming on the trajectory the earlier code took."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

import es_opt
from es_opt.search import Program, canonical_hash, load_rule
from es_opt.search.agent import ESAgentSearch
from es_opt.search.evolution import RegularizedEvolution
from es_opt.search.family import FamilySearch

from .test_search_searchers import hashed_reward, tiny_evaluator

DATA = Path(__file__).resolve().parent / "data"
SHARED_KEYS = {"generation", "evaluations", "rewards", "mean_reward", "max_reward", "best_reward"}

# tests/data/evolution_checkpoint_v1.json was written by the JSON-checkpoint code (config as a
# list) after 12 evaluations of RegularizedEvolution(hashed_reward, population_size=6,
# sample_size=3, seed=3, start=[lion], rewire=True, state_recurrence=0.5); that code, resumed from
# it up to 30 evaluations, drew these children (canonical hashes, first 8 digits) with these
# rewards, and ended with this best reward.
V1_CHILDREN = ["eb033d97", "94d616dd", "9e0fe4fc", "0c6313ee", "eb6c0496", "35a83ce2", "406d1b7d",
               "b30ca0e7", "db3ff105", "df8df3fb", "0ca57bb0", "ddd12607", "7746d27d", "c2041e9d",
               "df589726", "cf649c50", "594cbe61", "a2f91a1c"]  # fmt: skip
V1_REWARDS = [0.7380181622505189, 0.40139169216156007, 0.4374299716949463, -0.13161324739456176,
              0.7596169376373291, 0.02959830284118653, 0.07166481733322144, 0.5194113922119141,
              0.6764444184303284, 0.7132597231864929, -0.13059996843338012, 0.7064726018905639,
              0.3059243822097778, 0.5978753232955932, 0.712445523738861, 0.670128927230835,
              0.18882724285125732, 0.47661348819732663]  # fmt: skip
V1_BEST = 0.8127934408187867


def evolution(**kwargs):
    return RegularizedEvolution(
        hashed_reward, population_size=8, seed=5, start=[load_rule("lion")], **kwargs
    )


def family():
    return FamilySearch(tiny_evaluator(), n_samples=2, seed=0)


def agent(tmp_path):
    start = load_rule("sgd_momentum")
    return ESAgentSearch(tiny_evaluator(), start, tmp_path / "cache", max_edits=2, n_samples=2)


def rewards(history):
    return [r for record in history for r in record["rewards"]]


def v1_evolution(reward=hashed_reward, **kwargs):
    settings = {"rewire": True, "state_recurrence": 0.5, **kwargs}
    return RegularizedEvolution(
        reward, population_size=6, sample_size=3, seed=3, start=[load_rule("lion")], **settings
    )


# --- budgets: totals over the whole search ------------------------------------------------------


def test_limits_are_totals_so_a_resumed_run_ends_where_the_whole_run_ends(tmp_path):
    whole = evolution()
    whole.run(max_evaluations=40)
    first = evolution()
    first.run(max_evaluations=20, checkpoint_path=tmp_path / "evo.pt")
    assert (first.generation, first.evaluations) == (7, 20)  # 8, then cycles of 2
    resumed = evolution()
    resumed.load(tmp_path / "evo.pt")
    resumed.run(max_evaluations=20)  # already reached: nothing runs
    assert resumed.history == first.history
    resumed.run(max_evaluations=40)
    assert resumed.history == whole.history
    assert str(resumed.best()[0]) == str(whole.best()[0])
    resumed.run(max_evaluations=41)  # a step is never cut: the cycle of 2 completes
    resumed.run(max_generations=resumed.generation + 1)
    assert (resumed.evaluations, resumed.generation) == (44, 19)


def test_seconds_are_summed_over_calls_and_kept_in_the_checkpoint(tmp_path):
    first = evolution()
    first.run(max_generations=3, checkpoint_path=tmp_path / "evo.pt")
    resumed = evolution()
    resumed.load(tmp_path / "evo.pt")
    assert 0 < resumed.seconds <= first.seconds
    resumed.run(max_seconds=resumed.seconds)  # the time is spent already
    assert resumed.generation == 3
    resumed.run(max_seconds=resumed.seconds + 3600, max_generations=4)  # whichever comes first
    assert resumed.generation == 4


def test_on_step_sees_each_record_and_can_stop_the_run():
    seen = []
    search = evolution()
    search.run(max_generations=10, on_step=lambda s, r: seen.append(r) or r["generation"] == 2)
    assert search.generation == 3 and seen == search.history


def test_the_former_per_call_spellings_still_work_and_warn():
    search = evolution()
    with pytest.warns(DeprecationWarning, match=r"budget_seconds= is deprecated: use max_seconds="):
        search.run(budget_seconds=0)  # per call: nothing left of this call's 0 seconds
    assert search.generation == 0
    search.run(max_generations=2)
    with pytest.warns(DeprecationWarning, match=r"generations= is deprecated: use max_generations"):
        search.run(generations=2)  # per call: two more
    assert search.generation == 4
    before = search.evaluations
    old_records = []
    with pytest.warns(DeprecationWarning, match="callback= is deprecated: use on_step="):
        search.run(max_generations=6, callback=lambda s, records: old_records.extend(records))
    # the callback gets the per-evaluation records evolution's callback used to get
    assert [r["evaluation"] for r in old_records] == list(range(before, search.evaluations))
    assert [r["reward"] for r in old_records] == rewards(search.history[4:])
    assert [r["status"] for r in old_records] == ["ok"] * 4
    assert old_records[-1]["best"] == search.best()[1]


def test_bad_limits_are_refused_before_anything_runs():
    search = evolution()
    with pytest.raises(ValueError, match="give max_generations, max_evaluations or max_seconds"):
        search.run()
    with pytest.raises(ValueError, match="max_evaluations must be an int >= 0, got -1"):
        search.run(max_evaluations=-1)
    with pytest.raises(ValueError, match="max_seconds must be a finite number >= 0, got nan"):
        search.run(max_seconds=float("nan"))
    with pytest.raises(TypeError, match="max_generations must be an int >= 0, got str '3'"):
        search.run(max_generations="3")
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_evaluation'"):
        search.run(max_evaluation=3)
    with pytest.raises(TypeError, match="give max_seconds or the deprecated budget_seconds"):
        search.run(max_seconds=1, budget_seconds=1)
    with pytest.raises(TypeError, match="on_step must be a callable"):
        search.run(max_generations=1, on_step="print")
    assert search.generation == 0 and search.seconds == 0.0


# --- one interface for the three searchers -----------------------------------------------------


@pytest.mark.slow
def test_the_three_searchers_share_history_keys_and_best(tmp_path):
    searchers = [evolution(), family(), agent(tmp_path)]
    for search in searchers:
        with pytest.raises(RuntimeError, match="nothing evaluated yet"):
            search.best()
        with search:
            search.run(max_generations=2)
        counts = [len(record["rewards"]) for record in search.history]
        assert [record["generation"] for record in search.history] == [0, 1]
        assert [record["evaluations"] for record in search.history] == [counts[0], sum(counts)]
        for record in search.history:
            assert SHARED_KEYS <= set(record)
            assert record["max_reward"] == max(record["rewards"])
            mean = sum(record["rewards"]) / len(record["rewards"])
            assert record["mean_reward"] == pytest.approx(mean, rel=1e-12)
        program, reward = search.best()
        assert isinstance(program, Program) and reward == search.history[-1]["best_reward"]
    evo, fam, edit = searchers
    # evolution's and the family's best is the best candidate they scored, with its score
    for search in (evo, fam):
        assert search.best()[1] == max(rewards(search.history))
    program, reward = fam.best()
    lr = 10 ** float(fam.best_phi[5])
    rescored = dataclasses.replace(tiny_evaluator(), lrs=(lr,), early_stopping=None)(program)
    assert rescored.reward == reward
    # the agent's best is the best rule an episode reached (its members' rewards are returns)
    program, reward = edit.best()
    assert tiny_evaluator()(program).reward == reward


@pytest.mark.slow
def test_the_es_searchers_resume_to_the_same_trajectory(tmp_path):
    for make in (family, lambda: agent(tmp_path)):
        whole = make()
        whole.run(max_generations=3)
        first = make()
        first.run(max_generations=1, checkpoint_path=tmp_path / "es.pt")
        resumed = make()
        resumed.load(tmp_path / "es.pt")
        resumed.run(max_generations=3)
        assert resumed.history == whole.history and len(whole.history) == 3
        assert str(resumed.best()[0]) == str(whole.best()[0])
        pairs = zip(resumed.es.model.net.parameters(), whole.es.model.net.parameters(), strict=True)
        for a, b in pairs:
            assert torch.equal(a, b)


# --- checkpoints through es_opt's checkpoint files ---------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda tmp: evolution(), id="evolution"),
        pytest.param(lambda tmp: family(), id="family", marks=pytest.mark.slow),
        pytest.param(agent, id="agent"),
    ],
)
def test_a_checkpoint_with_one_flipped_byte_is_refused_naming_the_file(tmp_path, make):
    path = tmp_path / "search.pt"
    search = make(tmp_path)
    search.run(max_generations=1, checkpoint_path=path)
    kind = f"es_opt.search.{type(search).__name__}"
    assert torch.load(path, weights_only=True)["kind"] == kind  # a plain torch file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    fresh = make(tmp_path)
    with pytest.raises(es_opt.CheckpointError, match=re.escape(repr(str(path))) + ".*corrupted"):
        fresh.load(path)
    assert fresh.history == [] and fresh.generation == 0


def test_a_checkpoint_of_another_searcher_or_other_settings_is_refused(tmp_path):
    path = tmp_path / "evo.pt"
    evolution().run(max_generations=1, checkpoint_path=path)
    with pytest.raises(
        es_opt.CheckpointError,
        match="holds the state of 'es_opt.search.RegularizedEvolution', not of "
        "'es_opt.search.FamilySearch'",
    ):
        family().load(path)
    other = RegularizedEvolution(hashed_reward, population_size=9, seed=5)
    with pytest.raises(
        es_opt.CheckpointError, match=r"other settings: population_size=8 \(this run: 9\)"
    ):
        other.load(path)
    assert other.generation == 0
    with pytest.raises(es_opt.CheckpointError, match="not of an ESOptimizer"):
        es_opt.training.load_checkpoint(path)


def test_a_state_that_fails_half_way_leaves_the_searcher_as_it_was(tmp_path):
    search = agent(tmp_path)
    search.run(max_generations=1)
    state = search.state_dict()
    fresh = agent(tmp_path)
    weights = [p.detach().clone() for p in fresh.policy.parameters()]
    state["policy"] = {name: value + 1.0 for name, value in state["policy"].items()}
    state["es"] = {**state["es"], "generation": "one"}  # the policy loads, then the ES state fails
    with pytest.raises(ValueError, match="generation must be an int >= 0, got 'one'"):
        fresh.load_state_dict(state)
    assert fresh.history == [] and fresh.es.generation == 0
    assert all(torch.equal(a, b) for a, b in zip(weights, fresh.policy.parameters(), strict=True))


# --- evolution checkpoints of the earlier JSON format ------------------------------------------


def test_an_earlier_json_evolution_checkpoint_resumes_on_the_earlier_trajectory(tmp_path):
    drawn = []

    def reward(programs):
        drawn.extend(canonical_hash(p)[:8] for p in programs)
        return hashed_reward(programs)

    search = v1_evolution(reward)
    search.load(DATA / "evolution_checkpoint_v1.json")
    # its config was a list, its history one record per evaluation: now generations of 6, 2, ...
    assert [len(record["rewards"]) for record in search.history] == [6, 2, 2, 2]
    old = json.loads((DATA / "evolution_checkpoint_v1.json").read_text())
    assert rewards(search.history) == [r["reward"] for r in old["history"]]
    assert [h["best_reward"] for h in search.history] == [
        old["history"][i]["best"] for i in (5, 7, 9, 11)
    ]
    search.run(max_evaluations=30, checkpoint_path=tmp_path / "evo.pt")
    assert drawn == V1_CHILDREN
    assert rewards(search.history)[12:] == V1_REWARDS
    assert search.best()[1] == V1_BEST
    # re-saved in today's format, it resumes the same way
    again = v1_evolution()
    again.load(tmp_path / "evo.pt")
    assert again.history == search.history and again.best()[1] == V1_BEST


def test_earlier_five_entry_configs_load_as_both_mutation_options_off(tmp_path):
    state = json.loads((DATA / "evolution_checkpoint_v1.json").read_text())
    state["config"] = state["config"][:5]  # written before rewire and state_recurrence existed
    path = tmp_path / "evo.json"
    path.write_text(json.dumps(state))
    plain = v1_evolution(rewire=False, state_recurrence=0.0)
    plain.load(path)
    assert plain.evaluations == 12
    with pytest.raises(es_opt.CheckpointError, match=r"rewire=False \(this run: True\)"):
        v1_evolution().load(path)
    state["config"] = state["config"][:4]  # before novelty_tries: never resumable
    path.write_text(json.dumps(state))
    with pytest.raises(es_opt.CheckpointError, match="has 4 entries; this es_opt reads configs"):
        v1_evolution(rewire=False, state_recurrence=0.0).load(path)
    path.write_text('{"config": [6, 3, 2')
    with pytest.raises(es_opt.CheckpointError, match="corrupted: a JSON evolution checkpoint"):
        v1_evolution().load(path)
