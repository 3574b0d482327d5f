"""`forecaster risk` and `forecaster rank` on a tiny model and six tickers in the price store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import random_walk_bars
from forecaster.cli import app
from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig
from forecaster.data import PriceStore
from forecaster.model import FuzzyLSTMForecaster

runner = CliRunner()
TICKERS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]


@pytest.fixture(scope="module")
def model_home(tmp_path_factory):
    """A data folder whose price store holds six tickers, and a tiny model (horizon 3) of them."""
    home = tmp_path_factory.mktemp("products") / "home"
    vols = np.linspace(0.005, 0.03, len(TICKERS))
    bars = pd.concat(
        [random_walk_bars(260, t, seed=i, vol=v) for i, (t, v) in enumerate(zip(TICKERS, vols, strict=True))],
        ignore_index=True,
    )
    PriceStore(home / "prices").write(bars)
    config = ForecasterConfig(
        window=WindowConfig(window=10, horizon=3),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=1, batch_size=64, device="cpu", fine_tune_epochs=0),
    )
    FuzzyLSTMForecaster(config).fit(bars, progress=False).save(home / "model")
    return home


@pytest.fixture
def home(model_home, monkeypatch):
    monkeypatch.setenv("FORECASTER_HOME", str(model_home))
    monkeypatch.setenv("FORECASTER_VERBOSE", "0")
    return model_home


def test_risk_prints_var_and_es_and_writes_the_csv_and_the_loss_plot(home, tmp_path):
    out, png = tmp_path / "risk.csv", tmp_path / "loss.png"
    args = ["risk", str(home / "model"), "-t", "AAA", "-t", "FFF", "--weights", "aaa=0.25,FFF=0.75"]
    result = runner.invoke(app, [*args, "--paths", "2000", "-o", str(out), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "Joint forecast as of 2010-12-31, 3 trading days ahead, 2,000 paths" in result.output
    assert "Portfolio" in result.output and "component ES" in result.output
    table = pd.read_csv(out)
    assert list(table["ticker"]) == ["AAA"] * 3 + ["FFF"] * 3 + ["(portfolio)"] * 3
    tickers, portfolio = table.iloc[:6], table.iloc[6:].set_index("alpha")
    assert tickers.groupby("alpha")["component_es"].sum().to_numpy() == pytest.approx(
        portfolio["es"].to_numpy()
    )
    assert list(tickers["weight"].unique()) == [0.25, 0.75] and (table["es"] >= table["var"]).all()
    assert png.stat().st_size > 10_000
    again = runner.invoke(app, [*args, "--paths", "2000", "--alpha", "0.05", "-o", str(out)])
    assert again.exit_code == 0, again.output
    seeded = pd.read_csv(out)["var"].iloc[:2].tolist()  # the same paths: the same numbers at 0.05
    assert seeded == tickers["var"].iloc[[2, 5]].tolist()


def test_rank_writes_the_m6_layout_and_a_heatmap(home, tmp_path):
    out, png = tmp_path / "m6.csv", tmp_path / "ranks.png"
    result = runner.invoke(
        app,
        [
            "rank",
            str(home / "model"),
            "--horizon",
            "2",
            "--paths",
            "2000",
            "-o",
            str(out),
            "--plot",
            str(png),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Joint forecast as of 2010-12-31, 2 trading days ahead" in result.output
    assert out.read_text().splitlines()[0] == "ID,Rank1,Rank2,Rank3,Rank4,Rank5"
    table = pd.read_csv(out)
    assert sorted(table["ID"]) == TICKERS and table.iloc[:, 1:].sum(axis=1).to_numpy() == pytest.approx(1.0)
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize(
    "args, message",
    [
        (["rank", "-t", "AAA", "-t", "BBB"], "ranking into quintiles needs at least 5 tickers, got 2"),
        (["risk", "--horizon", "4"], "--horizon must be between 1 and 3 (this model's horizon), got 4"),
        (["risk", "--weights", "AAA=half"], "--weights: 'AAA=half' is not TICKER=NUMBER"),
        (["risk", "--weights", "AAA=0,BBB=0"], "--weights: every weight is 0"),
        (["risk", "--weights", "ZZZ=1"], "weights name ticker(s) not in the portfolio: ZZZ"),
        (["risk", "--alpha", "0.7"], "--alpha must be a tail probability in (0, 0.5], got 0.7"),
        (["risk", "--paths", "0"], "--paths must be >= 1, got 0"),
        (["rank", "-t", "NOPE"], "NOPE"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(home, args, message):
    verb, *rest = args
    paths = [] if "--paths" in rest else ["--paths", "500"]  # the last given wins
    result = runner.invoke(app, [verb, str(home / "model"), *rest, *paths])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith("error: ") and message in result.output
    assert "Traceback" not in result.output
