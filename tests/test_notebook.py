"""The Colab notebook executes top to bottom (nbclient) with a tiny student and the local teacher."""

import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # executes the notebook in a kernel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_notebook_runs(monkeypatch):
    monkeypatch.setenv("LLM2LLM_NOTEBOOK_SMOKE", "1")
    path = os.path.join(ROOT, "notebooks", "llm2llm_colab.ipynb")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "trec llm2llm 2 local" in outputs
    rows = [
        tuple(int(x) for x in (m[0], m[1], m[4])) + (float(m[2]), float(m[3]))
        for m in re.findall(r"^(\d+) (\d+) seed ([\d.]+)% test ([\d.]+)% new (\d+)$", outputs, re.M)
    ]
    assert [r[0] for r in rows] == [0, 1], outputs  # one printed line per iteration
    (_, size0, new0, seed_acc0, _), (_, size1, _, _, _) = rows
    assert size0 == 8 and size1 == size0 + new0  # the seed set, then the seed set plus what was kept
    assert 0.0 <= seed_acc0 <= 100.0
    shown = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "display_data"]
    assert any(o["data"].get("image/png") for o in shown)
    tables = [o["data"]["text/markdown"] for o in shown if "text/markdown" in o["data"]]
    assert tables and "| iteration | train size |" in tables[0] and tables[0].count("\n| 1 |") == 1
