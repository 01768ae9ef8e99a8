import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
import torch

from es_opt.cli import OPTIMIZERS, ConfigError, arg, build_optimizer, parse_config, run_main

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


# --- flags from a dataclass (es_opt.cli.parse_config) -------------------------------------------


@dataclasses.dataclass
class _Args:
    env: str = arg("A", "which preset")
    rate: float = arg(0.5, "a float")
    steps: int | None = arg(None, "an optional int")
    fast: bool = arg(False, "a bool that is off")
    normalize: bool = arg(True, "a bool that is on")
    betas: tuple[float, float] | None = arg(None, "two floats")
    sizes: tuple[int, ...] = arg((1,), "one or more ints")
    mode: Literal["x", "y"] = arg("x", "a literal")
    kind: str = arg("a", "a str with choices", choices=("a", "b"))
    out: Path = arg(Path("runs"), "a path")


_PRESETS = {"B": {"rate": 0.9, "normalize": False, "betas": (0.1, 0.2)}}


def _parse(*argv: str) -> _Args:
    return parse_config(_Args, list(argv), presets=_PRESETS, preset_by="env")


def test_fields_become_typed_flags_and_defaults_stay():
    assert _parse() == _Args()
    args = _parse("--rate", "2", "--steps", "7", "--betas", "0.8", "0.99", "--sizes", "3", "4",
                  "--mode", "y", "--kind", "b", "--out", "elsewhere")  # fmt: skip
    assert args.rate == 2.0 and isinstance(args.rate, float)
    assert args.steps == 7 and isinstance(args.steps, int)
    assert args.betas == (0.8, 0.99) and args.sizes == (3, 4)  # tuples, not argparse's lists
    assert (args.mode, args.kind, args.out) == ("y", "b", Path("elsewhere"))


def test_bool_fields_have_both_flags():
    assert _parse("--fast").fast is True and _parse("--no-fast").fast is False
    assert _parse("--no-normalize").normalize is False and _parse("--normalize").normalize is True


def test_a_preset_supplies_defaults_and_an_explicit_flag_always_wins():
    preset = _parse("--env", "B")
    assert (preset.rate, preset.normalize, preset.betas) == (0.9, False, (0.1, 0.2))
    assert preset.steps is None and preset.kind == "a"  # fields no preset sets keep their defaults
    explicit = _parse("--env", "B", "--rate", "0.5", "--normalize", "--betas", "0.3", "0.4")
    assert (explicit.rate, explicit.normalize, explicit.betas) == (0.5, True, (0.3, 0.4))
    assert _parse("--rate", "0.9").env == "A" and _parse("--env", "C").rate == 0.5  # no preset


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "fast"], "argument --rate: invalid float value: 'fast'"),
        (["--steps", "1.5"], "argument --steps: invalid int value: '1.5'"),
        (["--kind", "c"], "argument --kind: invalid choice: 'c'"),
        (["--mode", "z"], "argument --mode: invalid choice: 'z'"),
        (["--betas", "0.1"], "argument --betas: expected 2 arguments"),
        (["--fast=yes"], "argument --fast/--no-fast: ignored explicit argument 'yes'"),
        (["--sigma", "1"], "unrecognized arguments: --sigma 1"),
    ],
)
def test_bad_values_raise_one_config_error(argv, message, capsys):
    with pytest.raises(ConfigError) as caught:
        _parse(*argv)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert capsys.readouterr().err == ""  # no usage dump: run_main prints the one line


def test_run_main_reports_a_bad_flag_in_one_line(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["demo.py"])
    assert run_main(lambda argv: _parse(*argv) and 0, ["--kind", "c"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("demo.py: error: argument --kind: invalid choice: 'c'")
    assert err[1:] == ["demo.py: (--help lists every flag)"]


def test_fields_the_parser_cannot_express_and_presets_of_unknown_fields_are_refused():
    @dataclasses.dataclass
    class Bad:
        pair: tuple[int, str] = arg((1, "a"), "mixed tuple")

    with pytest.raises(TypeError, match="Bad.pair: a tuple flag needs one scalar item type"):
        parse_config(Bad, [])
    with pytest.raises(TypeError, match=r"preset 'B' sets \['sigma'\], which are not fields"):
        parse_config(_Args, [], presets={"B": {"sigma": 1.0}}, preset_by="env")


def test_help_lists_each_field_with_its_default(capsys):
    with pytest.raises(SystemExit) as caught:
        _parse("--help")
    assert caught.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--fast, --no-fast a bool that is off (default: False)" in out
    assert "--rate RATE a float (default: 0.5; presets may change it)" in out
    assert "--kind {a,b} a str with choices (default: 'a')" in out


# --- one build_optimizer for both sample scripts -------------------------------------------------


def _sample(name: str):
    spec = importlib.util.spec_from_file_location(
        f"_cli_sample_{name}", ROOT / "sample_scripts" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_both_scripts_build_the_same_optimizer_from_the_same_flags(optimizer):
    flags = ["--optimizer", optimizer, "--lr", "0.03", "--momentum", "0.5",
             "--betas", "0.8", "0.95", "--quiet"]  # fmt: skip
    rl, supervised = _sample("rl"), _sample("supervised")
    assert rl.build_optimizer is supervised.build_optimizer is build_optimizer
    threads = torch.get_num_threads()
    _, _, es_rl = rl.build(rl.parse_args(flags))
    es_supervised = supervised.build(supervised.parse_args(flags), 4, 2)
    torch.set_num_threads(threads)
    built = [es.optimizer for es in (es_rl, es_supervised)]
    assert type(built[0]) is type(built[1])
    groups = [{k: v for k, v in g.param_groups[0].items() if k != "params"} for g in built]
    assert groups[0] == groups[1] and groups[0]["lr"] == 0.03
    if optimizer == "rangerlite":
        assert groups[0]["betas"] == (0.8, 0.95)
    if optimizer in ("sgd", "clipup"):
        assert groups[0]["momentum"] == 0.5


def test_build_optimizer_keeps_the_scripts_conventions():
    params = [torch.nn.Parameter(torch.zeros(2))]
    # betas are RangerLite's only: a preset tuned for it leaves Adam and Ligi at their defaults
    assert build_optimizer("adam", params, 0.1, betas=(0.5, 0.5)).defaults["betas"] == (0.9, 0.999)
    assert build_optimizer("ligi", params, 0.1, betas=(0.5, 0.5)).defaults["betas"] == (0.9, 0.99)
    assert build_optimizer("rangerlite", params, 0.1).defaults["betas"] == (0.95, 0.999)
    assert build_optimizer("sgd", params, 0.1).defaults["momentum"] == 0.9
    with pytest.raises(ValueError, match="optimizer must be one of rangerlite, .*got 'lbfgs'"):
        build_optimizer("lbfgs", params, 0.1)
    with pytest.raises(ValueError, match="'clipup' has no weight_decay, got 0.1"):
        build_optimizer("clipup", params, 0.1, weight_decay=0.1)
    # ClipUp's speed limit: 2 lr unless given (EvoTorch's PGPE recipe: lr 0.1125, limit 0.15)
    assert build_optimizer("clipup", params, 0.1).defaults["max_speed"] is None
    assert build_optimizer("clipup", params, 0.1125, max_speed=0.15).defaults["max_speed"] == 0.15
    with pytest.raises(ValueError, match="max_speed is ClipUp's speed limit; optimizer 'adam'"):
        build_optimizer("adam", params, 0.1, max_speed=0.15)


def test_both_scripts_pass_the_speed_limit_to_clipup():
    flags = ["--optimizer", "clipup", "--lr", "0.1125", "--max-speed", "0.15", "--quiet"]
    rl, supervised = _sample("rl"), _sample("supervised")
    threads = torch.get_num_threads()
    _, _, es_rl = rl.build(rl.parse_args(flags))
    es_supervised = supervised.build(supervised.parse_args(flags), 4, 2)
    torch.set_num_threads(threads)
    for es in (es_rl, es_supervised):
        assert es.optimizer.param_groups[0]["max_speed"] == 0.15
    assert "max_speed" in rl.RUN_SETTINGS  # --resume restores it with the other settings


# --- extras are imported only when used ----------------------------------------------------------

_EXTRAS = {
    "rl": ("matplotlib", "PIL", "tensorboard", "torch.utils.tensorboard", "sklearn", "ray"),
    "supervised": ("matplotlib", "PIL", "tensorboard", "torch.utils.tensorboard", "gymnasium",
                   "sklearn", "ray"),
}  # fmt: skip


@pytest.mark.parametrize("script", sorted(_EXTRAS))
def test_sample_scripts_import_no_extra_before_they_use_it(script):
    """Loading a script and parsing its flags leaves the plotting, rendering, logging, data and
    Ray extras unimported (each costs start-up time and may be absent)."""
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('s', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['s'] = module\n"
        "spec.loader.exec_module(module)\n"
        "module.parse_args([])\n"
        f"print(sorted(x for x in {_EXTRAS[script]!r} if x in sys.modules))\n"
    )
    path = str(ROOT / "sample_scripts" / f"{script}.py")
    proc = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
