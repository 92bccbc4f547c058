"""notebooks/quickstart.ipynb runs headless (a seconds-long smoke config) and draws its figures."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # a kernel and a run
def test_quickstart_notebook_runs_and_plots(tmp_path, monkeypatch):
  monkeypatch.setenv("RLJAX_NOTEBOOK_SMOKE", "1")
  monkeypatch.setenv("RLJAX_NOTEBOOK_WORKDIR", str(tmp_path / "run"))
  monkeypatch.setenv("XLA_FLAGS", "")  # the notebook's kernel: one CPU device, like a user's
  nb = nbformat.read(os.path.join(ROOT, "notebooks", "quickstart.ipynb"), as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": ROOT}}).execute()
  code = [c for c in nb.cells if c.cell_type == "code"]
  for cell in code:
    assert all(o.output_type != "error" for o in cell.outputs), cell.source
  images = [c for c in code if any("image/png" in o.get("data", {}) for o in c.outputs)]
  assert len(images) == 3  # entropy curve, entropy-law fit, pass@k curves
  assert os.path.exists(tmp_path / "run" / "report" / "report.html")
