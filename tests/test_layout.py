"""The package's layering (docs/architecture.md): a lower layer never imports a higher one, counting
every import (also inside functions and under TYPE_CHECKING), and no module grows past the size at
which it stops having one job."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "es_opt"

APPLICATIONS = ("es_opt.rl", "es_opt.supervised", "es_opt.search", "es_opt.text")
SHELL = ("es_opt.training", "es_opt.cli", "es_opt.record")
STEP = ("es_opt.optimizer",)

# module prefix -> prefixes it must never import
FORBIDDEN = {
    "es_opt.evaluators": APPLICATIONS + SHELL + STEP + ("es_opt.loop",),
    "es_opt.optim": APPLICATIONS + SHELL + STEP + ("es_opt.evaluators", "es_opt.loop"),
    "es_opt.perturbations": APPLICATIONS + SHELL + STEP + ("es_opt.evaluators",),
    "es_opt.distributions": APPLICATIONS + SHELL + STEP + ("es_opt.evaluators",),
    "es_opt.training": APPLICATIONS,
    "es_opt.record": APPLICATIONS,
    "es_opt.loop": APPLICATIONS + SHELL + STEP,
    "es_opt.history": APPLICATIONS + SHELL + STEP,
}
CORE_FILES = (
    "model",
    "objective",
    "fitness",
    "population",
    "noise",
    "shaping",
    "estimator",
    "step",
    "update",
    "state",
    "result",
    "errors",
    "_validation",
    "_arguments",
)
for name in CORE_FILES:
    FORBIDDEN[f"es_opt.{name}"] = APPLICATIONS + SHELL + STEP + ("es_opt.evaluators", "es_opt.loop")

MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(name: str, source: str, is_package: bool = False) -> set[str]:
    package = name if is_package else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return {target for target in out if target.startswith("es_opt")}


def rules_for(name: str) -> tuple[str, ...]:
    return tuple(
        banned
        for prefix, bans in FORBIDDEN.items()
        if name == prefix or name.startswith(prefix + ".")
        for banned in bans
    )


FILES = sorted(PACKAGE.rglob("*.py"))


def upward_imports(name: str, source: str, is_package: bool = False) -> list[str]:
    banned = rules_for(name)
    return sorted(
        target
        for target in imported(name, source, is_package)
        for prefix in banned
        if target == prefix or target.startswith(prefix + ".")
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    name = module_name(path)
    source = path.read_text(encoding="utf-8")
    upward = upward_imports(name, source, path.name == "__init__.py")
    assert not upward, f"{name} imports a higher layer: {upward}"


def test_the_check_catches_upward_imports_of_every_kind():
    lazy = "def f():\n    from .training import fit\n"
    typing_only = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..optimizer import X\n"
    )
    assert upward_imports("es_opt.estimator", lazy) == ["es_opt.training", "es_opt.training.fit"]
    assert upward_imports("es_opt.evaluators.base", typing_only) == [
        "es_opt.optimizer",
        "es_opt.optimizer.X",
    ]
    assert upward_imports("es_opt.training.plot", "import es_opt.rl.objective\n") == [
        "es_opt.rl.objective"
    ]
    assert upward_imports("es_opt.rl.objective", "from ..training import fit\n") == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_one_job_allows(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines: split it"
