"""The `forecaster` command end to end on the bundled sample (1 epoch), and its error handling."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from forecaster.cli import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FORECASTER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_quickstart_trains_forecasts_and_writes_model_plots_and_prices(home):
    # The verb execs `python -m pipelines.quickstart`, so it runs as a real process.
    result = subprocess.run(
        [sys.executable, "-m", "forecaster.cli", "quickstart", "--epochs", "1", "--clusters", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Forecast of the adjusted close, as of 2018-12-31" in result.stdout
    assert "Theil U" in result.stdout and "^IXIC" in result.stdout
    assert "champion: no champion yet" in result.stdout
    assert (home / "models" / "quickstart" / "weights.pt").is_file()
    assert (home / "reports" / "quickstart" / "forecast_vs_actual.png").stat().st_size > 10_000
    assert (home / "reports" / "quickstart" / "memberships.png").stat().st_size > 10_000
    prices = (home / "prices").iterdir()  # hidden entries are the store's own (.locks)
    assert sorted(p.name for p in prices if not p.name.startswith(".")) == ["^GSPC.parquet", "^IXIC.parquet"]

    # `forecast` then reads the cached prices with the saved model.
    out = home / "forecast.csv"
    result = runner.invoke(
        app, ["forecast", str(home / "models" / "quickstart"), "-t", "^GSPC", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().count("^GSPC") == 5


def test_train_writes_a_model_directory_from_a_csv_file(home, tmp_path, two_ticker_bars):
    one = two_ticker_bars[two_ticker_bars["ticker"] == "AAA"].drop(columns="ticker")
    csv = tmp_path / "AAA.csv"
    one.rename(columns={"date": "Date", "adj_close": "Adj Close"}).rename(columns=str.title).to_csv(
        csv, index=False
    )
    args = [
        "train",
        "--source",
        str(csv),
        "-o",
        str(tmp_path / "m"),
        "--epochs",
        "1",
        "--window",
        "10",
        "--horizon",
        "3",
        "--clusters",
        "2",
        "--hidden",
        "8",
        "--device",
        "cpu",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "config.json").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["forecast", "no-such-model"], "not a model directory"),
        (["train", "--clusters", "many"], "--clusters must be an integer"),
        (["train", "--source", "sample", "-t", "NOPE"], "NOPE"),
        (["train", "--window", "2"], "window must be >= 5"),
        (["quickstart", "--clusters", "many"], "--clusters must be an integer"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_2(home, args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_console_script_is_installed_with_help_for_every_verb():
    for verb in (
        "quickstart",
        "train",
        "forecast",
        "backtest",
        "promote",
        "models",
        "serve",
        "ingest",
        "runs",
    ):
        result = subprocess.run(
            [sys.executable, "-m", "forecaster.cli", verb, "--help"], capture_output=True, text=True
        )
        assert result.returncode == 0 and "Example" in result.stdout, result.stderr
