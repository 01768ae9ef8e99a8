import subprocess
import sys
from pathlib import Path

import pytest

from es_opt.cli import run_main

ROOT = Path(__file__).resolve().parents[1]


def test_user_errors_become_one_line_with_exit_status_2(capsys, monkeypatch):
    def main(argv):
        raise ValueError("sigma must be a finite number > 0, got -1.0")

    monkeypatch.setattr(sys, "argv", ["rl.py"])
    assert run_main(main, []) == 2
    err = capsys.readouterr().err
    assert err.startswith("rl.py: error: sigma must be a finite number > 0, got -1.0\n")
    assert "Traceback" not in err


def test_debug_variable_shows_the_traceback_and_bugs_are_not_hidden(monkeypatch):
    def main(argv):
        raise ValueError("bad flag")

    monkeypatch.setenv("ES_OPT_DEBUG", "1")
    with pytest.raises(ValueError, match="bad flag"):
        run_main(main, [])

    def buggy(argv):
        raise KeyError("internal")

    monkeypatch.delenv("ES_OPT_DEBUG")
    with pytest.raises(KeyError):
        run_main(buggy, [])


@pytest.mark.parametrize(
    ("script", "flags", "message"),
    [
        ("rl.py", ["--n-samples", "7"], "n_samples must be an even int >= 2"),
        ("rl.py", ["--env", "CartPol-v1"], "Did you mean: `CartPole`?"),
        ("rl.py", ["--resume", "/nonexistent/policy.pt"], "no checkpoint at"),
    ],
)
def test_sample_scripts_report_bad_flags_without_a_traceback(script, flags, message):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "sample_scripts" / script), *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{script}: error:" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr
