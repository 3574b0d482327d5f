"""The layers are a checked contract, and every module stays small enough to read in one go."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("forecaster", "pipelines", "service")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    env = {"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_import_layers_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path):
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    windows = tmp_path / "forecaster" / "windows.py"
    windows.write_text(windows.read_text() + "\nfrom forecaster.model import FuzzyLSTMForecaster  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "forecaster.windows -> forecaster.model" in result.stdout


def test_no_module_is_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for name in PACKAGES
        for p in (ROOT / name).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, f"split these by concern: {long}"
