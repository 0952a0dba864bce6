"""docs/quickstart.ipynb runs top to bottom (nbclient), so the notebook never rots."""

import os

import nbclient  # the test extra (setup.cfg), with nbformat and ipykernel
import nbformat

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NOTEBOOK = os.path.join(_REPO, "docs", "quickstart.ipynb")


def test_quickstart_notebook_runs(monkeypatch):
  # The kernel imports lift3d from this tree, whatever is installed.
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      p for p in (_REPO, os.environ.get("PYTHONPATH")) if p))
  monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws PNGs
  notebook = nbformat.read(_NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": _REPO}})
  client.execute()  # raises CellExecutionError on the first failing cell
  code = [cell for cell in notebook.cells if cell.cell_type == "code"]
  assert len(code) == 5 and all(cell.execution_count for cell in code)
  text = "".join(out.get("text", "") for cell in code for out in cell.outputs)
  assert "PA-MPJPE" in text and "K=2 components" in text, text
  # The quick-start lifts well: the printed PA-MPJPE is a real error, and small.
  pa = float(text.split("PA-MPJPE ")[1].split(" mm")[0])
  assert 0 < pa < 100, text
  # The last cell draws the figure.
  assert any("image/png" in out.get("data", {}) for out in code[-1].outputs), code[-1].outputs
