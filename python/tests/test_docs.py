"""The self-contained examples of docs/python.md (the blocks that start with an import and
elide nothing) run as written."""
from __future__ import annotations

import re

import pytest

from conftest import REPO

DOC = (REPO / "docs" / "python.md").read_text()
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", DOC, flags=re.S) if b.startswith("import ") and "import torch" not in b and "..." not in b]


def test_the_guide_has_runnable_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_doc_example_runs(code, capsys):
    exec(compile(code, "docs/python.md", "exec"), {})
