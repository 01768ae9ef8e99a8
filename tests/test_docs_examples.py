"""Every code example of README.md and docs/ runs as written, in a fresh Python process, within a
time limit, so that an example that breaks or slows down fails the suite.

Which ```python blocks run, by one rule (Python's own :mod:`symtable` decides what a block uses):

* A block that defines or imports every name it uses (builtins aside) is *self-contained*: it
  starts a script.
* A block whose other names are all defined by the script before it on the same page (a reader
  runs a page's examples in order) *continues* that script.
* Any other block is a fragment (it uses the reader's own ``model``, or ``...``): it must carry
  ``<!-- no-test: why -->`` on the line before it, and is not run. So a new example either runs
  or says why not.

Each script (a self-contained block and the blocks that continue it) runs as ``python
example.py`` in an empty folder with a time limit of :data:`LIMIT` seconds; one whose block
carries ``<!-- slow-test: why -->`` gets :data:`SLOW_LIMIT` and the ``slow`` mark. ```py blocks
are shown, never run (signatures, sketches); so are ```bash blocks.

The scripts run with one torch thread (``OMP_NUM_THREADS=1``): on a busy machine torch's
intra-op threads spin waiting for each other, and the supervised example, 13 s on a quiet 2-core
machine, took 492 s on two threads against 86 s on one at a load of 12-14.
"""

from __future__ import annotations

import builtins
import os
import re
import signal
import subprocess
import symtable
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
LIMIT = 120.0
"""Seconds a script may take: a few times what the slowest ordinary example takes on a busy
2-core machine (a load of 4-5), so that only a real slow-down fails."""
SLOW_LIMIT = 400.0
"""Seconds for a script marked ``slow-test`` (a real training run: the supervised example takes
13 s on a quiet 2-core machine, 86 s at a load of 12-14)."""

FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARK = re.compile(r"<!--\s*(no-test|slow-test)\s*:\s*(.+?)\s*-->\s*$")
BUILTINS = frozenset(dir(builtins))


@dataclass
class Block:
    page: str
    line: int  # of the opening fence
    code: str
    mark: str | None  # "no-test" or "slow-test"
    reason: str


@dataclass
class Script:
    page: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page}:{'+'.join(str(b.line) for b in self.blocks)}"

    @property
    def slow(self) -> bool:
        return any(block.mark == "slow-test" for block in self.blocks)


def names(code: str, where: str) -> tuple[set[str], set[str]]:
    """The names a block defines at its top level, and those it uses without defining."""
    top = symtable.symtable(code, where, "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    used: set[str] = set()
    tables = [top]
    while tables:
        table = tables.pop()
        for symbol in table.get_symbols():
            if symbol.is_referenced() and (table is top or symbol.is_global()):
                used.add(symbol.get_name())
        tables.extend(table.get_children())
    return defined, used - defined - BUILTINS


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    name = str(page.relative_to(ROOT))
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = MARK.search(before)
        found.append(
            Block(
                page=name,
                line=text.count("\n", 0, match.start()) + 1,
                code=match.group(1),
                mark=mark.group(1) if mark else None,
                reason=mark.group(2) if mark else "",
            )
        )
    return found


def scripts_and_fragments() -> tuple[list[Script], list[tuple[Block, set[str]]]]:
    """Cuts every page into scripts by the rule of the module docstring; the fragments come back
    with the names they miss."""
    scripts: list[Script] = []
    fragments: list[tuple[Block, set[str]]] = []
    for page in PAGES:
        current: Script | None = None
        known: set[str] = set()
        for block in blocks_of(page):
            if block.mark == "no-test":
                continue
            defined, missing = names(block.code, f"{block.page}:{block.line}")
            if not missing:
                current, known = Script(block.page), set()
                scripts.append(current)
            elif current is None or missing - known:
                fragments.append((block, missing - known))
                continue
            current.blocks.append(block)
            known |= defined
    return scripts, fragments


SCRIPTS, FRAGMENTS = scripts_and_fragments()


def as_param(script: Script):
    marks = [pytest.mark.slow, pytest.mark.timeout(SLOW_LIMIT + 60)] if script.slow else []
    return pytest.param(script, id=script.id, marks=marks)


@pytest.mark.parametrize("script", [as_param(s) for s in SCRIPTS])
def test_the_example_runs_as_written(script, tmp_path):
    source = "\n".join(f"# {b.page}, block at line {b.line}\n{b.code}" for b in script.blocks)
    (tmp_path / "example.py").write_text(source, encoding="utf-8")
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    limit = SLOW_LIMIT if script.slow else LIMIT
    process = subprocess.Popen(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so that a timeout stops its worker processes too
    )
    try:
        output, _ = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{script.id} did not finish within {limit:g} s; its output:\n{output[-3000:]}")
    assert process.returncode == 0, f"{script.id} failed:\n{output[-6000:]}"


def test_every_python_block_runs_or_says_why_not():
    unmarked = [f"{b.page}:{b.line} uses {', '.join(sorted(m))}" for b, m in FRAGMENTS]
    assert not unmarked, (
        "```python blocks that neither run alone nor continue the page's examples (define what "
        "they use, or put <!-- no-test: why --> on the line before them):\n" + "\n".join(unmarked)
    )


def test_the_rule_finds_scripts_and_reasons():
    # the rule is not vacuous: the README's quick start runs, and every skip says why
    assert any(script.page == "README.md" for script in SCRIPTS)
    skipped = [b for page in PAGES for b in blocks_of(page) if b.mark == "no-test"]
    assert all(len(b.reason) > 10 for b in skipped), [f"{b.page}:{b.line}" for b in skipped]


@pytest.mark.parametrize(
    "code, defined, missing",
    [
        ("import torch\nnet = torch.nn.Linear(2, 1)\n", {"torch", "net"}, set()),
        ("opt = RangerLite(model.parameters())\n", {"opt"}, {"RangerLite", "model"}),
        ("def f(x):\n    return x + scale\nprint(f(1))\n", {"f"}, {"scale"}),
        ("class A:\n    n = len([i for i in range(3)])\n", {"A"}, set()),
    ],
    ids=["imports", "fragment", "function", "class"],
)
def test_names_of_a_block(code, defined, missing):
    assert names(code, "<test>") == (defined, missing)
