"""Every python block of docs/pytorch.md runs, as a user would run it, and succeeds."""

import os
import re
import subprocess
import sys

import pytest

PAGE = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "pytorch.md")
BLOCKS = re.findall(r"^```python\n(.*?)^```$", open(PAGE).read(), re.S | re.M)


def test_the_page_has_python_blocks():
    assert BLOCKS


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.splitlines()[0])
def test_block_runs(block, tmp_path):
    result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
