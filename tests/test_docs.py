"""The documentation runs: every ```python block of the README, the getting-started page and the
guides is executed (blocks of one page share a namespace, in order; ```py blocks are shown but not
run), and the site's navigation covers every page and every public module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from es_opt._moved import MOVED

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RUN_PAGES = [
    "README.md",
    "docs/getting-started.md",
    "docs/guides/objectives.md",
    "docs/guides/checkpoints.md",
    "docs/run-records.md",
    "docs/guides/migrating.md",
]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[str]:
    return FENCE.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", RUN_PAGES)
def test_every_python_block_runs(page, tmp_path, monkeypatch):
    path = ROOT / page
    assert path.is_file(), f"{page} is missing"
    blocks = python_blocks(path)
    assert blocks, f"{page} has no python block to run"
    monkeypatch.chdir(tmp_path)  # blocks may write files (logs, checkpoints, plots)
    namespace: dict = {"__name__": "__docs__"}
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"{page} (python block {number})", "exec")
        exec(code, namespace)  # a failure names the page and the block in its traceback


def nav_pages() -> set[str]:
    text = (ROOT / "mkdocs.yml").read_text()
    return set(re.findall(r":\s*([\w/.-]+\.md)\s*$", text, re.MULTILINE))


def test_the_navigation_lists_every_page():
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages - nav_pages() == set(), "pages missing from the nav of mkdocs.yml"
    assert nav_pages() - pages == set(), "nav entries without a page"


def test_every_public_module_has_an_api_page():
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)", page.read_text(), re.MULTILINE))
    modules = set()
    for path in (ROOT / "es_opt").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if any(part.startswith("_") and part != "__init__" for part in parts):
            continue
        modules.add(".".join(p for p in parts if p != "__init__"))
    moved = set(MOVED)  # the deprecated aliases of modules that moved (es_opt/_moved.py)
    assert modules - documented - moved == set(), "public modules without an API reference entry"
