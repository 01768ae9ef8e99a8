"""One grammar for parameterised option strings (es_opt/_spec.py): ``name(value)`` everywhere,
the spellings of 0.1 with one DeprecationWarning naming the new one, malformed strings refused
with the argument's name and the value, and saved states read without a warning."""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch

from es_opt import ESOptimizer, LowRank, TopPairs
from es_opt._spec import Form, parse_spec
from es_opt.perturbations import make_perturbation, perturbation_from_state
from es_opt.shaping import parse_shaping

from .conftest import Quadratic, make_mlp

FORMS = [Form("dense"), Form("lowrank", "R", default=1, old_names=("low_rank",))]


def make_es(**options):
    return ESOptimizer(make_mlp(), objective_fn=Quadratic(), n_samples=4, seed=0, **options)


def parsed_silently(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        return call()


@pytest.mark.parametrize(
    "text, expected",
    [("dense", ("dense", None)), ("lowrank", ("lowrank", 1)), ("lowrank(7)", ("lowrank", 7)),
     (" lowrank( 12 ) ", ("lowrank", 12))],
)  # fmt: skip
def test_the_one_spelling_parses_without_a_warning(text, expected):
    form, value = parsed_silently(lambda: parse_spec(text, "perturbation", FORMS))
    assert (form.name, value) == expected


@pytest.mark.parametrize(
    "old, new, value",
    [("lowrank:4", "lowrank(4)", 4), ("LowRank:8", "lowrank(8)", 8), ("low_rank", "lowrank", 1),
     ("Dense", "dense", None), ("lowrank(04)", "lowrank(4)", 4)],
)  # fmt: skip
def test_an_old_spelling_warns_once_naming_the_new_one(old, new, value):
    with pytest.warns(DeprecationWarning) as caught:
        form, parsed = parse_spec(old, "perturbation", FORMS)
    assert len(caught) == 1
    assert (
        str(caught[0].message) == f"perturbation={old!r} is deprecated: write perturbation={new!r}"
    )
    assert (form.name, parsed) == (new.partition("(")[0], value)


MALFORMED = [
    ("lowrank:", "R is missing"),
    ("lowrank()", "R is missing"),
    ("lowrank(0)", "R must be a positive int, got '0'"),
    ("lowrank(x)", "R must be a positive int, got 'x'"),
    ("lowrank(-1)", "R must be a positive int, got '-1'"),
    ("lowrank(1.5)", "R must be a positive int, got '1.5'"),
    ("lowrank(2, 3)", "R must be a positive int, got '2, 3'"),
    ("lowrank(1", ""),
    ("lowrank(1)x", ""),
    ("dense(2)", "'dense' takes no value"),
    ("dense:2", "'dense' takes no value"),
    ("sparse", ""),
    ("", ""),
]


@pytest.mark.parametrize("text, why", MALFORMED)
def test_a_malformed_perturbation_is_refused_by_name_before_anything_is_built(text, why):
    message = f"perturbation must be one of 'dense', 'lowrank', 'lowrank(R)' or a Perturbation, got {text!r}"  # noqa: E501
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused, not warned about
        with pytest.raises(ValueError, match=re.escape(message + (f": {why}" if why else ""))):
            make_es(perturbation=text)


@pytest.mark.parametrize(
    "text, why",
    [("top_pairs(", ""), ("top_pairs()", "k is missing"), ("top_pairs", "top_pairs needs k"),
     ("top_pairs(0)", "k must be a positive int, got '0'"), ("raw(2)", "'raw' takes no value"),
     ("top_pairs:", "k is missing")],
)  # fmt: skip
def test_a_malformed_shaping_is_refused_by_name(text, why):
    with pytest.raises(ValueError, match=f"shaping must be one of .* got {re.escape(repr(text))}"):
        make_es(shaping=text)
    if why:
        with pytest.raises(ValueError, match=re.escape(why)):
            parse_shaping(text)


def test_perturbation_and_shaping_share_the_grammar_and_specs_round_trip():
    assert LowRank(rank=4).spec == "lowrank(4)" and TopPairs(4).spec == "top_pairs(4)"
    assert parsed_silently(lambda: make_perturbation(LowRank(3).spec)) == LowRank(3)
    assert parsed_silently(lambda: parse_shaping(TopPairs(5).spec)) == TopPairs(5)
    with pytest.warns(DeprecationWarning, match=r"write shaping='top_pairs\(2\)'"):
        assert parse_shaping("top_pairs:2") == TopPairs(2)
    es = parsed_silently(lambda: make_es(perturbation="lowrank(2)", shaping="top_pairs(1)"))
    state = es.state_dict()
    assert (state["perturbation"], state["shaping"]) == ("lowrank(2)", "top_pairs(1)")


def test_esoptimizer_warns_at_the_callers_line_and_stores_the_new_spelling():
    with pytest.warns(DeprecationWarning, match=r"write perturbation='lowrank\(3\)'") as caught:
        es = make_es(perturbation="lowrank:3")
    assert len(caught) == 1 and caught[0].filename == __file__  # make_es's line, not es_opt's
    assert es.perturbation == LowRank(3) and es.state_dict()["perturbation"] == "lowrank(3)"


def test_a_saved_old_spelling_is_read_without_a_warning():
    assert parsed_silently(lambda: perturbation_from_state("lowrank:1", "philox")) == LowRank(1)
    assert parsed_silently(lambda: perturbation_from_state("lowrank:3", None)) == LowRank(3)
    with pytest.raises(ValueError, match=r"perturbation must be one of .* got 'lowrank\('"):
        perturbation_from_state("lowrank(", "philox")


def test_a_state_dict_saved_with_lowrank_colon_1_loads_without_a_warning_and_resumes():
    es = make_es(perturbation="lowrank")
    es.gradient_step()
    old = dict(copy.deepcopy(es.state_dict()), perturbation="lowrank:1")  # as 0.1 saved it
    weights = copy.deepcopy(es.model.net.state_dict())
    es.gradient_step()
    other = make_es(perturbation="lowrank")
    other.model.net.load_state_dict(weights)
    parsed_silently(lambda: other.load_state_dict(old))
    other.gradient_step()
    assert other.state_dict()["perturbation"] == "lowrank(1)"
    for a, b in zip(es.model.net.parameters(), other.model.net.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_malformed_family_in_a_state_changes_nothing():
    es = make_es(perturbation="lowrank(2)")
    before = copy.deepcopy(es.state_dict())
    with pytest.raises(ValueError, match=r"perturbation must be one of .* got 'lowrank\('"):
        es.load_state_dict(dict(before, perturbation="lowrank("))
    assert es.perturbation == LowRank(2)
    after = es.state_dict()
    assert {k: v for k, v in after.items() if k != "optimizer"} == {
        k: v for k, v in before.items() if k != "optimizer"
    }
