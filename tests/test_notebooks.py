"""Notebooks run top to bottom on tiny settings, so they never rot."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
TINY = (
    'EPOCHS = 1\nN_CLUSTERS = 2\nTICKERS = ["^GSPC"]\n'
    # Used by 02-regimes-and-backtest only: one short fold, small experts, no ARIMA grid.
    'BACKTEST_START = "2018-11-01"\nBACKTEST_END = "2018-12-14"\nREFIT_EVERY = 250\nHIDDEN = 4\n'
    'MODELS = ["naive", "drift", "equal_weight", "fuzzy"]'
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_clean_on_tiny_settings(path, tmp_path, monkeypatch):
    """Top to bottom with no warning or error shown, and nothing written outside FORECASTER_HOME."""
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit notebooks without outputs"
    )
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            cell.source = TINY
    monkeypatch.setenv("FORECASTER_HOME", str(tmp_path / "home"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    shown = [
        output.get("text", "")
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if output.get("name") == "stderr" or output.get("output_type") == "error"
    ]
    assert not shown, shown
    assert not list(cwd.iterdir()), "notebooks write under FORECASTER_HOME only"
    assert list((tmp_path / "home" / "reports" / "notebooks").glob("*.png"))
