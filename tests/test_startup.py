"""Quick starts: `forecaster --version` answers without importing numpy, pandas or pydantic-settings."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import forecaster


def test_version_imports_nothing_heavy():
    code = (
        "import sys; sys.argv = ['forecaster', '--version']\n"
        "from forecaster.cli.entry import main; main()\n"
        "heavy = [m for m in ('numpy', 'pandas', 'torch', 'pydantic_settings', 'typer') if m in sys.modules]\n"
        "print('heavy:', ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines == [f"forecaster {forecaster.__version__}", "heavy: "]


def test_the_installed_console_script_and_the_package_agree_on_the_version():
    assert metadata.version("fcm-lstm-forecaster") == forecaster.__version__
    script = str(Path(sys.executable).with_name("forecaster"))
    out = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == f"forecaster {forecaster.__version__}"
    help_out = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert help_out.returncode == 0 and "quickstart" in help_out.stdout  # the full app still answers


@pytest.mark.parametrize(
    ("module", "unwanted"),
    [
        ("pipelines.batch_forecast", ("yfinance", "arch", "matplotlib", "torch")),
        ("service.main", ("yfinance", "arch")),
    ],
)
def test_jobs_and_api_workers_import_no_downloader_or_sample_until_they_need_them(module, unwanted):
    """The batch job and the API read the price store: the downloader (yfinance), the bundled sample
    (arch, which pulls matplotlib) and, for the job, torch (loaded with the model) would cost every
    start ~0.5-1.5 s before any work."""
    code = f"import sys, {module}\nprint(','.join(m for m in {unwanted!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
