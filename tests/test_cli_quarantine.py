"""A universe with one bad ticker: the command line leaves it out and says so; --strict stops."""

import pytest
from typer.testing import CliRunner

from conftest import random_walk_bars
from forecaster.cli import app

runner = CliRunner()


@pytest.fixture
def universe_csv(tmp_path):
    import pandas as pd

    bars = pd.concat(
        [random_walk_bars(120, t, seed=i) for i, t in enumerate(("AAA", "BAD", "CCC"))], ignore_index=True
    )
    bad = bars.index[(bars["ticker"] == "BAD")][50]
    bars.loc[bad, "close"] = bars.loc[bad, "low"] / 10  # a bad print: close far below the day's low
    path = tmp_path / "universe.csv"
    bars.to_csv(path, index=False)
    return path


def test_a_bad_ticker_is_quarantined_with_a_report_and_strict_stops(universe_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("FORECASTER_HOME", str(tmp_path / "home"))
    args = [
        "train",
        "--source",
        str(universe_csv),
        "-o",
        str(tmp_path / "m"),
        "--epochs",
        "1",
        "--window",
        "10",
    ]
    args += ["--horizon", "3", "--clusters", "2", "--hidden", "8", "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "quarantined" in result.output and "BAD: close" in result.output and "[low" in result.output
    assert "2 ticker(s) (AAA, CCC)" in result.output

    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 2 and "BAD: close" in strict.output and "Traceback" not in strict.output
