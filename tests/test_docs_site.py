"""The documentation site builds offline with `mkdocs build --strict`, API reference and notebooks included."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).with_name("mkdocs")
# The API reference: one page per stage package (mkdocs.yml's nav, docs/reference/).
STAGES = "config data features regimes experts calibration evaluation walkforward tracking".split()

pytestmark = pytest.mark.skipif(
    not MKDOCS.is_file(), reason=f"mkdocs is not installed next to {sys.executable} (pip install -e '.[dev]')"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Build the site once for every test here; warnings (a broken link, a missing module) fail it."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out


def test_site_builds_strict_with_every_guide_page(site):
    for page in (
        "index.html",
        "getting-started/index.html",
        "python-api/index.html",
        "concepts/index.html",
        "cli/index.html",
        "http-api/index.html",
        "mlflow/index.html",
        "deployment/index.html",
        "ray/index.html",
        "benchmarks/index.html",
        "honest-numbers/index.html",
        "architecture/index.html",
    ):
        assert (site / page).is_file(), page


def test_api_reference_is_generated_from_the_docstrings(site):
    model_page = (site / "reference" / "model" / "index.html").read_text()
    assert "FuzzyLSTMForecaster" in model_page
    for method in ("historical_forecasts", "predict", "save", "load"):
        assert f'id="forecaster.model.FuzzyLSTMForecaster.{method}"' in model_page, method
    for stage in STAGES:
        assert (site / "reference" / stage / "index.html").is_file(), stage


def test_notebooks_are_rendered_as_pages(site):
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = site / "notebooks" / notebook.stem / "index.html"
        assert page.is_file(), page
        assert "jupyter-wrapper" in page.read_text()  # rendered by mkdocs-jupyter, not copied as a file


def test_site_links_no_web_fonts_or_cdn_assets(site):
    """It reads offline: Material's fonts are off and its search is built in."""
    index = (site / "index.html").read_text()
    assert "fonts.googleapis.com" not in index
    assert (site / "search" / "search_index.json").is_file()
