"""The `forecaster` command end to end on the bundled sample (1 epoch), and its error handling."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from forecaster.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    # `--verbose` exports FORECASTER_VERBOSE for the jobs it execs: undone after every test.
    monkeypatch.setenv("FORECASTER_VERBOSE", "0")
    monkeypatch.delenv("FORECASTER_LOG_FORMAT", raising=False)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FORECASTER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def write_csv(bars, path):
    """One ticker's bars in yfinance's CSV layout (Date, Open, ..., Adj Close, Volume)."""
    one = bars.drop(columns="ticker").rename(columns={"date": "Date", "adj_close": "Adj Close"})
    one.rename(columns=str.title).to_csv(path, index=False)
    return path


TINY = ["--epochs", "1", "--window", "10", "--horizon", "3", "--clusters", "2", "--hidden", "8"]


def test_quickstart_trains_forecasts_and_writes_model_plots_and_prices(home):
    # The verb execs `python -m pipelines.quickstart`, so it runs as a real process.
    result = subprocess.run(
        [sys.executable, "-m", "forecaster.cli", "quickstart", "--epochs", "1", "--clusters", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    result_text = result.stdout
    assert "Forecast of the adjusted close, as of 2018-12-31" in result.stdout
    assert "Theil U" in result.stdout and "^IXIC" in result.stdout
    assert "fcm-lstm v1 is champion (first model)" in result.stdout
    assert "no champion yet" not in result.stdout
    assert (home / "models" / "quickstart" / "weights.pt").is_file()
    reports = home / "reports" / "quickstart"
    for ticker in ("GSPC", "IXIC"):  # every ticker of the run
        for kind in ("fan", "regimes", "test"):
            assert (reports / f"{kind}_{ticker}.png").stat().st_size > 10_000
    assert (reports / "error_by_horizon.png").is_file() and (reports / "cluster_profiles.png").is_file()
    # MLflow's own chatter stays below warning level.
    assert "Creating initial MLflow database tables" not in result.stderr
    assert "Successfully registered model" not in result.stderr
    prices = (home / "prices").iterdir()  # hidden entries are the store's own (.locks)
    assert sorted(p.name for p in prices if not p.name.startswith(".")) == ["^GSPC.parquet", "^IXIC.parquet"]

    # `forecast` then reads the cached prices with the saved model.
    out = home / "forecast.csv"
    result = runner.invoke(
        app, ["forecast", str(home / "models" / "quickstart"), "-t", "^GSPC", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().count("^GSPC") == 5

    # The quickstart ran the batch job once: `runs` lists it, and its rows are in the store.
    assert "batch job: 10 forecast rows of ^GSPC, ^IXIC as of 2018-12-31 stored" in " ".join(
        result_text.split()
    )
    listed = runner.invoke(app, ["runs"])
    assert listed.exit_code == 0 and "batch_forecast" in listed.output and "no job runs" not in listed.output


def test_train_writes_a_model_directory_and_plots_from_a_csv_file(home, tmp_path, two_ticker_bars):
    csv = write_csv(two_ticker_bars[two_ticker_bars["ticker"] == "AAA"], tmp_path / "AAA.csv")
    args = ["train", "--source", str(csv), "-o", str(tmp_path / "m"), *TINY, "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "config.json").is_file()
    assert (tmp_path / "m" / "plots" / "fan_AAA.png").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["forecast", "no-such-model"], "not a model directory"),
        (["train", "--clusters", "many"], "--clusters must be an integer"),
        (["train", "--source", "sample", "-t", "NOPE"], "NOPE"),
        (["train", "--window", "2"], "--window must be >= 5"),
        (["train", "--horizon", "0"], "--horizon must be >= 1"),
        (["train", "--source", "prices/"], "--source prices/: no such file or folder"),
        (["train", "--config", "nope.toml"], "--config nope.toml: no such file"),
        (["quickstart", "--clusters", "many"], "--clusters must be an integer"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_2(home, args, message):
    assert_one_line_error(runner.invoke(app, args), message)


def assert_one_line_error(result, message: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert result.output.strip().splitlines() == [result.output.strip()], result.output
    assert result.output.startswith("error: ") and message in result.output, result.output
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny model (horizon 3) and the CSV of the bars it forecasts from."""
    from conftest import random_walk_bars
    from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig
    from forecaster.model import FuzzyLSTMForecaster

    folder = tmp_path_factory.mktemp("tiny")
    bars = random_walk_bars(300, "AAA", seed=1)
    config = ForecasterConfig(
        window=WindowConfig(window=10, horizon=3),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=1, batch_size=64, device="cpu", fine_tune_epochs=0),
    )
    FuzzyLSTMForecaster(config).fit(bars, progress=False).save(folder / "model")
    write_csv(bars, folder / "AAA.csv")
    return folder / "model"


def test_forecast_horizon_limits_the_table_and_is_checked(home, model_dir, tmp_path):
    csv, out = model_dir.parent / "AAA.csv", tmp_path / "f.csv"
    result = runner.invoke(
        app, ["forecast", str(model_dir), "--csv", str(csv), "--horizon", "2", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().count("AAA") == 2 and "AAA: regime" in result.output
    bad = runner.invoke(app, ["forecast", str(model_dir), "--csv", str(csv), "--horizon", "4"])
    assert_one_line_error(bad, "--horizon must be between 1 and 3 (this model's horizon), got 4")


def test_forecast_names_a_missing_csv_file(home, model_dir):
    result = runner.invoke(app, ["forecast", str(model_dir), "--csv", "missing.csv"])
    assert_one_line_error(result, "--csv missing.csv: no such file")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_fails_before_any_work_and_verbose_shows_the_traceback(home, monkeypatch):
    import forecaster.data

    def never(*args, **kwargs):
        raise AssertionError("bars were read before the device was checked")

    monkeypatch.setattr(forecaster.data, "load_bars", never)
    result = runner.invoke(app, ["train", "--device", "cuda"])
    assert_one_line_error(result, "device 'cuda' is not available")
    assert "available: cpu" in result.output and "CUDA build" in result.output
    verbose = runner.invoke(app, ["--verbose", "train", "--device", "cuda"])
    assert verbose.exit_code == 2 and "Traceback" in verbose.output
    assert verbose.output.strip().splitlines()[-1].startswith("error: device 'cuda'")


def test_offline_yahoo_says_it_could_not_reach_yahoo(home, monkeypatch):
    import requests

    from forecaster.data import yahoo

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'query2.finance.yahoo.com'")

    monkeypatch.setattr(yahoo, "_history", offline)
    result = runner.invoke(app, ["train", "--source", "yahoo", "-t", "AAPL", "--device", "cpu"])
    assert_one_line_error(result, "AAPL: could not reach Yahoo Finance (offline?)")
    assert "HTTP" not in result.output


def test_an_unexpected_error_is_one_line_with_exit_code_1(home, monkeypatch):
    import forecaster.data

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(forecaster.data, "load_bars", broken)
    result = runner.invoke(app, ["train", "--device", "cpu"])
    assert_one_line_error(result, "RuntimeError: disk on fire (run with --verbose for the traceback)", code=1)


def test_version_and_public_api():
    import forecaster

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"forecaster {forecaster.__version__}"
    assert forecaster.__version__[0].isdigit()
    assert {"FuzzyLSTMForecaster", "ForecasterConfig", "__version__"} <= set(dir(forecaster))
    assert set(forecaster.__all__) <= set(dir(forecaster))
    assert all(getattr(forecaster, name) is not None for name in forecaster.__all__)


def test_help_does_not_import_torch_mlflow_or_pandas_and_piped_help_honours_columns():
    code = (
        "import sys, runpy\n"
        "sys.argv = ['forecaster', 'train', '--help']\n"
        "try:\n    runpy.run_module('forecaster.cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'mlflow', 'pandas') if m in sys.modules]\n"
        "print(f'imported {heavy}' if heavy else 'no torch')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.stdout.strip().endswith("no torch"), result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) == 80  # piped without COLUMNS: what a terminal shows
    assert any("--config" in line for line in lines)
    wide = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env | {"COLUMNS": "120"}
    )
    assert max(len(line) for line in wide.stdout.splitlines()) == 120


def piped(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    """`forecaster ARGS | cat` with COLUMNS set, as a shell would run it."""
    env = {k: v for k, v in os.environ.items() if k != "TERMINAL_WIDTH"} | {"COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "forecaster.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_every_help_fits_80_piped_columns_with_examples_whole_and_no_bool_type():
    code = (
        "from forecaster.cli import app\n"
        "from typer.main import get_command_name\n"
        "for verb in [None, *(get_command_name(c.callback.__name__) for c in app.registered_commands)]:\n"
        "    print('=== ' + str(verb))\n"
        "    try:\n        app([verb, '--help'] if verb else ['--help'], prog_name='forecaster')\n"
        "    except SystemExit:\n        pass\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TERMINAL_WIDTH"} | {"COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    helps = result.stdout.split("=== ")[1:]
    assert len(helps) >= 13 and all("Usage: forecaster" in h for h in helps)
    for text in helps:
        long = [line for line in text.splitlines() if len(line) > 80]
        assert not long, long
        assert "<bool>" not in text, text
    backtest = next(h for h in helps if h.startswith("backtest"))
    # An example too long for 80 columns continues with a shell `\`, its options whole.
    assert "--sample 30 \\\n" in "\n".join(line.rstrip() for line in backtest.splitlines())
    assert "--start 2012-01-01 --market universe -o bt/" in backtest
    # Prose re-wrapped at the width, not the docstring's lines cut in two.
    assert "Walk-forward backtest of the fuzzy quantile ensemble against statistical and" in backtest
    assert "fuzzy_mse," in backtest and "fuzzy]" in backtest and "…" not in backtest  # wraps, not cut
    assert "--strict " in backtest and "--help " in backtest


def test_the_forecast_table_fits_80_piped_columns(home, model_dir):
    result = piped("forecast", str(model_dir), "--csv", str(model_dir.parent / "AAA.csv"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Forecast of the adjusted close" in result.stdout and "AAA: regime" in result.stdout
    assert max(len(line) for line in lines) <= 80, result.stdout


def test_a_long_error_on_a_terminal_wraps_between_words(home):
    import fcntl
    import pty
    import re
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    missing = "prices/of/every/ticker/in/the/universe/that/we/downloaded/last/week.parquet"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    process = subprocess.Popen(
        [sys.executable, "-m", "forecaster.cli", "train", "--source", missing],
        stdin=slave, stdout=slave, stderr=slave, env=env | {"NO_COLOR": "1"},
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert process.wait(timeout=60) == 2
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode())
    lines = [line.rstrip() for line in text.replace("\r", "").splitlines() if line.strip()]
    expected = f"error: --source {missing}: no such file or folder (or use one of sample, cache, yahoo)"
    assert len(lines) > 1 and max(len(line) for line in lines) <= 80, lines
    assert " ".join(lines).split() == expected.split()  # every word whole


def test_console_script_is_installed_with_help_for_every_verb():
    for verb in (
        "quickstart",
        "train",
        "forecast",
        "backtest",
        "tune",
        "promote",
        "models",
        "serve",
        "ingest",
        "batch-forecast",
        "runs",
    ):
        result = subprocess.run(
            [sys.executable, "-m", "forecaster.cli", verb, "--help"], capture_output=True, text=True
        )
        assert result.returncode == 0 and "Example" in result.stdout, result.stderr


def test_train_config_file_sets_the_model_and_command_line_options_override_it(home, tmp_path, model_dir):
    csv = model_dir.parent / "AAA.csv"
    toml = tmp_path / "model.toml"
    toml.write_text(
        "[window]\nwindow = 12\nhorizon = 2\n[cluster]\nn_clusters = 2\n"
        "[expert]\nhidden_size = 6\n[train]\nepochs = 3\nbatch_size = 64\ndevice = 'cpu'\n"
    )
    out = tmp_path / "m"
    args = [
        "train",
        "--config",
        str(toml),
        "--source",
        str(csv),
        "-o",
        str(out),
        "--epochs",
        "1",
        "--no-plots",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "config.json").read_text())
    assert saved["window"]["window"] == 12 and saved["window"]["horizon"] == 2  # from the file
    assert saved["expert"]["hidden_size"] == 6 and saved["train"]["batch_size"] == 64
    assert saved["train"]["epochs"] == 1  # given on the command line: it wins

    # A saved config.json is accepted back, as is YAML; the result is the same configuration.
    yaml = tmp_path / "model.yaml"
    yaml.write_text("window:\n  window: 12\n  horizon: 2\ntrain:\n  epochs: 1\n")
    from forecaster.cli.common import build_config, read_config_file
    from forecaster.config import ForecasterConfig

    assert build_config(out / "config.json") == ForecasterConfig.from_dict(saved)
    assert read_config_file(yaml) == {"window": {"window": 12, "horizon": 2}, "train": {"epochs": 1}}


@pytest.mark.parametrize(
    "text, message",
    [
        ("[train]\nepoch = 3\n", "unknown key train.epoch"),
        ("[model]\nx = 1\n", "unknown section 'model'"),
        ("[window]\nhorizon = 0\n", "horizon and stride >= 1"),
        ("[window\n", "model.toml:"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_file(home, tmp_path, text, message):
    (tmp_path / "model.toml").write_text(text)
    result = runner.invoke(app, ["train", "--config", str(tmp_path / "model.toml")])
    assert_one_line_error(result, message)
    assert "model.toml" in result.output
