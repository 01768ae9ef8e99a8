"""The documentation's frame: the README, the getting-started page and the guides run every
example they show (``tests/test_docs_examples.py`` runs the examples of every page, each script
in a fresh process; here: none of these pages' ```python blocks is only shown), and the site's
navigation covers every page and every public module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from es_opt._moved import MOVED
from tests.test_docs_examples import SCRIPTS, blocks_of

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
"""Pages a reader follows by hand: every ```python block on them runs (no ``no-test`` mark)."""


@pytest.mark.parametrize("page", RUN_PAGES)
def test_every_example_of_a_guide_runs(page):
    blocks = blocks_of(ROOT / page)
    assert blocks, f"{page} has no python block to run"
    run = {(block.page, block.line) for script in SCRIPTS for block in script.blocks}
    shown = [block.line for block in blocks if (block.page, block.line) not in run]
    assert not shown, (
        f"{page}: the python blocks at lines {shown} are not run by test_docs_examples.py "
        "(a guide's examples run as written: make them self-contained or continue the page)"
    )


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
