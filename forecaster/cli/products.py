"""Products of a joint forecast of several tickers: `risk` (VaR / ES) and `rank` (M6 quintiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forecaster.cli.common import SourceOpt, StrictOpt, TickersOpt, friendly_errors, load
from forecaster.cli.render import Column, Layout, print_table, say
from forecaster.config import Settings

ModelDirArg = Annotated[Path, typer.Argument(help="A model directory written by `forecaster train`.")]
HorizonOpt = Annotated[
    int | None, typer.Option(help="Trading days ahead, 1 up to the model's horizon (default the model's).")
]
WeightsOpt = Annotated[
    str | None,
    typer.Option(
        help="Portfolio weights as fractions of value, 'A=0.5,B=0.5' (unnamed tickers: 0); default equal."
    ),
]
AlphaOpt = Annotated[
    list[float] | None,
    typer.Option(
        "--alpha", help="Tail probability of VaR / ES, in (0, 0.5] (repeatable); default 0.01, 0.025, 0.05."
    ),
]
PathsOpt = Annotated[int, typer.Option(help="Simulated paths of the joint forecast.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the simulation (same seed, same numbers).")]
RiskCsvOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Also write the tables as CSV (portfolio rows last).")
]
RankCsvOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write the ranks as CSV in M6's layout: ID,Rank1..Rank5."),
]
RiskPlotOpt = Annotated[
    Path | None, typer.Option(help="Write a PNG of the portfolio's loss distribution with VaR and ES marked.")
]
RankPlotOpt = Annotated[Path | None, typer.Option(help="Write a PNG heatmap of tickers x quintiles.")]

PORTFOLIO = "(portfolio)"  # the CSV's ticker of the portfolio rows: no ticker can be named so


@friendly_errors
def risk(
    model_dir: ModelDirArg,
    ticker: TickersOpt = None,
    source: SourceOpt = "cache",
    strict: StrictOpt = False,
    weights: WeightsOpt = None,
    horizon: HorizonOpt = None,
    alpha: AlphaOpt = None,
    paths: PathsOpt = 10_000,
    seed: SeedOpt = 0,
    output: RiskCsvOpt = None,
    plot: RiskPlotOpt = None,
) -> None:
    """Value at risk and expected shortfall of each ticker and of a portfolio, over the next days.

    One joint simulation: each ticker's calibrated quantiles from its latest window, tied by a
    t copula of the tickers' past daily returns. Losses are percent of value, positive; the
    component ES of a ticker is its share of the portfolio's ES (they sum to it).

    Examples:

      forecaster risk .forecaster/models/quickstart -t ^GSPC -t ^IXIC

      forecaster risk model/ -t AAPL -t MSFT -t XOM --weights AAPL=0.5,MSFT=0.3,XOM=0.2 --alpha 0.01

      forecaster risk model/ --source prices/ --horizon 5 --paths 20000 -o risk.csv --plot loss.png
    """
    from forecaster import products
    from forecaster.joint import DEFAULT_ALPHAS

    alphas = tuple(alpha) if alpha else DEFAULT_ALPHAS
    bad = [a for a in alphas if not 0 < a <= 0.5]
    if bad:
        raise ValueError(f"--alpha must be a tail probability in (0, 0.5], got {bad[0]:g}")
    w = parse_weights(weights)
    model, bars, horizon = _model_and_bars(model_dir, ticker, source, strict, horizon, paths)
    joint = products.joint_draws(model, bars, horizon=horizon, n_paths=paths, seed=seed)
    tickers, portfolio = products.risk_tables(joint, weights=w, alphas=alphas)
    print_risk(
        tickers, portfolio, f"as of {joint.as_of.date()}, {horizon} trading days ahead, {paths:,} paths"
    )
    if output:
        risk_frame(tickers, portfolio).to_csv(output, index=False)
        say(f"written to {output}")
    if plot:
        from forecaster.evaluation.plots import plot_portfolio_loss

        losses = products.portfolio_losses(joint, w)
        say(
            f"plot: {plot_portfolio_loss(losses, portfolio['var'], portfolio['es'], plot, portfolio['alpha'])}"
        )


@friendly_errors
def rank(
    model_dir: ModelDirArg,
    ticker: TickersOpt = None,
    source: SourceOpt = "cache",
    strict: StrictOpt = False,
    horizon: HorizonOpt = None,
    paths: PathsOpt = 10_000,
    seed: SeedOpt = 0,
    output: RankCsvOpt = None,
    plot: RankPlotOpt = None,
) -> None:
    """Probability of each ticker's return landing in each quintile of the group (M6 layout).

    In every simulated path the tickers are ranked by their return over the horizon; Rank1 holds
    the lowest fifth, Rank5 the highest. Needs at least 5 tickers. `--output` writes the M6
    submission layout: ID,Rank1,Rank2,Rank3,Rank4,Rank5.

    Examples:

      forecaster rank model/ --source prices/ --horizon 5 -o m6.csv

      forecaster rank model/ -t AAPL -t MSFT -t XOM -t JPM -t KO --plot ranks.png
    """
    from forecaster import products

    model, bars, horizon = _model_and_bars(model_dir, ticker, source, strict, horizon, paths)
    joint = products.joint_draws(model, bars, horizon=horizon, n_paths=paths, seed=seed)
    table = products.rank_table(joint)
    print_ranks(table, f"as of {joint.as_of.date()}, {horizon} trading days ahead, {paths:,} paths")
    if output:
        table.to_csv(output, index=False)
        say(f"written to {output}")
    if plot:
        from forecaster.evaluation.plots import plot_rank_heatmap

        say(f"plot: {plot_rank_heatmap(table, plot)}")


def parse_weights(text: str | None) -> dict[str, float] | None:
    """`"A=0.5, B=0.5"` -> {"A": 0.5, "B": 0.5}; None -> None (equal weights)."""
    if not text:
        return None
    out: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, sep, value = item.partition("=")
        name = name.strip().upper()  # tickers are upper case, as the price store keeps them
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name or weight != weight or abs(weight) == float("inf"):
            raise ValueError(f"--weights: {item!r} is not TICKER=NUMBER (e.g. AAPL=0.5,MSFT=0.5)")
        if name in out:
            raise ValueError(f"--weights: {name} is given twice")
        out[name] = weight
    if not any(out.values()):
        raise ValueError("--weights: every weight is 0")
    return out


def _model_and_bars(model_dir: Path, tickers, source: str, strict: bool, horizon: int | None, paths: int):
    """The model, the bars of the tickers, and the horizon checked against the model's."""
    from forecaster.model import FuzzyLSTMForecaster

    if paths < 1:
        raise ValueError(f"--paths must be >= 1, got {paths}")
    model = FuzzyLSTMForecaster.load(model_dir)
    most = model.config.window.horizon
    if horizon is not None and not 1 <= horizon <= most:
        raise ValueError(f"--horizon must be between 1 and {most} (this model's horizon), got {horizon}")
    bars = load(source, tickers, None, None, Settings(), strict=strict)
    return model, bars, horizon or most


def risk_frame(tickers, portfolio):
    """The per-ticker rows, then the portfolio's: ticker "(portfolio)", the weights' sum, ES as component."""
    import pandas as pd

    total = tickers.drop_duplicates("ticker")["weight"].sum()
    rows = portfolio.assign(ticker=PORTFOLIO, weight=total, component_es=portfolio["es"])
    return pd.concat([tickers, rows[tickers.columns]], ignore_index=True)


def _pct(value: float) -> str:
    return f"{round(100 * value, 2) + 0.0:.2f}%"  # + 0.0: no "-0.00%"


def print_risk(tickers, portfolio, when: str) -> None:
    """Per-ticker VaR / ES (a block of rows per ticker, one per alpha), then the portfolio's."""
    rows = tickers.to_dict("records")
    first = [i == 0 or rows[i - 1]["ticker"] != r["ticker"] for i, r in enumerate(rows)]
    say(f"Joint forecast {when}")
    layout = Layout(
        "VaR and ES per ticker",
        keys=[
            Column("ticker", [r["ticker"] if f else "" for r, f in zip(rows, first, strict=True)], "left"),
            Column("alpha", [f"{r['alpha']:g}" for r in rows]),
        ],
        columns=[
            Column("weight", [f"{r['weight']:.3g}" if f else "" for r, f in zip(rows, first, strict=True)]),
            Column("VaR", [_pct(r["var"]) for r in rows], style="bold"),
            Column("ES", [_pct(r["es"]) for r in rows]),
            Column("component ES", [_pct(r["component_es"]) for r in rows]),
        ],
        section_ends={i - 1 for i in range(1, len(rows)) if first[i]},
    )
    print_table(layout)
    records = portfolio.to_dict("records")
    print_table(
        Layout(
            "Portfolio",
            keys=[Column("alpha", [f"{r['alpha']:g}" for r in records])],
            columns=[
                Column("VaR", [_pct(r["var"]) for r in records], style="bold"),
                Column("ES", [_pct(r["es"]) for r in records]),
            ],
        ),
        caption="Losses in percent of value over the horizon (positive: a loss). VaR: the loss exceeded "
        "with probability alpha; ES: the mean loss beyond it; component ES: each ticker's share of the "
        "portfolio's ES.",
    )


def print_ranks(table, when: str) -> None:
    """The M6 table: one row per ticker, its probability of each quintile."""
    ranks = [c for c in table.columns if c.startswith("Rank")]
    say(f"Joint forecast {when}")
    print_table(
        Layout(
            "Quintile rank probabilities",
            keys=[Column("ID", table["ID"].astype(str).tolist(), "left")],
            columns=[Column(c, [f"{p:.3f}" for p in table[c]]) for c in ranks],
        ),
        caption="Rank1: the lowest fifth of returns in the group, Rank5: the highest; each row sums to 1.",
    )
