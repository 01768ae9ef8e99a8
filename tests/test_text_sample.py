"""sample_scripts/finetune.py end to end with a tiny budget (a subprocess, as a user runs it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sample_scripts" / "finetune.py"


def run(*argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.slow
def test_smoke_pretrains_saves_fine_tunes_and_reloads(tmp_path):
    done = run("--smoke", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert re.search(r"pre-trained a [\d,]+-parameter GPT-2 for 30 steps", done.stdout)
    before = re.search(r"accuracy before ES: (\d\.\d{3})", done.stdout)
    after = re.search(r"accuracy after ES: (\d\.\d{3})", done.stdout)
    assert before and after, done.stdout
    assert "ES: 2 generations, 8 evaluations" in done.stdout
    saved = tmp_path / "pretrained"
    assert (saved / "config.json").exists() and (saved / "char_tokenizer.json").exists()
    assert (tmp_path / "checkpoint.pt").exists()
    # --model loads the saved checkpoint: same weights, same accuracy before ES
    again = run("--smoke", "--model", str(saved), "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert f"loaded {saved}" in again.stdout
    assert re.search(r"accuracy before ES: (\d\.\d{3})", again.stdout)[1] == before[1]


def test_bad_flags_are_one_line_errors(tmp_path):
    done = run("--pretrain-carry", "2", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "--pretrain-carry must be in [0, 1], got 2.0" in done.stderr
    assert "Traceback" not in done.stderr
