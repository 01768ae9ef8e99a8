"""sample_scripts/optimizer_search.py: flags from es_opt.cli (each with its help line, bad values
refused in one line with exit status 2), and a tiny search end to end, resumed."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from es_opt.cli import ConfigError, run_main
from es_opt.search import ProgramOptimizer, parse_program
from es_opt.training import load_state

SCRIPT = Path(__file__).resolve().parents[1] / "sample_scripts" / "optimizer_search.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per process, as the script runs


def load_script():
    spec = importlib.util.spec_from_file_location("optimizer_search_sample", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building Args
    spec.loader.exec_module(module)
    return module


def script(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=ENV,
    )


def test_help_describes_every_flag():
    proc = script("--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())  # argparse wraps the lines
    for field in dataclasses.fields(load_script().Args):
        flag = "--" + field.name.replace("_", "-")
        assert field.metadata.get("help"), f"{flag} has no help line"
        assert f"{flag} " in text and " ".join(field.metadata["help"].split()) in text, flag


def test_a_bad_flag_value_exits_with_status_2_and_one_line():
    proc = script("--method", "annealing")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "optimizer_search.py: error: argument --method: invalid choice: 'annealing' (choose "
        "from 'evolution', 'agent', 'family')",
        "optimizer_search.py: (--help lists every flag)",
    ]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--max-seconds", "-1"], "--max-seconds must be >= 0, got -1.0"),
        (["--state-recurrence", "1.5"], r"--state-recurrence must be in [0, 1], got 1.5"),
        (["--max-generations", "many"], "argument --max-generations: invalid int value: 'many'"),
        (["--start", "adagrad"], "argument --start: invalid choice: 'adagrad'"),
    ],
)
def test_bad_values_are_refused_in_one_line(flags, message, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT)])
    assert run_main(load_script().main, flags) == 2
    error = capsys.readouterr().err.splitlines()[0]
    assert error.startswith("optimizer_search.py: error: ") and message in error


def test_flags_reach_the_arguments():
    args = load_script().parse_args(
        ["--method", "family", "--max-generations", "3", "--no-rewire", "--start", "lion"]
    )
    assert (args.method, args.max_generations, args.rewire, args.start) == (
        "family",
        3,
        False,
        "lion",
    )
    with pytest.raises(ConfigError, match="unrecognized arguments: --minutes 3"):
        load_script().parse_args(["--minutes", "3"])


def test_parsing_the_flags_imports_no_extra():
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('s', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['s'] = module\n"
        "spec.loader.exec_module(module)\n"
        "module.parse_args([])\n"
        "print(sorted(x for x in ('matplotlib', 'sklearn', 'gymnasium', 'multiprocess') "
        "if x in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(SCRIPT)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.slow
def test_sample_script_tiny_budget_and_resume(tmp_path):
    flags = ["--tiny", "--workers", "1", "--held-out-seeds", "1", "--out-dir", str(tmp_path)]
    flags += ["--rewire", "--state-recurrence", "0.5"]
    result = script(*flags, "--max-generations", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "best reward" in result.stdout and "held-out sine_regression adamw" in result.stdout
    saved = json.loads((tmp_path / "result.json").read_text())
    rule = parse_program(saved["rule"])
    assert len(saved["curve"]) == 2 and (tmp_path / "reward.png").stat().st_size > 0
    namespace: dict = {}
    exec((tmp_path / "found_rule.py").read_text(), namespace)  # the module a user would import
    assert issubclass(namespace["FoundRule"], ProgramOptimizer)
    assert str(namespace["FoundRule"].program) == str(rule)
    # the checkpoint is es_opt's, with the mutation settings the flags gave
    state = load_state(tmp_path / "evolution-checkpoint", kind="es_opt.search.RegularizedEvolution")
    assert (state["config"]["rewire"], state["config"]["state_recurrence"]) == (True, 0.5)
    # resumed, the limit is the total: generations 2 and 3 run (not four more)
    resumed = script(*flags, "--max-generations", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed at generation 2 (22 scored)" in resumed.stdout
    curve = json.loads((tmp_path / "result.json").read_text())["curve"]
    assert curve[:2] == saved["curve"] and [n for n, _ in curve] == [20, 22, 24, 26]
