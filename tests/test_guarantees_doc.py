"""docs/guides/guarantees.md names, for each promise, the tests that pin it: every test it names
exists, so a renamed or deleted test cannot leave the page pointing at nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "guides" / "guarantees.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def test_every_test_the_guarantees_page_names_exists():
    references = REFERENCE.findall(PAGE.read_text(encoding="utf-8"))
    assert len(references) >= 40  # the page still names its tests
    missing = [
        f"{path}::{name}"
        for path, name in references
        if not (ROOT / path).is_file()
        or not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.MULTILINE)
    ]
    assert missing == [], f"guarantees.md names tests that do not exist: {missing}"
    sections = re.findall(r"^## (.+)$", PAGE.read_text(encoding="utf-8"), re.MULTILINE)
    for topic in ("resume", "invariance", "All-or-nothing", "integrity", "Fault", "dynamo"):
        assert any(topic in section for section in sections), topic
