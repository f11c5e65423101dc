"""The Colab notebook executes top to bottom (nbclient) with a tiny student and the local teacher."""

import os

import nbformat
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_notebook_runs(monkeypatch):
    monkeypatch.setenv("LLM2LLM_NOTEBOOK_SMOKE", "1")
    path = os.path.join(ROOT, "notebooks", "llm2llm_colab.ipynb")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "trec llm2llm 2 local" in outputs
    assert "seed" in outputs and "test" in outputs
    shown = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "display_data"]
    assert any("image/png" in o["data"] for o in shown)
