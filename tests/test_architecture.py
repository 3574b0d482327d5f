"""The layers are a checked contract, and every module stays small enough to read in one go."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


# (module that gets a forbidden import, what it imports, the line lint-imports must report)
BREAKS = [
    ("forecaster/features/windows.py", "forecaster.model", "forecaster.features.windows -> forecaster.model"),
    (
        "forecaster/data/store.py",
        "forecaster.features.windows",
        "forecaster.data.store -> forecaster.features.windows",
    ),
    (
        "forecaster/regimes/fcm.py",
        "forecaster.experts.network",
        "forecaster.regimes.fcm -> forecaster.experts.network",
    ),
    ("forecaster/calibration/cqr.py", "forecaster.model", "forecaster.calibration.cqr -> forecaster.model"),
    ("forecaster/runtime/progress.py", "forecaster.data", "forecaster.runtime.progress -> forecaster.data"),
    (
        "forecaster/evaluation/scoring.py",
        "forecaster.tracking",
        "forecaster.evaluation.scoring -> forecaster.tracking",
    ),
    ("forecaster/model.py", "service.main", "forecaster.model -> service.main"),
]


@pytest.mark.parametrize(("module", "imported", "reported"), BREAKS, ids=[b[0] for b in BREAKS])
def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path, module, imported, reported):
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / module
    path.write_text(path.read_text() + f"\nimport {imported}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert reported in result.stdout


def test_no_function_in_the_library_is_over_60_lines():
    long = []
    for p in (ROOT / "forecaster").rglob("*.py"):
        if "migrations" in p.parts:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if (n := node.end_lineno - node.lineno + 1) > 60:
                    long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "split these into named steps: " + ", ".join(long)


def test_no_module_is_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for name in PACKAGES
        for p in (ROOT / name).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, f"split these by concern: {long}"
