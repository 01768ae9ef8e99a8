"""The optimizer-search sample script runs end to end on a tiny budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from es_opt.search import ProgramOptimizer, parse_program

SCRIPT = Path(__file__).resolve().parents[1] / "sample_scripts" / "optimizer_search.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per process, as the script runs


@pytest.mark.slow
def test_sample_script_tiny_budget(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--tiny",
            "--budget-seconds",
            "2",
            "--workers",
            "1",
            "--held-out-seeds",
            "1",
            "--out-dir",
            str(tmp_path),
            "--rewire",
            "--state-recurrence",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "best reward" in result.stdout and "held-out sine_regression adamw" in result.stdout
    saved = json.loads((tmp_path / "result.json").read_text())
    rule = parse_program(saved["rule"])
    assert saved["curve"] and (tmp_path / "reward.png").stat().st_size > 0
    namespace: dict = {}
    exec((tmp_path / "found_rule.py").read_text(), namespace)  # the module a user would import
    assert issubclass(namespace["FoundRule"], ProgramOptimizer)
    assert str(namespace["FoundRule"].program) == str(rule)
    config = json.loads((tmp_path / "evolution-checkpoint").read_text())["config"]
    assert config[-2:] == [True, 0.5]  # the mutation settings reach the search and its checkpoint
    # a second run resumes from the checkpoint: the history only grows
    resumed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--tiny",
            "--budget-seconds",
            "1",
            "--workers",
            "1",
            "--held-out-seeds",
            "1",
            "--out-dir",
            str(tmp_path),
            "--rewire",
            "--state-recurrence",
            "0.5",
            "--resume",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=ENV,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(json.loads((tmp_path / "result.json").read_text())["curve"]) > len(saved["curve"])
